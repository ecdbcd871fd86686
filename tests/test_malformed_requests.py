"""Every malformed request to the JSON API gets a 4xx that names the field and the reason, and
stores nothing: the probes an attacker sent, each as a row of the table below. Run on SQLite and
on PostgreSQL, which is stricter (NUL characters, column widths, integer ranges)."""
from __future__ import annotations

import json

import pytest

from tests.conftest import both_databases
from sqlalchemy import func, select

from reminders.models import Appointment, Escalation, Patient

PATIENT = {"external_id": "p1", "first_name": "Maya", "last_name": "Lopez", "phone": "+1 202 555 0143",
           "timezone": "America/New_York", "preferred_channel": "sms"}
VISIT = {"external_id": "a1", "patient_external_id": "p1", "kind": "induction",
         "starts_at": "2026-12-10T10:00:00-05:00", "duration_minutes": 50, "location": "Suite 200"}
NEW_VISIT = {**VISIT, "external_id": "a2"}
NEW_PATIENT = {**PATIENT, "external_id": "p2"}


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


# (what was probed, method, path, JSON body or raw bytes, expected status, the field the answer must name)
PROBES = [
    ("kind as a number", "post", "/api/v1/appointments", {**NEW_VISIT, "kind": 5}, 422, "kind"),
    ("kind as a list", "post", "/api/v1/appointments", {**NEW_VISIT, "kind": ["induction"]}, 422, "kind"),
    ("status as an object", "post", "/api/v1/appointments", {**NEW_VISIT, "status": {"x": 1}}, 422, "status"),
    ("status as a number in a change", "patch", "/api/v1/appointments/a1", {"status": 7}, 422, "status"),
    ("kind as true in a change", "patch", "/api/v1/appointments/a1", {"kind": True}, 422, "kind"),
    ("a 5000-character time zone", "post", "/api/v1/patients", {**NEW_PATIENT, "timezone": "A" * 5000}, 422, "timezone"),
    ("the server's own zone", "post", "/api/v1/patients", {**NEW_PATIENT, "timezone": "localtime"}, 422, "timezone"),
    ("the placeholder zone", "post", "/api/v1/patients", {**NEW_PATIENT, "timezone": "Factory"}, 422, "timezone"),
    ("the zone-building link", "post", "/api/v1/patients", {**NEW_PATIENT, "timezone": "posixrules"}, 422, "timezone"),
    ("a zone as a path", "post", "/api/v1/patients", {**NEW_PATIENT, "timezone": "../../etc/passwd"}, 422, "timezone"),
    ("an external_id longer than its column", "post", "/api/v1/appointments", {**NEW_VISIT, "external_id": "x" * 129}, 422, "external_id"),
    ("a location longer than its column", "post", "/api/v1/appointments", {**NEW_VISIT, "location": "x" * 201}, 422, "location"),
    ("a first name longer than its column", "post", "/api/v1/patients", {**NEW_PATIENT, "first_name": "M" * 101}, 422, "first_name"),
    ("an email longer than its column", "post", "/api/v1/patients", {**NEW_PATIENT, "email": "m" * 250 + "@example.org"}, 422, "email"),
    ("a NUL in a name", "post", "/api/v1/patients", {**NEW_PATIENT, "first_name": "Ma\x00ya"}, 422, "first_name"),
    ("a NUL in an external_id", "post", "/api/v1/appointments", {**NEW_VISIT, "external_id": "a\x002"}, 422, "external_id"),
    ("a NUL in a location", "patch", "/api/v1/appointments/a1", {"location": "Suite\x00 200"}, 422, "location"),
    ("a NUL in the patient_external_id", "post", "/api/v1/appointments", {**NEW_VISIT, "patient_external_id": "p\x001"}, 422, "patient_external_id"),
    ("the year 1", "post", "/api/v1/appointments", {**NEW_VISIT, "starts_at": "0001-01-01T00:00:00+05:00"}, 422, "starts_at"),
    ("the year 9999", "post", "/api/v1/appointments", {**NEW_VISIT, "starts_at": "9999-12-01T10:00:00-05:00"}, 422, "starts_at"),
    ("a move to the year 9999", "patch", "/api/v1/appointments/a1", {"starts_at": "9999-12-31T23:59:59-12:00"}, 422, "starts_at"),
    ("a time as a number", "post", "/api/v1/appointments", {**NEW_VISIT, "starts_at": 1765378800}, 422, "starts_at"),
    ("a length as true", "post", "/api/v1/appointments", {**NEW_VISIT, "duration_minutes": True}, 422, "duration_minutes"),
    ("a 31-digit length", "post", "/api/v1/appointments", {**NEW_VISIT, "duration_minutes": 10**30}, 422, "duration_minutes"),
    ("a patient_external_id as a number", "post", "/api/v1/appointments", {**NEW_VISIT, "patient_external_id": 5}, 422, "patient_external_id"),
    ("a patient as text", "post", "/api/v1/appointments", {**NEW_VISIT, "patient": "Maya"}, 422, "patient"),
    ("a channel as a number", "post", "/api/v1/patients", {**NEW_PATIENT, "preferred_channel": 1}, 422, "preferred_channel"),
    ("a phone as a list", "post", "/api/v1/patients", {**NEW_PATIENT, "phone": ["+12025550143"]}, 422, "phone"),
    ("deeply nested JSON", "post", "/api/v1/appointments", {**NEW_VISIT, "patient": nested(50)}, 400, "body"),
    ("JSON nested past the parser's limit", "post", "/api/v1/patients", b"[" * 20_000 + b"]" * 20_000, 400, "body"),
    ("a body that is a list", "post", "/api/v1/patients", [NEW_PATIENT], 400, "body"),
    ("a body that is not JSON", "post", "/api/v1/patients", b"first_name=Maya", 400, "body"),
    ("a body of 100 KB", "post", "/api/v1/patients", {**NEW_PATIENT, "notes": "x" * 100_000}, 413, "body"),
    ("a NUL in a path", "get", "/api/v1/appointments/a%00", None, 422, "external_id"),
    ("a NUL in a query", "get", "/api/v1/messages?patient_external_id=p%001", None, 422, "patient_external_id"),
    ("an id longer than any stored", "get", "/api/v1/patients/" + "p" * 300, None, 404, "patient_external_id"),
    ("a 20-digit escalation id", "get", "/api/v1/escalations/12345678901234567890", None, 404, None),
    ("a 20-digit escalation id acknowledged", "post", "/api/v1/escalations/12345678901234567890/ack", {"by": "Ana"}, 404, None),
    ("an acknowledgement note as a number", "post", "/api/v1/escalations/1/ack", {"note": 5}, 422, "note"),
    ("an acknowledgement nested too deep", "post", "/api/v1/escalations/1/ack", nested(20), 400, "body"),
    ("a change to a field that cannot change", "patch", "/api/v1/appointments/a1", {"patient_id": 2}, 422, "patient_id"),
    ("a flag that is not a flag", "get", "/api/v1/replies?needs_staff=maybe", None, 422, "needs_staff"),
]


