"""Patients: the list, one patient's page (contact, course, timeline, mood chart, measures) and CSV export;
for admins, everything stored about the patient as JSON, and erasure (reminders.retention)."""
from __future__ import annotations

import csv
import io
import json

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from reminders.models import Appointment, Course, Patient
from reminders.models.patients import CONDITIONS
from reminders.web.context import db, found, request_now, settings
from reminders.web.staff import audit, queries
from reminders import no_show_undo, retention
from reminders.web.staff.auth import current_user, guard
from reminders.web.staff.charts import mood_chart
from reminders.web.staff.downloads import download
from reminders.web.staff.measures_view import patient_measures

bp = Blueprint("patients", __name__, url_prefix="/patients")
guard(bp)
LIST_LIMIT = 200
RECENT_MESSAGES = 12  # on the patient page; older ones are folded away
CSV_COLUMNS = ("patient_external_id", "prompted_at", "answered_at", "score", "side_effects_note", "status",
               "reply_text", "visit_external_id", "visit_starts_at", "kind", "red_flags")


def get_patient(patient_id: int) -> Patient:
    return found(Patient, patient_id)


@bp.get("/")
def index():
    query = request.args.get("q", "").strip()
    stmt = select(Patient).order_by(func.lower(Patient.last_name), func.lower(Patient.first_name), Patient.id)
    if query:
        like = f"%{query.lower()}%"
        digits = "".join(ch for ch in query if ch.isdigit())
        conditions = [
            func.lower(Patient.first_name + " " + Patient.last_name).like(like),
            func.lower(Patient.email).like(like),
            func.lower(Patient.external_id).like(like),
        ]
        if digits:
            conditions.append(Patient.phone.like(f"%{digits}%"))
        stmt = stmt.where(or_(*conditions))
    patients = db().scalars(stmt.limit(LIST_LIMIT)).all()
    return render_template("staff/patients.html", patients=patients, query=query, limit=LIST_LIMIT)


@bp.get("/<int:patient_id>")
def show(patient_id: int):
    session, now = db(), request_now()
    patient = get_patient(patient_id)
    courses = session.scalars(
        select(Course).where(Course.patient_id == patient.id).order_by(Course.started_at.desc())
        .options(selectinload(Course.appointments))
    ).all()
    appointments = session.scalars(
        select(Appointment).where(Appointment.patient_id == patient.id)
        .order_by(Appointment.starts_at.desc()).options(selectinload(Appointment.course))
    ).all()
    rows = queries.checkins(session, patient.id)
    series = settings().induction_series_length
    chart = mood_chart(queries.mood_points(rows), queries.infusion_marks(appointments, now, series),
                       patient.timezone, chart_id=f"mood-{patient.id}", low_score=settings().crisis_score_max)
    measures = patient_measures(session, patient, now, series)
    audit.record("view_patient", "patient", patient.id)
    session.commit()
    timeline = queries.timeline(session, patient.id)
    escalations = queries.patient_escalations(session, patient.id)
    crisis_texts = {e.inbound_message_id for e in escalations if e.inbound_message_id}
    undo_window = no_show_undo.undo_window(settings())
    return render_template(
        "staff/patient.html", patient=patient, courses=courses, appointments=appointments,
        no_course=[a for a in appointments if a.course_id is None], checkins=rows,
        answers=[row for row in reversed(rows) if row.score is not None or row.note.strip() or row.details.strip()],
        chart=chart,
        # What happened, newest first; what is still to go, soonest first and folded away.
        past=[item for item in timeline if not item.planned], recent=RECENT_MESSAGES,
        planned=sorted((item for item in timeline if item.planned), key=lambda item: item.at),
        # Crises (open first) and red flags (texts ranked above routine that opened no escalation).
        escalations=sorted(escalations, key=lambda e: e.status == "acknowledged"),
        red_flags=[m for m in queries.red_flags(session, patient.id) if m.id not in crisis_texts],
        progress=lambda a: queries.progress(a, series), closable=lambda a: queries.day_has_come(a, now),
        undo_until=lambda a: no_show_undo.undo_until(a, undo_window) if no_show_undo.can_undo(a, undo_window, now)
        else None,
        conditions=CONDITIONS, measures=measures,
    )


def _cell(value) -> str:
    """A CSV cell a spreadsheet will not run: text that looks like a formula is quoted."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


@bp.get("/<int:patient_id>/checkins.csv")
def export_checkins(patient_id: int):
    session = db()
    patient = get_patient(patient_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in queries.checkins(session, patient.id):
        visit = row.appointment
        writer.writerow([_cell(v) for v in (
            patient.external_id, row.prompted_at and row.prompted_at.isoformat(),
            row.answered_at and row.answered_at.isoformat(), row.score, row.note, row.status, row.raw_text,
            visit.external_id if visit else "", visit.starts_at.isoformat() if visit else "", row.kind, row.details,
        )])
    audit.record("export_checkins", "patient", patient.id)
    session.commit()
    return download(out.getvalue(), "text/csv", f"checkins-{patient.external_id or patient.id}.csv")


# --- Admins: the patient's data, and erasure -------------------------------------------------------

def _admin() -> None:
    if current_user().role != "admin":
        abort(403)


@bp.get("/<int:patient_id>/export.json")
def export_data(patient_id: int):
    """Everything stored about the patient (reminders.retention.patient_data), as a JSON download."""
    _admin()
    session = db()
    patient = get_patient(patient_id)
    data = retention.patient_data(session, patient)
    audit.record("export_patient", "patient", patient.id)
    session.commit()
    return download(json.dumps(data, indent=2, ensure_ascii=False), "application/json",
                    f"patient-{patient.external_id or patient.id}.json")


@bp.route("/<int:patient_id>/erase", methods=["GET", "POST"])
def erase(patient_id: int):
    """Erase the patient's personal data, after a confirmation that names them."""
    _admin()
    session = db()
    patient = get_patient(patient_id)
    error = None
    if patient.erased_at is not None:
        error = "This patient's data is erased already."
    elif request.method == "POST":
        try:
            retention.erase(session, patient, actor=current_user().email, now=request_now())
        except retention.ErasureRefused as exc:
            session.rollback()
            error = str(exc)
        else:
            session.commit()
            flash("The patient's personal data is erased: nothing more will be sent to them.", "ok")
            return redirect(url_for(".show", patient_id=patient.id))
    return render_template("staff/patient_erase.html", patient=patient, error=error), 422 if error else 200
