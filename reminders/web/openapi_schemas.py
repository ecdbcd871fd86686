"""The pieces the OpenAPI document's schemas are made of, and the request bodies' schemas.

The request bodies' schemas are made from the pydantic models the routes validate with
(reminders.intake.records), with the limits those models enforce (column widths, allowed values)
taken from the same constants. What a route checks by hand (the appointment's patient fields, the
PATCH keys, an acknowledgement) is written out below as the route does it.
"""
from __future__ import annotations

import copy

from pydantic import BaseModel

from reminders.intake.records import (
    APPOINTMENT_KINDS, APPOINTMENT_STATUSES, CHANNEL_PREFERENCES, DURATION_RANGE, MAX_LENGTH, STATUS_ALIASES,
    AppointmentRecord, PatientRecord,
)
from reminders.models.patients import CONDITIONS, LANGUAGES
from reminders.web.api import PATIENT_KEYS

REF = "#/components/schemas/{model}"
# What PATCH /appointments/<external_id> may change (reminders.web.api.change_appointment).
PATCH_KEYS = ("starts_at", "status", "duration_minutes", "location", "kind", "condition")


# ---------------------------------------------------------------- schema helpers

def ref(name: str) -> dict:
    return {"$ref": REF.format(model=name)}


def nullable(schema: dict) -> dict:
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    return {**schema, "type": [schema["type"], "null"]}


