"""API route for validated measures: a patient's questionnaires and, per scale, the course's progress.

GET /api/v1/measures?patient_external_id=...   questionnaires oldest first, and a summary per scale
                                                 for the patient's current course

A questionnaire stopped by SMS after a negative PHQ-2 (or GAD-2) has "screen": "negative", "score":
null, "band": "screen_negative", and its screener's own score in "screen_score" ("screen_name":
"PHQ-2"); it is never a summary's baseline or latest, and never a response or remission. The
summary lists it under "screen_negatives". "screen" is null for every other questionnaire (all its
items asked); "screen_score" is then its PHQ-2 part, for information.
"""
from __future__ import annotations

from flask import jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from reminders import scales as catalogue
from reminders.measures.progress import Point, ScaleProgress, Screen, is_screen_negative, progress, screen_of
from reminders.measures.questionnaires import extra_words, is_expired
from reminders.models import Course, Patient, Questionnaire
from reminders.web.api_auth import require_token
from reminders.web.api_requests import BadRequest, api_blueprint, patient_by_external_id
from reminders.web.context import db, request_now, settings
from reminders.web.serialize import iso

api_measures = api_blueprint("api_measures", __name__)


def _band_label(scale_key: str, band_key: str | None) -> str | None:
    try:
        scale = catalogue.get_scale(scale_key)
    except KeyError:
        return None
    return next((band.label("en") for band in scale.bands if band.key == band_key), None)


def _screen(q: Questionnaire) -> dict:
    """What the screener (PHQ-2) said: "negative" stopped the questionnaire, no total."""
    try:
        scale = catalogue.get_scale(q.scale)
    except KeyError:
        return {"screen": None, "screen_name": None, "screen_score": None}
    if not scale.has_screener:
        return {"screen": None, "screen_name": None, "screen_score": None}
    found = catalogue.screen_score(scale, q.answered())
    return {"screen": "negative" if is_screen_negative(q) else None, "screen_name": scale.screener_name,
            "screen_score": found}


def _extra(q: Questionnaire) -> dict:
    try:
        scale = catalogue.get_scale(q.scale)
    except KeyError:
        return {}
    if scale.extra is None:
        return {}
    return {scale.extra.key: q.extra_answer, f"{scale.extra.key}_label": extra_words(q)}


def questionnaire_json(q: Questionnaire, now) -> dict:
    screen_negative = is_screen_negative(q)
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
        "score": None if screen_negative else q.score,  # a screen negative has no total
        "band": catalogue.SCREEN_NEGATIVE if screen_negative else q.band,
        "band_label": screen_of(q).words if screen_negative else _band_label(q.scale, q.band),
        "screened_out": screen_negative,
        **_screen(q),
        "safety_raised": q.safety_raised,
        "answers": {str(item): value for item, value in sorted(q.answered().items())},
        **_extra(q),
    }


def _point_json(point: Point | None) -> dict | None:
    if point is None:
        return None
    return {"questionnaire_id": point.questionnaire_id, "score": point.score, "band": point.band,
            "occasion": point.occasion, "completed_at": iso(point.taken_at)}


def _screen_json(screen: Screen) -> dict:
    return {"questionnaire_id": screen.questionnaire_id, "screen": "negative", "screen_name": screen.name,
            "screen_score": screen.screen_score, "label": screen.words, "occasion": screen.occasion,
            "completed_at": iso(screen.taken_at)}


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
        "response_rule": found.scale.response_words(),
        "remission": found.remission,
        # Not scores: never a baseline, a latest, a response or a remission.
        "screen_negatives": [_screen_json(screen) for screen in found.screens],
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
        "summary": {key: summary_json(found) for key, found in progress(
            in_course, catalogue.response_points_of(settings())).items()},
    })
