"""Visits by hand: add and edit patients and visits, cancel, mark completed or no-show, import CSV.

Every change goes through reminders.intake (the same upsert the API and the CSV import use), so
the affected visits are marked for planning and the next pass fixes their messages.
"""
from __future__ import annotations

import secrets
from datetime import date, datetime, time
from zoneinfo import ZoneInfo, available_timezones

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from pydantic import ValidationError
from sqlalchemy import select

from reminders.intake import import_jobs
from reminders.intake.csv_import import MAX_FILE_BYTES, UnusableFile
from reminders.intake.records import APPOINTMENT_STATUSES, AppointmentRecord, PatientRecord, VisitWindow, reasons
from reminders.intake.upsert import IntakeError, upsert_appointment, upsert_patient
from reminders.models import Appointment, Course, ImportJob, ImportJobRow, Patient, utcnow
from reminders.models.patients import CONDITIONS, DEFAULT_LANGUAGE, LANGUAGES
from reminders.planning.planner import mark_for_planning
from reminders.web.context import db, settings
from reminders.web.staff import audit, queries
from reminders.web.staff.auth import guard, safe_next
from reminders.web.staff.forms import PATIENT_LABELS, patient_field_errors
from reminders.web.staff.patients import get_patient

bp = Blueprint("visits", __name__)
guard(bp)

PATIENT_FIELDS = ("first_name", "last_name", "phone", "email", "timezone", "preferred_channel")
# Optional in a post (a form without them keeps what is stored), checked by PatientRecord too.
PREPARATION_FIELDS = ("language", "medications_to_hold")
LANGUAGE_NAMES = {"en": "English", "es": "Español (Spanish)"}
REPORT_ROWS_SHOWN = 2000
STATUS_ACTIONS = {"canceled": "canceled", "completed": "marked completed", "no_show": "marked no-show",
                  "scheduled": "reopened"}


def new_external_id(prefix: str) -> str:
    return f"staff-{prefix}-{secrets.token_hex(5)}"


def zone_names() -> list[str]:
    return sorted(available_timezones())


# --- Patients ------------------------------------------------------------------------------------

def _patient_values(patient: Patient | None) -> dict:
    if patient is None:
        return {"first_name": "", "last_name": "", "phone": "", "email": "", "preferred_channel": "sms",
                "timezone": settings().clinic_timezone, "notes": "", "language": DEFAULT_LANGUAGE,
                "medications_to_hold": ""}
    values = {name: getattr(patient, name) or "" for name in (*PATIENT_FIELDS, *PREPARATION_FIELDS)}
    values["notes"] = patient.notes or ""
    return values


def _render_patient_form(patient: Patient | None, values: dict, errors: dict[str, str], status: int = 200):
    return render_template("staff/patient_form.html", patient=patient, values=values, errors=errors,
                           labels=PATIENT_LABELS,
                           zones=zone_names(), languages=[(code, LANGUAGE_NAMES.get(code, code)) for code in LANGUAGES],
                           sms_medications_max=settings().sms_medications_max_chars), status


@bp.route("/patients/new", methods=["GET", "POST"])
def new_patient():
    return _patient_form(None)


@bp.route("/patients/<int:patient_id>/edit", methods=["GET", "POST"])
def edit_patient(patient_id: int):
    return _patient_form(get_patient(patient_id))


def _patient_form(patient: Patient | None):
    session = db()
    if request.method == "GET":
        if patient is not None:
            audit.record("view_patient_form", "patient", patient.id)
            session.commit()
        return _render_patient_form(patient, _patient_values(patient), {})
    values = {name: request.form.get(name, "").strip() for name in (*PATIENT_FIELDS, "notes")}
    values["notes"] = values["notes"].replace("\x00", "")  # the other fields are checked by PatientRecord
    external_id = (patient.external_id if patient is not None else None) or new_external_id("p")
    # A blank last name is left out so that the record's default ("") applies: PatientRecord turns
    # "" into None before checking it is a string.
    given = {name: values[name] for name in PATIENT_FIELDS if values[name] or name != "last_name"}
    for name in PREPARATION_FIELDS:
        if name in request.form:
            given[name] = values[name] = request.form[name].strip()
    try:
        record = PatientRecord(external_id=external_id, phone_region=settings().default_phone_region, **given)
    except ValidationError as exc:
        return _render_patient_form(patient, values, patient_field_errors(exc), 422)
    if patient is not None and patient.external_id is None:
        patient.external_id = external_id
    outcome = upsert_patient(session, record, utcnow())
    saved = outcome.patient
    if saved.notes != values["notes"]:
        saved.notes = values["notes"]
    session.flush()
    audit.record("create_patient" if patient is None else "edit_patient", "patient", saved.id,
                 result=outcome.result)
    session.commit()
    flash(f"{saved.full_name} saved.", "ok")
    return redirect(url_for("patients.show", patient_id=saved.id))


