"""Spanish that a native speaker would send: names and words keep their accents (the text goes as
UCS-2 when it needs to, and is counted so), *usted* in every Spanish template and built-in answer,
and the calendar entry in the patient's language."""
from __future__ import annotations

import re

import pytest
from icalendar import Calendar

from reminders.calendar import visit_words
from reminders.config import Settings
from reminders.inbound import questionnaire_replies, reply_texts
from reminders.pipeline import run_pass
from reminders.text_segments import sms_length
from tests.conftest import at
from tests.helpers import book, outbox, patient

VISIT = "2026-12-10T10:00:00-05:00"
FULL_PREPARATION = "2026-12-07T10:00:00-05:00"  # 72 h before the first infusion
SPANISH = Settings().templates_dir / "es"

# *Tú* forms a clinic's Spanish must not use. "escribe", "llama" and "responde" are also the
# *usted* third person after a pronoun ("le escribe {{ clinic.name }}", "se llama"): only the
# bare imperative counts.
TU_FORMS = re.compile(
    r"\b(tú|tu|tus|te|ti|contigo|puedes|estás|estés|tienes|quieres|necesitas|sientes|piensas|hacerte|"
    r"llámanos|escríbenos|envía|envíanos|marca|avísanos|cuéntanos|dinos)\b"
    r"|(?<!\ble )(?<!\bse )(?<!\bla )(?<!\blo )\b(llama|escribe|responde|contesta|manda)\b",
    re.IGNORECASE)


@pytest.fixture
def providers(configure, settings, twilio_settings, smtp_settings):
    return configure(**twilio_settings, **smtp_settings, PUBLIC_BASE_URL="https://clinic.example.org")


def spanish_patient(session, first_name: str, **booking):
    book(session, starts_at=VISIT, first_name=first_name, **booking)
    person = patient(session)
    person.language = "es"
    session.commit()


@pytest.mark.parametrize("first_name", ["Lucía", "Ramón", "Raúl", "Ángela"])
def test_a_spanish_name_arrives_intact_through_twilio_and_is_counted_as_ucs2(providers, session, fake_twilio,
                                                                             first_name):
    spanish_patient(session, first_name)
    run_pass(providers, at(FULL_PREPARATION))
    body = fake_twilio.messages[0]["body"]
    assert body.startswith(f"Hola {first_name}:") and "infusión" in body
    row = next(r for r in outbox(session, channel="sms") if r.body == body)
    # UCS-2: 70 UTF-16 units in one segment, 67 a segment beyond; the row says what was billed.
    units = len(body.encode("utf-16-le")) // 2
    assert sms_length(body).encoding == "UCS-2"
    assert row.segments == (1 if units <= 70 else -(-units // 67))
    assert sms_length(body).fits(), f"{units} units: {body}"


def test_a_name_gsm7_has_keeps_the_text_in_gsm7(providers, session, fake_twilio):
    book(session, starts_at=VISIT, first_name="José")  # é is in GSM-7; an English text stays GSM-7
    run_pass(providers, at(FULL_PREPARATION))
    body = fake_twilio.messages[0]["body"]
    assert "José" in body
    assert sms_length(body).encoding == "GSM-7"


def test_the_calendar_entry_of_a_spanish_patient_is_in_spanish(providers, session, smtp_server):
    spanish_patient(session, "Lucía", email="lucia@example.org", channel="both")
    run_pass(providers, at(FULL_PREPARATION))
    [mail] = smtp_server.messages
    calendar = next(part for part in mail.message.walk() if part.get_content_type() == "text/calendar")
    event = Calendar.from_ical(calendar.get_content()).walk("VEVENT")[0]
    assert str(event["SUMMARY"]) == f"Cita en {providers.clinic_name}"
    assert str(event["DESCRIPTION"]) == f"Preguntas o cambios: {providers.clinic_phone}"
    assert str(event.walk("VALARM")[0]["DESCRIPTION"]) == f"Cita en {providers.clinic_name}"


def test_the_calendar_words_follow_the_language_and_fall_back_to_english():
    assert visit_words("Calm Clinic", "+1 555 010 0100", "es") == ("Cita en Calm Clinic",
                                                                    "Preguntas o cambios: +1 555 010 0100")
    assert visit_words("Calm Clinic", "+1 555 010 0100", "en")[0] == "Visit at Calm Clinic"
    assert visit_words("Calm Clinic", "+1 555 010 0100", "fr")[0] == "Visit at Calm Clinic"


def _words(source: str) -> str:
    """A template's text without its Jinja code (variable names are not Spanish)."""
    return re.sub(r"{{.*?}}|{%.*?%}|{#.*?#}", " ", source, flags=re.DOTALL)


@pytest.mark.parametrize("name", sorted(p.name for p in SPANISH.glob("*.j2")))
def test_no_spanish_template_uses_tu(name):
    found = TU_FORMS.search(_words((SPANISH / name).read_text()))
    assert found is None, f"{name}: {found.group(0)!r}"


@pytest.mark.parametrize("fallbacks", [reply_texts.FALLBACKS["es"], questionnaire_replies.FALLBACKS["es"]])
def test_the_built_in_spanish_answers_use_usted_too(fallbacks):
    for key, text in fallbacks.items():
        assert TU_FORMS.search(text) is None, (key, text)


@pytest.mark.parametrize("text", ["Llama o escribe al 988", "Si estás en peligro, llama al 911", "marca 2",
                                  "Tu cita es mañana", "¿Puedes confirmar?", "te llamamos"])
def test_the_tu_check_catches_what_it_should(text):
    assert TU_FORMS.search(text)


@pytest.mark.parametrize("text", ["Hola Ana, le escribe Calm Clinic", "Llame o mande un texto al 988", "su cita",
                                  "Responda C para confirmar", "le llamaremos", "Si alguien se llama así"])
def test_the_tu_check_leaves_usted_alone(text):
    assert TU_FORMS.search(text) is None


@pytest.mark.parametrize("name", ["reply_crisis.sms.j2", "reply_questionnaire_crisis.sms.j2",
                                  "reply_follow_up_crisis.sms.j2", "reply_emergency.sms.j2"])
def test_the_crisis_answers_say_how_to_reach_988_in_spanish(name):
    source = (SPANISH / name).read_text()
    assert "marque 2 para español" in source and "{{ clinic.crisis_line }}" in source
