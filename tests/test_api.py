"""The JSON API: upsert by external_id, reschedule and cancel, messages, bearer tokens."""
from __future__ import annotations

import pytest

from reminders.pipeline import run_pass
from tests.conftest import at

PATIENT = {"external_id": "p1", "first_name": "Maya", "last_name": "Lopez", "phone": "+1 202 555 0143",
           "email": "maya@example.org", "timezone": "America/New_York", "preferred_channel": "both"}
VISIT = {"external_id": "a1", "patient_external_id": "p1", "kind": "induction",
         "starts_at": "2026-12-10T10:00:00-05:00", "duration_minutes": 50, "location": "Suite 200"}


@pytest.fixture
def booked(client, api_headers):
    assert client.post("/api/v1/patients", json=PATIENT, headers=api_headers).status_code == 201
    response = client.post("/api/v1/appointments", json=VISIT, headers=api_headers)
    assert response.status_code == 201, response.json
    return response.json


def test_every_route_needs_a_valid_token(client, settings):
    for method, path in [("post", "/api/v1/patients"), ("post", "/api/v1/appointments"), ("get", "/api/v1/appointments/a1"),
                         ("patch", "/api/v1/appointments/a1"), ("get", "/api/v1/messages?patient_external_id=p1")]:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
            response = getattr(client, method)(path, json={}, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert "token" in response.json["error"]
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_create_then_read_an_appointment(client, api_headers, booked):
    assert booked["result"] == "created" and booked["number_in_course"] == 1
    response = client.get("/api/v1/appointments/a1", headers=api_headers)
    assert response.status_code == 200
    body = response.json
    assert body["patient_external_id"] == "p1" and body["status"] == "scheduled"
    assert at(body["starts_at"]) == at("2026-12-10T10:00:00-05:00")


def test_posting_the_same_appointment_again_changes_nothing(client, api_headers, booked):
    response = client.post("/api/v1/appointments", json=VISIT, headers=api_headers)
    assert response.status_code == 200 and response.json["result"] == "unchanged"


def test_appointment_can_carry_its_patient_inline(client, api_headers, settings):
    response = client.post("/api/v1/appointments", headers=api_headers, json={
        **VISIT, "patient": {k: v for k, v in PATIENT.items() if k != "external_id"}})
    assert response.status_code == 201
    assert client.get("/api/v1/patients/p1", headers=api_headers).json["phone"] == "+12025550143"


def test_reschedule_and_cancel_through_patch(client, api_headers, booked, settings):
    run_pass(settings, at("2026-12-01T10:00:00-05:00"))
    moved = client.patch("/api/v1/appointments/a1", headers=api_headers, json={"starts_at": "2026-12-12T15:00:00-05:00"})
    assert moved.status_code == 200 and moved.json["result"] == "updated"
    run_pass(settings, at("2026-12-02T10:00:00-05:00"))
    messages = client.get("/api/v1/messages?patient_external_id=p1", headers=api_headers).json["messages"]
    sms_24h = next(m for m in messages if m["rule"] == "first_induction_24h")
    assert at(sms_24h["due_at"]) == at("2026-12-11T15:00:00-05:00")
    canceled = client.patch("/api/v1/appointments/a1", headers=api_headers, json={"status": "canceled"})
    assert canceled.json["status"] == "canceled"
    run_pass(settings, at("2026-12-11T15:00:00-05:00"))
    messages = client.get("/api/v1/messages?patient_external_id=p1", headers=api_headers).json["messages"]
    assert {m["status"] for m in messages} == {"canceled"}


def test_messages_show_what_was_sent(client, api_headers, booked, settings):
    run_pass(settings, at("2026-12-07T10:00:00-05:00"))
    messages = client.get("/api/v1/messages?patient_external_id=p1", headers=api_headers).json["messages"]
    sent = [m for m in messages if m["status"] == "sent"]
    assert {(m["rule"], m["channel"]) for m in sent} == {
        ("welcome", "sms"), ("first_induction_72h", "sms"), ("first_induction_72h", "email")}
    assert all(m["body"] for m in sent)
    assert {m["appointment_external_id"] for m in sent if m["rule"] != "welcome"} == {"a1"}


@pytest.mark.parametrize("payload, status, fragment", [
    ({**VISIT, "kind": "booster"}, 422, "kind 'booster' must be induction or maintenance"),
    ({**VISIT, "starts_at": "2026-12-10T10:00:00"}, 422, "has no UTC offset"),
    ({k: v for k, v in VISIT.items() if k != "starts_at"}, 422, "starts_at is missing"),
    ({**VISIT, "patient_external_id": "nobody"}, 404, "no patient with external_id 'nobody'"),
    ({k: v for k, v in VISIT.items() if k != "patient_external_id"}, 422, "patient_external_id is missing"),
])
def test_bad_appointments_get_a_json_error_a_person_can_act_on(client, api_headers, booked, payload, status, fragment):
    response = client.post("/api/v1/appointments", json=payload, headers=api_headers)
    assert response.status_code == status
    assert fragment in response.json["error"]


def test_bad_patients_and_bodies(client, api_headers, settings):
    bad_phone = client.post("/api/v1/patients", json={**PATIENT, "phone": "555"}, headers=api_headers)
    assert bad_phone.status_code == 422 and "phone '555' is not a valid number" in bad_phone.json["error"]
    not_json = client.post("/api/v1/patients", data="hello", headers={**api_headers, "Content-Type": "text/plain"})
    assert not_json.status_code == 400 and "JSON object" in not_json.json["error"]
    assert client.get("/api/v1/appointments/zzz", headers=api_headers).status_code == 404
    assert client.get("/api/v1/messages", headers=api_headers).status_code == 422


def test_patch_refuses_unknown_fields_and_moving_to_another_patient(client, api_headers, booked):
    response = client.patch("/api/v1/appointments/a1", headers=api_headers, json={"patient_external_id": "p2"})
    assert response.status_code == 422 and "cannot change patient_external_id" in response.json["error"]
    client.post("/api/v1/patients", json={**PATIENT, "external_id": "p2"}, headers=api_headers)
    stolen = client.post("/api/v1/appointments", json={**VISIT, "patient_external_id": "p2"}, headers=api_headers)
    assert stolen.status_code == 409 and "belongs to another patient" in stolen.json["error"]


def test_unknown_api_paths_answer_json(client, api_headers):
    response = client.get("/api/v1/nothing-here", headers=api_headers)
    assert response.status_code == 404 and "error" in response.json


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json["status"] == "ok"


def test_a_revoked_token_is_refused(client, settings, api_token, api_headers):
    from click.testing import CliRunner

    from reminders.cli import main

    assert client.get("/api/v1/patients/nobody", headers=api_headers).status_code == 404
    listing = CliRunner().invoke(main, ["token", "list"])
    assert "tests" in listing.output and "active" in listing.output and "never used" not in listing.output
    revoked = CliRunner().invoke(main, ["token", "revoke", "--name", "tests"])
    assert revoked.exit_code == 0 and "revoked 1 token(s)" in revoked.output
    response = client.get("/api/v1/patients/nobody", headers=api_headers)
    assert response.status_code == 401 and "revoked" in response.json["error"]
    assert CliRunner().invoke(main, ["token", "revoke", "--name", "tests"]).exit_code == 1


def test_language_medications_and_condition_through_the_api(client, api_headers):
    created = client.post("/api/v1/patients", headers=api_headers, json={
        **PATIENT, "language": "es", "medications_to_hold": "No lamotrigine the morning of"})
    assert created.status_code == 201, created.json
    assert (created.json["language"], created.json["medications_to_hold"]) == ("es", "No lamotrigine the morning of")
    visit = client.post("/api/v1/appointments", headers=api_headers, json={**VISIT, "condition": "pain"})
    assert visit.status_code == 201 and visit.json["condition"] == "pain"
    assert client.get("/api/v1/patients/p1", headers=api_headers).json["condition"] == "pain"
    changed = client.patch("/api/v1/appointments/a1", headers=api_headers, json={"condition": "ptsd"})
    assert changed.json["result"] == "updated" and changed.json["condition"] == "ptsd"


def test_condition_on_a_patient_sets_the_course_their_visits_join(client, api_headers):
    created = client.post("/api/v1/patients", headers=api_headers, json={**PATIENT, "condition": "PTSD"})
    assert created.status_code == 201 and created.json["condition"] == "ptsd"
    visit = client.post("/api/v1/appointments", headers=api_headers, json=VISIT)
    assert visit.json["condition"] == "ptsd" and visit.json["number_in_course"] == 1
    again = client.post("/api/v1/patients", headers=api_headers, json={**PATIENT, "condition": "anxiety"})
    assert (again.status_code, again.json["result"], again.json["condition"]) == (200, "updated", "anxiety")
    assert client.get("/api/v1/appointments/a1", headers=api_headers).json["condition"] == "anxiety"
    kept = client.post("/api/v1/patients", headers=api_headers, json=PATIENT)
    assert (kept.json["result"], kept.json["condition"]) == ("unchanged", "anxiety")
    refused = client.post("/api/v1/patients", headers=api_headers, json={**PATIENT, "condition": "flu"})
    assert refused.status_code == 422 and refused.json["fields"] == ["condition"]


def test_condition_with_the_patient_inline_on_an_appointment(client, api_headers):
    patient = {k: v for k, v in PATIENT.items() if k != "external_id"}
    visit = client.post("/api/v1/appointments", headers=api_headers,
                        json={**VISIT, "patient": patient, "condition": "depression"})
    assert visit.status_code == 201 and visit.json["condition"] == "depression"
    assert client.get("/api/v1/patients/p1", headers=api_headers).json["condition"] == "depression"


def test_a_patient_posted_without_the_new_fields_keeps_them(client, api_headers):
    client.post("/api/v1/patients", headers=api_headers, json={**PATIENT, "language": "es", "medications_to_hold": "x"})
    again = client.post("/api/v1/patients", headers=api_headers, json=PATIENT)
    assert again.json["result"] == "unchanged"
    assert (again.json["language"], again.json["medications_to_hold"]) == ("es", "x")
    cleared = client.post("/api/v1/patients", headers=api_headers, json={**PATIENT, "medications_to_hold": ""})
    assert cleared.json["result"] == "updated" and cleared.json["medications_to_hold"] == ""


@pytest.mark.parametrize("field, value, reason", [
    ("language", "fr", "language 'fr' must be one of en, es"),
    ("language", 2, "language must be text"),
    ("medications_to_hold", "x" * 501, "medications_to_hold is longer than 500 characters"),
])
def test_bad_patient_language_or_medications_are_refused_with_the_reason(client, api_headers, field, value, reason):
    response = client.post("/api/v1/patients", headers=api_headers, json={**PATIENT, field: value})
    assert response.status_code == 422 and any(reason in e for e in response.json["errors"]), response.json
    assert response.json["fields"] == [field]


def test_a_bad_condition_is_refused(client, api_headers, booked):
    response = client.patch("/api/v1/appointments/a1", headers=api_headers, json={"condition": "migraine"})
    assert response.status_code == 422 and "must be one of depression" in response.json["errors"][0]
