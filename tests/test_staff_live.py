"""/live.json (what the pages poll), the menu badges, the no-contacts banner, error pages, the skip link."""
from __future__ import annotations

import re

import pytest

from reminders.escalations import resolve
from reminders.models import Escalation
from tests.conftest import clock_now
from tests.fixtures.staff import add_escalation, add_inbound, add_patient, add_visit, login, make_user, post_form


@pytest.fixture
def maya(sessions):
    with sessions() as session:
        patient = add_patient(session)
        session.expunge(patient)
        return patient


def test_live_json_needs_a_staff_session_and_answers_401_not_the_login_page(client):
    response = client.get("/live.json")
    assert response.status_code == 401
    assert response.is_json and response.json == {"error": "sign in first"}


def test_live_json_counts_open_escalations_and_waiting_inbox_items(staff_client, sessions, maya):
    with sessions() as session:
        add_escalation(session, maya, "old", acknowledged_at=clock_now(), status="acknowledged")
        add_escalation(session, maya, "i want it all to stop")
        newest = add_escalation(session, None, "second")
        add_inbound(session, maya, "Can my husband drive me?")
        add_inbound(session, maya, "done one", done_at=clock_now(), done_by="x@clinic.test")
        add_inbound(session, maya, "C", needs_staff=False, classification="confirm")
        newest_id = newest.id
        last_id = session.query(Escalation.id).order_by(Escalation.id.desc()).first()[0]
    response = staff_client.get("/live.json")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    data = response.json
    assert data["open_escalations"] == 2
    assert data["newest_open_escalation_id"] == newest_id
    assert data["newest_escalation_id"] == last_id
    assert data["inbox_waiting"] == 1
    assert re.fullmatch(r"[0-9a-f]{16}", data["stamp"])
    assert 1 <= data["poll_seconds"] <= 5  # a change shows well within 10 seconds
    assert data["newest_open_escalation_kind"] == "Suicide risk"  # the banner names the kind
    assert {"open_escalations", "newest_open_escalation_id", "newest_open_escalation_kind", "newest_escalation_id",
            "inbox_waiting", "stamp", "poll_seconds"} <= set(data)


def test_live_json_carries_no_patient_data(staff_client, sessions, maya):
    with sessions() as session:
        add_escalation(session, maya, "i want it all to stop")
        add_inbound(session, maya, "Can my husband drive me?")
    text = staff_client.get("/live.json").text
    for secret in ("Maya", "Lopez", "2025550143", "maya@example.org", "stop", "husband"):
        assert secret not in text


def test_the_stamp_changes_with_what_the_live_pages_show(staff_client, sessions, maya):
    def stamp() -> str:
        return staff_client.get("/live.json").json["stamp"]

    first = stamp()
    assert stamp() == first  # nothing changed, same stamp
    with sessions() as session:
        message = add_inbound(session, maya, "Can my husband drive me?")
    second = stamp()
    assert second != first
    with sessions() as session:
        session.get(type(message), message.id).done_at = clock_now()
        session.commit()
    third = stamp()
    assert third != second
    with sessions() as session:
        escalation = add_escalation(session, maya, "crisis")
    fourth = stamp()
    assert fourth != third
    with sessions() as session:
        resolve(session, escalation.id, "x@clinic.test", "", clock_now())
        session.commit()
    fifth = stamp()
    assert fifth != fourth
    with sessions() as session:
        add_visit(session, session.merge(maya), "v1", clock_now().replace(microsecond=0))
    assert stamp() != fifth


def test_a_signed_out_session_stops_the_poll(staff_client):
    post_form(staff_client, "/logout")
    assert staff_client.get("/live.json").status_code == 401


def test_every_page_carries_the_badges_and_the_poll_and_live_pages_reload(staff_client, sessions, maya):
    with sessions() as session:
        escalation = add_escalation(session, maya, "crisis")
        add_inbound(session, maya, "question one")
        add_inbound(session, maya, "question two")
    for path, reloads in (("/", True), ("/escalations/", True), ("/inbox/", True), (f"/patients/{maya.id}", False),
                          ("/patients/", False)):
        text = staff_client.get(path).text
        assert 'data-live-url="/live.json"' in text, path
        assert ("data-live-reload" in text) == reloads, path
        badge = re.search(r'data-live-badge="open_escalations"[^>]*><span data-live-number>(\d+)</span>', text)
        assert badge and badge.group(1) == "1", path
        badge = re.search(r'data-live-badge="inbox_waiting"[^>]*><span data-live-number>(\d+)</span>', text)
        assert badge and badge.group(1) == "2", path
        # The banner is a real link to the newest open escalation, in a polite live region.
        assert re.search(r'<div id="live-alert" class="live-alert" role="status" aria-live="polite">\s*'
                         rf'<a class="alert-banner" href="/escalations/#escalation-{escalation.id}">', text), path
        assert 'role="alert"' not in text.split("<main")[0] or "provider-banner" in text


