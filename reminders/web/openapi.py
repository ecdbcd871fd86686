"""The JSON API described in OpenAPI 3.1: GET /api/v1/openapi.json, and GET /api/v1/docs (the same
document as a page, rendered here: no script, no file from elsewhere). Neither needs a token: a
description of the API holds no patient data.

Its schemas: reminders.web.openapi_schemas (the pieces, and the request bodies, made from the
pydantic models the routes validate with) and reminders.web.openapi_answers (what each route answers).

Paths come from Flask's url_map: every rule under /api/v1 whose endpoint is in ROUTES. A route
without an entry is left out of the document (tests/test_openapi.py fails naming it); an entry is
where a new route says what it takes and answers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

from flask import Flask, current_app, jsonify, render_template

from reminders.intake.records import MAX_LENGTH
from reminders.web.api_requests import API_PREFIX, MAX_BODY_BYTES, MAX_DEPTH, api_blueprint
from reminders.web.openapi_answers import response_schemas
from reminders.web.openapi_schemas import STR, ref, request_schemas

openapi = api_blueprint("openapi", __name__)

SKIPPED_METHODS = {"HEAD", "OPTIONS"}


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
