"""HL7 v2 scheduling messages over MLLP, checked from outside.

`reminders hl7 listen --port N` runs as a subprocess with the environment a clinic sets
(tests/processes.py `clinic_environment`) on a PostgreSQL schema of its own. Real SIU messages go to
it over loopback through python-hl7's asyncio MLLP client; every message must be answered with an
ACK whose MSA-2 is its MSH-10. What was stored is read from the database, and `reminders tick`
(another process) plans or cancels the reminders as a clinic's scheduler would.
"""
from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import hl7
import pytest
from hl7.mllp import open_hl7_connection
from sqlalchemy import create_engine, text

from tests.fakes.smtp_server import FakeSMTP, free_port
from tests.fakes.twilio_server import FakeTwilio
from tests.processes import HOST, Process, clinic_environment, command, postgres_schema, run_cli, utcnow

pytestmark = pytest.mark.postgres

# The command docker-compose.yml runs (tests/test_deployment.py holds the two together).
HL7_COMMAND = ("reminders", "hl7", "listen", "--host", "{host}", "--port", "{port}")
CLINIC_ZONE = ZoneInfo("America/Chicago")
TYPES = "KETIND=induction,KETMNT=maintenance"
ACK_WAIT = 60.0  # a bound on a hang, not a pace
PHONE = "+13125550143"


# -- the listener -----------------------------------------------------------------------------
@dataclass
class Feed:
    port: int
    env: dict[str, str]
    engine: object
    process: Process

    def send(self, *messages: str) -> list["Ack"]:
        """The messages over one MLLP connection, in order; the ACK of each."""
        return asyncio.run(_exchange(self.port, [m.encode("utf-8") for m in messages]))

    def send_bytes(self, *blocks: bytes) -> list["Ack"]:
        return asyncio.run(_exchange(self.port, list(blocks)))

    def tick(self) -> dict:
        out = run_cli(self.env, "tick", "--now", utcnow().isoformat())
        return json.loads(out.strip().splitlines()[-1])

    def visit(self, external_id: str) -> dict | None:
        with self.engine.connect() as connection:
            row = connection.execute(text(
                "SELECT a.id, a.kind, a.starts_at, a.duration_minutes, a.location, a.status, p.external_id AS patient "
                "FROM appointments a JOIN patients p ON p.id = a.patient_id WHERE a.external_id = :id"),
                {"id": external_id}).first()
        return dict(row._mapping) if row else None

    def patient(self, external_id: str) -> dict | None:
        with self.engine.connect() as connection:
            row = connection.execute(text(
                "SELECT first_name, last_name, phone, email, timezone, language FROM patients WHERE external_id = :id"),
                {"id": external_id}).first()
        return dict(row._mapping) if row else None

    def reminders(self, visit_external_id: str) -> list[dict]:
        with self.engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT o.rule, o.channel, o.status, o.due_at FROM outbox o JOIN appointments a ON a.id = o.appointment_id "
                "WHERE a.external_id = :id ORDER BY o.id"), {"id": visit_external_id})
            return [dict(row._mapping) for row in rows]


@dataclass
class Ack:
    raw: str
    code: str  # MSA-1
    control_id: str  # MSA-2
    text: str  # MSA-3
    error: str  # ERR-3.1
    location: str  # ERR-2.1 and .3, "PID-13"
    message_type: str  # MSH-9 of the ACK


async def _exchange(port: int, blocks: list[bytes]) -> list[Ack]:
    reader, writer = await open_hl7_connection(HOST, port, encoding="utf-8")
    acks = []
    try:
        for block in blocks:
            writer.writeblock(block)
            await writer.drain()
            message = await asyncio.wait_for(reader.readmessage(), ACK_WAIT)
            acks.append(_ack(message))
    finally:
        writer.close()
        await writer.wait_closed()
    return acks


def _field(message: hl7.Message, segment: str, field: int, comp: int = 1) -> str:
    try:
        return str(message.extract_field(segment, 1, field, 1, comp))
    except (KeyError, IndexError):
        return ""


def _ack(message: hl7.Message) -> Ack:
    where = _field(message, "ERR", 2, 1)
    if where:
        where = f"{where}-{_field(message, 'ERR', 2, 3)}"
    return Ack(str(message), _field(message, "MSA", 1), _field(message, "MSA", 2), _field(message, "MSA", 3),
               _field(message, "ERR", 3, 1), where, f"{_field(message, 'MSH', 9, 1)}^{_field(message, 'MSH', 9, 2)}")


