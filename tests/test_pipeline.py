"""Appointments in, instructions out, each exactly once: the pipeline against a real database."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from reminders.channels.local_outbox import read_outbox
from reminders.intake.records import AppointmentRecord
from reminders.intake.upsert import upsert_appointment
from reminders.models import Appointment, CheckIn
from reminders.pipeline import run_pass
from reminders.sending import retry_delay
from tests.conftest import at, both_databases
from tests.helpers import book, outbox, patient, sent

VISIT = "2026-12-10T10:00:00-05:00"


# Every test here runs on SQLite (the default) and on PostgreSQL.
settings = both_databases()


def tick(settings, when: str):
    return run_pass(settings, at(when))


def move(session, visit: Appointment, starts_at: str | None = None, status: str | None = None, now=None):
    upsert_appointment(session, visit.patient, AppointmentRecord(
        external_id=visit.external_id, kind=visit.kind, starts_at=at(starts_at) if starts_at else visit.starts_at,
        location=visit.location, status=status,
    ), now or at("2026-11-01T12:00:00+00:00"))
    session.commit()


class TestFirstInduction:
    def test_each_reminder_goes_once_at_its_time(self, settings, session):
        book(session, starts_at=VISIT, email="maya@example.org", channel="both")
        assert tick(settings, "2026-12-07T09:59:00-05:00")["sent"] == 0
        assert tick(settings, "2026-12-07T10:00:00-05:00")["sent"] == 2
        assert sorted(sent(session)) == [("first_induction_72h", "email"), ("first_induction_72h", "sms")]
        assert tick(settings, "2026-12-07T10:00:00-05:00")["sent"] == 0  # the same instant again
        assert tick(settings, "2026-12-08T10:00:00-05:00")["sent"] == 0
        assert tick(settings, "2026-12-09T10:01:00-05:00")["sent"] == 2  # the after-visit cautions follow
        assert sent(session)[-2:] == [("first_induction_24h", "sms")] * 2
        for later in ("2026-12-09T12:00:00-05:00", "2026-12-10T09:00:00-05:00"):
            assert tick(settings, later)["sent"] == 0

    def test_the_texts_carry_course_and_preparation_but_no_drug_or_diagnosis(self, settings, session):
        book(session, starts_at=VISIT, email="maya@example.org", channel="both")
        tick(settings, "2026-12-07T10:00:00-05:00")
        sms = outbox(session, channel="sms")[0].body
        assert "Thursday, December 10 at 10:00 AM" in sms
        assert "Nothing to eat after 4:00 AM; clear liquids OK until 8:00 AM." in sms
        assert "Arrive by 9:45 AM" in sms and "An adult must drive you home" in sms
        assert "Reply C to confirm or R to reschedule" in sms
        assert "ketamine" not in sms.lower() and "depress" not in sms.lower()
        assert "hours" not in sms  # clock times, not arithmetic for the patient
        email = outbox(session, channel="email")[0]
        assert "Preparing for your first visit" in email.subject
        assert "nothing to eat after 4:00 AM" in email.body and "are fine until 8:00 AM" in email.body
        assert "No driving" in email.body and "No alcohol or cannabis for 24 hours" in email.body


def phone_received(settings) -> list[str]:
    """The texts in the order the provider got them (the local outbox's log)."""
    return [m["body"] for m in read_outbox(settings.effective_outbox_dir) if m["channel"] == "sms"]


def is_welcome(text: str) -> bool:
    return "Reply HELP for help, STOP to opt out" in text


class TestWelcome:
    def test_the_welcome_goes_as_its_own_text_a_minute_before_the_first_reminder(self, settings, session):
        book(session, starts_at=VISIT, welcomed=False)
        assert tick(settings, "2026-12-07T09:58:00-05:00")["sent"] == 0
        assert tick(settings, "2026-12-07T09:59:00-05:00")["sent"] == 1
        assert tick(settings, "2026-12-07T10:00:00-05:00")["sent"] == 1
        [welcome] = outbox(session, rule="welcome", status="sent")
        [reminder] = outbox(session, rule="first_induction_72h", status="sent")
        assert phone_received(settings) == [welcome.body, reminder.body]
        assert "Reply HELP for help, STOP to opt out" in welcome.body and "Msg & data rates may apply" in welcome.body
        assert "up to 7 texts per visit" in welcome.body and "988" in welcome.body
        assert "STOP" not in reminder.body and welcome.segments <= 2 and reminder.segments <= 2
        assert patient(session).welcomed_at == at("2026-12-07T09:59:00-05:00")

    def test_the_welcome_is_sent_once_and_not_again_for_the_next_visit(self, settings, session):
        book(session, starts_at=VISIT, welcomed=False)
        for when in ("2026-12-07T10:00:00-05:00", "2026-12-07T10:00:00-05:00", "2026-12-09T10:00:00-05:00"):
            tick(settings, when)
        book(session, starts_at="2026-12-14T10:00:00-05:00", appointment="a2")  # same patient and number
        tick(settings, "2026-12-11T10:00:00-05:00")
        tick(settings, "2026-12-13T10:00:00-05:00")
        assert ("induction_24h", "sms") in sent(session)
        assert [rule for rule, _ in sent(session)].count("welcome") == 1

    def test_overdue_together_the_welcome_still_goes_first(self, settings, session):
        # Booked late: the 72-hour reminder is due at once, and so is the welcome.
        book(session, starts_at=VISIT, welcomed=False, now=at("2026-12-08T12:00:00-05:00"))
        assert tick(settings, "2026-12-08T12:00:00-05:00")["sent"] == 2
        first, second = phone_received(settings)
        assert is_welcome(first) and "first infusion" in second

    def test_a_welcome_and_reminder_due_in_quiet_hours_go_in_order_at_eight(self, settings, session):
        book(session, starts_at="2026-12-10T07:30:00-05:00", welcomed=False)  # 72 h before is 7:30 AM
        assert tick(settings, "2026-12-07T07:45:00-05:00")["sent"] == 0
        assert tick(settings, "2026-12-07T08:00:00-05:00")["sent"] == 2
        first, second = phone_received(settings)
        assert is_welcome(first) and "first infusion" in second

    def test_no_welcome_for_an_opted_out_number(self, settings, session):
        visit = book(session, starts_at=VISIT, welcomed=False)
        visit.patient.sms_opted_out = True
        session.commit()
        tick(settings, "2026-12-07T10:00:00-05:00")
        assert not outbox(session, rule="welcome", status="sent")

    def test_a_patient_welcomed_in_a_reply_meanwhile_gets_no_second_welcome(self, settings, session):
        book(session, starts_at=VISIT, welcomed=False)
        tick(settings, "2026-12-01T10:00:00-05:00")  # the welcome is planned for Dec 7
        person = patient(session)
        person.welcomed_at = at("2026-12-02T10:00:00-05:00")
        session.commit()
        tick(settings, "2026-12-07T10:00:00-05:00")
        [row] = outbox(session, rule="welcome")
        assert row.status == "skipped" and row.status_reason == "already welcomed"

    def test_canceling_the_only_visit_takes_the_welcome_back_until_the_next_booking(self, settings, session):
        visit = book(session, starts_at=VISIT, welcomed=False)
        tick(settings, "2026-12-01T10:00:00-05:00")
        move(session, visit, status="canceled")
        tick(settings, "2026-12-01T10:05:00-05:00")
        assert outbox(session, rule="welcome")[0].status == "canceled"
        book(session, starts_at="2026-12-20T10:00:00-05:00", appointment="a2", welcomed=False)
        tick(settings, "2026-12-17T10:00:00-05:00")
        assert [rule for rule, _ in sent(session)] == ["welcome", "first_induction_72h"]

    def test_a_new_phone_number_is_introduced_again(self, settings, session):
        book(session, starts_at=VISIT, welcomed=False)
        tick(settings, "2026-12-07T10:00:00-05:00")
        book(session, starts_at="2026-12-14T10:00:00-05:00", appointment="a2", phone="+12025550199", welcomed=False)
        tick(settings, "2026-12-13T10:00:00-05:00")
        welcomes = outbox(session, rule="welcome", status="sent")
        assert [row.to_address for row in welcomes] == ["+12025550143", "+12025550199"]


class TestLaterVisits:
    def test_later_induction_infusion_says_which_of_the_series(self, settings, session):
        book(session, starts_at="2026-12-01T10:00:00-05:00", appointment="a1", status="completed")
        book(session, starts_at="2026-12-03T10:00:00-05:00", appointment="a2", status="completed")
        book(session, starts_at=VISIT, appointment="a3")
        tick(settings, "2026-12-09T10:00:00-05:00")
        row = outbox(session, rule="induction_24h", status="sent")[0]
        assert "infusion 3 of 6" in row.body

    def test_maintenance_reminded_a_week_and_a_day_before(self, settings, session):
        book(session, starts_at=VISIT, kind="maintenance")
        assert tick(settings, "2026-12-03T10:00:00-05:00")["sent"] == 1
        assert tick(settings, "2026-12-09T10:00:00-05:00")["sent"] == 2  # the reminder, then the cautions
        assert sent(session) == [("maintenance_7d", "sms"), ("maintenance_24h", "sms"), ("maintenance_24h", "sms")]


class TestChanges:
    def test_reschedule_moves_pending_reminders_and_none_goes_for_the_old_time(self, settings, session):
        visit = book(session, starts_at=VISIT, kind="maintenance")
        tick(settings, "2026-12-03T10:00:00-05:00")  # the 7-day reminder goes
        move(session, visit, starts_at="2026-12-14T15:00:00-05:00")
        assert tick(settings, "2026-12-04T10:00:00-05:00")["sent"] == 1  # the patient hears of the move
        assert tick(settings, "2026-12-09T10:00:00-05:00")["sent"] == 0  # the old 24 h time
        assert tick(settings, "2026-12-13T15:00:00-05:00")["sent"] == 2  # with its second text
        row = outbox(session, rule="maintenance_24h")[0]
        assert "Monday, December 14 at 3:00 PM" in row.body
        # (the 24 h reminder's second text is planned when the first goes: the last row)
        assert sent(session) == [("maintenance_7d", "sms"), ("maintenance_24h", "sms"), ("visit_moved", "sms"),
                                 ("maintenance_24h", "sms")]

    def test_a_visit_moved_after_its_reminder_went_gets_one_notice_of_the_new_time(self, settings, session):
        visit = book(session, starts_at=VISIT, kind="maintenance", email="maya@example.org", channel="both")
        tick(settings, "2026-12-03T10:00:00-05:00")  # the 7-day reminder goes by text and email
        move(session, visit, starts_at="2026-12-17T15:00:00-05:00", now=at("2026-12-04T09:00:00-05:00"))
        summary = tick(settings, "2026-12-04T09:00:00-05:00")
        notices = outbox(session, rule="visit_moved", status="sent")
        assert {row.channel for row in notices} == {"sms", "email"} and summary["sent"] == 2
        [text] = [row.body for row in notices if row.channel == "sms"]
        assert "your visit has moved to Thursday, December 17 at 3:00 PM" in text
        assert tick(settings, "2026-12-04T12:00:00-05:00")["sent"] == 0
        # The rule that went for the old time does not go again; the 24 h one goes at the new time.
        tick(settings, "2026-12-10T10:00:00-05:00")
        assert tick(settings, "2026-12-16T15:00:00-05:00")["sent"] == 2  # the 24 h text and its second
        assert sorted(sent(session)) == [("maintenance_24h", "sms")] * 2 + [("maintenance_7d", "email"), ("maintenance_7d", "sms"),
                                         ("visit_moved", "email"), ("visit_moved", "sms")]

    def test_a_visit_moved_before_any_reminder_went_needs_no_notice(self, settings, session):
        visit = book(session, starts_at=VISIT, kind="maintenance")
        tick(settings, "2026-12-01T10:00:00-05:00")
        move(session, visit, starts_at="2026-12-17T15:00:00-05:00")
        tick(settings, "2026-12-02T10:00:00-05:00")
        assert outbox(session, rule="visit_moved") == []

    def test_cancel_cancels_what_is_pending(self, settings, session):
        visit = book(session, starts_at=VISIT)
        tick(settings, "2026-12-07T10:00:00-05:00")
        move(session, visit, status="canceled")
        summary = tick(settings, "2026-12-09T10:00:00-05:00")
        assert summary["sent"] == 0
        assert [r.status for r in outbox(session, rule="first_induction_24h")] == ["canceled"]
        assert sent(session) == [("first_induction_72h", "sms")]

    def test_cancel_after_the_message_was_queued_still_stops_it(self, settings, session):
        from reminders.provider_health import claim_due
        from reminders.planning.planner import plan_pending
        from reminders.timing.rules import RuleSettings

        visit = book(session, starts_at=VISIT)
        now = at("2026-12-09T10:00:00-05:00")
        plan_pending(session, RuleSettings(), now)
        session.commit()
        queued = claim_due(session, now)
        assert queued
        visit.status = "canceled"
        session.commit()
        from reminders.channels import channels_for
        from reminders.db import session_factory
        from reminders.sending import Sender

        sender = Sender(session_factory(settings.effective_database_url), settings, channels_for(settings))
        assert {sender.send(i, now) for i in queued} == {"skipped"}
        assert read_outbox(settings.effective_outbox_dir) == []

    def test_canceling_the_first_infusion_gives_the_next_one_the_full_instructions(self, settings, session):
        first = book(session, starts_at=VISIT, appointment="a1")
        book(session, starts_at="2026-12-12T10:00:00-05:00", appointment="a2")
        move(session, first, status="canceled")
        tick(settings, "2026-12-09T10:00:00-05:00")
        assert sent(session) == [("first_induction_72h", "sms")]
        assert outbox(session, status="sent")[0].appointment.external_id == "a2"


class TestOverdue:
    def test_late_booking_sends_only_the_latest_overdue_reminder(self, settings, session):
        book(session, starts_at=VISIT, email="maya@example.org", channel="both",
             now=at("2026-12-09T20:00:00-05:00"))
        summary = tick(settings, "2026-12-09T20:00:00-05:00")
        assert sorted(sent(session)) == [("first_induction_24h", "sms")] * 2 + [("first_induction_72h", "email")]
        assert outbox(session, rule="first_induction_72h", channel="sms")[0].status_reason == "superseded by a later reminder"
        assert summary["skipped"] == 1

    def test_service_down_for_days_sends_once_on_return_and_nothing_for_past_visits(self, settings, session):
        book(session, starts_at=VISIT, appointment="a1", kind="maintenance")
        book(session, starts_at="2026-12-05T10:00:00-05:00", appointment="b1", patient="p2", kind="maintenance",
             phone="+12025550178")
        assert tick(settings, "2026-12-01T12:00:00-05:00")["sent"] == 1  # b1's 7-day reminder, late but ahead
        # The service is down from here until 9 December, noon.
        summary = tick(settings, "2026-12-09T12:00:00-05:00")
        assert summary["sent"] == 2  # a1's 24 h reminder and its second text
        went = {(r.appointment.external_id, r.rule, r.sent_at) for r in outbox(session, status="sent")}
        assert went == {("b1", "maintenance_7d", at("2026-12-01T12:00:00-05:00")),
                        ("a1", "maintenance_24h", at("2026-12-09T12:00:00-05:00"))}
        reasons = {r.appointment.external_id + ":" + r.rule: r.status_reason for r in outbox(session, status="skipped")}
        assert reasons == {
            "a1:maintenance_7d": "superseded by a later reminder",
            "b1:maintenance_24h": "visit already started",
            "b1:checkin_day_after": "too late to be useful",
        }

    def test_visit_already_past_when_booked_gets_no_reminder(self, settings, session):
        book(session, starts_at=VISIT, now=at("2026-12-10T11:00:00-05:00"), status="completed")
        tick(settings, "2026-12-10T11:00:00-05:00")
        assert not [r for r in outbox(session) if r.kind == "reminder"]


class TestQuietHours:
    def test_due_at_night_waits_until_eight_local(self, settings, session):
        book(session, starts_at="2026-12-10T22:00:00-08:00", zone="America/Los_Angeles")
        summary = tick(settings, "2026-12-09T22:00:00-08:00")
        assert summary["sent"] == 0
        assert tick(settings, "2026-12-10T07:59:00-08:00")["sent"] == 0
        assert tick(settings, "2026-12-10T08:00:00-08:00")["sent"] == 2  # with its second text

    def test_catching_up_at_three_in_the_morning_defers_instead_of_texting(self, settings, session):
        book(session, starts_at="2026-12-10T15:00:00-05:00", now=at("2026-12-09T02:00:00-05:00"))
        summary = tick(settings, "2026-12-10T03:00:00-05:00")
        assert summary == {**summary, "sent": 0, "deferred": 1}
        row = outbox(session, rule="first_induction_24h")[0]
        assert row.status == "planned" and row.due_at == at("2026-12-10T08:00:00-05:00")
        assert tick(settings, "2026-12-10T08:00:00-05:00")["sent"] == 2  # with its second text


class TestOptOut:
    def test_opted_out_number_gets_no_text_and_email_takes_over(self, settings, session):
        book(session, starts_at=VISIT, email="maya@example.org", channel="sms")
        person = patient(session)
        person.sms_opted_out = True
        session.commit()
        tick(settings, "2026-12-09T10:00:00-05:00")
        assert outbox(session, channel="sms", rule="first_induction_24h")[0].status_reason == "patient opted out of texts"
        assert sent(session) == [("first_induction_24h", "email")]


class TestCheckins:
    def test_checkin_the_day_after_an_attended_visit_only(self, settings, session):
        book(session, starts_at="2026-12-10T10:00:00-05:00", appointment="a1", status="completed", patient="p1")
        book(session, starts_at="2026-12-10T10:00:00-05:00", appointment="b1", status="no_show", patient="p2", phone="+12025550178")
        book(session, starts_at="2026-12-10T10:00:00-05:00", appointment="c1", status="canceled", patient="p3", phone="+12025550199")
        tick(settings, "2026-12-11T10:00:00-05:00")
        rows = outbox(session, rule="checkin_day_after", status="sent")
        assert [r.appointment.external_id for r in rows] == ["a1"]
        assert "from 0 (worst) to 10 (best)" in rows[0].body
        checkin = session.scalar(select(CheckIn))
        assert checkin.status == "awaiting" and checkin.appointment_id == rows[0].appointment_id

    def test_a_no_show_recorded_after_planning_stops_the_checkin(self, settings, session):
        visit = book(session, starts_at="2026-12-10T10:00:00-05:00")
        tick(settings, "2026-12-10T09:00:00-05:00")
        move(session, visit, status="no_show")
        tick(settings, "2026-12-11T10:00:00-05:00")
        assert not outbox(session, rule="checkin_day_after", status="sent")


class TestProviders:
    @pytest.fixture
    def providers(self, configure, settings, twilio_settings, smtp_settings):
        return configure(**twilio_settings, **smtp_settings, PUBLIC_BASE_URL="https://clinic.example.org")

    def test_sms_through_twilio_and_email_with_ics_through_smtp(self, providers, session, fake_twilio, smtp_server):
        book(session, starts_at=VISIT, email="maya@example.org", channel="both")
        tick(providers, "2026-12-07T10:00:00-05:00")
        [sms] = fake_twilio.messages
        assert sms["to"] == "+12025550143" and "first infusion" in sms["body"]
        row = outbox(session, channel="sms")[0]
        assert sms["status_callback"] == f"https://clinic.example.org/twilio/status?outbox_id={row.id}"
        assert row.provider_id == sms["sid"]
        [mail] = smtp_server.messages
        assert mail.rcpt_tos == ["maya@example.org"]
        parts = {part.get_content_type(): part for part in mail.message.walk()}
        assert {"text/plain", "text/html", "text/calendar"} <= set(parts)
        from icalendar import Calendar
        event = Calendar.from_ical(parts["text/calendar"].get_content()).walk("VEVENT")[0]
        assert event.decoded("DTSTART") == at(VISIT)

    def test_transient_error_is_retried_with_backoff_then_sent_once(self, providers, session, fake_twilio):
        book(session, starts_at=VISIT)
        fake_twilio.fail_next(status=503, code=20503, message="Service unavailable")
        assert tick(providers, "2026-12-07T10:00:00-05:00")["retrying"] == 1
        row = outbox(session)[0]
        # 30 s, plus up to a fifth of it so that rows failing together do not return together.
        assert row.status == "planned" and row.due_at == at("2026-12-07T10:00:00-05:00") + retry_delay(1, row.id)
        assert at("2026-12-07T10:00:30-05:00") <= row.due_at <= at("2026-12-07T10:00:36-05:00")
        assert tick(providers, "2026-12-07T10:00:10-05:00")["sent"] == 0
        assert tick(providers, "2026-12-07T10:00:36-05:00")["sent"] == 1
        assert len(fake_twilio.messages) == 1

    def test_the_first_wait_is_the_clinics_setting(self, providers, configure, session, fake_twilio):
        clinic = configure(SEND_RETRY_FIRST_SECONDS=5)
        book(session, starts_at=VISIT)
        fake_twilio.fail_next(status=429, code=20429, message="Too Many Requests")
        assert tick(clinic, "2026-12-07T10:00:00-05:00")["retrying"] == 1
        row = outbox(session)[0]
        assert at("2026-12-07T10:00:05-05:00") <= row.due_at <= at("2026-12-07T10:00:06-05:00")
        assert tick(clinic, "2026-12-07T10:00:06-05:00")["sent"] == 1
        assert len(fake_twilio.messages) == 1

    def test_transient_errors_are_retried_until_the_visit_then_given_up(self, providers, session, fake_twilio):
        book(session, starts_at=VISIT)
        fake_twilio.fail_next(status=500, code=20500, times=1000)
        when = at("2026-12-07T10:00:00-05:00")
        while when <= at(VISIT) + timedelta(hours=6):
            run_pass(providers, when)
            when += timedelta(hours=6 if when < at("2026-12-09T10:00:00-05:00") else 1)
        early, row = outbox(session, rule="first_induction_72h")[0], outbox(session, rule="first_induction_24h")[0]
        assert (early.status, early.status_reason) == ("skipped", "superseded by a later reminder")
        assert row.status == "failed" and row.attempts > providers.send_max_attempts
        assert row.status_reason == "provider unavailable until the visit"
        assert fake_twilio.messages == []

    def test_permanent_error_is_recorded_not_retried_and_falls_back_to_email(self, providers, session, fake_twilio, smtp_server):
        book(session, starts_at=VISIT, email="maya@example.org", channel="sms")
        fake_twilio.fail_for("+12025550143", status=400, code=21211)
        summary = tick(providers, "2026-12-09T10:00:00-05:00")
        sms = outbox(session, channel="sms", rule="first_induction_24h")[0]
        assert (sms.status, sms.error_code, sms.attempts) == ("failed", "21211", 1)
        assert summary["failed"] == 1 and summary["sent"] == 1
        assert len(smtp_server.messages) == 1
        assert tick(providers, "2026-12-09T11:00:00-05:00")["sent"] == 0
        assert len(fake_twilio.requests) == 1


def test_local_outbox_holds_readable_messages_when_nothing_is_configured(settings, session):
    book(session, starts_at=VISIT)
    tick(settings, "2026-12-07T10:00:00-05:00")
    [line] = read_outbox(settings.effective_outbox_dir)
    assert line["channel"] == "sms" and line["to"] == "+12025550143"
    assert "first infusion" in line["body"]
    assert json.dumps(line)  # plain JSON, readable by anything


def test_send_soon_sends_planned_rows_at_once_and_only_once(settings, sessions, session):
    from reminders.dispatch import in_process, send_soon
    from reminders.models import OutboxMessage

    now = at("2026-12-10T03:00:00-05:00")  # quiet hours do not hold staff alerts
    row = OutboxMessage(dedupe_key="esc:1:round:1:sms:+12025550100", kind="alert", rule="escalation_alert",
                        channel="sms", to_address="+12025550100", body="URGENT: possible crisis reply",
                        planned_for=now, due_at=now + timedelta(minutes=5))
    session.add(row)
    session.commit()
    dispatcher = in_process(settings, sessions)
    send_soon(dispatcher, sessions, [row.id], now)
    send_soon(dispatcher, sessions, [row.id], now)
    assert [line["body"] for line in read_outbox(settings.effective_outbox_dir)] == ["URGENT: possible crisis reply"]
    assert outbox(session)[0].status == "sent"


class _StalledProvider:
    """A provider that took the message and then stopped answering."""

    name = "sms"

    def __init__(self):
        self.calls = 0

    def send(self, message):
        from reminders.channels import DeliveryError

        self.calls += 1
        raise DeliveryError("read timed out", permanent=False, code="timeout", maybe_sent=True)


def test_a_send_that_may_have_gone_is_shown_to_staff_not_repeated(settings, session):
    from reminders.channels.local_outbox import LocalOutbox

    book(session, starts_at=VISIT)
    stalled = _StalledProvider()
    channels = {"sms": stalled, "email": LocalOutbox("email", settings.effective_outbox_dir)}
    summary = run_pass(settings, at("2026-12-09T10:00:00-05:00"), channels=channels)
    run_pass(settings, at("2026-12-09T11:00:00-05:00"), channels=channels)
    row = outbox(session, rule="first_induction_24h")[0]
    assert (summary["unknown"], stalled.calls, row.status) == (1, 1, "unknown")
    assert "check before resending" in row.status_reason


class _BusyProvider(_StalledProvider):
    """A provider that answers 'too many requests' (transient)."""

    def send(self, message):
        from reminders.channels import DeliveryError

        self.calls += 1
        raise DeliveryError("Too Many Requests", permanent=False, code="20429")


def test_replanning_a_visit_keeps_a_retry_backoff(settings, session):
    from reminders.channels.local_outbox import LocalOutbox
    from reminders.planning.planner import mark_for_planning

    book(session, starts_at=VISIT)
    channels = {"sms": _BusyProvider(), "email": LocalOutbox("email", settings.effective_outbox_dir)}
    run_pass(settings, at("2026-12-09T10:00:00-05:00"), channels=channels)
    row = outbox(session, rule="first_induction_24h")[0]
    retry_at = at("2026-12-09T10:00:00-05:00") + retry_delay(1, row.id)
    assert row.status == "planned" and row.due_at == retry_at
    mark_for_planning(session, patient_id=row.patient_id)  # e.g. the patient's email changed
    session.commit()
    run_pass(settings, at("2026-12-09T10:00:05-05:00"), channels=channels)
    assert outbox(session, rule="first_induction_24h")[0].due_at == retry_at


class _AcceptsThenBreaks:
    """A provider that takes every message; `after` is what goes wrong in this process afterwards."""

    name = "sms"

    def __init__(self, raise_from_send: BaseException | None = None):
        self.sent: list[str] = []
        self.raise_from_send = raise_from_send

    def send(self, message):
        from reminders.channels import Receipt

        self.sent.append(message.reference)
        if self.raise_from_send is not None:
            raise self.raise_from_send
        return Receipt(provider_id=f"SM{message.reference}", status="queued")


def test_an_error_while_recording_a_send_the_provider_accepted_never_sends_it_again(settings, session, monkeypatch):
    import reminders.sending.handover as handover

    book(session, starts_at="2026-12-07T10:00:00-05:00", status="completed")  # its check-in is due the next day

    def broken_checkin(*_args, **_fields):
        raise RuntimeError("the check-in could not be recorded")

    provider = _AcceptsThenBreaks()
    monkeypatch.setattr(handover, "open_checkin", broken_checkin)
    first = run_pass(settings, at("2026-12-08T10:00:00-05:00"), channels={"sms": provider, "email": provider})
    later = run_pass(settings, at("2026-12-08T11:00:00-05:00"), channels={"sms": provider, "email": provider})
    assert len(provider.sent) == len(set(provider.sent)) == first["sent"] >= 1
    assert later["sent"] == 0
    rows = [r for r in outbox(session) if r.status == "sent"]
    assert rows and all(r.provider_id and "recording the details failed" in r.status_reason for r in rows)


def test_an_unexpected_error_from_the_provider_call_leaves_the_text_unknown_not_resent(settings, session):
    book(session, starts_at=VISIT)
    provider = _AcceptsThenBreaks(raise_from_send=ValueError("the library broke after the request"))
    run_pass(settings, at("2026-12-09T10:00:00-05:00"), channels={"sms": provider, "email": provider})
    run_pass(settings, at("2026-12-09T12:00:00-05:00"), channels={"sms": provider, "email": provider})
    assert len(provider.sent) == len(set(provider.sent)) >= 1
    assert {r.status for r in outbox(session) if r.id in {int(ref) for ref in provider.sent}} == {"unknown"}


def test_a_pass_hands_out_staff_alerts_first_then_the_longest_waiting_rows(settings, session):
    from reminders.models import OutboxMessage
    from reminders.pipeline import due_ids

    now = at("2026-12-09T10:00:00-05:00")
    late, early = (OutboxMessage(dedupe_key=f"test:{name}", kind="nudge", rule="rebook_nudge", channel="sms",
                                 to_address="+12025550143", planned_for=due, due_at=due)
                   for name, due in (("late", now - timedelta(minutes=1)), ("early", now - timedelta(minutes=30))))
    alert = OutboxMessage(dedupe_key="test:alert", kind="alert", rule="escalation_alert", channel="email",
                          to_address="oncall@clinic.test", body="URGENT", planned_for=now, due_at=now)
    session.add_all([late, early, alert])
    session.commit()
    assert due_ids(session, now) == [alert.id, early.id, late.id]


class TestSpanish:
    def test_a_spanish_patient_gets_spanish_texts_and_email(self, settings, session):
        visit = book(session, starts_at=VISIT, email="maya@example.org", channel="both", welcomed=False)
        visit.patient.language = "es"
        visit.patient.medications_to_hold = "Sin lamotrigina la mañana de la cita"
        session.commit()
        tick(settings, "2026-12-07T10:00:00-05:00")
        welcome, sms, *more = phone_received(settings)
        assert "PARAR" in welcome and "AYUDA" in welcome and "tarifas de mensajes y datos" in welcome
        assert "jueves 10 de diciembre a las 10:00 a. m." in sms
        assert "No coma después de las 4:00 a. m.; líquidos claros hasta las 8:00 a. m." in sms  # every accent kept
        assert "Medicamentos: Sin lamotrigina la mañana de la cita." in "\n".join([sms, *more])
        [email] = outbox(session, channel="email", status="sent")
        assert email.subject == "Cómo prepararse para su primera cita del jueves 10 de diciembre"
        assert "no coma nada después de las 4:00 a. m." in email.body
        assert "Puede tomar líquidos claros" in email.body and "Llegue a las 9:45 a. m." in email.body
        assert "Medicamentos: Sin lamotrigina la mañana de la cita." in email.body
        [html] = [m["html"] for m in read_outbox(settings.effective_outbox_dir) if m["channel"] == "email"]
        assert '<html lang="es">' in html and "Antes de su cita" in html

    def test_a_language_without_templates_falls_back_to_english(self, settings, session, tmp_path):
        visit = book(session, starts_at=VISIT)
        visit.patient.language = "es"
        session.commit()
        bare = tmp_path / "templates"
        bare.mkdir()
        for path in settings.templates_dir.glob("*.j2"):  # English only: no es/ folder
            (bare / path.name).write_text(path.read_text())
        english = settings.model_copy(update={"templates_dir": bare})
        run_pass(english, at("2026-12-07T10:00:00-05:00"))
        [sms] = phone_received(settings)
        assert "your first infusion at" in sms and "Thursday, December 10 at 10:00 AM" in sms


def marked(session) -> list[str]:
    session.expire_all()
    return sorted(a.external_id for a in session.scalars(select(Appointment).where(Appointment.needs_planning)))


class TestPlanningBudget:
    """A scheduled pass (beat's) plans for at most pipeline.SCHEDULED_PLANNING_SECONDS, soonest visits
    first, then hands out what is due; `reminders tick` plans everything first."""

    @pytest.fixture
    def spent_at_once(self, monkeypatch):
        import reminders.pipeline as pipeline

        monkeypatch.setattr(pipeline, "SCHEDULED_PLANNING_SECONDS", 0.0)  # no run starts after the first

    def far_visits_of_one_patient(self, session) -> None:
        # Two visits of one patient are never in one run: the second starts a run of its own.
        book(session, starts_at="2026-12-20T10:00:00-05:00", patient="p2", appointment="x1", phone="+12025550178")
        book(session, starts_at="2026-12-22T10:00:00-05:00", patient="p2", appointment="x2", phone="+12025550178")

    def test_a_scheduled_pass_plans_the_soonest_first_sends_what_is_due_and_leaves_the_rest(
            self, settings, session, spent_at_once):
        self.far_visits_of_one_patient(session)
        soon = book(session, starts_at=VISIT)  # booked last, starts first
        summary = run_pass(settings, at("2026-12-07T10:00:00-05:00"), scheduled=True)
        assert sent(session, appointment_id=soon.id) == [("first_induction_72h", "sms")]
        assert marked(session) == ["x2"]
        assert summary["visits_planned"] == 2 and summary["planning_unfinished"] == 1

        summary = run_pass(settings, at("2026-12-07T10:01:00-05:00"), scheduled=True)
        assert marked(session) == [] and summary["visits_planned"] == 1 and "planning_unfinished" not in summary

    def test_tick_plans_every_marked_visit_before_it_sends(self, settings, session, spent_at_once):
        self.far_visits_of_one_patient(session)
        book(session, starts_at=VISIT)
        summary = tick(settings, "2026-12-07T10:00:00-05:00")
        assert marked(session) == [] and summary["visits_planned"] == 3 and "planning_unfinished" not in summary

    def test_a_visit_moved_away_from_a_reminder_due_now_is_planned_before_any_backlog(
            self, settings, session, spent_at_once):
        """Its old reminder is due: planned later, the pass would hand it out for a visit weeks away
        (and the slot, once used, would leave the real visit without its reminder)."""
        visit = book(session, starts_at=VISIT)
        tick(settings, "2026-12-01T10:00:00-05:00")  # its 72 h reminder is due on the 7th at 10:00
        self.far_visits_of_one_patient(session)  # a backlog that starts before the moved visit
        book(session, starts_at="2026-12-08T10:00:00-05:00", patient="p3", appointment="b1", phone="+12025550179")
        move(session, visit, starts_at="2026-12-30T10:00:00-05:00")
        run_pass(settings, at("2026-12-07T10:00:00-05:00"), scheduled=True)
        assert "a1" not in marked(session) and "x2" in marked(session)  # planned first; the backlog waits
        assert sent(session, appointment_id=visit.id) == []
        [reminder] = outbox(session, appointment_id=visit.id, rule="first_induction_72h")
        assert (reminder.status, reminder.due_at) == ("planned", at("2026-12-27T10:00:00-05:00"))

    def test_a_visit_canceled_while_its_planning_waits_gets_nothing_sent(self, settings, session, spent_at_once):
        """The sender checks the visit again before each send: a canceled visit whose planning waits
        for a later pass (the budget went on sooner visits with rows due too) is never texted."""
        visit = book(session, starts_at=VISIT)
        sooner = [book(session, starts_at=f"2026-12-07T1{n}:00:00-05:00", patient="p2", appointment=f"q{n}",
                       phone="+12025550178") for n in (2, 3)]
        tick(settings, "2026-12-01T10:00:00-05:00")  # all planned, nothing due yet
        move(session, visit, status="canceled")
        for n, other in zip((2, 3), sooner):
            move(session, other, starts_at=f"2026-12-07T1{n}:05:00-05:00")
        summary = run_pass(settings, at("2026-12-07T10:00:00-05:00"), scheduled=True)  # every one has a row due
        assert marked(session) == ["a1", "q3"]  # not planned again in this pass: the sender stopped it
        assert summary["skipped"] >= 1 and sent(session, appointment_id=visit.id) == []
        [reminder] = outbox(session, appointment_id=visit.id, rule="first_induction_72h")
        assert (reminder.status, reminder.status_reason) == ("canceled", "visit canceled")
        tick(settings, "2026-12-07T10:01:00-05:00")
        assert marked(session) == [] and sent(session, appointment_id=visit.id) == []


def test_rows_the_database_refuses_for_one_visit_cost_only_that_visit(settings, session, monkeypatch):
    """The visits of a run are written together; when the database refuses that, each is planned
    again on its own, and only the visit at fault is left for staff."""
    from sqlalchemy.exc import IntegrityError

    import reminders.planning.planning_run as planning_run

    first = book(session, starts_at=VISIT)
    second = book(session, starts_at="2026-12-11T10:00:00-05:00", patient="p2", appointment="a2",
                  phone="+12025550178")
    third = book(session, starts_at="2026-12-12T10:00:00-05:00", patient="p3", appointment="a3",
                 phone="+12025550179")
    real = planning_run.plan

    def refuses_the_seconds_rows(session_, rows, now):
        if any(row.appointment_id == second.id for row in rows):
            raise IntegrityError("INSERT INTO outbox ...", {}, Exception("a row the database refuses"))
        return real(session_, rows, now)

    monkeypatch.setattr(planning_run, "plan", refuses_the_seconds_rows)
    tick(settings, "2026-12-01T10:00:00-05:00")
    assert outbox(session, appointment_id=first.id) and outbox(session, appointment_id=third.id)
    assert outbox(session, appointment_id=second.id) == []
    assert marked(session) == ["a2"]
    session.expire_all()
    assert "IntegrityError" in session.get(Appointment, second.id).planning_error
