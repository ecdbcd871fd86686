"""The JSON API described in OpenAPI 3.1: GET /api/v1/openapi.json, and GET /api/v1/docs (the same
document as a page, rendered here: no script, no file from elsewhere). Neither needs a token: a
description of the API holds no patient data.

The request bodies' schemas are made from the pydantic models the routes validate with
(reminders.intake.records), with the limits those models enforce (column widths, allowed values)
taken from the same constants. What a route checks by hand (the appointment's patient fields, the
PATCH keys, an acknowledgement) is written out below as the route does it.

Paths come from Flask's url_map: every rule under /api/v1 whose endpoint is in ROUTES. A route
without an entry is left out of the document (tests/test_openapi.py fails naming it); an entry is
where a new route says what it takes and answers.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

from flask import Flask, current_app, jsonify, render_template
from pydantic import BaseModel

from reminders.intake.records import (
    APPOINTMENT_KINDS, APPOINTMENT_STATUSES, CHANNEL_PREFERENCES, DURATION_RANGE, MAX_LENGTH, STATUS_ALIASES,
    AppointmentRecord, PatientRecord,
)
from reminders.models.patients import CONDITIONS, LANGUAGES
from reminders.web.api import PATIENT_KEYS
from reminders.web.api_requests import API_PREFIX, MAX_BODY_BYTES, MAX_DEPTH, api_blueprint

openapi = api_blueprint("openapi", __name__)

REF = "#/components/schemas/{model}"
SKIPPED_METHODS = {"HEAD", "OPTIONS"}
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


def response_schemas() -> dict[str, dict]:
    s, ns, nt, ni = STR, nullable(STR), nullable(TIME), nullable(INT)
    patient = obj({
        "external_id": s, "first_name": s, "last_name": s, "phone": ns, "email": ns, "timezone": s,
        "preferred_channel": s, "sms_opted_out": BOOL, "opted_out_at": nt, "opt_out_text": ns,
        "opted_in_at": nt, "language": s, "medications_to_hold": ns,
        "condition": {**ns, "description": "what the open course (else the latest) treats"},
    }, description="A patient, with opt-out state.")
    appointment = obj({
        "external_id": s, "patient_external_id": s, "kind": s, "number_in_course": ni, "series_length": ni,
        "condition": ns, "starts_at": TIME, "duration_minutes": INT,
        "location": {**ns, "description": "the location (or room) as booked"},
        "location_code": {**ns, "description": "the code of the clinic location the visit is at (GET /locations); "
                                               "null: the default location"},
        "status": s,
        "confirmed_at": nt, "reschedule_requested_at": nt, "canceled_at": nt, "needs_planning": BOOL,
        "planning_error": {**ns, "description": "why no reminders could be planned, if so"},
    }, description="An appointment, with confirmation and reschedule request.")
    message = obj({
        "id": INT, "direction": {"const": "out"}, "appointment_external_id": ns, "kind": s, "rule": ns,
        "channel": s, "status": s, "status_reason": ns, "planned_for": nt, "due_at": nt, "sent_at": nt,
        "delivered_at": nt, "to": ns, "subject": ns, "body": ns, "segments": ni, "attempts": INT,
        "provider_id": ns, "provider_status": ns, "error_code": ns, "error_message": ns,
    }, description="A message planned or sent, with its state.")
    problem = copy.deepcopy(message)
    problem["properties"]["patient_external_id"] = ns
    problem["required"].append("patient_external_id")
    visit = obj({"external_id": ns, "kind": s, "number_in_course": ni, "starts_at": TIME, "status": s})
    checkin = obj({
        "id": INT, "status": {**s, "description": "awaiting, reasked, answered or to_staff"},
        "kind": {**s, "description": "mood (0 worst, 10 best) or pain (0 none, 10 worst)"},
        "score": ni, "note": ns, "details": ns, "raw_text": ns, "prompted_at": nt, "reasked_at": nt,
        "answered_at": nt, "appointment_external_id": ns, "appointment_starts_at": nt,
        "follows": nullable(ref("Visit")), "inbound_message_id": ni,
    }, description="A mood (or pain) check-in after a visit.")
    reply = obj({
        "id": INT, "direction": {"const": "in"}, "received_at": TIME, "from": s, "patient_external_id": ns,
        "appointment_external_id": ns, "body": s, "classification": s, "needs_staff": BOOL,
        "priority": {**INT, "description": "2 crisis, 1 a nurse today, 0 routine"}, "flag_reason": ns,
        "done_at": nt, "done_by": ns, "reply": ns, "message_sid": ns,
    }, description="A text from a patient.")
    alert = obj({"id": INT, "channel": s, "to": ns, "status": s, "error_code": ns, "sent_at": nt,
                 "delivered_at": nt})
    escalation = obj({
        "id": INT, "status": {**s, "enum": ["open", "claimed", "acknowledged"],
                              "description": "open: staff are alerted; claimed: a person is on it, alerts "
                                             "stopped; acknowledged: resolved with a note"},
        "reason": s, "opened_at": TIME,
        "patient_external_id": ns, "patient_name": ns, "from": ns, "text": ns, "inbound_message_id": ni,
        "alert_round": INT, "last_alerted_at": nt, "next_alert_at": nt, "acknowledged_at": nt,
        "acknowledged_by": ns, "ack_note": ns, "claimed_at": nt, "claimed_by": ns, "alerts": array(ref("Alert")),
    }, description="A possible crisis, with the alerts sent about it.")
    nudge = obj({"channel": s, "status": s, "due_at": nt, "sent_at": nt})
    followup = obj({
        "patient_external_id": ns, "patient_name": ns, "phone": ns, "kind": s, "reason": s, "due_by": nt,
        "overdue": BOOL, "last_visit": nullable(ref("Visit")), "next_visit": nullable(ref("Visit")),
        "missed_visit": nullable(ref("Visit")), "nudge": nullable(ref("Nudge")),
    }, description="A patient who should be booked and is not.")
    questionnaire = obj({
        "id": INT, "scale": s, "occasion": s, "visit_external_id": ns, "channel": s, "language": s, "status": s,
        "expired": BOOL, "sent_at": nt, "expires_at": nt, "completed_at": nt,
        "score": {**ni, "description": "null for a screen negative"}, "band": ns, "band_label": ns,
        "screened_out": BOOL, "screen": nullable({**STR, "enum": ["negative"]}), "screen_name": ns,
        "screen_score": ni, "safety_raised": BOOL,
        "answers": {"type": "object", "additionalProperties": INT, "description": "item number -> answer"},
    }, description="A validated questionnaire (PHQ-9, GAD-7, PCL-5, pain). A scale with an extra question "
                   "adds it and its `<key>_label`.")
    point = obj({"questionnaire_id": INT, "score": ni, "band": ns, "occasion": s, "completed_at": nt})
    screen = obj({"questionnaire_id": INT, "screen": {"const": "negative"}, "screen_name": ns,
                  "screen_score": ni, "label": ns, "occasion": s, "completed_at": nt})
    summary = obj({
        "scale": s, "name": s, "scores": INT, "baseline": nullable(ref("ScorePoint")),
        "latest": nullable(ref("ScorePoint")), "change_points": ni,
        "change_percent": nullable({"type": "number"}), "response": nullable(BOOL), "response_rule": ns,
        "remission": nullable(BOOL), "screen_negatives": array(ref("ScreenNegative")),
    }, description="A scale's progress over the current course (null without a threshold or a second score).")
    location = obj({
        "id": {**ni, "description": "null: the default location (the clinic's settings)"},
        "code": {**s, "description": "what `location` names in a CSV row or an appointment; \"\" for the default"},
        "name": {**s, "description": "as patients read it"}, "address": s, "phone": s, "timezone": s,
        "sender": {**s, "description": "the number (or Messaging Service) its texts go from"},
        "office_hours": {**s, "description": "HH:MM-HH:MM"}, "office_days": array(STR), "holidays": array(STR),
        "oncall_phones": array(STR), "oncall_emails": array(STR), "arrive_minutes_before": INT,
        "rideshare_allowed": BOOL, "active": {**BOOL, "description": "false: closed to new visits"},
    }, description="A clinic location: its own settings, each the clinic's unless the location sets it.")
    provider = obj({
        "channel": s, "provider": ns, "state": {**s, "enum": ["ok", "failing", "paused"]},
        "failing_since": nt, "consecutive_failures": INT, "paused_until": nt, "last_error": ns,
        "waiting": INT, "alerts_waiting": INT,
    }, description="A channel's provider, as the circuit breaker sees it.")
    error = obj({
        "error": {**s, "description": "what is wrong, in words"},
        "errors": {**array(STR), "description": "each reason (invalid fields)"},
        "fields": {**array(STR), "description": "the fields the reasons are about (`body` for the body itself)"},
    }, required=("error",), description="Every 4xx answer of the API.")
    results = ("created", "updated", "unchanged")
    return {
        "Patient": patient, "PatientResult": result_of("PatientResult", results, patient),
        "Appointment": appointment, "AppointmentResult": result_of("AppointmentResult", results, appointment),
        "Message": message, "DeliveryProblem": problem, "Visit": visit, "CheckIn": checkin, "Reply": reply,
        "Alert": alert, "Escalation": escalation,
        "EscalationResult": result_of("EscalationResult", ("acknowledged", "already_acknowledged"), escalation),
        "Nudge": nudge, "Followup": followup, "Questionnaire": questionnaire, "ScorePoint": point,
        "ScreenNegative": screen, "ScaleSummary": summary, "ProviderStatus": provider, "Error": error,
        "MessageList": obj({"patient_external_id": s, "messages": array(ref("Message"))}),
        "CheckInList": obj({"patient_external_id": s, "checkins": array(ref("CheckIn"))}),
        "ReplyList": obj({"patient_external_id": s, "replies": array(ref("Reply"))}, required=("replies",),
                         description="patient_external_id only when asked for one patient"),
        "EscalationList": obj({"escalations": array(ref("Escalation"))}),
        "FollowupList": obj({"followups": array(ref("Followup"))}),
        "DeliveryProblemList": obj({"messages": array(ref("DeliveryProblem"))}),
        "Measures": obj({
            "patient_external_id": s, "condition": ns, "questionnaires": array(ref("Questionnaire")),
            "summary": {"type": "object", "additionalProperties": ref("ScaleSummary"),
                        "description": "scale key -> progress over the current course"},
        }),
        "ProviderStatusList": obj({"providers": array(ref("ProviderStatus")), "paused": array(STR)}),
        "Location": location,
        "LocationList": obj({"locations": array(ref("Location"))}, description="The default location first."),
        "OpenAPI": {"type": "object", "description": "this document"},
    }


def component_schemas() -> dict[str, dict]:
    return {**request_schemas(), **response_schemas()}


# ---------------------------------------------------------------- the routes

@dataclass(frozen=True)
class Param:
    name: str
    description: str
    schema: dict = field(default_factory=lambda: dict(STR))
    required: bool = False


@dataclass(frozen=True)
class RouteDoc:
    method: str
    summary: str
    tag: str
    ok: str | None  # the success answer's component
    description: str = ""
    status: int = 200
    also: dict[int, str] = field(default_factory=dict)  # more answers: status -> description
    query: tuple[Param, ...] = ()
    body: str | None = None  # the request body's component
    body_required: bool = True
    ok_words: str = "OK"
    public: bool = False  # no token
    content_type: str = "application/json"


PATIENT_QUERY = Param("patient_external_id", "whose records", {**STR, "maxLength": MAX_LENGTH["external_id"]},
                      required=True)
BODY_ERRORS = {
    400: f"the body is not a JSON object, or is nested more than {MAX_DEPTH} levels deep (fields: [\"body\"])",
    413: f"the body is larger than {MAX_BODY_BYTES // 1024} KB",
    422: "invalid fields: `errors` says why, `fields` which",
}
QUERY_ERRORS = {422: "patient_external_id is missing", 404: "no patient with that external_id"}
VISITS, REPLIES, MEASURES, SERVICE, ABOUT = "Patients and appointments", "Replies", "Measures", "Service", "This API"

ROUTES: dict[str, RouteDoc] = {
    "api.create_or_update_patient": RouteDoc(
        "POST", "Upsert a patient by external_id", VISITS, "PatientResult", status=201,
        ok_words="created (200 when updated or unchanged)", body="PatientInput",
        also={200: "updated or unchanged", **BODY_ERRORS}),
    "api.get_patient": RouteDoc(
        "GET", "A patient", VISITS, "Patient", also={404: "no patient with that external_id"}),
    "api.create_or_update_appointment": RouteDoc(
        "POST", "Upsert an appointment by external_id", VISITS, "AppointmentResult", status=201,
        ok_words="created (200 when updated or unchanged)", body="AppointmentInput",
        description="CSV fields as JSON; the patient's fields inline or as `patient: {...}`.",
        also={200: "updated or unchanged", **BODY_ERRORS, 404: "no patient with that patient_external_id "
              "(and none given inline)", 409: "that appointment belongs to another patient"}),
    "api.list_locations": RouteDoc(
        "GET", "The clinic's locations (the default first), with the settings each one uses", VISITS,
        "LocationList"),
    "api.get_appointment": RouteDoc(
        "GET", "An appointment", VISITS, "Appointment", also={404: "no appointment with that external_id"}),
    "api.change_appointment": RouteDoc(
        "PATCH", "Reschedule, cancel, complete, no-show, or change kind, length, place or condition", VISITS,
        "AppointmentResult", body="AppointmentChange",
        also={**BODY_ERRORS, 404: "no appointment with that external_id"}),
    "api.list_messages": RouteDoc(
        "GET", "Every message planned and sent for a patient, with states", VISITS, "MessageList",
        query=(PATIENT_QUERY,), also=QUERY_ERRORS),
    "api_replies.list_checkins": RouteDoc(
        "GET", "A patient's mood check-ins, oldest first", REPLIES, "CheckInList", query=(PATIENT_QUERY,),
        also=QUERY_ERRORS),
    "api_replies.list_replies": RouteDoc(
        "GET", "A patient's texts (oldest first), or the open staff inbox (crises first, then newest)", REPLIES,
        "ReplyList", description="Give patient_external_id, needs_staff, or both. At most 500.",
        query=(Param("patient_external_id", "whose texts", {**STR, "maxLength": MAX_LENGTH["external_id"]}),
               Param("needs_staff", "true: the staff inbox (not done yet); false: what needs no one",
                     {**STR, "enum": ["true", "false", "1", "0", "yes", "no"]})),
        also={422: "neither query given, or needs_staff is not true or false",
              404: "no patient with that external_id"}),
    "api_replies.list_escalations": RouteDoc(
        "GET", "Possible crises, open first, newest first, with their alerts", REPLIES, "EscalationList",
        query=(Param("status", "only these", {**STR, "enum": ["open", "claimed", "acknowledged"]}),),
        also={422: "status is not open, claimed or acknowledged"}),
    "api_replies.get_escalation": RouteDoc(
        "GET", "A possible crisis, with its alerts", REPLIES, "Escalation", also={404: "no such escalation"}),
    "api_replies.acknowledge_escalation": RouteDoc(
        "POST", "Acknowledge (resolve) a possible crisis: re-alerts stop", REPLIES, "EscalationResult",
        body="EscalationAck", body_required=False,
        also={**BODY_ERRORS, 422: "by or note is not text, or holds a NUL", 404: "no such escalation"}),
    "api_replies.list_followups": RouteDoc(
        "GET", "Patients who should be booked and are not", REPLIES, "FollowupList"),
    "api_replies.list_delivery_problems": RouteDoc(
        "GET", "Texts and emails that failed or were undelivered, newest first", REPLIES, "DeliveryProblemList"),
    "api_measures.list_measures": RouteDoc(
        "GET", "A patient's validated questionnaires, oldest first, and each scale's progress", MEASURES,
        "Measures", query=(PATIENT_QUERY,),
        also={400: "patient_external_id is missing", 404: "no patient with that external_id"}),
    "health_api.provider_status_json": RouteDoc(
        "GET", "Each channel's provider: ok, failing or paused, and what waits", SERVICE, "ProviderStatusList"),
    "openapi.openapi_json": RouteDoc(
        "GET", "This description (OpenAPI 3.1)", ABOUT, "OpenAPI", public=True),
    "openapi.api_docs": RouteDoc(
        "GET", "This description as a page", ABOUT, None, public=True, content_type="text/html"),
}

ERROR_WORDS = {401: "no token, or a token that is not valid or has been revoked"}
_RULE_ARGUMENT = re.compile(r"<(?:(?P<converter>[a-zA-Z_][a-zA-Z0-9_]*)(?:\([^)]*\))?:)?(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>")


def api_rules(app: Flask):
    """(rule, method) for every route under /api/v1, in url_map order."""
    for rule in app.url_map.iter_rules():
        if rule.rule == API_PREFIX or rule.rule.startswith(API_PREFIX + "/"):
            for method in sorted((rule.methods or set()) - SKIPPED_METHODS):
                yield rule, method


def undocumented(app: Flask) -> list[str]:
    """'METHOD /path (endpoint)' for each /api/v1 route without its entry in ROUTES."""
    return [f"{method} {rule.rule} ({rule.endpoint})" for rule, method in api_rules(app)
            if rule.endpoint not in ROUTES or ROUTES[rule.endpoint].method != method]


def _path_parameters(rule) -> tuple[str, list[dict]]:
    params = []
    converters = getattr(rule, "_converters", {})

    def swap(match: re.Match) -> str:
        name = match.group("name")
        schema: dict = dict(STR)
        converter = converters.get(name)
        if match.group("converter") == "int" or type(converter).__name__ in ("IntegerConverter", "DatabaseId"):
            schema = {"type": "integer"}
            for key, word in (("min", "minimum"), ("max", "maximum")):
                if getattr(converter, key, None) is not None:
                    schema[word] = getattr(converter, key)
        elif name == "external_id":
            schema["maxLength"] = MAX_LENGTH["external_id"]
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return _RULE_ARGUMENT.sub(swap, rule.rule), params


def _error(words: str) -> dict:
    return {"description": words, "content": {"application/json": {"schema": ref("Error")}}}


def _operation(endpoint: str, doc: RouteDoc, path_params: list[dict]) -> dict:
    ok: dict = {"description": doc.ok_words}
    if doc.ok:
        ok["content"] = {doc.content_type: {"schema": ref(doc.ok)}}
    elif doc.content_type != "application/json":
        ok["content"] = {doc.content_type: {"schema": {"type": "string"}}}
    responses: dict = {str(doc.status): ok}
    for status, words in sorted(doc.also.items()):
        if 200 <= status < 300:  # the same shape as the main answer
            responses[str(status)] = {**ok, "description": words}
        else:
            responses[str(status)] = _error(words)
    if not doc.public:
        responses["401"] = _error(ERROR_WORDS[401])
    operation: dict = {"operationId": endpoint.replace(".", "_"), "summary": doc.summary, "tags": [doc.tag],
                       "responses": responses}
    if doc.description:
        operation["description"] = doc.description
    params = path_params + [{"name": p.name, "in": "query", "required": p.required, "description": p.description,
                             "schema": p.schema} for p in doc.query]
    if params:
        operation["parameters"] = params
    if doc.body:
        body: dict = {"required": doc.body_required,
                      "content": {"application/json": {"schema": ref(doc.body)}}}
        example = EXAMPLES.get(doc.body)
        if example is not None:
            body["content"]["application/json"]["example"] = example
        operation["requestBody"] = body
    if doc.public:
        operation["security"] = []
    return operation


EXAMPLES = {
    "PatientInput": {"external_id": "p-1001", "first_name": "Maya", "last_name": "Lopez", "phone": "+12025550143",
                     "email": "maya@example.org", "timezone": "America/New_York", "preferred_channel": "both",
                     "language": "en", "condition": "depression"},
    "AppointmentInput": {"external_id": "a-2001", "patient_external_id": "p-1001", "kind": "induction",
                         "starts_at": "2026-12-10T10:00:00-05:00", "duration_minutes": 50, "location": "",
                         "patient": {"first_name": "Maya", "last_name": "Lopez", "phone": "+12025550143",
                                     "timezone": "America/New_York"}},
    "AppointmentChange": {"starts_at": "2026-12-12T15:00:00-05:00"},
    "EscalationAck": {"by": "Dr. Rivera", "note": "called the patient; safe at home"},
}


def _version() -> str:
    try:
        return version("clinic-reminders")
    except PackageNotFoundError:
        return "0"


def build_document(app: Flask) -> dict:
    paths: dict[str, dict] = {}
    for rule, method in api_rules(app):
        doc = ROUTES.get(rule.endpoint)
        if doc is None or doc.method != method:
            continue  # undocumented: tests/test_openapi.py names it
        path, path_params = _path_parameters(rule)
        paths.setdefault(path, {})[method.lower()] = _operation(rule.endpoint, doc, path_params)
    tags = []
    for doc in ROUTES.values():
        if doc.tag not in tags:
            tags.append(doc.tag)
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Clinic reminders API",
            "version": _version(),
            "description": (
                "Patients, appointments (upsert by external_id, reschedule, cancel), messages, check-ins, "
                "replies, escalations and measures. Every route but this description needs "
                "`Authorization: Bearer <token>` (`reminders token create`). Errors are JSON "
                "`{\"error\": \"...\"}` with a 4xx status; invalid fields answer 422 with `errors` and `fields`."),
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": tag} for tag in tags],
        "security": [{"bearerToken": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerToken": {
                "type": "http", "scheme": "bearer",
                "description": "an API token made by `reminders token create`"}},
            "schemas": component_schemas(),
        },
    }


def document() -> dict:
    """This app's document, made once (the routes do not change while it runs)."""
    app = current_app._get_current_object()  # noqa: SLF001 - the app itself, as the cache key's owner
    found = app.extensions.get("reminders.openapi")
    if found is None:
        found = app.extensions["reminders.openapi"] = build_document(app)
    return found


