"""Questions the service can answer by itself, from the visit it holds. Pure: no I/O, no clock.

`direct_answer(text, language=..., visit=..., settings=...)` recognises, in English and Spanish
(typos, shorthand and doubled letters tolerated), a patient's question about:

- when to stop eating ("what time do I stop eating?", "can I eat breakfast before?",
  "¿a qué hora dejo de comer?") or drinking ("can i have coffee in the morning", "¿puedo tomar
  agua?"): one answer with both fasting times;
- what time to arrive ("what time should I get there");
- how long the visit takes ("how long will i be there", "when will I be done");
- driving home and rides ("can I drive myself home after?", "can I take an uber home",
  "¿puedo manejar de regreso?"),

and answers with the patient's own clock times, in their zone and language, from the same
functions the reminders use (reminders.preparation.visit_times), so the answer and the reminder
can never disagree. The answer fits two GSM-7 segments, or the UCS-2 ones that hold as much when
it carries an accent GSM-7 lacks (reminders.text_segments.SmsLength.fits), and ends with when a nurse can be reached, and the
clinic's number.

It answers None, so that the caller passes the text to staff, for:

- anything else, and any text that is not a question (a statement such as "I already ate" is
  for a nurse to read);
- a timed question (eating, drinking, arriving, how long) when no visit is known (or it is over);
  the ride rule needs no visit;
- any text that names a medicine ("can I take my klonopin tonight?"), alcohol, cannabis or
  nicotine, or a symptom or condition (pain, pregnancy, diabetes...): those go to the on-call nurse;
- eating or drinking after the visit ("when can I eat after?");
- a clinic that turned fasting off (FASTING_SOLIDS_HOURS=0): a nurse says what applies;
- anything that would not fit in two segments.

It never raises: an unexpected failure is logged (its type only, never the text) and answers None.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from reminders.inbound.office_hours import WEEKDAYS, clock_time
from reminders.inbound.question_topics import ARRIVE, FASTING, LENGTH, TIMED, topics
from reminders.preparation import Preparation, clock, date_words, visit_times
from reminders.text_segments import gsm_safe, sms_length

__all__ = ["MAX_SEGMENTS", "VisitFacts", "direct_answer", "topics"]

log = logging.getLogger(__name__)

MAX_SEGMENTS = 2  # as every default text (reminders.rendering.SMS_SEGMENTS)


@dataclass(frozen=True)
class VisitFacts:
    """The visit a question is about: the patient's next visit.

    Build it from the visit's Appointment and its Patient with `VisitFacts.from_appointment`:
    `starts_at` (aware) and `duration_minutes` from the appointment, `timezone` from the patient
    (IANA name, as every patient has), `location` from the appointment ("" when none)."""

    starts_at: datetime
    duration_minutes: int
    timezone: str
    location: str = ""

    @classmethod
    def from_appointment(cls, appointment, patient) -> "VisitFacts":
        return cls(starts_at=appointment.starts_at, duration_minutes=appointment.duration_minutes,
                   timezone=patient.timezone, location=getattr(appointment, "location", "") or "")


# ---------------------------------------------------------------- the answer

@dataclass(frozen=True)
class _Visit:
    """A usable visit in words: its clock times, day and place, in the patient's language."""

    times: dict
    when: str
    location: str
    duration_minutes: int


def _language(language) -> str:
    return "es" if isinstance(language, str) and language.strip().lower().startswith("es") else "en"


def _visit_words(visit: VisitFacts | None, prep: Preparation, language: str, now: datetime | None) -> _Visit | None:
    """The visit as the answer says it, or None when there is no usable (future) visit."""
    if not isinstance(visit, VisitFacts):
        return None
    starts_at, duration = visit.starts_at, visit.duration_minutes
    if not isinstance(starts_at, datetime) or starts_at.utcoffset() is None:
        return None
    if isinstance(duration, bool) or not isinstance(duration, int) or not 0 < duration <= 24 * 60:
        return None
    try:
        zone = ZoneInfo(visit.timezone)
        local = starts_at.astimezone(zone)
        if now is not None and now.utcoffset() is not None and now >= starts_at + timedelta(minutes=duration):
            return None  # that visit is over
        times = visit_times(starts_at, duration, visit.timezone, prep, language)
    except (ValueError, TypeError, OverflowError, KeyError, OSError):
        return None  # no such zone, or a date at the end of the calendar
    at = clock(local, language)
    days = None
    if now is not None and now.utcoffset() is not None:
        days = (local.date() - now.astimezone(zone).date()).days
    if language == "es":
        day = {0: "de hoy", 1: "de mañana"}.get(days, f"del {date_words(local, 'es')}")
        when = f"{day} a {at}"
    else:
        day = {0: "today", 1: "tomorrow"}.get(days, f"on {date_words(local, 'en')}")
        when = f"{day} at {at}"
    location = " ".join(str(visit.location or "").split())
    return _Visit(times=times, when=when, location=location, duration_minutes=duration)