def test_badges_are_hidden_at_zero(staff_client):
    text = staff_client.get("/").text
    assert re.search(r'data-live-badge="open_escalations" hidden>', text)
    assert re.search(r'data-live-badge="inbox_waiting" hidden>', text)
    assert "alert-banner" not in text


def test_badges_are_not_read_inside_headings_on_the_escalations_page(staff_client, sessions, maya):
    with sessions() as session:
        add_escalation(session, maya, "crisis")
    text = staff_client.get("/escalations/").text
    assert '<h2 id="open-head">Waiting for someone</h2>' in text
    for heading in re.findall(r"<h[1-6][^>]*>.*?</h[1-6]>", text, re.S):
        assert 'class="count' not in heading, heading


def unalerted(escalation, session) -> None:
    """As the webhook leaves a crisis when nobody could be alerted: no round yet, the next one planned."""
    escalation.alert_round, escalation.last_alerted_at, escalation.next_alert_at = 0, None, clock_now()
    session.commit()


def test_without_alert_contacts_every_page_says_crisis_alerts_reach_nobody(staff_client, sessions, maya):
    with sessions() as session:
        unalerted(add_escalation(session, maya, "crisis"), session)
    for path in ("/", "/escalations/", "/inbox/", "/patients/", f"/patients/{maya.id}", "/account/password"):
        assert "Crisis alerts cannot reach anyone." in staff_client.get(path).text, path
    text = staff_client.get("/escalations/").text
    assert "nobody alerted (no contacts configured)" in text
    assert "Next alert" not in text and "not yet" not in text


def test_with_alert_contacts_there_is_no_such_banner(configure, sessions):
    from reminders.web import create_app

    settings = configure(STAFF_ALERT_PHONES="+12025550101")
    client = create_app(settings, {"TESTING": True}).test_client()
    make_user(sessions, "staff@clinic.test")
    login(client, "staff@clinic.test")
    with sessions() as session:
        unalerted(add_escalation(session, add_patient(session), "crisis"), session)
    assert "Crisis alerts cannot reach anyone." not in client.get("/").text
    text = client.get("/escalations/").text
    assert "nobody alerted" not in text and "Next alert" in text


def test_a_missing_patient_is_a_page_inside_the_app(staff_client):
    response = staff_client.get("/patients/9999", headers={"Accept": "text/html,*/*;q=0.8"})
    assert response.status_code == 404
    assert "<h1 id=\"error-head\">Page not found</h1>" in response.text
    assert 'aria-label="Main"' in response.text  # the menu is there
    assert "Back to Today" in response.text
    assert staff_client.get("/patients/9999").status_code == 404  # curl's */* too
    assert "Page not found" in staff_client.get("/patients/9999").text


def test_an_unknown_address_is_a_page_inside_the_app_when_signed_in(staff_client, client):
    response = staff_client.get("/no/such/page")
    assert response.status_code == 404
    assert "Page not found" in response.text and 'aria-label="Main"' in response.text
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    signed_out = client.get("/no/such/page")
    assert signed_out.status_code == 404 and "Page not found" in signed_out.text and "Sign in" in signed_out.text


def test_machines_keep_their_own_errors(staff_client):
    api = staff_client.get("/api/nothing")
    assert api.status_code == 404 and api.is_json
    assert "Page not found" not in staff_client.get("/twilio/nothing").text


def test_a_server_error_is_a_page_inside_the_app(settings, sessions):
    from reminders.web import create_app

    app = create_app(settings, {"TESTING": True, "PROPAGATE_EXCEPTIONS": False})

    def broken():
        raise RuntimeError("boom")

    app.view_functions["inbox.index"] = broken
    client = app.test_client()
    make_user(sessions, "staff@clinic.test")
    login(client, "staff@clinic.test")
    response = client.get("/inbox/")
    assert response.status_code == 500
    assert "Something went wrong" in response.text and 'aria-label="Main"' in response.text
    assert "boom" not in response.text and "RuntimeError" not in response.text


def test_the_skip_link_is_the_first_thing_to_tab_to(staff_client, client):
    for text in (staff_client.get("/").text, client.get("/login").text):
        body = text.split("<body", 1)[1]
        first = re.search(r"<(a|button|input|select|textarea)\b[^>]*>", body)
        assert first.group(0) == '<a class="skip-link" href="#main">', first.group(0)
        assert 'id="main"' in body