@pytest.fixture(scope="module")
def feed(tmp_path_factory):
    base = tmp_path_factory.mktemp("hl7")
    with postgres_schema() as database_url, FakeTwilio() as twilio, FakeSMTP() as smtp:
        env = clinic_environment(base, database_url, "", f"http://{HOST}:9", twilio, smtp)
        env.update({"HL7_APPOINTMENT_TYPES": TYPES, "CLINIC_TIMEZONE": CLINIC_ZONE.key})
        run_cli(env, "init")
        port = free_port()
        process = Process("hl7", command(HL7_COMMAND, host=HOST, port=port), env, base / "hl7.log").start()
        engine = create_engine(database_url)
        try:
            process.wait_for_log("HL7 v2 listener (MLLP) on")
            yield Feed(port, env, engine, process)
        except BaseException:
            print(process.log()[-20000:])
            raise
        finally:
            process.stop()
            engine.dispose()


# -- messages -----------------------------------------------------------------------------------
def _segment(name: str, fields: dict[int, str]) -> str:
    values = [""] * (max(fields) + 1)
    for number, value in fields.items():
        values[number] = value
    return "|".join([name, *values[1:]])


def _ts(moment: datetime, offset: bool = True) -> str:
    local = moment.astimezone(CLINIC_ZONE)
    return local.strftime("%Y%m%d%H%M%S%z" if offset else "%Y%m%d%H%M%S")


def siu(trigger: str, control_id: str, visit: str, patient: str, *, start: str | None = None,
        kind: str = "KETMNT", duration: str = "45", phone: str | None = "^PRN^CP^^1^312^5550143",
        name: str = "Rivera^Ana", location: str = "^^^Downtown", segments: tuple[str, ...] = ("SCH", "PID"),
        message_type: str = "SIU", newline: str = "\r") -> str:
    lines = [
        f"MSH|^~\\&|EHR|CLINIC|REMINDERS|CLINIC|{_ts(utcnow())}||{message_type}^{trigger}^{message_type}_{trigger}"
        f"|{control_id}|P|2.5.1",
    ]
    if "SCH" in segments:
        lines.append(_segment("SCH", {1: f"{visit}^EHR", 2: f"{visit}^EHR", 8: f"{kind}^Infusion", 25: "Booked"}))
    if "PID" in segments:
        pid = {1: "1", 3: f"{patient}^^^EHR^MR", 5: name, 7: "19800101", 8: "F", 15: "eng"}
        if phone is not None:
            pid[13] = phone
        lines.append(_segment("PID", pid))
    lines += ["PV1|1|O", "RGS|1"]
    ais = {1: "1", 3: f"{kind}^Ketamine infusion"}
    if start:
        ais.update({4: start, 7: duration, 8: "min"})
    lines += [_segment("AIS", ais), _segment("AIL", {1: "1", 3: location}), "AIP|1||1234^Smith^John|ATT"]
    return newline.join(lines) + newline


def ids(prefix: str) -> tuple[str, str, str]:
    """A patient, a visit and a control-ID stem of the test's own (the listener is shared)."""
    stem = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return f"mrn-{stem}", f"appt-{stem}", stem


def in_days(days: int, hour: int = 14, minute: int = 30) -> datetime:
    """A visit `days` ahead at a clock time in the clinic's zone, as an aware UTC instant."""
    local = (utcnow().astimezone(CLINIC_ZONE) + timedelta(days=days)).replace(
        hour=hour, minute=minute, second=0, microsecond=0)
    return local.astimezone(timezone.utc)


def book(feed: Feed, prefix: str, start: datetime) -> tuple[str, str]:
    patient, visit, stem = ids(prefix)
    [ack] = feed.send(siu("S12", f"{stem}-book", visit, patient, start=_ts(start)))
    assert (ack.code, ack.control_id) == ("AA", f"{stem}-book"), ack.raw
    return patient, visit


def pending(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row["status"] in ("planned", "queued")]


# -- bookings ------------------------------------------------------------------------------------
def test_an_s12_books_a_visit_whose_reminders_a_tick_plans(feed):
    patient, visit, stem = ids("book")
    start = in_days(10)
    [ack] = feed.send(siu("S12", f"{stem}-1", visit, patient, start=_ts(start)))

    assert ack.code == "AA", ack.raw
    assert ack.control_id == f"{stem}-1"
    assert ack.message_type == "ACK^S12"
    stored = feed.visit(visit)
    assert stored["patient"] == patient and stored["status"] == "scheduled"
    assert stored["kind"] == "maintenance"  # KETMNT through HL7_APPOINTMENT_TYPES
    assert stored["starts_at"] == start and stored["duration_minutes"] == 45 and stored["location"] == "Downtown"
    assert feed.patient(patient) == {"first_name": "Ana", "last_name": "Rivera", "phone": PHONE, "email": None,
                                     "timezone": CLINIC_ZONE.key, "language": "en"}

    feed.tick()
    rules = {row["rule"] for row in pending(feed.reminders(visit))}
    assert {"maintenance_7d", "maintenance_24h"} <= rules, feed.reminders(visit)

    # The same message again (a sender that did not see the ACK) changes nothing.
    [again] = feed.send(siu("S12", f"{stem}-1", visit, patient, start=_ts(start)))
    assert again.code == "AA" and "unchanged" in again.text


