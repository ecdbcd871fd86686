"""`reminders import FILE.csv`: good rows taken, bad rows reported by line, re-imports idempotent."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from reminders.cli import main
from reminders.pipeline import run_pass
from tests.conftest import at
from tests.helpers import outbox, sent

HEADER = "external_id,patient_external_id,first_name,last_name,phone,email,timezone,preferred_channel,kind,starts_at,duration_minutes,location,status"
GOOD = [
    "a1,p1,Maya,Lopez,+12025550143,maya@example.org,America/New_York,both,induction,2026-12-10T10:00:00-05:00,50,Suite 200,scheduled",
    "a2,p2,Sam,Okafor,(202) 555-0178,,America/Chicago,sms,maintenance,2026-12-11T09:00:00-06:00,40,Suite 200,",
]


def write(tmp_path, *rows, header=HEADER, name="visits.csv"):
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def run_import(path, *args):
    result = CliRunner().invoke(main, ["import", str(path), *args])
    return result.exit_code, result.output


def test_good_file_is_imported_and_reported(settings, tmp_path, session):
    code, output = run_import(write(tmp_path, *GOOD))
    assert code == 0, output
    assert "2 rows: 2 created, 0 updated, 0 unchanged, 0 rejected" in output
    run_pass(settings, at("2026-12-09T10:00:00-05:00"))
    assert ("first_induction_24h", "sms") in sent(session)
    assert outbox(session, status="sent", channel="sms")[0].to_address == "+12025550143"


def test_phone_numbers_are_stored_in_e164(settings, tmp_path, session):
    run_import(write(tmp_path, *GOOD))
    from reminders.models import Patient
    from sqlalchemy import select
    assert session.scalar(select(Patient.phone).where(Patient.external_id == "p2")) == "+12025550178"


def test_reimporting_the_same_file_changes_nothing(settings, tmp_path, session):
    path = write(tmp_path, *GOOD)
    run_import(path)
    run_pass(settings, at("2026-12-07T10:00:00-05:00"))
    before = [(r.id, r.status, r.due_at, r.updated_at) for r in outbox(session)]
    code, output = run_import(path)
    assert code == 0 and "0 created, 0 updated, 2 unchanged" in output
    assert run_pass(settings, at("2026-12-07T10:00:00-05:00"))["planned"] == 0
    assert [(r.id, r.status, r.due_at, r.updated_at) for r in outbox(session)] == before


def test_changed_start_reschedules_and_canceled_status_cancels(settings, tmp_path, session):
    run_import(write(tmp_path, *GOOD))
    run_pass(settings, at("2026-12-01T10:00:00-05:00"))  # plans both visits; nothing due yet
    moved = GOOD[0].replace("2026-12-10T10:00:00-05:00", "2026-12-15T10:00:00-05:00")
    canceled = GOOD[1].rstrip(",") + ",canceled"
    code, output = run_import(write(tmp_path, moved, canceled, name="changes.csv"))
    assert code == 0 and "2 updated" in output
    run_pass(settings, at("2026-12-09T10:00:00-05:00"))  # the old 24 h time of a1
    assert sent(session) == []
    run_pass(settings, at("2026-12-14T10:00:00-05:00"))
    assert sorted(sent(session)) == [("first_induction_24h", "sms"), ("first_induction_72h", "email")]
    assert {r.status for r in outbox(session) if r.appointment.external_id == "a2"} == {"canceled"}


@pytest.mark.parametrize("row, reason", [
    ("a3,p3,Lee,Park,+12025550111,,America/New_York,sms,booster,2026-12-10T10:00:00-05:00,50,,", "kind 'booster' must be induction or maintenance"),
    ("a3,p3,Lee,Park,12345,,America/New_York,sms,induction,2026-12-10T10:00:00-05:00,50,,", "phone '12345' is not a valid number"),
    ("a3,p3,Lee,Park,call me,,America/New_York,sms,induction,2026-12-10T10:00:00-05:00,50,,", "phone 'call me' is not a phone number"),
    ("a3,p3,Lee,Park,+12025550111,,Mars/Olympus,sms,induction,2026-12-10T10:00:00-05:00,50,,", "timezone 'Mars/Olympus' is not an IANA time zone"),
    ("a3,p3,Lee,Park,+12025550111,,America/New_York,sms,induction,2026-12-10T10:00:00,50,,", "has no UTC offset"),
    ("a3,p3,Lee,Park,+12025550111,,America/New_York,sms,induction,next tuesday,50,,", "is not an ISO-8601 date and time"),
    ("a3,p3,,Park,+12025550111,,America/New_York,sms,induction,2026-12-10T10:00:00-05:00,50,,", "first_name is missing"),
    (",p3,Lee,Park,+12025550111,,America/New_York,sms,induction,2026-12-10T10:00:00-05:00,50,,", "external_id is missing"),
    ("a3,,Lee,Park,+12025550111,,America/New_York,sms,induction,2026-12-10T10:00:00-05:00,50,,", "patient_external_id is missing"),
    ("a3,p3,Lee,Park,,,America/New_York,sms,induction,2026-12-10T10:00:00-05:00,50,,", "phone is missing (preferred_channel is sms)"),
    ("a3,p3,Lee,Park,+12025550111,,America/New_York,email,induction,2026-12-10T10:00:00-05:00,50,,", "email is missing (preferred_channel is email)"),
    ("a3,p3,Lee,Park,+12025550111,not-an-email,America/New_York,both,induction,2026-12-10T10:00:00-05:00,50,,", "email 'not-an-email' is not an email address"),
    ("a3,p3,Lee,Park,+12025550111,,America/New_York,fax,induction,2026-12-10T10:00:00-05:00,50,,", "preferred_channel 'fax' must be sms, email or both"),
    ("a3,p3,Lee,Park,+12025550111,,America/New_York,sms,induction,2026-12-10T10:00:00-05:00,an hour,,", "duration_minutes 'an hour' is not a whole number"),
    ("a3,p3,Lee,Park,+12025550111,,America/New_York,sms,induction,2026-12-10T10:00:00-05:00,50,,postponed", "status 'postponed' must be one of"),
    ("a3,p3,Lee,Park,+12025550111,,America/New_York,sms,induction,2026-12-10T10:00:00-05:00", "has 10 values where the header has 13 columns"),
])
def test_every_bad_row_is_reported_with_its_line_and_the_good_rows_still_go_in(settings, tmp_path, session, row, reason):
    code, output = run_import(write(tmp_path, GOOD[0], row, GOOD[1]))
    assert code == 1
    assert "line 3: rejected" in output and reason in output, output
    assert "2 created" in output and "1 rejected" in output


def test_last_name_and_other_optional_cells_may_be_blank(settings, tmp_path):
    row = "a3,p3,Lee,,+12025550111,,America/New_York,,induction,2026-12-10T10:00:00-05:00,,,"
    code, output = run_import(write(tmp_path, row))
    assert code == 0 and "1 created" in output, output


def test_an_appointment_id_reused_for_another_patient_is_refused(settings, tmp_path):
    stolen = GOOD[1].replace("a2,p2", "a1,p2")
    code, output = run_import(write(tmp_path, GOOD[0], stolen))
    assert code == 1 and "line 3: rejected (a1): appointment 'a1' belongs to another patient" in output


def test_quoted_fields_with_newlines_keep_the_line_numbers_right(settings, tmp_path):
    multi = 'a3,p3,Lee,Park,+12025550111,,America/New_York,sms,induction,2026-12-10T10:00:00-05:00,50,"Suite 200\nSecond floor",'
    bad = "a4,p4,Kim,Ng,+12025550122,,Nowhere/Zone,sms,induction,2026-12-10T10:00:00-05:00,50,,"
    code, output = run_import(write(tmp_path, multi, bad))
    assert code == 1 and "line 4: rejected (a4)" in output


def test_json_report(settings, tmp_path):
    bad = "a3,p3,Lee,Park,12345,,America/New_York,sms,induction,2026-12-10T10:00:00-05:00,50,,"
    code, output = run_import(write(tmp_path, GOOD[0], bad), "--json")
    import json
    report = json.loads(output)
    assert code == 1 and report["created"] == 1 and report["errors"][0]["line"] == 3


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"name,when\nx,y\n", "the header lacks the column(s) external_id"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "not text"),
])
def test_an_unusable_file_exits_2_and_imports_nothing(settings, tmp_path, session, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    code, output = run_import(path)
    assert code == 2 and message in output
    assert outbox(session) == []


def test_a_missing_file_exits_2(settings, tmp_path):
    code, output = run_import(tmp_path / "nope.csv")
    assert code == 2 and "cannot read" in output


def test_excel_style_file_with_bom_and_crlf(settings, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeff" + "\r\n".join([HEADER.upper(), *GOOD]) + "\r\n").encode("utf-8"))
    code, output = run_import(path)
    assert code == 0 and "2 created" in output, output
