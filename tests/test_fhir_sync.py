"""`reminders fhir sync`: FHIR R4 appointments from a server on loopback that answers as HAPI FHIR or
OpenEMR do (paging, included patients or not, statuses this service does not know, a patient
without a phone, appointments cancelled, entered in error or deleted), over real HTTP."""
from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from reminders.cli import main
from reminders.config import Settings
from reminders.models import Appointment, FhirSyncState, OutboxMessage, Patient
from tests.conftest import SETTING_NAMES
from tests.fakes.fhir_server import FakeFhir
from tests.processes import ROOT, executable

NOW = datetime.now(timezone.utc)
TYPES = '{"KET-IND": "induction", "KET-MAINT": "maintenance", "Ketamine Induction": "induction", "Ketamine Maintenance": "maintenance"}'


def days(n: float, hour: int = 15) -> datetime:
    """n days from now, at hour:00 UTC (10:00 or 11:00 in New York: outside quiet hours)."""
    return (NOW + timedelta(days=n)).replace(hour=hour, minute=0, second=0, microsecond=0)


@pytest.fixture
def hapi():
    with FakeFhir("hapi") as server:
        yield server


@pytest.fixture
def openemr():
    with FakeFhir("openemr") as server:
        yield server


def fhir_settings(configure, server: FakeFhir, **more) -> Settings:
    return configure(FHIR_BASE_URL=server.base_url, FHIR_TOKEN=server.token, FHIR_APPOINTMENT_TYPES=TYPES, **more)


def visit(session: Session, fhir_id: str) -> Appointment:
    session.expire_all()
    return session.scalar(select(Appointment).where(Appointment.external_id == f"fhir:{fhir_id}"))


def reminders_of(session: Session, appointment: Appointment) -> list[OutboxMessage]:
    session.expire_all()
    return list(session.scalars(select(OutboxMessage).where(OutboxMessage.appointment_id == appointment.id)))


def run_sync(*args: str):
    result = CliRunner().invoke(main, ["fhir", "sync", *args])
    return result.exit_code, result.output


# --- HAPI: paging, included patients -------------------------------------------------------------

def test_hapi_pages_are_followed_and_included_patients_taken_in(settings, configure, hapi, session):
    spanish = hapi.add_patient("Lucía", "Gómez", phone="+1 (202) 555-0177", language="es")
    english = hapi.add_patient("Sam", "Okafor", phone="202.555.0178", language="en")
    ids = [hapi.add_appointment(spanish if n % 2 else english, days(2 + n / 4), kind="induction" if n < 30 else "maintenance")
           for n in range(45)]
    fhir_settings(configure, hapi, FHIR_PAGE_SIZE=20)
    code, output = run_sync()

    assert code == 0, output
    assert "45 appointments from" in output and "(3 pages): 45 created, 0 updated, 0 unchanged" in output
    searches = [dict(r["args"]).get("_getpages") for r in hapi.requests if r["path"] == "/fhir"]
    assert searches.count(searches[0]) == 2  # the first page came with the search, two more through `next`
    assert not hapi.fhir_requests("/Patient/" + spanish)  # included: never read on its own
    assert visit(session, ids[0]).kind == "induction" and visit(session, ids[44]).kind == "maintenance"
    lucia = session.scalar(select(Patient).where(Patient.external_id == f"fhir:{spanish}"))
    assert (lucia.first_name, lucia.phone, lucia.language, lucia.preferred_channel) == ("Lucía", "+12025550177", "es", "sms")
    # The sync planned them: the first infusion's reminders are in the outbox.
    assert reminders_of(session, visit(session, ids[0]))


