"""Twilio webhooks: inbound texts (`POST /twilio/sms`) and delivery reports (`POST /twilio/status`).

Both check X-Twilio-Signature with the twilio library against PUBLIC_BASE_URL + the path and
query Twilio called, and answer 403, storing nothing, when it is missing or wrong, or when
TWILIO_AUTH_TOKEN or PUBLIC_BASE_URL is not set (an unsigned request is never accepted).

An inbound text is answered in the same request with TwiML. Crisis alerts to staff are sent
right after the commit, before the answer goes back, but the answer never waits on them for more
than ALERT_WAIT_SECONDS (Twilio gives a webhook 15 seconds; a hung mail server must not cost the
patient the crisis line). Alerts not sent by then are still in the outbox and go on the next pass.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime
from functools import wraps

from flask import Blueprint, Response, current_app, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from reminders.channels.kinds import split_address
from reminders.dispatch import send_soon
from reminders.inbound.delivery import StatusReport, record_status
from reminders.inbound.replies import Handled, InboundText, fallback_reply, handle_inbound, record_failure
from reminders.logs import mask_phone, sensitive
from reminders.models import utcnow
from reminders.web import db, settings

log = logging.getLogger(__name__)

twilio_hooks = Blueprint("twilio_hooks", __name__, url_prefix="/twilio")

ALERT_WAIT_SECONDS = 5.0
SIGNATURE_HEADER = "X-Twilio-Signature"
# Present when the webhook is signed with a SharedKey instead of the auth token (newer twilio only).
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"


def request_now() -> datetime:
    """The request's clock: app.config["CLOCK"] (a callable returning an aware UTC datetime) or now."""
    clock = current_app.config.get("CLOCK")
    return clock() if clock else utcnow()


# ---------------------------------------------------------------- the signature

def signed_url() -> str:
    """The URL Twilio signed: PUBLIC_BASE_URL + the path and query it called."""
    return settings().public_base_url.rstrip("/") + request.full_path.rstrip("?")


def signature_problem() -> str | None:
    """None when the request is signed by Twilio; otherwise why it is refused."""
    s = settings()
    if not s.twilio_auth_token:
        return "TWILIO_AUTH_TOKEN is not set, so no request can be checked"
    if not s.public_base_url:
        return "PUBLIC_BASE_URL is not set, so the signed URL is unknown"
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not signature:
        return "no X-Twilio-Signature header"
    # A JSON body is signed through a hash in the query (bodySHA256): check the raw body then.
    params = request.get_data(as_text=True) if "bodySHA256" in request.args else request.form
    validator = RequestValidator(s.twilio_auth_token)
    shared_key = request.headers.get(SIGNATURE_SETTINGS_HEADER)
    if shared_key:
        try:
            from twilio.request_validator import get_signature_algorithm
        except ImportError:  # a twilio library from before SharedKey signing
            return "the request is signed with a SharedKey; this twilio library cannot check it"
        valid = validator.validate(signed_url(), params, signature, get_signature_algorithm(shared_key))
    else:
        valid = validator.validate(signed_url(), params, signature)
    if valid:
        return None
    if shared_key:
        return ("the signature does not match; the request was signed with a SharedKey and this service checks "
                "with TWILIO_AUTH_TOKEN")
    return f"the signature does not match (checked against {signed_url()}; is PUBLIC_BASE_URL right?)"


def account_problem() -> str | None:
    """None when the request is for this service's Twilio account (or no account is configured).

    A valid signature proves only that someone holding the auth token signed it; a request that
    names another account (a second clinic on the same token, a replay from a subaccount) is not
    about our messages and is not acted on."""
    ours = settings().twilio_account_sid
    if not ours:
        return None
    theirs = request.form.get("AccountSid") or ""
    if theirs == ours:
        return None
    shown = f"ending {theirs[-4:]!r}" if theirs else "missing"
    return f"the AccountSid is not TWILIO_ACCOUNT_SID (it is {shown})"


def signed_by_twilio(view):
    """Refuse (403, nothing stored) any request that is not signed by Twilio for our account."""
    @wraps(view)
    def checked(*args, **kwargs):
        problem = signature_problem() or account_problem()
        if problem:
            return _refused(problem)
        return view(*args, **kwargs)

    return checked


def _refused(problem: str) -> Response:
    level = logging.ERROR if "not set" in problem else logging.WARNING
    log.log(level, "Twilio webhook %s refused with 403: %s", request.path, problem)
    return Response("Forbidden: the request is not signed by Twilio for this account\n", status=403,
                    mimetype="text/plain")


# ---------------------------------------------------------------- the fields

# The widths of the columns the fields are stored in (InboundMessage, OutboxMessage).
NUMBER_WIDTH, SID_WIDTH, STATUS_WIDTH, ERROR_CODE_WIDTH = 32, 64, 30, 30
# Twilio caps a text at 1,600 characters; anything longer is not from a phone.
BODY_LIMIT = 10_000
DATABASE_ID_MAX = 2**31 - 1