# Every test here runs on SQLite (the default) and on PostgreSQL.
settings = both_databases()


def stored(sessions) -> dict:
    """Everything a request could have written, to compare before and after."""
    with sessions() as session:
        visit = session.scalar(select(Appointment))
        person = session.scalar(select(Patient))
        return {
            "patients": session.scalar(select(func.count()).select_from(Patient)),
            "appointments": session.scalar(select(func.count()).select_from(Appointment)),
            "visit": (visit.starts_at, visit.status, visit.kind, visit.location, visit.duration_minutes),
            "patient": (person.first_name, person.timezone, person.phone),
            "escalation": session.scalar(select(Escalation.status)),
        }


@pytest.fixture
def booked(client, api_headers, sessions):
    assert client.post("/api/v1/patients", json=PATIENT, headers=api_headers).status_code == 201
    assert client.post("/api/v1/appointments", json=VISIT, headers=api_headers).status_code == 201
    with sessions() as session:
        person = session.scalar(select(Patient))
        session.add(Escalation(patient_id=person.id, from_number=person.phone, reason="crisis_language", text="..."))
        session.commit()


def send(client, method: str, path: str, body, headers: dict):
    if body is None:
        return getattr(client, method)(path, headers=headers)
    if isinstance(body, bytes):
        return getattr(client, method)(path, data=body, headers={**headers, "Content-Type": "application/json"})
    return getattr(client, method)(path, data=json.dumps(body), headers={**headers, "Content-Type": "application/json"})


