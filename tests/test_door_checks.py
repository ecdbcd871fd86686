"""Bad data caught at the door: possible duplicate patients, overlapping visits, zones that are not
regions, clinic holidays, and audit-log filters that are not patient numbers."""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from reminders.config import Settings
from reminders.intake.records import PatientRecord
from reminders.models import Appointment, AuditEntry, Patient, utcnow
from reminders.zones import check_time_zone
from tests.fixtures.staff import add_patient, add_visit, post_form

NY = ZoneInfo("America/New_York")


def next_monday(weeks: int = 1) -> date:
    today = utcnow().astimezone(NY).date()
    return today + timedelta(days=(7 - today.weekday()) + 7 * (weeks - 1))


HOLIDAY = next_monday(2) + timedelta(days=2)  # a Wednesday in a course starting on next_monday(2)


@pytest.fixture
def settings(configure, tmp_path) -> Settings:
    from reminders.migrations import upgrade

    result = configure(DATABASE_URL=f"sqlite:///{tmp_path / 'reminders.db'}",
                       CLINIC_HOLIDAYS=f"{HOLIDAY.isoformat()},2026-01-01")
    upgrade(result.effective_database_url)
    return result


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=NY)


def audited(sessions, action: str) -> list[AuditEntry]:
    with sessions() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def patients(sessions) -> list[Patient]:
    with sessions() as session:
        return list(session.scalars(select(Patient).order_by(Patient.id)))


NEW_MAYA = {"first_name": "Maya", "last_name": "Lopez", "phone": "(202) 555-0143", "email": "",
            "timezone": "America/New_York", "preferred_channel": "sms", "language": "en"}


# --- Possible duplicate patients -----------------------------------------------------------------

def test_a_patient_with_the_same_phone_is_shown_before_a_second_one_is_created(staff_client, sessions):
    with sessions() as session:
        existing = add_patient(session, first="Maya", last="Lopez")
    response = post_form(staff_client, "/patients/new", {**NEW_MAYA, "first_name": "M.", "last_name": "Lopez-Ruiz"})
    assert response.status_code == 409
    page = response.text
    assert "This patient may already be on file" in page
    assert "Maya Lopez, (202) 555-0143 (same phone)" in page
    assert f'href="/patients/{existing.id}">Use Maya Lopez</a>' in page
    assert 'name="create_anyway" value="1"' in page and "Create M. Lopez-Ruiz anyway" in page
    assert 'value="Lopez-Ruiz"' in page  # what was typed is kept
    assert len(patients(sessions)) == 1
    assert audited(sessions, "duplicate_patient_shown")[0].detail["possible_duplicates"] == [existing.id]

    anyway = post_form(staff_client, "/patients/new",
                       {**NEW_MAYA, "first_name": "M.", "last_name": "Lopez-Ruiz", "create_anyway": "1"})
    assert anyway.status_code == 302
    assert [p.full_name for p in patients(sessions)] == ["Maya Lopez", "M. Lopez-Ruiz"]
    created = audited(sessions, "create_patient")[0]
    assert created.detail["created_despite_possible_duplicates"] == [existing.id]


def test_the_same_name_with_another_phone_is_a_possible_duplicate_too(staff_client, sessions):
    with sessions() as session:
        add_patient(session, first="Maya", last="Lopez", phone="+12025550199")
    response = post_form(staff_client, "/patients/new", {**NEW_MAYA, "first_name": "maya", "last_name": "LOPEZ"})
    assert response.status_code == 409 and "(same name)" in response.text


def test_someone_new_is_created_at_once_and_editing_never_asks(staff_client, sessions):
    with sessions() as session:
        other = add_patient(session, first="Sam", last="Okafor", phone="+12025550178")
    assert post_form(staff_client, "/patients/new", NEW_MAYA).status_code == 302
    # Editing Sam to a number Maya also has is an edit, not a new patient: no question asked.
    edited = post_form(staff_client, f"/patients/{other.id}/edit", {**NEW_MAYA, "first_name": "Sam",
                                                                   "last_name": "Okafor"})
    assert edited.status_code == 302


