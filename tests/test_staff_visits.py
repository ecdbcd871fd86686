"""Visits by hand: patients and visits entered by staff go through intake, so planning follows."""
from __future__ import annotations

import io
import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from reminders.intake import import_jobs
from reminders.models import Appointment, AuditEntry, Course, OutboxMessage, Patient
from reminders.pipeline import run_pass
from tests.conftest import clock_now
from tests.fixtures.staff import add_patient, add_visit, post_form

NY = ZoneInfo("America/New_York")


def local_day(days: int) -> str:
    return (clock_now().astimezone(NY).date() + timedelta(days=days)).isoformat()


def outbox(sessions, appointment_id: int) -> dict[tuple[str, str], str]:
    with sessions() as session:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.appointment_id == appointment_id)).all()
        return {(row.rule, row.channel): row.status for row in rows}


def only(sessions, model):
    with sessions() as session:
        rows = session.scalars(select(model)).all()
        assert len(rows) == 1, rows
        return rows[0]


def actions(sessions) -> list[str]:
    with sessions() as session:
        return session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()


def book(client, patient_id: int, day: str, clock: str = "10:00", kind: str = "induction"):
    return post_form(client, f"/patients/{patient_id}/visits/new",
                     {"kind": kind, "date": day, "time": clock, "duration_minutes": "60", "location": "Suite 2",
                      "status": "scheduled"})


def test_a_patient_and_a_visit_entered_by_hand_are_planned(staff_client, sessions, settings):
    response = post_form(staff_client, "/patients/new", {
        "first_name": "Ana", "last_name": "Diaz", "phone": "(202) 555-0143", "email": "Ana@Example.org",
        "timezone": "America/New_York", "preferred_channel": "both", "notes": "Prefers mornings",
    })
    patient = only(sessions, Patient)
    assert response.status_code == 302 and response.headers["Location"] == f"/patients/{patient.id}"
    assert patient.phone == "+12025550143" and patient.email == "ana@example.org"
    assert patient.external_id.startswith("staff-p-") and patient.notes == "Prefers mornings"

    day = local_day(5)
    assert book(staff_client, patient.id, day).status_code == 302
    visit = only(sessions, Appointment)
    assert visit.starts_at == datetime.combine(datetime.fromisoformat(day).date(), time(10), tzinfo=NY)
    assert visit.needs_planning is True and visit.kind == "induction" and visit.number_in_course == 1

    run_pass(settings, clock_now())
    assert outbox(sessions, visit.id) == {
        ("first_induction_72h", "sms"): "planned", ("first_induction_72h", "email"): "planned",
        ("first_induction_24h", "sms"): "planned", ("checkin_day_after", "sms"): "planned",
        ("rebook_nudge", "sms"): "planned",
    }
    assert only(sessions, Appointment).needs_planning is False
    assert actions(sessions)[-2:] == ["create_patient", "create_visit"]


def test_canceling_by_hand_cancels_the_pending_messages(staff_client, sessions, settings):
    with sessions() as session:
        patient = add_patient(session)
        visit = add_visit(session, patient, "v1", clock_now() + timedelta(days=5))
    run_pass(settings, clock_now())
    assert set(outbox(sessions, visit.id).values()) == {"planned"}
    response = post_form(staff_client, f"/visits/{visit.id}/status", {"status": "canceled"}, follow_redirects=True)
    assert "Visit canceled." in response.text
    canceled = only(sessions, Appointment)
    assert canceled.status == "canceled" and canceled.canceled_at is not None and canceled.needs_planning is True
    run_pass(settings, clock_now())
    assert set(outbox(sessions, visit.id).values()) == {"canceled"}
    assert "visit_canceled" in actions(sessions)


