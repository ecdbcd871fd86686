"""The default texts: what a patient's phone shows, what it costs, and that templates stay safe."""
from __future__ import annotations

import re

import pytest

from reminders.channel_specs import template_suffixes
from reminders.config import Settings
from reminders.rendering import TemplateStore, render, sample_context, text_parts, validate
from reminders.text_segments import gsm_safe, sms_length
from reminders.timing.rules import RuleSettings, rules_by_name

SETTINGS = Settings(clinic_name="The Infusion Clinic")
STORE = TemplateStore(SETTINGS.templates_dir)
CONTEXT = sample_context(SETTINGS)
SMS_TEMPLATES = [name for name in STORE.default_names() if name.endswith(".sms.j2")]
# Lock screens show texts: no drug, no diagnosis.
PRIVATE_WORDS = re.compile(
    r"ketamine|esketamine|spravato|depress|ptsd|ocd|bipolar|anxiety|suicid|psychiatr|mental|diagnos|treatment-resistant|pain",
    re.IGNORECASE,
)


# Segment counts with the sample patient and visit: a change that makes a text cost more shows here.
@pytest.mark.parametrize("name, segments", [
    ("welcome.sms.j2", 2),
    # The sample visit is at one of several locations: its address is named, and the medication
    # note follows as a text of its own.
    ("first_induction_72h.sms.j2", (2, 1)),
    ("first_induction_24h.sms.j2", (2, 1)),  # the reminder, then the after-visit cautions
    ("induction_24h.sms.j2", (2, 1)),
    ("maintenance_7d.sms.j2", 1),
    ("maintenance_24h.sms.j2", (2, 1)),
    ("checkin_day_after.sms.j2", 2),
    ("checkin_weekly.sms.j2", 2),
    ("checkin_weekly_b.sms.j2", 2),
    ("checkin_weekly_c.sms.j2", 2),
    ("rebook_nudge.sms.j2", 1),
    ("missed_visit.sms.j2", 2),  # the sample has a next visit booked: the text names it
    ("plan_maintenance.sms.j2", 2),
    ("visit_moved.sms.j2", (2, 1)),
    ("questionnaire.sms.j2", 2),
    ("questionnaire_reminder.sms.j2", 2),
    ("caring_contact.sms.j2", 1),
    ("caring_contact_b.sms.j2", 1),
    ("caring_contact_c.sms.j2", 1),
    ("caring_contact_d.sms.j2", 1),
])
def test_sms_texts_are_gsm7_with_a_known_segment_count(name, segments):
    # A text too long for one goes as several (text_parts): each is counted.
    parts = text_parts(render(STORE, name, CONTEXT, keep_break=True))
    assert all(sms_length(part).encoding == "GSM-7" for part in parts)
    assert tuple(sms_length(part).segments for part in parts) == (segments if isinstance(segments, tuple) else (segments,))


def test_every_sms_template_is_counted_above():
    counted = {"welcome", "first_induction_72h", "first_induction_24h", "induction_24h", "maintenance_7d",
               "maintenance_24h", "checkin_day_after", "checkin_weekly", "checkin_weekly_b", "checkin_weekly_c",
               "rebook_nudge", "visit_moved", "missed_visit", "plan_maintenance", "questionnaire",
               "questionnaire_reminder", "caring_contact", "caring_contact_b", "caring_contact_c", "caring_contact_d"}
    assert {name.removesuffix(".sms.j2") for name in SMS_TEMPLATES if not name.startswith(("reply_", "staff_"))} == counted


@pytest.mark.parametrize("name", SMS_TEMPLATES)
def test_sms_texts_name_no_drug_or_diagnosis(name):
    text = STORE.default_source(name) + render(STORE, name, CONTEXT)
    assert not PRIVATE_WORDS.search(text), PRIVATE_WORDS.search(text)


def test_every_rule_has_a_template_for_each_channel_it_can_use():
    for rule in rules_by_name(RuleSettings()).values():
        needed = ["sms"] if rule.strict_channels else ["sms", "subject", "text"]
        for part in needed:
            assert STORE.exists(rule.template + template_suffixes()[part]), (rule.name, part)


def test_every_default_template_renders_with_strict_undefined():
    for name in STORE.default_names():
        assert validate(STORE, name, STORE.default_source(name), CONTEXT) is None, name


def test_first_infusion_email_carries_the_whole_preparation_list():
    text = render(STORE, "first_induction_72h.email.txt.j2", CONTEXT)
    for item in ("nothing to eat after 3:30 AM", "Clear liquids (water, black coffee or tea without milk, clear juice "
                 "without pulp) are fine until 7:30 AM", "Medications: No lamotrigine the morning of the visit.",
                 "including blood pressure medicine", "Please arrive by 9:15 AM", "done around 11:15 AM",
                 "an adult you know must take you home", "No driving, cycling or machinery until the next morning",
                 "No alcohol or cannabis for 24 hours", "comfortable clothes", "list of all your current medications"):
        assert item in text, item
    assert "hours before" not in text  # clock times, not arithmetic