# ---------------------------------------------------------------- the page

def type_words(schema: dict) -> list[tuple[str, str | None]]:
    """A schema as words for the page: [(text, component to link or None), ...]."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return [(name, name)]
    if "anyOf" in schema:
        out: list[tuple[str, str | None]] = []
        for i, branch in enumerate(schema["anyOf"]):
            if i:
                out.append((" or ", None))
            out.extend(type_words(branch))
        return out
    if "const" in schema:
        return [(f'"{schema["const"]}"', None)]
    kind = schema.get("type", "any")
    kinds = kind if isinstance(kind, list) else [kind]
    out = []
    for i, one in enumerate(kinds):
        if i:
            out.append((" or ", None))
        if one == "array":
            out.append(("array of ", None))
            out.extend(type_words(schema.get("items", {})))
        elif one == "object" and isinstance(schema.get("additionalProperties"), dict):
            out.append(("object of ", None))
            out.extend(type_words(schema["additionalProperties"]))
        else:
            out.append((one + (f" ({schema['format']})" if schema.get("format") else ""), None))
    return out


def limits(schema: dict) -> str:
    """What a field's schema allows beyond its type: values, lengths, bounds, default."""
    parts = []
    for branch in schema.get("anyOf", [schema]):
        if "enum" in branch:
            parts.append("one of " + ", ".join(str(v) for v in branch["enum"]))
        if "maxLength" in branch:
            parts.append(f"at most {branch['maxLength']} characters")
    if "minimum" in schema or "maximum" in schema:
        parts.append(f"{schema.get('minimum', '')} to {schema.get('maximum', '')}")
    if schema.get("default") not in (None, ""):
        parts.append(f"default {schema['default']}")
    return "; ".join(parts)


@openapi.get("/openapi.json")
def openapi_json():
    return jsonify(document())


@openapi.get("/docs")
def api_docs():
    return render_template("api_docs.html", doc=document(), type_words=type_words, limits=limits)
