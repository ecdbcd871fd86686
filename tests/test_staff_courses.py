"""A whole induction course booked in one form; the next visit proposed after each completed one."""
from __future__ import annotations

import re
from datetime import date, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from reminders.models import Appointment, AuditEntry, Course, OutboxMessage
from reminders.pipeline import run_pass
from reminders.timing.course_dates import CourseDatesError, CoursePlan, course_starts
from tests.conftest import clock_now
from tests.fixtures.staff import add_patient, add_visit, post_form

NY = ZoneInfo("America/New_York")


def next_monday(weeks: int = 1) -> date:
    today = clock_now().astimezone(NY).date()
    return today + timedelta(days=(7 - today.weekday()) + 7 * (weeks - 1))


def course_form(day: date, action: str, **extra) -> dict:
    form = {"first_date": day.isoformat(), "time": "09:00", "pattern": "mon-wed-fri", "length": "6",
            "duration_minutes": "90", "location": "Suite 200", "action": action, **extra}
    if action == "book" and "previewed" not in extra:  # as the preview's hidden field carries them
        plan = CoursePlan(day, time.fromisoformat(form["time"] or "09:00"), "America/New_York", form["pattern"],
                          int(form["length"]) if form["length"].isdigit() and int(form["length"]) <= 12 else 1)
        try:
            form["previewed"] = ",".join(s.isoformat() for s in course_starts(plan))
        except CourseDatesError:
            pass
    return form


def test_a_form_changed_after_its_preview_is_previewed_again(staff_client, sessions):
    with sessions() as session:
        patient = add_patient(session)
    monday = next_monday()
    previewed = course_form(monday, "book")["previewed"]
    response = post_form(staff_client, f"/patients/{patient.id}/courses/new",
                         course_form(monday, "book", length="4", previewed=previewed))
    assert response.status_code == 200 and "The form changed since the last preview" in response.text
    assert "Book 4 visits" in response.text
    with sessions() as session:
        assert session.scalars(select(Appointment)).all() == []


def test_preview_lists_the_visits_and_books_nothing(staff_client, sessions):
    with sessions() as session:
        patient = add_patient(session)
    monday = next_monday()
    page = staff_client.get(f"/patients/{patient.id}/courses/new")
    assert page.status_code == 200 and "New induction course" in page.text and 'value="6"' in page.text
    response = post_form(staff_client, f"/patients/{patient.id}/courses/new", course_form(monday, "preview"))
    assert response.status_code == 200
    preview = response.text.split('class="course-visits"')[1].split("</ol>")[0]
    wanted = [monday + timedelta(days=d) for d in (0, 2, 4, 7, 9, 11)]
    assert preview.count("<li>") == 6
    for d in wanted:
        assert f"{d:%a %b} {d.day}, {d.year}, 9:00 AM" in response.text
    assert "Book 6 visits" in response.text
    with sessions() as session:
        assert session.scalars(select(Appointment)).all() == []


def test_one_save_books_the_course_through_intake(staff_client, sessions, settings):
    with sessions() as session:
        patient = add_patient(session)
    monday = next_monday()
    response = post_form(staff_client, f"/patients/{patient.id}/courses/new", course_form(monday, "book"))
    assert response.status_code == 302 and response.headers["Location"] == f"/patients/{patient.id}"
    with sessions() as session:
        visits = session.scalars(select(Appointment).order_by(Appointment.starts_at)).all()
        assert [v.starts_at.astimezone(NY).date() for v in visits] == [
            monday + timedelta(days=d) for d in (0, 2, 4, 7, 9, 11)]
        assert {v.starts_at.astimezone(NY).strftime("%H:%M") for v in visits} == {"09:00"}
        assert [v.number_in_course for v in visits] == [1, 2, 3, 4, 5, 6]
        assert {(v.location, v.duration_minutes, v.kind) for v in visits} == {("Suite 200", 90, "induction")}
        assert all(v.external_id.startswith("staff-v-") and v.needs_planning for v in visits)
        assert len({v.course_id for v in visits}) == 1
        assert session.scalars(select(Course)).one().induction_sessions_planned == 6
        audit = session.scalars(select(AuditEntry.action)).all()
        assert audit.count("create_visit") == 6 and "create_course" in audit
    run_pass(settings, clock_now())
    with sessions() as session:
        assert session.scalars(select(OutboxMessage).where(OutboxMessage.status == "planned")).all()


