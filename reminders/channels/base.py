"""The small interfaces every channel sits behind: `send` for messages going out, and for a
provider that calls us back, its webhooks (`ProviderWebhooks`)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import ClassVar, Mapping, Protocol

from reminders.channel_specs import SMS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # e.g. "text/calendar"
    data: bytes


@dataclass(frozen=True)
class OutgoingMessage:
    to: str  # E.164 number for SMS, address for email
    body: str  # SMS text, or the plain-text part of an email
    subject: str | None = None
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    status_callback: str | None = None  # SMS only: where the provider reports delivery
    reference: str = ""  # the outbox row's id, for logs and the local outbox
    urgent: bool = False  # a staff crisis alert or an answer to a patient: ahead of reminders (pacing)
    # The sender already waited for this message's pacing slot (the channel's `reserve`): send at once.
    slot_reserved: bool = False


@dataclass(frozen=True)
class Receipt:
    provider_id: str  # Twilio's Message SID, the email's Message-ID, or the local outbox's id
    status: str = "sent"  # the provider's first status ("queued", "accepted", "sent")


@dataclass(frozen=True)
class InboundText:
    """A patient's text as the provider handed it over, as far as the service uses it."""

    message_sid: str | None
    from_number: str
    to_number: str = ""
    body: str = ""
    num_media: int = 0
    # What was wrong with the request's fields and was cleaned ("[sender number was malformed]"):
    # kept with the text for staff, who then see it in the inbox.
    notes: tuple[str, ...] = ()
    channel: str = SMS.name  # the channel it came by (its address prefix: "whatsapp:" is WhatsApp)


class DeliveryError(Exception):
    """A send that did not go. `permanent` says whether trying again could help.

    `maybe_sent` marks a failure after the message was handed over (the provider stopped
    answering mid-request): it may have reached the patient, so a blind retry could send twice.
    `retry_after` is how long the provider asked us to wait (HTTP Retry-After), in seconds.
    """

    def __init__(self, message: str, *, permanent: bool, code: str | None = None, maybe_sent: bool = False,
                 retry_after: float | None = None, max_attempts: int | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.maybe_sent = maybe_sent
        self.retry_after = retry_after
        # A transient error worth only a few tries (the provider's advice): give up after this many.
        self.max_attempts = max_attempts

    def __repr__(self) -> str:
        kind = "permanent" if self.permanent else "transient"
        return f"DeliveryError({str(self)!r}, {kind}, code={self.code!r})"


class Channel(Protocol):
    """One `send`. A channel that paces its sends may also offer `reserve(message)`, which waits
    for the message's slot (raising DeliveryError when the sender is paused), so that the caller
    records the row in flight only when the provider call itself is next."""
    name: str  # its spec's name (reminders.channel_specs)

    def send(self, message: OutgoingMessage) -> Receipt: ...


# Where a delivery report leaves a message, in the service's own words (channels translate their
# provider's statuses into these, reminders.outbox applies them).
ACCEPTED, SENT_STATE, DELIVERED_STATE, READ_STATE = "accepted", "sent", "delivered", "read"
UNDELIVERED_STATE, FAILED_STATE = "undelivered", "failed"


@dataclass(frozen=True)
class DeliveryReport:
    """One delivery report from a provider, translated into the service's own terms."""

    outbox_id: int | None  # from our callback URL, when it carried one
    provider_id: str  # the provider's id of the message
    provider_status: str  # the provider's own word, kept on the row for staff
    rank: int  # the order statuses happen in: a report below the row's rank changes nothing
    final: bool  # no later report can change it (delivered, read, failed, ...)
    state: str | None  # one of the states above; None: a status the channel does not know
    error_code: str | None = None
    reason: str | None = None  # the error in words, for staff
    permanent: bool = False  # the number cannot take messages this way (not worth trying again)
    unsubscribed: bool = False  # the recipient opted out at the carrier or provider
    # The provider's statuses and their ranks, to rank the one already on the row (its last report).
    status_ranks: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def rank_of(self, provider_status: str | None) -> int:
        """The rank of a status this provider reported earlier; -1 for none or one it does not know."""
        return self.status_ranks.get(provider_status or "", -1)


# ---------------------------------------------------------------- a provider's webhooks

INBOUND, DELIVERY = "inbound", "delivery"  # what a webhook carries: patients' texts, delivery reports
DATABASE_ID_MAX = 2**31 - 1


@dataclass(frozen=True)
class WebhookRoute:
    """One URL a provider posts to. The path is set in the clinic's provider console (or sent with
    each message, as a status callback): it never changes."""

    path: str  # "/twilio/sms"
    carries: str  # INBOUND or DELIVERY
    metric: str  # the `hook` label of reminders_webhook_duration_seconds


@dataclass(frozen=True)
class WebhookRequest:
    """A provider's request as the web layer hands it over: no web framework below the web layer."""

    path: str  # the path it called ("/twilio/status")
    full_path: str  # with the query ("/twilio/status?outbox_id=12")
    form: Mapping[str, str]
    args: Mapping[str, str]  # the query's fields
    headers: Mapping[str, str]
    body: str = ""  # the raw body
    arrived_at: str = ""  # the scheme and host the request came to ("https://clinic.example/")


class ProviderWebhooks:
    """A provider's webhooks: which URLs it calls, whether a request really comes from it for our
    account, and the texts and delivery reports it carries, in the service's own types. A
    provider's class knows its field names and signatures; the web layer knows only this."""

    label: ClassVar[str] = ""  # the provider, in logs and refusals: "Twilio"
    routes: ClassVar[tuple[WebhookRoute, ...]] = ()

    def validate_request(self, request: WebhookRequest) -> str | None:
        """None when the request is the provider's, for our account; otherwise why it is refused
        (nothing is stored from a refused request)."""
        raise NotImplementedError

    def parse_events(self, request: WebhookRequest) -> list[InboundText | DeliveryReport]:
        """What a validated request says: a patient's text, or delivery reports."""
        raise NotImplementedError

    def answer(self, reply: str | None) -> tuple[str, str]:
        """The body and media type that answer an inbound text (with the reply to send, if any)."""
        raise NotImplementedError

    def route_for(self, path: str) -> WebhookRoute | None:
        return next((route for route in self.routes if route.path == path), None)


def callback_outbox_id(args: Mapping[str, str]) -> int | None:
    """The outbox row a delivery report is about, from the status callback URL we gave the
    provider (`?outbox_id=12`); None when it carries none, or one we never put there (the row is
    then found by the provider's message id: an error would only make the provider retry)."""
    raw = args.get("outbox_id")
    if raw is None:
        return None
    try:
        outbox_id = int(raw)
    except ValueError:
        return None
    if not 1 <= outbox_id <= DATABASE_ID_MAX:
        log.warning("delivery report with an outbox id out of range; looking it up by its message id")
        return None
    return outbox_id
