"""Outages told truthfully: a new patient's welcome outlasts any outage and their other texts
wait for it; failed and expired messages are resent by staff from the patient's page; the live
poll carries the provider banner and a reply's state. Time is injected; the fake Twilio server is
told when to fail. Runs on SQLite and PostgreSQL."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from reminders.models import AuditEntry, InboundMessage, OutboxMessage, Patient
from reminders.outbox.welcome import WAITING_FOR_WELCOME
from reminders.pipeline import run_pass
from reminders.timing.retries import delivery_deadline
from reminders.web import create_app
from tests.conftest import at, both_databases
from tests.fixtures.staff import csrf_token, login, make_user
from tests.fixtures.twoway import Clock
from tests.helpers import book, outbox
from tests.test_batched_sending import channels, is_welcome, sms_settings, texts_by_number  # noqa: F401 - a fixture

settings = both_databases()

VISIT = "2026-12-10T10:00:00-05:00"  # Thursday; the 72 h reminder is due Monday the 7th at 10:00
NY_NINE = "2026-12-07T09:00:00-05:00"
STAFF = "nurse@clinic.test"


def passes(settings, start, end, step=timedelta(minutes=30)):
    now = start
    while now < end:
        run_pass(settings, now, channels=channels(settings))
        now += step


def staff_client(settings, sessions, now):
    clock = Clock(now)
    app = create_app(settings, {"TESTING": True, "CLOCK": clock})
    make_user(sessions, STAFF, "staff")
    client = app.test_client()
    assert login(client, STAFF).status_code == 302
    return client, clock


# ---------------------------------------------------------------- the welcome is never skipped

def test_a_welcome_has_no_deadline():
    planned = at(NY_NINE)
    assert delivery_deadline("welcome", planned, None) is None
    assert delivery_deadline("checkin", planned, None) == planned + timedelta(hours=36)


def test_a_new_patients_welcome_outlasts_a_two_day_outage_and_goes_before_any_other_text(
        sms_settings, session, fake_twilio):
    book(session, starts_at=VISIT, welcomed=False)
    passes(sms_settings, at(NY_NINE) - timedelta(hours=1), at(NY_NINE))  # planned: the welcome at 9:59
    fake_twilio.outage(status=503, code=20503)
    passes(sms_settings, at(NY_NINE), at(NY_NINE) + timedelta(hours=48))  # past the 36 h "too late"
    welcome = outbox(session, rule="welcome")[0]
    assert welcome.status == "planned", welcome.status_reason  # held, never failed
    assert fake_twilio.messages == []

    fake_twilio.recover()
    passes(sms_settings, at(NY_NINE) + timedelta(hours=48), at(VISIT) - timedelta(hours=1))
    assert texts_by_number(fake_twilio)["+12025550143"][0] == "welcome"
    assert outbox(session, rule="welcome")[0].status == "sent"
    assert session.scalar(select(Patient.welcomed_at)) is not None


def test_a_welcome_that_fails_holds_the_patients_reminder_instead_of_sending_it_without_help_stop(
        sms_settings, session, fake_twilio):
    book(session, starts_at=VISIT, welcomed=False)
    due = at("2026-12-09T10:00:00-05:00")  # the 24 h reminder (the 72 h one was booked too late)
    passes(sms_settings, due - timedelta(days=3, hours=1), due - timedelta(days=3))  # plan only
    for row in outbox(session, rule="first_induction_72h"):
        session.delete(row)
    session.commit()
    fake_twilio.fail_next(status=500, code=20500)  # the welcome's try: a provider error worth retrying
    run_pass(sms_settings, due, channels=channels(sms_settings))

    assert fake_twilio.messages == []  # the reminder did not go without the welcome
    [reminder] = outbox(session, rule="first_induction_24h")
    assert reminder.status == "planned" and reminder.status_reason == WAITING_FOR_WELCOME
    assert outbox(session, rule="welcome")[0].status == "planned"  # retrying, not failed

    passes(sms_settings, due + timedelta(minutes=1), due + timedelta(minutes=20), timedelta(minutes=1))
    assert texts_by_number(fake_twilio) == {"+12025550143": ["welcome", "reminder"]}


# ---------------------------------------------------------------- resend from the patient page

def _did_not_go(session, patient, now):
    """A failed welcome, an expired check-in and a failed reminder for a visit already past."""
    past = book(session, starts_at=now - timedelta(days=2), appointment="past", status="completed", welcomed=False)
    rows = {
        "welcome": OutboxMessage(dedupe_key="w", kind="welcome", rule="welcome", channel="sms", patient_id=patient,
                                 planned_for=now - timedelta(days=3), due_at=now - timedelta(days=3),
                                 status="failed", status_reason="provider unavailable until it was too late to be useful"),
        "checkin": OutboxMessage(dedupe_key="c", kind="checkin", rule="checkin_day_after", channel="sms",
                                 patient_id=patient, appointment_id=past.id, planned_for=now - timedelta(days=1),
                                 due_at=now - timedelta(days=1), status="skipped", status_reason="too late to be useful"),
        "reminder": OutboxMessage(dedupe_key="r", kind="reminder", rule="first_induction_24h", channel="sms",
                                  patient_id=patient, appointment_id=past.id, planned_for=now - timedelta(days=3),
                                  due_at=now - timedelta(days=3), status="failed",
                                  status_reason="provider unavailable until the visit"),
    }
    session.add_all(rows.values())
    session.commit()
    return {name: row.id for name, row in rows.items()}


def test_staff_resend_a_failed_welcome_and_an_expired_checkin_in_one_action_but_not_a_past_visits_reminder(
        sms_settings, session, sessions, fake_twilio):
    now = at("2026-12-09T11:00:00-05:00")
    book(session, starts_at=VISIT, welcomed=False)
    patient = session.scalar(select(Patient.id))
    ids = _did_not_go(session, patient, now)
    client, _ = staff_client(sms_settings, sessions, now)

    page = client.get(f"/patients/{patient}").get_data(as_text=True)
    assert "Messages that did not go (3)" in page
    assert "Resend the welcome text to Maya" in page
    assert "Not resent: the visit it was for, " in page and "has passed." in page
    assert "Resend all 2 to Maya" in page
    assert 'data-confirm="Resend 2 messages to Maya Lopez now: the welcome text and the ' in page

    answer = client.post(f"/patients/{patient}/resend", data={
        "outbox_id": [ids["welcome"], ids["checkin"], ids["reminder"]], "csrf_token": csrf_token(client, f"/patients/{patient}")},
        follow_redirects=True)
    text = answer.get_data(as_text=True)
    assert "Resent to Maya: the welcome text and the " in text and "They go now" in text
    texts = [("welcome" if is_welcome(m["body"]) else "other") for m in fake_twilio.messages]
    assert texts[:1] == ["welcome"] and len(texts) == 2  # the welcome first, then the check-in
    assert {r.id: r.status for r in outbox(session) if r.id in ids.values()} == {
        ids["welcome"]: "sent", ids["checkin"]: "sent", ids["reminder"]: "failed"}
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "resend_messages"))
    assert entry.actor == STAFF and sorted(entry.detail["outbox_ids"]) == sorted([ids["welcome"], ids["checkin"]])
    assert "Messages that did not go (1)" in client.get(f"/patients/{patient}").get_data(as_text=True)


def test_resending_in_quiet_hours_waits_for_their_end_and_an_opted_out_patient_gets_no_text(
        sms_settings, session, sessions, fake_twilio):
    night = at("2026-12-09T23:00:00-05:00")
    book(session, starts_at=VISIT, welcomed=False)
    patient = session.scalar(select(Patient.id))
    ids = _did_not_go(session, patient, night)
    client, _ = staff_client(sms_settings, sessions, night)
    page = client.get(f"/patients/{patient}").get_data(as_text=True)
    assert "It is quiet hours for Maya: what you resend goes at 8:00 AM EST." in page
    answer = client.post(f"/patients/{patient}/resend", data={
        "outbox_id": [ids["checkin"]], "csrf_token": csrf_token(client, f"/patients/{patient}")}, follow_redirects=True)
    assert "It is quiet hours for them: it goes at 8:00 AM EST." in answer.get_data(as_text=True)
    [checkin] = [r for r in outbox(session) if r.id == ids["checkin"]]
    assert checkin.status == "planned" and checkin.due_at == at("2026-12-10T08:00:00-05:00")
    assert fake_twilio.messages == []

    session.get(Patient, patient).sms_opted_out = True
    session.commit()
    page = client.get(f"/patients/{patient}").get_data(as_text=True)
    assert "Not resent: Maya opted out of texts (STOP)." in page
    answer = client.post(f"/patients/{patient}/resend", data={
        "outbox_id": [ids["welcome"]], "csrf_token": csrf_token(client, f"/patients/{patient}")}, follow_redirects=True)
    assert "Nothing was resent" in answer.get_data(as_text=True)
    assert [r.status for r in outbox(session) if r.id == ids["welcome"]] == ["failed"]


# ---------------------------------------------------------------- what the live poll carries

def test_the_poll_carries_the_banner_in_plain_words_and_a_replys_state_from_waiting_to_sent(
        sms_settings, session, sessions, fake_twilio):
    now = at("2026-12-09T09:41:00-05:00")
    book(session, starts_at=VISIT)
    patient = session.get(Patient, session.scalar(select(Patient.id)))
    question = InboundMessage(from_number=patient.phone, body="Can my husband drive me?", received_at=now,
                              patient_id=patient.id, classification="free_text", needs_staff=True)
    session.add(question)
    session.commit()
    client, clock = staff_client(sms_settings, sessions, now)
    assert client.get("/live.json").json["providers"] == []
    assert client.get("/live.json?outbox=" + "9" * 40 + ",x").json["outbox"] == {}  # nonsense asks for nothing

    fake_twilio.outage(status=503, code=20503)
    page = client.get(f"/inbox/{question.id}")
    answer = client.post(f"/inbox/{question.id}/reply", data={
        "body": "Yes, he can.", "csrf_token": csrf_token(client, f"/inbox/{question.id}")}, follow_redirects=False)
    assert page.status_code == 200 and answer.status_code == 302 and "reply=" in answer.headers["Location"]
    [reply] = outbox(session, kind="reply")
    # More failures open the breaker (the threshold): the pass's probes keep failing.
    for minute in range(1, 6):
        run_pass(sms_settings, now + timedelta(minutes=minute), channels=channels(sms_settings))
    clock.now = now + timedelta(minutes=6)
    item = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Reply to Maya is waiting to go out: Twilio is not answering right now." in item
    assert "Reply to Maya sent." not in item.split('data-state="waiting"')[1].split(">", 1)[1].split("<")[0]
    live = client.get(f"/live.json?outbox={reply.id}").json
    assert live["outbox"] == {str(reply.id): "waiting"}
    [banner] = live["providers"]
    assert banner["headline"] == "Text messages have not gone out since 9:41 AM."
    assert re.fullmatch(r"\d+ (is|are) waiting and will go automatically when Twilio answers again; "
                        r"nothing needs to be done\.", banner["detail"])
    assert banner["advice"] == "If this lasts past 10:11 AM, call the patients with visits in the next 2 hours."
    assert "Service unavailable" not in repr(live)  # the raw error stays on the page, for admins
    assert "Text messages have not gone out since 9:41 AM." in item

    fake_twilio.recover()
    for minute in range(6, 40):
        run_pass(sms_settings, now + timedelta(minutes=minute), channels=channels(sms_settings))
    clock.now = now + timedelta(minutes=40)
    live = client.get(f"/live.json?outbox={reply.id}").json
    assert live["outbox"] == {str(reply.id): "sent"} and live["providers"] == []
    assert [m["body"] for m in fake_twilio.messages].count("Yes, he can.") == 1
