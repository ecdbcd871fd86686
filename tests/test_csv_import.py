"""`reminders import FILE.csv`: good rows taken, bad rows reported by line, re-imports idempotent."""
from __future__ import annotations

from zoneinfo import ZoneInfo

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
    # A new patient: the welcome goes first, as its own text.
    # (The 24 h reminder goes as two texts: its following one carries the after-visit cautions.)
    assert sorted(sent(session)) == [("first_induction_24h", "sms"), ("first_induction_24h", "sms"),
                                     ("first_induction_72h", "email"), ("welcome", "sms")]
    assert {r.status for r in outbox(session) if r.appointment and r.appointment.external_id == "a2"} == {"canceled"}


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
    ("a3,p3,Lee,Park,+12025550111,,America/New_York,fax,induction,2026-12-10T10:00:00-05:00,50,,", "preferred_channel 'fax' must be sms, email, both or whatsapp"),
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


# --- At clinic scale: batches, rows the database refuses, stopped imports -------------------------

def make_rows(count: int, *, patients: int = 4, start: str = "2026-12-01T09:00:00-05:00") -> list[str]:
    """count visits for a few patients, a day apart, each patient's in time order."""
    from datetime import timedelta

    first = at(start)
    rows = []
    for n in range(count):
        p = n % patients
        when = (first + timedelta(days=n)).astimezone(ZoneInfo("America/New_York")).isoformat()
        rows.append(f"v{n},pat{p},Pat{p},Lopez,+1202555{p:04d},,America/New_York,sms,induction,{when},50,Suite 200,")
    return rows