def _fasting(visit: _Visit, language: str) -> str | None:
    eat, liquids = visit.times["eat_until"], visit.times["clear_liquids_until"]
    if eat is None:
        return None  # the clinic turned fasting off: a nurse says what applies
    if language == "es":
        text = f"no coma nada sólido ni tome leche después de {eat}"
        if liquids:
            text += f"; líquidos claros (agua, café sin leche, jugo claro) hasta {liquids}"
    else:
        text = f"no solid food or milk after {eat}"
        if liquids:
            text += f"; clear liquids (water, black coffee, clear juice) until {liquids}"
    return text + "."


def _arrive(visit: _Visit, language: str, with_location: bool) -> str:
    where = f" ({visit.location})" if with_location and visit.location else ""
    if language == "es":
        return f"llegue a {visit.times['arrive_at']}{where}."
    return f"please arrive by {visit.times['arrive_at']}{where}."


def _length(visit: _Visit, language: str) -> str:
    minutes, rest, done = visit.duration_minutes, visit.times["recovery_minutes"], visit.times["done_around"]
    if language == "es":
        rest_words = f", más unos {rest} minutos de descanso" if rest else ""
        return f"está programada para {minutes} minutos{rest_words}: calcule terminar alrededor de {done}."
    rest_words = f", plus about {rest} minutes of rest after" if rest else ""
    return f"it is booked for {minutes} minutes{rest_words}: plan to be done around {done}."


def _ride(visit: _Visit | None, prep: Preparation, language: str, with_pickup: bool = True) -> str:
    if language == "es":
        text = "no puede manejar hasta la mañana siguiente; " + (
            "puede volver a casa con un adulto, en taxi o en un servicio de transporte."
            if prep.rideshare_allowed else
            "debe llevarle a casa un adulto de confianza (no un taxi ni transporte a solas).")
        if visit is None:
            return "Después de la infusión " + text
        return text + (f" Saldrá hacia {visit.times['done_around']}." if with_pickup else "")
    text = "you can't drive until the next morning, so " + (
        "an adult, a taxi or a rideshare can take you home."
        if prep.rideshare_allowed else
        "an adult you know must take you home (not a taxi or rideshare on your own).")
    if visit is None:
        return "After your infusion " + text
    return text + (f" Plan your ride for about {visit.times['done_around']}." if with_pickup else "")


_DAY_ABBREVIATIONS = {"mon": "Mon", "tue": "Tue", "wed": "Wed", "thu": "Thu", "fri": "Fri", "sat": "Sat", "sun": "Sun"}
_DAY_NAMES_ES = {"mon": "lunes", "tue": "martes", "wed": "miércoles", "thu": "jueves", "fri": "viernes",
                 "sat": "sábado", "sun": "domingo"}


def _runs(days: list[str]) -> list[list[str]]:
    """Office days in week order as runs of days in a row: mon-fri, sat -> [[mon..fri], [sat]]."""
    runs: list[list[str]] = []
    for day in (d for d in WEEKDAYS if d in days):
        if runs and WEEKDAYS.index(runs[-1][-1]) == WEEKDAYS.index(day) - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def _bare(spanish_clock: str) -> str:
    """"las 8:00" -> "8:00": "de 8:00 a 17:00", as a sign on a door says it."""
    return spanish_clock.split(" ", 1)[-1]


