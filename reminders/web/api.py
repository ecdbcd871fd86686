"""The JSON API under /api/v1, behind `Authorization: Bearer <token>`: patients, appointments, messages."""
from __future__ import annotations

from flask import jsonify
from pydantic import ValidationError
from sqlalchemy import select

from reminders.intake.records import (
    AppointmentRecord, PatientRecord, VisitWindow, check_condition, error_fields, locate, reasons,
)
from reminders.intake.upsert import (
    ClosedLocation, IntakeError, current_course, set_condition, upsert_appointment, upsert_patient,
)
from reminders.locations import LocationBook, LocationError, describe
from reminders.models import Appointment, OutboxMessage
from reminders.web.api_auth import require_token
from reminders.web.api_requests import (
    BadRequest, api_blueprint, by_external_id, json_body, key_text, patient_by_external_id, patient_from_query,
)
from reminders.web.context import db, request_now, settings
from reminders.web.serialize import appointment_json, message_json, patient_json

api = api_blueprint("api", __name__)

PATIENT_KEYS = ("first_name", "last_name", "phone", "email", "timezone", "preferred_channel", "language",
                "medications_to_hold")


def _validated(model, data: dict, context: dict | None = None):
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        found = reasons(exc)
        raise BadRequest("; ".join(found), status=422, errors=found, fields=error_fields(exc)) from None


def _visit_window() -> dict:
    return {"visit_window": VisitWindow.from_settings(settings(), request_now())}


def _located(record: AppointmentRecord) -> AppointmentRecord:
    """The record with the location its `location` names (by code or name), or a 422 saying so."""
    try:
        record.location_id = locate(LocationBook.load(db(), settings()), record.location)
    except LocationError as exc:
        raise BadRequest(str(exc), status=422, errors=[str(exc)], field="location") from None
    return record


def _upsert_visit(session, patient, record: AppointmentRecord, now):
    try:
        return upsert_appointment(session, patient, record, now, settings().induction_series_length)
    except ClosedLocation as exc:
        session.rollback()
        raise BadRequest(str(exc), status=422, errors=[str(exc)], field="location") from None
    except IntakeError as exc:
        session.rollback()
        raise BadRequest(str(exc), status=409) from None


def _appointment_by_external_id(external_id: str) -> Appointment:
    return by_external_id(Appointment, external_id, "external_id", "appointment")


def _patient_record(data: dict) -> PatientRecord:
    return _validated(PatientRecord, {**data, "phone_region": settings().default_phone_region})


@api.post("/patients")
@require_token
def create_or_update_patient():
    data = json_body()
    record = _patient_record(data)
    condition = _condition(data.get("condition"))
    session, now = db(), request_now()
    outcome = upsert_patient(session, record, now)
    result = outcome.result
    if condition is not None:
        # What the open course treats; a patient without one gets it now, as a first visit would.
        course = current_course(session, outcome.patient, now, settings().induction_series_length)
        if set_condition(course, condition) and result == "unchanged":
            result = "updated"
        session.flush()
        session.refresh(outcome.patient, ["courses"])
    session.commit()
    status = 201 if result == "created" else 200
    return jsonify({**patient_json(outcome.patient), "result": result}), status


def _condition(value) -> str | None:
    """The `condition` field of a patient: None when left out or blank (what is stored stays)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest("condition must be text", status=422, errors=["condition must be text"], field="condition")
    try:
        return check_condition(value.strip())
    except ValueError as exc:
        raise BadRequest(str(exc), status=422, errors=[str(exc)], field="condition") from None


@api.get("/patients/<external_id>")
@require_token
def get_patient(external_id: str):
    return jsonify(patient_json(patient_by_external_id(external_id)))


@api.post("/appointments")
@require_token
def create_or_update_appointment():
    data = json_body()
    session, now = db(), request_now()
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
    record = _located(_validated(
        AppointmentRecord, {k: data.get(k) for k in ("external_id", "kind", "starts_at", "duration_minutes", "location",
                                                     "status", "condition")},
        _visit_window()))
    if patient_data is not None:
        patient = upsert_patient(session, _patient_record({**patient_data, "external_id": patient_external_id}), now).patient
    else:
        patient = patient_by_external_id(patient_external_id)
    outcome = _upsert_visit(session, patient, record, now)
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
    if "location" in data:  # else the visit stays where it is
        _located(record)
    session = db()
    outcome = _upsert_visit(session, appointment.patient, record, request_now())
    session.commit()
    return jsonify({**appointment_json(outcome.appointment), "result": outcome.result})


@api.get("/locations")
@require_token
def list_locations():
    """The clinic's locations, the default (the settings themselves) first."""
    book = LocationBook.load(db(), settings())
    open_ids = {None, *(place.id for place in book.choices())}
    return jsonify({"locations": [{**describe(place), "active": place.id in open_ids}
                                  for place in [book.default, *book.places.values()]]})


@api.get("/messages")
@require_token
def list_messages():
    patient = patient_from_query("messages")
    rows = db().scalars(
        select(OutboxMessage).where(OutboxMessage.patient_id == patient.id)
        .order_by(OutboxMessage.due_at, OutboxMessage.id)
    ).all()
    return jsonify({"patient_external_id": patient.external_id, "messages": [message_json(row) for row in rows]})

