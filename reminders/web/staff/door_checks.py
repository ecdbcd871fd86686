"""Bad data caught at the door: a patient who may already be on file, a visit that overlaps one of
the same patient's, a visit on a clinic holiday. Each answers in words for the staff form."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from reminders.models import Appointment, Patient
from reminders.web.staff.display import date_time, phone as shown_phone, time_only

# A visit marked canceled or no-show no longer holds its time.
HOLDS_TIME = ("scheduled", "confirmed", "completed")
MAX_DUPLICATES_SHOWN = 5


@dataclass(frozen=True)
class PossibleDuplicate:
    patient: Patient
    why: str  # "same phone", "same name", "same name and phone"


def possible_duplicates(session: Session, first_name: str, last_name: str,
                        phone: str | None) -> list[PossibleDuplicate]:
    """Patients on file with the same mobile number, or the same first and last name (no birth date
    is kept, so the name alone is enough to ask)."""
    same_name = (func.lower(Patient.first_name) == first_name.strip().lower()) & \
        (func.lower(Patient.last_name) == (last_name or "").strip().lower())
    matches = [same_name] + ([Patient.phone == phone] if phone else [])
    found = session.scalars(select(Patient).where(Patient.erased_at.is_(None), or_(*matches))
                            .order_by(Patient.id).limit(MAX_DUPLICATES_SHOWN)).all()
    result = []
    for patient in found:
        name = patient.first_name.lower() == first_name.strip().lower() and \
            (patient.last_name or "").lower() == (last_name or "").strip().lower()
        number = bool(phone) and patient.phone == phone
        why = "same name and phone" if name and number else "same phone" if number else "same name"
        result.append(PossibleDuplicate(patient, why))
    return result


def describe_duplicate(found: PossibleDuplicate) -> str:
    patient = found.patient
    number = shown_phone(patient.phone) if patient.phone else "no phone"
    return f"{patient.full_name}, {number} ({found.why})"


def overlapping_visit(patient: Patient, starts_at: datetime, minutes: int,
                      leave_out: Appointment | None = None) -> Appointment | None:
    """The patient's first other visit (still holding its time) that overlaps [starts_at, +minutes)."""
    ends_at = starts_at + timedelta(minutes=max(minutes, 1))
    for other in sorted(patient.appointments, key=lambda a: a.starts_at):
        if other is leave_out or other.status not in HOLDS_TIME:
            continue
        other_ends = other.starts_at + timedelta(minutes=max(other.duration_minutes or 0, 1))
        if other.starts_at < ends_at and starts_at < other_ends:
            return other
    return None


def overlap_message(patient: Patient, other: Appointment) -> str:
    kind = "an induction infusion" if other.kind == "induction" else "a maintenance visit"
    ends = other.starts_at + timedelta(minutes=other.duration_minutes or 0)
    return (f"{patient.full_name} already has {kind} then: {date_time(other.starts_at)} to {time_only(ends)}. "
            "Choose another time, or change that visit.")


def first_overlap(patient: Patient, starts: list[datetime], minutes: int) -> str | None:
    """The refusal for a course whose visits would overlap the patient's other visits, or None."""
    for starts_at in starts:
        other = overlapping_visit(patient, starts_at, minutes)
        if other is not None:
            return overlap_message(patient, other)
    return None


def holiday_warning(day: date, holidays) -> str | None:
    if day not in holidays:
        return None
    return (f"{day:%A, %B} {day.day} is a clinic holiday. The visit is booked anyway: check that someone "
            "will be there, or change it.")
