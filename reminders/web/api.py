"""The JSON API under /api/v1, behind `Authorization: Bearer <token>`."""
from __future__ import annotations

import hashlib
import json
import secrets
from datetime import timedelta
from functools import wraps

from flask import Blueprint, g, jsonify, request
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from reminders.intake.records import (
    MAX_LENGTH, AppointmentRecord, PatientRecord, VisitWindow, error_fields, reasons,
)
from reminders.intake.upsert import IntakeError, upsert_appointment, upsert_patient
from reminders.models import ApiToken, Appointment, OutboxMessage, Patient, utcnow
from reminders.web import db, json_error, settings
from reminders.web.serialize import appointment_json, message_json, patient_json
from reminders.web.twilio_hooks import request_now

api = Blueprint("api", __name__, url_prefix="/api/v1")

TOKEN_USE_GRANULARITY = timedelta(minutes=1)
PATIENT_KEYS = ("first_name", "last_name", "phone", "email", "timezone", "preferred_channel", "language",
                "medications_to_hold")
# A patient or an appointment is a few hundred bytes; anything far larger is a mistake or an attack.
MAX_BODY_BYTES = 64 * 1024
# {"patient": {...}} is as deep as a real request goes; deeper nesting is refused before use.
MAX_DEPTH = 4


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str) -> str:
    """Store a new API token's hash and return the token itself (shown once)."""
    token = "rem_" + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=hash_token(token)))
    session.commit()
    return token


def require_token(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _unauthorized("send an API token as 'Authorization: Bearer <token>' (create one with `reminders token create`)")
        row = db().scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token.strip())))
        if row is None or row.revoked_at is not None:
            return _unauthorized("the API token is not valid or has been revoked")
        g.api_token_name = row.name
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at > TOKEN_USE_GRANULARITY:
            row.last_used_at = now  # written at most once a minute per token
            db().commit()
        return view(*args, **kwargs)

    return wrapped


