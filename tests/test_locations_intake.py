"""Visits know their clinic location at every door: a CSV row, the API, FHIR, HL7 and the staff form
name it by code or name; the `location` text stays as given. A clinic without locations imports
anything as before."""
from __future__ import annotations

import json
from datetime import timedelta
from zoneinfo import ZoneInfo

import hl7
import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from reminders.cli import main
from reminders.locations import save_location
from reminders.models import Appointment, Location, utcnow
from tests.fakes.fhir_server import FakeFhir
from tests.fixtures.staff import add_patient, post_form, signed_in

NY = ZoneInfo("America/New_York")
HEADER = ("external_id,patient_external_id,first_name,last_name,phone,email,timezone,preferred_channel,kind,"
          "starts_at,duration_minutes,location,status")


@pytest.fixture
def places(session) -> dict[str, int]:
    """Three locations: code -> id."""
    for code, name in (("austin", "Bright Minds Austin"), ("dallas", "Bright Minds Dallas"),
                       ("houston", "Bright Minds Houston")):
        save_location(session, {"code": code, "name": name})
    session.commit()
    return dict(session.execute(select(Location.code, Location.id)).all())


def when(days: int, hour: int = 10) -> str:
    local = (utcnow().astimezone(NY) + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return local.isoformat()


def row(visit: str, location: str, days: int = 5, patient: str = "p1") -> str:
    return (f"{visit},{patient},Maya,Lopez,+12025550143,,America/New_York,sms,induction,{when(days)},50,"
            f"{location},scheduled")


def run_import(tmp_path, *rows: str) -> dict:
    path = tmp_path / "visits.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["import", str(path), "--json"])
    return json.loads(result.output.strip().splitlines()[-1])


def stored(session, external_id: str) -> Appointment:
    session.expire_all()
    return session.scalar(select(Appointment).where(Appointment.external_id == external_id))


# --- CSV --------------------------------------------------------------------------------------

def test_csv_rows_name_their_location_by_code_or_name(settings, session, places, tmp_path):
    report = run_import(tmp_path, row("a1", "AUSTIN", 5), row("a2", "bright minds dallas", 6), row("a3", "", 7),
                        row("a4", "Suite 200", 8), row("a5", "Houston", 9))

    assert (report["created"], report["rejected"]) == (4, 1)
    [error] = report["errors"]
    assert error["line"] == 5 and error["external_id"] == "a4"
    assert error["reasons"] == ["location 'Suite 200' is not one of this clinic's locations (austin, dallas, houston)"]
    assert (stored(session, "a1").location, stored(session, "a1").location_id) == ("AUSTIN", places["austin"])
    assert stored(session, "a2").location_id == places["dallas"]
    assert (stored(session, "a3").location, stored(session, "a3").location_id) == ("", None)
    assert stored(session, "a4") is None
    assert stored(session, "a5").location_id == places["houston"]


def test_a_visit_moved_to_another_location_is_planned_again(settings, session, places, tmp_path):
    run_import(tmp_path, row("a1", "austin"))
    session.execute(update(Appointment).values(needs_planning=False))
    session.commit()

    assert run_import(tmp_path, row("a1", "austin"))["unchanged"] == 1
    assert stored(session, "a1").needs_planning is False
    report = run_import(tmp_path, row("a1", "dallas"))
    assert report["updated"] == 1
    visit = stored(session, "a1")
    assert (visit.location_id, visit.location, visit.needs_planning) == (places["dallas"], "dallas", True)


def test_a_closed_location_keeps_its_visits_and_takes_no_new_one(settings, session, places, tmp_path):
    run_import(tmp_path, row("a1", "austin"))
    save_location(session, {"active": "false"}, code="austin")
    session.commit()

    report = run_import(tmp_path, row("a1", "austin"), row("a2", "austin", 6), row("a3", "dallas", 7))
    assert (report["unchanged"], report["created"], report["rejected"]) == (1, 1, 1)
    assert report["errors"][0]["external_id"] == "a2"
    assert report["errors"][0]["reasons"] == ["location 'austin' is closed: it takes no new visits"]
    assert stored(session, "a1").location_id == places["austin"]
    assert stored(session, "a2") is None


def test_without_locations_any_text_imports_as_before(settings, session, tmp_path):
    report = run_import(tmp_path, row("a1", "Suite 200"), row("a2", "austin", 6))
    assert (report["created"], report["rejected"]) == (2, 0)
    assert (stored(session, "a1").location, stored(session, "a1").location_id) == ("Suite 200", None)
    assert stored(session, "a2").location_id is None


# --- API --------------------------------------------------------------------------------------

VISIT = {"external_id": "v1", "patient_external_id": "p1", "kind": "induction",
         "starts_at": "2026-12-10T10:00:00-05:00", "duration_minutes": 50,
         "patient": {"first_name": "Maya", "phone": "+12025550143", "timezone": "America/New_York"}}


def test_the_api_books_a_visit_at_a_location_and_refuses_an_unknown_one(client, api_headers, session, places):
    response = client.post("/api/v1/appointments", json={**VISIT, "location": "Bright Minds Dallas"},
                           headers=api_headers)
    assert response.status_code == 201, response.json
    assert (response.json["location"], response.json["location_code"]) == ("Bright Minds Dallas", "dallas")
    assert stored(session, "v1").location_id == places["dallas"]

    refused = client.post("/api/v1/appointments", json={**VISIT, "external_id": "v2", "location": "Mars"},
                          headers=api_headers)
    assert refused.status_code == 422
    assert refused.json["error"] == "location 'Mars' is not one of this clinic's locations (austin, dallas, houston)"
    assert refused.json["fields"] == ["location"]
    assert stored(session, "v2") is None

    moved = client.patch("/api/v1/appointments/v1", json={"location": "houston"}, headers=api_headers)
    assert moved.status_code == 200 and moved.json["location_code"] == "houston"
    kept = client.patch("/api/v1/appointments/v1", json={"duration_minutes": 60}, headers=api_headers)
    assert kept.json["location_code"] == "houston"
    default = client.patch("/api/v1/appointments/v1", json={"location": ""}, headers=api_headers)
    assert default.json["location_code"] is None and stored(session, "v1").location_id is None


def test_the_api_lists_the_locations_default_first(client, api_headers, session, places, settings):
    save_location(session, {"active": "false"}, code="houston")
    session.commit()
    assert client.get("/api/v1/locations").status_code == 401
    response = client.get("/api/v1/locations", headers=api_headers)
    assert response.status_code == 200
    listed = response.json["locations"]
    assert [(p["code"], p["name"], p["active"]) for p in listed] == [
        ("", settings.clinic_name, True), ("austin", "Bright Minds Austin", True),
        ("dallas", "Bright Minds Dallas", True), ("houston", "Bright Minds Houston", False)]
    assert listed[0]["id"] is None and listed[1]["timezone"] == settings.clinic_timezone


def test_the_api_takes_any_location_text_without_locations(client, api_headers, session):
    response = client.post("/api/v1/appointments", json={**VISIT, "location": "Suite 200"}, headers=api_headers)
    assert response.status_code == 201
    assert (response.json["location"], response.json["location_code"]) == ("Suite 200", None)
    assert client.get("/api/v1/locations", headers=api_headers).json["locations"][0]["code"] == ""


# --- FHIR -------------------------------------------------------------------------------------

def test_a_fhir_location_participant_names_the_location(settings, configure, session, places):
    with FakeFhir("hapi") as server:
        patient = server.add_patient()
        start = utcnow().replace(microsecond=0) + timedelta(days=3)
        by_name, by_id, unknown, none = (server.add_appointment(patient, start + timedelta(days=n)) for n in range(4))
        for aid, actor in ((by_name, {"reference": "Location/77", "display": "Bright Minds Dallas"}),
                           (by_id, {"reference": "Location/houston"}),
                           (unknown, {"reference": "Location/78", "display": "Elsewhere"})):
            participants = server.appointments[aid]["participant"] + [{"actor": actor, "status": "accepted"}]
            server.update_appointment(aid, participant=participants)
        configure(FHIR_BASE_URL=server.base_url, FHIR_TOKEN=server.token,
                  FHIR_APPOINTMENT_TYPES='{"KET-IND": "induction"}')
        result = CliRunner().invoke(main, ["fhir", "sync"])

    assert "3 created" in result.output and "1 rejected" in result.output, result.output
    assert (f"Appointment/{unknown}: rejected: the Location participant: location 'Elsewhere' is not one of "
            "this clinic's locations (austin, dallas, houston)") in result.output
    assert (stored(session, f"fhir:{by_name}").location, stored(session, f"fhir:{by_name}").location_id) == (
        "Bright Minds Dallas", places["dallas"])
    assert stored(session, f"fhir:{by_id}").location_id == places["houston"]
    assert stored(session, f"fhir:{none}").location_id is None
    assert stored(session, f"fhir:{unknown}") is None


# --- HL7 --------------------------------------------------------------------------------------

def siu(visit: str, start: str, *, ail: str | None = None, pv1: str = "") -> bytes:
    lines = [f"MSH|^~\\&|EHR|CLINIC|REMINDERS|CLINIC|20261201120000||SIU^S12^SIU_S12|{visit}-1|P|2.5.1",
             f"SCH|{visit}^EHR|{visit}^EHR||||||KETIND^Infusion|||||||||||||||||Booked",
             "PID|1||mrn-1^^^EHR^MR||Rivera^Ana||19800101|F|||||^PRN^CP^^1^312^5550143||eng",
             f"PV1|1|O|{pv1}", f"AIS|1||KETIND^Ketamine infusion|{start}|||45|min"]
    if ail is not None:
        lines.append(f"AIL|1||{ail}")
    return ("\r".join(lines) + "\r").encode()


def ack_of(answer) -> tuple[str, str]:
    message = hl7.parse(answer.ack.decode())
    return str(message.segment("MSA")[1]), str(message.segment("MSA")[3])


def test_hl7_ail_3_or_pv1_3_names_the_location(settings, configure, session, places):
    from reminders.hl7.listener import answer

    hl7_settings = configure(HL7_APPOINTMENT_TYPES="KETIND=induction")
    start = (utcnow() + timedelta(days=4)).astimezone(NY).strftime("%Y%m%d%H%M%S%z")

    assert ack_of(answer(siu("h1", start, ail="austin^Bright Minds Austin"), hl7_settings))[0] == "AA"
    assert (stored(session, "h1").location, stored(session, "h1").location_id) == ("austin", places["austin"])
    assert ack_of(answer(siu("h2", start, pv1="Infusion^^^Bright Minds Dallas"), hl7_settings))[0] == "AA"
    assert stored(session, "h2").location_id == places["dallas"]

    code, text = ack_of(answer(siu("h3", start, ail="^^^Downtown"), hl7_settings))
    assert code == "AE"
    assert text == "AIL-3: location 'Downtown' is not one of this clinic's locations (austin, dallas, houston)"
    assert stored(session, "h3") is None


# --- The staff visit form ---------------------------------------------------------------------

def test_the_visit_form_offers_the_locations_and_saves_the_one_chosen(app, sessions, session, places):
    save_location(session, {"active": "false"}, code="houston")
    session.commit()
    patient = add_patient(session)
    client = signed_in(app, sessions, "staff@clinic.test", "staff")

    form = client.get(f"/patients/{patient.id}/visits/new").text
    assert '<select name="place"' in form
    options = form.split('<select name="place"')[1].split("</select>")[0]
    assert options.index('value=""') < options.index('value="austin"') < options.index('value="dallas"')
    assert "Bright Minds Houston" not in options  # closed: it takes no new visits
    assert ">Room <input" in form

    day = (utcnow().astimezone(NY) + timedelta(days=5)).date().isoformat()
    visit = {"kind": "induction", "date": day, "time": "10:00", "duration_minutes": "60", "location": "Suite 2",
             "status": "scheduled"}
    refused = post_form(client, f"/patients/{patient.id}/visits/new", {**visit, "place": "houston"})
    assert refused.status_code == 422 and "That location is closed to new visits: choose another." in refused.text
    refused = post_form(client, f"/patients/{patient.id}/visits/new", {**visit, "place": "mars"})
    assert refused.status_code == 422 and "Choose a location from the list." in refused.text

    saved = post_form(client, f"/patients/{patient.id}/visits/new", {**visit, "place": "dallas"})
    assert saved.status_code == 302
    [booked] = session.scalars(select(Appointment)).all()
    assert (booked.location_id, booked.location) == (places["dallas"], "Suite 2")
    page = client.get(f"/patients/{patient.id}").text
    assert "Bright Minds Dallas" in page and "Suite 2" in page

    edit = client.get(f"/visits/{booked.id}/edit").text
    assert '<option value="dallas" selected>' in edit


def test_the_visit_form_is_as_before_without_locations(app, sessions, session):
    patient = add_patient(session)
    client = signed_in(app, sessions, "staff@clinic.test", "staff")
    form = client.get(f"/patients/{patient.id}/visits/new").text
    assert 'name="place"' not in form and ">Location <input" in form


def test_a_course_booked_in_one_form_is_at_the_location_chosen(app, sessions, session, places):
    from tests.test_staff_courses import course_form, next_monday

    patient = add_patient(session)
    client = signed_in(app, sessions, "staff@clinic.test", "staff")
    assert '<select name="place"' in client.get(f"/patients/{patient.id}/courses/new").text
    response = post_form(client, f"/patients/{patient.id}/courses/new",
                         course_form(next_monday(), "book", place="Bright Minds Austin"))
    assert response.status_code == 302
    session.expire_all()
    visits = session.scalars(select(Appointment)).all()
    assert len(visits) == 6 and {v.location_id for v in visits} == {places["austin"]}
