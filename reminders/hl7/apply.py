"""An SIU action applied through intake's upsert, the path the CSV import and the JSON API take.

Everything is checked before anything is written, and the caller's transaction is rolled back on a
refusal: a message that is refused changes nothing stored. HL7 carries no time zone or channel
preference for a patient: a patient stored keeps theirs, a new one gets CLINIC_TIMEZONE and SMS. A
phone, email or name the message leaves out keeps what is stored.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.hl7.mapping import (
    DUPLICATE_KEY, FIELD_SOURCES, REQUIRED_MISSING, TABLE_VALUE, UNKNOWN_KEY, DATA_TYPE, Action, Refusal,
)
from reminders.intake.records import AppointmentRecord, PatientRecord, VisitWindow, locate, reasons
from reminders.intake.upsert import ClosedLocation, IntakeError, fresh, upsert_appointment, upsert_patient
from reminders.locations import LocationBook, LocationError
from reminders.models import Appointment, Patient
from reminders.models.patients import preference_needs

DONE = {"book": "booked", "reschedule": "rescheduled", "modify": "modified", "cancel": "canceled",
        "no_show": "marked no-show"}


@dataclass(frozen=True)
class Applied:
    verb: str
    result: str  # created | updated | unchanged

    @property
    def text(self) -> str:
        return f"appointment {DONE[self.verb]} ({self.result})"


def _refused(error: ValidationError, *, patient: bool) -> Refusal:
    """A record's validation errors as one AE, each reason naming the field it came from."""
    parts, first = [], None
    for item, message in zip(error.errors(), reasons(error)):
        loc = item.get("loc") or ()
        name = str(loc[0]) if loc else message.split(" ", 1)[0]
        if patient and name == "external_id":
            name = "patient_external_id"
        source, where = FIELD_SOURCES.get(name, ("", None))
        parts.append(f"{source}: {message}" if source else message)
        first = first or (where, "missing" in message)
    where, missing = first or (None, False)
    return Refusal("AE", REQUIRED_MISSING if missing else DATA_TYPE, "; ".join(parts), where)


def apply_action(session: Session, action: Action, settings, now: datetime) -> Applied:
    patient = session.scalar(fresh(select(Patient).where(Patient.external_id == action.patient.external_id)))
    visit = session.scalar(fresh(select(Appointment).where(Appointment.external_id == action.visit.external_id)))
    if action.verb in ("cancel", "no_show") and patient is None:
        what = "cancel" if action.verb == "cancel" else "mark as a no-show"
        raise Refusal("AE", UNKNOWN_KEY, f"patient {action.patient.external_id!r} (PID-3) is not known here; "
                      f"there is no appointment of theirs to {what}", ("PID", 1, 3))
    if visit is not None and (patient is None or visit.patient_id != patient.id):
        raise Refusal("AE", DUPLICATE_KEY,
                      f"appointment {action.visit.external_id!r} (SCH-2) belongs to another patient than "
                      f"{action.patient.external_id!r} (PID-3); cancel it and book a new one", ("SCH", 1, 2))
    if action.verb in ("cancel", "no_show"):
        return _close(session, action, patient, visit, settings, now)
    return _book(session, action, patient, visit, settings, now)


def _close(session, action: Action, patient, visit, settings, now) -> Applied:
    what = "cancel" if action.verb == "cancel" else "mark as a no-show"
    if visit is None:
        raise Refusal("AE", UNKNOWN_KEY, f"appointment {action.visit.external_id!r} (SCH-2) is not known here; "
                      f"nothing to {what}", ("SCH", 1, 2))
    record = AppointmentRecord.model_validate({
        "external_id": visit.external_id, "kind": visit.kind, "starts_at": visit.starts_at,
        "duration_minutes": visit.duration_minutes, "location": visit.location, "status": action.visit.status,
    })
    outcome = upsert_appointment(session, patient, record, now, settings.induction_series_length)
    return Applied(action.verb, outcome.result)


