"""Logging set-up. Log lines name outbox ids and rules, never full phone numbers, names or bodies.

The code itself logs ids, but an exception's text is written by whoever raised it: a database
error quotes the row it could not store, a provider quotes the number it refused, a template
error quotes the value it choked on. So every record is redacted as a whole (message, args,
traceback, stack) on the way out:

- phone numbers and email addresses are masked wherever they appear;
- quoted values and database "Key (...)=(...)" details in exception text are masked;
- the values of the patient (or text) being handled right now, registered with `sensitive()`,
  are masked wherever they appear, quoted or not.

`configure_logging` is used by the CLI (and so `reminders run`, `reminders web`) and by the
Celery worker (through its `setup_logging` signal, see reminders/celery_app.py).
"""
from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterable, Iterator

# A phone number: 7 or more digits (E.164 "+12025550143", US "(202) 555-0143", "202-555-0143",
# "202.555.0143", "+44 (0)20 7946 0958"), one space, dash or dot at most between digits or bracketed
# groups. It stands alone: not inside a word, not a group of a hex id such as a Celery task's UUID
# ("...-9c1f-012345678901]"), not either side of a decimal point ("succeeded in 0.03860012499991781s").
PHONE = re.compile(r"""
    (?<![\w+])                             # not inside a word
    (?:\+|(?<![0-9A-Fa-f]-)(?<!\w\.))      # a +, or not a group of a hex id nor a decimal's fraction
    (?:\(\d{1,5}\)|\d)                     # a digit or a bracketed area code
    (?:[\s.-]?(?:\(\d{1,5}\)|\d)){6,14}    # then more (up to 15 in all)
    (?!\w)(?![.-][0-9A-Fa-f])              # and nothing of the same word after it
""", re.VERBOSE)
EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
# In exception text only: 'quoted' or "quoted" values, and PostgreSQL's DETAIL "Key (col)=(value)".
QUOTED = re.compile(r"'[^'\n]{1,200}'|\"[^\"\n]{1,200}\"")
DB_DETAIL = re.compile(r"\)=\([^)\n]*\)")
MASK = "***"
# What PHONE would otherwise take: decimals (a duration, an epoch time), ISO dates ("2026-12-06" and
# the hour after it in a log timestamp), day.month.year dates, IP addresses. PHONE must match whole.
NOT_A_PHONE = re.compile(r"""
    \+?\d+\.\d+                                       # 0.0386, 1733517871.123
  | \d{4}-\d{2}-\d{2}(?:[ T]\d{2})?                   # 2026-12-06, 2026-12-06 20
  | \d{4}\.\d{2}\.\d{2} | \d{1,2}[.-]\d{1,2}[.-]\d{4}  # 2026.12.06, 06.12.2026, 06-12-2026
  | \d{1,3}(?:\.\d{1,3}){3}                           # 127.0.0.1
""", re.VERBOSE)
MIN_PHONE_DIGITS = 7

# None outside any `sensitive()` block, so that also_sensitive() cannot pile values up in a thread.
_sensitive: ContextVar[tuple[str, ...] | None] = ContextVar("reminders_sensitive", default=None)


def mask_phone(number: str | None) -> str:
    if not number:
        return ""
    digits = re.sub(r"\D", "", number)
    return f"***{digits[-2:]}" if len(digits) > 2 else "***"


@contextmanager
def sensitive(*values: str | None) -> Iterator[None]:
    """Within the block, these values (a patient's names, number, address, a text's body) are masked
    in every log line, wherever they appear."""
    found = [v.strip() for v in values if isinstance(v, str) and len(v.strip()) >= 2]
    token = _sensitive.set((_sensitive.get() or ()) + tuple(found))
    try:
        yield
    finally:
        _sensitive.reset(token)


def also_sensitive(*values: str | None) -> None:
    """Add values to the enclosing `sensitive()` block (they are dropped when it ends)."""
    current = _sensitive.get()
    if current is not None:
        _sensitive.set(current + tuple(v.strip() for v in values if isinstance(v, str) and len(v.strip()) >= 2))


def patient_values(patient) -> tuple[str | None, ...]:
    """What of a patient must never be logged."""
    if patient is None:
        return ()
    return (patient.first_name, patient.last_name, getattr(patient, "full_name", None), patient.phone, patient.email)


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """Phones, emails and the registered values masked."""
    if not text:
        return text
    for value in sorted(_present({*(_sensitive.get() or ()), *extra}, text), key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", MASK, text, flags=re.IGNORECASE)
    text = EMAIL.sub(lambda m: "…@" + m.group().rpartition("@")[2], text)
    return PHONE.sub(_mask_if_phone, text)


def _present(values: Iterable[str], text: str) -> list[str]:
    """The values that may occur in the text. A line rarely names anyone, and each value's pattern
    is new to the regex cache with every patient: the plain look comes first. ASCII only, where
    lower() is exactly the regex's case-insensitive match."""
    lowered = text.lower() if text.isascii() else None
    return [v for v in values if lowered is None or not v.isascii() or v.lower() in lowered]


def _mask_if_phone(match: re.Match) -> str:
    found = match.group()
    if NOT_A_PHONE.fullmatch(found) or sum(c.isdigit() for c in found) < MIN_PHONE_DIGITS:
        return found
    return mask_phone(found)


def redact_exception_text(text: str) -> str:
    """A traceback keeps its frames and exception types; the values quoted in messages go."""
    text = DB_DETAIL.sub(")=(***)", text)
    lines = []
    for line in text.splitlines():
        # Frame lines ("  File ...", code lines) are the program's own text: keep them readable.
        if line.startswith("  File ") or line.startswith("    "):
            lines.append(line)
        else:
            lines.append(QUOTED.sub("'***'", line))
    return redact("\n".join(lines))


def redact_record(record: logging.LogRecord, formatter: logging.Formatter | None = None) -> logging.LogRecord:
    """Rewrite a record in place so that whatever formats it later sees no patient data."""
    if getattr(record, "_redacted", False):
        return record
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string must not lose the line
        message = f"{record.msg!r} (unformattable arguments)"
    record.msg, record.args = redact(message), ()
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = redact_exception_text((formatter or logging.Formatter()).formatException(record.exc_info))
        # The text is kept; the live exception (with its arguments) is not handed to other handlers.
        record.exc_info = None
    elif record.exc_text:
        record.exc_text = redact_exception_text(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._redacted = True  # type: ignore[attr-defined]
    return record


class RedactingFormatter(logging.Formatter):
    """The project's formatter: the whole record, traceback included, comes out redacted."""

    def __init__(self, fmt: str = "%(asctime)s %(levelname)s %(name)s: %(message)s", *args, **kwargs):
        super().__init__(fmt, *args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        redact_record(record, self)
        return super().format(record)


class RedactPhones(logging.Filter):
    """A filter for any handler: the record is redacted (phones, emails, registered values, quoted
    values in tracebacks) before the handler formats it. The name is older than what it does."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


# Libraries that would print patient data: twilio's client dumps request bodies at DEBUG/INFO.
QUIET_LOGGERS = ("twilio.http_client", "twilio", "urllib3", "alembic", "sqlalchemy.engine")


def configure_logging(level: int = logging.INFO) -> None:
    root = logging.getLogger()
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if any(getattr(h, "_reminders", False) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler()
    handler._reminders = True  # type: ignore[attr-defined]
    handler.setFormatter(RedactingFormatter())
    handler.addFilter(RedactPhones())
    root.addHandler(handler)
    root.setLevel(level)
