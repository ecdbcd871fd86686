"""Reading an API request and answering its mistakes: every /api/v1 blueprint is built here.

Each part of the API (visits, replies, provider status) registers its own blueprint under the
same prefix, with the same JSON answers to a bad request, so no part imports another."""
from __future__ import annotations

import json

from flask import Blueprint, jsonify, request
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from reminders.intake.records import MAX_LENGTH
from reminders.models import Patient
from reminders.web.context import db

API_PREFIX = "/api/v1"
# A patient or an appointment is a few hundred bytes; anything far larger is a mistake or an attack.
MAX_BODY_BYTES = 64 * 1024
# {"patient": {...}} is as deep as a real request goes; deeper nesting is refused before use.
MAX_DEPTH = 4


def json_error(status: int, message: str, **extra):
    payload = {"error": message, **extra}
    response = jsonify(payload)
    response.status_code = status
    return response


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, errors: list[str] | None = None,
                 field: str | None = None, fields: list[str] | None = None):
        super().__init__(message)
        self.status, self.errors = status, errors
        self.fields = fields if fields is not None else ([field] if field else [])


def _bad_request(error: BadRequest):
    extra = {"errors": error.errors} if error.errors else {}
    if error.fields:
        extra["fields"] = error.fields
    return json_error(error.status, str(error), **extra)


def _http_error(error: HTTPException):
    return json_error(error.code or 500, error.description or error.name)


def api_blueprint(name: str, import_name: str) -> Blueprint:
    """A blueprint under /api/v1 whose errors are answered in JSON, as every API route's are."""
    blueprint = Blueprint(name, import_name, url_prefix=API_PREFIX)
    blueprint.register_error_handler(BadRequest, _bad_request)
    blueprint.register_error_handler(HTTPException, _http_error)
    return blueprint


def json_body(optional: bool = False) -> dict:
    """The request's JSON object, or a 4xx saying what is wrong with it (never a 500).

    Parsed here rather than by request.get_json: a body nested thousands deep makes the parser
    raise RecursionError, which Flask would turn into a 500."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise BadRequest(f"the request body is larger than {MAX_BODY_BYTES // 1024} KB", status=413, field="body")
    raw = request.get_data(cache=True)
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"the request body is larger than {MAX_BODY_BYTES // 1024} KB", status=413, field="body")
    if optional and not raw.strip():
        return {}
    if not request.is_json:
        raise BadRequest("the request body must be a JSON object (Content-Type: application/json)", field="body")
    try:
        data = json.loads(raw)
    except RecursionError:
        raise BadRequest(f"the request body is nested more than {MAX_DEPTH} levels deep", field="body") from None
    except ValueError as exc:  # also bad UTF-8
        raise BadRequest(f"the request body is not valid JSON ({str(exc)[:80]})", field="body") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object (Content-Type: application/json)", field="body")
    if _depth(data) > MAX_DEPTH:
        raise BadRequest(f"the request body is nested more than {MAX_DEPTH} levels deep", field="body")
    return data


def _depth(value) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            return depth
        level = [child for item in level if isinstance(item, (dict, list))
                 for child in (item.values() if isinstance(item, dict) else item) if isinstance(child, (dict, list))]
    return depth


def key_text(value, field: str, what: str = "record") -> str:
    """An external_id from a URL, a query or a body: text a column can hold, or a 4xx."""
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be text", status=422, errors=[f"{field} must be text"], field=field)
    if "\x00" in value:
        raise BadRequest(f"{field} contains a NUL character", status=422,
                         errors=[f"{field} contains a NUL character"], field=field)
    if len(value) > MAX_LENGTH["external_id"]:  # cannot exist: no need to ask the database
        raise BadRequest(f"no {what} with that {field} (longer than {MAX_LENGTH['external_id']} characters)",
                         status=404, field=field)
    return value


def by_external_id(model, external_id: str, field: str, what: str):
    """The patient or appointment with this external_id, or a 404 naming it."""
    external_id = key_text(external_id, field, what)
    found = db().scalar(select(model).where(model.external_id == external_id))
    if found is None:
        raise BadRequest(f"no {what} with external_id {external_id!r}", status=404)
    return found


def patient_by_external_id(external_id: str) -> Patient:
    return by_external_id(Patient, external_id, "patient_external_id", "patient")


def patient_from_query(what: str) -> Patient:
    """The patient named by ?patient_external_id=..., or a 4xx saying what is missing."""
    external_id = request.args.get("patient_external_id")
    if not external_id:
        raise BadRequest(f"add ?patient_external_id=... to say whose {what}", status=422)
    return patient_by_external_id(external_id)
