"""Every text template, in every language, for short and long real-looking patients: within the
promise in docs/messages.md (two segments in the text's encoding: 306 characters in GSM-7, or 5 UCS-2 segments,
335 characters, when an accent GSM-7 lacks makes it UCS-2), and no leftovers a patient would stumble on ("the The", hour arithmetic, "None").

The templates are found by globbing templates/*.sms.j2 and templates/<language>/*.sms.j2, so a
template added later is checked without touching this file.
"""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from reminders.config import Settings
from reminders.rendering import (
    PART_BREAK, SMS_SEGMENTS, TemplateStore, message_context, render, sample_context, text_parts,
)
from reminders.text_segments import sms_length

TEMPLATES = Settings().templates_dir
STORE = TemplateStore(TEMPLATES)
SMS_TEMPLATES = sorted(
    str(path.relative_to(TEMPLATES))
    for path in [*TEMPLATES.glob("*.sms.j2"), *TEMPLATES.glob("*/*.sms.j2")]
)
# Texts allowed over two segments, with the reason (none today).
KNOWN_LONG: dict[str, str] = {}
# A medical emergency's answer may take three: 911, Poison Control for an overdose, and 988 must
# all be there, and none is dropped to save a segment.
SEGMENTS_ALLOWED = {"reply_emergency.sms.j2": 3, "es/reply_emergency.sms.j2": 3}


def patient(**fields):
    values = dict(first_name="Sam", last_name="Lee", language="en", email=None, phone="+12025550143",
                  timezone="America/Chicago", medications_to_hold="", preferred_channel="sms")
    values.update(fields)
    person = SimpleNamespace(**values)
    person.channels = lambda: {"sms", "email"} if person.email and person.preferred_channel == "both" else {"sms"}
    return person


def visit(when: datetime, **fields):
    values = dict(starts_at=when, location="", kind="induction", number_in_course=1, duration_minutes=60)
    values.update(fields)
    return SimpleNamespace(**values)


SHORT = (Settings(clinic_name="Calm Clinic", clinic_phone="+1 555 010 0100"),
         patient(first_name="Jo"),
         visit(datetime(2026, 3, 3, 9, 30, tzinfo=ZoneInfo("America/Chicago"))))
LONG_CLINIC = Settings(clinic_name="Blue Ridge Infusion & Wellness", clinic_phone="+1 (540) 555-0148",
                       clinic_address="Medical Arts Building, 1200 Jefferson Park Avenue, Suite 240B, Charlottesville")
LONG_PATIENT = dict(first_name="Maria Guadalupe", last_name="de los Santos Villanueva", email="maria@example.org",
                    preferred_channel="both", timezone="America/New_York")
LONG_VISIT = visit(datetime(2026, 9, 30, 7, 30, tzinfo=ZoneInfo("America/New_York")),
                   location="Medical Arts Building, Suite 240B", number_in_course=8)
SAMPLES = {
    "a short name, no location": SHORT,
    "a long name, clinic and location, a short medications note": (
        LONG_CLINIC, patient(**LONG_PATIENT, medications_to_hold="No lamotrigine the morning of your visit"),
        LONG_VISIT),
    "a long medications note": (
        LONG_CLINIC, patient(**LONG_PATIENT, medications_to_hold="Hold lorazepam and clonazepam for 24 hours before; "
                                                                   "take half your usual dose of lamotrigine"),
        LONG_VISIT),
    "a long medications note, no email": (
        LONG_CLINIC, patient(**{**LONG_PATIENT, "email": None, "preferred_channel": "sms"},
                             medications_to_hold="Hold lorazepam and clonazepam for 24 hours before your visit"),
        LONG_VISIT),
    "rideshare allowed": (Settings(clinic_name="Blue Ridge Infusion & Wellness", rideshare_allowed=True),
                          patient(**LONG_PATIENT), LONG_VISIT),
    "an accented name": (
        LONG_CLINIC, patient(**{**LONG_PATIENT, "first_name": "María Guadalupe", "last_name": "Ramírez Núñez"},
                             medications_to_hold="Sin clonazepam la noche anterior"),
        LONG_VISIT),
    "a pain course (check-ins ask how much it hurts)": (
        LONG_CLINIC, patient(**LONG_PATIENT),
        visit(datetime(2026, 9, 30, 7, 30, tzinfo=ZoneInfo("America/New_York")), kind="maintenance",
              location="Medical Arts Building, Suite 240B",
              course=SimpleNamespace(condition="pain", induction_sessions_planned=6))),
}


