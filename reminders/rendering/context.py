"""The message context: what a template may use, built for a patient, a visit and the clinic, or
made up (`sample_context`) for previews and checks."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from reminders.channel_specs import EMAIL, text_channels
from reminders.models import Appointment, Patient
from reminders.models.appointments import ACTIVE_STATUSES
from reminders.models.patients import DEFAULT_LANGUAGE
from reminders.models.replies import checkin_kind
from reminders.preparation import Preparation, clock, date_words, visit_times
from reminders.visits.series import series_length as shown_length


def team_name(clinic_name: str) -> str:
    """"the Infusion Clinic team" for "The Infusion Clinic", "the Sunrise Ketamine team" otherwise."""
    name = clinic_name.strip()
    if name[:4].lower() == "the ":
        name = name[4:]
    return f"the {name} team"


def team_name_es(clinic_name: str) -> str:
    """"el equipo de The Infusion Clinic": names stay as the clinic writes them."""
    return f"el equipo de {clinic_name.strip()}"


def clinic_context(settings) -> dict:
    return {
        "name": settings.clinic_name,
        "team": team_name(settings.clinic_name),
        "team_es": team_name_es(settings.clinic_name),
        "phone": settings.clinic_phone,
        "address": settings.clinic_address,
        "crisis_line": settings.crisis_line,
        "emergency_number": settings.emergency_number,
        # How many texts a visit brings at most, as the welcome promises: TEXTS_PER_VISIT, which the
        # planner keeps to (reminders.timing.budget).
        "messages_per_visit": settings.texts_per_visit,
    }


def visit_context(appointment: Appointment, zone: str, series_length: int, language: str = DEFAULT_LANGUAGE,
                  prep: Preparation | None = None) -> dict:
    """The visit as a patient reads it: date and clock times in their zone and language. In
    Spanish every clock time carries its article ("las 9:30 a. m."), so a template writes
    "a {{ visit.time }}" or "hasta {{ visit.clear_liquids_until }}"."""
    local = appointment.starts_at.astimezone(ZoneInfo(zone))
    return {
        "date": date_words(local, language),
        "time": clock(local, language),
        "starts_at": local.isoformat(),
        "location": room_words(appointment),
        "kind": appointment.kind,
        "number": appointment.number_in_course,
        "series_length": shown_length(None, series_length, visits_seen=appointment.number_in_course),
        "is_first": appointment.kind == "induction" and appointment.number_in_course == 1,
        "duration_minutes": appointment.duration_minutes,
        **visit_times(appointment.starts_at, appointment.duration_minutes, zone, prep or Preparation(), language),
        # What a check-in after this visit asks: "mood", or "hurt" for a course treating pain (the
        # word itself stays off lock screens).
        "checkin_asks": "hurt" if checkin_kind(appointment) == "pain" else "mood",
        # Nobody marked it completed (or no-show): a check-in must not say "after your visit".
        "unmarked": getattr(appointment, "status", None) in ACTIVE_STATUSES,
    }


def room_words(appointment: Appointment) -> str:
    """Where in the clinic, as booked ("Suite 200"); nothing when the booking only named the
    location (the texts already say which one)."""
    text = " ".join((appointment.location or "").split())
    place = getattr(appointment, "place", None) if getattr(appointment, "location_id", None) else None
    if place is not None and text.casefold() in (place.code.casefold(), place.name.casefold()):
        return ""
    return text


def patient_context(patient, prep: Preparation) -> dict:
    medications = " ".join((getattr(patient, "medications_to_hold", "") or "").split())
    return {
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "language": getattr(patient, "language", None) or DEFAULT_LANGUAGE,
        # Whether the patient's messages go by email too ("see your email" would be false otherwise).
        "has_email": EMAIL.name in patient.channels() if hasattr(patient, "channels") else bool(getattr(patient, "email", None)),
        # Whether they get our texts (SMS or WhatsApp): "reply C to our text" would be false otherwise.
        "has_text": not getattr(patient, "sms_opted_out", False) and (
            bool(set(patient.channels()) & set(text_channels())) if hasattr(patient, "channels")
            else bool(getattr(patient, "phone", None))),
        # In the prescriber's words; `medications_fit_sms` says whether it is short enough for the
        # first text (a lock screen shows it); a longer one goes after the template's break line:
        # "see your email" for a patient who gets email, in full for one who does not.
        "medications_to_hold": medications,
        "medications_fit_sms": bool(medications) and len(medications) <= prep.sms_medications_max_chars,
        "medications_pointer": True,  # kept for clinics' own template versions that ask for it
    }


def template_language(name: str) -> str:
    """The language a template is written in: its folder ("es/welcome.sms.j2"), else English."""
    return name.split("/", 1)[0] if "/" in name else DEFAULT_LANGUAGE


def message_context(settings, patient: Patient, appointment: Appointment | None, series_length: int,
                    language: str | None = None) -> dict:
    """What a template sees. `language` is that of the template being rendered (dates and clock
    times must match it: a patient whose language has no template gets English words)."""
    prep = Preparation.from_settings(settings)
    language = language or patient.language or DEFAULT_LANGUAGE
    context = {
        "patient": patient_context(patient, prep),
        "clinic": clinic_context(settings),
        "prep": prep.context(),
        "visit": None,
        # "We missed you": the patient's next visit still on, when one is booked (reminders.sending).
        "next_visit": None,
    }
    if appointment is not None:
        context["visit"] = visit_context(appointment, patient.timezone, series_length, language, prep)
        # A clinic with several locations says which one's door to come to (its address).
        context["visit"]["address"] = settings.clinic_address if getattr(appointment, "location_id", None) else ""
    return context


SAMPLE_START = datetime(2026, 3, 3, 14, 30, tzinfo=ZoneInfo("UTC"))  # Tuesday 9:30 AM in New York
SAMPLE_ZONE = "America/New_York"


def sample_context(settings, language: str = DEFAULT_LANGUAGE) -> dict:
    """A made-up patient and visit, for previews and for checking a template before it is saved."""
    prep = Preparation.from_settings(settings)
    local = SAMPLE_START.astimezone(ZoneInfo(SAMPLE_ZONE))
    return {
        "patient": {"first_name": "Alex", "last_name": "Rivera", "language": language, "has_email": True, "has_text": True,
                    "medications_to_hold": "No lamotrigine the morning of the visit",
                    "medications_fit_sms": True, "medications_pointer": True},
        "clinic": clinic_context(settings),
        "prep": prep.context(),
        "visit": {
            "date": date_words(local, language), "time": clock(local, language),
            "starts_at": local.isoformat(),
            "location": "Suite 200", "address": "500 Congress Ave, Austin", "kind": "induction", "number": 3,
            "series_length": 6,
            "is_first": False, "duration_minutes": 60, "checkin_asks": "mood", "unmarked": False,
            **visit_times(SAMPLE_START, 60, SAMPLE_ZONE, prep, language),
        },
        # After a missed visit: the next one booked (None when there is none).
        "next_visit": {"date": date_words(local + timedelta(days=2), language),
                       "time": clock(local + timedelta(days=2), language), "kind": "induction", "number": 3,
                       "series_length": 6, "location": "Suite 200"},
        # Answers to a patient's text: when a nurse reads it ("today", "Monday at 8 AM").
        "answer": {"read_when": "el lunes a las 8:00" if language == "es" else "Monday at 8 AM", "in_office_hours": False, "score": 7, "asks": "mood", "period": "day",
                   "symptoms": True, "poison_control": True, "callback_minutes": 30},
        # A check-in by email (reminders.inbound.checkin_links): the page it is answered on.
        "checkin": {"link": "https://clinic.example.org/c/Xb3kP9qLm2VwR7tYz5nJaQ", "expires": date_words(local, language)},
        # A questionnaire before the visit (reminders.measures): by link, or by SMS one item at a time.
        "questionnaire": {
            "link": "https://clinic.example.org/q/h7Gq2LmXv9RkTz0bYw4sNa", "by_sms": False, "questions": 16,
            "minutes": 3, "expires": date_words(local, language), "started": False,
            # An answer by SMS that also goes to staff (a question with the number): the reply says so.
            "passed_on": False,
            # The answer the next question's text confirms first ("2 for question 1, thank you.").
            "answered": {"value": 2, "number": 1},
            "question": {"stem": "Over the last 2 weeks, how often have you been bothered by any of the following problems?",
                         "text": "Little interest or pleasure in doing things", "number": 1, "of": 9,
                         "options": "0 Not at all, 1 Several days, 2 More than half the days, 3 Nearly every day",
                         "lowest": 0, "highest": 3},
        },
    }
