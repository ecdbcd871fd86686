"""Texts of a clinic with several locations: each goes from its location's number, in its
location's words (name, address, phone, preparation), at the patient's own hours; the numbers of
several locations send side by side, each at its own pace. Through the real twilio library and
the fake Twilio server."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import update

from reminders.channels.local_outbox import read_outbox
from reminders.channels.twilio import client as twilio_client
from reminders.db import session_factory
from reminders.locations import save_location
from reminders.models import Appointment
from reminders.pacing import LocalBucket, Pacer, rate_for
from reminders.pipeline import run_pass
from reminders.sending import Sender
from tests.conftest import at, both_databases
from tests.fixtures.channels import TWILIO_TEST_FROM
from tests.helpers import book, outbox
from tests.processes import one_text_templates

settings = both_databases()

VISIT = "2026-12-10T14:30:00-05:00"  # 1:30 PM in Austin, 12:30 PM in Denver
DUE = "2026-12-09T14:30:00-05:00"  # its first-visit 24 h reminder is due
AUSTIN_FROM, DENVER_FROM = "+15125550199", "+17205550199"
REMINDER = ("{{ clinic.name }}, {{ clinic.address }}, {{ clinic.phone }}: your visit is {{ visit.time }}, "
            "arrive by {{ visit.arrive_at }}. {{ 'Rideshare home is fine.' if prep.rideshare_allowed "
            "else 'An adult must drive you home.' }}\n")


def templates(tmp_path):
    folder = one_text_templates(tmp_path / "templates")
    (folder / "first_induction_24h.sms.j2").write_text(REMINDER)
    return folder


@pytest.fixture
def sms_settings(settings, configure, twilio_settings, tmp_path):
    return configure(DATABASE_URL=settings.database_url, TEMPLATES_DIR=templates(tmp_path), **twilio_settings)


def add_locations(session):
    austin = save_location(session, {"code": "austin", "name": "Austin Ketamine Center",
                                     "address": "100 Congress Ave, Austin", "phone": "+15125550100",
                                     "timezone": "America/Chicago", "sender": AUSTIN_FROM,
                                     "arrive_minutes_before": "30", "rideshare_allowed": "yes"})
    denver = save_location(session, {"code": "denver", "name": "Denver Infusions",
                                     "address": "1600 Glenarm Pl, Denver", "phone": "+17205550100",
                                     "timezone": "America/Denver", "sender": DENVER_FROM})
    # A location that shares the clinic's number.
    boulder = save_location(session, {"code": "boulder", "name": "Boulder Annex", "address": "1 Pearl St, Boulder",
                                      "phone": "+13035550100", "timezone": "America/Denver"})
    session.commit()
    return {"austin": austin.id, "denver": denver.id, "boulder": boulder.id}


def book_at(session, location_id, *, patient, phone, zone, starts_at=VISIT, welcomed=True) -> Appointment:
    visit = book(session, starts_at=starts_at, patient=patient, appointment=f"visit-{patient}", phone=phone,
                 zone=zone, welcomed=welcomed)
    visit.location_id = location_id
    session.commit()
    return visit


def texts_to(fake_twilio, number) -> list[dict]:
    return [m for m in fake_twilio.messages if m["to"] == number]


def reminder_row(session, appointment_id):
    return next(r for r in outbox(session, rule="first_induction_24h") if r.appointment_id == appointment_id)


def test_each_location_texts_from_its_own_number_in_its_own_words(sms_settings, session, fake_twilio):
    where = add_locations(session)
    austin = book_at(session, where["austin"], patient="pa", phone="+12025550001", zone="America/Chicago")
    denver = book_at(session, where["denver"], patient="pd", phone="+12025550002", zone="America/Denver")
    boulder = book_at(session, where["boulder"], patient="pb", phone="+12025550003", zone="America/Denver")
    main = book_at(session, None, patient="pm", phone="+12025550004", zone="America/New_York")

    run_pass(sms_settings, at(DUE))

    [to_austin] = texts_to(fake_twilio, "+12025550001")
    assert to_austin["from_"] == AUSTIN_FROM
    assert to_austin["body"].startswith("Austin Ketamine Center, 100 Congress Ave, Austin, +15125550100: "
                                        "your visit is 1:30 PM, arrive by 1:00 PM. Rideshare home is fine.")
    [to_denver] = texts_to(fake_twilio, "+12025550002")
    assert to_denver["from_"] == DENVER_FROM
    assert to_denver["body"].startswith("Denver Infusions, 1600 Glenarm Pl, Denver, +17205550100: "
                                        "your visit is 12:30 PM, arrive by 12:15 PM. An adult must drive you home.")
    [to_boulder] = texts_to(fake_twilio, "+12025550003")
    assert to_boulder["from_"] == TWILIO_TEST_FROM and to_boulder["body"].startswith("Boulder Annex, 1 Pearl St")
    [to_main] = texts_to(fake_twilio, "+12025550004")
    assert to_main["from_"] == TWILIO_TEST_FROM
    assert to_main["body"].startswith(f"{sms_settings.clinic_name}, {sms_settings.clinic_address}, ")

    rows = {visit.id: reminder_row(session, visit.id) for visit in (austin, denver, boulder, main)}
    assert {visit_id: (row.status, row.location_id, row.from_address) for visit_id, row in rows.items()} == {
        austin.id: ("sent", where["austin"], AUSTIN_FROM), denver.id: ("sent", where["denver"], DENVER_FROM),
        boulder.id: ("sent", where["boulder"], TWILIO_TEST_FROM), main.id: ("sent", None, TWILIO_TEST_FROM)}


def test_a_new_patients_welcome_goes_from_their_locations_number_before_the_reminder(sms_settings, session,
                                                                                      fake_twilio):
    where = add_locations(session)
    book_at(session, where["denver"], patient="pd", phone="+12025550002", zone="America/Denver", welcomed=False)
    run_pass(sms_settings, at(DUE))
    texts = texts_to(fake_twilio, "+12025550002")
    assert [m["from_"] for m in texts] == [DENVER_FROM, DENVER_FROM]
    assert "Msg & data rates may apply" in texts[0]["body"]
    welcome = outbox(session, rule="welcome")[0]
    assert (welcome.location_id, welcome.from_address) == (where["denver"], DENVER_FROM)


def test_a_visit_moved_to_another_location_after_planning_texts_from_the_new_one(sms_settings, session,
                                                                                fake_twilio):
    where = add_locations(session)
    visit = book_at(session, where["austin"], patient="pa", phone="+12025550001", zone="America/Chicago")
    run_pass(sms_settings, at(DUE) - timedelta(days=3))  # planned at Austin
    assert reminder_row(session, visit.id).location_id == where["austin"]
    session.execute(update(Appointment).where(Appointment.id == visit.id).values(location_id=where["denver"]))
    session.commit()

    run_pass(sms_settings, at(DUE))
    [text] = texts_to(fake_twilio, "+12025550001")
    assert text["from_"] == DENVER_FROM and text["body"].startswith("Denver Infusions")
    row = reminder_row(session, visit.id)
    assert (row.location_id, row.from_address) == (where["denver"], DENVER_FROM)


def test_a_clinic_without_locations_texts_from_its_number_as_before(sms_settings, session, fake_twilio):
    visit = book(session, starts_at=VISIT, phone="+12025550004")
    assert run_pass(sms_settings, at(DUE))["sent"] == 1
    [text] = fake_twilio.messages
    assert text["from_"] == TWILIO_TEST_FROM and text["body"].startswith(sms_settings.clinic_name)
    row = reminder_row(session, visit.id)
    assert (row.location_id, row.from_address) == (None, TWILIO_TEST_FROM)


def test_quiet_hours_are_the_patients_own_wherever_their_location_is(sms_settings, session, fake_twilio):
    where = add_locations(session)
    # 7:30 AM in Los Angeles, 9:30 AM at the Austin location: the patient's quiet hours hold it.
    book_at(session, where["austin"], patient="pa", phone="+12025550001", zone="America/Los_Angeles",
            starts_at="2026-12-10T07:30:00-08:00")
    run_pass(sms_settings, at("2026-12-09T07:30:00-08:00"))
    assert fake_twilio.messages == []
    run_pass(sms_settings, at("2026-12-09T08:00:00-08:00"))
    [text] = fake_twilio.messages
    assert text["from_"] == AUSTIN_FROM and "your visit is 7:30 AM" in text["body"]  # in the patient's zone


def test_the_local_outbox_shows_the_number_each_text_would_have_gone_from(settings, configure, session, tmp_path):
    local = configure(DATABASE_URL=settings.database_url, TEMPLATES_DIR=templates(tmp_path))
    where = add_locations(session)
    book_at(session, where["austin"], patient="pa", phone="+12025550001", zone="America/Chicago")
    book_at(session, None, patient="pm", phone="+12025550004", zone="America/New_York")
    run_pass(local, at(DUE))
    lines = {line["to"]: line for line in read_outbox(local.effective_outbox_dir)}
    assert lines["+12025550001"]["from"] == AUSTIN_FROM
    assert lines["+12025550001"]["body"].startswith("Austin Ketamine Center")
    assert lines["+12025550004"]["from"] == ""  # no TWILIO_FROM set
    assert {r.from_address for r in outbox(session, rule="first_induction_24h")} == {AUSTIN_FROM, ""}


class Clock:
    def __init__(self):
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_two_numbers_send_a_backlog_side_by_side_each_at_its_own_pace(pg_settings, configure, twilio_settings,
                                                                     fake_twilio, tmp_path, monkeypatch):
    sms = configure(DATABASE_URL=pg_settings.database_url, TEMPLATES_DIR=templates(tmp_path), **twilio_settings)
    sessions = session_factory(sms.effective_database_url)
    with sessions() as session:
        austin = save_location(session, {"code": "austin", "name": "Austin", "sender": AUSTIN_FROM,
                                         "sms_per_second": "10"}).id
        denver = save_location(session, {"code": "denver", "name": "Denver", "sender": DENVER_FROM,
                                         "sms_per_second": "10"}).id
        session.commit()
        for n in range(10):
            book_at(session, (austin, denver)[n % 2], patient=f"p{n}", phone=f"+1202555{n:04d}",
                    zone="America/New_York")
    # Both numbers' pacers on one clock that moves only when both wait for their next slot: sent
    # one number after the other, the first to wait would wait for the other in vain.
    clock, waits, rates = Clock(), [], {}
    both_waiting = threading.Barrier(2, action=lambda: setattr(clock, "now", clock.now + max(waits)), timeout=5)
    bucket = LocalBucket(clock=clock)

    def wait(seconds: float) -> None:
        waits.append(seconds)
        both_waiting.wait()
        waits.clear()

    def pacer(settings, sender):
        rates[sender] = rate_for(settings, sender)
        return Pacer(bucket, rates[sender], sender, sleep=wait)

    monkeypatch.setattr(twilio_client, "pacer_for", pacer)
    outcomes = run_pass(sms, at(DUE), sessions=sessions, channels={"sms": twilio_client.TwilioMessaging(sms)})

    assert outcomes["sent"] == 10 and not both_waiting.broken
    assert Counter(m["from_"] for m in fake_twilio.messages) == {AUSTIN_FROM: 5, DENVER_FROM: 5}
    assert rates[AUSTIN_FROM] == rates[DENVER_FROM] == 10.0
    # Five texts a number at 10 a second: the last went 0.4 s after the first, for both numbers.
    assert clock.now - 1_000.0 == pytest.approx(0.4)


def test_a_locations_own_number_is_paced_at_its_own_rate_else_at_its_kinds(sms_settings, configure, session):
    # SMS_PER_SECOND is the pace of TWILIO_FROM (here a Messaging Service): not of a location's long code.
    fast = configure(DATABASE_URL=sms_settings.database_url, TWILIO_FROM="MG" + "0" * 32, SMS_PER_SECOND="100")
    where = add_locations(session)
    save_location(session, {"sms_per_second": "10"}, code="denver")
    session.commit()
    sender = Sender(session_factory(fast.effective_database_url), fast,
                    {"sms": twilio_client.TwilioMessaging(fast)})
    locations = sender._book(session)
    pace = {code: sender._channels_at(locations, where[code])["sms"]._pacer.rate for code in where}
    assert pace == {"austin": 1.0, "denver": 10.0, "boulder": 100.0}


class RecordingCelery:
    """Takes tasks as a broker would, and remembers them."""

    def __init__(self):
        self.tasks: list[list[int]] = []

    def send_task(self, name, args, **route):
        self.tasks.append(args[0])


def test_the_workers_get_each_numbers_rows_in_tasks_of_their_own_the_numbers_taking_turns(sms_settings, session,
                                                                                        sessions, monkeypatch):
    from reminders import dispatch
    from reminders.pipeline import due_ids

    where = add_locations(session)
    visits = {}
    for n in range(6):
        code = ("austin", "denver")[n // 3]  # Austin's three rows first, then Denver's
        visits[book_at(session, where[code], patient=f"p{n}", phone=f"+1202555{n:04d}", zone="America/Chicago").id] = code
    run_pass(sms_settings, at(DUE) - timedelta(days=3))  # planned only
    ids = due_ids(session, at(DUE))  # each visit's 72 h and 24 h reminders, queued
    session.commit()
    monkeypatch.setattr(dispatch, "BATCH_SIZE", 2)
    app = RecordingCelery()
    handed = dispatch.CeleryDispatcher(app, sessions, dispatch.in_process(sms_settings, sessions)).hand_off(ids, at(DUE))

    assert handed == {"queued": 12}
    by_id = {r.id: visits[r.appointment_id] for r in outbox(session) if r.id in ids}
    assert [[by_id[i] for i in task] for task in app.tasks] == [["austin", "austin"], ["denver", "denver"]] * 3
