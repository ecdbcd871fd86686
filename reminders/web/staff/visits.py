"""Visits by hand: add and edit patients and visits, cancel, mark completed or no-show, import CSV.

Every change goes through reminders.intake (the same upsert the API and the CSV import use), so
the affected visits are marked for planning and the next pass fixes their messages.

This module holds the one-visit form; the "visits" blueprint (visit_pages) also carries the
patient form (patient_form), the status marks and their undo (visit_marks), whole courses
(visit_courses) and the CSV import (visit_imports), brought in here so that registering `bp`
registers them all.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import flash, redirect, render_template, request, url_for
from pydantic import ValidationError

from reminders.intake.records import APPOINTMENT_STATUSES, AppointmentRecord, VisitWindow
from reminders.intake.upsert import ClosedLocation, IntakeError, upsert_appointment
from reminders.models import Appointment, Patient
from reminders.models.appointments import AppointmentStatus
from reminders.web.context import db, request_now, settings
from reminders.web.staff import audit, door_checks
from reminders.web.staff import patient_form, visit_courses, visit_imports, visit_marks
from reminders.web.staff.forms import VISIT_LABELS, visit_field_errors, visit_time_error
from reminders.web.staff.patients import get_patient
from reminders.web.staff.visit_fields import (
    CONDITION_CHOICES, book, form_condition, form_place, get_appointment, likely_kind, local_instant,
    new_external_id, open_course, place_choices, set_course_condition, usual_place,
)
from reminders.web.staff.visit_pages import bp

# The modules whose routes join `bp` by being imported.
ROUTES = (patient_form, visit_courses, visit_imports, visit_marks)
VISIT_FIELDS = ("kind", "date", "time", "duration_minutes", "location", "place", "status", "condition")
# What a link proposing a next visit or a replacement may prefill.
PREFILLED_FIELDS = ("kind", "date", "time", "duration_minutes", "location", "place")
CLOSED_LOCATION = "That location is closed to new visits: choose another."


def _visit_values(appointment: Appointment | None, patient: Patient) -> dict:
    if appointment is None:
        course = open_course(patient)
        return {"kind": likely_kind(patient), "date": "", "time": "", "duration_minutes": "60", "location": "",
                "place": usual_place(patient), "status": AppointmentStatus.SCHEDULED,
                "condition": (course.condition if course else None) or ""}
    local = appointment.starts_at.astimezone(ZoneInfo(patient.timezone))
    return {"kind": appointment.kind, "date": local.date().isoformat(), "time": local.strftime("%H:%M"),
            "duration_minutes": str(appointment.duration_minutes), "location": appointment.location,
            "place": book().place(appointment.location_id).code, "status": appointment.status,
            "condition": (appointment.course.condition if appointment.course else None) or ""}


def _render_visit_form(patient, appointment, values, errors: dict[str, str], status: int = 200):
    places = place_choices(appointment)
    labels = {**VISIT_LABELS, "place": "Location", "location": "Room"} if places else VISIT_LABELS
    return render_template("staff/visit_form.html", patient=patient, appointment=appointment, values=values,
                           errors=errors, labels=labels, statuses=APPOINTMENT_STATUSES,
                           conditions=CONDITION_CHOICES, places=places), status


@bp.route("/patients/<int:patient_id>/visits/new", methods=["GET", "POST"])
def new_visit(patient_id: int):
    return _visit_form(get_patient(patient_id), None)


@bp.route("/visits/<int:appointment_id>/edit", methods=["GET", "POST"])
def edit_visit(appointment_id: int):
    appointment = get_appointment(appointment_id)
    return _visit_form(appointment.patient, appointment)


def _visit_form(patient: Patient, appointment: Appointment | None):
    if request.method == "GET":
        return _show_visit_form(patient, appointment)
    session = db()
    values = {name: request.form.get(name, "").strip() for name in VISIT_FIELDS}
    errors: dict[str, str] = {}
    condition = form_condition(errors)
    location_id = form_place(appointment, errors)
    starts_at = _posted_start(values, patient, errors)
    external_id = (appointment.external_id if appointment is not None else None) or new_external_id("v")
    # A new time must fall in the booking window; a visit already on the books keeps its time.
    moved = appointment is None or starts_at != appointment.starts_at
    record = _visit_record(values, external_id, starts_at, moved, errors)
    if record is not None:
        record.location_id = location_id
    if not errors and moved and record.status in door_checks.HOLDS_TIME:
        other = door_checks.overlapping_visit(patient, starts_at, record.duration_minutes, leave_out=appointment)
        if other is not None:
            errors["time"] = door_checks.overlap_message(patient, other)
            audit.record("overlap_refused", "appointment", other.id, patient_id=patient.id)
            session.commit()
            return _render_visit_form(patient, appointment, values, errors, 409)
    if errors:
        return _render_visit_form(patient, appointment, values, errors, 422)
    if appointment is not None and appointment.external_id is None:
        appointment.external_id = external_id
    return _save_visit(patient, appointment, values, record, condition, starts_at if moved else None)


def _show_visit_form(patient: Patient, appointment: Appointment | None):
    audit.record("view_visit_form", "patient", patient.id, appointment_id=appointment.id if appointment else None)
    db().commit()
    values = _visit_values(appointment, patient)
    if appointment is None:  # a suggested next visit or replacement comes prefilled
        values.update({name: request.args[name].strip() for name in PREFILLED_FIELDS if request.args.get(name)})
    return _render_visit_form(patient, appointment, values, {})


def _posted_start(values: dict, patient: Patient, errors: dict[str, str]) -> datetime | None:
    """The posted date and time as an instant in the patient's zone, or None with the reason in `errors`."""
    try:
        return local_instant(values["date"], values["time"], patient.timezone)
    except ValueError as exc:
        field, sentence = visit_time_error(str(exc))
        errors[field] = sentence
        return None