def rendered(name: str, sample: str, questionnaire_by_sms: bool = False, keep_break: bool = False) -> str:
    settings, person, appointment = SAMPLES[sample]
    person.language = name.split("/")[0] if "/" in name else "en"
    store = TemplateStore(settings.templates_dir)
    context = message_context(settings, person, appointment, 6)
    if name.split("/")[-1].startswith("reply_"):
        # An answer to the patient's own text also knows what was read in it and when a nurse
        # reads it; the sample's is the longer case (after hours, a weekday named).
        context["answer"] = sample_context(settings, person.language)["answer"]
    if "questionnaire" in name.split("/")[-1]:
        # A questionnaire's link, or (no PUBLIC_BASE_URL) its first question with the answers.
        context["questionnaire"] = {**sample_context(settings, person.language)["questionnaire"],
                                    "by_sms": questionnaire_by_sms}
    return render(store, name, context, keep_break=keep_break)


def texts(name: str, sample: str) -> list[str]:
    """The texts a template goes as: several when it has a break line and does not fit one."""
    if PART_BREAK not in STORE.default_source(name).split("\n"):
        return [rendered(name, sample)]
    return text_parts(rendered(name, sample, keep_break=True))


QUESTIONNAIRE_BY_SMS = [name for name in SMS_TEMPLATES if name.split("/")[-1].startswith("questionnaire")]


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("name", QUESTIONNAIRE_BY_SMS)
def test_a_question_by_text_with_its_answers_fits_three_segments(name, sample):
    """Without PUBLIC_BASE_URL the first question goes in the text, with every answer spelled out:
    that is allowed a third segment (a link text must fit two, above)."""
    text = rendered(name, sample, questionnaire_by_sms=True)
    length = sms_length(text)
    assert length.fits(3), f"{length.units} {length.encoding} units:\n{text}"
    assert "Not at all" in text or "Ningún día" in text or "Ningun dia" in text


def test_the_glob_finds_both_languages():
    assert "first_induction_72h.sms.j2" in SMS_TEMPLATES and "es/first_induction_72h.sms.j2" in SMS_TEMPLATES
    assert "welcome.sms.j2" in SMS_TEMPLATES and "es/welcome.sms.j2" in SMS_TEMPLATES


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("name", SMS_TEMPLATES)
def test_every_text_fits_two_segments_in_its_encoding(name, sample, request):
    if name in KNOWN_LONG:
        request.applymarker(pytest.mark.xfail(reason=KNOWN_LONG[name], strict=False))
    for text in texts(name, sample):
        length = sms_length(text)
        assert length.fits(SEGMENTS_ALLOWED.get(name, SMS_SEGMENTS)), f"{length.units} {length.encoding} units:\n{text}"


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("name", SMS_TEMPLATES)
def test_every_text_reads_as_words_for_a_patient(name, sample):
    # The prescriber's own words may say "24 hours before"; the template's must not.
    text = rendered(name, sample).replace(SAMPLES[sample][1].medications_to_hold or "{{", "the note")
    for slip in ("the The", "None", "  ", " .", "..", "hours before", "{{", "}}"):
        assert slip not in text, (slip, text)


def test_a_short_medications_note_is_in_the_text():
    text = rendered("induction_24h.sms.j2", "a long name, clinic and location, a short medications note")
    assert "Medications: No lamotrigine the morning of your visit." in text


def test_a_long_medications_note_points_a_patient_with_email_to_it():
    sample = "a long medications note"
    first, *_ = texts("induction_24h.sms.j2", sample)
    assert "Medications: see your email." in " ".join(texts("induction_24h.sms.j2", sample))
    assert "lorazepam" not in " ".join(texts("induction_24h.sms.j2", sample))
    email = render(STORE, "first_induction_72h.email.txt.j2", message_context(*SAMPLES[sample][:2], LONG_VISIT, 6))
    assert "Hold lorazepam and clonazepam" in email


@pytest.mark.parametrize("name", ["first_induction_72h.sms.j2", "first_induction_24h.sms.j2", "induction_24h.sms.j2",
                                  "maintenance_24h.sms.j2", "es/first_induction_72h.sms.j2",
                                  "es/first_induction_24h.sms.j2", "es/induction_24h.sms.j2",
                                  "es/maintenance_24h.sms.j2"])
