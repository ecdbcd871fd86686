"""Issue 21, item 5: the template editor refuses what it should, in plain words, and previews
exactly what a patient gets.

A crisis or emergency answer is never saved without its lifeline (988, 911, Poison Control), in
every language; a text over its segment budget only with an admin's "Send it anyway as N
segments" (audit-logged); errors name the line and the variable meant; the variables listed are
those the message is given when sent; the preview is what the fake Twilio receives.
"""
from __future__ import annotations

import html

from sqlalchemy import select

from reminders.models import AuditEntry, TemplateVersion
from reminders.pipeline import run_pass
from reminders.rendering import TemplateStore, message_context, render, sample_context
from reminders.web.staff import template_checks
from tests.conftest import at
from tests.fixtures.staff import csrf_token, post_form
from tests.fixtures.twoway import PHONE, answer

REMINDER = "induction_24h.sms.j2"
CRISIS = "reply_crisis.sms.j2"
LONG_REMINDER = ("Hi {{ patient.first_name }}, this is {{ clinic.name }}. Your infusion {{ visit.number }} of "
                 "{{ visit.series_length }} is {{ visit.date }} at {{ visit.time }}. Please stop eating at "
                 "{{ visit.eat_until }} and stop clear liquids at {{ visit.clear_liquids_until }}. Arrive "
                 "{{ visit.arrive_at }}, bring a list of your medications and someone to drive you home: no "
                 "driving, cycling or machinery until the next morning, and no big decisions, alcohol or cannabis "
                 "for 24 hours. Reply C to confirm or R to reschedule. Questions: {{ clinic.phone }}.")


def save(client, name: str, source: str, **extra):
    return post_form(client, f"/admin/templates/{name}", {"source": source, **extra},
                     token_from=f"/admin/templates/{name}")


def preview(client, name: str, source: str) -> dict:
    token = csrf_token(client, f"/admin/templates/{name}")
    return client.post(f"/admin/templates/{name}/preview", json={"source": source},
                       headers={"X-CSRFToken": token}).get_json()


def versions(sessions, name: str) -> list[TemplateVersion]:
    with sessions() as session:
        return session.scalars(select(TemplateVersion).where(TemplateVersion.name == name)).all()


def page_text(response) -> str:
    return html.unescape(response.text)


def without(source: str, sentence: str) -> str:
    assert sentence in source
    return source.replace(sentence, "").replace("  ", " ")


# ---------------------------------------------------------------- lifelines

def test_a_crisis_answer_without_the_988_sentence_is_refused_naming_it(admin_client, settings, sessions):
    default = TemplateStore(settings.templates_dir).default_source(CRISIS)
    response = save(admin_client, CRISIS, without(default, "Please call or text {{ clinic.crisis_line }} now to talk "
                                                           "with someone, day or night."))
    assert response.status_code == 422
    told = page_text(response)
    assert "This suicide-risk answer must give the crisis line, 988, and it is missing." in told
    assert "The default says: “Please call or text {{ clinic.crisis_line }} now to talk with someone, day or night.”" in told
    assert "Send it anyway" not in told  # a lifeline is never overridden
    assert versions(sessions, CRISIS) == []
    # Reworded, with the number: saved.
    reworded = ("We're here for you. Call or text {{ clinic.crisis_line }} any time, day or night. In danger? Call "
                "{{ clinic.emergency_number }}. We have told {{ clinic.team }}.")
    assert save(admin_client, CRISIS, reworded).status_code == 302
    assert [v.source for v in versions(sessions, CRISIS)] == [reworded]


def test_the_spanish_crisis_answer_needs_its_lifeline_too(admin_client, settings, sessions):
    name = "es/reply_crisis.sms.j2"
    response = save(admin_client, name, "Lo sentimos. Si está en peligro, llame al {{ clinic.emergency_number }}.")
    assert response.status_code == 422
    told = page_text(response)
    assert "must give the crisis line, 988" in told and "Llame o mande un texto al {{ clinic.crisis_line }}" in told
    assert versions(sessions, name) == []


