"""A whole induction course booked in one form (first date and time, a pattern, length and place
once), and a course's planned series length and condition changed from the patient's page."""
from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, render_template, request, url_for
from pydantic import ValidationError
from sqlalchemy import select

from reminders.intake.records import AppointmentRecord, VisitWindow, reasons
from reminders.intake.upsert import IntakeError, upsert_appointment
from reminders.models import Course, Patient
from reminders.models.appointments import ACTIVE_STATUSES, AppointmentStatus
from reminders.models.patients import CONDITIONS
from reminders.planning.marking import mark_for_planning
from reminders.timing import course_dates
from reminders.web.context import db, request_now, settings
from reminders.web.staff import audit, door_checks
from reminders.web.staff.patients import get_patient
from reminders.web.staff.visit_fields import (
    CONDITION_CHOICES, form_condition, form_place, new_external_id, place_choices, set_course_condition, usual_place,
)
from reminders.web.staff.visit_pages import bp

COURSE_FIELDS = ("first_date", "time", "pattern", "length", "duration_minutes", "location", "place", "condition")


def _course_values(patient: Patient) -> dict:
    # A new course most often treats what the last one did.
    last = patient.courses[-1].condition if patient.courses else None
    return {"first_date": "", "time": "", "pattern": course_dates.DEFAULT_PATTERN,
            "length": str(settings().induction_series_length), "duration_minutes": "60", "location": "",
            "place": usual_place(patient), "condition": last or ""}


def _render_course_form(patient: Patient, values: dict, errors: dict, preview=None, status: int = 200,
                        changed: bool = False):
    closed = settings().clinic_closed_days
    return render_template(
        "staff/course_form.html", patient=patient, values=values, errors=errors, preview=preview, changed=changed,
        previewed=",".join(start.isoformat() for start in preview or []),
        patterns=[(key, label) for key, (label, _, _) in course_dates.PATTERNS.items()],
        closed_names=[course_dates.DAY_NAMES[d] for d in closed], max_length=course_dates.MAX_LENGTH,
        holidays=[day for day in settings().clinic_holidays if day >= request_now().date()],
        conditions=CONDITION_CHOICES, places=place_choices(None),
    ), status


def _course_starts(patient: Patient, values: dict, errors: dict) -> list[datetime]:
    """The visits' start instants from the form, or [] with the reasons by field in `errors`."""
    try:
        first = date.fromisoformat(values["first_date"])
    except ValueError:
        errors["first_date"] = "Enter the date of the first visit."
    try:
        at = time.fromisoformat(values["time"])
    except ValueError:
        errors["time"] = "Enter the time of the visits, like 09:00."
    try:
        length = int(values["length"])
        if not 1 <= length <= course_dates.MAX_LENGTH:
            raise ValueError
    except ValueError:
        errors["length"] = f"Enter a number of visits from 1 to {course_dates.MAX_LENGTH}."
    if values["pattern"] not in course_dates.PATTERNS:
        errors["pattern"] = "Choose one of the patterns."
    if errors:
        return []
    plan = course_dates.CoursePlan(first, at, patient.timezone, values["pattern"], length,
                                   frozenset(settings().clinic_closed_days), frozenset(settings().clinic_holidays))
    try:
        return course_dates.course_starts(plan)
    except course_dates.CourseDatesError as exc:
        errors["first_date"] = str(exc)
        return []


def _course_records(values: dict, starts: list[datetime], errors: dict) -> list[AppointmentRecord]:
    window = VisitWindow.from_settings(settings(), request_now())
    records = []
    for starts_at in starts:
        try:
            records.append(AppointmentRecord.model_validate(
                {"external_id": new_external_id("v"), "kind": "induction", "starts_at": starts_at,
                 "duration_minutes": values["duration_minutes"] or "60", "location": values["location"],
                 "status": AppointmentStatus.SCHEDULED},
                context={"visit_window": window}))
        except ValidationError as exc:
            for reason in reasons(exc):
                field = "duration_minutes" if "duration" in reason else "location" if "location" in reason else "first_date"
                errors.setdefault(field, reason)
            return []
    return records