# --- Overlapping visits --------------------------------------------------------------------------

def book(client, patient_id: int, day: date, clock: str, minutes: str = "60"):
    return post_form(client, f"/patients/{patient_id}/visits/new",
                     {"kind": "induction", "date": day.isoformat(), "time": clock, "duration_minutes": minutes,
                      "location": "Suite 2", "status": "scheduled"})


def test_a_visit_overlapping_another_of_the_same_patient_is_refused(staff_client, sessions):
    day = next_monday()
    with sessions() as session:
        patient = add_patient(session)
        add_visit(session, patient, "v1", at(day, 9))  # 50 minutes: 9:00 to 9:50
    refused = book(staff_client, patient.id, day, "09:30")
    assert refused.status_code == 409
    zone = at(day, 9).tzname()
    assert (f"Maya Lopez already has an induction infusion then: {day:%a %b} {day.day}, {day.year}, 9:00 AM {zone} "
            f"to 9:50 AM {zone}. Choose another time, or change that visit.") in refused.text
    assert 'value="09:30"' in refused.text  # the form keeps what was typed
    with sessions() as session:
        assert len(session.scalars(select(Appointment)).all()) == 1
    assert len(audited(sessions, "overlap_refused")) == 1
    assert book(staff_client, patient.id, day, "09:50").status_code == 302  # right after it: fine


def test_a_canceled_visit_frees_its_time_and_a_visit_does_not_overlap_itself(staff_client, sessions):
    day = next_monday()
    with sessions() as session:
        patient = add_patient(session)
        kept = add_visit(session, patient, "v1", at(day, 9))
        add_visit(session, patient, "v2", at(day, 11), status="canceled")
    assert book(staff_client, patient.id, day, "11:00").status_code == 302
    moved = post_form(staff_client, f"/visits/{kept.id}/edit",
                      {"kind": "induction", "date": day.isoformat(), "time": "09:15", "duration_minutes": "50",
                       "location": "Suite 2", "status": "scheduled"})
    assert moved.status_code == 302


def test_a_course_overlapping_a_booked_visit_is_refused(staff_client, sessions):
    monday = next_monday()
    with sessions() as session:
        patient = add_patient(session)
        add_visit(session, patient, "single", at(monday + timedelta(days=2), 9, 30), kind="maintenance")
    form = {"first_date": monday.isoformat(), "time": "09:00", "pattern": "mon-wed-fri", "length": "3",
            "duration_minutes": "60", "location": "Suite 200", "action": "preview"}
    response = post_form(staff_client, f"/patients/{patient.id}/courses/new", form)
    wednesday = monday + timedelta(days=2)
    assert response.status_code == 409
    assert f"Maya Lopez already has a maintenance visit then: {wednesday:%a %b} {wednesday.day}" in response.text


# --- Time zones: regions only --------------------------------------------------------------------

@pytest.mark.parametrize("typed, advice", [
    ("EST", "EST is a fixed offset (no summer time); use America/New_York"),
    ("UTC-5", "UTC-5 is a fixed offset (no summer time); use America/New_York"),
    ("Etc/GMT+5", "Etc/GMT+5 is a fixed offset (no summer time); use America/New_York"),
    ("EST5EDT", "EST5EDT is an old alias, not a region; use America/New_York"),
    ("US/Pacific", "US/Pacific is an old alias, not a region; use America/Los_Angeles"),
])
def test_only_region_zones_are_accepted(typed, advice):
    with pytest.raises(ValueError, match=re.escape(advice)):
        check_time_zone(typed)
    with pytest.raises(ValueError, match=re.escape(advice)):
        PatientRecord(external_id="p", first_name="A", phone="+12025550143", timezone=typed)
    assert check_time_zone("America/New_York") == "America/New_York"


def test_the_clinic_zone_setting_refuses_a_fixed_offset(configure):
    with pytest.raises(ValueError, match="CLINIC_TIMEZONE EST is a fixed offset"):
        Settings(clinic_timezone="EST")