def stored_visits(session):
    from sqlalchemy import select

    from reminders.models import Appointment, Patient
    session.expire_all()
    query = (select(Appointment.external_id, Patient.external_id, Appointment.number_in_course, Appointment.status,
                    Appointment.starts_at, Appointment.course_id.is_(None), Appointment.needs_planning)
             .join(Patient, Patient.id == Appointment.patient_id).order_by(Appointment.external_id))
    return [tuple(row) for row in session.execute(query)]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_200_character_name_and_a_year_9999_visit_are_refused_by_line_and_the_good_rows_go_in(
        request, tmp_path, backend):
    if backend == "postgres":
        request.getfixturevalue("pg_settings")
    else:
        request.getfixturevalue("settings")
    long_name = "a3,p3," + "N" * 200 + ",Park,+12025550111,,America/New_York,sms,induction,2026-12-10T10:00:00-05:00,50,,"
    far_future = "a4,p4,Lee,Park,+12025550112,,America/New_York,sms,induction,9999-12-31T23:00:00-05:00,50,,"
    last = "a5,p5,Kim,Ng,+12025550113,,America/New_York,sms,maintenance,2026-12-12T10:00:00-05:00,50,,"
    code, output = run_import(write(tmp_path, GOOD[0], long_name, GOOD[1], far_future, last))
    assert code == 1, output
    assert "line 3: rejected (a3)" in output and "line 5: rejected (a4)" in output, output
    assert "5 rows: 3 created, 0 updated, 0 unchanged, 2 rejected" in output
    from reminders.db import session_factory
    from reminders.config import get_settings
    with session_factory(get_settings().effective_database_url)() as session:
        assert [(v[0], v[-1]) for v in stored_visits(session)] == [("a1", True), ("a2", True), ("a5", True)]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_row_the_database_refuses_costs_no_other_row_of_its_batch(request, backend):
    """A trigger stands in for any refusal the checks before writing do not foresee."""
    from sqlalchemy import text

    from reminders.db import session_factory
    from reminders.intake.csv_import import import_csv_text
    current = request.getfixturevalue("pg_settings" if backend == "postgres" else "settings")
    sessions = session_factory(current.effective_database_url)
    with sessions() as session:
        if backend == "postgres":
            session.execute(text("CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                                 "RAISE EXCEPTION 'poisoned row %', NEW.external_id; END $$ LANGUAGE plpgsql"))
            session.execute(text("CREATE TRIGGER poison BEFORE INSERT ON appointments FOR EACH ROW "
                                 "WHEN (NEW.external_id = 'v13') EXECUTE FUNCTION poison()"))
        else:
            session.execute(text("CREATE TRIGGER poison BEFORE INSERT ON appointments "
                                 "WHEN NEW.external_id = 'v13' BEGIN SELECT RAISE(ABORT, 'poisoned row v13'); END"))
        session.commit()
        report = import_csv_text(session, "\n".join([HEADER, *make_rows(25)]) + "\n", at("2026-11-01T12:00:00Z"),
                                 batch_size=10)
    assert [(row.line, row.external_id) for row in report.rejected] == [(15, "v13")]
    assert "the database refused the row" in report.rejected[0].reasons[0] and "poisoned row" in report.rejected[0].reasons[0]
    assert report.count("created") == 24 and report.exit_code == 1
    with sessions() as session:
        visits = stored_visits(session)
    assert len(visits) == 24 and all(v[-1] for v in visits)  # all marked for planning
    numbers = {}
    for external_id, patient, number, *_ in sorted(visits, key=lambda v: v[4]):
        numbers.setdefault(patient, []).append(number)
    assert all(found == list(range(1, len(found) + 1)) for found in numbers.values())


def test_a_stopped_import_keeps_the_batches_it_committed_and_running_it_again_finishes_it(settings, session):
    from reminders.intake.csv_import import import_csv_text
    text = "\n".join([HEADER, *make_rows(25)]) + "\n"
    batches = []

    def stop_at_the_second_batch(results, lines):
        batches.append(lines)
        if len(batches) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_csv_text(session, text, at("2026-11-01T12:00:00Z"), batch_size=10, on_batch=stop_at_the_second_batch)
    session.rollback()
    assert [v[0] for v in stored_visits(session)] == sorted(f"v{n}" for n in range(10))
    again = import_csv_text(session, text, at("2026-11-01T12:00:00Z"), batch_size=10)
    assert (again.count("unchanged"), again.count("created"), again.count("rejected")) == (10, 15, 0)
    assert len(stored_visits(session)) == 25


def test_reimporting_a_large_file_plans_nothing_new(settings, tmp_path, session):
    rows = make_rows(40, patients=6)
    path = write(tmp_path, *rows)
    code, output = run_import(path)
    assert code == 0 and "40 created" in output
    run_pass(settings, at("2026-11-25T10:00:00-05:00"))
    before = [(r.id, r.status, r.due_at, r.updated_at) for r in outbox(session)]
    assert before and all(not v[-1] for v in stored_visits(session))
    code, output = run_import(path)
    assert code == 0 and "0 created, 0 updated, 40 unchanged" in output
    assert all(not v[-1] for v in stored_visits(session))  # nothing marked for planning
    assert run_pass(settings, at("2026-11-25T10:00:00-05:00"))["planned"] == 0
    assert [(r.id, r.status, r.due_at, r.updated_at) for r in outbox(session)] == before


def test_batches_give_the_same_visits_as_one_row_at_a_time(settings, session):
    """Bookings, a move, a cancel and a patient's new phone across batch boundaries: batched
    writes end where the one-record upserts (the API's path) end."""
    from sqlalchemy import text as sql

    from reminders.intake.csv_file import read_header
    from reminders.intake.csv_import import import_csv_text
    from reminders.intake.csv_rows import RowValidator
    from reminders.intake.upsert import IntakeError, upsert_appointment, upsert_patient
    rows = make_rows(18, patients=3)
    rows.append(rows[4].replace("2026-12-05T09:00:00", "2026-11-30T09:00:00"))  # v4 moves before all others
    rows.append(rows[7].rstrip(",") + ",canceled")  # v7 canceled
    rows.append(rows[2].replace("+12025550002", "+12025550099"))  # pat2's new phone
    rows.append(rows[1].replace("v1,pat1", "v5,pat1"))  # v5 belongs to pat2: refused
    rows.append(rows[0].replace("v0,", "v0b,").replace("2026-12-01T09", "2026-12-01T08"))  # earlier than v0
    now = at("2026-11-01T12:00:00Z")
    text = "\n".join([HEADER, *rows]) + "\n"
    expected = None
    for batch_size in (None, 1, 4, 500):
        session.execute(sql("DELETE FROM appointments"))
        session.execute(sql("DELETE FROM courses"))
        session.execute(sql("DELETE FROM patients"))
        session.commit()
        if batch_size is None:  # the reference: one record at a time
            columns, reader = read_header(text)
            validator = RowValidator(columns, "US")
            for line, cells in enumerate(reader, start=2):
                pending = validator.check(cells, line)
                patient_record, record = pending.records
                nested = session.begin_nested()
                try:
                    patient = upsert_patient(session, patient_record, now).patient
                    upsert_appointment(session, patient, record, now)
                    nested.commit()
                except IntakeError:
                    nested.rollback()
            session.commit()
            expected = numbered(stored_visits(session))
            continue
        report = import_csv_text(session, text, now, batch_size=batch_size)
        assert [row.external_id for row in report.rejected] == ["v5"]
        assert numbered(stored_visits(session)) == expected, batch_size


def numbered(visits):
    """A canceled visit takes no number: what it holds is whatever it had when it was canceled."""
    return [(v[:2] + (None,) + v[3:]) if v[3] == "canceled" else v for v in visits]


def test_optional_columns_may_follow(settings, tmp_path):
    header = HEADER + ",language,condition,medications_to_hold"
    rows = [GOOD[0] + ",es,ptsd,No lamotrigine the morning of", GOOD[1] + ",,,"]
    code, output = run_import(write(tmp_path, *rows, header=header))
    assert code == 0 and "2 created" in output, output


def stored_patient(session, external_id):
    from sqlalchemy import select

    from reminders.models import Patient
    session.expire_all()
    return session.scalar(select(Patient).where(Patient.external_id == external_id))


OPTIONAL_HEADER = HEADER + ",language,condition,medications_to_hold"


def test_language_condition_and_medications_are_stored(settings, tmp_path, session):
    rows = [GOOD[0] + ',ES,PTSD,"No lamotrigine the morning of, half your usual clonazepam"', GOOD[1] + ",,,"]
    code, output = run_import(write(tmp_path, *rows, header=OPTIONAL_HEADER))
    assert code == 0, output
    maya, sam = stored_patient(session, "p1"), stored_patient(session, "p2")
    assert (maya.language, maya.medications_to_hold) == ("es", "No lamotrigine the morning of, half your usual clonazepam")
    assert maya.courses[0].condition == "ptsd"
    assert (sam.language, sam.medications_to_hold, sam.courses[0].condition) == ("en", "", None)
    code, output = run_import(write(tmp_path, *rows, header=OPTIONAL_HEADER))
    assert "0 created, 0 updated, 2 unchanged" in output


def test_a_file_without_the_optional_columns_keeps_what_is_stored(settings, tmp_path, session):
    run_import(write(tmp_path, GOOD[0] + ",es,pain,Skip Adderall that morning", header=OPTIONAL_HEADER))
    code, output = run_import(write(tmp_path, GOOD[0].replace(",50,", ",60,")))
    assert code == 0 and "1 updated" in output, output
    maya = stored_patient(session, "p1")
    assert (maya.language, maya.medications_to_hold, maya.courses[0].condition) == ("es", "Skip Adderall that morning", "pain")


def test_changed_optional_cells_update_and_a_blank_note_clears_it(settings, tmp_path, session):
    run_import(write(tmp_path, GOOD[0] + ",es,pain,Skip Adderall that morning", header=OPTIONAL_HEADER))
    code, output = run_import(write(tmp_path, GOOD[0] + ",en,depression,", header=OPTIONAL_HEADER))
    assert "1 updated" in output, output
    maya = stored_patient(session, "p1")
    assert (maya.language, maya.medications_to_hold, maya.courses[0].condition) == ("en", "", "depression")


@pytest.mark.parametrize("cells, reason", [
    (",fr,,", "language 'fr' must be one of en, es"),
    (",,migraine,", "condition 'migraine' must be one of depression, ptsd, anxiety, pain, other"),
    (",,," + "x" * 501, "medications_to_hold is longer than 500 characters"),
])
def test_a_bad_optional_cell_rejects_its_row_with_the_reason(settings, tmp_path, session, cells, reason):
    code, output = run_import(write(tmp_path, GOOD[0] + cells, GOOD[1] + ",,,", header=OPTIONAL_HEADER))
    assert code == 1 and f"line 2: rejected (a1): {reason}" in output, output
    assert "1 created" in output


def test_an_import_stopped_with_ctrl_c_says_what_is_in_and_running_it_again_finishes(settings, tmp_path, session,
                                                                                    monkeypatch):
    import reminders.intake.csv_import as csv_import
    real_import = csv_import.import_csv_text

    def small_batches_then_ctrl_c(*args, on_batch=None, **kwargs):
        calls = []

        def stop_at_the_second_batch(results, lines):
            calls.append(lines)
            on_batch(results, lines)
            if len(calls) == 2:
                raise KeyboardInterrupt

        return real_import(*args, **{**kwargs, "batch_size": 3}, on_batch=stop_at_the_second_batch)

    path = write(tmp_path, *make_rows(8))
    monkeypatch.setattr(csv_import, "import_csv_text", small_batches_then_ctrl_c)
    code, output = run_import(path)
    assert code == 130 and "stopped: the rows up to line 4 at least are imported" in output, output
    assert len(stored_visits(session)) == 3
    monkeypatch.setattr(csv_import, "import_csv_text", real_import)
    code, output = run_import(path)
    assert code == 0 and "8 rows: 5 created, 0 updated, 3 unchanged, 0 rejected" in output


# --- Quotes that are never closed, and NUL characters: one row refused, never rows merged -----

MAYA = "a1,p1,Maya,Lopez,+12025550143,maya@example.org,America/New_York,both,induction,2026-12-10T10:00:00-05:00,50,Suite 200,scheduled"
SAM = "a2,p2,Sam,Okafor,(202) 555-0178,sam@example.org,America/Chicago,both,induction,2026-12-11T09:00:00-06:00,40,Suite 200,"
LEE = "a3,p3,Lee,Park,+12025550111,,America/New_York,sms,induction,2026-12-12T10:00:00-05:00,50,,"
KIM = "a4,p4,Kim,Ng,+12025550122,kim@example.org,America/New_York,both,maintenance,2026-12-14T10:00:00-05:00,50,,"
PHONES = {"p1": "2025550143", "p2": "2025550178", "p3": "2025550111", "p4": "2025550122"}


def write_bytes(tmp_path, text, name="visits.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def notes(session):
    from sqlalchemy import select

    from reminders.models import Patient
    session.expire_all()
    return {p.external_id: p.medications_to_hold for p in session.scalars(select(Patient))}


def assert_no_note_holds_another_rows_data(session):
    for patient, note in notes(session).items():
        for other, phone in PHONES.items():
            if other != patient:
                assert phone not in note and f"{other}," not in note and "2026-12" not in note, (patient, note)


def test_an_unclosed_quote_rejects_its_row_by_line_and_the_rows_it_swallowed_are_still_imported(
        settings, tmp_path, session):
    swallowing = SAM + ',en,,"Hold lamotrigine the morning of'  # the quote is never closed
    path = write(tmp_path, MAYA + ",en,,", swallowing, LEE + ",en,,", KIM + ",en,,No Adderall", header=OPTIONAL_HEADER)
    code, output = run_import(path)
    assert code == 1, output
    assert ("line 3: rejected (a2): a quoted field opened on line 3 is not closed; "
            "lines 3-5 were read as one field") in output, output
    assert "4 rows: 3 created, 0 updated, 0 unchanged, 1 rejected" in output, output
    assert [v[0] for v in stored_visits(session)] == ["a1", "a3", "a4"]
    assert stored_patient(session, "p2") is None  # Sam's visit is not booked with half a row
    assert stored_patient(session, "p4").medications_to_hold == "No Adderall"
    assert_no_note_holds_another_rows_data(session)
    run_pass(settings, at("2026-12-11T09:00:00-05:00"))  # Kim's maintenance 7 days ahead, the others' 24 h
    bodies = [row.body or "" for row in outbox(session)]
    assert bodies and not any(PHONES["p3"] in body or PHONES["p4"] in body for body in bodies)


def test_the_json_report_counts_the_row_with_the_unclosed_quote_as_rejected(settings, tmp_path):
    import json
    path = write(tmp_path, MAYA + ",en,,", SAM + ',en,,"Hold lamotrigine', LEE + ",en,,", header=OPTIONAL_HEADER)
    code, output = run_import(path, "--json")
    report = json.loads(output)
    assert code == 1 and (report["rows"], report["created"], report["rejected"]) == (3, 2, 1), report
    assert report["errors"][0]["line"] == 3 and "lines 3-4 were read as one field" in report["errors"][0]["reasons"][0]


@pytest.mark.parametrize("rows, message, created", [
    # The quote is closed by the first quote of a later row: that row's own quoted cell is read right again.
    ([MAYA + ",en,,", SAM + ',en,,"Hold lamotrigine', LEE + ",en,,",
      KIM.replace(",50,,", ',50,"Suite 200, second floor",') + ",en,,"],
     "line 3: rejected (a2): a quoted field opened on line 3 is not closed; lines 3-5 were read as one field",
     ["a1", "a3", "a4"]),
    # The quote was opened in a cell before the last: the rest of the line and the rows after are one cell.
    ([MAYA + ",en,,", SAM.replace("Sam,Okafor", '"Sam,Okafor') + ",en,,", LEE + ",en,,", KIM + ",en,,"],
     "line 3: rejected (a2): a quoted field opened on line 3 is not closed; lines 3-5 were read as one field",
     ["a1", "a3", "a4"]),
    # A swallowed row without the optional cells is still a row: its date and phone are where a row has them.
    ([MAYA + ",en,,", SAM + ',en,,"Hold lamotrigine', LEE, KIM + ",en,,"],
     "line 3: rejected (a2): a quoted field opened on line 3 is not closed; lines 3-5 were read as one field",
     ["a1", "a4"]),
    # The row's location is rightly quoted over two lines; the note opened on its second line is not closed.
    ([MAYA + ",en,,", SAM.replace(",Suite 200,", ',"Suite 200\nSecond floor",') + ',en,,"Hold lamotrigine',
      LEE + ",en,,", KIM + ",en,,"],
     "line 3: rejected (a2): a quoted field opened on line 4 is not closed; lines 4-6 were read as one field",
     ["a1", "a3", "a4"]),
])
def test_rows_taken_into_an_unclosed_quote_are_read_again_as_rows(settings, tmp_path, session, rows, message, created):
    code, output = run_import(write(tmp_path, *rows, header=OPTIONAL_HEADER))
    assert code == 1 and message in output, output
    assert [v[0] for v in stored_visits(session)] == created, output
    assert f"{len(created)} created" in output
    assert_no_note_holds_another_rows_data(session)
    if "Suite 200, second floor" in rows[-1]:
        from sqlalchemy import select

        from reminders.models import Appointment
        assert session.scalar(select(Appointment.location).where(Appointment.external_id == "a4")) == "Suite 200, second floor"


def test_a_row_after_the_swallowed_rows_is_reported_on_its_own_line(settings, tmp_path):
    bad_phone = KIM.replace("+12025550122", "12345") + ",en,,"
    path = write(tmp_path, SAM + ',en,,"Hold lamotrigine', LEE + ",en,,", bad_phone, MAYA + ",en,,",
                 header=OPTIONAL_HEADER)
    code, output = run_import(path)
    assert code == 1
    assert "line 2: rejected (a2): a quoted field opened on line 2 is not closed; lines 2-5 were read as one field" in output
    assert "line 4: rejected (a4): phone '12345' is not a valid number" in output, output
    assert "4 rows: 2 created, 0 updated, 0 unchanged, 2 rejected" in output


@pytest.mark.parametrize("note, stored", [
    ('"take half\nthe dose"', "take half the dose"),
    ('"Hold lamotrigine,\nclonazepam: half, at 6 am"', "Hold lamotrigine, clonazepam: half, at 6 am"),
    ('"Hold lamotrigine\r\nuntil 2026-12-10"', "Hold lamotrigine until 2026-12-10"),
])
def test_a_rightly_quoted_note_over_several_lines_is_kept_and_the_rows_after_it_too(settings, tmp_path, session,
                                                                                    note, stored):
    path = write_bytes(tmp_path, "\r\n".join([OPTIONAL_HEADER, MAYA + f",en,,{note}", SAM + ",en,,", LEE + ",en,,"]) + "\r\n")
    code, output = run_import(path)
    assert code == 0 and "3 rows: 3 created, 0 updated, 0 unchanged, 0 rejected" in output, output
    assert notes(session) == {"p1": stored, "p2": "", "p3": ""}
    run_pass(settings, at("2026-12-07T10:00:00-05:00"))  # Maya's first infusion, 72 h ahead: the full email
    email = [row.body for row in outbox(session, channel="email", rule="first_induction_72h", status="sent")]
    assert len(email) == 1 and stored in email[0]


def test_an_unclosed_quote_longer_than_a_field_may_be_costs_only_its_row(settings, session):
    """Python's csv stops a field at 128 KiB: what the quote took up to there is read again as rows."""
    from reminders.intake.csv_import import import_csv_text
    long_note = ",en,,Skip " + "x" * 400
    rows = [row + long_note for row in make_rows(400)]
    rows[9] = rows[9].replace(",Skip ", ',"Skip ')  # v9, on line 11, never closes its quote
    report = import_csv_text(session, "\n".join([OPTIONAL_HEADER, *rows]) + "\n", at("2026-11-01T12:00:00Z"),
                             batch_size=50)
    assert [(row.line, row.external_id) for row in report.rejected] == [(11, "")]
    assert "field larger than field limit" in report.rejected[0].reasons[0]
    assert "the lines after line 11 are read as rows of their own" in report.rejected[0].reasons[0]
    assert report.count("created") == 399 and report.exit_code == 1
    assert "v9" not in [v[0] for v in stored_visits(session)] and len(stored_visits(session)) == 399


@pytest.mark.parametrize("row, reason", [
    (SAM.replace("Okafor", "Oka\x00for") + ",en,,", "line 3: rejected (a2): last_name contains a NUL character"),
    (SAM + ",en,,Hold\x00 lamotrigine", "line 3: rejected (a2): medications_to_hold contains a NUL character"),
    ("\x00" * 40, "line 3: rejected: external_id contains a NUL character"),  # a block of a damaged disk
])
def test_a_nul_character_rejects_its_own_row_and_the_others_are_imported(settings, tmp_path, session, row, reason):
    rows = [MAYA + ",en,,", row, LEE + ",en,,"]
    code, output = run_import(write_bytes(tmp_path, "\n".join([OPTIONAL_HEADER, *rows]) + "\n"))
    assert code == 1, output
    assert reason in output, output
    assert "3 rows: 2 created, 0 updated, 0 unchanged, 1 rejected" in output
    assert [v[0] for v in stored_visits(session)] == ["a1", "a3"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_nul_character_never_reaches_the_database(request, backend):
    from reminders.db import session_factory
    from reminders.intake.csv_import import import_csv_text
    current = request.getfixturevalue("pg_settings" if backend == "postgres" else "settings")
    text = "\n".join([HEADER, GOOD[0], GOOD[1].replace("a2,p2,Sam", "a2\x00,p2,Sam\x00"), LEE]) + "\n"
    with session_factory(current.effective_database_url)() as session:
        report = import_csv_text(session, text, at("2026-11-01T12:00:00Z"))
        assert [(row.line, row.external_id, row.reasons) for row in report.rejected] == [
            (3, "a2", ("external_id contains a NUL character", "first_name contains a NUL character"))]
        assert [v[0] for v in stored_visits(session)] == ["a1", "a3"]


def test_a_file_in_utf16_is_not_text(settings, tmp_path, session):
    path = tmp_path / "utf16.csv"
    path.write_bytes("\n".join([HEADER, *GOOD]).encode("utf-16"))
    code, output = run_import(path)
    assert code == 2 and "not text" in output
    assert stored_visits(session) == []
