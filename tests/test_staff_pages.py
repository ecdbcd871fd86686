"""Today, escalations, inbox and the patient page, through Flask's test client."""
from __future__ import annotations

import csv
import io
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from reminders.followup import patients_needing_booking
from reminders.models import AuditEntry, Escalation, InboundMessage, Patient
from tests.conftest import clock_now
from tests.fixtures.staff import (
    add_checkin, add_escalation, add_inbound, add_outbox, add_patient, add_visit, post_form,
)

CLINIC = ZoneInfo("America/New_York")


def clinic_time(days: int, hour: int) -> datetime:
    day = clock_now().astimezone(CLINIC).date() + timedelta(days=days)
    return datetime.combine(day, time(hour), tzinfo=CLINIC)


def audit_actions(sessions, action: str) -> list[AuditEntry]:
    with sessions() as session:
        return session.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()


# --- Today ------------------------------------------------------------------------------------

def test_today_groups_visits_by_day_with_messages_flags_and_progress(staff_client, sessions):
    with sessions() as session:
        maya = add_patient(session)
        sam = add_patient(session, "p2", "Sam", "Okafor", "+12025550178", None, channel="sms")
        for number in range(1, 3):
            add_visit(session, sam, f"s{number}", clinic_time(-10 + number * 3, 9), status="completed")
        third = add_visit(session, sam, "s3", clinic_time(1, 11))
        first = add_visit(session, maya, "m1", clinic_time(2, 9))
        third.confirmed_at = clock_now()
        first.reschedule_requested_at = clock_now()
        session.commit()
        add_outbox(session, sam, third, "induction_24h", "sms", "delivered", clock_now(), body="Hi Sam")
        add_outbox(session, maya, first, "first_induction_72h", "email", "failed", clock_now())
        add_outbox(session, maya, first, "first_induction_24h", "sms", "planned", clock_now() + timedelta(days=1))
    page = staff_client.get("/")
    assert page.status_code == 200
    text = page.text
    assert "Tomorrow · " in text
    assert text.index("Sam Okafor</a>") < text.index("Maya Lopez</a>")  # tomorrow's group comes first
    assert "Induction 3 of 6" in text and "Induction 1 of 6" in text
    assert "✓ Confirmed" in text and "Reschedule asked" in text and "First infusion" in text
    assert text.count('<details class="visit-messages">') == 2  # message states one click away
    assert "24 h reminder" in text and "delivered" in text and "failed" in text and "planned" in text
    assert "EST" in text or "EDT" in text


def test_today_shows_the_open_escalation_count_in_red(staff_client, sessions):
    with sessions() as session:
        patient = add_patient(session)
        add_escalation(session, patient, "old", acknowledged_at=clock_now(), status="acknowledged")
        add_escalation(session, patient)
        add_escalation(session, None, "second one")
    text = staff_client.get("/").text
    assert 'class="alert-banner"' in text
    assert "2 open escalations" in text


def test_maintenance_due_list(staff_client, sessions, settings):
    now = clock_now()
    with sessions() as session:
        overdue = add_patient(session, "m1", "Old", "Booster", "+12025550101", None, channel="sms")
        add_visit(session, overdue, "m1-v1", now - timedelta(days=50), kind="maintenance", status="completed")
        booked = add_patient(session, "m2", "Booked", "Booster", "+12025550102", None, channel="sms")
        add_visit(session, booked, "m2-v1", now - timedelta(days=50), kind="maintenance", status="completed")
        add_visit(session, booked, "m2-v2", now + timedelta(days=3), kind="maintenance")
        recent = add_patient(session, "m3", "Recent", "Booster", "+12025550103", None, channel="sms")
        add_visit(session, recent, "m3-v1", now - timedelta(days=10), kind="maintenance", status="completed")
        gap = add_patient(session, "i1", "Gap", "Induction", "+12025550104", None, channel="sms")
        add_visit(session, gap, "i1-v1", now - timedelta(days=5), status="completed")
        add_visit(session, gap, "i1-v2", now - timedelta(days=2), status="completed")
        late = add_patient(session, "i2", "Late", "Induction", "+12025550105", None, channel="sms")
        add_visit(session, late, "i2-v1", now - timedelta(days=1), status="completed")
        add_visit(session, late, "i2-v2", now + timedelta(days=9))
        fine = add_patient(session, "i3", "Fine", "Induction", "+12025550106", None, channel="sms")
        add_visit(session, fine, "i3-v1", now - timedelta(days=1), status="completed")
        add_visit(session, fine, "i3-v2", now + timedelta(hours=47) - timedelta(days=1))  # within 48 hours
        canceled = add_patient(session, "i4", "Canceled", "Next", "+12025550107", None, channel="sms")
        add_visit(session, canceled, "i4-v1", now - timedelta(days=1), status="completed")
        add_visit(session, canceled, "i4-v2", now + timedelta(days=1), status="canceled")
        rows = patients_needing_booking(session, settings, now)
        names = {row.patient.first_name: row.reason for row in rows}
    assert set(names) == {"Old", "Gap", "Late", "Canceled"}
    assert names["Old"].startswith("Maintenance due: last maintenance visit 50 days ago")
    assert names["Gap"] == "Infusion 3 of 6 is not booked"
    assert names["Late"] == "Infusion 2 of 6 is booked more than 2 days after the last"
    page = staff_client.get("/").text
    assert "Infusion 3 of 6 is not booked" in page and "Old Booster" in page and "Recent Booster" not in page