def test_an_s15_over_mllp_cancels_a_visit_and_is_acked(feed):
    patient, visit = book(feed, "cancel", in_days(9))
    feed.tick()
    assert pending(feed.reminders(visit)), "reminders planned before the cancel"

    [ack] = feed.send(siu("S15", "cancel-msg-0001", visit, patient))

    assert (ack.code, ack.control_id, ack.message_type) == ("AA", "cancel-msg-0001", "ACK^S15"), ack.raw
    assert feed.visit(visit)["status"] == "canceled"
    feed.tick()
    rows = feed.reminders(visit)
    assert rows and not pending(rows), rows
    assert {row["status"] for row in rows} == {"canceled"}


def test_s13_moves_a_visit_and_its_reminders_and_s14_changes_it(feed):
    patient, visit = book(feed, "move", in_days(8))
    feed.tick()
    moved = in_days(12, hour=9, minute=15)

    # A time without an offset is the clinic's (CLINIC_TIMEZONE); this sender ends lines with \n.
    [ack] = feed.send(siu("S13", f"{visit}-s13", visit, patient, start=_ts(moved, offset=False), newline="\n"))
    assert (ack.code, ack.control_id) == ("AA", f"{visit}-s13"), ack.raw
    assert feed.visit(visit)["starts_at"] == moved
    feed.tick()
    day_before = [row for row in pending(feed.reminders(visit)) if row["rule"] == "maintenance_24h"]
    assert [row["due_at"] for row in day_before] == [moved - timedelta(hours=24)], feed.reminders(visit)

    # S14: now an induction visit of 90 minutes uptown; no phone in PID-13 keeps the stored one.
    [ack] = feed.send(siu("S14", f"{visit}-s14", visit, patient, start=_ts(moved), kind="KETIND", duration="90",
                          location="Infusion^^^Uptown", phone=None))
    assert (ack.code, ack.control_id) == ("AA", f"{visit}-s14"), ack.raw
    stored = feed.visit(visit)
    assert (stored["kind"], stored["duration_minutes"], stored["location"], stored["starts_at"]) == (
        "induction", 90, "Uptown", moved)
    assert feed.patient(patient)["phone"] == PHONE
    feed.tick()
    rules = {row["rule"] for row in pending(feed.reminders(visit))}
    assert rules and not any(rule.startswith("maintenance") for rule in rules), rules


def test_an_s26_marks_the_visit_a_no_show(feed):
    patient, visit = book(feed, "noshow", in_days(3))
    [ack] = feed.send(siu("S26", f"{visit}-s26", visit, patient))
    assert (ack.code, ack.control_id, ack.message_type) == ("AA", f"{visit}-s26", "ACK^S26"), ack.raw
    assert feed.visit(visit)["status"] == "no_show"
    feed.tick()
    assert not [row for row in pending(feed.reminders(visit)) if row["rule"].startswith("maintenance")]


