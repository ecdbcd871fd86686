"""FHIR R4 Appointment and Patient resources -> the intake's records. Pure: no I/O.

An appointment comes out as one of:
- Mapped(patient, appointment): records for the same upsert the CSV import uses;
- Skipped(reason): nothing to do here (not booked yet, a status this service does not know, an
  entry made in error for a visit never taken in);
- Cancel(reason): a visit here that the server cancelled or marks entered in error;
- Rejected(reason): a visit the clinic should fix at the source (no patient, no phone or email,
  a type that maps to no visit kind...). The reason names what is wrong.

Statuses (R4 Appointment.status): booked, arrived and checked-in are scheduled; fulfilled is
completed; noshow is no_show; cancelled and entered-in-error cancel the visit. proposed, pending
and waitlist are not booked yet and are skipped; any other value is skipped with its name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from reminders.intake.records import AppointmentRecord, PatientRecord, check_language, locate, reasons

STATUS_MAP = {
    "booked": "scheduled", "arrived": "scheduled", "checked-in": "scheduled",
    "fulfilled": "completed", "noshow": "no_show", "cancelled": "canceled", "entered-in-error": "canceled",
}
NOT_BOOKED_YET = ("proposed", "pending", "waitlist")
CANCELING = {"cancelled": "cancelled on the server", "entered-in-error": "entered in error on the server"}
# http://hl7.org/fhir/StructureDefinition/patient-timezone is not in R4; this one is (R4 core extension).
TIMEZONE_EXTENSIONS = ("http://hl7.org/fhir/StructureDefinition/timezone",
                       "http://hl7.org/fhir/StructureDefinition/tz-code")
LANGUAGE_NAMES = {"english": "en", "spanish": "es", "español": "es", "espanol": "es"}
MOBILE_FIRST = {"mobile": 0, None: 1, "home": 2, "work": 3, "temp": 4}


@dataclass(frozen=True)
class MappingSettings:
    appointment_types: dict[str, str]  # lower-cased type code or text -> induction | maintenance
    default_kind: str = ""  # "" : a type not in the mapping rejects the visit
    clinic_timezone: str = "America/New_York"
    phone_region: str = "US"
    id_prefix: str = "fhir:"

    @classmethod
    def from_settings(cls, settings) -> "MappingSettings":
        return cls(settings.fhir_appointment_types, settings.fhir_default_kind, settings.clinic_timezone,
                   settings.default_phone_region, settings.fhir_id_prefix)


@dataclass(frozen=True)
class Mapped:
    patient: PatientRecord
    appointment: AppointmentRecord
    fhir_status: str


@dataclass(frozen=True)
class Skipped:
    reason: str


@dataclass(frozen=True)
class Cancel:
    """A visit taken in before that the server now marks cancelled or entered in error."""

    reason: str


@dataclass(frozen=True)
class Rejected:
    reasons: tuple[str, ...]


@dataclass
class Resolver:
    """Finds the patient an appointment names among the resources at hand (the page's included
    patients, and any fetched on their own)."""

    patients: dict[str, object] = field(default_factory=dict)  # "Patient/<id>" and fullUrl -> Patient

    def add(self, patient, full_url: str | None = None) -> None:
        if patient.id:
            self.patients[f"Patient/{patient.id}"] = patient
        if full_url:
            self.patients[full_url] = patient
            tail = "/".join(full_url.rstrip("/").split("/")[-2:])
            if tail.startswith("Patient/"):
                self.patients.setdefault(tail, patient)

    def find(self, reference: str):
        if reference in self.patients:
            return self.patients[reference]
        # An absolute URL ("https://ehr/fhir/Patient/5"), or a versioned one (".../Patient/5/_history/2").
        tail = "/".join(reference.split("/_history/")[0].rstrip("/").split("/")[-2:])
        return self.patients.get(tail)


def patient_reference(appointment) -> str | None:
    """The reference of the appointment's patient participant ("Patient/123"), if it has one."""
    for participant in appointment.participant or []:
        actor = participant.actor
        reference = (actor.reference or "") if actor is not None else ""
        if reference.startswith("Patient/") or "/Patient/" in reference or (
                actor is not None and actor.type == "Patient" and reference):
            return reference
    return None


def appointment_kind(appointment, ms: MappingSettings) -> tuple[str | None, str]:
    """The visit kind from the appointment's types, and the types seen (for a reason)."""
    seen: list[str] = []
    concepts = [appointment.appointmentType] if appointment.appointmentType is not None else []
    concepts += list(appointment.serviceType or [])
    concepts += list(appointment.serviceCategory or [])
    for concept in concepts:
        for coding in concept.coding or []:
            for value in (coding.code, coding.display):
                if value:
                    seen.append(value)
        if concept.text:
            seen.append(concept.text)
    for value in seen:
        kind = ms.appointment_types.get(value.strip().lower())
        if kind:
            return kind, ", ".join(seen)
    return (ms.default_kind or None), ", ".join(seen)


def pick_phone(telecom) -> str | None:
    """The number to text: a mobile first, then by rank; none that are old or ended."""
    phones = []
    for n, point in enumerate(telecom or []):
        if point.system not in ("phone", "sms") or not point.value or point.use == "old":
            continue
        if point.period is not None and point.period.end is not None:
            continue
        use = 0 if point.system == "sms" else MOBILE_FIRST.get(point.use, 5)
        phones.append((use, point.rank or 1_000, n, point.value))
    return min(phones)[3] if phones else None