STR = {"type": "string"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
TIME = {"type": "string", "format": "date-time"}


def obj(properties: dict, required: tuple[str, ...] | None = None, description: str = "",
        closed: bool = False) -> dict:
    """An object; every property is required (always present in an answer) unless told otherwise."""
    schema: dict = {"type": "object", "properties": properties,
                    "required": list(properties if required is None else required)}
    if description:
        schema["description"] = description
    if closed:
        schema["additionalProperties"] = False
    return schema


def array(items: dict) -> dict:
    return {"type": "array", "items": items}


def result_of(name: str, values: tuple[str, ...], component: dict) -> dict:
    """A record as answered by a write: its fields and `result`."""
    out = copy.deepcopy(component)
    out["properties"]["result"] = {"type": "string", "enum": list(values), "description": "what the call did"}
    out["required"].append("result")
    out["title"] = name
    return out


# What the validators accept, said on the field (the models' own schema has types only).
FIELD_NOTES = {
    "external_id": "the clinic system's id; upserts match on it",
    "patient_external_id": "the patient's external_id",
    "first_name": "required for a new patient",
    "timezone": "an IANA zone, e.g. America/New_York (not localtime, Factory or posixrules)",
    "phone": "any common form; stored as E.164 (+12025550143). Needed for sms, both and whatsapp",
    "email": "needed for email and both",
    "preferred_channel": "sms (default), email, both or whatsapp",
    "language": "en or es (any case; es-MX reads as es); left out: what is stored stays (en for a new patient)",
    "medications_to_hold": "a note for the pre-visit instructions; left out: what is stored stays; \"\" clears it",
    "kind": "induction or maintenance (any case)",
    "starts_at": "ISO-8601 with a UTC offset (2026-03-03T09:30:00-05:00), inside the booking window "
                 "(VISIT_WINDOW_PAST_DAYS back, VISIT_WINDOW_FUTURE_DAYS ahead)",
    "duration_minutes": f"whole minutes, {DURATION_RANGE[0]} to {DURATION_RANGE[1]} (default 60)",
    "location": "a location's code or name (GET /api/v1/locations), kept as given; empty: the default location. "
                "While the clinic has no locations, any text (a room) is taken",
    "status": f"one of {', '.join(APPOINTMENT_STATUSES)} (also {', '.join(STATUS_ALIASES)}); "
              "left out: what is stored stays (scheduled for a new visit)",
    "condition": "what the course treats; empty or left out: what is stored stays",
}
FIELD_VALUES = {
    "kind": list(APPOINTMENT_KINDS),
    "preferred_channel": list(CHANNEL_PREFERENCES),
    "language": list(LANGUAGES),
    "condition": list(CONDITIONS),
    "status": [*APPOINTMENT_STATUSES, *STATUS_ALIASES],
}


def _string_branches(schema: dict) -> list[dict]:
    branches = schema.get("anyOf", [schema])
    return [branch for branch in branches if branch.get("type") == "string"]


def model_schema(model: type[BaseModel], drop: tuple[str, ...] = ()) -> dict:
    """`model`'s JSON schema as pydantic makes it, with the limits its validators enforce.

    `drop`: fields the API sets itself (a caller's value is overwritten)."""
    schema = model.model_json_schema(ref_template=REF)
    schema.pop("$defs", None)  # the records have no nested models; see component_schemas()
    for name in drop:
        schema["properties"].pop(name, None)
        if name in schema.get("required", []):
            schema["required"].remove(name)
    for name, prop in schema["properties"].items():
        if name in FIELD_NOTES:
            prop["description"] = FIELD_NOTES[name]
        for branch in _string_branches(prop):
            if name in MAX_LENGTH and branch.get("format") != "date-time":
                branch["maxLength"] = MAX_LENGTH[name]
            if name in FIELD_VALUES:
                branch["enum"] = FIELD_VALUES[name]
        if name == "duration_minutes":
            prop["minimum"], prop["maximum"] = DURATION_RANGE
        if name == "email":
            for branch in _string_branches(prop):
                branch["format"] = "email"
    return schema


def _defs(model: type[BaseModel]) -> dict:
    return model.model_json_schema(ref_template=REF).get("$defs", {})


def request_schemas() -> dict[str, dict]:
    patient = model_schema(PatientRecord, drop=("phone_region",))
    appointment = model_schema(AppointmentRecord)

    condition = copy.deepcopy(appointment["properties"]["condition"])
    condition["description"] = "what the open course treats (a patient without one gets one); empty or left out: stays"
    patient_input = copy.deepcopy(patient)
    patient_input["properties"]["condition"] = condition
    patient_input["title"] = "PatientInput"
    patient_input["description"] = "A patient, upserted by external_id (validated as PatientRecord)."

    inline = copy.deepcopy(patient)
    inline["required"] = [name for name in inline["required"] if name != "external_id"]
    inline["properties"]["external_id"]["description"] = "used when the appointment has no patient_external_id"
    inline["title"] = "PatientInline"
    inline["description"] = ("The appointment's patient, upserted with it (validated as PatientRecord; "
                             "external_id is the appointment's patient_external_id).")

    visit = copy.deepcopy(appointment)
    visit["title"] = "AppointmentInput"
    visit["description"] = (
        "An appointment, upserted by external_id (validated as AppointmentRecord). Its patient is named by "
        "patient_external_id (or patient.external_id) and must exist unless given inline: either as `patient` "
        f"or as the patient fields beside the visit's ({', '.join(PATIENT_KEYS)}; ignored when `patient` is "
        "given). An inline patient is validated as a PatientRecord (first_name and timezone required). "
        "Both are checked before anything is written.")
    visit["properties"]["patient_external_id"] = {**STR, "maxLength": MAX_LENGTH["patient_external_id"],
                                                  "description": FIELD_NOTES["patient_external_id"]}
    visit["properties"]["patient"] = ref("PatientInline")
    for key in PATIENT_KEYS:
        visit["properties"].setdefault(key, copy.deepcopy(patient["properties"][key]))
    visit["anyOf"] = [{"required": ["patient_external_id"]},
                      {"required": ["patient"], "properties": {"patient": {"required": ["external_id"]}}}]

    change = {
        "title": "AppointmentChange",
        "type": "object",
        "description": "What to change (validated as AppointmentRecord over the stored visit); any other key "
                       "is refused with 422. The booking window applies only when starts_at is given.",
        "properties": {key: copy.deepcopy(appointment["properties"][key]) for key in PATCH_KEYS},
        "additionalProperties": False,
    }
    ack = obj({
        "by": {"type": ["string", "null"], "description": "who has it (kept to 254 characters); "
                                                          "left out: the API token's name"},
        "note": {"type": ["string", "null"], "description": "kept to 2000 characters"},
    }, required=(), description="Who acknowledges the escalation; the body may be left out. Text without NUL.")
    ack["title"] = "EscalationAck"
    return {"PatientInput": patient_input, "PatientInline": inline, "AppointmentInput": visit,
            "AppointmentChange": change, "EscalationAck": ack,
            **_defs(PatientRecord), **_defs(AppointmentRecord)}