def test_completed_and_no_show_decide_the_check_ins(staff_client, sessions, settings):
    with sessions() as session:
        patient = add_patient(session)
    assert book(staff_client, patient.id, local_day(-1), "10:00").status_code == 302  # entered a day late
    visit = only(sessions, Appointment)
    run_pass(settings, visit.starts_at + timedelta(hours=1))
    assert outbox(sessions, visit.id) == {("checkin_day_after", "sms"): "planned", ("rebook_nudge", "sms"): "planned"}

    post_form(staff_client, f"/visits/{visit.id}/status", {"status": "completed"})
    assert only(sessions, Appointment).status == "completed"
    assert only(sessions, Appointment).needs_planning is True
    run_pass(settings, visit.starts_at + timedelta(hours=2))
    assert outbox(sessions, visit.id)[("checkin_day_after", "sms")] == "planned"

    asked = post_form(staff_client, f"/visits/{visit.id}/status", {"status": "no_show"})
    assert asked.status_code == 200 and "Mark Maya Lopez a no-show?" in asked.text  # a confirmation first
    assert only(sessions, Appointment).status == "completed"
    post_form(staff_client, f"/visits/{visit.id}/status", {"status": "no_show", "confirmed": "yes"})
    marked = only(sessions, Appointment)
    assert marked.status == "no_show"
    run_pass(settings, visit.starts_at + timedelta(hours=3))
    # "We missed you" waits for the end of the undo window (NO_SHOW_UNDO_MINUTES), then goes.
    assert outbox(sessions, visit.id) == {("checkin_day_after", "sms"): "canceled", ("rebook_nudge", "sms"): "planned",
                                          ("missed_visit", "sms"): "planned"}
    with sessions() as session:
        [missed] = session.scalars(select(OutboxMessage).where(OutboxMessage.rule == "missed_visit")).all()
        assert missed.planned_for == marked.status_changed_at + timedelta(minutes=5)
    assert actions(sessions)[-2:] == ["visit_completed", "visit_no_show"]


def test_a_future_visit_cannot_be_marked_completed(staff_client, sessions):
    with sessions() as session:
        patient = add_patient(session)
        visit = add_visit(session, patient, "v1", clock_now() + timedelta(days=3))
    response = post_form(staff_client, f"/visits/{visit.id}/status", {"status": "completed"}, follow_redirects=True)
    assert "on its day or later" in response.text
    assert only(sessions, Appointment).status == "scheduled"


def test_rescheduling_moves_the_reminders(staff_client, sessions, settings):
    with sessions() as session:
        patient = add_patient(session, channel="sms")
        visit = add_visit(session, patient, "v1", clock_now() + timedelta(days=5))
        visit.confirmed_at = clock_now()
        visit.status = "confirmed"
        session.commit()
    run_pass(settings, clock_now())
    page = staff_client.get(f"/visits/{visit.id}/edit").text
    assert 'value="Suite 200"' in page and "America/New_York" in page
    day = local_day(8)
    response = post_form(staff_client, f"/visits/{visit.id}/edit", {
        "kind": "induction", "date": day, "time": "14:30", "duration_minutes": "45", "location": "Suite 3",
        "status": "confirmed",
    })
    assert response.status_code == 302
    moved = only(sessions, Appointment)
    assert moved.starts_at == datetime.combine(datetime.fromisoformat(day).date(), time(14, 30), tzinfo=NY)
    assert moved.status == "scheduled" and moved.confirmed_at is None  # the confirmation was for the old time
    assert moved.needs_planning is True
    run_pass(settings, clock_now())
    with sessions() as session:
        reminder = session.scalar(select(OutboxMessage).where(OutboxMessage.rule == "first_induction_24h"))
        assert reminder.planned_for == moved.starts_at - timedelta(hours=24)


def test_visit_form_refuses_a_time_that_does_not_exist(staff_client, sessions):
    with sessions() as session:
        patient = add_patient(session)
    response = book(staff_client, patient.id, "2030-03-10", "02:30")
    assert response.status_code == 422
    assert "does not exist in America/New_York" in response.text
    assert 'id="err-time"' in response.text and 'aria-describedby="err-time"' in response.text  # beside the time
    missing = book(staff_client, patient.id, "", "10:00").text
    assert "The date is missing" in missing and 'aria-describedby="err-date"' in missing


def test_a_patient_needs_no_last_name(staff_client, sessions):
    response = post_form(staff_client, "/patients/new", {
        "first_name": "Cher", "last_name": " ", "phone": "+12025550143", "timezone": "America/New_York",
        "preferred_channel": "sms",
    })
    assert response.status_code == 302
    assert only(sessions, Patient).full_name == "Cher"


