"""A message rendered: the clinic's version, or the default file when that version fails (the failure
kept on the store for `flag_failures`); its text tidied for SMS, split where it may be."""
from __future__ import annotations

import logging
import re

from reminders.rendering.budget import RenderLimitExceeded
from reminders.rendering.engine import template_line
from reminders.rendering.splitting import text_parts, without_break
from reminders.rendering.store import TemplateStore
from reminders.text_segments import gsm_safe

log = logging.getLogger(__name__)

_CLOCK_THEN_STOP = re.compile(r"\b([ap]\. m\.)\.")


def render(store: TemplateStore, name: str, context: dict, keep_break: bool = False) -> str:
    """Render a template; when the clinic's own version fails, the default file is used instead.

    A text template's PART_BREAK line is taken out, or with `keep_break` left in for `text_parts`
    to split the text there when it does not fit one text."""
    try:
        text = store.environment.get_template(name).render(**context)
    except Exception as exc:  # noqa: BLE001 - any failure of a staff version falls back
        if not store.fall_back or name not in store.overrides() or store.default_source(name) is None:
            raise
        store.failures[name] = _failure_reason(exc)
        log.error("template %s: the clinic's version failed (%s); the default file was used for this message",
                  name, store.failures[name])
        text = store.default_environment.get_template(name).render(**context)
    text = _CLOCK_THEN_STOP.sub(r"\1", text)  # "a las 9:30 a. m.." -> "a las 9:30 a. m."
    if name.endswith((".subject.j2", ".whatsapp.j2")):
        return _tidy_sms(text)  # an email's subject, a WhatsApp text
    if name.endswith(".sms.j2"):
        text = _tidy_sms(text)
        return text if keep_break else without_break(text)
    return text.strip() + "\n"


def texts_as_sent(store: TemplateStore, name: str, context: dict, may_split: bool) -> list[str]:
    """The texts a text template goes as, the way reminders.sending sends it: split at its break
    line (`text_parts`) when its kind may go as several texts, else whole. The template editor's
    preview uses this, so an admin sees exactly the texts a patient gets."""
    text = render(store, name, context, keep_break=may_split)
    return (text_parts(text) or [text]) if may_split else [text]


def _failure_reason(exc: BaseException) -> str:
    """Line and kind of a failure, without the values it quoted (they may be a patient's)."""
    line = template_line(exc)
    where = f"line {line}: " if line else ""
    if isinstance(exc, RenderLimitExceeded):
        return f"{where}{exc}"
    return f"{where}{type(exc).__name__} while sending"


def _tidy_sms(text: str) -> str:
    """One space between words, no empty lines, GSM-7 punctuation; accents stay (README "Language")."""
    lines = [" ".join(line.split()) for line in text.strip().splitlines()]
    return gsm_safe("\n".join(line for line in lines if line))
