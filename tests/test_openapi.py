"""GET /api/v1/openapi.json (OpenAPI 3.1) and GET /api/v1/docs: valid, complete, and true to the API.

Every /api/v1 route (endpoint and method) of the app must be in the document; the request
schemas are the validating models' own, so a body the schema refuses the API refuses too, and the
schema's example is accepted; real answers have the documented shapes."""
from __future__ import annotations

import copy
import re
from datetime import timedelta

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from reminders.intake.records import AppointmentRecord, PatientRecord
from reminders.models import CheckIn, Escalation, InboundMessage, Patient
from reminders.pipeline import run_pass
from reminders.web.openapi import ROUTES, undocumented
from tests.conftest import APP_NOW

PREFIX = "/api/v1"
ARGUMENT = re.compile(r"<(?:[^:>]+:)?([^>]+)>")


@pytest.fixture
def doc(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.is_json
    return response.json


def api_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(PREFIX + "/") or rule.rule == PREFIX:
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


def missing_from(doc, app) -> list[str]:
    missing = []
    for rule, method in api_routes(app):
        path = ARGUMENT.sub(r"{\1}", rule.rule)
        if method.lower() not in doc["paths"].get(path, {}):
            missing.append(f"{rule.endpoint} {method} {rule.rule}")
    return missing


def schema_of(doc, name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": doc["components"]})


def operation(doc, method: str, path: str) -> dict:
    return doc["paths"][path][method.lower()]


def answer_schema(doc, method: str, path: str, status: int) -> Draft202012Validator:
    answer = operation(doc, method, path)["responses"][str(status)]
    return Draft202012Validator({**answer["content"]["application/json"]["schema"],
                                 "components": doc["components"]})


def assert_valid(validator: Draft202012Validator, body) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, errors


def assert_shape(doc, method: str, path: str, status: int, response) -> None:
    """The answer has the status and the documented shape, and no field the document leaves out."""
    assert response.status_code == status, response.json
    assert_valid(answer_schema(doc, method, path, status), response.json)
    ref = operation(doc, method, path)["responses"][str(status)]["content"]["application/json"]["schema"]["$ref"]
    documented = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]["properties"]
    assert set(response.json) <= set(documented), set(response.json) - set(documented)


def body_example(doc, method: str, path: str) -> dict:
    return copy.deepcopy(operation(doc, method, path)["requestBody"]["content"]["application/json"]["example"])


# ---------------------------------------------------------------- the document

def test_the_document_is_valid_openapi_3_1(doc):
    assert doc["openapi"].startswith("3.1")
    validate(doc, cls=OpenAPIV31SpecValidator)
    assert doc["components"]["securitySchemes"]["bearerToken"] == {
        **doc["components"]["securitySchemes"]["bearerToken"], "type": "http", "scheme": "bearer"}


def test_every_api_route_and_method_is_documented(app, doc):
    assert list(api_routes(app)), "no /api/v1 routes found"
    assert missing_from(doc, app) == [], "undocumented /api/v1 routes: add them to reminders.web.openapi.ROUTES"
    assert undocumented(app) == []
    # And no entry describes a route that is gone.
    endpoints = {rule.endpoint for rule, _ in api_routes(app)}
    assert set(ROUTES) <= endpoints, set(ROUTES) - endpoints


def test_a_new_route_without_an_entry_is_named(app):
    app.add_url_rule("/api/v1/secret-report", "secret_report", lambda: "{}", methods=["GET", "DELETE"])
    fresh = app.test_client().get("/api/v1/openapi.json").json
    assert missing_from(fresh, app) == ["secret_report DELETE /api/v1/secret-report",
                                        "secret_report GET /api/v1/secret-report"]
    assert undocumented(app) == ["DELETE /api/v1/secret-report (secret_report)",
                                 "GET /api/v1/secret-report (secret_report)"]


def test_every_operation_has_a_summary_and_says_whether_it_needs_the_token(doc):
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            assert op["summary"], (method, path)
            assert op["responses"], (method, path)
            if path in ("/api/v1/openapi.json", "/api/v1/docs"):
                assert op["security"] == [] and "401" not in op["responses"]
            else:
                assert "security" not in op and "401" in op["responses"], (method, path)  # the document's bearer


def test_the_description_needs_no_token_and_the_api_still_does(client):
    assert client.get("/api/v1/openapi.json").status_code == 200
    assert client.get("/api/v1/docs").status_code == 200
    assert client.get("/api/v1/patients/p1").status_code == 401


def test_request_schemas_are_the_validating_models(doc):
    schemas = doc["components"]["schemas"]
    patient_fields = set(PatientRecord.model_fields) - {"phone_region"}  # the API sets it from DEFAULT_PHONE_REGION
    required = {name for name, f in PatientRecord.model_fields.items() if f.is_required()}
    assert set(schemas["PatientInput"]["properties"]) == patient_fields | {"condition"}
    assert set(schemas["PatientInput"]["required"]) == required
    assert set(AppointmentRecord.model_fields) <= set(schemas["AppointmentInput"]["properties"])
    assert set(schemas["AppointmentInput"]["required"]) == {
        name for name, f in AppointmentRecord.model_fields.items() if f.is_required()}
    assert schemas["AppointmentInput"]["properties"]["kind"]["enum"] == ["induction", "maintenance"]
    assert schemas["AppointmentInput"]["properties"]["external_id"]["maxLength"] == 128


# ---------------------------------------------------------------- the schemas against the API

def test_the_appointment_schema_refuses_what_the_api_refuses(client, api_headers, doc):
    validator = schema_of(doc, "AppointmentInput")
    example = body_example(doc, "POST", "/api/v1/appointments")
    assert_valid(validator, example)
    for field in doc["components"]["schemas"]["AppointmentInput"]["required"]:
        body = {k: v for k, v in example.items() if k != field}
        assert not validator.is_valid(body), field
        response = client.post("/api/v1/appointments", json=body, headers=api_headers)
        assert response.status_code == 422, (field, response.json)
        assert field in response.json["fields"], (field, response.json)
        assert_valid(schema_of(doc, "Error"), response.json)
    no_patient = {k: v for k, v in example.items() if k != "patient_external_id"}
    no_patient["patient"].pop("external_id", None)
    assert not validator.is_valid(no_patient)
    response = client.post("/api/v1/appointments", json=no_patient, headers=api_headers)
    assert response.status_code == 422 and response.json["fields"] == ["patient_external_id"]
    wrong_kind = {**example, "kind": "booster"}
    assert not validator.is_valid(wrong_kind)
    assert client.post("/api/v1/appointments", json=wrong_kind, headers=api_headers).status_code == 422
    # The example itself is accepted: the visit and its patient are created.
    assert_shape(doc, "POST", "/api/v1/appointments", 201,
                 client.post("/api/v1/appointments", json=example, headers=api_headers))


def test_the_patient_schema_refuses_what_the_api_refuses(client, api_headers, doc):
    validator = schema_of(doc, "PatientInput")
    example = body_example(doc, "POST", "/api/v1/patients")
    assert_valid(validator, example)
    for field in ("first_name", "timezone", "external_id"):
        body = {k: v for k, v in example.items() if k != field}
        assert not validator.is_valid(body)
        response = client.post("/api/v1/patients", json=body, headers=api_headers)
        assert response.status_code == 422 and field in response.json["fields"], (field, response.json)
    for field, value in (("preferred_channel", "pigeon"), ("language", "fr"), ("first_name", "x" * 101)):
        assert not validator.is_valid({**example, field: value})
        assert client.post("/api/v1/patients", json={**example, field: value}, headers=api_headers).status_code == 422
    assert_shape(doc, "POST", "/api/v1/patients", 201, client.post("/api/v1/patients", json=example, headers=api_headers))
    assert_shape(doc, "POST", "/api/v1/patients", 200, client.post("/api/v1/patients", json=example, headers=api_headers))


def test_the_patch_schema_lists_exactly_what_may_change(client, api_headers, doc):
    client.post("/api/v1/appointments", json=body_example(doc, "POST", "/api/v1/appointments"), headers=api_headers)
    path = "/api/v1/appointments/a-2001"
    validator = schema_of(doc, "AppointmentChange")
    for key in doc["components"]["schemas"]["AppointmentChange"]["properties"]:
        response = client.patch(path, json={key: None}, headers=api_headers)
        assert "cannot change" not in response.json.get("error", ""), key
    for key in ("patient_external_id", "external_id", "notes"):
        assert not validator.is_valid({key: "x"})
        response = client.patch(path, json={key: "x"}, headers=api_headers)
        assert response.status_code == 422 and response.json["fields"] == [key]
    example = body_example(doc, "PATCH", "/api/v1/appointments/{external_id}")
    assert_valid(validator, example)
    assert_shape(doc, "PATCH", "/api/v1/appointments/{external_id}", 200,
                 client.patch(path, json=example, headers=api_headers))


def test_real_answers_have_the_documented_shapes(client, api_headers, doc, settings, session):
    assert client.post("/api/v1/appointments", json=body_example(doc, "POST", "/api/v1/appointments"),
                       headers=api_headers).status_code == 201
    run_pass(settings, APP_NOW)
    patient = session.query(Patient).filter_by(external_id="p-1001").one()
    inbound = InboundMessage(from_number=patient.phone, body="I feel awful", patient_id=patient.id,
                             needs_staff=True, received_at=APP_NOW)
    session.add(inbound)
    session.flush()
    session.add(CheckIn(patient_id=patient.id, status="answered", score=6, raw_text="6", prompted_at=APP_NOW,
                        answered_at=APP_NOW + timedelta(hours=1), inbound_message_id=inbound.id))
    escalation = Escalation(patient_id=patient.id, reason="crisis_language", text="I feel awful",
                            from_number=patient.phone, inbound_message_id=inbound.id, opened_at=APP_NOW)
    session.add(escalation)
    session.commit()

    def get(url: str, path: str | None = None):
        assert_shape(doc, "GET", path or url.split("?")[0], 200, client.get(url, headers=api_headers))

    get("/api/v1/patients/p-1001", "/api/v1/patients/{external_id}")
    get("/api/v1/appointments/a-2001", "/api/v1/appointments/{external_id}")
    get("/api/v1/messages?patient_external_id=p-1001")
    get("/api/v1/checkins?patient_external_id=p-1001")
    get("/api/v1/replies?patient_external_id=p-1001")
    get("/api/v1/replies?needs_staff=true")
    get("/api/v1/escalations")
    get(f"/api/v1/escalations/{escalation.id}", "/api/v1/escalations/{escalation_id}")
    get("/api/v1/followups")
    get("/api/v1/delivery-problems")
    get("/api/v1/measures?patient_external_id=p-1001")
    get("/api/v1/provider-status")
    ack = body_example(doc, "POST", "/api/v1/escalations/{escalation_id}/ack")
    assert_valid(schema_of(doc, "EscalationAck"), ack)
    assert_shape(doc, "POST", "/api/v1/escalations/{escalation_id}/ack", 200,
                 client.post(f"/api/v1/escalations/{escalation.id}/ack", json=ack, headers=api_headers))
    # Lists were not empty: their items were checked too.
    assert client.get("/api/v1/messages?patient_external_id=p-1001", headers=api_headers).json["messages"]
    assert client.get("/api/v1/escalations", headers=api_headers).json["escalations"][0]["status"] == "acknowledged"
    # Errors: the documented Error shape, with the documented status.
    missing = client.get("/api/v1/measures", headers=api_headers)
    assert missing.status_code == 400 and "400" in operation(doc, "GET", "/api/v1/measures")["responses"]
    assert_valid(schema_of(doc, "Error"), missing.json)
    unknown = client.get("/api/v1/escalations/999", headers=api_headers)
    assert unknown.status_code == 404 and "404" in operation(doc, "GET", "/api/v1/escalations/{escalation_id}")["responses"]
    assert_valid(schema_of(doc, "Error"), unknown.json)


# ---------------------------------------------------------------- the page

def test_the_docs_page_lists_every_route_and_fetches_nothing(client, doc):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            assert f'id="{op["operationId"]}"' in page and path in page, (method, path)
    for name in doc["components"]["schemas"]:
        assert f'id="schema-{name}"' in page
    assert "<script" not in page.lower()
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", page, flags=re.IGNORECASE)
    assert links
    outside = [link for link in links if not (link.startswith("#") or (link.startswith("/") and not link.startswith("//")))]
    assert outside == []
    assert "http" not in " ".join(links)
    assert "url(" not in page and "@import" not in page
    assert 'href="/api/v1/openapi.json"' in page
    # Schemas are shown with what the validators allow.
    assert "one of induction, maintenance" in page and "at most 128 characters" in page