def test_patient_form_shows_what_to_fix(staff_client, sessions):
    response = post_form(staff_client, "/patients/new", {
        "first_name": "", "phone": "12", "timezone": "Mars/Base", "preferred_channel": "sms",
    })
    assert response.status_code == 422
    assert "Enter the patient&#39;s first name." in response.text
    assert "Choose a time zone from the list" in response.text
    with sessions() as session:
        assert session.scalar(select(Patient)) is None


def test_editing_contact_details_re_plans_the_patient(staff_client, sessions):
    with sessions() as session:
        patient = add_patient(session, channel="sms")
        visit = add_visit(session, patient, "v1", clock_now() + timedelta(days=5))
        visit.needs_planning = False
        session.commit()
    page = staff_client.get(f"/patients/{patient.id}/edit").text
    assert 'value="Maya"' in page
    post_form(staff_client, f"/patients/{patient.id}/edit", {
        "first_name": "Maya", "last_name": "Lopez", "phone": "+12025550199", "email": "maya@example.org",
        "timezone": "America/Chicago", "preferred_channel": "sms",
    })
    with sessions() as session:
        assert session.get(Patient, patient.id).timezone == "America/Chicago"
        assert session.get(Appointment, visit.id).needs_planning is True
    assert {"view_patient_form", "edit_patient"} <= set(actions(sessions))


def test_series_length_per_course(staff_client, sessions):
    with sessions() as session:
        patient = add_patient(session)
        visit = add_visit(session, patient, "v1", clock_now() + timedelta(days=5))
    post_form(staff_client, f"/courses/{visit.course_id}/series", {"induction_sessions_planned": "8"})
    with sessions() as session:
        assert session.get(Course, visit.course_id).induction_sessions_planned == 8
        assert session.get(Appointment, visit.id).needs_planning is True
    assert "Induction 1 of 8" in staff_client.get(f"/patients/{patient.id}").text


CSV_HEADER = ("external_id,patient_external_id,first_name,last_name,phone,email,timezone,preferred_channel,kind,"
              "starts_at,duration_minutes,location,status\n")


def upload(client, text: str, name: str = "visits.csv"):
    """Upload a file; once the import has run, the report page it redirected to."""
    response = post_form(client, "/visits/import", {"file": (io.BytesIO(text.encode()), name)},
                         content_type="multipart/form-data")
    if response.status_code != 303:
        return response
    job_id = int(response.headers["Location"].rsplit("/", 1)[-1])
    assert import_jobs.wait_for(job_id, timeout=60)
    return client.get(response.headers["Location"])


def test_csv_upload_shows_the_per_row_report(staff_client, sessions):
    when = (clock_now() + timedelta(days=10)).astimezone(NY).replace(hour=10, minute=0, second=0, microsecond=0)
    text = CSV_HEADER + (
        f"a1,c1,Ana,Diaz,+12025550143,,America/New_York,sms,induction,{when.isoformat()},60,Suite 1,\n"
        f"a2,c2,Bo,Ng,not-a-phone,,America/New_York,sms,induction,{when.isoformat()},60,,\n"
        "\n"
        f"a3,c3,Cy,Ito,+12025550144,,Mars/Base,sms,maintenance,2026-09-01T10:00:00,60,,\n"
    )
    response = upload(staff_client, text)
    assert response.status_code == 200
    page = response.text
    assert "<strong>3</strong> rows" in page and "1 created" in page and "2 rejected" in page
    rows = re.findall(r'<td data-label="Line">(\d+)</td>\s*<td data-label="Visit ID">([^<]+)</td>', page)
    assert rows == [("2", "a1"), ("3", "a2"), ("5", "a3")]
    assert "phone &#39;not-a-phone&#39; is not a phone number" in page
    assert "timezone &#39;Mars/Base&#39; is not an IANA time zone" in page and "has no UTC offset" in page
    visit = only(sessions, Appointment)
    assert visit.external_id == "a1" and visit.needs_planning is True
    with sessions() as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "import_csv"))
        assert entry.detail["created"] == 1 and entry.detail["rejected"] == 2 and entry.detail["filename"] == "visits.csv"
    again = upload(staff_client, text)
    assert "1 unchanged" in again.text


def test_csv_upload_refuses_an_unusable_file(staff_client):
    response = upload(staff_client, "name,when\nAna,tomorrow\n")
    assert response.status_code == 422
    assert "line 1: the header lacks the column(s)" in response.text
    empty = post_form(staff_client, "/visits/import", {}, content_type="multipart/form-data")
    assert empty.status_code == 422 and "Choose a CSV file" in empty.text



