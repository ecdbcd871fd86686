"""The one small interface every channel sits behind."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Mapping, Protocol


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
    channel: str = "sms"  # the channel it came by: "whatsapp" for a whatsapp: address


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
    name: str  # "sms" or "email"

    def send(self, message: OutgoingMessage) -> Receipt: ...


@dataclass(frozen=True)
class ChannelSpec:
    """What the rest of the service needs to know about a way of reaching a patient: sending,
    rendering and the fallback read these, never the channel's name. A new channel is a new spec
    (reminders.channels.kinds) and a provider class with `send`."""

    name: str  # the outbox row's channel
    contact: str  # the patient's detail it is sent to: "phone" or "email"
    template_suffix: str  # a rule's template is "<template>.<suffix>.j2" (email: subject/text/html)
    is_text: bool  # a conversation: check-ins, replies, the welcome and opt-out belong to it
    carries_calendar: bool  # a visit reminder may attach the visit as a calendar entry
    counts_segments: bool  # the body is billed in SMS segments (stored on the row)
    reports_delivery: bool  # the provider calls back with delivery reports (status callback URL)
    fallback: str | None  # the channel a message goes by when it cannot go this way
    has_subject: bool = False  # a subject, a plain-text body and an optional HTML body (email)
    # Free-form text (a written answer, not a template) may go only this long after the
    # patient's own last message on the channel (WhatsApp's 24-hour session); None: any time.
    free_form_window: timedelta | None = None
    template_fallback: str | None = None  # the suffix used when a rule has no template of its own
    label: str = ""  # in staff's words: "text message", "email"

    @property
    def words(self) -> str:
        return self.label or self.name


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
