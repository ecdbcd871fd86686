"""Logging set-up. Log lines name outbox ids and rules, never full phone numbers, names or bodies."""
from __future__ import annotations

import logging
import re

PHONE = re.compile(r"\+?\d[\d\s().-]{6,}\d")


def mask_phone(number: str | None) -> str:
    if not number:
        return ""
    digits = re.sub(r"\D", "", number)
    return f"***{digits[-2:]}" if len(digits) > 2 else "***"


class RedactPhones(logging.Filter):
    """A last line of defence: a phone number that slips into a log line is masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if PHONE.search(message):
            record.msg = PHONE.sub(lambda m: mask_phone(m.group()), message)
            record.args = ()
        return True


def configure_logging(level: int = logging.INFO) -> None:
    root = logging.getLogger()
    if any(getattr(h, "_reminders", False) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler()
    handler._reminders = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactPhones())
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("twilio.http_client", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