# --- Escalations --------------------------------------------------------------------------------

def test_escalation_queue_open_first_oldest_first_within_a_kind_and_acknowledge(alert_contacts, staff_client,
                                                                                 sessions):
    with sessions() as session:
        patient = add_patient(session)
        add_escalation(session, patient, "done long ago", minutes_ago=300, status="acknowledged",
                       acknowledged_at=clock_now(), acknowledged_by="x@clinic.test", ack_note="called")
        older = add_escalation(session, patient, "older open", minutes_ago=60)
        sam = add_patient(session, "p2", "Sam", "Okafor", "+12025550178", None, channel="sms")
        newer = add_escalation(session, sam, "newer open", minutes_ago=5)
    text = staff_client.get("/escalations/").text
    # Same kind: the one waiting longest comes first; resolved ones after all open ones.
    assert text.index("older open") < text.index("newer open") < text.index("done long ago")
    assert "Staff alerted" in text and "1 time, last" in text

    empty = post_form(staff_client, f"/escalations/{newer.id}/acknowledge", {"note": "  "})
    assert empty.status_code == 302
    with sessions() as session:
        assert session.get(Escalation, newer.id).status == "open"

    response = post_form(staff_client, f"/escalations/{newer.id}/acknowledge", {"note": "Called her; safe at home"},
                         follow_redirects=True)
    assert "Resolved: " in response.text and "Staff will not be alerted about it again." in response.text
    with sessions() as session:
        escalation = session.get(Escalation, newer.id)
        assert escalation.status == "acknowledged"
        assert escalation.acknowledged_by == "staff@clinic.test"
        assert escalation.ack_note == "Called her; safe at home"
        assert escalation.next_alert_at is None
        assert session.get(Escalation, older.id).status == "open"
    assert "Called her; safe at home" in response.text  # stays visible, below
    entry = audit_actions(sessions, "acknowledge_escalation")[0]
    assert entry.actor == "staff@clinic.test" and entry.target_id == str(newer.id)


def test_acknowledging_a_missing_escalation_is_404(staff_client):
    assert post_form(staff_client, "/escalations/999/acknowledge", {"note": "x"}).status_code == 404


# --- Inbox --------------------------------------------------------------------------------------

def test_inbox_lists_what_needs_a_person_and_marks_done(staff_client, sessions):
    with sessions() as session:
        patient = add_patient(session)
        waiting = add_inbound(session, patient, "Can I bring my husband?")
        add_inbound(session, patient, "C", needs_staff=False, classification="confirm")
        unknown = add_inbound(session, None, "who is this", classification="unknown_number")
    text = staff_client.get("/inbox/").text
    assert "Can I bring my husband?" in text and "who is this" in text and ">C<" not in text
    assert f'href="/patients/{patient.id}"' in text and "+12025550111" in text
    post_form(staff_client, f"/inbox/{waiting.id}/done")
    with sessions() as session:
        done = session.get(InboundMessage, waiting.id)
        assert done.done_at is not None and done.done_by == "staff@clinic.test"
        assert session.get(InboundMessage, unknown.id).done_at is None
    text = staff_client.get("/inbox/").text
    assert "Done recently (1)" in text
    assert text.index("Done recently") < text.index("Can I bring my husband?")
    assert audit_actions(sessions, "inbox_done")[0].target_id == str(waiting.id)


def test_inbox_lists_messages_that_did_not_arrive_or_may_not_have(staff_client, sessions):
    now = clock_now()
    with sessions() as session:
        patient = add_patient(session)
        visit = add_visit(session, patient, "v1", now + timedelta(days=1))
        failed = add_outbox(session, patient, visit, "induction_24h", "sms", "failed", now)
        failed.error_code, failed.status_reason = "30006", "the provider refused it for good"
        stalled = add_outbox(session, patient, visit, "induction_24h", "email", "unknown", now)
        stalled.status_reason = "the worker stopped during the send; check before resending"
        add_outbox(session, patient, visit, "checkin_day_after", "sms", "delivered", now, kind="checkin")
        session.commit()
    text = staff_client.get("/inbox/").text
    section = text[text.index("Messages that did not arrive"):]
    assert "error 30006" in section and "check before resending" in section
    assert f'id="outbox-{failed.id}"' in section and f'id="outbox-{stalled.id}"' in section
    assert section.count("24 h reminder") == 2 and "Day-after check-in" not in section


# --- Patient ------------------------------------------------------------------------------------

