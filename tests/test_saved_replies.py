"""Saved replies: admins edit them per language, the inbox and the patient page offer them
filled in for the patient (their own clock times), and a text started from the patient's page goes
the way an inbox reply goes (opt-out refused, quiet hours held, one row per form)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from reminders.models import AuditEntry, OutboxMessage, SavedReply
from reminders.models.outbox import Kind
from reminders.web.staff.saved_reply_filling import offered_replies
from tests.fixtures.staff import add_inbound, add_patient, add_visit, csrf_token, post_form, signed_in

NOON_NY = datetime(2026, 11, 2, 17, 0, tzinfo=timezone.utc)  # Monday 12:00 PM in New York
LATE_NY = datetime(2026, 11, 3, 3, 30, tzinfo=timezone.utc)  # 10:30 PM in New York
VISIT = datetime(2026, 11, 4, 14, 30, tzinfo=timezone.utc)  # Wednesday 9:30 AM in New York


@pytest.fixture
def clock(clock):
    """The app's clock at Monday noon in New York."""
    clock.set(NOON_NY)
    return clock


@pytest.fixture
def ana(session):
    """A Spanish-reading patient with a visit on Wednesday at 9:30 AM."""
    patient = add_patient(session, "p-ana", "Ana", "Ruiz", "+12025550150", None, channel="sms")
    patient.language = "es"
    session.commit()
    add_visit(session, patient, "ana-1", VISIT)
    return patient


@pytest.fixture
def admin(app, sessions):
    return signed_in(app, sessions, "admin@clinic.test", "admin")


def outbox(session) -> list[OutboxMessage]:
    session.expire_all()
    return session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()


def test_the_four_built_in_replies_are_seeded_in_english_and_spanish_with_clock_times(session):
    replies = session.scalars(select(SavedReply).order_by(SavedReply.language, SavedReply.position)).all()
    assert [(r.language, r.title) for r in replies] == [
        ("en", "Ride home"), ("en", "Fasting"), ("en", "Reschedule"), ("en", "Call us"),
        ("es", "Transporte a casa"), ("es", "Ayuno"), ("es", "Reprogramar"), ("es", "Llámenos")]
    fasting = next(r for r in replies if r.title == "Fasting")
    assert "visit.eat_until" in fasting.body and "visit.clear_liquids_until" in fasting.body


def test_a_spanish_patient_is_offered_the_spanish_replies_with_their_own_clock_times(session, settings, ana):
    offered = {r.title: r for r in offered_replies(session, settings, ana, NOON_NY)}
    assert list(offered) == ["Transporte a casa", "Ayuno", "Reprogramar", "Llámenos"]
    fasting = offered["Ayuno"].text
    # 6 h and 2 h before 9:30 AM: the patient's own clock times, no "6 horas".
    assert "miércoles 4 de noviembre a las 9:30 a. m." in fasting
    assert "no coma nada después de las 3:30 a. m." in fasting
    assert "hasta las 7:30 a. m." in fasting and "horas" not in fasting
    assert offered["Reprogramar"].text.startswith("Gracias por avisarnos, Ana.")


def test_without_a_visit_the_replies_still_read_well(session, settings):
    patient = add_patient(session, "p-bo", "Bo", "Lin", "+12025550151", None, channel="sms")
    offered = {r.title: r for r in offered_replies(session, settings, patient, NOON_NY)}
    assert all(not r.problem for r in offered.values())
    assert offered["Fasting"].text.startswith("Please have no food for 6 hours and no drinks for 2 hours")
    assert offered["Reschedule"].text == "Thanks for letting us know, Bo. We will call you today to find a new time."


def test_the_inbox_item_offers_the_patients_replies_filled_in(nurse, session, ana):
    message = add_inbound(session, ana, "¿A qué hora dejo de comer? ¿Puedo tomar té?")
    page = nurse.get(f"/inbox/{message.id}")
    assert page.status_code == 200
    assert "Ayuno" in page.text and "después de las 3:30 a. m." in page.text
    assert "Ride home" not in page.text
    assert "Edit the saved replies" not in page.text  # admins only