# --- Visits nobody marked -------------------------------------------------------------------------

UNMARKED = 'aria-labelledby="unmarked-head"'


def unmarked_section(page: str) -> str:
    """Where Today lists the visits to mark: earlier days' under "To mark", the day's own in its
    list, each flagged "Not marked yet" (issue 21: the day's visits are not listed twice)."""
    start = page.find(UNMARKED)
    earlier = "" if start < 0 else page[start:page.find("</section>", start)]
    rows = re.findall(r'<li class="visit-row card.*?</li>\s*(?=<li class="visit-row|</ul>\s*</section>)', page, re.S)
    return earlier + "".join(row for row in rows if "Not marked yet" in row)


def test_a_visit_over_and_unmarked_is_listed_with_one_click_completed_and_no_show(staff_client, sessions, settings):
    now = clock_now()
    with sessions() as session:
        missed = add_patient(session, "p1", first="Ana", last="Missed", phone="+12025550101", email=None, channel="sms")
        first = add_visit(session, missed, "a1", now - timedelta(hours=4))
        add_visit(session, missed, "a2", now + timedelta(days=2))
        came = add_patient(session, "p2", first="Ben", last="Came", phone="+12025550102", email=None, channel="sms")
        add_visit(session, came, "b1", now - timedelta(hours=3))
        running = add_patient(session, "p3", first="Cy", last="Running", phone="+12025550103", email=None, channel="sms")
        add_visit(session, running, "c1", now - timedelta(minutes=10))  # 50 minutes: still on
        done = add_patient(session, "p4", first="Di", last="Done", phone="+12025550104", email=None, channel="sms")
        add_visit(session, done, "d1", now - timedelta(hours=5), status="completed")
    before = staff_client.get("/").text
    assert "Induction 2 of 6" in before  # a2
    section = unmarked_section(before)
    assert "Ana Missed" in section and "Ben Came" in section
    assert "Cy Running" not in section and "Di Done" not in section
    assert "Not marked: its check-in, due since" in section  # ended more than 2 hours ago (the default)
    assert section.count('value="no_show"') == 2 and section.count('value="completed"') == 2

    post_form(staff_client, f"/visits/{first.id}/status", {"status": "no_show", "next": "/", "confirmed": "yes"})
    page = staff_client.get("/").text
    assert "Ana Missed" not in unmarked_section(page) and "Ben Came" in unmarked_section(page)
    assert "Induction 2 of 6" not in page  # a2, the next visit, is the first infusion again
    run_pass(settings, clock_now())
    with sessions() as session:  # in the patient's quiet hours it waits for their end: run the pass then
        due = session.scalar(select(OutboxMessage.due_at).where(OutboxMessage.appointment_id == first.id,
                                                                OutboxMessage.rule == "missed_visit"))
    run_pass(settings, max(clock_now(), due))
    # "We missed you" goes, naming her next visit (booked) instead of asking her to rebook.
    assert outbox(sessions, first.id)[("missed_visit", "sms")] == "sent"


def test_when_the_clinic_waits_for_staff_the_list_says_the_checkin_waits(configure, settings, sessions):
    from reminders.web import create_app
    from tests.fixtures.staff import login, make_user

    configured = configure(UNMARKED_VISITS_COUNT_AS_ATTENDED_AFTER_HOURS="")
    make_user(sessions, "nurse@clinic.test")
    client = create_app(configured, {"TESTING": True}).test_client()
    assert login(client, "nurse@clinic.test").status_code == 302
    with sessions() as session:
        patient = add_patient(session, email=None, channel="sms")
        visit = add_visit(session, patient, "a1", clock_now() - timedelta(hours=3))
    assert "Check-in waits until the visit is marked completed" in unmarked_section(client.get("/").text)
    run_pass(configured, clock_now())
    assert ("checkin_day_after", "sms") not in outbox(sessions, visit.id)
    post_form(client, f"/visits/{visit.id}/status", {"status": "completed", "next": "/"})
    assert unmarked_section(client.get("/").text) == ""
    run_pass(configured, clock_now())
    assert outbox(sessions, visit.id)[("checkin_day_after", "sms")] == "planned"