def test_an_emergency_answer_needs_911_and_poison_control_for_an_overdose(admin_client, sessions):
    name = "reply_emergency.sms.j2"
    no_911 = save(admin_client, name, "Please see a doctor. If you have thoughts of harming yourself, call "
                                      "{{ clinic.crisis_line }}.")
    assert no_911.status_code == 422 and "must give the emergency number, 911" in page_text(no_911)
    no_poison = save(admin_client, name, "Call {{ clinic.emergency_number }} now. Thoughts of harming yourself? Call "
                                         "or text {{ clinic.crisis_line }}.")
    assert no_poison.status_code == 422
    assert "must give Poison Control, 1-800-222-1222" in page_text(no_poison)
    assert "For an overdose or poisoning you can also call Poison Control at 1-800-222-1222." in page_text(no_poison)
    kept = ("Call {{ clinic.emergency_number }} now.{% if answer.poison_control %} Poison Control: 1-800-222-1222."
            "{% endif %} Thoughts of harming yourself? Call or text {{ clinic.crisis_line }}.")
    assert save(admin_client, name, kept).status_code == 302
    follow_up = save(admin_client, "reply_follow_up_emergency.sms.j2", "Thank you, the nurse has your message.")
    assert follow_up.status_code == 422 and "911" in page_text(follow_up)


def test_the_templates_list_says_what_each_answer_must_give(admin_client):
    page = page_text(admin_client.get("/admin/templates/"))
    assert "must give 988 and 911" in page and "must give 911, 988 and 1-800-222-1222" in page


# ---------------------------------------------------------------- the segment budget

def test_a_three_segment_reminder_is_refused_then_saved_with_the_admins_override(admin_client, settings, sessions):
    refused = save(admin_client, REMINDER, LONG_REMINDER)
    assert refused.status_code == 422
    told = page_text(refused)
    assert "This text is 3 segments" in told and "a text keeps to 2" in told and "(---)" in told
    assert 'id="send-anyway"' in told and "Send it anyway as 3 segments" in told
    assert versions(sessions, REMINDER) == []
    # An override for another count is no override for this one.
    assert save(admin_client, REMINDER, LONG_REMINDER, send_anyway="2").status_code == 422
    saved = save(admin_client, REMINDER, LONG_REMINDER, send_anyway="3")
    assert saved.status_code == 302
    assert "it goes as 3 segments" in page_text(admin_client.get(f"/admin/templates/{REMINDER}"))
    [version] = versions(sessions, REMINDER)
    with sessions() as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "save_template"))
    assert entry.actor == "admin@clinic.test" and entry.detail["over_budget_segments"] == 3
    assert entry.detail["version_id"] == version.id


def test_a_reminder_split_by_a_break_line_saves_and_previews_each_text_with_its_meter(admin_client, sessions):
    split = LONG_REMINDER.replace(" Arrive ", "\n---\nArrive ")
    result = preview(admin_client, REMINDER, split)
    assert result["ok"] and result["refusal"] is None
    first, second = result["texts"]
    assert first["text"].endswith("clear liquids at 7:30 AM.") and second["text"].startswith("Arrive ")
    assert (first["sms"]["segments"], second["sms"]["segments"]) == (1, 2)
    assert save(admin_client, REMINDER, split).status_code == 302
    # A part over the budget on its own is named.
    over = preview(admin_client, REMINDER, "x" * 400 + "\n---\nsee you")
    assert over["refusal"]["message"].startswith("Text 1 of 2 is 3 segments") and over["refusal"]["segments"] == 4


def test_a_text_that_goes_whole_is_held_to_its_budget(admin_client, sessions):
    name = "welcome.sms.j2"
    response = save(admin_client, name, "Welcome to {{ clinic.name }}. " + "We look forward to seeing you. " * 12)
    assert response.status_code == 422 and "This text is 3 segments" in page_text(response)
    assert "(---)" not in page_text(response)  # a welcome goes as one text: no break to suggest


# ---------------------------------------------------------------- plain words