def test_an_admin_edits_a_spanish_reply_and_the_change_is_audited(admin, session, settings, ana):
    reply = session.scalar(select(SavedReply).where(SavedReply.title == "Ayuno"))
    body = "Hola {{ patient.first_name }}: no coma después de {{ visit.eat_until }}. Té sin leche hasta {{ visit.clear_liquids_until }}."
    answer = post_form(admin, f"/saved-replies/{reply.id}", {"language": "es", "title": "Ayuno y té", "body": body},
                       token_from=f"/saved-replies/{reply.id}")
    assert answer.status_code == 302
    session.expire_all()
    assert (reply.title, reply.body, reply.updated_by) == ("Ayuno y té", body, "admin@clinic.test")
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "edit_saved_reply"))
    assert entry.target_id == str(reply.id) and entry.detail["language"] == "es"
    listing = admin.get("/saved-replies/")
    assert "Ayuno y té" in listing.text and "saved" in listing.text
    offered = {r.title: r.text for r in offered_replies(session, settings, ana, NOON_NY)}
    assert offered["Ayuno y té"] == "Hola Ana: no coma después de las 3:30 a. m. Té sin leche hasta las 7:30 a. m."


def test_a_reply_with_an_unknown_detail_is_refused_in_plain_words(admin, session):
    answer = post_form(admin, "/saved-replies/new", {"language": "en", "title": "Nickname",
                                                      "body": "Hi {{ patient.nickname }}, see you soon."},
                       token_from="/saved-replies/new")
    assert answer.status_code == 422
    assert "“nickname” is not one of the details a saved reply can use" in answer.text
    assert "dict object" not in answer.text and "jinja" not in answer.text.lower()
    broken = post_form(admin, "/saved-replies/new", {"language": "en", "title": "Broken",
                                                      "body": "Hi\n{% if visit %}see you {{ visit.date }}"},
                       token_from="/saved-replies/new")
    assert broken.status_code == 422 and "Line 2" in broken.text
    assert session.scalar(select(SavedReply).where(SavedReply.title.in_(("Nickname", "Broken")))) is None


def test_preview_shows_the_sample_patient_without_saving(admin, session):
    answer = post_form(admin, "/saved-replies/new", {"language": "en", "title": "Arrive",
                                                      "body": "Please arrive by {{ visit.arrive_at }}.",
                                                      "action": "preview"}, token_from="/saved-replies/new")
    assert answer.status_code == 200 and "Please arrive by 9:15 AM." in answer.text
    assert session.scalar(select(SavedReply).where(SavedReply.title == "Arrive")) is None


def test_an_admin_adds_deletes_and_brings_back_a_reply(admin, session, settings, ana):
    answer = post_form(admin, "/saved-replies/new", {"language": "es", "title": "Estacionamiento",
                                                      "body": "Puede estacionar detrás del edificio."},
                       token_from="/saved-replies/new")
    assert answer.status_code == 302
    added = session.scalar(select(SavedReply).where(SavedReply.title == "Estacionamiento"))
    assert added.position == 5
    assert "Estacionamiento" in [r.title for r in offered_replies(session, settings, ana, NOON_NY)]
    assert post_form(admin, f"/saved-replies/{added.id}/delete", token_from="/saved-replies/").status_code == 302
    session.expire_all()
    assert "Estacionamiento" not in [r.title for r in offered_replies(session, settings, ana, NOON_NY)]
    assert post_form(admin, f"/saved-replies/{added.id}/restore", token_from="/saved-replies/").status_code == 302
    session.expire_all()
    assert "Estacionamiento" in [r.title for r in offered_replies(session, settings, ana, NOON_NY)]
    actions = session.scalars(select(AuditEntry.action).where(AuditEntry.target_type == "saved_reply")).all()
    assert actions == ["add_saved_reply", "delete_saved_reply", "restore_saved_reply"]


def test_only_admins_edit_saved_replies(nurse):
    assert nurse.get("/saved-replies/").status_code == 403
    assert nurse.get("/saved-replies/new").status_code == 403


# --- Starting a text from the patient's page ----------------------------------------------------

