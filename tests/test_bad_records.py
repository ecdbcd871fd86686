"""One bad record never stops the clinic: a visit that cannot be planned is kept for staff with
the reason, everyone else's reminders go, and dates outside the booking window are refused at
every door (API, CSV, staff form) with a reason a person can act on."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from reminders.intake.csv_import import import_csv_text
from reminders.intake.records import AppointmentRecord, VisitWindow, visit_window
from reminders.intake.upsert import upsert_appointment
from reminders.models import Appointment, OutboxMessage, utcnow
from reminders.pipeline import run_pass
from tests.conftest import APP_NOW, at, both_databases
from tests.helpers import book, outbox, sent

VISIT = "2026-12-10T10:00:00-05:00"
FAR_FUTURE = at("9999-12-01T00:00:00+00:00")


# Every test here runs on SQLite (the default) and on PostgreSQL.
settings = both_databases()


def stored_far_in_the_future(session, external_id: str = "a2", patient: str = "p2") -> Appointment:
    """A maintenance visit in the year 9999, as the API accepted before the range checks (written past
    them): its nudge to book, 42 days later, is past the end of the calendar."""
    visit = book(session, starts_at=VISIT, patient=patient, appointment=external_id, phone="+12025550178",
                 first_name="Sam", kind="maintenance")
    session.execute(update(Appointment).where(Appointment.id == visit.id).values(starts_at=FAR_FUTURE))
    session.commit()
    return visit


def fresh(session, appointment_id: int) -> Appointment:
    session.expire_all()
    return session.get(Appointment, appointment_id)


def test_a_visit_in_the_year_9999_does_not_stop_anyone_elses_reminders(settings, session, caplog):
    maya = book(session, starts_at=VISIT)
    bad = stored_far_in_the_future(session)
    with caplog.at_level(logging.ERROR, logger="reminders.planning.planner"):
        summary = run_pass(settings, at("2026-12-07T10:00:00-05:00"))
    assert summary["sent"] == 1 and sent(session, appointment_id=maya.id) == [("first_induction_72h", "sms")]
    broken = fresh(session, bad.id)
    assert broken.needs_planning and "check the year" in broken.planning_error
    assert outbox(session, appointment_id=bad.id) == []
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert "9999" not in caplog.text and "Sam" not in caplog.text

    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="reminders.planning.planner"):
        for hour in range(10, 14):  # later passes leave it alone: no hot loop, no log flood
            run_pass(settings, at(f"2026-12-08T{hour}:00:00-05:00"))
        run_pass(settings, at("2026-12-09T10:01:00-05:00"))
    assert caplog.records == []
    assert sent(session, appointment_id=maya.id)[-1] == ("first_induction_24h", "sms")


def test_a_visit_that_cannot_be_planned_is_planned_again_once_staff_fix_it(settings, session):
    bad = stored_far_in_the_future(session)
    run_pass(settings, at("2026-12-01T10:00:00-05:00"))
    assert fresh(session, bad.id).planning_error
    visit = fresh(session, bad.id)
    upsert_appointment(session, visit.patient, AppointmentRecord(
        external_id="a2", kind="maintenance", starts_at=at("2026-12-11T10:00:00-05:00")), at("2026-12-01T15:00:00Z"))
    session.commit()
    assert fresh(session, bad.id).planning_error is None
    run_pass(settings, at("2026-12-01T10:05:00-05:00"))
    fixed = fresh(session, bad.id)
    assert not fixed.needs_planning and fixed.planning_error is None
    assert {row.rule for row in outbox(session, appointment_id=bad.id)} >= {"maintenance_7d", "maintenance_24h"}


def test_one_failing_visit_rolls_back_only_its_own_plan(settings, session, monkeypatch):
    import reminders.planning.one_visit as one_visit

    first = book(session, starts_at=VISIT)
    second = book(session, starts_at="2026-12-11T10:00:00-05:00", patient="p2", appointment="a2",
                  phone="+12025550178")
    third = book(session, starts_at="2026-12-12T10:00:00-05:00", patient="p3", appointment="a3",
                 phone="+12025550179")
    real = one_visit.moved_notices

    def fails_for_the_second(session_, appointment, *args):
        if appointment.id == second.id:
            raise RuntimeError("a bug that only this visit meets")
        return real(session_, appointment, *args)

    monkeypatch.setattr(one_visit, "moved_notices", fails_for_the_second)
    run_pass(settings, at("2026-12-01T10:00:00-05:00"))
    assert outbox(session, appointment_id=first.id) and outbox(session, appointment_id=third.id)
    assert outbox(session, appointment_id=second.id) == []
    assert "RuntimeError" in fresh(session, second.id).planning_error
    assert "a bug" not in fresh(session, second.id).planning_error  # the details are in the log, not on screen


def three_visits(session):
    first = book(session, starts_at=VISIT)
    second = book(session, starts_at="2026-12-11T10:00:00-05:00", patient="p2", appointment="a2",
                  phone="+12025550178")
    third = book(session, starts_at="2026-12-12T10:00:00-05:00", patient="p3", appointment="a3",
                 phone="+12025550179")
    return first, second, third


def interrupted_at(monkeypatch, visit_id: int, make_error):
    """Planning `visit_id` raises make_error() once its rows are written (a half-made plan)."""
    import reminders.planning.one_visit as one_visit

    real = one_visit.note_duplicate_bookings

    def interrupts(session_, appointment):
        if appointment.id == visit_id:
            raise make_error()
        return real(session_, appointment)

    monkeypatch.setattr(one_visit, "note_duplicate_bookings", interrupts)


def soft_time_limit():
    from celery.exceptions import SoftTimeLimitExceeded

    return SoftTimeLimitExceeded()


@pytest.mark.parametrize("make_error", [soft_time_limit, KeyboardInterrupt, SystemExit],
                         ids=["celery-soft-time-limit", "ctrl-c", "exit"])
def test_a_time_limit_or_a_stop_while_planning_is_never_recorded_as_a_bad_record(settings, session, monkeypatch,
                                                                                    caplog, make_error):
    first, second, third = three_visits(session)
    interrupted_at(monkeypatch, second.id, make_error)
    with caplog.at_level(logging.WARNING, logger="reminders.planning.planner"):
        with pytest.raises(type(make_error())):  # the pass (the Celery task) ends: it is not swallowed
            run_pass(settings, at("2026-12-01T10:00:00-05:00"))
    cut = fresh(session, second.id)
    assert cut.needs_planning and cut.planning_error is None  # marked for the next pass, nothing for staff
    assert outbox(session, appointment_id=second.id) == []  # its half-made plan rolled back
    assert not fresh(session, first.id).needs_planning and outbox(session, appointment_id=first.id)  # kept
    assert fresh(session, third.id).needs_planning  # not reached: the next pass plans it
    assert "could not be planned" not in caplog.text and "stays marked for the next pass" in caplog.text

    monkeypatch.undo()
    run_pass(settings, at("2026-12-01T10:01:00-05:00"))
    for visit in (first, second, third):
        assert not fresh(session, visit.id).needs_planning and fresh(session, visit.id).planning_error is None
        assert outbox(session, appointment_id=visit.id)


def test_the_database_not_answering_in_time_leaves_the_visit_for_the_next_pass_and_plans_the_others(
        settings, session, monkeypatch, caplog):
    from sqlalchemy.exc import OperationalError

    first, second, third = three_visits(session)
    interrupted_at(monkeypatch, second.id, lambda: OperationalError(
        "SELECT ...", {}, Exception("canceling statement due to statement timeout")))
    with caplog.at_level(logging.WARNING, logger="reminders.planning.planner"):
        run_pass(settings, at("2026-12-01T10:00:00-05:00"))
    slow = fresh(session, second.id)
    assert slow.needs_planning and slow.planning_error is None and outbox(session, appointment_id=second.id) == []
    assert outbox(session, appointment_id=first.id) and outbox(session, appointment_id=third.id)
    assert "did not answer" in caplog.text and "could not be planned" not in caplog.text

    monkeypatch.undo()
    run_pass(settings, at("2026-12-01T10:01:00-05:00"))
    assert not fresh(session, second.id).needs_planning and outbox(session, appointment_id=second.id)


@pytest.mark.postgres
def test_a_real_statement_timeout_while_planning_one_visit_costs_only_that_visit_this_pass(
        configure, postgres_url, monkeypatch, caplog):
    from sqlalchemy import text

    import reminders.planning.one_visit as one_visit
    from reminders.db import dispose_engines, session_factory
    from reminders.migrations import upgrade

    settings_ = configure(DATABASE_URL=postgres_url, DATABASE_STATEMENT_TIMEOUT_SECONDS="0.2")
    upgrade(postgres_url)
    dispose_engines()
    with session_factory(postgres_url)() as session:
        first, second, third = three_visits(session)
        real = one_visit.note_duplicate_bookings

        def slow_for_the_second(session_, appointment):
            if appointment.id == second.id:
                session_.execute(text("SELECT pg_sleep(5)"))  # canceled by the server after 0.2 s
            return real(session_, appointment)

        monkeypatch.setattr(one_visit, "note_duplicate_bookings", slow_for_the_second)
        with caplog.at_level(logging.WARNING, logger="reminders.planning.planner"):
            run_pass(settings_, at("2026-12-01T10:00:00-05:00"))
        assert outbox(session, appointment_id=first.id) and outbox(session, appointment_id=third.id)
        slow = fresh(session, second.id)
        assert slow.needs_planning and slow.planning_error is None
        assert "did not answer while planning (QueryCanceled)" in caplog.text


def test_staff_and_the_api_see_why_a_visit_has_no_reminders(settings, client, api_headers, sessions, staff_client):
    with sessions() as session:
        bad = stored_far_in_the_future(session)
    run_pass(settings, at("2026-12-01T10:00:00-05:00"))
    body = client.get("/api/v1/appointments/a2", headers=api_headers).json
    assert body["needs_planning"] is True and "check the year" in body["planning_error"]
    page = staff_client.get(f"/patients/{bad.patient_id}").get_data(as_text=True)
    assert "Reminders not planned" in page and "check the year" in page
    assert staff_client.get("/").status_code == 200  # the Today page still loads for everyone
    assert client.get("/api/v1/followups", headers=api_headers).status_code == 200


# ---------------------------------------------------------------- at the door

def test_the_api_refuses_a_visit_in_the_year_9999_and_stores_nothing(client, api_headers, sessions):
    response = client.post("/api/v1/appointments", headers=api_headers, json={
        "external_id": "a1", "patient_external_id": "p1", "first_name": "Maya", "phone": "+12025550143",
        "timezone": "America/New_York", "kind": "induction", "starts_at": "9999-12-01T10:00:00-05:00"})
    assert response.status_code == 422
    assert response.json["fields"] == ["starts_at"] and "check the year" in response.json["error"]
    with sessions() as session:
        assert session.scalars(select(Appointment)).all() == []


def test_the_api_keeps_visits_within_the_booking_window(client, api_headers, sessions):
    # The API's clock is conftest.APP_NOW, 2026-11-01.
    base = {"external_id": "a1", "patient_external_id": "p1", "first_name": "Maya", "phone": "+12025550143",
            "timezone": "America/New_York", "kind": "induction"}
    too_far = client.post("/api/v1/appointments", headers=api_headers, json={**base, "starts_at": "2028-11-02T10:00:00Z"})
    assert too_far.status_code == 422 and "more than 730 days ahead" in too_far.json["error"]
    too_old = client.post("/api/v1/appointments", headers=api_headers, json={**base, "starts_at": "2025-10-31T10:00:00Z"})
    assert too_old.status_code == 422 and "more than 365 days in the past" in too_old.json["error"]
    ok = client.post("/api/v1/appointments", headers=api_headers, json={**base, "starts_at": "2028-10-30T10:00:00Z"})
    assert ok.status_code == 201
    moved = client.patch("/api/v1/appointments/a1", headers=api_headers, json={"starts_at": "9999-01-01T00:00:00Z"})
    assert moved.status_code == 422 and moved.json["fields"] == ["starts_at"]


def test_the_booking_window_is_a_setting(configure, settings, api_headers):
    from reminders.web import create_app
    from tests.conftest import APP_NOW

    narrow = configure(DATABASE_URL=settings.database_url, VISIT_WINDOW_FUTURE_DAYS=30, VISIT_WINDOW_PAST_DAYS=7)
    app = create_app(narrow, {"TESTING": True, "CLOCK": lambda: APP_NOW})
    base = {"external_id": "a1", "patient_external_id": "p1", "first_name": "Maya", "phone": "+12025550143",
            "timezone": "America/New_York", "kind": "induction"}
    response = app.test_client().post("/api/v1/appointments", headers=api_headers,
                                      json={**base, "starts_at": "2026-12-15T10:00:00Z"})
    assert response.status_code == 422 and "more than 30 days ahead" in response.json["error"]


CSV_HEADER = ("external_id,patient_external_id,first_name,last_name,phone,email,timezone,preferred_channel,kind,"
              "starts_at,duration_minutes,location,status")


def csv_row(external_id: str, starts_at: str, patient: str = "p1") -> str:
    return f"{external_id},{patient},Maya,Lopez,+12025550143,,America/New_York,sms,induction,{starts_at},50,,"


def test_a_csv_row_in_the_year_9999_is_rejected_and_the_rest_imported(settings, session):
    text = "\n".join([CSV_HEADER, csv_row("a1", "2026-12-10T10:00:00-05:00"),
                      csv_row("a2", "9999-12-01T10:00:00-05:00", "p2"), csv_row("a3", "0001-01-01T00:00:00+05:00", "p3")])
    report = import_csv_text(session, text, at("2026-11-01T12:00:00Z"))
    assert [row.result for row in report.rows] == ["created", "rejected", "rejected"]
    assert "check the year" in report.rows[1].reasons[0]
    assert "outside the calendar" in report.rows[2].reasons[0]
    assert [a.external_id for a in session.scalars(select(Appointment))] == ["a1"]


def test_a_csv_import_keeps_visits_within_the_booking_window(settings, session):
    now = at("2026-11-01T12:00:00Z")
    text = "\n".join([CSV_HEADER, csv_row("a1", "2026-12-10T10:00:00-05:00"), csv_row("a2", "2029-12-01T10:00:00-05:00")])
    with visit_window(VisitWindow.from_settings(settings, now)):
        report = import_csv_text(session, text, now)
    assert [row.result for row in report.rows] == ["created", "rejected"]
    assert "more than 730 days ahead" in report.rows[1].reasons[0]


def test_the_import_command_applies_the_booking_window(settings, tmp_path):
    from click.testing import CliRunner

    from reminders.cli import main

    path = tmp_path / "visits.csv"
    far = (utcnow() + timedelta(days=800)).strftime("%Y-%m-%dT10:00:00+00:00")
    near = (utcnow() + timedelta(days=10)).strftime("%Y-%m-%dT10:00:00+00:00")
    path.write_text("\n".join([CSV_HEADER, csv_row("a1", near), csv_row("a2", far, "p2")]) + "\n")
    result = CliRunner().invoke(main, ["import", str(path)])
    assert result.exit_code == 1, result.output
    assert "line 3: rejected (a2): starts_at" in result.output and "days ahead" in result.output


@pytest.mark.parametrize("day, reason", [
    ("9999-12-01", "not a plausible visit date"),
    ((APP_NOW + timedelta(days=800)).date().isoformat(), "days ahead"),  # the staff app's clock
    ((APP_NOW - timedelta(days=400)).date().isoformat(), "days in the past"),
])
def test_the_staff_form_refuses_a_date_outside_the_booking_window(staff_client, sessions, day, reason):
    from tests.fixtures.staff import add_patient, post_form

    with sessions() as session:
        patient = add_patient(session)
    response = post_form(staff_client, f"/patients/{patient.id}/visits/new", {
        "kind": "induction", "date": day, "time": "10:00", "duration_minutes": "60", "location": "", "status": "scheduled"})
    assert response.status_code == 422 and reason in response.get_data(as_text=True)
    with sessions() as session:
        assert session.scalars(select(Appointment)).all() == []


def test_the_staff_form_lets_an_old_visit_be_closed_without_moving_it(staff_client, sessions):
    from tests.fixtures.staff import post_form

    with sessions() as session:
        # Noon in New York, 400 days back: never the repeated hour of a clock change.
        when = (utcnow() - timedelta(days=400)).replace(hour=17, minute=0, second=0, microsecond=0)
        visit = book(session, starts_at=when, patient="p1", appointment="old")
    form = staff_client.get(f"/visits/{visit.id}/edit")
    assert form.status_code == 200
    with sessions() as session:
        stored = session.get(Appointment, visit.id)
        from zoneinfo import ZoneInfo

        local = stored.starts_at.astimezone(ZoneInfo("America/New_York"))
    response = post_form(staff_client, f"/visits/{visit.id}/edit", {
        "kind": "induction", "date": local.date().isoformat(), "time": local.strftime("%H:%M"),
        "duration_minutes": "60", "location": "Room 3", "status": "completed"})
    assert response.status_code == 302
    with sessions() as session:
        assert session.get(Appointment, visit.id).location == "Room 3"


def test_the_database_refuses_values_intake_would_refuse(pg_settings):
    from sqlalchemy.exc import IntegrityError

    from reminders.db import session_factory

    with session_factory(pg_settings.effective_database_url)() as session:
        visit = book(session, starts_at=VISIT)
        for values in ({"status": "postponed"}, {"kind": "booster"}, {"duration_minutes": 100000}):
            with pytest.raises(IntegrityError):
                session.execute(update(Appointment).where(Appointment.id == visit.id).values(**values))
                session.flush()
            session.rollback()
        with pytest.raises(IntegrityError):
            session.add(OutboxMessage(dedupe_key="x", kind="reminder", rule="r", channel="sms", planned_for=at(VISIT),
                                      due_at=at(VISIT), status="lost"))
            session.flush()


@pytest.mark.parametrize("field, value, reason", [
    # In the staff form's words, beside the field (the API and the CSV report say it in field names).
    ("first_name", "Ma\x00ya", "First name contains a NUL character."),
    ("timezone", "A" * 5000, "Choose a time zone from the list"),
    ("timezone", "localtime", "Choose a time zone from the list"),
    ("last_name", "L" * 101, "Keep this to 100 characters or fewer."),
])
def test_the_staff_patient_form_refuses_what_its_columns_cannot_hold(staff_client, sessions, field, value, reason):
    from reminders.models import Patient
    from tests.fixtures.staff import post_form

    form = {"first_name": "Ana", "last_name": "Diaz", "phone": "(202) 555-0143", "email": "", "notes": "a\x00b",
            "timezone": "America/New_York", "preferred_channel": "sms", field: value}
    response = post_form(staff_client, "/patients/new", form)
    assert response.status_code == 422 and reason in response.get_data(as_text=True)
    with sessions() as session:
        assert session.scalars(select(Patient)).all() == []
    saved = post_form(staff_client, "/patients/new", {**form, field: "Ana" if field != "timezone" else "America/New_York"})
    assert saved.status_code == 302
    with sessions() as session:
        assert session.scalar(select(Patient)).notes == "ab"