# --- Visits --------------------------------------------------------------------------------------

def _visit_values(appointment: Appointment | None, patient: Patient) -> dict:
    if appointment is None:
        return {"kind": _likely_kind(patient), "date": "", "time": "", "duration_minutes": "60", "location": "",
                "status": "scheduled"}
    local = appointment.starts_at.astimezone(ZoneInfo(patient.timezone))
    return {"kind": appointment.kind, "date": local.date().isoformat(), "time": local.strftime("%H:%M"),
            "duration_minutes": str(appointment.duration_minutes), "location": appointment.location,
            "status": appointment.status}


def _likely_kind(patient: Patient) -> str:
    held = [a for a in patient.appointments if a.status != "canceled"]
    if not held:
        return "induction"
    last = held[-1]
    series = last.course.induction_sessions_planned if last.course else settings().induction_series_length
    return "induction" if last.kind == "induction" and last.number_in_course < series else "maintenance"


def local_instant(day: str, clock: str, zone: str) -> datetime:
    """A wall-clock time in the patient's zone as an aware instant; ValueError with a reason."""
    try:
        parsed_day = date.fromisoformat(day)
    except ValueError:
        raise ValueError("the date is missing or not a date") from None
    try:
        parsed_time = time.fromisoformat(clock)
    except ValueError:
        raise ValueError("the time is missing or not a time (like 09:30)") from None
    tz = ZoneInfo(zone)
    naive = datetime.combine(parsed_day, parsed_time)
    instant = naive.replace(tzinfo=tz)
    try:
        round_trip = instant.astimezone(ZoneInfo("UTC")).astimezone(tz).replace(tzinfo=None)
    except OverflowError:  # 9999-12-31 23:30 in a zone behind UTC
        raise ValueError(f"the date {day} is not a plausible visit date (check the year)") from None
    if round_trip != naive:
        raise ValueError(f"{clock} on {day} does not exist in {zone} (the clocks go forward then)")
    return instant


def _render_visit_form(patient, appointment, values, errors, status: int = 200):
    return render_template("staff/visit_form.html", patient=patient, appointment=appointment, values=values,
                           errors=errors, statuses=APPOINTMENT_STATUSES), status


@bp.route("/patients/<int:patient_id>/visits/new", methods=["GET", "POST"])
def new_visit(patient_id: int):
    return _visit_form(get_patient(patient_id), None)


@bp.route("/visits/<int:appointment_id>/edit", methods=["GET", "POST"])
def edit_visit(appointment_id: int):
    appointment = _get_appointment(appointment_id)
    return _visit_form(appointment.patient, appointment)


def _get_appointment(appointment_id: int) -> Appointment:
    appointment = db().get(Appointment, appointment_id)
    if appointment is None:
        abort(404)
    return appointment


def _visit_form(patient: Patient, appointment: Appointment | None):
    session = db()
    if request.method == "GET":
        audit.record("view_visit_form", "patient", patient.id, appointment_id=appointment.id if appointment else None)
        session.commit()
        return _render_visit_form(patient, appointment, _visit_values(appointment, patient), [])
    values = {name: request.form.get(name, "").strip()
              for name in ("kind", "date", "time", "duration_minutes", "location", "status")}
    errors: list[str] = []
    try:
        starts_at = local_instant(values["date"], values["time"], patient.timezone)
    except ValueError as exc:
        errors.append(str(exc))
        starts_at = None
    external_id = (appointment.external_id if appointment is not None else None) or new_external_id("v")
    record = None
    # A new time must fall in the booking window; a visit already on the books keeps its time.
    moved = appointment is None or starts_at != appointment.starts_at
    context = {"visit_window": VisitWindow.from_settings(settings(), utcnow())} if moved and starts_at else None
    try:
        record = AppointmentRecord.model_validate(
            {"external_id": external_id, "kind": values["kind"], "starts_at": starts_at or utcnow(),
             "duration_minutes": values["duration_minutes"], "location": values["location"],
             "status": values["status"] or None},
            context=context)
    except ValidationError as exc:
        errors += reasons(exc)
    if errors:
        return _render_visit_form(patient, appointment, values, errors, 422)
    if appointment is not None and appointment.external_id is None:
        appointment.external_id = external_id
    try:
        outcome = upsert_appointment(session, patient, record, utcnow(), settings().induction_series_length)
    except IntakeError as exc:
        session.rollback()
        return _render_visit_form(patient, appointment, values, [str(exc)], 409)
    audit.record("create_visit" if appointment is None else "edit_visit", "appointment", outcome.appointment.id,
                 patient_id=patient.id, result=outcome.result)
    session.commit()
    flash(f"Visit {'booked' if appointment is None else 'saved'}: the reminders will follow the change.", "ok")
    return redirect(url_for("patients.show", patient_id=patient.id))