def _book(session, action: Action, patient, visit, settings, now) -> Applied:
    patient_record = _patient_record(action, patient, settings)
    visit_record = _visit_record(action, visit, settings, now)
    wanted = action.visit
    where = (wanted.location_field.partition("-")[0], 1, 3)
    if wanted.location_names:  # else a visit stays where it is (a new one: the default location)
        try:
            visit_record.location_id = locate(LocationBook.load(session, settings), *wanted.location_names)
        except LocationError as exc:
            raise Refusal("AE", TABLE_VALUE, f"{wanted.location_field}: {exc}", where) from None

    patient = upsert_patient(session, patient_record, now).patient
    try:
        outcome = upsert_appointment(session, patient, visit_record, now, settings.induction_series_length)
    except ClosedLocation as exc:
        raise Refusal("AE", TABLE_VALUE, f"{wanted.location_field}: {exc}", where) from None
    except IntakeError as exc:
        raise Refusal("AE", DUPLICATE_KEY, str(exc), ("SCH", 1, 2)) from None
    return Applied(action.verb, outcome.result)


def _patient_record(action: Action, stored, settings) -> PatientRecord:
    """The patient as the message gives them; what it leaves out, as stored (or the clinic's default)."""
    given = action.patient
    patient_data = {
        "external_id": given.external_id,
        "first_name": given.first_name or (stored.first_name if stored else None),
        "last_name": given.last_name if given.first_name else (stored.last_name if stored else ""),
        "phone": given.phone or (stored.phone if stored else None),
        "email": given.email or (stored.email if stored else None),
        "timezone": stored.timezone if stored else settings.clinic_timezone,
        "preferred_channel": stored.preferred_channel if stored else "sms",
        "language": given.language,
        "phone_region": settings.default_phone_region,
    }
    if not patient_data["phone"] and preference_needs(patient_data["preferred_channel"], "phone"):
        raise Refusal("AE", REQUIRED_MISSING, "PID-13: no phone number for the patient, who gets texts "
                      "(a cell phone in PID-13, or PID-14)", ("PID", 1, 13))
    try:
        return PatientRecord.model_validate(patient_data)
    except ValidationError as exc:
        raise _refused(exc, patient=True) from None


def _visit_record(action: Action, visit, settings, now) -> AppointmentRecord:
    """The visit as the message gives it; what it leaves out, as stored."""
    wanted = action.visit
    kind = wanted.kind or (visit.kind if visit else None) or settings.hl7_default_kind or None
    if kind is None:
        if wanted.type_text:
            reason = (f"appointment type {wanted.type_text} is not in HL7_APPOINTMENT_TYPES; map it to induction "
                      "or maintenance")
        else:
            reason = "no appointment type (AIS-3, SCH-8 or SCH-7) and HL7_DEFAULT_KIND is empty"
        raise Refusal("AE", TABLE_VALUE, reason, ("AIS", 1, 3))
    starts_at = wanted.starts_at or (visit.starts_at if visit else None)
    if starts_at is None:
        raise Refusal("AE", REQUIRED_MISSING, "no start time: AIS-4 and SCH-11.4 are both empty", ("AIS", 1, 4))
    visit_data = {
        "external_id": wanted.external_id, "kind": kind, "starts_at": starts_at,
        "duration_minutes": wanted.duration_minutes or (visit.duration_minutes if visit else None),
        "location": wanted.location if wanted.location is not None else (visit.location if visit else ""),
        "status": wanted.status,
    }
    # The booking window applies to a time the message sets, not to a stored one kept.
    moved = wanted.starts_at is not None and (visit is None or visit.starts_at != wanted.starts_at)
    context = {"visit_window": VisitWindow.from_settings(settings, now)} if moved else None
    try:
        return AppointmentRecord.model_validate(visit_data, context=context)
    except ValidationError as exc:
        raise _refused(exc, patient=False) from None