def test_a_second_sync_asks_only_for_what_changed_since_the_first(settings, configure, hapi, session):
    fhir_settings(configure, hapi)
    pid = hapi.add_patient()
    first, second = hapi.add_appointment(pid, days(3)), hapi.add_appointment(pid, days(10))
    assert run_sync()[0] == 0
    first_query = dict(hapi.fhir_requests("/Appointment")[0]["args"])
    assert "_lastUpdated" not in first_query and first_query["date"].startswith("ge")
    assert first_query["_include"] == "Appointment:patient"

    hapi.update_appointment(second, start=days(12), end=days(12) + timedelta(hours=1))
    code, output = run_sync()
    assert code == 0, output
    since = [dict(r["args"]) for r in hapi.fhir_requests("/Appointment") if "_lastUpdated" in dict(r["args"])]
    assert since and since[-1]["_lastUpdated"].startswith("ge")
    # The moved visit, and the newest of the last sync again (ge: nothing at the same instant is missed).
    assert "1 updated" in output
    assert visit(session, second).starts_at == days(12)
    assert visit(session, first).starts_at == days(3)
    state = session.scalar(select(FhirSyncState))
    assert state.base_url == hapi.base_url and state.high_water is not None


def test_a_patient_whose_phone_changed_on_the_server_gets_it_here(settings, configure, hapi, session):
    fhir_settings(configure, hapi)
    pid = hapi.add_patient(phone="(202) 555-0143")
    stranger = hapi.add_patient("Not", "Here")  # no visit: never taken in
    hapi.add_appointment(pid, days(3))
    hapi.advance(seconds=5)  # the server's clock: the changes after this one are in a later second
    hapi.add_appointment(hapi.add_patient("Other", "Patient", phone="202-555-0122"), days(4))
    assert run_sync()[0] == 0
    hapi.update_patient(pid, telecom=[{"system": "phone", "value": "202-555-0111", "use": "mobile"}],
                        communication=[{"language": {"text": "Spanish"}, "preferred": True}])
    hapi.update_patient(stranger, telecom=[])
    code, output = run_sync()
    assert code == 0, output
    assert "patients changed on the server: 1 updated" in output  # its visit did not change: not re-read
    session.expire_all()
    patient = session.scalar(select(Patient).where(Patient.external_id == f"fhir:{pid}"))
    assert (patient.phone, patient.language) == ("+12025550111", "es")
    assert session.scalar(select(Patient).where(Patient.external_id == f"fhir:{stranger}")) is None


def test_unknown_status_pending_no_phone_and_an_unmapped_type_are_reported(settings, configure, hapi, session):
    fhir_settings(configure, hapi)
    reachable = hapi.add_patient()
    email_only = hapi.add_patient("Noor", "Haddad", phone=None, email="Noor@example.org")
    unreachable = hapi.add_patient("Kim", "Park", phone=None)
    odd = hapi.add_appointment(reachable, days(4), status="tentative")
    pending = hapi.add_appointment(reachable, days(5), status="pending")
    by_email = hapi.add_appointment(email_only, days(6))
    nowhere = hapi.add_appointment(unreachable, days(7))
    untyped = hapi.add_appointment(reachable, days(8), kind="consult")
    fine = hapi.add_appointment(reachable, days(9))

    code, output = run_sync()
    assert code == 1  # some rejected, as `reminders import` says
    assert f"Appointment/{odd}: skipped: status 'tentative' is not an appointment status this service knows" in output
    assert f"Appointment/{pending}: skipped: status 'pending': not booked yet" in output
    assert f"Appointment/{nowhere}: rejected: Patient/{unreachable} has no phone or email in telecom" in output
    assert f"Appointment/{untyped}: rejected: appointment type consult is not in FHIR_APPOINTMENT_TYPES" in output
    assert "6 appointments from" in output and "2 created, 0 updated, 0 unchanged, 0 canceled, 2 skipped, 2 rejected" in output
    noor = session.scalar(select(Patient).where(Patient.external_id == f"fhir:{email_only}"))
    assert (noor.phone, noor.email, noor.preferred_channel) == (None, "noor@example.org", "email")
    assert visit(session, by_email) is not None and visit(session, fine) is not None
    assert visit(session, odd) is None and visit(session, nowhere) is None

    # A default kind takes in the visit whose type is not mapped.
    configure(FHIR_DEFAULT_KIND="maintenance")
    hapi.update_appointment(untyped, comment="touched")
    run_sync()
    assert visit(session, untyped).kind == "maintenance"