# --- The audit log in plain words ------------------------------------------------------------------

def test_the_audit_log_names_patients_and_visits_and_hides_internal_fields(admin_client, sessions):
    from reminders.models import AuditEntry

    with sessions() as session:
        maya = add_patient(session)
        sam = add_patient(session, "p2", "Sam", "Okafor", "+12025550178", None, channel="sms")
        visit = add_visit(session, sam, "s1", clock_now().replace(microsecond=0))
        escalation = add_escalation(session, sam, "crisis")
        ids = (maya.id, sam.id, visit.id, escalation.id)
        session.add_all([
            AuditEntry(actor="nurse@clinic.test", action="view_visit_form", target_type="patient",
                       target_id=str(maya.id), detail={"appointment_id": None}),
            AuditEntry(actor="nurse@clinic.test", action="create_visit", target_type="appointment",
                       target_id=str(visit.id), detail={"patient_id": sam.id, "result": "created"}),
            AuditEntry(actor="desk@clinic.test", action="acknowledge_escalation", target_type="escalation",
                       target_id=str(escalation.id), detail={"patient_id": sam.id}),
            AuditEntry(actor="desk@clinic.test", action="view_patient", target_type="patient", target_id="9999",
                       detail={}),
        ])
        session.commit()
    maya_id, sam_id, visit_id, escalation_id = ids
    text = admin_client.get("/admin/audit").text
    for words in ("Opened the visit form", "Booked a visit", "Resolved an escalation", "Maya Lopez",
                  "Sam Okafor", "Outcome: created", f"/escalations/#escalation-{escalation_id}", "no longer on file"):
        assert words in text, words
    for internal in ("appointment_id", "patient_id", "=None", "None", "patient 9999", f"patient {maya_id}<",
                     "view_visit_form", "create_visit", "acknowledge_escalation"):
        assert internal not in text, internal

    only_desk = admin_client.get("/admin/audit?who=desk@clinic.test").text
    assert "Resolved an escalation" in only_desk and "Booked a visit" not in only_desk
    only_sam = admin_client.get(f"/admin/audit?patient={sam_id}").text
    assert "Booked a visit" in only_sam and "Resolved an escalation" in only_sam
    assert "Opened the visit form" not in only_sam and "Patient: <strong>Sam Okafor</strong>" in only_sam
    both = admin_client.get(f"/admin/audit?patient={sam_id}&who=nurse@clinic.test").text
    assert "Booked a visit" in both and "Resolved an escalation" not in both
    assert "Nothing matches." in admin_client.get("/admin/audit?patient=123456").text
    assert "only this patient" in text and f"/admin/audit?patient={maya_id}" in text


# --- The patient form: what to fix, in plain words, beside the field --------------------------------

def test_patient_form_errors_sit_beside_their_fields_in_plain_words(staff_client, sessions):
    response = post_form(staff_client, "/patients/new", {
        "first_name": "", "phone": "", "email": "not-an-address", "timezone": "Mars/Base",
        "preferred_channel": "sms", "language": "en",
    })
    assert response.status_code == 422
    text = response.text
    assert re.search(r'<input name="first_name" id="f-first_name" aria-invalid="true" '
                     r'aria-describedby="err-first_name"', text)
    assert '<span class="field-error" id="err-first_name">Enter the patient&#39;s first name.</span>' in text
    assert 'id="err-timezone">Choose a time zone from the list, e.g. America/Chicago.</span>' in text
    assert 'id="err-email">This is not an email address.' in text
    assert '<a href="#f-first_name">First name</a>' in text  # the summary links to the field
    for internal in ("first_name is", "IANA", "preferred_channel is", "timezone &#39;"):
        assert internal not in text, internal
    with sessions() as session:
        assert session.scalar(__import__("sqlalchemy").select(__import__("reminders.models", fromlist=["Patient"])
                                                               .Patient)) is None


def test_a_missing_number_for_texts_is_put_on_the_phone_field(staff_client):
    text = post_form(staff_client, "/patients/new", {
        "first_name": "Ana", "phone": "", "timezone": "America/New_York", "preferred_channel": "sms",
    }).text
    assert 'id="err-phone">Reminders by Text need a mobile number: enter one, or choose Email below.</span>' in text
    text = post_form(staff_client, "/patients/new", {
        "first_name": "Ana", "phone": "12", "timezone": "America/New_York", "preferred_channel": "sms",
    }).text
    assert 'id="err-phone">This is not a phone number that can get texts.' in text