def test_form_errors_are_beside_their_fields(staff_client, sessions):
    with sessions() as session:
        patient = add_patient(session)
    saturday = next_monday() + timedelta(days=5)
    response = post_form(staff_client, f"/patients/{patient.id}/courses/new",
                         course_form(saturday, "book", time="", length="40"))
    assert response.status_code == 422
    assert 'aria-describedby="time-error"' in response.text and 'id="time-error"' in response.text
    assert "from 1 to 12" in response.text
    assert 'id="length-error"' in response.text
    response = post_form(staff_client, f"/patients/{patient.id}/courses/new", course_form(saturday, "preview"))
    assert response.status_code == 422 and "Saturday, when the clinic is closed" in response.text
    with sessions() as session:
        assert session.scalars(select(Appointment)).all() == []


def test_a_completed_infusion_proposes_the_next_visit(staff_client, sessions):
    now = clock_now()
    with sessions() as session:
        patient = add_patient(session)
        # Two visits of a Mon/Wed/Fri course in the past; the second is completed.
        today = now.astimezone(NY).date()
        last_monday = today - timedelta(days=today.weekday() + 7)
        first = add_visit(session, patient, "v1", _at(last_monday, 9))
        second = add_visit(session, patient, "v2", _at(last_monday + timedelta(days=2), 9))
    response = post_form(staff_client, f"/visits/{second.id}/status", {"status": "completed"}, follow_redirects=True)
    friday = last_monday + timedelta(days=4)
    assert "visit marked completed." in response.text
    link = re.search(r'<a class="suggest-link" href="([^"]+)">Book the next visit: ([^<]+)</a>', response.text)
    assert link and link.group(2) == f"{friday:%a} {friday.day} {friday:%b} 9:00"
    form = staff_client.get(link.group(1).replace("&amp;", "&"))
    assert f'value="{friday.isoformat()}"' in form.text and 'value="09:00"' in form.text
    assert 'value="Suite 200"' in form.text


def test_cancelling_offers_a_replacement_at_the_end_of_the_series(staff_client, sessions):
    monday = next_monday()
    with sessions() as session:
        patient = add_patient(session)
        visits = [add_visit(session, patient, f"v{n}", _at(monday + timedelta(days=d), 10))
                  for n, d in enumerate((0, 2, 4))]
    response = post_form(staff_client, f"/visits/{visits[1].id}/status", {"status": "canceled"},
                         follow_redirects=True)
    nxt = monday + timedelta(days=7)
    assert f"Add a replacement at the end of the series: {nxt:%a} {nxt.day} {nxt:%b} 10:00" in response.text


def _at(day: date, hour: int):
    from datetime import datetime
    return datetime.combine(day, time(hour), tzinfo=NY)


def test_a_new_course_closes_a_finished_one_and_refuses_over_visits_to_come(staff_client, sessions):
    monday = next_monday()
    with sessions() as session:
        patient = add_patient(session)
        old = add_visit(session, patient, "old", clock_now() - timedelta(days=60), kind="maintenance", status="completed")
        old_course = old.course_id
    response = post_form(staff_client, f"/patients/{patient.id}/courses/new", course_form(monday, "book", length="2"))
    assert response.status_code == 302
    with sessions() as session:
        assert session.get(Course, old_course).ended_at is not None
        new = session.scalars(select(Appointment).where(Appointment.course_id != old_course)).all()
        assert [a.number_in_course for a in new] == [1, 2]
    response = post_form(staff_client, f"/patients/{patient.id}/courses/new",
                         course_form(monday + timedelta(days=14), "book", length="2"))
    assert response.status_code == 409 and "still has a visit booked" in response.text


def test_the_course_form_sets_what_the_course_treats(staff_client, sessions):
    with sessions() as session:
        patient = add_patient(session)
    assert '<option value="anxiety" >anxiety</option>' in staff_client.get(f"/patients/{patient.id}/courses/new").text
    response = post_form(staff_client, f"/patients/{patient.id}/courses/new", course_form(next_monday(), "book",
                                                                                          condition="anxiety"))
    assert response.status_code == 302
    with sessions() as session:
        assert session.scalars(select(Course)).one().condition == "anxiety"
        assert "change_condition" in session.scalars(select(AuditEntry.action)).all()
    assert '<option value="anxiety" selected>anxiety</option>' in staff_client.get(f"/patients/{patient.id}").text
    refused = post_form(staff_client, f"/patients/{patient.id}/courses/new", course_form(next_monday(3), "book",
                                                                                         condition="flu"))
    assert refused.status_code == 422 and 'id="condition-error"' in refused.text