def _unauthorized(message: str):
    response = json_error(401, message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="clinic-reminders"'
    return response


def json_body(optional: bool = False) -> dict:
    """The request's JSON object, or a 4xx saying what is wrong with it (never a 500).

    Parsed here rather than by request.get_json: a body nested thousands deep makes the parser
    raise RecursionError, which Flask would turn into a 500."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise BadRequest(f"the request body is larger than {MAX_BODY_BYTES // 1024} KB", status=413, field="body")
    raw = request.get_data(cache=True)
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"the request body is larger than {MAX_BODY_BYTES // 1024} KB", status=413, field="body")
    if optional and not raw.strip():
        return {}
    if not request.is_json:
        raise BadRequest("the request body must be a JSON object (Content-Type: application/json)", field="body")
    try:
        data = json.loads(raw)
    except RecursionError:
        raise BadRequest(f"the request body is nested more than {MAX_DEPTH} levels deep", field="body") from None
    except ValueError as exc:  # also bad UTF-8
        raise BadRequest(f"the request body is not valid JSON ({str(exc)[:80]})", field="body") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object (Content-Type: application/json)", field="body")
    if _depth(data) > MAX_DEPTH:
        raise BadRequest(f"the request body is nested more than {MAX_DEPTH} levels deep", field="body")
    return data


def _depth(value) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            return depth
        level = [child for item in level if isinstance(item, (dict, list))
                 for child in (item.values() if isinstance(item, dict) else item) if isinstance(child, (dict, list))]
    return depth


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, errors: list[str] | None = None,
                 field: str | None = None, fields: list[str] | None = None):
        super().__init__(message)
        self.status, self.errors = status, errors
        self.fields = fields if fields is not None else ([field] if field else [])


@api.errorhandler(BadRequest)
def _bad_request(error: BadRequest):
    extra = {"errors": error.errors} if error.errors else {}
    if error.fields:
        extra["fields"] = error.fields
    return json_error(error.status, str(error), **extra)


def key_text(value, field: str, what: str = "record") -> str:
    """An external_id from a URL, a query or a body: text a column can hold, or a 4xx."""
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be text", status=422, errors=[f"{field} must be text"], field=field)
    if "\x00" in value:
        raise BadRequest(f"{field} contains a NUL character", status=422,
                         errors=[f"{field} contains a NUL character"], field=field)
    if len(value) > MAX_LENGTH["external_id"]:  # cannot exist: no need to ask the database
        raise BadRequest(f"no {what} with that {field} (longer than {MAX_LENGTH['external_id']} characters)",
                         status=404, field=field)
    return value


@api.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    return json_error(error.code or 500, error.description or error.name)


def _validated(model, data: dict, context: dict | None = None):
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        found = reasons(exc)
        raise BadRequest("; ".join(found), status=422, errors=found, fields=error_fields(exc)) from None


def _visit_window() -> dict:
    return {"visit_window": VisitWindow.from_settings(settings(), request_now())}


def _patient_by_external_id(external_id: str) -> Patient:
    external_id = key_text(external_id, "patient_external_id", "patient")
    patient = db().scalar(select(Patient).where(Patient.external_id == external_id))
    if patient is None:
        raise BadRequest(f"no patient with external_id {external_id!r}", status=404)
    return patient


def patient_from_query(what: str) -> Patient:
    """The patient named by ?patient_external_id=..., or a 4xx saying what is missing."""
    external_id = request.args.get("patient_external_id")
    if not external_id:
        raise BadRequest(f"add ?patient_external_id=... to say whose {what}", status=422)
    return _patient_by_external_id(external_id)


def _appointment_by_external_id(external_id: str) -> Appointment:
    external_id = key_text(external_id, "external_id", "appointment")
    appointment = db().scalar(select(Appointment).where(Appointment.external_id == external_id))
    if appointment is None:
        raise BadRequest(f"no appointment with external_id {external_id!r}", status=404)
    return appointment


def _patient_record(data: dict) -> PatientRecord:
    return _validated(PatientRecord, {**data, "phone_region": settings().default_phone_region})


@api.post("/patients")
@require_token
def create_or_update_patient():
    record = _patient_record(json_body())
    outcome = upsert_patient(db(), record, utcnow())
    db().commit()
    status = 201 if outcome.result == "created" else 200
    return jsonify({**patient_json(outcome.patient), "result": outcome.result}), status


@api.get("/patients/<external_id>")
@require_token
def get_patient(external_id: str):
    return jsonify(patient_json(_patient_by_external_id(external_id)))


@api.post("/appointments")
@require_token
def create_or_update_appointment():
    data = json_body()
    session, now = db(), utcnow()
    patient_data = data.get("patient")
    if patient_data is not None and not isinstance(patient_data, dict):
        raise BadRequest("patient must be an object", status=422, errors=["patient must be an object"], field="patient")
    if patient_data is None and any(key in data for key in PATIENT_KEYS):
        patient_data = {key: data[key] for key in PATIENT_KEYS if key in data}
    patient_external_id = data.get("patient_external_id") or (patient_data or {}).get("external_id")
    if not patient_external_id:
        raise BadRequest("patient_external_id is missing", status=422, errors=["patient_external_id is missing"],
                         field="patient_external_id")
    patient_external_id = key_text(patient_external_id, "patient_external_id", "patient")
    # Both records are checked before anything is written: a bad visit leaves the patient as it was.
    record = _validated(AppointmentRecord, {k: data.get(k) for k in ("external_id", "kind", "starts_at", "duration_minutes", "location", "status", "condition")},
                        _visit_window())
    if patient_data is not None:
        patient = upsert_patient(session, _patient_record({**patient_data, "external_id": patient_external_id}), now).patient
    else:
        patient = _patient_by_external_id(patient_external_id)
    try:
        outcome = upsert_appointment(session, patient, record, now, settings().induction_series_length)
    except IntakeError as exc:
        session.rollback()
        raise BadRequest(str(exc), status=409) from None
    session.commit()
    status = 201 if outcome.result == "created" else 200
    return jsonify({**appointment_json(outcome.appointment), "result": outcome.result}), status


@api.get("/appointments/<external_id>")
@require_token
def get_appointment(external_id: str):
    return jsonify(appointment_json(_appointment_by_external_id(external_id)))


@api.patch("/appointments/<external_id>")
@require_token
def change_appointment(external_id: str):
    """Reschedule (`starts_at`), cancel (`status: canceled`), or change kind, length or place."""
    data = json_body()
    allowed = {"starts_at", "status", "duration_minutes", "location", "kind", "condition"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadRequest(f"cannot change {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}", status=422,
                         fields=unknown)
    appointment = _appointment_by_external_id(external_id)
    current = {
        "external_id": appointment.external_id, "kind": appointment.kind, "starts_at": appointment.starts_at,
        "duration_minutes": appointment.duration_minutes, "location": appointment.location, "status": None,
    }
    # The booking window applies to a new time, not to a visit already on the books being closed.
    record = _validated(AppointmentRecord, {**current, **data}, _visit_window() if "starts_at" in data else None)
    session = db()
    outcome = upsert_appointment(session, appointment.patient, record, utcnow(), settings().induction_series_length)
    session.commit()
    return jsonify({**appointment_json(outcome.appointment), "result": outcome.result})


@api.get("/messages")
@require_token
def list_messages():
    patient = patient_from_query("messages")
    rows = db().scalars(
        select(OutboxMessage).where(OutboxMessage.patient_id == patient.id)
        .order_by(OutboxMessage.due_at, OutboxMessage.id)
    ).all()
    return jsonify({"patient_external_id": patient.external_id, "messages": [message_json(row) for row in rows]})


from reminders.web import api_replies  # noqa: E402,F401  (more routes on this blueprint)