def send_text(client, patient, body: str, **extra):
    page = client.get(f"/patients/{patient.id}")
    token = re.search(r'name="token" value="([0-9a-f]+)"', page.text).group(1)
    return client.post(f"/patients/{patient.id}/text", data={"body": body, "token": token,
                                                             "csrf_token": csrf_token(client, "/"), **extra})


def test_a_nurse_starts_a_text_from_the_patient_page(nurse, session, ana):
    page = nurse.get(f"/patients/{ana.id}")
    assert "Send a text" in page.text and "Send text to Ana" in page.text
    assert "después de las 3:30 a. m." in page.text  # the saved replies, filled in for Ana
    answer = send_text(nurse, ana, "Hola Ana, ¿puede llamarnos hoy?")
    assert answer.status_code == 302 and "#send-text" in answer.headers["Location"]
    [row] = outbox(session)
    assert (row.kind, row.rule, row.channel, row.body, row.patient_id) == (
        Kind.REPLY, "staff_text", "sms", "Hola Ana, ¿puede llamarnos hoy?", ana.id)
    assert row.due_at == NOON_NY
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "start_text"))
    assert entry.target_id == str(ana.id) and entry.detail["outbox_id"] == row.id
    shown = nurse.get(answer.headers["Location"])
    assert "Text to Ana" in shown.text and "Text from the clinic" in shown.text


def test_the_same_form_sent_twice_plans_one_text(nurse, session, ana):
    page = nurse.get(f"/patients/{ana.id}")
    token = re.search(r'name="token" value="([0-9a-f]+)"', page.text).group(1)
    for _ in range(2):
        nurse.post(f"/patients/{ana.id}/text", data={"body": "Hola", "token": token,
                                                     "csrf_token": csrf_token(nurse, "/")})
    assert len(outbox(session)) == 1


def test_in_quiet_hours_the_text_waits_and_says_until_when(nurse, session, ana, clock):
    clock.set(LATE_NY)
    page = nurse.get(f"/patients/{ana.id}")
    assert "It is quiet hours for Ana" in page.text and "Urgent: send now" in page.text
    answer = send_text(nurse, ana, "Hola Ana")
    [row] = outbox(session)
    assert row.due_at == datetime(2026, 11, 3, 13, 0, tzinfo=timezone.utc)  # 8:00 AM in New York
    shown = nurse.get(answer.headers["Location"])
    assert "the text goes at" in shown.text and "8:00 AM" in shown.text


def test_an_opted_out_patient_cannot_be_texted_and_the_page_says_why(nurse, session, ana):
    ana.sms_opted_out, ana.opt_out_text = True, "STOP"
    session.commit()
    page = nurse.get(f"/patients/{ana.id}")
    assert "Ana has opted out of texts" in page.text and "Send text to Ana" not in page.text
    answer = nurse.post(f"/patients/{ana.id}/text", data={"body": "Hola", "token": "ab" * 16,
                                                          "csrf_token": csrf_token(nurse, "/")})
    assert answer.status_code == 302 and outbox(session) == []
    assert "was not sent" in nurse.get(answer.headers["Location"]).text


def test_an_empty_text_is_refused_and_what_was_typed_is_kept(nurse, session, ana):
    answer = send_text(nurse, ana, "   ")
    page = nurse.get(answer.headers["Location"])
    assert "Write the text first." in page.text and outbox(session) == []


def test_a_patient_not_yet_welcomed_gets_the_welcome_text_first(nurse, session, ana):
    from reminders.outbox import OutboxRow, plan
    from reminders.outbox.welcome import WELCOME_RULE, welcome_key

    later = NOON_NY + timedelta(hours=20)  # planned with tomorrow's reminder, not yet due
    [welcome_id] = plan(session, [OutboxRow(dedupe_key=welcome_key(ana), kind=Kind.WELCOME, rule=WELCOME_RULE,
                                            channel="sms", planned_for=later, due_at=later, patient_id=ana.id)],
                        NOON_NY)
    session.commit()
    send_text(nurse, ana, "Hola Ana, ¿puede llamarnos hoy?")
    welcome, text = outbox(session)
    assert welcome.id == welcome_id and text.rule == "staff_text"
    assert welcome.status == text.status == "sent"
    assert welcome.sent_at <= text.sent_at
