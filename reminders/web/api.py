"""The JSON API under /api/v1, behind `Authorization: Bearer <token>`."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from functools import wraps

from flask import Blueprint, g, jsonify, request
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from reminders.intake.records import AppointmentRecord, PatientRecord, reasons
from reminders.intake.upsert import IntakeError, upsert_appointment, upsert_patient
from reminders.models import ApiToken, Appointment, OutboxMessage, Patient, utcnow
from reminders.web import db, json_error, settings
from reminders.web.serialize import appointment_json, message_json, patient_json

api = Blueprint("api", __name__, url_prefix="/api/v1")

TOKEN_USE_GRANULARITY = timedelta(minutes=1)
PATIENT_KEYS = ("first_name", "last_name", "phone", "email", "timezone", "preferred_channel")


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


def json_body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object (Content-Type: application/json)")
    return data


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, errors: list[str] | None = None):
        super().__init__(message)
        self.status, self.errors = status, errors


@api.errorhandler(BadRequest)
def _bad_request(error: BadRequest):
    extra = {"errors": error.errors} if error.errors else {}
    return json_error(error.status, str(error), **extra)


@api.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    return json_error(error.code or 500, error.description or error.name)


def _validated(model, data: dict):
    try:
        return model(**data)
    except ValidationError as exc:
        found = reasons(exc)
        raise BadRequest("; ".join(found), status=422, errors=found) from None


def _patient_by_external_id(external_id: str) -> Patient:
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
    patient_data = data.get("patient") if isinstance(data.get("patient"), dict) else None
    if patient_data is None and any(key in data for key in PATIENT_KEYS):
        patient_data = {key: data[key] for key in PATIENT_KEYS if key in data}
    patient_external_id = data.get("patient_external_id") or (patient_data or {}).get("external_id")
    if not patient_external_id:
        raise BadRequest("patient_external_id is missing", status=422, errors=["patient_external_id is missing"])
    if patient_data is not None:
        patient = upsert_patient(session, _patient_record({**patient_data, "external_id": patient_external_id}), now).patient
    else:
        patient = _patient_by_external_id(patient_external_id)
    record = _validated(AppointmentRecord, {k: data.get(k) for k in ("external_id", "kind", "starts_at", "duration_minutes", "location", "status")})
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
    allowed = {"starts_at", "status", "duration_minutes", "location", "kind"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadRequest(f"cannot change {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}", status=422)
    appointment = _appointment_by_external_id(external_id)
    current = {
        "external_id": appointment.external_id, "kind": appointment.kind, "starts_at": appointment.starts_at,
        "duration_minutes": appointment.duration_minutes, "location": appointment.location, "status": None,
    }
    record = _validated(AppointmentRecord, {**current, **data})
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
