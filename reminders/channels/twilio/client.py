"""Messages through Twilio's Messages API (SMS, and WhatsApp through the same API), with Twilio's
errors sorted into transient and permanent by reminders.channels.twilio.codes."""
from __future__ import annotations

import logging
import re
import threading
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import requests
import urllib3
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from reminders.channel_specs import SMS
from reminders.channels.base import DeliveryError, OutgoingMessage, Receipt
from reminders.channels.twilio import codes
from reminders.config import Settings
from reminders.logs import mask_phone
from reminders.pacing import SenderPaused, pacer_for

log = logging.getLogger("reminders.channels.sms")

_DIGIT_RUNS = re.compile(r"\+?\d[\d \-().]{5,}\d")


def _scrub(text: str) -> str:
    # Twilio's messages quote the number ("The 'To' number +1555... is not valid").
    return _DIGIT_RUNS.sub("[number]", text)


class HeaderKeepingClient(TwilioHttpClient):
    """TwilioHttpClient that remembers, per thread, the headers of the last answer it got.

    TwilioRestException carries no headers, and a 429's Retry-After is in them."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._local = threading.local()

    def request(self, *args, **kwargs):
        self._local.headers = None
        response = super().request(*args, **kwargs)
        self._local.headers = response.headers
        return response

    def last_headers(self):
        return getattr(self._local, "headers", None) or {}


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: a number of seconds, or an HTTP date. None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return max(seconds, 0.0)


class TwilioMessaging:
    """One channel through Twilio: SMS, or WhatsApp with its spec's `address_prefix` (put before the
    To and the From; a Messaging Service SID, MG..., is sent as it is)."""

    def __init__(self, settings: Settings, *, name: str = SMS.name, sender: str | None = None,
                 address_prefix: str = ""):
        sender = sender or settings.twilio_from
        if not (settings.twilio_account_sid and settings.twilio_auth_token and sender):
            raise ValueError("Twilio needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and a sender (TWILIO_FROM)")
        self.name = name
        self._prefix = address_prefix
        self.from_address = sender  # the number or Messaging Service SID every message goes from
        self._sender = (
            {"messaging_service_sid": sender} if sender.startswith("MG") else {"from_": address_prefix + sender}
        )
        self._http = HeaderKeepingClient(timeout=settings.twilio_timeout_seconds)
        client = Client(settings.twilio_account_sid, settings.twilio_auth_token, http_client=self._http)
        if settings.twilio_api_base_url:
            # Every request URL is Domain.base_url + "/2010-04-01/Accounts/..." .
            # The edge/region rewrite (TWILIO_EDGE, TWILIO_REGION) would mangle a
            # non-twilio.com host, so it is switched off for an explicit base URL.
            client.api.base_url = settings.twilio_api_base_url.rstrip("/")
            client.edge = client.region = None
        self._messages = client.api.v2010.account.messages
        # Paced per sending address: a WhatsApp sender is not the SMS number's bucket.
        self._pacer = pacer_for(settings, address_prefix + sender)

    def reserve(self, message: OutgoingMessage) -> None:
        """Wait for this message's slot at the sending number's pace."""
        try:
            self._pacer.wait_for_slot(urgent=message.urgent)
        except SenderPaused as paused:  # nothing was sent: try again once the pause is over
            raise DeliveryError("the sending number is paused (Twilio asked us to wait)", permanent=False,
                                code="paused", retry_after=paused.seconds) from paused

    def send(self, message: OutgoingMessage) -> Receipt:
        extra = {"status_callback": message.status_callback} if message.status_callback else {}
        to = message.to if message.to.startswith(self._prefix) else self._prefix + message.to
        if not message.slot_reserved:
            self.reserve(message)
        try:
            sent = self._messages.create(to=to, body=message.body, **self._sender, **extra)
        except TwilioException as exc:
            error = self._sorted(exc, message)
            if not error.permanent:
                # The breaker (reminders.provider_health) holds the channel for the Retry-After,
                # for every process, on the sending clock; the batch in hand stops at once.
                error.retry_after = retry_after_seconds(self._http.last_headers().get("Retry-After"))
            raise error from exc
        except requests.RequestException as exc:
            log.warning("%s %s to %s: no answer from Twilio (%s)",
                        self.name, message.reference, mask_phone(message.to), type(exc).__name__)
            code = "timeout" if isinstance(exc, requests.Timeout) else "connection"
            raise DeliveryError(f"Twilio unreachable: {type(exc).__name__}",
                                permanent=False, code=code, maybe_sent=_after_request(exc)) from exc
        log.debug("%s %s to %s accepted by Twilio as %s (%s)",
                 self.name, message.reference, mask_phone(message.to), sent.sid, sent.status)
        return Receipt(provider_id=sent.sid, status=sent.status or "queued")

    def _sorted(self, exc: TwilioException, message: OutgoingMessage) -> DeliveryError:
        status = getattr(exc, "status", None)
        code = codes.code_of(getattr(exc, "code", None))
        text = _scrub(str(getattr(exc, "msg", None) or getattr(exc, "title", None) or type(exc).__name__))
        where = (self.name, message.reference, mask_phone(message.to))
        known = codes.about(code)
        max_attempts = None

        if status == 429 or code == codes.TOO_MANY_REQUESTS:
            permanent = False
        elif code == codes.AUTHENTICATE or (status == 401 and known is None):
            # Bad credentials are the clinic's configuration, not the patient's number:
            # keep the reminders and retry them once someone fixes the settings.
            log.error("%s %s to %s: Twilio refused our credentials (%s). Check TWILIO_ACCOUNT_SID "
                      "and TWILIO_AUTH_TOKEN.", *where, code)
            permanent = False
        elif known is not None:
            permanent, max_attempts = known.permanent_on_send, known.max_attempts
        elif status is not None and 400 <= int(status) < 500:
            permanent = True
        else:  # 5xx, or no HTTP status at all
            permanent = False

        kind = "permanent" if permanent else "transient"
        log.warning("%s %s to %s failed (%s): HTTP %s, Twilio code %s", *where, kind, status, code)
        code_text = code or (str(status) if status is not None else None)
        return DeliveryError(f"Twilio error {code_text}: {text}", permanent=permanent, code=code_text,
                             max_attempts=max_attempts)


# The name it had while it sent only SMS.
TwilioSMS = TwilioMessaging


def _after_request(exc: requests.RequestException) -> bool:
    """True when the request reached Twilio and the answer was lost: Twilio may have sent it."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ReadTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    return isinstance(reason, urllib3.exceptions.ProtocolError)
