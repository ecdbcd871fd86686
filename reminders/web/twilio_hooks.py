"""Twilio webhooks: inbound texts (`POST /twilio/sms`) and delivery reports (`POST /twilio/status`).

Both check X-Twilio-Signature with the twilio library against PUBLIC_BASE_URL (without it, the
scheme and host the request came to) + the path and query Twilio called, and answer 403, storing
nothing, when it is missing or wrong, or when TWILIO_AUTH_TOKEN is not set (an unsigned request is
never accepted).

An inbound text is answered in the same request with TwiML. Crisis alerts to staff are sent
right after the commit, before the answer goes back, but the answer never waits on them for more
than ALERT_WAIT_SECONDS (Twilio gives a webhook 15 seconds; a hung mail server must not cost the
patient the crisis line). Alerts not sent by then are still in the outbox and go on the next pass.
"""
from __future__ import annotations

import logging
from datetime import datetime
from functools import wraps

from flask import Blueprint, Response, request

from reminders.channels.base import InboundText
from reminders.channels.twilio import webhooks
from reminders.inbound.delivery import apply_delivery_report
from reminders.inbound.replies import Handled, fallback_reply, handle_inbound, record_failure
from reminders.logs import mask_phone, sensitive
from reminders.metrics import timed
from reminders.web.context import db, request_now, send_alerts_now, settings

log = logging.getLogger(__name__)

twilio_hooks = Blueprint("twilio_hooks", __name__, url_prefix="/twilio")

DATABASE_ID_MAX = 2**31 - 1


# ---------------------------------------------------------------- the signature

def signature_problem() -> str | None:
    """None when this request is signed by Twilio for our account; otherwise why it is refused."""
    s = settings()
    body = request.get_data(as_text=True)  # read first: the form is then parsed from it
    return (webhooks.signature_problem(s.twilio_auth_token, s.public_base_url, request.full_path, request.headers,
                                       request.form, body, arrived_at=request.host_url)
            or webhooks.account_problem(s.twilio_account_sid, request.form))


def signed_by_twilio(view):
    """Refuse (403, nothing stored) any request that is not signed by Twilio for our account."""
    @wraps(view)
    def checked(*args, **kwargs):
        problem = signature_problem()
        if problem:
            return _refused(problem)
        return view(*args, **kwargs)

    return checked


def _refused(problem: str) -> Response:
    level = logging.ERROR if "not set" in problem else logging.WARNING
    log.log(level, "Twilio webhook %s refused with 403: %s", request.path, problem)
    return Response("Forbidden: the request is not signed by Twilio for this account\n", status=403,
                    mimetype="text/plain")


# ---------------------------------------------------------------- inbound texts

def twiml(reply: str | None) -> Response:
    return Response(webhooks.twiml_answer(reply), mimetype="application/xml")


@twilio_hooks.post("/sms")
@timed("sms")  # reminders_webhook_duration_seconds, the signature check included
@signed_by_twilio
def inbound_sms():
    text = webhooks.parse_inbound(request.form)
    s, session, now = settings(), db(), request_now()
    # Whatever fails, the log shows neither the number nor the text (nor the patient's name, added
    # once the sender is known).
    with sensitive(text.from_number, text.body):
        try:
            handled = handle_inbound(session, s, text, now)
            session.commit()
        except Exception:  # noqa: BLE001 - the patient is answered whatever went wrong
            log.exception("inbound text from %s could not be handled; keeping it for staff",
                          mask_phone(text.from_number))
            handled = _after_failure(text, now)
    if handled.alert_ids:
        send_alerts_now(handled.alert_ids, now)
    return twiml(handled.reply)


def _after_failure(text: InboundText, now: datetime) -> Handled:
    session = db()
    try:
        handled = record_failure(session, settings(), text, now)
        session.commit()
        return handled
    except Exception:  # noqa: BLE001
        session.rollback()
        log.exception("inbound text %s could not even be stored: look it up in Twilio's message log",
                      text.message_sid or "(no message id)")
        return Handled(None, "error", True, fallback_reply("crisis", settings()))


# ---------------------------------------------------------------- delivery reports

@twilio_hooks.post("/status")
@timed("status")
@signed_by_twilio
def delivery_status():
    outbox_id = request.args.get("outbox_id", type=int)
    if outbox_id is not None and not 1 <= outbox_id <= DATABASE_ID_MAX:
        # Not an id we ever put in a callback URL: find the row by the message id instead. (A 5xx
        # here would only make Twilio retry the same report.)
        log.warning("delivery report with an outbox id out of range; looking it up by its message id")
        outbox_id = None
    report = webhooks.parse_status(request.form, outbox_id)
    session = db()
    apply_delivery_report(session, report, request_now())
    session.commit()
    # An email planned in place of a text that did not arrive is due now: the next pass sends it.
    return Response(status=204)