def test_json_report(settings, configure, hapi):
    fhir_settings(configure, hapi)
    hapi.add_appointment(hapi.add_patient(), days(3), status="waitlist")
    code, output = run_sync("--json")
    report = json.loads(output)
    assert code == 0 and report["appointments"] == 1 and report["skipped"] == 1
    assert report["problems"][0]["reasons"] == ["status 'waitlist': not booked yet"]


# --- Cancellations, entries in error, deletions --------------------------------------------------

def test_cancelled_entered_in_error_and_deleted_appointments_cancel_their_reminders(settings, configure, hapi, session):
    fhir_settings(configure, hapi)
    pid = hapi.add_patient()
    cancelled, in_error, deleted, kept = (hapi.add_appointment(pid, days(n)) for n in (3, 6, 9, 12))
    never_here = hapi.add_appointment(pid, days(14), status="entered-in-error")
    code, output = run_sync()
    assert code == 0, output
    assert f"Appointment/{never_here}: skipped: entered in error on the server (never taken in here)" in output
    for fhir_id in (cancelled, in_error, deleted, kept):
        assert {r.status for r in reminders_of(session, visit(session, fhir_id))} == {"planned"}

    hapi.update_appointment(cancelled, status="cancelled")
    hapi.update_appointment(in_error, status="entered-in-error")
    hapi.delete_appointment(deleted)  # R4 says nothing on delete: only the window re-read finds it
    code, output = run_sync()

    assert code == 0, output
    assert f"Appointment/{cancelled}: canceled: cancelled on the server" in output
    assert f"Appointment/{in_error}: canceled: entered in error on the server" in output
    assert f"Appointment/{deleted}: canceled: no longer on the server (deleted)" in output
    assert "1 visits here no longer there canceled" in output
    for fhir_id in (cancelled, in_error, deleted):
        assert visit(session, fhir_id).status == "canceled"
        assert {r.status for r in reminders_of(session, visit(session, fhir_id))} == {"canceled"}
    # The visit still booked is now the course's first infusion: re-planned, its reminders on.
    assert visit(session, kept).status == "scheduled" and visit(session, kept).number_in_course == 1
    assert "planned" in {r.status for r in reminders_of(session, visit(session, kept))}
    # Again: nothing more to do.
    code, output = run_sync()
    assert "0 canceled" in output and "0 visits here no longer there canceled" in output


def test_a_window_answer_missing_most_visits_cancels_none_of_them(settings, configure, hapi, session):
    """A server that suddenly lacks most of the coming visits (a partial answer, a restore gone
    wrong) must not cost every patient their instructions: nothing is canceled for being absent."""
    fhir_settings(configure, hapi)
    pid = hapi.add_patient()
    ids = [hapi.add_appointment(pid, days(2 + n)) for n in range(25)]
    assert run_sync()[0] == 0
    for fhir_id in ids[:22]:
        hapi.delete_appointment(fhir_id)
    code, output = run_sync()
    assert code == 0, output
    assert "window re-read: warning: 22 of the 25 visits here in the window are not on the server" in output
    assert {visit(session, fhir_id).status for fhir_id in ids} == {"scheduled"}


def test_visits_not_from_the_server_are_never_canceled_by_the_window(settings, configure, hapi, session, tmp_path):
    csv = tmp_path / "visits.csv"
    csv.write_text("external_id,patient_external_id,first_name,last_name,phone,email,timezone,preferred_channel,kind,"
                   "starts_at,duration_minutes,location,status\n"
                   f"c1,p1,Maya,Lopez,+12025550143,,America/New_York,sms,induction,{days(4).isoformat()},60,,\n")
    assert CliRunner().invoke(main, ["import", str(csv)]).exit_code == 0
    fhir_settings(configure, hapi)
    hapi.add_appointment(hapi.add_patient(), days(5))
    assert run_sync()[0] == 0
    session.expire_all()
    assert session.scalar(select(Appointment.status).where(Appointment.external_id == "c1")) == "scheduled"


# --- OpenEMR: patients read one by one, other codings ---------------------------------------------