def test_a_long_medications_note_goes_in_full_in_the_next_text_to_a_patient_without_email(name):
    first, *after = texts(name, "a long medications note, no email")
    assert "lorazepam" not in first and "Medications: see" not in first and "Please call us" not in first
    assert any("Hold lorazepam and clonazepam for 24 hours before your visit." in text for text in after)


def test_spanish_texts_keep_every_accent_and_go_as_ucs2():
    text = rendered("es/first_induction_72h.sms.j2", "a short name, no location")
    assert "infusión" in text and "martes 3 de marzo a las 9:30 a. m." in text
    assert sms_length(text).encoding == "UCS-2"


def test_a_name_with_an_accent_gsm7_lacks_arrives_intact_in_an_english_text_too():
    text = rendered("induction_24h.sms.j2", "an accented name")
    assert "María Guadalupe" in text and sms_length(text).encoding == "UCS-2"


@pytest.mark.parametrize("text, fits", [
    ("a" * 306, True), ("a" * 307, False),  # two GSM-7 segments of 153
    ("é" * 306, True),  # é, ñ, ü, ¿ and ¡ are GSM-7
    ("í" * 335, True), ("í" * 336, False),  # five UCS-2 segments of 67: the same words as two GSM-7 ones
    ("Hola Lucía, " + "a" * 323, True),
])
def test_the_promise_is_two_segments_or_the_ucs2_ones_that_hold_as_much(text, fits):
    assert sms_length(text).fits(SMS_SEGMENTS) is fits


def test_the_docs_state_the_promise_this_file_checks():
    page = (Path(__file__).resolve().parent.parent / "docs" / "messages.md").read_text(encoding="utf-8")
    assert "306" in page and "335" in page and "UCS-2" in page


def test_the_welcome_says_who_how_often_help_stop_and_rates():
    for name in ("welcome.sms.j2", "es/welcome.sms.j2"):
        text = rendered(name, "a long name, clinic and location, a short medications note")
        assert text.startswith("Blue Ridge Infusion & Wellness:")
        assert ("HELP" in text and "STOP" in text) or ("AYUDA" in text and "PARAR" in text)
        assert re.search(r"up to 7 texts per visit|hasta 7 mensajes por cita", text)  # TEXTS_PER_VISIT
        assert "Msg & data rates may apply" in text or "tarifas de mensajes y datos" in text



@pytest.mark.parametrize("budget, english, spanish", [(7, "up to 7 texts per visit", "hasta 7 mensajes por cita"),
                                                    (12, "up to 12 texts per visit", "hasta 12 mensajes por cita")])
def test_the_welcome_quotes_the_texts_per_visit_and_fits_two_segments(budget, english, spanish):
    settings = LONG_CLINIC.model_copy(update={"texts_per_visit": budget})
    for name, promise in (("welcome.sms.j2", english), ("es/welcome.sms.j2", spanish)):
        person = patient(**LONG_PATIENT, language="es" if name.startswith("es/") else "en")
        text = render(TemplateStore(settings.templates_dir), name, message_context(settings, person, LONG_VISIT, 6))
        length = sms_length(text)
        assert promise in text and length.fits(2), f"{length.units}: {text}"

PRIVATE_WORDS = re.compile(
    r"ketamin|esketamin|spravato|depres|ptsd|tept|ocd|toc\b|bipolar|anxi|ansiedad|suicid|psiqui|psychiatr|mental|"
    r"diagn|dolor(?! de cabeza)|pain", re.IGNORECASE)


@pytest.mark.parametrize("name", SMS_TEMPLATES)
def test_no_text_names_a_drug_or_diagnosis_in_either_language(name):
    # The reply templates answer what the patient wrote and may need these words (a crisis answer);
    # every scheduled text must not, since it lands on a lock screen unasked.
    if name.split("/")[-1].startswith("reply_"):
        pytest.skip("answers to the patient's own text")
    text = STORE.default_source(name) + rendered(name, "a short name, no location")
    assert not PRIVATE_WORDS.search(text), PRIVATE_WORDS.search(text)


@pytest.mark.parametrize("name", [n for n in SMS_TEMPLATES if n.split("/")[-1].startswith("checkin_")])
def test_every_checkin_asks_a_pain_course_how_much_it_hurts(name):
    text = rendered(name, "a pain course (check-ins ask how much it hurts)")
    assert ("hurt" in text or "dolid" in text or "duele" in text) and "mood" not in text and "humor" not in text, text
