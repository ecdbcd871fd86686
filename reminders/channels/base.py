"""The one small interface every channel sits behind."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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


@dataclass(frozen=True)
class Receipt:
    provider_id: str  # Twilio's Message SID, the email's Message-ID, or the local outbox's id
    status: str = "sent"  # the provider's first status ("queued", "accepted", "sent")


class DeliveryError(Exception):
    """A send that did not go. `permanent` says whether trying again could help.

    `maybe_sent` marks a failure after the message was handed over (the provider stopped
    answering mid-request): it may have reached the patient, so a blind retry could send twice.
    `retry_after` is how long the provider asked us to wait (HTTP Retry-After), in seconds.
    """

    def __init__(self, message: str, *, permanent: bool, code: str | None = None, maybe_sent: bool = False,
                 retry_after: float | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.maybe_sent = maybe_sent
        self.retry_after = retry_after

    def __repr__(self) -> str:
        kind = "permanent" if self.permanent else "transient"
        return f"DeliveryError({str(self)!r}, {kind}, code={self.code!r})"


class Channel(Protocol):
    name: str  # "sms" or "email"

    def send(self, message: OutgoingMessage) -> Receipt: ...