def test_openemr_patients_are_read_when_not_included(settings, configure, openemr, session):
    fhir_settings(configure, openemr, FHIR_PAGE_SIZE=4)
    pid = openemr.add_patient("Ana", "Ruiz", phone="(202) 555-0143", phone_use="home", language="es")
    other = openemr.add_patient("Ben", "Cole", phone="202-555-0199", language="en")
    ids = [openemr.add_appointment(pid if n % 3 else other, days(2 + n), kind="maintenance" if n % 2 else "induction")
           for n in range(10)]
    code, output = run_sync()
    assert code == 0, output
    assert "10 appointments from" in output and "(3 pages): 10 created" in output
    # Each patient read once, however many of their visits the pages held.
    assert len(openemr.fhir_requests(f"/Patient/{pid}")) == 1
    ana = session.scalar(select(Patient).where(Patient.external_id == f"fhir:{pid}"))
    assert (ana.phone, ana.language) == ("+12025550143", "es")
    assert visit(session, ids[1]).kind == "maintenance" and visit(session, ids[0]).kind == "induction"
    assert visit(session, ids[0]).location == "Main clinic"


# --- Authorization ---------------------------------------------------------------------------------

def test_a_wrong_token_stops_the_sync_and_keeps_its_place(settings, configure, hapi, session):
    configure(FHIR_BASE_URL=hapi.base_url, FHIR_TOKEN="not-the-token", FHIR_APPOINTMENT_TYPES=TYPES)
    hapi.add_appointment(hapi.add_patient(), days(3))
    code, output = run_sync()
    assert code == 2
    assert "refused the credentials: HTTP 401 (check FHIR_TOKEN)" in output
    assert session.scalar(select(FhirSyncState.high_water)) is None


def test_an_unreachable_server(settings, configure):
    configure(FHIR_BASE_URL="http://127.0.0.1:9/fhir", FHIR_TOKEN="t", FHIR_TIMEOUT_SECONDS=2)
    code, output = run_sync()
    assert code == 2 and "http://127.0.0.1:9/fhir/Appointment did not answer" in output