def test_patient_page_shows_contact_opt_out_visits_timeline_chart_and_is_audited(staff_client, sessions):
    now = clock_now()
    with sessions() as session:
        patient = add_patient(session, zone="America/Chicago")
        patient.sms_opted_out, patient.opted_out_at, patient.opt_out_text = True, now - timedelta(days=1), "STOP"
        session.commit()
        visit = add_visit(session, patient, "v1", now - timedelta(days=3), status="completed")
        add_visit(session, patient, "v2", now + timedelta(days=2))
        add_outbox(session, patient, visit, "first_induction_24h", "sms", "delivered", now - timedelta(days=4),
                   body="Hi Maya, a reminder")
        add_inbound(session, patient, "C", needs_staff=False, minutes_ago=60 * 24 * 4 - 30, classification="confirm")
        add_checkin(session, patient, now - timedelta(days=2), 6, "a bit dizzy in the evening", visit)
        add_checkin(session, patient, now - timedelta(days=1), 7)
    page = staff_client.get(f"/patients/{patient.id}")
    text = page.text
    assert "+12025550143" in text and "maya@example.org" in text and "America/Chicago" in text
    assert "Opted out" in text and "by texting “STOP”" in text
    assert "Induction 1 of 6" in text and "Induction 2 of 6" in text
    assert "Hi Maya, a reminder" in text and "← From patient" in text and "→ To patient" in text
    assert text.index("← From patient") < text.index("Hi Maya, a reminder")  # newest first
    assert "<svg" in text and "2 mood scores" in text and "a bit dizzy in the evening" in text
    assert "CST" in text or "CDT" in text
    entries = audit_actions(sessions, "view_patient")
    assert [(e.actor, e.target_type, e.target_id) for e in entries] == [("staff@clinic.test", "patient", str(patient.id))]


def test_unknown_patient_is_404(staff_client):
    assert staff_client.get("/patients/4242").status_code == 404


def test_checkins_export_to_csv(staff_client, sessions):
    now = clock_now()
    with sessions() as session:
        patient = add_patient(session)
        visit = add_visit(session, patient, "v1", now - timedelta(days=3), status="completed")
        add_checkin(session, patient, now - timedelta(days=2), 4, "=HYPERLINK(\"http://x\")", visit)
        add_checkin(session, patient, now - timedelta(days=1), 8, "headache, gone by noon")
    response = staff_client.get(f"/patients/{patient.id}/checkins.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert 'filename="checkins-p1.csv"' in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["score"] for r in rows] == ["4", "8"]
    assert rows[0]["side_effects_note"].startswith("'=")  # a spreadsheet will not run it
    assert rows[0]["visit_external_id"] == "v1" and rows[1]["side_effects_note"] == "headache, gone by noon"
    assert audit_actions(sessions, "export_checkins")[0].target_id == str(patient.id)


def test_patient_search(staff_client, sessions):
    with sessions() as session:
        add_patient(session)
        add_patient(session, "p2", "Sam", "Okafor", "+12025550178", None, channel="sms")
    assert "Okafor" in staff_client.get("/patients/?q=okaf").text
    found = staff_client.get("/patients/?q=0178").text
    assert "Okafor" in found and "Lopez" not in found
    assert "No patient matches" in staff_client.get("/patients/?q=zzz").text


def test_audit_log_page_lists_entries_for_admins(admin_client, sessions):
    with sessions() as session:
        patient = add_patient(session)
        patient_id = patient.id
    admin_client.get(f"/patients/{patient_id}")
    text = admin_client.get("/admin/audit").text
    assert "Opened the patient page" in text and "admin@clinic.test" in text
    with sessions() as session:
        assert session.scalar(select(Patient)).id == patient_id


def test_with_no_alert_contacts_every_page_says_crisis_alerts_reach_nobody(staff_client, sessions):
    with sessions() as session:
        patient = add_patient(session)
        escalation = add_escalation(session, patient)
        escalation.last_alerted_at, escalation.alert_round = None, 0  # what a round with nobody to alert leaves
        session.commit()
    for path in ("/", "/escalations/", "/inbox/", "/patients/"):
        text = staff_client.get(path).get_data(as_text=True)
        assert "Crisis alerts cannot reach anyone." in text, path
    escalations_page = staff_client.get("/escalations/").get_data(as_text=True)
    assert "nobody alerted (no contacts configured)" in escalations_page
    assert "Next alert" not in escalations_page


def test_with_alert_contacts_configured_there_is_no_such_banner(configure, settings, sessions):
    from reminders.web import create_app
    from tests.fixtures.staff import login, make_user

    configured = configure(STAFF_ALERT_EMAILS="oncall@clinic.test")
    client = create_app(configured, {"TESTING": True}).test_client()
    make_user(sessions, "staff@clinic.test", "staff")
    assert login(client, "staff@clinic.test").status_code == 302
    assert "Crisis alerts cannot reach anyone." not in client.get("/").get_data(as_text=True)
