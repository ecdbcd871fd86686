"""Answering a patient from the staff inbox: the reply's outbox row, quiet hours, urgent replies,
opted-out patients, the channel the patient wrote on, and the page that sends it."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from reminders.models import AuditEntry, InboundMessage, OutboxMessage
from reminders.models.outbox import Kind, Status
from reminders.web.staff.inbox import ReplyRefused, plan_staff_reply
from tests.fixtures.staff import add_inbound, add_patient, login, make_user, post_form

NOON_NY = datetime(2026, 11, 2, 17, 0, tzinfo=timezone.utc)  # 12:00 PM in New York
LATE_NY = datetime(2026, 11, 3, 3, 30, tzinfo=timezone.utc)  # 10:30 PM in New York
QUIET_ENDS = datetime(2026, 11, 3, 13, 0, tzinfo=timezone.utc)  # 8:00 AM in New York


@pytest.fixture
def message(session):
    patient = add_patient(session, channel="sms")
    return add_inbound(session, patient, "Can my husband drive me?")


def rows(session) -> list[OutboxMessage]:
    session.expire_all()
    return session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()


def test_a_reply_outside_quiet_hours_is_due_now_on_the_patients_text_channel(session, settings, message):
    planned = plan_staff_reply(session, settings, message, "  Yes, he can drive you.  ", NOON_NY)
    session.commit()
    [row] = rows(session)
    assert (row.id, row.kind, row.rule, row.channel, row.body) == (planned.outbox_id, Kind.REPLY, "staff_reply",
                                                                   "sms", "Yes, he can drive you.")
    assert row.patient_id == message.patient_id and row.to_address is None and row.status == Status.PLANNED
    assert row.planned_for == row.due_at == NOON_NY and planned.now


def test_in_quiet_hours_a_reply_waits_for_their_end_in_the_patients_zone(session, settings, message):
    planned = plan_staff_reply(session, settings, message, "Yes, he can drive you.", LATE_NY)
    session.commit()
    [row] = rows(session)
    assert row.due_at == planned.due_at == QUIET_ENDS and not planned.now
    assert row.planned_for == LATE_NY


def test_an_urgent_reply_confirmed_goes_now_in_quiet_hours(session, settings, message):
    planned = plan_staff_reply(session, settings, message, "Please call 911 now.", LATE_NY, send_now=True)
    session.commit()
    assert rows(session)[0].due_at == LATE_NY and planned.now


def test_an_opted_out_patient_is_refused(session, settings, message):
    message.patient.sms_opted_out = True
    session.commit()
    with pytest.raises(ReplyRefused, match="opted out of texts"):
        plan_staff_reply(session, settings, message, "Hello", NOON_NY, send_now=True)
    assert rows(session) == []


def test_a_held_reply_is_not_sent_when_the_patient_opts_out_before_it_goes(session, settings, message):
    from reminders.pipeline import run_pass

    plan_staff_reply(session, settings, message, "Yes, he can drive you.", LATE_NY)  # waits for 8 AM
    message.patient.sms_opted_out = True  # STOP arrives in the night
    session.commit()
    run_pass(settings, QUIET_ENDS)
    [row] = rows(session)
    assert (row.status, row.status_reason) == (Status.SKIPPED, "patient opted out of texts")


def test_an_unknown_number_and_an_empty_reply_are_refused(session, settings, message):
    with pytest.raises(ReplyRefused, match="Write the reply"):
        plan_staff_reply(session, settings, message, "   ", NOON_NY)
    stranger = add_inbound(session, None, "who is this?")
    with pytest.raises(ReplyRefused, match="not on file"):
        plan_staff_reply(session, settings, stranger, "Hello", NOON_NY)
    assert rows(session) == []


def test_a_reply_to_a_whatsapp_text_goes_by_whatsapp(session, settings):
    patient = add_patient(session, channel="whatsapp")
    text = add_inbound(session, patient, "Do I need to fast?", channel="whatsapp")
    plan_staff_reply(session, settings, text, "No food for 6 hours before.", NOON_NY)
    session.commit()
    assert rows(session)[0].channel == "whatsapp"


def test_the_same_form_sent_twice_plans_one_reply(session, settings, message):
    token = "ab" * 16
    first = plan_staff_reply(session, settings, message, "Yes.", NOON_NY, token=token)
    second = plan_staff_reply(session, settings, message, "Yes.", NOON_NY, token=token)
    session.commit()
    assert first.outbox_id is not None and second.outbox_id is None and len(rows(session)) == 1


# --- Through the page -----------------------------------------------------------------------

def staff_client(app, sessions):
    make_user(sessions, "staff@clinic.test", "staff")
    client = app.test_client()
    assert login(client, "staff@clinic.test").status_code == 302
    return client


@pytest.fixture
def twilio_app(configure, settings, twilio_settings):
    from reminders.web import create_app

    configured = configure(**twilio_settings)
    return create_app(configured, {"TESTING": True, "CLOCK": lambda: NOON_NY})


def test_a_reply_from_the_page_reaches_twilio_once_and_shows_in_the_thread(twilio_app, sessions, session, message,
                                                                           fake_twilio):
    client = staff_client(twilio_app, sessions)
    page = client.get(f"/inbox/{message.id}")
    assert page.status_code == 200 and "Can my husband drive me?" in page.text and "Ride home" in page.text
    path = f"/inbox/{message.id}/reply"
    data = {"body": "Yes, your husband can drive you.", "token": "cd" * 16}
    answer = post_form(client, path, data, token_from=f"/inbox/{message.id}")
    assert answer.status_code == 302
    post_form(client, path, data, token_from=f"/inbox/{message.id}")  # a second click
    [sms] = fake_twilio.messages
    assert sms["to"] == "+12025550143" and sms["body"] == "Yes, your husband can drive you."
    [row] = rows(session)
    assert row.kind == Kind.REPLY and row.status in (Status.SENT, Status.DELIVERED)
    thread = client.get(f"/inbox/{message.id}").text
    assert thread.index("Can my husband drive me?") < thread.index("Yes, your husband can drive you.")
    assert "Yes, your husband can drive you." in client.get(f"/patients/{message.patient_id}").text
    assert session.scalars(select(AuditEntry).where(AuditEntry.action == "inbox_reply")).all()


def test_the_page_refuses_an_opted_out_patient_beside_the_box(twilio_app, sessions, session, message, fake_twilio):
    client = staff_client(twilio_app, sessions)
    message.patient.sms_opted_out = True
    session.commit()
    page = client.get(f"/inbox/{message.id}").text
    assert "opted out of texts" in page and 'name="body"' not in page
    answer = post_form(client, f"/inbox/{message.id}/reply", {"body": "Hello"}, token_from=f"/inbox/{message.id}")
    assert answer.status_code == 422 and "opted out of texts" in answer.text
    assert fake_twilio.messages == [] and rows(session) == []


def test_assign_to_me_and_a_note_of_what_was_done(twilio_app, sessions, session, message):
    client = staff_client(twilio_app, sessions)
    post_form(client, f"/inbox/{message.id}/assign", {"from": "item"}, token_from=f"/inbox/{message.id}")
    post_form(client, f"/inbox/{message.id}/note", {"done_note": "Called her: husband drives.", "and_done": "yes"},
              token_from=f"/inbox/{message.id}")
    session.expire_all()
    saved = session.get(InboundMessage, message.id)
    assert saved.assigned_to == "staff@clinic.test" and saved.done_note == "Called her: husband drives."
    assert saved.done_at is not None
    assert "Called her: husband drives." in client.get("/inbox/").text


# --- The patient page for a nurse -----------------------------------------------------------

def test_patient_page_pins_crises_and_red_flags_and_folds_planned_messages(twilio_app, sessions, session):
    from datetime import timedelta

    from reminders.models import utcnow
    from tests.fixtures.staff import add_checkin, add_escalation, add_outbox, add_visit

    now = utcnow()
    patient = add_patient(session, channel="sms")
    visit = add_visit(session, patient, "v1", now - timedelta(days=3), status="completed")
    add_outbox(session, patient, visit, "checkin_weekly_1", "sms", "planned", now + timedelta(days=4), kind="checkin")
    add_outbox(session, patient, visit, "induction_24h", "sms", "delivered", now - timedelta(days=4),
               body="Hi Maya, a reminder")
    add_checkin(session, patient, now - timedelta(days=2), 6, "a bit dizzy in the evening", visit)
    add_inbound(session, patient, "my BP is 170/105", priority=1, flag_reason="a high blood pressure")
    add_escalation(session, patient, "i cant do this anymore", status="acknowledged", acknowledged_by="nurse@clinic.test",
                   acknowledged_at=now, ack_note="Called her, safe at home.")
    client = staff_client(twilio_app, sessions)
    text = client.get(f"/patients/{patient.id}").text
    pinned = text.index("Crises and red flags")
    assert pinned < text.index("i cant do this anymore") < text.index("Check-in answers and side effects")
    assert "Resolved by nurse@clinic.test" in text and "Called her, safe at home." in text
    assert pinned < text.index("my BP is 170/105") < text.index("Check-in answers and side effects")
    assert text.index("Hi Maya, a reminder") < text.index("<details class=\"planned-messages\"")
    assert text.index("<details class=\"planned-messages\"") < text.index("Weekly check-in (week 1)")
    assert "Mood 6 of 10" in text and "a bit dizzy in the evening" in text
    assert "(202) 555-0143" in text and 'href="tel:+12025550143"' in text
    for internal in ("checkin_weekly_1", "checkin answer", ".j2", "Rule:", "crisis_language"):
        assert internal not in text


def test_in_quiet_hours_the_page_holds_a_reply_unless_it_is_marked_urgent(configure, settings, twilio_settings,
                                                                          sessions, session, message, fake_twilio):
    from reminders.web import create_app

    app = create_app(configure(**twilio_settings), {"TESTING": True, "CLOCK": lambda: LATE_NY})
    client = staff_client(app, sessions)
    page = client.get(f"/inbox/{message.id}").text
    assert "It is quiet hours for Maya (10:30 PM EST)" in page and "waits until 8:00 AM EST" in page
    assert "Urgent: send now, during quiet hours" in page
    held = post_form(client, f"/inbox/{message.id}/reply", {"body": "See you tomorrow."},
                     token_from=f"/inbox/{message.id}", follow_redirects=True)
    assert "the reply goes at Tue Nov 3, 2026, 8:00 AM EST" in held.text
    assert fake_twilio.messages == []
    post_form(client, f"/inbox/{message.id}/reply", {"body": "Please call 911 now.", "send_now": "yes"},
              token_from=f"/inbox/{message.id}")
    assert [m["body"] for m in fake_twilio.messages] == ["Please call 911 now."]
    statuses = {row.body: (row.status, row.due_at) for row in rows(session)}
    assert statuses["See you tomorrow."] == (Status.PLANNED, QUIET_ENDS)


def test_an_item_from_an_unknown_number_offers_the_call_not_a_text(twilio_app, sessions, session):
    stranger = add_inbound(session, None, "hi who is this?", classification="unknown_number")
    client = staff_client(twilio_app, sessions)
    page = client.get(f"/inbox/{stranger.id}").text
    assert "From a number not on file" in page and 'href="tel:+12025550111"' in page and "(202) 555-0111" in page
    assert "not on file as a patient" in page and 'name="body"' not in page
    assert "hi who is this?" in page.split("Conversation")[1]
    assert client.get("/inbox/424242").status_code == 404
