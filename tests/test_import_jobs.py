"""Staff CSV uploads: the upload answers at once, the report page fills in, a stopped job says so."""
from __future__ import annotations

import io
import re
import threading
from datetime import timedelta

from sqlalchemy import select

from reminders.intake import import_jobs
from reminders.models import Appointment, ImportJob, utcnow
from tests.fixtures.staff import post_form

HEADER = ("external_id,patient_external_id,first_name,last_name,phone,email,timezone,preferred_channel,kind,"
          "starts_at,duration_minutes,location,status\n")


def csv_text(count: int = 3, bad_line: int | None = None) -> str:
    when = (utcnow() + timedelta(days=10)).replace(microsecond=0).isoformat()
    rows = []
    for n in range(count):
        phone = "not-a-phone" if bad_line == n + 2 else f"+1202555{n % 10000:04d}"
        rows.append(f"v{n},p{n},Ana,Diaz,{phone},,America/New_York,sms,induction,{when},60,Suite 1,\n")
    return HEADER + "".join(rows)


def upload(client, text: str, name: str = "visits.csv"):
    return post_form(client, "/visits/import", {"file": (io.BytesIO(text.encode()), name)},
                     content_type="multipart/form-data")


def job_id_of(response) -> int:
    assert response.status_code == 303, response.text
    return int(re.search(r"/visits/imports/(\d+)$", response.headers["Location"]).group(1))


def held_jobs(monkeypatch):
    """Jobs wait for the returned event before they run: what the page shows meanwhile is seen."""
    go = threading.Event()
    real_run = import_jobs.run_job

    def run_when_released(*args, **kwargs):
        assert go.wait(60), "the test never released the job"
        return real_run(*args, **kwargs)

    monkeypatch.setattr(import_jobs, "run_job", run_when_released)
    return go


def test_the_upload_answers_at_once_and_the_report_page_fills_in(staff_client, sessions, monkeypatch):
    release = held_jobs(monkeypatch)
    response = upload(staff_client, csv_text(4, bad_line=3))
    job_id = job_id_of(response)  # answered while the import has not even started

    waiting = staff_client.get(f"/visits/imports/{job_id}")
    assert waiting.status_code == 200
    assert "Waiting to start" in waiting.text and '<meta http-equiv="refresh"' in waiting.text
    with sessions() as session:
        assert session.scalar(select(Appointment.id)) is None

    release.set()
    assert import_jobs.wait_for(job_id, timeout=60)
    done = staff_client.get(f"/visits/imports/{job_id}")
    assert "Done." in done.text and 'http-equiv="refresh"' not in done.text
    assert "<strong>4</strong> rows" in done.text and "3 created" in done.text and "1 rejected" in done.text
    rows = re.findall(r'<td data-label="Line">(\d+)</td>\s*<td data-label="Visit ID">([^<]+)</td>', done.text)
    assert rows == [("2", "v0"), ("3", "v1"), ("4", "v2"), ("5", "v3")]
    assert "phone &#39;not-a-phone&#39; is not a phone number" in done.text
    with sessions() as session:
        visits = session.scalars(select(Appointment).order_by(Appointment.external_id)).all()
        assert [v.external_id for v in visits] == ["v0", "v2", "v3"] and all(v.needs_planning for v in visits)
        assert session.get(ImportJob, job_id).content == b""  # the file is not kept once imported


def test_a_running_job_shows_its_progress(staff_client, sessions):
    with sessions() as session:
        job = import_jobs.create_job(session, "big.csv", csv_text(3).encode(), "staff@clinic.test", utcnow())
        job.status, job.lines_done, job.rows, job.created = "running", 2, 2, 2
        session.commit()
        job_id = job.id
    page = staff_client.get(f"/visits/imports/{job_id}").text
    assert "Importing: line 2 of about 3" in page and '<meta http-equiv="refresh"' in page
    assert "<strong>2</strong> rows" in page


def test_a_job_stopped_by_a_restart_shows_as_interrupted_and_can_run_again(staff_client, sessions, clock):
    now = clock.now
    with sessions() as session:
        job = import_jobs.create_job(session, "visits.csv", csv_text(3).encode(), "staff@clinic.test", now)
        job.status, job.lines_done, job.updated_at = "running", 1, now  # its thread died with the process
        session.commit()
        job_id = job.id
    clock.set(now + timedelta(minutes=4))
    assert "Importing" in staff_client.get(f"/visits/imports/{job_id}").text  # not yet stale

    clock.set(now + timedelta(minutes=6))
    page = staff_client.get(f"/visits/imports/{job_id}").text
    assert "This import was interrupted" in page and "Run the import again" in page
    assert 'http-equiv="refresh"' not in page
    assert "interrupted" in staff_client.get("/visits/import").text  # in the list of recent imports

    response = post_form(staff_client, f"/visits/imports/{job_id}/run", token_from=f"/visits/imports/{job_id}")
    assert response.status_code == 303
    assert import_jobs.wait_for(job_id, timeout=60)
    done = staff_client.get(f"/visits/imports/{job_id}").text
    assert "Done." in done and "3 created" in done
    with sessions() as session:
        assert session.get(ImportJob, job_id).runs == 1
        assert len(session.scalars(select(Appointment)).all()) == 3