def _visit_record(values: dict, external_id: str, starts_at: datetime | None, moved: bool,
                  errors: dict[str, str]) -> AppointmentRecord | None:
    """The posted visit as intake checks it, or None with the reasons by field in `errors`."""
    context = {"visit_window": VisitWindow.from_settings(settings(), request_now())} if moved and starts_at else None
    try:
        return AppointmentRecord.model_validate(
            {"external_id": external_id, "kind": values["kind"], "starts_at": starts_at or request_now(),
             "duration_minutes": values["duration_minutes"], "location": values["location"],
             "status": values["status"] or None},
            context=context)
    except ValidationError as exc:
        for field, sentence in visit_field_errors(exc).items():
            errors.setdefault(field, sentence)
        return None


def _save_visit(patient: Patient, appointment: Appointment | None, values: dict, record: AppointmentRecord,
                condition, moved_to: datetime | None):
    """Book or change the visit through intake; `moved_to` is its new start when the time changed."""
    session = db()
    try:
        outcome = upsert_appointment(session, patient, record, request_now(), settings().induction_series_length)
    except ClosedLocation:
        session.rollback()
        return _render_visit_form(patient, appointment, values, {"place": CLOSED_LOCATION}, 422)
    except IntakeError as exc:
        session.rollback()
        return _render_visit_form(patient, appointment, values, {"date": str(exc)}, 409)
    audit.record("create_visit" if appointment is None else "edit_visit", "appointment", outcome.appointment.id,
                 patient_id=patient.id, result=outcome.result)
    set_course_condition(outcome.appointment.course, condition)
    session.commit()
    flash(f"Visit {'booked' if appointment is None else 'saved'}: the reminders will follow the change.", "ok")
    holidays = book().settings_for(outcome.appointment.location_id).clinic_holidays  # the location's own
    holiday = door_checks.holiday_warning(moved_to.astimezone(ZoneInfo(patient.timezone)).date(),
                                          holidays) if moved_to is not None else None
    if holiday:
        flash(holiday, "warn")
    return redirect(url_for("patients.show", patient_id=patient.id))