@pytest.mark.parametrize("probe, method, path, body, status, field", PROBES, ids=[p[0] for p in PROBES])
def test_a_malformed_request_gets_a_4xx_naming_the_field_and_stores_nothing(
        client, api_headers, sessions, booked, probe, method, path, body, status, field):
    before = stored(sessions)
    response = send(client, method, path, body, api_headers)
    assert response.status_code == status, (probe, response.status_code, response.get_data(as_text=True)[:300])
    assert response.is_json, probe
    assert response.headers["X-Content-Type-Options"] == "nosniff", probe
    assert response.headers["Cache-Control"] == "no-store", probe
    answer = response.json
    assert answer["error"], probe
    if field is not None:
        assert field in answer.get("fields", []) and field in answer["error"], (probe, answer)
    assert stored(sessions) == before, probe


def test_the_same_record_without_the_fault_is_taken(client, api_headers, booked):
    """The probes are refused for their fault alone: the clean versions of them work."""
    assert client.post("/api/v1/patients", json=NEW_PATIENT, headers=api_headers).status_code == 201
    assert client.post("/api/v1/appointments", json=NEW_VISIT, headers=api_headers).status_code == 201
    assert client.patch("/api/v1/appointments/a1", json={"location": "Suite 300"}, headers=api_headers).status_code == 200
    assert client.get("/api/v1/escalations/1", headers=api_headers).status_code == 200


HSTS = "max-age=31536000; includeSubDomains"
SECURE = "https://clinic.example.org"


def test_every_api_answer_is_kept_out_of_caches_and_never_sniffed(client, api_headers, booked):
    answers = {
        "a patient": client.get("/api/v1/patients/p1", headers=api_headers),
        "a patient added": client.post("/api/v1/patients", json=NEW_PATIENT, headers=api_headers),
        "an escalation": client.get("/api/v1/escalations/1", headers=api_headers),
        "no token": client.get("/api/v1/patients/p1"),
        "a wrong token": client.get("/api/v1/patients/p1", headers={"Authorization": "Bearer rem_guess"}),
        "no such patient": client.get("/api/v1/patients/nobody", headers=api_headers),
        "no such address": client.get("/api/v1/nothing-here", headers=api_headers),
        "a method not allowed": client.delete("/api/v1/patients", headers=api_headers),
    }
    for what, answer in answers.items():
        assert answer.status_code < 500, what
        assert answer.headers["X-Content-Type-Options"] == "nosniff", what
        assert answer.headers["Cache-Control"] == "no-store", what
        assert "Strict-Transport-Security" not in answer.headers, what  # plain http: no promise to make
    assert answers["a patient"].status_code == 200 and answers["no token"].status_code == 401


def test_answers_over_https_tell_browsers_to_keep_to_https(client, api_headers, booked):
    for path, headers in (("/api/v1/escalations/1", api_headers), ("/login", {}), ("/healthz", {})):
        answer = client.get(path, headers=headers, base_url=SECURE)
        assert answer.status_code == 200, path
        assert answer.headers["Strict-Transport-Security"] == HSTS, path
    page = client.get("/login", base_url=SECURE)  # the staff pages keep their own headers
    assert page.headers["Cache-Control"] == "no-store" and "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    # Without a trusted proxy, a forwarded scheme is anyone's word: no header on its say-so.
    spoofed = client.get("/api/v1/escalations/1", headers={**api_headers, "X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in spoofed.headers


def test_behind_a_trusted_proxy_the_scheme_it_forwards_decides(configure, api_headers, booked):
    from reminders.web import create_app

    proxied = create_app(configure(TRUSTED_PROXY_HOPS=1), {"TESTING": True}).test_client()
    over_https = proxied.get("/api/v1/escalations/1", headers={**api_headers, "X-Forwarded-Proto": "https",
                                                               "X-Forwarded-For": "203.0.113.5"})
    assert over_https.status_code == 200 and over_https.headers["Strict-Transport-Security"] == HSTS
    assert over_https.headers["Cache-Control"] == "no-store"
    over_http = proxied.get("/api/v1/escalations/1", headers={**api_headers, "X-Forwarded-Proto": "http"})
    assert "Strict-Transport-Security" not in over_http.headers