def test_language_and_medications_to_hold_are_set_on_the_patient_form(staff_client, sessions):
    with sessions() as session:
        patient = add_patient(session, channel="sms")
    page = staff_client.get(f"/patients/{patient.id}/edit").text
    assert 'name="language"' in page and 'name="medications_to_hold"' in page
    response = post_form(staff_client, f"/patients/{patient.id}/edit", {
        "first_name": "Maya", "last_name": "Lopez", "phone": "+12025550143", "timezone": "America/New_York",
        "preferred_channel": "sms", "language": "es", "medications_to_hold": " No lamotrigine  the morning of ",
    })
    assert response.status_code == 302
    with sessions() as session:
        saved = session.get(Patient, patient.id)
        assert (saved.language, saved.medications_to_hold) == ("es", "No lamotrigine the morning of")
    page = staff_client.get(f"/patients/{patient.id}").text
    assert "messages in Spanish" in page and "No lamotrigine the morning of" in page


def test_a_bad_language_is_refused_on_the_form(staff_client, sessions):
    with sessions() as session:
        patient = add_patient(session, channel="sms")
    response = post_form(staff_client, f"/patients/{patient.id}/edit", {
        "first_name": "Maya", "phone": "+12025550143", "timezone": "America/New_York", "preferred_channel": "sms",
        "language": "klingon",
    })
    assert response.status_code == 422 and 'id="err-language">Choose a language from the list.' in response.text


def test_course_condition_is_set_with_the_series(staff_client, sessions):
    with sessions() as session:
        patient = add_patient(session)
        visit = add_visit(session, patient, "v1", clock_now() + timedelta(days=5))
    post_form(staff_client, f"/courses/{visit.course_id}/series", {"induction_sessions_planned": "6", "condition": "pain"})
    with sessions() as session:
        assert session.get(Course, visit.course_id).condition == "pain"
    assert '<option value="pain" selected>' in staff_client.get(f"/patients/{patient.id}").text
    post_form(staff_client, f"/courses/{visit.course_id}/series", {"induction_sessions_planned": "6", "condition": "flu"})
    with sessions() as session:
        assert session.get(Course, visit.course_id).condition == "pain"
    post_form(staff_client, f"/courses/{visit.course_id}/series", {"induction_sessions_planned": "6", "condition": ""})
    with sessions() as session:
        assert session.get(Course, visit.course_id).condition is None


def test_the_visit_form_sets_the_course_condition_and_audits_it(staff_client, sessions):
    with sessions() as session:
        patient = add_patient(session)
    form = {"kind": "induction", "date": local_day(5), "time": "09:00", "duration_minutes": "60", "location": "",
            "status": "scheduled"}
    page = staff_client.get(f"/patients/{patient.id}/visits/new").text
    assert '<option value="ptsd" >PTSD</option>' in page and '<option value="" selected>not recorded</option>' in page
    assert post_form(staff_client, f"/patients/{patient.id}/visits/new", {**form, "condition": "ptsd"}).status_code == 302
    visit = only(sessions, Appointment)
    with sessions() as session:
        assert session.get(Course, visit.course_id).condition == "ptsd"
        changes = session.scalars(select(AuditEntry).where(AuditEntry.action == "change_condition")).all()
        assert [(e.target_id, e.detail["condition"]) for e in changes] == [(str(visit.course_id), "ptsd")]
    assert '<option value="ptsd" selected>PTSD</option>' in staff_client.get(f"/visits/{visit.id}/edit").text
    refused = post_form(staff_client, f"/visits/{visit.id}/edit", {**form, "condition": "flu"})
    assert refused.status_code == 422 and 'id="err-condition">Choose a condition from the list.' in refused.text
    post_form(staff_client, f"/visits/{visit.id}/edit", {**form, "condition": ""})
    with sessions() as session:
        assert session.get(Course, visit.course_id).condition is None
        assert len(session.scalars(select(AuditEntry).where(AuditEntry.action == "change_condition")).all()) == 2
    post_form(staff_client, f"/visits/{visit.id}/edit", {**form, "location": "Suite 300"})  # no field: kept
    with sessions() as session:
        assert len(session.scalars(select(AuditEntry).where(AuditEntry.action == "change_condition")).all()) == 2