def test_running_an_interrupted_import_again_is_safe(staff_client, sessions, clock):
    text = csv_text(3)  # once: the visits' times are taken from the clock
    job_id = job_id_of(upload(staff_client, text))
    assert import_jobs.wait_for(job_id, timeout=60)
    with sessions() as session:  # as if the first run had been cut short after its last batch
        job = session.get(ImportJob, job_id)
        job.status, job.content = "running", text.encode()
        session.commit()
    clock.advance(minutes=10)
    post_form(staff_client, f"/visits/imports/{job_id}/run", token_from=f"/visits/imports/{job_id}")
    assert import_jobs.wait_for(job_id, timeout=60)
    page = staff_client.get(f"/visits/imports/{job_id}").text
    assert "0 created" in page and "3 unchanged" in page
    with sessions() as session:
        assert len(session.scalars(select(Appointment)).all()) == 3


def test_a_job_that_is_not_interrupted_is_not_run_twice(staff_client, sessions):
    job_id = job_id_of(upload(staff_client, csv_text(2)))
    assert import_jobs.wait_for(job_id, timeout=60)
    response = post_form(staff_client, f"/visits/imports/{job_id}/run", token_from=f"/visits/imports/{job_id}")
    assert response.status_code == 303
    with sessions() as session:
        assert session.get(ImportJob, job_id).runs == 1


def test_a_job_that_fails_says_so_and_keeps_its_file(staff_client, sessions, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("reminders.intake.import_jobs.import_csv_text", broken)
    job_id = job_id_of(upload(staff_client, csv_text(2)))
    assert import_jobs.wait_for(job_id, timeout=60)
    page = staff_client.get(f"/visits/imports/{job_id}").text
    assert "The import failed" in page and "Run the import again" in page
    assert "disk on fire" not in page  # the details go to the log, not the page


def test_a_large_file_lists_only_its_refused_rows(staff_client, monkeypatch):
    monkeypatch.setattr(import_jobs, "FULL_REPORT_LINES", 2)
    job_id = job_id_of(upload(staff_client, csv_text(5, bad_line=4)))
    assert import_jobs.wait_for(job_id, timeout=60)
    page = staff_client.get(f"/visits/imports/{job_id}").text
    assert "4 created" in page and "1 rejected" in page and "only the rejected rows are listed" in page
    assert re.findall(r'<td data-label="Line">(\d+)</td>', page) == ["4"]


def test_the_report_needs_a_signed_in_user_and_the_upload_its_csrf_token(client, staff_client):
    job_id = job_id_of(upload(staff_client, csv_text(1)))
    assert import_jobs.wait_for(job_id, timeout=60)
    anonymous = client.get(f"/visits/imports/{job_id}")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    forged = staff_client.post("/visits/import", data={"file": (io.BytesIO(csv_text(1).encode()), "x.csv")},
                               content_type="multipart/form-data")
    assert forged.status_code == 400
    assert staff_client.get("/visits/imports/999999").status_code == 404


def test_the_report_page_keeps_the_strict_content_security_policy(staff_client):
    job_id = job_id_of(upload(staff_client, csv_text(1)))
    assert import_jobs.wait_for(job_id, timeout=60)
    response = staff_client.get(f"/visits/imports/{job_id}")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "<script>" not in response.text


def test_an_upload_with_an_unclosed_quote_and_a_nul_refuses_those_rows_by_line_and_imports_the_others(
        staff_client, sessions):
    from reminders.models import Patient
    rows = csv_text(5).splitlines(keepends=True)  # the header, then v0..v4 on lines 2-6
    rows[2] = rows[2].rstrip("\n") + ',"Hold lamotrigine\n'  # v1: a cell past the last column, its quote never closed
    rows[4] = rows[4].replace("Diaz", "Di\x00az")  # v3: a NUL from a damaged file
    job_id = job_id_of(upload(staff_client, "".join(rows)))
    assert import_jobs.wait_for(job_id, timeout=60)
    page = staff_client.get(f"/visits/imports/{job_id}").text
    assert "Done." in page and "3 created" in page and "2 rejected" in page, page
    lines = re.findall(r'<td data-label="Line">(\d+)</td>\s*<td data-label="Visit ID">([^<]*)</td>', page)
    assert lines == [("2", "v0"), ("3", "v1"), ("4", "v2"), ("5", "v3"), ("6", "v4")]
    assert "a quoted field opened on line 3 is not closed; lines 3-6 were read as one field" in page
    assert "last_name contains a NUL character" in page
    with sessions() as session:
        assert [v.external_id for v in session.scalars(select(Appointment).order_by(Appointment.external_id))] == [
            "v0", "v2", "v4"]
        assert all(not p.medications_to_hold for p in session.scalars(select(Patient)))
