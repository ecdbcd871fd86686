"""A patient's measures for a referrer or payer: a printable page, the same as a PDF, and a CSV of
every questionnaire with its answers. Each view or download is written to the audit log."""
from __future__ import annotations

import csv
import io

from flask import Blueprint, render_template
from sqlalchemy import select

from reminders import scales as catalogue
from reminders.models import Course, Patient, Questionnaire
from reminders.web.context import db, request_now, settings
from reminders.web.staff import audit
from reminders.web.staff.auth import guard
from reminders.web.staff.downloads import download
from reminders.web.staff.measures_view import RULES, instruments, long_day, patient_measures, status_of
from reminders.web.staff.patients import _cell, get_patient

bp = Blueprint("reports", __name__, url_prefix="/patients")
guard(bp)
CSV_COLUMNS = ("patient_external_id", "course_id", "condition", "scale", "occasion", "channel", "status", "sent_at",
               "started_at", "completed_at", "expires_at", "score", "band", "screened_out", "self_harm_answer",
               "escalation_id")


def _facts(patient: Patient) -> "ReportFacts":  # noqa: F821
    from reminders.web.staff.report_pdf import ReportFacts  # fpdf2 loads only for a report

    now, config = request_now(), settings()
    courses = patient_measures(db(), patient, now, config.induction_series_length)
    return ReportFacts(config.clinic_name, patient, courses, now, config.clinic_timezone)


def _file_name(patient: Patient, kind: str, extension: str) -> str:
    """The name to save as; downloads.download() makes it safe for the header, whatever the record id holds."""
    return f"{kind}-{patient.external_id or patient.id}.{extension}"


@bp.get("/<int:patient_id>/report")
def report(patient_id: int):
    patient = get_patient(patient_id)
    facts = _facts(patient)
    audit.record("view_report", "patient", patient.id)
    db().commit()
    return render_template("staff/report.html", facts=facts, patient=patient, tz=patient.timezone,
                           instruments=instruments(facts.courses), rules=RULES, long_day=long_day)


@bp.get("/<int:patient_id>/report.pdf")
def report_pdf_download(patient_id: int):
    patient = get_patient(patient_id)
    from reminders.web.staff.report_pdf import report_pdf

    body = report_pdf(_facts(patient))
    audit.record("download_report_pdf", "patient", patient.id)
    db().commit()
    return download(body, "application/pdf", _file_name(patient, "measures-report", "pdf"))


@bp.get("/<int:patient_id>/measures.csv")
def export_measures(patient_id: int):
    session, now = db(), request_now()
    patient = get_patient(patient_id)
    rows = session.scalars(select(Questionnaire).where(Questionnaire.patient_id == patient.id)
                           .order_by(Questionnaire.sent_at, Questionnaire.id)).all()
    conditions = {c.id: c.condition for c in session.scalars(select(Course).where(Course.patient_id == patient.id))}
    most_items = max(len(scale.items) for scale in catalogue.all_scales().values())
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS + tuple(f"item_{n}" for n in range(1, most_items + 1)))
    for q in rows:
        stamp = [value.isoformat() if value else "" for value in (q.sent_at, q.started_at, q.completed_at,
                                                                   q.expires_at)]
        answers = q.answered()
        writer.writerow([_cell(v) for v in (
            patient.external_id, q.course_id, conditions.get(q.course_id) or "", q.scale, q.occasion, q.channel,
            status_of(q, now), *stamp, q.score, q.band, "yes" if q.screened_out else "no",
            "yes" if q.safety_raised else "no", q.escalation_id,
            *(answers.get(n, "") for n in range(1, most_items + 1)),
        )])
    audit.record("export_measures", "patient", patient.id)
    session.commit()
    return download(out.getvalue(), "text/csv", _file_name(patient, "questionnaires", "csv"))
