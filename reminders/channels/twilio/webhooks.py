"""Twilio's webhooks, without the web framework: is a request signed by Twilio for our account, and
what its form says, in the service's own types (an InboundText, a DeliveryReport), and the TwiML
that answers an inbound text. `TwilioWebhooks` puts them behind the providers' small interface
(reminders.channels.base.ProviderWebhooks), which the web layer registers and calls.

Everything is passed in (the auth token, PUBLIC_BASE_URL or the address the request came to, the
path and query, the headers, the form): this module knows no request object, so the web layer
calls it and it never calls the web layer.
"""
from __future__ import annotations

import logging
from typing import Mapping
from urllib.parse import parse_qs, urlsplit

from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from reminders.channel_specs import SMS, channel_of_address, without_address_prefix
from reminders.channels.base import (
    DELIVERY, FAILED_STATE, INBOUND, UNDELIVERED_STATE, DeliveryReport, InboundText, ProviderWebhooks, WebhookRequest,
    WebhookRoute, callback_outbox_id,
)
from reminders.channels.twilio import codes
from reminders.config import Settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
# Present when the webhook is signed with a SharedKey instead of the auth token (newer twilio only).
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
# Where Twilio posts: the clinic's console points the number's incoming-message webhook at the
# first; every text we send names the second (its spec's status callback). Neither ever changes.
INBOUND_PATH = "/twilio/sms"
STATUS_PATH = SMS.status_callback_path

# The widths of the columns the fields are stored in (InboundMessage, OutboxMessage).
NUMBER_WIDTH, SID_WIDTH, STATUS_WIDTH, ERROR_CODE_WIDTH = 32, 64, 30, 30
# Twilio caps a text at 1,600 characters; anything longer is not from a phone.
BODY_LIMIT = 10_000


# ---------------------------------------------------------------- the signature

def signed_url(public_base_url: str, full_path: str) -> str:
    """The URL Twilio signed: the base it was given + the path and query it called."""
    return public_base_url.rstrip("/") + full_path.rstrip("?")


def signature_problem(auth_token: str, public_base_url: str, full_path: str, headers: Mapping[str, str],
                      form: Mapping[str, str], body: str = "", arrived_at: str = "") -> str | None:
    """None when the request is signed by Twilio; otherwise why it is refused.

    Twilio signs the URL it called: PUBLIC_BASE_URL when the clinic set it, otherwise `arrived_at`,
    the scheme and host the request came to (behind a proxy, as it forwarded them). Either way only
    the holder of the auth token can sign, so the second is as safe; it only fails to match when a
    proxy hides the public scheme or host. `full_path` is the path and query Twilio called, `form`
    the posted fields, `body` the raw body (checked instead of the form when the query carries
    bodySHA256, as for a JSON body)."""
    if not auth_token:
        return "TWILIO_AUTH_TOKEN is not set, so no request can be checked"
    base = public_base_url or arrived_at
    if not base:
        return "PUBLIC_BASE_URL is not set, so the signed URL is unknown"
    signature = _header(headers, SIGNATURE_HEADER)
    if not signature:
        return "no X-Twilio-Signature header"
    url = signed_url(base, full_path)
    params = body if "bodySHA256" in parse_qs(urlsplit(full_path).query) else form
    validator = RequestValidator(auth_token)
    shared_key = _header(headers, SIGNATURE_SETTINGS_HEADER)
    if shared_key:
        try:
            from twilio.request_validator import get_signature_algorithm
        except ImportError:  # a twilio library from before SharedKey signing
            return "the request is signed with a SharedKey; this twilio library cannot check it"
        valid = validator.validate(url, params, signature, get_signature_algorithm(shared_key))
    else:
        valid = validator.validate(url, params, signature)
    if valid:
        return None
    if shared_key:
        return ("the signature does not match; the request was signed with a SharedKey and this service checks "
                "with TWILIO_AUTH_TOKEN")
    if public_base_url:
        return f"the signature does not match (checked against {url}; is PUBLIC_BASE_URL right?)"
    return (f"the signature does not match (checked against {url}, the address the request came to, as "
            "PUBLIC_BASE_URL is not set; behind a proxy set PUBLIC_BASE_URL to the URL Twilio calls, or "
            "TRUSTED_PROXY_HOPS)")


def account_problem(account_sid: str, form: Mapping[str, str]) -> str | None:
    """None when the request is for this service's Twilio account (or no account is configured).

    A valid signature proves only that someone holding the auth token signed it; a request that
    names another account (a second clinic on the same token, a replay from a subaccount) is not
    about our messages and is not acted on."""
    if not account_sid:
        return None
    theirs = form.get("AccountSid") or ""
    if theirs == account_sid:
        return None
    shown = f"ending {theirs[-4:]!r}" if theirs else "missing"
    return f"the AccountSid is not TWILIO_ACCOUNT_SID (it is {shown})"


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None and not hasattr(headers, "getlist"):  # a plain dict: look the name up in any case
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return value or ""