def _start_fresh_course(session, patient: Patient, now: datetime) -> str | None:
    """Close the patient's open course if it has visits (all behind them), so that the new visits
    start a course of their own; why not, when it still has visits to come."""
    open_courses = session.scalars(select(Course).where(Course.patient_id == patient.id, Course.ended_at.is_(None)))
    for course in open_courses:
        held = [a for a in course.appointments if a.status != AppointmentStatus.CANCELED]
        coming = sorted(a.starts_at for a in held if a.status in ACTIVE_STATUSES and a.starts_at > now)
        if coming:
            return (f"{patient.full_name} still has a visit booked on {coming[0].astimezone(ZoneInfo(patient.timezone)):%a %b %d} "
                    "in the current course. Cancel the visits to come first, or book single visits.")
        if held:
            course.ended_at = now
            audit.record("end_course", "course", course.id, patient_id=patient.id)
    session.flush()
    return None


@bp.route("/patients/<int:patient_id>/courses/new", methods=["GET", "POST"])
def new_course(patient_id: int):
    """Book an induction course in one form: first date and time, a pattern, length and place once;
    "Preview" lists the visits, "Book N visits" saves them all through the same upsert as one visit."""
    session = db()
    patient = get_patient(patient_id)
    if request.method == "GET":
        audit.record("view_course_form", "patient", patient.id)
        session.commit()
        return _render_course_form(patient, _course_values(patient), {})
    values = {name: request.form.get(name, "").strip() for name in COURSE_FIELDS}
    errors: dict[str, str] = {}
    condition = form_condition(errors)
    location_id = form_place(None, errors)
    starts = _course_starts(patient, values, errors)
    records = _course_records(values, starts, errors) if starts else []
    for record in records:
        record.location_id = location_id
    overlap = door_checks.first_overlap(patient, starts, records[0].duration_minutes) if records else None
    if overlap:
        errors["first_date"] = overlap
    if errors:
        return _render_course_form(patient, values, errors, status=409 if overlap else 422)
    shown = ",".join(start.isoformat() for start in starts)
    if request.form.get("action") != "book":
        return _render_course_form(patient, values, {}, preview=starts)
    if request.form.get("previewed") != shown:  # the form changed after its preview: show the new one
        return _render_course_form(patient, values, {}, preview=starts, changed=True)
    now = request_now()
    refusal = _start_fresh_course(session, patient, now)
    if refusal:
        session.rollback()
        return _render_course_form(patient, values, {"first_date": refusal}, preview=starts, status=409)
    created = []
    try:
        for record in records:
            outcome = upsert_appointment(session, patient, record, now, len(records))
            created.append(outcome.appointment)
    except IntakeError as exc:
        session.rollback()
        return _render_course_form(patient, values, {"first_date": str(exc)}, preview=starts, status=409)
    course = created[0].course
    held = [a for a in course.appointments if a.status != AppointmentStatus.CANCELED and a.kind == "induction"]
    if course.induction_sessions_planned < len(held):
        course.induction_sessions_planned = min(len(held), course_dates.MAX_LENGTH)
    for appointment in created:
        audit.record("create_visit", "appointment", appointment.id, patient_id=patient.id, result="created")
    audit.record("create_course", "course", course.id, patient_id=patient.id, visits=len(created),
                 pattern=values["pattern"])
    set_course_condition(course, condition)
    session.commit()
    flash(f"{len(created)} visits booked: the reminders will follow.", "ok")
    return redirect(url_for("patients.show", patient_id=patient.id))


@bp.post("/courses/<int:course_id>/series")
def change_series(course_id: int):
    session = db()
    course = session.get(Course, course_id)
    if course is None:
        abort(404)
    try:
        planned = int(request.form.get("induction_sessions_planned", ""))
    except ValueError:
        planned = 0
    condition = request.form.get("condition")
    if condition is not None and (condition or None) != course.condition:
        if condition and condition not in CONDITIONS:
            flash(f"Condition must be one of {', '.join(CONDITIONS)}.", "error")
        else:
            course.condition = condition or None
            audit.record("change_condition", "course", course.id, patient_id=course.patient_id,
                         condition=course.condition)
            session.commit()
            flash(f"Course condition set to {course.condition or 'not recorded'}.", "ok")
    if not 1 <= planned <= 12:
        flash("The induction series must be between 1 and 12 infusions.", "error")
    elif planned != course.induction_sessions_planned:
        course.induction_sessions_planned = planned
        mark_for_planning(session, appointment_ids=[a.id for a in course.appointments])
        audit.record("change_series", "course", course.id, patient_id=course.patient_id, planned=planned)
        session.commit()
        flash(f"Induction series set to {planned} infusions.", "ok")
    return redirect(url_for("patients.show", patient_id=course.patient_id))