def test_smart_backend_services_with_a_signed_client_assertion(settings, configure, hapi, session, tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "fhir-key.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    hapi.client_keys["reminders-app"] = key.public_key()
    configure(FHIR_BASE_URL=hapi.base_url, FHIR_CLIENT_ID="reminders-app", FHIR_PRIVATE_KEY_FILE=str(pem),
              FHIR_KEY_ID="key-1", FHIR_APPOINTMENT_TYPES=TYPES)  # no FHIR_TOKEN_URL: read from smart-configuration
    aid = hapi.add_appointment(hapi.add_patient(), days(3))
    code, output = run_sync()
    assert code == 0, output
    assert visit(session, aid) is not None
    (assertion,) = hapi.seen_assertions
    assert assertion["header"]["alg"] == "RS384" and assertion["header"]["kid"] == "key-1"
    assert assertion["claims"]["iss"] == assertion["claims"]["sub"] == "reminders-app"
    assert all(r["authorization"] == f"Bearer {hapi.issued[0]}" for r in hapi.fhir_requests("/Appointment"))


def test_client_credentials_with_a_client_secret(settings, configure, hapi, session):
    hapi.clients["reminders-app"] = "s3cret"
    configure(FHIR_BASE_URL=hapi.base_url, FHIR_CLIENT_ID="reminders-app", FHIR_CLIENT_SECRET="s3cret",
              FHIR_TOKEN_URL=hapi.token_url, FHIR_APPOINTMENT_TYPES=TYPES)
    aid = hapi.add_appointment(hapi.add_patient(), days(3))
    assert run_sync()[0] == 0 and visit(session, aid) is not None
    configure(FHIR_CLIENT_SECRET="wrong")
    code, output = run_sync()
    assert code == 2 and "refused the client credentials: HTTP 401 (invalid_client: bad client secret)" in output


# --- Settings and beat -----------------------------------------------------------------------------

def test_appointment_types_setting(configure):
    assert configure(FHIR_APPOINTMENT_TYPES="KET-IND=induction, Boost=Maintenance").fhir_appointment_types == {
        "ket-ind": "induction", "boost": "maintenance"}
    with pytest.raises(ValueError, match="maps to 'consult'; a visit is induction or maintenance"):
        configure(FHIR_APPOINTMENT_TYPES='{"X": "consult"}')


def test_beat_syncs_only_when_a_fhir_server_is_set(configure):
    from reminders.celery_app import make_celery
    from reminders.fhir.task import FHIR_SYNC_TASK

    assert "fhir-sync" not in make_celery(configure()).conf.beat_schedule
    app = make_celery(configure(FHIR_BASE_URL="http://127.0.0.1:9/fhir", FHIR_SYNC_MINUTES=10))
    assert app.conf.beat_schedule["fhir-sync"] == {"task": FHIR_SYNC_TASK, "schedule": 600.0}
    assert "pass-every-minute" in app.conf.beat_schedule and FHIR_SYNC_TASK in app.tasks


def test_beats_task_syncs_and_leaves_the_planning_to_the_pass(settings, configure, hapi, session):
    from reminders.celery_app import make_celery
    from reminders.fhir.task import FHIR_SYNC_TASK
    from reminders.pipeline import run_pass

    app = make_celery(fhir_settings(configure, hapi))
    hapi.add_appointment(hapi.add_patient(), days(3), status="tentative")
    aid = hapi.add_appointment(hapi.add_patient(), days(3))
    summary = app.tasks[FHIR_SYNC_TASK].run()
    assert (summary["created"], summary["skipped"], summary["planned"]) == (1, 1, 0)
    assert visit(session, aid).needs_planning and not reminders_of(session, visit(session, aid))
    run_pass(configure(), NOW)  # beat's pass, a minute later at most
    assert "planned" in {r.status for r in reminders_of(session, visit(session, aid))}
    # A server that cannot be read: the task logs it and the next one tries again.
    configure(FHIR_TOKEN="wrong")
    assert "refused the credentials" in make_celery(configure()).tasks[FHIR_SYNC_TASK].run()["error"]


# --- 500 appointments, one command, as a process ---------------------------------------------------

@pytest.mark.postgres
def test_500_appointments_sync_in_one_command_and_a_cancellation_there_cancels_here(postgres_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTING_NAMES}
    with FakeFhir("hapi") as server:
        env.update({"PYTHONPATH": str(ROOT), "REMINDERS_DATA_DIR": str(tmp_path / "data"), "SECRET_KEY": "t",
                    "DATABASE_URL": postgres_url, "MEASURES_ENABLED": "false", "FHIR_BASE_URL": server.base_url,
                    "FHIR_TOKEN": server.token, "FHIR_APPOINTMENT_TYPES": TYPES})
        patients = [server.add_patient(f"P{n}", "Test", phone=f"+1202555{n:04d}") for n in range(100)]
        ids = [server.add_appointment(patients[n % 100], days(1 + n % 60, hour=13 + n % 6),
                                      kind="induction" if n % 3 else "maintenance") for n in range(500)]

        def reminders_sync() -> tuple[str, float]:
            started = time.monotonic()
            done = subprocess.run([executable("reminders"), "fhir", "sync"], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout, time.monotonic() - started

        output, seconds = reminders_sync()
        print(f"\n500 appointments: first sync {seconds:.1f} s")
        assert seconds < 150  # one command, not a night's batch (most of it is planning the reminders)
        assert "500 appointments from" in output and ": 500 created, 0 updated" in output
        engine = create_engine(postgres_url)
        try:
            with Session(engine) as session:
                assert session.scalar(select(Appointment.id).where(Appointment.external_id == f"fhir:{ids[0]}"))
                target = visit(session, ids[7])
                assert {r.status for r in reminders_of(session, target)} == {"planned"}

                server.update_appointment(ids[7], status="cancelled")
                output, seconds = reminders_sync()
                print(f"500 appointments: the next sync {seconds:.1f} s")
                assert "1 canceled" in output
                assert visit(session, ids[7]).status == "canceled"
                assert {r.status for r in reminders_of(session, visit(session, ids[7]))} == {"canceled"}
                assert {r.status for r in reminders_of(session, visit(session, ids[8]))} == {"planned"}
        finally:
            engine.dispose()
