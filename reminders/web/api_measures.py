"""API route for validated measures: a patient's questionnaires and, per scale, the course's progress.

GET /api/v1/measures?patient_external_id=...   questionnaires oldest first, and a summary per scale
                                                 for the patient's current course
"""
from __future__ import annotations

from flask import jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from reminders.measures import scales as catalogue
from reminders.measures.progress import Point, ScaleProgress, progress
from reminders.measures.questionnaires import is_expired
from reminders.models import Course, Patient, Questionnaire
from reminders.web.api_auth import require_token
from reminders.web.api_requests import BadRequest, api_blueprint, patient_by_external_id
from reminders.web.context import db, request_now
from reminders.web.serialize import iso

api_measures = api_blueprint("api_measures", __name__)


def _band_label(scale_key: str, band_key: str | None) -> str | None:
    try:
        scale = catalogue.get_scale(scale_key)
    except KeyError:
        return None
    return next((band.label("en") for band in scale.bands if band.key == band_key), None)


def questionnaire_json(q: Questionnaire, now) -> dict:
    return {
        "id": q.id,
        "scale": q.scale,
        "occasion": q.occasion,
        "visit_external_id": q.appointment.external_id if q.appointment else None,
        "channel": q.channel,
        "language": q.language,
        "status": q.status,
        "expired": q.status != "completed" and is_expired(q, now),
        "sent_at": iso(q.sent_at),
        "expires_at": iso(q.expires_at),
        "completed_at": iso(q.completed_at),
        "score": q.score,
        "band": q.band,
        "band_label": _band_label(q.scale, q.band),
        "screened_out": q.screened_out,
        "safety_raised": q.safety_raised,
        "answers": {str(item): value for item, value in sorted(q.answered().items())},
    }


def _point_json(point: Point | None) -> dict | None:
    if point is None:
        return None
    return {"questionnaire_id": point.questionnaire_id, "score": point.score, "band": point.band,
            "occasion": point.occasion, "completed_at": iso(point.taken_at)}


def summary_json(found: ScaleProgress) -> dict:
    change = found.change
    return {
        "scale": found.scale.key,
        "name": found.scale.short_name,
        "scores": len(found.points),
        "baseline": _point_json(found.baseline),
        "latest": _point_json(found.latest),
        "change_points": change[0] if change else None,
        "change_percent": round(change[1], 1) if change and change[1] is not None else None,
        "response": found.response,
        "remission": found.remission,
    }


def current_course(patient: Patient) -> Course | None:
    """The open course, else the latest: the one whose progress the summary gives."""
    courses = sorted(patient.courses, key=lambda c: (c.started_at, c.id))
    open_courses = [c for c in courses if c.ended_at is None]
    return (open_courses or courses or [None])[-1]


@api_measures.get("/measures")
@require_token
def list_measures():
    external_id = request.args.get("patient_external_id")
    if not external_id:
        raise BadRequest("add ?patient_external_id=... to say whose measures", status=400,
                         field="patient_external_id")
    patient = patient_by_external_id(external_id)
    rows = list(db().scalars(
        select(Questionnaire).where(Questionnaire.patient_id == patient.id)
        .order_by(Questionnaire.sent_at, Questionnaire.id).options(selectinload(Questionnaire.appointment))))
    course = current_course(patient)
    in_course = [q for q in rows if course is None or q.course_id == course.id]
    now = request_now()
    return jsonify({
        "patient_external_id": patient.external_id,
        "condition": course.condition if course else None,
        "questionnaires": [questionnaire_json(q, now) for q in rows],
        "summary": {key: summary_json(found) for key, found in progress(in_course).items()},
    })