@bp.post("/visits/<int:appointment_id>/status")
def change_status(appointment_id: int):
    session = db()
    appointment = _get_appointment(appointment_id)
    patient = appointment.patient
    wanted = request.form.get("status", "")
    back = safe_next(request.form.get("next") or url_for("patients.show", patient_id=patient.id))
    if wanted not in STATUS_ACTIONS:
        abort(400)
    if wanted in ("completed", "no_show") and not queries.day_has_come(appointment, utcnow()):
        flash("A visit can be marked completed or no-show on its day or later.", "error")
        return redirect(back)
    record = AppointmentRecord(
        external_id=appointment.external_id or new_external_id("v"), kind=appointment.kind,
        starts_at=appointment.starts_at, duration_minutes=appointment.duration_minutes,
        location=appointment.location, status=wanted,
    )
    if appointment.external_id is None:
        appointment.external_id = record.external_id
    outcome = upsert_appointment(session, patient, record, utcnow(), settings().induction_series_length)
    audit.record(f"visit_{wanted}", "appointment", appointment.id, patient_id=patient.id, result=outcome.result)
    session.commit()
    flash(f"Visit {STATUS_ACTIONS[wanted]}.", "ok")
    return redirect(back)


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


# --- CSV import ---------------------------------------------------------------------------------
# The upload is stored as an import job and imported off the request (intake.import_jobs); the
# report page refreshes itself until the job is done.

def _clock():
    from flask import current_app

    clock = current_app.config.get("CLOCK")
    return clock or utcnow


def _start_job(job_id: int) -> None:
    from flask import current_app

    s = settings()
    import_jobs.run_in_thread(current_app.extensions["reminders.sessions"], job_id, _clock(),
                              phone_region=s.default_phone_region, series_length=s.induction_series_length,
                              window=lambda now: VisitWindow.from_settings(s, now))


def _recent_jobs() -> list[ImportJob]:
    return list(db().scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(10)))


@bp.route("/visits/import", methods=["GET", "POST"])
def import_csv():
    now = _clock()()
    if request.method == "GET":
        return render_template("staff/import.html", error=None, filename="", jobs=_recent_jobs(), now=now,
                               state=import_jobs.state)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return render_template("staff/import.html", error="Choose a CSV file to upload.", filename="",
                               jobs=_recent_jobs(), now=now, state=import_jobs.state), 422
    data = upload.read(MAX_FILE_BYTES + 1)
    session = db()
    try:
        if len(data) > MAX_FILE_BYTES:
            raise UnusableFile(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
        job = import_jobs.create_job(session, upload.filename, data, g.staff.email, now)
    except UnusableFile as exc:
        session.rollback()
        return render_template("staff/import.html", error=str(exc), filename=upload.filename, jobs=_recent_jobs(),
                               now=now, state=import_jobs.state), 422
    audit.record("upload_csv", "import_job", job.id, filename=upload.filename[:200])
    session.commit()
    _start_job(job.id)
    return redirect(url_for("visits.import_report", job_id=job.id), 303)


def _get_job(job_id: int) -> ImportJob:
    job = db().get(ImportJob, job_id)
    if job is None:
        abort(404)
    return job


@bp.get("/visits/imports/<int:job_id>")
def import_report(job_id: int):
    job = _get_job(job_id)
    now = _clock()()
    rows = list(db().scalars(select(ImportJobRow).where(ImportJobRow.job_id == job.id)
                             .order_by(ImportJobRow.line).limit(REPORT_ROWS_SHOWN + 1)))
    return render_template("staff/import_job.html", job=job, state=import_jobs.state(job, now),
                           can_run_again=import_jobs.can_run_again(job, now), rows=rows[:REPORT_ROWS_SHOWN],
                           more=len(rows) > REPORT_ROWS_SHOWN, full=job.lines_total <= import_jobs.FULL_REPORT_LINES,
                           stale_minutes=int(import_jobs.STALE_AFTER.total_seconds() // 60))


@bp.post("/visits/imports/<int:job_id>/run")
def run_import_again(job_id: int):
    session = db()
    job = _get_job(job_id)
    if import_jobs.queue_again(session, job, _clock()()):
        audit.record("rerun_import", "import_job", job.id)
        session.commit()
        _start_job(job.id)
        flash("Import started again: rows already imported stay as they are.", "ok")
    else:
        flash("This import is not interrupted: there is nothing to run again.", "error")
    return redirect(url_for("visits.import_report", job_id=job.id), 303)
