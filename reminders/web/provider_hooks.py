"""The providers' webhooks: patients' texts and delivery reports, at the URLs each provider calls
(Twilio: `POST /twilio/sms` and `POST /twilio/status`; reminders.channels.webhook_providers).

Each request is checked by its provider first (Twilio: X-Twilio-Signature against PUBLIC_BASE_URL,
without it the scheme and host the request came to, + the path and query it called, and the
account); a request that fails is answered 403 and nothing is stored, as is every request while
the provider's secret is not set (an unsigned request is never accepted).

An inbound text is answered in the same request (Twilio: TwiML). Crisis alerts to staff are sent
right after the commit, before the answer goes back, but the answer never waits on them for more
than ALERT_WAIT_SECONDS (Twilio gives a webhook 15 seconds; a hung mail server must not cost the
patient the crisis line). Alerts not sent by then are still in the outbox and go on the next pass.
"""
from __future__ import annotations

import logging
from datetime import datetime

from flask import Blueprint, Response, request

from reminders.channels import webhook_providers
from reminders.channels.base import INBOUND, DeliveryReport, InboundText, ProviderWebhooks, WebhookRequest, WebhookRoute
from reminders.inbound.delivery_reports import apply_delivery_report
from reminders.inbound.replies import Handled, fallback_reply, handle_inbound, keep_for_staff_after_failure
from reminders.logs import mask_phone, sensitive
from reminders.metrics import timed
from reminders.web.context import db, request_now, send_alerts_now, settings

log = logging.getLogger(__name__)

provider_hooks = Blueprint("provider_hooks", __name__)


def webhook_request() -> WebhookRequest:
    """This request in the providers' terms."""
    body = request.get_data(as_text=True)  # read first: the form is then parsed from it
    return WebhookRequest(path=request.path, full_path=request.full_path, form=request.form, args=request.args,
                          headers=request.headers, body=body, arrived_at=request.host_url)


def _refused(provider: ProviderWebhooks, problem: str) -> Response:
    level = logging.ERROR if "not set" in problem else logging.WARNING
    log.log(level, "%s webhook %s refused with 403: %s", provider.label, request.path, problem)
    return Response(f"Forbidden: the request is not signed by {provider.label} for this account\n", status=403,
                    mimetype="text/plain")


def _view(provider_class: type[ProviderWebhooks], route: WebhookRoute):
    handle = _inbound if route.carries == INBOUND else _delivery_reports

    @timed(route.metric)  # reminders_webhook_duration_seconds, the provider's check included
    def view():
        provider = provider_class(settings())
        hook = webhook_request()
        problem = provider.validate_request(hook)
        if problem:
            return _refused(provider, problem)
        return handle(provider, provider.parse_events(hook))

    view.__name__ = f"{provider_class.label.lower()}_{route.carries}"
    return view


# ---------------------------------------------------------------- inbound texts

def _inbound(provider: ProviderWebhooks, events: list) -> Response:
    [text] = [event for event in events if isinstance(event, InboundText)]
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
            handled = _after_failure(provider, text, now)
    if handled.alert_ids:
        send_alerts_now(handled.alert_ids, now)
    body, mimetype = provider.answer(handled.reply)
    return Response(body, mimetype=mimetype)


def _after_failure(provider: ProviderWebhooks, text: InboundText, now: datetime) -> Handled:
    session = db()
    try:
        handled = keep_for_staff_after_failure(session, settings(), text, now)
        session.commit()
        return handled
    except Exception:  # noqa: BLE001
        session.rollback()
        log.exception("inbound text %s could not even be stored: look it up in %s's message log",
                      text.message_sid or "(no message id)", provider.label)
        return Handled(None, "error", True, fallback_reply("crisis", settings()))


# ---------------------------------------------------------------- delivery reports

def _delivery_reports(_provider: ProviderWebhooks, events: list) -> Response:
    session = db()
    for report in events:
        if isinstance(report, DeliveryReport):
            apply_delivery_report(session, report, request_now())
    session.commit()
    # An email planned in place of a text that did not arrive is due now: the next pass sends it.
    return Response(status=204)


def _register_routes() -> None:
    """Each provider's routes, once each (SMS and WhatsApp share Twilio's)."""
    for provider_class in webhook_providers():
        for route in provider_class.routes:
            provider_hooks.add_url_rule(route.path, view_func=_view(provider_class, route), methods=["POST"])


_register_routes()