def _field(form, *names: str, width: int | None = None) -> tuple[str, bool]:
    """A form field with NUL characters removed and cut to its column; True when it needed that."""
    raw = next((form.get(name) for name in names if form.get(name)), "") or ""
    value = raw.replace("\x00", "").strip()
    malformed = "\x00" in raw
    if width is not None and len(value) > width:
        value, malformed = value[:width], True
    return value, malformed


# ---------------------------------------------------------------- inbound texts

def twiml(reply: str | None) -> Response:
    answer = MessagingResponse()
    if reply:
        answer.message(reply)
    return Response(str(answer), mimetype="application/xml")


@twilio_hooks.post("/sms")
@signed_by_twilio
def inbound_sms():
    text = inbound_text(request.form)
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
        _send_alerts_now(handled.alert_ids, now)
    return twiml(handled.reply)


def inbound_text(form) -> InboundText:
    """The text as it can be stored: NUL removed (PostgreSQL text cannot hold it), each field cut
    to its column, and a note for staff on what was odd, so that the text is kept and seen
    instead of failing to store."""
    notes = []
    sid, bad_sid = _field(form, "MessageSid", "SmsSid", width=SID_WIDTH)
    sender, bad_sender = _field(form, "From", width=NUMBER_WIDTH)
    to, bad_to = _field(form, "To", width=NUMBER_WIDTH)
    body = (form.get("Body") or "").replace("\x00", "")  # as a phone cannot send it: dropped without a note
    if bad_sender:
        notes.append("[sender number was malformed]")
    if bad_to:
        notes.append("[clinic number was malformed]")
    if bad_sid:
        notes.append("[message id was malformed]")
    if len(body) > BODY_LIMIT:
        notes.append(f"[text cut at {BODY_LIMIT} of {len(body)} characters]")
        body = body[:BODY_LIMIT]
    if notes:
        log.warning("inbound text with malformed fields (%s): stored cleaned, for staff", ", ".join(notes))
    # A WhatsApp message comes from "whatsapp:+1555...": the patient is found by the bare number.
    channel, sender = split_address(sender)
    to = split_address(to)[1]
    return InboundText(message_sid=sid or None, from_number=sender, to_number=to, body=body,
                       num_media=_int(form.get("NumMedia")), notes=tuple(notes), channel=channel)


def _after_failure(text: InboundText, now: datetime) -> Handled:
    session = db()
    try:
        handled = record_failure(session, settings(), text, now)
        session.commit()
        return handled
    except Exception:  # noqa: BLE001
        session.rollback()
        log.exception("inbound text %s could not even be stored: look it up in Twilio's message log",
                      text.message_sid or "(no MessageSid)")
        return Handled(None, "error", True, fallback_reply("crisis", settings()))


def _send_alerts_now(ids: list[int], now: datetime) -> None:
    dispatcher, sessions = current_app.extensions["reminders.dispatcher"], current_app.extensions["reminders.sessions"]

    def send() -> None:
        try:
            send_soon(dispatcher, sessions, ids, now)
        except Exception:  # noqa: BLE001 - the rows are in the outbox: the next pass sends them
            log.exception("crisis alerts %s: the immediate send failed; the next pass sends them", ids)

    worker = threading.Thread(target=send, name="crisis-alerts", daemon=True)
    worker.start()
    worker.join(ALERT_WAIT_SECONDS)
    if worker.is_alive():
        log.warning("crisis alerts %s still sending after %ss; answering the patient first", ids, ALERT_WAIT_SECONDS)


def _int(value: str | None) -> int:
    try:
        number = int(value or 0)
    except ValueError:
        return 0
    return number if 0 <= number <= 100 else 0  # Twilio allows 10 media per text


# ---------------------------------------------------------------- delivery reports

@twilio_hooks.post("/status")
@signed_by_twilio
def delivery_status():
    form = request.form
    outbox_id = request.args.get("outbox_id", type=int)
    if outbox_id is not None and not 1 <= outbox_id <= DATABASE_ID_MAX:
        # Not an id we ever put in a callback URL: find the row by MessageSid instead. (A 5xx
        # here would only make Twilio retry the same report.)
        log.warning("delivery report with an outbox id out of range; looking it up by MessageSid")
        outbox_id = None
    report = StatusReport(
        outbox_id=outbox_id,
        message_sid=_field(form, "MessageSid", "SmsSid", width=SID_WIDTH)[0],
        status=_field(form, "MessageStatus", "SmsStatus", width=STATUS_WIDTH)[0],
        error_code=_field(form, "ErrorCode", width=ERROR_CODE_WIDTH)[0] or None,
    )
    session = db()
    record_status(session, report, request_now())
    session.commit()
    # An email planned in place of a text that did not arrive is due now: the next pass sends it.
    return Response(status=204)
