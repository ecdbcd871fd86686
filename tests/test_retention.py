"""Retention and patients' rights: `reminders purge` blanks old words and keeps the rows, never a
row still pending or an open escalation; a patient's data as JSON; erasure that keeps the audit
row and stops every message."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from reminders.intake.records import PatientRecord
from reminders.intake.upsert import upsert_patient
from reminders.models import (Appointment, AuditEntry, CheckIn, Escalation, InboundMessage, OutboxMessage, Patient,
                              utcnow)
from reminders.pipeline import run_pass
from tests.fixtures.staff import add_patient, add_visit, csrf_token, make_user

ROOT = Path(__file__).resolve().parent.parent
OLD, RECENT = timedelta(days=100), timedelta(days=5)


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reminders.cli", *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


def outbox(session, patient, key: str, status: str, age: timedelta, escalation=None, kind: str = "reminder"):
    when = utcnow() - age
    row = OutboxMessage(dedupe_key=key, patient_id=patient.id, escalation_id=escalation.id if escalation else None,
                        kind=kind, rule="test", channel="sms", planned_for=when, due_at=when, status=status,
                        to_address=patient.phone, body=f"words of {key}", subject=None, created_at=when,
                        sent_at=when if status == "sent" else None)
    session.add(row)
    return row


def inbound(session, patient, body: str, age: timedelta, needs_staff: bool = False, done: bool = True):
    when = utcnow() - age
    row = InboundMessage(from_number=patient.phone, body=body, received_at=when, patient_id=patient.id,
                         needs_staff=needs_staff, done_at=when if done and needs_staff else None,
                         reply_body="Thanks, we got it.")
    session.add(row)
    session.flush()
    return row


def escalation(session, patient, message, status: str, age: timedelta):
    when = utcnow() - age
    row = Escalation(patient_id=patient.id, inbound_message_id=message.id, from_number=patient.phone,
                     reason="crisis_language", text=message.body, status=status, opened_at=when,
                     acknowledged_at=when if status != "open" else None)
    session.add(row)
    session.flush()
    return row


@pytest.fixture
def history(session):
    """A patient with old and recent messages, some of them still pending or behind an open crisis."""
    patient = add_patient(session)
    old_crisis_text = inbound(session, patient, "i want to end it", OLD)
    open_crisis = escalation(session, patient, old_crisis_text, "open", OLD)
    old_closed_text = inbound(session, patient, "feeling low today", OLD)
    escalation(session, patient, old_closed_text, "acknowledged", OLD)
    rows = {
        "old_sent": outbox(session, patient, "old_sent", "sent", OLD),
        "old_planned": outbox(session, patient, "old_planned", "planned", OLD),
        "old_open_alert": outbox(session, patient, "old_open_alert", "sent", OLD, open_crisis, kind="alert"),
        "recent_sent": outbox(session, patient, "recent_sent", "sent", RECENT),
        "old_reply": inbound(session, patient, "7 slept badly", OLD),
        "old_waiting": inbound(session, patient, "please call me about my dose", OLD, needs_staff=True, done=False),
        "recent_reply": inbound(session, patient, "8", RECENT),
        "old_crisis_text": old_crisis_text, "old_closed_text": old_closed_text,
    }
    session.add(CheckIn(patient_id=patient.id, status="answered", score=7, raw_text="7 slept badly",
                        note="slept badly", answered_at=utcnow() - OLD, inbound_message_id=rows["old_reply"].id))
    session.commit()
    return {"patient": patient, **{name: row.id for name, row in rows.items()}}


def words(session, history) -> dict:
    session.expire_all()
    found = {}
    for name, row_id in history.items():
        if name.startswith("old_") or name.startswith("recent_"):
            model = InboundMessage if name in ("old_reply", "old_waiting", "recent_reply", "old_crisis_text",
                                               "old_closed_text") else OutboxMessage
            found[name] = session.get(model, row_id).body
    return found


def test_purge_dry_run_counts_and_changes_nothing_then_the_purge_blanks_only_old_settled_words(
        settings, session, history):
    before = words(session, history)
    dry = cli("purge", "--dry-run", RETENTION_DAYS="30")
    assert dry.returncode == 0, dry.stderr
    counts = json.loads(dry.stdout)
    assert counts["dry_run"] is True
    assert (counts["outbox_bodies"], counts["inbound_texts"], counts["checkin_texts"],
            counts["escalation_texts"]) == (1, 2, 1, 1)
    assert words(session, history) == before

    real = cli("purge", RETENTION_DAYS="30")
    assert real.returncode == 0, real.stderr
    assert json.loads(real.stdout)["outbox_bodies"] == 1
    after = words(session, history)
    assert after["old_sent"] is None and after["old_reply"] == "" and after["old_closed_text"] == ""
    # Still pending, still in front of a person, or behind an open escalation: untouched.
    for name in ("old_planned", "old_open_alert", "recent_sent", "old_waiting", "recent_reply", "old_crisis_text"):
        assert after[name] == before[name], name
    sent = session.get(OutboxMessage, history["old_sent"])
    assert sent.status == "sent" and sent.sent_at is not None and sent.body_purged_at is not None  # metadata kept
    assert sent.to_address == "+12025550143" and sent.rule == "test"
    checkin = session.scalar(select(CheckIn))
    assert checkin.score == 7 and checkin.raw_text == "" and checkin.note == ""
    closed = session.scalar(select(Escalation).where(Escalation.status == "acknowledged"))
    assert closed.text == "" and closed.reason == "crisis_language"
    assert session.scalar(select(Escalation).where(Escalation.status == "open")).text == "i want to end it"

    again = json.loads(cli("purge", RETENTION_DAYS="30").stdout)
    assert (again["outbox_bodies"], again["inbound_texts"], again["checkin_texts"], again["escalation_texts"]) \
        == (0, 0, 0, 0)


def test_without_retention_days_nothing_is_purged(settings, session, history):
    result = cli("purge")
    assert result.returncode == 0 and "RETENTION_DAYS is not set" in result.stdout
    assert words(session, history)["old_sent"] == "words of old_sent"


def test_export_has_everything_stored_about_the_patient(settings, session, history):
    result = cli("patient", "export", "p1")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {"patient", "visits", "messages", "replies", "checkins", "measures", "escalations"}
    assert data["patient"]["first_name"] == "Maya" and data["patient"]["phone"] == "+12025550143"
    assert {m["body"] for m in data["messages"]} >= {"words of old_sent", "words of recent_sent"}
    assert "7 slept badly" in {r["body"] for r in data["replies"]}
    assert data["checkins"][0]["score"] == 7 and len(data["escalations"]) == 2
    session.expire_all()
    assert session.scalar(select(AuditEntry).where(AuditEntry.action == "export_patient")).target_id == \
        str(history["patient"].id)
    missing = cli("patient", "export", "nobody")
    assert missing.returncode == 1 and "no patient with the external id 'nobody'" in missing.stderr


@pytest.fixture
def booked(settings, session):
    """A patient with an induction visit in ten days, planned (welcome sent, reminders waiting)."""
    patient = add_patient(session)
    visit = add_visit(session, patient, "v1", utcnow() + timedelta(days=10))
    run_pass(settings, utcnow())
    session.expire_all()
    return patient, visit


def admin_browser(app, sessions):
    from tests.fixtures.staff import login

    make_user(sessions, "admin@clinic.test", "admin")
    client = app.test_client()
    assert login(client, "admin@clinic.test").status_code == 302
    return client


def test_an_admin_downloads_the_patients_data_from_the_patient_page(app, sessions, session, booked):
    patient, _ = booked
    client = admin_browser(app, sessions)
    page = client.get(f"/patients/{patient.id}").text
    assert "Export data" in page and "Erase patient" in page
    download = client.get(f"/patients/{patient.id}/export.json")
    assert download.status_code == 200 and download.mimetype == "application/json"
    assert 'filename="patient-p1.json"' in download.headers["Content-Disposition"]
    data = download.get_json()
    assert data["patient"]["last_name"] == "Lopez" and data["visits"][0]["external_id"] == "v1"
    assert any(m["rule"] == "welcome" for m in data["messages"])


def test_staff_who_are_not_admins_have_neither_action(app, staff_client, session, booked):
    patient, _ = booked
    assert "Erase patient" not in staff_client.get(f"/patients/{patient.id}").text
    assert staff_client.get(f"/patients/{patient.id}/export.json").status_code == 403
    assert staff_client.get(f"/patients/{patient.id}/erase").status_code == 403


def test_erasing_a_patient_removes_their_personal_data_keeps_the_audit_row_and_stops_every_message(
        app, sessions, session, settings, booked):
    patient, visit = booked
    inbound(session, patient, "my sister's number is 555 0199", RECENT)
    session.commit()
    with sessions() as s:
        pending_before = s.scalars(select(OutboxMessage).where(OutboxMessage.patient_id == patient.id,
                                                               OutboxMessage.status == "planned")).all()
    assert pending_before
    client = admin_browser(app, sessions)
    confirm = client.get(f"/patients/{patient.id}/erase")
    assert confirm.status_code == 200 and "Erase Maya Lopez?" in confirm.text
    assert client.post(f"/patients/{patient.id}/erase").status_code == 400  # no CSRF token
    done = client.post(f"/patients/{patient.id}/erase",
                       data={"csrf_token": csrf_token(client, f"/patients/{patient.id}/erase")})
    assert done.status_code == 302
    page = client.get(f"/patients/{patient.id}").text
    assert "personal data was erased" in page and "Maya" not in page and "Lopez" not in page

    session.expire_all()
    erased = session.get(Patient, patient.id)
    assert (erased.first_name, erased.last_name, erased.phone, erased.email) == ("(erased)", "", None, None)
    assert erased.erased_at is not None
    rows = session.scalars(select(OutboxMessage).where(OutboxMessage.patient_id == patient.id)).all()
    assert all(r.body is None and r.to_address is None for r in rows)
    assert {r.status for r in rows if r.id in {p.id for p in pending_before}} == {"canceled"}
    assert all(m.body == "" and m.from_number == "" for m in
               session.scalars(select(InboundMessage).where(InboundMessage.patient_id == patient.id)))
    assert session.get(Appointment, visit.id).status == "canceled"
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "erase_patient"))
    assert entry.actor == "admin@clinic.test" and entry.target_id == str(patient.id)

    # Nothing goes to them any more, not even when the clinic's system sends their record again.
    upsert_patient(session, PatientRecord(external_id="p1", first_name="Maya", last_name="Lopez",
                                          phone="+12025550143", email="maya@example.org",
                                          timezone="America/New_York", preferred_channel="both"), utcnow())
    session.commit()
    session.expire_all()
    assert session.get(Patient, patient.id).phone is None
    sent_before = {r.id for r in rows if r.status in ("sent", "delivered")}
    for days in (7, 9, 10, 11):
        run_pass(settings, utcnow() + timedelta(days=days))
    session.expire_all()
    sent_after = {r.id for r in session.scalars(select(OutboxMessage).where(
        OutboxMessage.patient_id == patient.id, OutboxMessage.status.in_(("sent", "delivered", "queued", "sending"))))}
    assert sent_after == sent_before

    from reminders.audit_chain import verify
    assert verify(session).ok  # the erasure changed no audit row


def test_erasure_waits_for_an_open_escalation_and_the_command_line_erases_too(settings, session):
    patient = add_patient(session)
    text = inbound(session, patient, "i can't go on", RECENT)
    crisis = escalation(session, patient, text, "open", RECENT)
    session.commit()
    refused = cli("patient", "erase", "p1", "--yes")
    assert refused.returncode != 0 and "open escalation" in (refused.stdout + refused.stderr)
    crisis.status, crisis.acknowledged_at = "acknowledged", utcnow()
    session.commit()
    done = cli("patient", "erase", "p1", "--yes")
    assert done.returncode == 0, done.stderr
    session.expire_all()
    assert session.get(Patient, patient.id).phone is None
    assert session.get(Escalation, crisis.id).text == ""
    assert session.scalar(select(AuditEntry).where(AuditEntry.action == "erase_patient")).actor == "(command line)"