def test_the_patient_form_refuses_est_and_names_the_region(staff_client, sessions):
    response = post_form(staff_client, "/patients/new", {**NEW_MAYA, "timezone": "EST"})
    assert response.status_code == 422
    assert 'id="err-timezone">EST is a fixed offset (no summer time); use America/New_York.</span>' in response.text
    assert '<option value="EST">' not in response.text and '<option value="America/New_York">' in response.text
    assert patients(sessions) == []


# --- Clinic holidays -----------------------------------------------------------------------------

def test_holidays_are_read_from_the_setting():
    assert Settings(clinic_holidays="2026-12-25, 2027-01-01").clinic_holidays == [date(2026, 12, 25), date(2027, 1, 1)]
    with pytest.raises(ValueError, match="CLINIC_HOLIDAYS: '25/12' is not a date like 2026-12-25"):
        Settings(clinic_holidays="25/12")


def test_a_course_skips_a_holiday_and_cannot_start_on_one(staff_client, sessions):
    monday = next_monday(2)
    with sessions() as session:
        patient = add_patient(session)
    form = {"first_date": monday.isoformat(), "time": "09:00", "pattern": "mon-wed-fri", "length": "3",
            "duration_minutes": "60", "location": "Suite 200", "action": "preview"}
    response = post_form(staff_client, f"/patients/{patient.id}/courses/new", form)
    assert response.status_code == 200
    assert f"or on a clinic holiday ({HOLIDAY:%b} {HOLIDAY.day}" in response.text
    preview = response.text.split('class="course-visits"')[1].split("</ol>")[0]
    friday = HOLIDAY + timedelta(days=2)  # Mon/Wed/Fri: the Wednesday holiday moves that visit to Friday
    assert f"{HOLIDAY:%a %b} {HOLIDAY.day}," not in preview and f"{friday:%a %b} {friday.day}," in preview
    assert preview.count("<li>") == 3
    on_holiday = post_form(staff_client, f"/patients/{patient.id}/courses/new", {**form, "first_date": HOLIDAY.isoformat()})
    assert on_holiday.status_code == 422 and "is a clinic holiday. Choose an open day." in on_holiday.text


def test_the_replacement_suggested_for_a_canceled_visit_skips_a_holiday(staff_client, sessions):
    monday = next_monday(1)  # the week before the holiday's
    with sessions() as session:
        patient = add_patient(session)
        visits = [add_visit(session, patient, f"v{n}", at(monday + timedelta(days=d), 10))
                  for n, d in enumerate((0, 2, 4, 7))]
    # The series ends on the holiday week's Monday; its next Mon/Wed/Fri day is the holiday: Friday instead.
    response = post_form(staff_client, f"/visits/{visits[1].id}/status", {"status": "canceled"}, follow_redirects=True)
    friday = HOLIDAY + timedelta(days=2)
    assert f"Add a replacement at the end of the series: {friday:%a} {friday.day} {friday:%b} 10:00" in response.text


def test_a_visit_booked_by_hand_on_a_holiday_is_saved_with_a_warning(staff_client, sessions):
    with sessions() as session:
        patient = add_patient(session)
    response = book(staff_client, patient.id, HOLIDAY, "10:00")
    assert response.status_code == 302
    page = staff_client.get(response.headers["Location"]).text
    assert f"{HOLIDAY:%A, %B} {HOLIDAY.day} is a clinic holiday. The visit is booked anyway" in page
    with sessions() as session:
        assert len(session.scalars(select(Appointment)).all()) == 1


# --- The audit log's filters ---------------------------------------------------------------------

@pytest.mark.parametrize("value", ["99999999999999999999999999", "abc", "²", "-1", "1e9", "12%00"])
def test_the_audit_log_answers_a_page_for_any_patient_value(admin_client, value):
    response = admin_client.get("/admin/audit", query_string={"patient": value})
    assert response.status_code == 200
    assert "no patient has the number" in response.text or "a patient no longer on file" in response.text