# -- refusals ------------------------------------------------------------------------------------
def test_what_cannot_be_applied_is_answered_ae_or_ar_with_the_reason_and_nothing_stored_is_lost(feed):
    start = in_days(11)
    patient, visit = book(feed, "kept", start)
    feed.tick()
    planned_before = pending(feed.reminders(visit))
    stranger, new_visit, stem = ids("refused")

    cases = [
        # (message, ACK code, HL7 error code, where, words in the reason)
        (b"hello, is this the reminders service?", "AR", "100", "MSH-", "MSH"),
        (siu("A08", f"{stem}-adt", visit, patient, message_type="ADT").encode(), "AR", "200", "MSH-9", "ADT^A08"),
        (siu("S17", f"{stem}-s17", visit, patient, start=_ts(start)).encode(), "AR", "201", "MSH-9", "SIU^S17"),
        (siu("S12", f"{stem}-nosch", visit, patient, start=_ts(start), segments=("PID",)).encode(),
         "AR", "100", "SCH-", "no SCH segment"),
        (siu("S15", f"{stem}-who", visit, stranger).encode(), "AE", "204", "PID-3", "not known"),
        (siu("S15", f"{stem}-what", new_visit, patient).encode(), "AE", "204", "SCH-2", "not known"),
        (siu("S12", f"{stem}-nophone", new_visit, stranger, start=_ts(start), phone=None).encode(),
         "AE", "101", "PID-13", "no phone number"),
        (siu("S12", f"{stem}-badphone", new_visit, patient, start=_ts(start), phone="12").encode(),
         "AE", "102", "PID-13", "not a"),
        (siu("S12", f"{stem}-xray", new_visit, patient, start=_ts(start), kind="XRAY").encode(),
         "AE", "103", "AIS-3", "HL7_APPOINTMENT_TYPES"),
        (siu("S13", f"{stem}-badtime", visit, patient, start="2026-12-10 09:30").encode(), "AE", "102", "AIS-4",
         "not an HL7 date and time"),
        (siu("S13", f"{stem}-past", visit, patient, start=_ts(start - timedelta(days=4000))).encode(),
         "AE", "102", "AIS-4", "check the year"),
    ]
    acks = feed.send_bytes(*(message for message, *_ in cases))

    for (message, code, error, where, words), ack in zip(cases, acks):
        assert ack.code == code, (message[:60], ack.raw)
        expected_id = "" if message.startswith(b"hello") else hl7.parse(message.decode()).extract_field("MSH", 1, 10)
        assert ack.control_id == expected_id, ack.raw
        assert ack.error == error, ack.raw
        assert ack.location.startswith(where), ack.raw
        assert words in ack.text, ack.raw
    # The reason is readable by a person and says where to look.
    by_id = {ack.control_id: ack for ack in acks}
    assert by_id[f"{stem}-who"].text == (f"patient '{stranger}' (PID-3) is not known here; "
                                         "there is no appointment of theirs to cancel")

    # Nothing stored was changed or lost; the same connection took the next message.
    assert feed.patient(stranger) is None and feed.visit(new_visit) is None
    assert feed.patient(patient)["phone"] == PHONE
    stored = feed.visit(visit)
    assert (stored["status"], stored["starts_at"], stored["kind"]) == ("scheduled", start, "maintenance")
    feed.tick()
    assert pending(feed.reminders(visit)) == planned_before
    assert feed.process.running


def test_the_listener_logs_no_patient_details(feed):
    patient, visit, stem = ids("logs")
    feed.send(siu("S12", f"{stem}-ok", visit, patient, start=_ts(in_days(5)), name="Quixotic^Zebulon",
                  phone="^PRN^CP^^1^312^5550199~^NET^Internet^zebulon@example.org"),
              siu("S12", f"{stem}-bad", visit, patient, start=_ts(in_days(5)), name="Quixotic^Zebulon",
                  phone="^PRN^CP^^^^^^^^^3125550"))
    # the acknowledgement can reach us a moment before the listener's log line is written
    feed.process.wait_for_log(f"{stem}-ok: AA")
    feed.process.wait_for_log(f"{stem}-bad: AE")
    log = feed.process.log()
    for detail in ("Quixotic", "Zebulon", "5550199", "zebulon@", "3125550"):
        assert detail not in log, detail


def test_an_older_v2_3_message_in_latin_1_with_a_local_summer_time_books_the_visit(feed):
    """No AIS: the start in SCH-11.4 (no offset: the clinic's zone, here daylight time), the type in
    SCH-8, the duration in SCH-9/10 (hours), a formatted number in XTN-1, a name in Latin-1."""
    patient, visit, stem = ids("v23")
    local = (utcnow().astimezone(CLINIC_ZONE) + timedelta(days=300)).replace(month=7, day=15, hour=9, minute=30,
                                                                           second=0, microsecond=0)
    if local < utcnow().astimezone(CLINIC_ZONE):
        local = local.replace(year=local.year + 1)
    message = "\r".join([
        f"MSH|^~\\&|OLDPM|CLINIC|||{_ts(utcnow())}||SIU^S12|{stem}|P|2.3",
        _segment("SCH", {1: visit, 7: "Ketamine", 8: "KETIND", 9: "1.5", 10: "HR",
                         11: f"^^^{local:%Y%m%d%H%M}", 25: "BOOKED"}),
        _segment("PID", {1: "1", 2: patient, 5: "Núñez^José", 13: "(312) 555-0143"}),
        "PV1|1|O|Infusion Suite^^^Lakeview",
    ]) + "\r"
    [ack] = feed.send_bytes(message.encode("latin-1"))

    assert (ack.code, ack.control_id, ack.message_type) == ("AA", stem, "ACK^S12"), ack.raw
    stored = feed.visit(visit)
    assert stored["starts_at"] == local.astimezone(timezone.utc)
    assert local.utcoffset() == timedelta(hours=-5)  # CDT, not the CST of a winter message
    assert (stored["kind"], stored["duration_minutes"], stored["location"]) == ("induction", 90, "Lakeview")
    assert feed.patient(patient)["first_name"] == "José" and feed.patient(patient)["phone"] == PHONE
