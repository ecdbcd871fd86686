"""Twilio's error codes and message statuses, in one table each, in the service's own terms.

A code can come back twice in a message's life: when sending (the REST API refuses the message)
and in a delivery report (the message went, and a carrier says it did not arrive). The two can
differ: 30003 (the phone is off or out of coverage) is worth a few more tries, as Twilio advises,
but never means the number cannot take texts.

Codes are strings everywhere, as Twilio's status callbacks carry them.
"""
from __future__ import annotations

from dataclasses import dataclass

from reminders.channels.base import (
    ACCEPTED, DELIVERED_STATE, FAILED_STATE, READ_STATE, SENT_STATE, UNDELIVERED_STATE,
)


@dataclass(frozen=True)
class Code:
    reason: str  # in plain words, for staff
    permanent_on_send: bool  # the REST API refused it: trying again cannot help
    permanent_on_delivery: bool  # reported undelivered: the number cannot take texts from us
    # A transient refusal worth only this many tries (Twilio's advice), then given up.
    max_attempts: int | None = None
    unsubscribed: bool = False  # the recipient opted out at the carrier or at Twilio


AUTHENTICATE = "20003"
TOO_MANY_REQUESTS = "20429"
UNREACHABLE = "30003"
UNSUBSCRIBED = "21610"
# Twilio's advice for an unreachable handset: send again, a few times; it may be off tonight.
UNREACHABLE_ATTEMPTS = 3

CODES: dict[str, Code] = {
    # Our account or settings: the clinic must fix them; the reminders wait.
    AUTHENTICATE: Code("Twilio refused our credentials (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)", False, False),
    TOO_MANY_REQUESTS: Code("too many requests at once: Twilio asked us to slow down", False, False),
    "30001": Code("queue overflow at Twilio", False, False),
    "30002": Code("Twilio account suspended", False, False),
    # The patient's number.
    "21211": Code("invalid phone number", True, True),
    "21214": Code("the number cannot be reached", True, True),
    "21266": Code("the patient's number is the clinic's own", True, True),
    "21408": Code("texting that region is not enabled", True, True),
    "21606": Code("the clinic's number cannot send texts", True, True),
    "21608": Code("a trial account can text only verified numbers", True, True),
    UNSUBSCRIBED: Code("the recipient unsubscribed (replied STOP)", True, True, unsubscribed=True),
    "21612": Code("the number cannot receive texts from ours", True, True),
    "21614": Code("not a mobile number", True, True),
    # Delivery: what the carrier said.
    UNREACHABLE: Code("unreachable destination handset: the phone was off or out of coverage", False, False,
                      max_attempts=UNREACHABLE_ATTEMPTS),
    "30004": Code("the message was blocked by the recipient or carrier", True, True),
    "30005": Code("unknown or inactive number", True, True),
    "30006": Code("landline or unreachable carrier", True, True),
    # Resending the same text blindly looks more like spam: a person rewords it first.
    "30007": Code("filtered by the carrier as spam", True, True),
    "30008": Code("unknown delivery error", False, False),
    # WhatsApp.
    "63016": Code("WhatsApp takes free-form text only within 24 hours of the patient's last message", True, False),
    "63003": Code("the number is not on WhatsApp", True, True),
}


def code_of(value) -> str | None:
    """A code as the table spells it ("30003"), from an int, a string or nothing."""
    text = str(value).strip() if value is not None else ""
    return text or None


def about(code) -> Code | None:
    return CODES.get(code_of(code) or "")


def reason(code) -> str | None:
    """The code in words for staff; None without a code."""
    code = code_of(code)
    if code is None:
        return None
    known = CODES.get(code)
    return known.reason if known else f"Twilio error {code}"


def permanent_on_delivery(code) -> bool:
    known = about(code)
    return bool(known and known.permanent_on_delivery)


def unsubscribed(code) -> bool:
    known = about(code)
    return bool(known and known.unsubscribed)


# Twilio's message statuses in the order they can happen (a report below the row's rank changes
# nothing: they arrive out of order at times), and where each leaves the message.
STATUSES: dict[str, tuple[int, str]] = {
    "accepted": (0, ACCEPTED), "scheduled": (0, ACCEPTED), "queued": (1, ACCEPTED), "sending": (2, ACCEPTED),
    "sent": (3, SENT_STATE),
    "delivered": (4, DELIVERED_STATE), "undelivered": (4, UNDELIVERED_STATE), "failed": (4, FAILED_STATE),
    "canceled": (4, UNDELIVERED_STATE),
    "read": (5, READ_STATE),  # WhatsApp
}
RANKS: dict[str, int] = {status: rank for status, (rank, _) in STATUSES.items()}
FINAL = frozenset({"delivered", "read", "undelivered", "failed", "canceled"})
