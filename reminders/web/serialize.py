"""JSON shapes of the clinic's records, shared by the API and the staff UI."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import object_session

from reminders.models import Appointment, Location, OutboxMessage, Patient


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def patient_json(patient: Patient) -> dict:
    return {
        "external_id": patient.external_id,
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "phone": patient.phone,
        "email": patient.email,
        "timezone": patient.timezone,
        "preferred_channel": patient.preferred_channel,
        "sms_opted_out": patient.sms_opted_out,
        "opted_out_at": iso(patient.opted_out_at),
        "opt_out_text": patient.opt_out_text,
        "opted_in_at": iso(patient.opted_in_at),
        "language": patient.language,
        "medications_to_hold": patient.medications_to_hold,
        "condition": current_condition(patient),
    }


def current_condition(patient: Patient) -> str | None:
    """What the patient's open course treats (the latest course when none is open)."""
    courses = [c for c in patient.courses if c.ended_at is None] or list(patient.courses)
    return courses[-1].condition if courses else None


def appointment_json(appointment: Appointment) -> dict:
    course = appointment.course
    return {
        "external_id": appointment.external_id,
        "patient_external_id": appointment.patient.external_id,
        "kind": appointment.kind,
        "number_in_course": appointment.number_in_course,
        "series_length": course.induction_sessions_planned if course else None,
        "condition": course.condition if course else None,
        "starts_at": iso(appointment.starts_at),
        "duration_minutes": appointment.duration_minutes,
        "location": appointment.location,
        "location_code": location_code(appointment),
        "status": appointment.status,
        "confirmed_at": iso(appointment.confirmed_at),
        "reschedule_requested_at": iso(appointment.reschedule_requested_at),
        "canceled_at": iso(appointment.canceled_at),
        "needs_planning": appointment.needs_planning,
        "planning_error": appointment.planning_error,  # why no reminders could be planned, if so
    }


def location_code(appointment: Appointment) -> str | None:
    """The code of the clinic location the visit is at; None for the default location."""
    if appointment.location_id is None:
        return None
    location = object_session(appointment).get(Location, appointment.location_id)
    return location.code if location is not None else None


def message_json(row: OutboxMessage) -> dict:
    return {
        "id": row.id,
        "direction": "out",
        "appointment_external_id": row.appointment.external_id if row.appointment else None,
        "kind": row.kind,
        "rule": row.rule,
        "channel": row.channel,
        "status": row.status,
        "status_reason": row.status_reason,
        "planned_for": iso(row.planned_for),
        "due_at": iso(row.due_at),
        "sent_at": iso(row.sent_at),
        "delivered_at": iso(row.delivered_at),
        "to": row.to_address,
        "subject": row.subject,
        "body": row.body,
        "segments": row.segments,
        "attempts": row.attempts,
        "provider_id": row.provider_id,
        "provider_status": row.provider_status,
        "error_code": row.error_code,
        "error_message": row.error_message,
    }
