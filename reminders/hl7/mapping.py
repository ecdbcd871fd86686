"""An SIU message read into what it asks for: book, reschedule, modify, cancel or mark a no-show.

Pure: no database, no clock, no sockets. What cannot be read is a `Refusal` carrying the ACK code
(AR: the message itself is not one this service takes; AE: its content cannot be applied), the HL7
error code (table 0357), a reason a person can act on, and where in the message it is.

Segments read: MSH (type, trigger, control ID), SCH (appointment IDs, type, duration, timing,
filler status), PID (identifier, name, phones and email, language), PV1 (location, when AIL has
none), AIS (service: type, start, duration), AIL (location). AIP (the clinician) is accepted and
not used: a text names no clinician.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import hl7

# What each trigger event asks for.
TRIGGERS = {"S12": "book", "S13": "reschedule", "S14": "modify", "S15": "cancel", "S26": "no_show"}
TAKEN = "SIU^S12, S13, S14, S15 and S26"

# HL7 table 0357, message error condition codes.
SEGMENT_SEQUENCE = "100"
REQUIRED_MISSING = "101"
DATA_TYPE = "102"
TABLE_VALUE = "103"
UNSUPPORTED_TYPE = "200"
UNSUPPORTED_EVENT = "201"
UNKNOWN_KEY = "204"
DUPLICATE_KEY = "205"
INTERNAL = "207"
ERROR_TEXT = {
    SEGMENT_SEQUENCE: "Segment sequence error", REQUIRED_MISSING: "Required field missing",
    DATA_TYPE: "Data type error", TABLE_VALUE: "Table value not found",
    UNSUPPORTED_TYPE: "Unsupported message type", UNSUPPORTED_EVENT: "Unsupported event code",
    UNKNOWN_KEY: "Unknown key identifier", DUPLICATE_KEY: "Duplicate key identifier",
    INTERNAL: "Application internal error",
}

# SCH-25 filler status (HL7 table 0278) -> the visit's status.
FILLER_STATUS = {
    "booked": "scheduled", "confirmed": "scheduled", "pending": "scheduled", "waitlist": None, "overbook": "scheduled",
    "started": "scheduled", "complete": "completed", "cancelled": "canceled", "canceled": "canceled",
    "deleted": "canceled", "noshow": "no_show", "blocked": None, "dc": "canceled",
}
# PID-15 primary language (ISO 639 codes and names) -> the patient's language.
LANGUAGES = {"en": "en", "eng": "en", "english": "en", "es": "es", "spa": "es", "spanish": "es",
             "espanol": "es", "español": "es"}
# AIS-8 / SCH-10 duration units -> minutes each.
UNITS = {"": 1, "min": 1, "mins": 1, "minute": 1, "minutes": 1, "m": 1, "h": 60, "hr": 60, "hrs": 60, "hour": 60,
         "hours": 60, "s": 1 / 60, "sec": 1 / 60, "second": 1 / 60, "seconds": 1 / 60}
TS = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})?(\d{2})?(?:\.\d{1,4})?)?([+-]\d{4})?$")
NOT_A_PHONE = {"FX", "BP", "MD", "TDD", "TTY", "INTERNET", "X.400"}  # fax, beeper, modem, ...


class Refusal(Exception):
    """A message that is not applied, and why (carried to the ACK's MSA-3 and ERR)."""

    def __init__(self, ack: str, code: str, reason: str, where: tuple[str, int, int] | None = None):
        super().__init__(reason)
        self.ack, self.code, self.reason, self.where = ack, code, reason, where


@dataclass(frozen=True)
class Header:
    """MSH as sent (raw field text, echoed in the ACK); empty strings where absent."""

    control_id: str = ""
    message_type: str = ""
    trigger: str = ""
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    processing_id: str = ""
    version: str = ""

    @property
    def name(self) -> str:
        return f"{self.message_type or '?'}^{self.trigger or '?'}"


@dataclass(frozen=True)
class PatientFields:
    """What PID says of the patient; None: not in the message (what is stored stays)."""

    external_id: str
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    email: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class VisitFields:
    """What SCH/AIS/AIL say of the visit; None: not in the message."""

    external_id: str
    kind: str | None = None
    type_text: str = ""  # the appointment type as sent, for a reason ("'KETX' (AIS-3)")
    starts_at: datetime | None = None
    duration_minutes: int | None = None
    location: str | None = None
    # What may name the clinic location (a code or a name), and the field it came from ("AIL-3").
    location_names: tuple[str, ...] = ()
    location_field: str = ""
    status: str | None = None


@dataclass(frozen=True)
class Action:
    verb: str  # book | reschedule | modify | cancel | no_show
    patient: PatientFields
    visit: VisitFields


@dataclass(frozen=True)
class MappingRules:
    appointment_types: dict[str, str]  # code or text, lower case -> induction | maintenance
    clinic_timezone: str  # for a time sent without an offset


# -- reading the text ----------------------------------------------------------------------------
def decode(block: bytes) -> tuple[str, str]:
    """The message's text and the encoding it was read with (UTF-8, else Latin-1, which reads any byte)."""
    try:
        return block.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return block.decode("latin-1"), "latin-1"


def _lines(text: str) -> list[str]:
    """Segments, whichever line ending the sender used, without empty lines or framing bytes."""
    text = text.strip("\x0b\x1c\r\n\t ")
    return [line for line in re.split(r"\r\n|\r|\n", text) if line.strip()]


def read_header(text: str) -> Header:
    """MSH read straight from the text, so that even a message the parser refuses is answered with
    its control ID. Fields are kept as sent (components and escapes included)."""
    lines = _lines(text)
    if not lines or not lines[0].startswith("MSH") or len(lines[0]) < 8:
        return Header()
    line = lines[0]
    separator, encoding = line[3], line[4:8]
    component = encoding[0]
    fields = ["MSH", separator] + line[4:].split(separator)  # fields[n] is MSH-n
    get = (lambda n: fields[n] if n < len(fields) else "")
    type_parts = get(9).split(component)
    return Header(
        control_id=get(10), message_type=type_parts[0].strip().upper(),
        trigger=(type_parts[1] if len(type_parts) > 1 else "").strip().upper(),
        sending_application=get(3), sending_facility=get(4), receiving_application=get(5),
        receiving_facility=get(6), processing_id=get(11), version=get(12),
    )


def parse_message(text: str) -> hl7.Message:
    lines = _lines(text)
    if not lines or not lines[0].startswith("MSH"):
        raise Refusal("AR", SEGMENT_SEQUENCE, "not an HL7 v2 message: it does not begin with an MSH segment",
                      ("MSH", 1, 0))
    try:
        return hl7.parse("\r".join(lines))
    except Exception as exc:  # noqa: BLE001 - the parser's own errors are of several kinds
        raise Refusal("AR", DATA_TYPE, f"not an HL7 v2 message the parser can read ({type(exc).__name__})",
                      ("MSH", 1, 0)) from None


def check_header(header: Header) -> str:
    """The verb the message asks for, or AR when its type or trigger is not one taken here."""
    if not header.message_type:
        raise Refusal("AR", REQUIRED_MISSING, f"MSH-9 (message type) is empty; this listener takes {TAKEN}",
                      ("MSH", 1, 9))
    if header.message_type != "SIU":
        raise Refusal("AR", UNSUPPORTED_TYPE,
                      f"{header.name} messages are not taken; this listener takes {TAKEN}", ("MSH", 1, 9))
    if header.trigger not in TRIGGERS:
        raise Refusal("AR", UNSUPPORTED_EVENT,
                      f"{header.name} is not taken; this listener takes {TAKEN}", ("MSH", 1, 9))
    if not header.control_id.strip():
        raise Refusal("AR", REQUIRED_MISSING, "MSH-10 (message control ID) is empty", ("MSH", 1, 10))
    return TRIGGERS[header.trigger]


# -- fields --------------------------------------------------------------------------------------
def _segments(message: hl7.Message, name: str) -> list:
    try:
        return list(message.segments(name))
    except KeyError:
        return []


def _get(segment, field: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
    """A value (unescaped, stripped), or "" when the message does not go that deep."""
    if segment is None:
        return ""
    try:
        value = segment.extract_field(1, field, rep, comp, sub)
    except (IndexError, KeyError, TypeError):
        return ""
    return str(value).strip()


def _repetitions(segment, field: int) -> int:
    if segment is None or field >= len(segment):
        return 0
    return len(segment[field])


def _required(message: hl7.Message, name: str, verb: str):
    found = _segments(message, name)
    if not found:
        raise Refusal("AR", SEGMENT_SEQUENCE, f"the message has no {name} segment (an SIU {verb} needs one)",
                      (name, 1, 0))
    return found[0]


def _patient_id(pid) -> str:
    """PID-3: the repetition with identifier type MR when there is one, else the first; else PID-2."""
    first = ""
    for rep in range(1, _repetitions(pid, 3) + 1):
        value = _get(pid, 3, rep, 1)
        if value and _get(pid, 3, rep, 5).upper() == "MR":
            return value
        first = first or value
    return first or _get(pid, 2, 1, 1)


def _contacts(pid) -> tuple[str | None, str | None]:
    """(phone, email) from PID-13 (home), else PID-14 (business): a cell phone first."""
    phones: list[tuple[int, str]] = []
    email = None
    for order, field in ((0, 13), (2, 14)):
        for rep in range(1, _repetitions(pid, field) + 1):
            use, equipment = _get(pid, field, rep, 2).upper(), _get(pid, field, rep, 3).upper()
            address = _get(pid, field, rep, 4)
            if use == "NET" or equipment in ("INTERNET", "X.400"):
                email = email or address or None
                continue
            if equipment in NOT_A_PHONE:
                continue
            number = _get(pid, field, rep, 12)  # unformatted number (v2.5 and later)
            if not number and _get(pid, field, rep, 7):
                country, area, local = _get(pid, field, rep, 5), _get(pid, field, rep, 6), _get(pid, field, rep, 7)
                number = f"+{country.lstrip('+')} {area} {local}" if country else f"{area} {local}".strip()
            number = number or _get(pid, field, rep, 1)  # the older formatted number
            if number:
                phones.append((order + (0 if equipment == "CP" else 1), number))
    phones.sort(key=lambda item: item[0])
    return (phones[0][1] if phones else None), email


def _language(pid) -> str | None:
    for comp in (1, 2):
        code = _get(pid, 15, 1, comp).lower()
        if code in LANGUAGES:
            return LANGUAGES[code]
    return None


def parse_ts(value: str, zone: tzinfo, label: str, where: tuple[str, int, int]) -> datetime:
    """An HL7 TS/DTM (YYYYMMDDHHMM[SS[.S]][+/-ZZZZ]): its own offset, else the clinic's zone."""
    match = TS.match(value.strip())
    if not match:
        raise Refusal("AE", DATA_TYPE, f"{label} {value!r} is not an HL7 date and time (YYYYMMDDHHMM[SS][+/-ZZZZ])",
                      where)
    year, month, day, hour, minute, second, offset = match.groups()
    if hour is None:
        raise Refusal("AE", DATA_TYPE, f"{label} {value!r} has a date but no time of day", where)
    if offset:
        sign = -1 if offset[0] == "-" else 1
        zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
    try:
        return datetime(int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0), tzinfo=zone)
    except ValueError as exc:
        raise Refusal("AE", DATA_TYPE, f"{label} {value!r} is not a real date and time ({exc})", where) from None


def _start(message: hl7.Message, sch, zone: tzinfo) -> datetime | None:
    for index, ais in enumerate(_segments(message, "AIS"), start=1):
        value = _get(ais, 4)
        if value:
            return parse_ts(value, zone, "AIS-4 (start)", ("AIS", index, 4))
    value = _get(sch, 11, 1, 4)  # TQ start date/time (SCH-11, v2.3 to v2.5)
    if value:
        return parse_ts(value, zone, "SCH-11.4 (start)", ("SCH", 1, 11))
    return None


def _minutes(amount: str, units: str, label: str, where: tuple[str, int, int]) -> int:
    try:
        number = float(amount)
    except ValueError:
        raise Refusal("AE", DATA_TYPE, f"{label} {amount!r} is not a number", where) from None
    factor = UNITS.get(units.strip().lower())
    if factor is None:
        raise Refusal("AE", TABLE_VALUE, f"{label}: duration units {units!r} are not minutes, hours or seconds", where)
    return round(number * factor)


def _duration(message: hl7.Message, sch) -> int | None:
    for index, ais in enumerate(_segments(message, "AIS"), start=1):
        if _get(ais, 7):
            units = _get(ais, 8, 1, 1) or _get(ais, 8, 1, 2)
            return _minutes(_get(ais, 7), units, "AIS-7 (duration)", ("AIS", index, 7))
    if _get(sch, 9):
        units = _get(sch, 10, 1, 1) or _get(sch, 10, 1, 2)
        return _minutes(_get(sch, 9), units, "SCH-9 (duration)", ("SCH", 1, 9))
    return None


def _location(message: hl7.Message) -> tuple[str | None, tuple[str, ...], str]:
    """AIL-3, else PV1-3: (the location as booked: the facility (PL.4), else the point of care
    (PL.1); what may name the clinic location: that, the identifier (.1) and its text (.2); the field)."""
    for name in ("AIL", "PV1"):
        for segment in _segments(message, name):
            value = _get(segment, 3, 1, 4) or _get(segment, 3, 1, 1)
            if value:
                names = [value, _get(segment, 3, 1, 1), _get(segment, 3, 1, 2)]
                return value, tuple(dict.fromkeys(n for n in names if n)), f"{name}-3"
    return None, (), ""


def _kind(message: hl7.Message, sch, types: dict[str, str]) -> tuple[str | None, str]:
    """(induction|maintenance or None, the type as sent) from AIS-3, else SCH-8, else SCH-7."""
    candidates = [(ais, 3, "AIS-3") for ais in _segments(message, "AIS")] + [(sch, 8, "SCH-8"), (sch, 7, "SCH-7")]
    shown = ""
    for segment, field, label in candidates:
        for comp in (1, 2):
            value = _get(segment, field, 1, comp)
            if not value:
                continue
            if value.lower() in types:
                return types[value.lower()], f"{value!r} ({label})"
            shown = shown or f"{value!r} ({label})"
    return None, shown


# -- the message as an action --------------------------------------------------------------------
def to_action(message: hl7.Message, verb: str, rules: MappingRules) -> Action:
    sch = _required(message, "SCH", verb)
    pid = _required(message, "PID", verb)
    visit_id = _get(sch, 2, 1, 1) or _get(sch, 1, 1, 1)
    if not visit_id:
        raise Refusal("AE", REQUIRED_MISSING, "SCH-2 (filler appointment ID) and SCH-1 (placer appointment ID) "
                      "are both empty", ("SCH", 1, 2))
    patient_id = _patient_id(pid)
    if not patient_id:
        raise Refusal("AE", REQUIRED_MISSING, "PID-3 (patient identifier) is empty", ("PID", 1, 3))
    if verb in ("cancel", "no_show"):
        status = "canceled" if verb == "cancel" else "no_show"
        return Action(verb, PatientFields(patient_id), VisitFields(visit_id, status=status))

    zone = ZoneInfo(rules.clinic_timezone)
    phone, email = _contacts(pid)
    given, family = _get(pid, 5, 1, 2), _get(pid, 5, 1, 1)
    patient = PatientFields(patient_id, first_name=given or None, last_name=(family if given else None),
                            phone=phone, email=email, language=_language(pid))
    starts_at = _start(message, sch, zone)
    if starts_at is None and verb in ("book", "reschedule"):
        raise Refusal("AE", REQUIRED_MISSING, "no start time: AIS-4 and SCH-11.4 are both empty", ("AIS", 1, 4))
    kind, type_text = _kind(message, sch, rules.appointment_types)
    filler = _get(sch, 25, 1, 1).lower() or _get(sch, 25, 1, 2).lower()
    status = FILLER_STATUS.get(filler)
    if status is None and verb in ("book", "reschedule"):
        status = "scheduled"
    location, location_names, location_field = _location(message)
    visit = VisitFields(visit_id, kind=kind, type_text=type_text, starts_at=starts_at,
                        duration_minutes=_duration(message, sch), location=location, location_names=location_names,
                        location_field=location_field, status=status)
    return Action(verb, patient, visit)


# Where each record field comes from, for the reasons of a refused record.
FIELD_SOURCES: dict[str, tuple[str, tuple[str, int, int]]] = {
    "external_id": ("SCH-2", ("SCH", 1, 2)), "patient_external_id": ("PID-3", ("PID", 1, 3)),
    "first_name": ("PID-5", ("PID", 1, 5)), "last_name": ("PID-5", ("PID", 1, 5)),
    "phone": ("PID-13", ("PID", 1, 13)), "email": ("PID-13", ("PID", 1, 13)),
    "language": ("PID-15", ("PID", 1, 15)), "kind": ("AIS-3", ("AIS", 1, 3)),
    "starts_at": ("AIS-4", ("AIS", 1, 4)), "duration_minutes": ("AIS-7", ("AIS", 1, 7)),
    "location": ("AIL-3", ("AIL", 1, 3)), "status": ("SCH-25", ("SCH", 1, 25)),
    "timezone": ("CLINIC_TIMEZONE", ("PID", 1, 0)),
}