def pick_email(telecom) -> str | None:
    emails = [(point.rank or 1_000, n, point.value) for n, point in enumerate(telecom or [])
              if point.system == "email" and point.value and point.use != "old"
              and (point.period is None or point.period.end is None)]
    return min(emails)[2] if emails else None


def pick_language(communication) -> str | None:
    """en or es from the preferred communication (else the first); None for any other language
    (the patient keeps what is stored, English for a new one)."""
    items = sorted(communication or [], key=lambda c: 0 if c.preferred else 1)
    for item in items:
        concept = item.language
        values = [c.code for c in concept.coding or [] if c.code] + [c.display for c in concept.coding or [] if c.display]
        if concept.text:
            values.append(concept.text)
        for value in values:
            value = LANGUAGE_NAMES.get(value.strip().lower(), value)
            try:
                return check_language(value)
            except ValueError:
                continue
        return None  # the preferred language is one the templates do not have
    return None


def pick_timezone(patient, default: str) -> str:
    for extension in patient.extension or []:
        if extension.url in TIMEZONE_EXTENSIONS and extension.valueCode:
            return extension.valueCode
    return default


def patient_name(patient) -> tuple[str, str]:
    names = sorted(patient.name or [], key=lambda n: {"official": 0, "usual": 1}.get(n.use, 2))
    for name in names:
        given = " ".join(name.given or []).strip()
        if given or name.family:
            return given, name.family or ""
        if name.text:
            first, _, last = name.text.strip().partition(" ")
            return first, last
    return "", ""


def map_patient(patient, ms: MappingSettings) -> PatientRecord | Rejected:
    phone, email = pick_phone(patient.telecom), pick_email(patient.telecom)
    if not phone and not email:
        return Rejected((f"Patient/{patient.id} has no phone or email in telecom: no reminder could reach them",))
    first, last = patient_name(patient)
    try:
        return PatientRecord(
            external_id=f"{ms.id_prefix}{patient.id}", first_name=first or "Patient", last_name=last,
            phone=phone, email=email, timezone=pick_timezone(patient, ms.clinic_timezone),
            preferred_channel="sms" if phone else "email", phone_region=ms.phone_region,
            language=pick_language(patient.communication),
        )
    except ValidationError as exc:
        return Rejected(tuple(f"Patient/{patient.id}: {reason}" for reason in reasons(exc)))


def map_appointment(appointment, resolver: Resolver, ms: MappingSettings, known: bool,
                    locations=None) -> Mapped | Skipped | Rejected:
    """`known`: the visit is already here (an entry made in error then cancels it; else it is skipped).
    `locations` (a reminders.locations.LocationBook): the clinic's, which a Location participant names."""
    status = appointment.status
    if status in NOT_BOOKED_YET:
        return Skipped(f"status {status!r}: not booked yet")
    if status not in STATUS_MAP:
        return Skipped(f"status {status!r} is not an appointment status this service knows")
    if status in CANCELING:
        if not known:
            return Skipped(f"{CANCELING[status]} (never taken in here)")
        return Cancel(CANCELING[status])
    reference = patient_reference(appointment)
    if reference is None:
        return Rejected(("no participant is a Patient",))
    patient = resolver.find(reference)
    if patient is None:
        return Rejected((f"{reference} was not found on the server",))
    patient_record = map_patient(patient, ms)
    errors: list[str] = list(patient_record.reasons) if isinstance(patient_record, Rejected) else []
    kind, types = appointment_kind(appointment, ms)
    if kind is None:
        errors.append(f"appointment type {types or '(none)'} is not in FHIR_APPOINTMENT_TYPES "
                      "(and FHIR_DEFAULT_KIND is not set)")
    if appointment.start is None:
        errors.append("has no start time")
    if errors:
        return Rejected(tuple(errors))
    try:
        record = AppointmentRecord(
            external_id=f"{ms.id_prefix}{appointment.id}", kind=kind, starts_at=appointment.start,
            duration_minutes=duration(appointment), location=location(appointment),
            status=STATUS_MAP[status],
        )
        if locations is not None:
            record.location_id = locate(locations, *location_names(appointment))
    except ValidationError as exc:
        return Rejected(tuple(reasons(exc)))
    except ValueError as exc:  # LocationError
        return Rejected((f"the Location participant: {exc}",))
    return Mapped(patient_record, record, status)


def duration(appointment) -> int:
    if appointment.minutesDuration:
        return appointment.minutesDuration
    if appointment.start is not None and appointment.end is not None:
        minutes = (appointment.end - appointment.start).total_seconds() / 60
        if minutes > 0:
            return round(minutes)
    return 60


def _location_actor(appointment):
    for participant in appointment.participant or []:
        actor = participant.actor
        if actor is not None and (actor.type == "Location" or (actor.reference or "").startswith("Location/")
                                  or "/Location/" in (actor.reference or "")):
            return actor
    return None


def location(appointment) -> str:
    """The Location participant's name, if the server gives one (the default location otherwise)."""
    actor = _location_actor(appointment)
    return (actor.display or "").strip() if actor is not None else ""


def location_names(appointment) -> tuple[str, ...]:
    """What may name the clinic location: the Location participant's display (a location's name),
    then its id ("Location/austin": a location's code)."""
    actor = _location_actor(appointment)
    if actor is None:
        return ()
    reference = (actor.reference or "").split("/_history/")[0].rstrip("/")
    location_id = reference.rsplit("/", 1)[-1] if "Location/" in reference else ""
    return tuple(name for name in ((actor.display or "").strip(), location_id) if name)


def last_updated(resource) -> datetime | None:
    return resource.meta.lastUpdated if resource.meta is not None else None