def test_errors_are_in_plain_words_naming_the_line_and_the_variable_meant(admin_client, sessions):
    unknown = save(admin_client, REMINDER, "Hi\n{{ clinic.name }} here.\nSee you, {{ patient.nickname }}!")
    told = page_text(unknown)
    assert unknown.status_code == 422
    assert "Line 3: `patient.nickname` is not something this message can use. Did you mean `patient.first_name`?" in told
    assert "dict object" not in told and "undefined" not in told
    never_closed = save(admin_client, REMINDER, "Hi\n{% if visit.is_first %}first time\nsee you")
    assert "Line 2: a `{% if %}` is never closed: end it with `{% endif %}`." in page_text(never_closed)
    json = preview(admin_client, REMINDER, "Hi {{ visit.dat }}")
    assert json["message"] == "Line 1: `visit.dat` is not something this message can use. Did you mean `visit.date`?"
    # A reminder is not given an answer's words: what would fail when sent is refused here.
    answer_words = save(admin_client, REMINDER, "A nurse reads this {{ answer.read_when }}.")
    assert "Line 1: `answer` is not something this message can use." in page_text(answer_words)
    assert versions(sessions, REMINDER) == []


# ---------------------------------------------------------------- the variables list

def test_the_variables_listed_are_those_the_renderer_gives(admin_client, settings, session):
    from tests.helpers import book

    page = page_text(admin_client.get(f"/admin/templates/{REMINDER}"))
    for name in ("visit.eat_until", "visit.clear_liquids_until", "visit.arrive_at", "prep.solids_hours",
                 "prep.fasting", "patient.first_name", "clinic.crisis_line"):
        assert f"<code>{name}</code>" in page, name
    # One source of truth: every name a real send gives a booked patient is listed.
    visit = book(session, starts_at="2026-12-10T10:00:00-05:00")
    real = message_context(settings, visit.patient, visit, 6)
    for name in template_checks.variable_paths({k: v for k, v in real.items() if v is not None}):
        assert f"<code>{name}</code>" in page, name
    welcome = page_text(admin_client.get("/admin/templates/welcome.sms.j2"))
    assert "Some of these messages go without a visit" in welcome


# ---------------------------------------------------------------- the preview is what goes

def test_the_crisis_answer_previewed_is_the_one_a_patient_gets(admin_client, twilio, booked, sessions):
    reworded = ("We're here for you. Call or text {{ clinic.crisis_line }} any time, day or night. In danger? Call "
                "{{ clinic.emergency_number }}. We have told {{ clinic.team }}.")
    shown = preview(admin_client, CRISIS, reworded)
    assert shown["ok"] and shown["refusal"] is None
    assert save(admin_client, CRISIS, reworded).status_code == 302
    assert answer(twilio.sms("i want to end it all tonight", from_=PHONE)) == shown["text"]


def test_a_split_reminder_previewed_is_what_twilio_receives(admin_client, two_way, fake_twilio, booked, sessions):
    name = "first_induction_72h.sms.j2"
    source = ("{{ clinic.name }}: your first infusion is coming up. Please plan to spend the morning with us, and "
              "arrange a ride home: you cannot drive until the next morning. Reply C to confirm.\n---\n"
              "Before the visit: no solid food for {{ prep.solids_hours }} hours and no clear liquids for "
              "{{ prep.clear_liquids_hours }} hours. Wear comfortable clothes and bring a list of your medications. "
              "Questions: call {{ clinic.phone }}.")
    shown = preview(admin_client, name, source)
    assert len(shown["texts"]) == 2 and shown["refusal"] is None
    assert save(admin_client, name, source).status_code == 302
    run_pass(two_way, at("2026-12-07T10:00:00-05:00"))
    received = [m["body"] for m in fake_twilio.messages if m["to"] == PHONE]
    assert received == [t["text"] for t in shown["texts"]]


def test_the_preview_renders_with_the_context_a_send_gives(settings):
    """The preview's sample and a send's context have the same names (rendering.sample_context)."""
    store = TemplateStore(settings.templates_dir)
    context = template_checks.template_context(store, settings, REMINDER)
    assert set(context) == {"patient", "clinic", "prep", "visit"}
    assert render(store, REMINDER, context) == render(store, REMINDER, sample_context(settings))


def test_an_answer_saved_before_the_check_without_988_is_shown_to_admins(admin_client, sessions):
    with sessions() as session:
        session.add(TemplateVersion(name=CRISIS, source="We are sorry. Call {{ clinic.emergency_number }}.",
                                    active=True, created_by="before the check"))
        session.commit()
    page = page_text(admin_client.get("/admin/templates/"))
    assert 'id="templates-without-lifeline"' in page and "the built-in answer goes instead" in page
    editor = page_text(admin_client.get(f"/admin/templates/{CRISIS}"))
    assert "This suicide-risk answer must give the crisis line, 988, and it is missing." in editor