def test_html_email_escapes_what_it_prints():
    context = {**CONTEXT, "patient": {**CONTEXT["patient"], "first_name": "<script>x</script>",
                                      "medications_to_hold": "<b>none</b>"}}
    html = render(STORE, "first_induction_72h.email.html.j2", context)
    assert "<script>x" not in html and "&lt;script&gt;" in html and "&lt;b&gt;none" in html


def test_an_undefined_variable_is_refused_with_its_line():
    problem = validate(STORE, "x.sms.j2", "Hi {{ patient.first_name }}\nyour visit is {{ visit.dat }}", CONTEXT)
    assert problem is not None and problem.line == 2 and "dat" in problem.reason


def test_a_syntax_error_is_refused_with_its_line():
    problem = validate(STORE, "x.sms.j2", "line one\n{% if visit.is_first %}\nno end", CONTEXT)
    assert problem is not None and problem.line == 3


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ patient.__class__ }}{{ self._TemplateReference__context }}",
    "{{ lipsum.__globals__['os'] }}",
])
def test_the_sandbox_keeps_templates_away_from_python_internals(source):
    assert validate(STORE, "x.sms.j2", source, CONTEXT) is not None


def test_copy_pasted_curly_quotes_do_not_force_ucs2():
    assert sms_length(gsm_safe("It\u2019s \u201cfine\u201d \u2014 see you")).encoding == "GSM-7"


@pytest.mark.parametrize("text, encoding, segments", [
    ("", "GSM-7", 0), ("a" * 160, "GSM-7", 1), ("a" * 161, "GSM-7", 2), ("a" * 306, "GSM-7", 2), ("a" * 307, "GSM-7", 3),
    ("[" * 80, "GSM-7", 1), ("[" * 81, "GSM-7", 2), ("é" * 160, "GSM-7", 1),
    ("ç" * 70, "UCS-2", 1), ("ç" * 71, "UCS-2", 2), ("😀" * 35, "UCS-2", 1), ("😀" * 36, "UCS-2", 2),
])
def test_segment_counting(text, encoding, segments):
    length = sms_length(text)
    assert (length.encoding, length.segments) == (encoding, segments)


# The answers to a questionnaire by SMS (reminders.inbound.questionnaire_replies), with the sample item.
# Spanish ones keep their accents and go as UCS-2 (the sample's item is the English one: GSM-7).
@pytest.mark.parametrize("name, segments", [
    # The next question's text first confirms the answer it took ("2 for question 1, thank you.").
    ("reply_questionnaire_next.sms.j2", 2), ("es/reply_questionnaire_next.sms.j2", 2),
    ("reply_questionnaire_reask.sms.j2", 2), ("es/reply_questionnaire_reask.sms.j2", ("UCS-2", 3)),
    ("reply_questionnaire_done.sms.j2", 1), ("es/reply_questionnaire_done.sms.j2", ("UCS-2", 2)),
    ("reply_questionnaire_more.sms.j2", 2), ("es/reply_questionnaire_more.sms.j2", ("UCS-2", 4)),
    ("reply_questionnaire_crisis.sms.j2", 2), ("es/reply_questionnaire_crisis.sms.j2", ("UCS-2", 4)),
])
def test_questionnaire_answers_have_a_known_encoding_and_segment_count(name, segments):
    language = "es" if name.startswith("es/") else "en"
    length = sms_length(render(STORE, name, sample_context(SETTINGS, language)))
    expected = segments if isinstance(segments, tuple) else ("GSM-7", segments)
    assert (length.encoding, length.segments) == expected and length.fits(2)


def test_every_item_asked_by_sms_fits_in_two_segments_but_the_longest_pcl5_item():
    from reminders.measures.questionnaires import question_words
    from reminders.scales import all_scales

    three = set()
    for language, prefix in (("en", ""), ("es", "es/")):
        for scale in all_scales().values():
            for item in scale.items:
                context = sample_context(SETTINGS, language)
                context["questionnaire"] = {"question": question_words(scale, item.number, language), "questions": 0,
                                            "passed_on": False}
                for name in ("next", "reask"):
                    length = sms_length(render(STORE, f"{prefix}reply_questionnaire_{name}.sms.j2", context))
                    assert length.fits(3)
                    if not length.fits(2):
                        three.add((language, name, scale.key, item.number))
    # PCL-5 item 9's published wording alone is long; the re-ask adds its options to it. (The Spanish
    # re-ask goes as UCS-2 and fits the five segments that hold as much as two GSM-7 ones.)
    assert three == {("en", "next", "pcl5", 9), ("en", "reask", "pcl5", 9)}