def _office_hours(settings, language: str) -> str:
    """"Mon-Fri 8 AM-5 PM"; "de lunes a viernes de 8:00 a 17:00"; "" when unknown."""
    try:
        days = [str(d).lower()[:3] for d in settings.office_days]
        start, end = settings.office_hours_start, settings.office_hours_end
        runs = _runs(days)
        if not runs:
            return ""
        if language == "es":
            if len(runs) == 1 and len(runs[0]) == 7:
                day_words = "todos los días"
            elif len(runs) == 1 and len(runs[0]) > 1:
                day_words = f"de {_DAY_NAMES_ES[runs[0][0]]} a {_DAY_NAMES_ES[runs[0][-1]]}"
            elif len(runs) == 1:
                day_words = f"los {_DAY_NAMES_ES[runs[0][0]]}"
            else:
                names = [_DAY_NAMES_ES[d] for d in WEEKDAYS if d in days]
                day_words = ", ".join(names[:-1]) + " y " + names[-1]
            return f"{day_words} de {_bare(clock_time(start, 'es'))} a {_bare(clock_time(end, 'es'))}"
        if len(runs) == 1 and len(runs[0]) == 7:
            day_words = "every day"
        else:
            day_words = ", ".join(_DAY_ABBREVIATIONS[r[0]] + (f"-{_DAY_ABBREVIATIONS[r[-1]]}" if len(r) > 1 else "")
                                  for r in runs)
        return f"{day_words} {clock_time(start)}-{clock_time(end)}"
    except (AttributeError, TypeError, ValueError, KeyError):
        return ""


def _closing(settings, language: str, with_hours: bool) -> str:
    phone = " ".join(str(settings.clinic_phone or "").split())
    hours = _office_hours(settings, language) if with_hours else ""
    if language == "es":
        if not phone:
            return "Otras preguntas: responda a este mensaje y le atenderá enfermería."
        return f"Otras preguntas: llame a enfermería al {phone}" + (f", {hours}." if hours else ".")
    if not phone:
        return "Anything else: reply here and a nurse will help."
    return f"Anything else: a nurse can help at {phone}" + (f", {hours}." if hours else ".")


_CLOCK_THEN_STOP = re.compile(r"\b([ap]\. m\.)\.")  # "hasta las 7:00 a. m.." -> "a. m."


def _compose(found: list[str], visit: _Visit | None, prep: Preparation, language: str, settings,
             with_location: bool, with_hours: bool, with_pickup: bool) -> str | None:
    parts = []
    for topic in found:
        if topic == FASTING:
            part = _fasting(visit, language)
            if part is None:
                return None
        elif topic == ARRIVE:
            part = _arrive(visit, language, with_location)
        elif topic == LENGTH:
            part = _length(visit, language)
        else:  # the pick-up time once, when the visit's length is answered too
            part = _ride(visit, prep, language, with_pickup=with_pickup and LENGTH not in found)
        parts.append(part)
    if visit is not None:
        heading = f"Para su cita {visit.when}:" if language == "es" else f"For your visit {visit.when}:"
        body = heading + " " + " ".join(p[0].upper() + p[1:] if i else p for i, p in enumerate(parts))
    else:
        body = " ".join(p[0].upper() + p[1:] for p in parts)
    text = body + "\n" + _closing(settings, language, with_hours)
    return gsm_safe(_CLOCK_THEN_STOP.sub(r"\1", text))


def _answer(text, language, visit, settings, now) -> str | None:
    found = topics(text)
    if not found:
        return None
    language = _language(language)
    prep = Preparation.from_settings(settings)
    words = _visit_words(visit, prep, language, now)
    if words is None and any(topic in TIMED for topic in found):
        return None  # no visit known: staff answer (they know when it is)
    # The longest answer that fits: the visit's place, then the pick-up time, then the nurse's
    # hours give way (the clock times, the rule and the clinic's number always stay).
    for with_location, with_pickup, with_hours in ((True, True, True), (False, True, True), (False, False, True),
                                                   (False, False, False)):
        answer = _compose(found, words, prep, language, settings, with_location, with_hours, with_pickup)
        if answer is None:
            return None
        if sms_length(answer).fits(MAX_SEGMENTS):
            return answer
    return None  # too long (several questions at once, a very long number): staff answer


def direct_answer(text: str, *, language: str, visit: VisitFacts | None, settings,
                  now: datetime | None = None) -> str | None:
    """The answer to a patient's question about their visit's preparation, or None for staff.

    `language`: the patient's ("en", "es"; anything else is answered in English). `visit`: their
    next visit (None when there is none). `settings`: reminders.config.Settings (the preparation
    numbers, RIDESHARE_ALLOWED, office hours, CLINIC_PHONE). `now` (optional, aware): names the
    day "today" or "tomorrow" instead of its date, and a visit already over counts as none.
    """
    try:
        return _answer(text, language, visit, settings, now)
    except Exception as exc:  # noqa: BLE001 - a question left to staff beats a failed webhook
        log.error("direct_answer: %s; the text goes to staff", type(exc).__name__)
        return None