# ---------------------------------------------------------------- inbound texts

def parse_inbound(form: Mapping[str, str]) -> InboundText:
    """The text as it can be stored: NUL removed (PostgreSQL text cannot hold it), each field cut
    to its column, and a note for staff on what was odd, so that the text is kept and seen
    instead of failing to store. An address with a channel's prefix ("whatsapp:+1...") is that
    channel, stored as its number."""
    notes = []
    sid, bad_sid = _field(form, "MessageSid", "SmsSid", width=SID_WIDTH)
    sender, bad_sender = _field(form, "From", width=NUMBER_WIDTH, address=True)
    to, bad_to = _field(form, "To", width=NUMBER_WIDTH, address=True)
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
    channel = channel_of_address((form.get("From") or "").replace("\x00", ""))
    return InboundText(message_sid=sid or None, from_number=sender, to_number=to, body=body,
                       num_media=_media_count(form.get("NumMedia")), notes=tuple(notes), channel=channel)


def twiml_answer(reply: str | None) -> str:
    """The TwiML that answers an inbound text: the reply, or nothing to send."""
    answer = MessagingResponse()
    if reply:
        answer.message(reply)
    return str(answer)


# ---------------------------------------------------------------- delivery reports

def parse_status(form: Mapping[str, str], outbox_id: int | None) -> DeliveryReport:
    """A status callback as a DeliveryReport: its rank among Twilio's statuses, where it leaves the
    message, and what its error code means (codes). `outbox_id` is from our callback URL."""
    sid = _field(form, "MessageSid", "SmsSid", width=SID_WIDTH)[0]
    status = _field(form, "MessageStatus", "SmsStatus", width=STATUS_WIDTH)[0].lower()
    code = codes.code_of(_field(form, "ErrorCode", width=ERROR_CODE_WIDTH)[0])
    rank, state = codes.STATUSES.get(status, (-1, None))
    not_delivered = state in (UNDELIVERED_STATE, FAILED_STATE)
    permanent = not_delivered and codes.permanent_on_delivery(code)
    if permanent:
        state = FAILED_STATE  # the number cannot take texts: failed, whatever word the carrier used
    return DeliveryReport(
        outbox_id=outbox_id, provider_id=sid, provider_status=status, rank=rank, final=status in codes.FINAL,
        state=state, error_code=code, reason=codes.reason(code), permanent=permanent,
        unsubscribed=not_delivered and codes.unsubscribed(code), status_ranks=codes.RANKS,
    )


# ---------------------------------------------------------------- the fields

def _field(form: Mapping[str, str], *names: str, width: int | None = None, address: bool = False) -> tuple[str, bool]:
    """A form field with NUL characters (and, for an address, its channel's prefix) removed and cut
    to its column; True when it needed that."""
    raw = next((form.get(name) for name in names if form.get(name)), "") or ""
    value = raw.replace("\x00", "").strip()
    if address:
        value = without_address_prefix(value)
    malformed = "\x00" in raw
    if width is not None and len(value) > width:
        value, malformed = value[:width], True
    return value, malformed


def _media_count(value: str | None) -> int:
    try:
        number = int(value or 0)
    except ValueError:
        return 0
    return number if 0 <= number <= 100 else 0  # Twilio allows 10 media per text


# ---------------------------------------------------------------- behind the providers' interface

class TwilioWebhooks(ProviderWebhooks):
    """Twilio's two webhooks for SMS and WhatsApp: patients' texts and delivery reports."""

    label = "Twilio"
    routes = (WebhookRoute(INBOUND_PATH, INBOUND, metric="sms"), WebhookRoute(STATUS_PATH, DELIVERY, metric="status"))

    def __init__(self, settings: Settings):
        self.auth_token = settings.twilio_auth_token
        self.account_sid = settings.twilio_account_sid
        self.public_base_url = settings.public_base_url

    def validate_request(self, request: WebhookRequest) -> str | None:
        return (signature_problem(self.auth_token, self.public_base_url, request.full_path, request.headers,
                                  request.form, request.body, arrived_at=request.arrived_at)
                or account_problem(self.account_sid, request.form))

    def parse_events(self, request: WebhookRequest) -> list[InboundText | DeliveryReport]:
        route = self.route_for(request.path)
        if route is not None and route.carries == INBOUND:
            return [parse_inbound(request.form)]
        return [parse_status(request.form, callback_outbox_id(request.args))]

    def answer(self, reply: str | None) -> tuple[str, str]:
        return twiml_answer(reply), "application/xml"
