"""Staff CSV uploads imported in the background, with a report that fills in as the rows go in.

The upload stores the file in the database as an ImportJob (status queued) and answers at once;
the import runs in a thread of the web process (run_in_thread). That is enough for one web
process and files of clinic size; a job queue can take the same run_job later.

A running job writes its progress and its refused rows with every batch, in the same transaction
as the batch's rows, and updated_at is its heartbeat. A job whose process was stopped (a restart,
a crash) stops moving: once it has not moved for STALE_AFTER it shows as interrupted, and staff
can run it again. That is safe because the import is an upsert by external_id: the rows already
in come out unchanged.
"""
from __future__ import annotations

import logging
import threading
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import delete, insert, update
from sqlalchemy.orm import Session, sessionmaker

from reminders.intake.csv_file import UnusableFile, count_lines, decode, read_header
from reminders.intake.csv_import import import_csv_text
from reminders.intake.records import VisitWindow, visit_window
from reminders.locations import LocationBook
from reminders.models import AuditEntry, ImportJob, ImportJobRow

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=5)
FULL_REPORT_LINES = 1000  # files up to this many lines list every row; larger ones list the refused rows
COUNTS = ("created", "updated", "unchanged", "rejected")

_threads: dict[int, threading.Thread] = {}


def create_job(session: Session, filename: str, content: bytes, created_by: str, now: datetime) -> ImportJob:
    """Store an upload as a queued job. UnusableFile (and nothing stored) if it cannot be a CSV of
    appointments at all: that is said on the upload page at once."""
    text = decode(content)
    read_header(text)
    job = ImportJob(filename=filename[:200], created_by=created_by[:254], content=content, status="queued",
                    lines_total=count_lines(text), created_at=now, updated_at=now)
    session.add(job)
    session.flush()
    return job


def state(job: ImportJob, now: datetime) -> str:
    """queued, running, done, failed, or interrupted (queued or running but not moving)."""
    if job.status in ("queued", "running") and job.updated_at < now - STALE_AFTER:
        return "interrupted"
    return job.status


def can_run_again(job: ImportJob, now: datetime) -> bool:
    return state(job, now) in ("interrupted", "failed") and bool(job.content)


def queue_again(session: Session, job: ImportJob, now: datetime) -> bool:
    """Put an interrupted or failed job back in the queue; False if it is not one."""
    if not can_run_again(job, now):
        return False
    job.status, job.updated_at, job.error = "queued", now, ""
    session.flush()
    return True


def run_job(sessions: sessionmaker, job_id: int, clock: Callable[[], datetime], *, phone_region: str = "US",
            series_length: int = 6, window: Callable[[datetime], VisitWindow] | None = None,
            settings=None) -> str:
    """Import a queued job's file; returns the job's final status (or "skipped" if it was not
    queued, e.g. another thread took it). `window` gives the booking window at the run's time;
    `settings`, the clinic's (its locations are read over them, once per run)."""
    with sessions() as session:
        now = clock()
        claimed = session.execute(
            update(ImportJob).where(ImportJob.id == job_id, ImportJob.status == "queued")
            .values(status="running", started_at=now, updated_at=now, finished_at=None, runs=ImportJob.runs + 1,
                    lines_done=0, rows=0, **{name: 0 for name in COUNTS})
        ).rowcount
        if not claimed:
            session.rollback()
            return "skipped"
        session.execute(delete(ImportJobRow).where(ImportJobRow.job_id == job_id))  # a new run, a new report
        session.commit()
        job = session.get(ImportJob, job_id)
        full_report = job.lines_total <= FULL_REPORT_LINES
        counts = dict.fromkeys(COUNTS, 0)

        def on_batch(results, lines_read: int) -> None:
            for row in results:
                counts[row.result] += 1
            shown = [{"job_id": job_id, "line": row.line, "external_id": row.external_id[:128], "result": row.result,
                      "reasons": list(row.reasons)} for row in results if full_report or row.result == "rejected"]
            if shown:
                session.execute(insert(ImportJobRow), shown)
            session.execute(update(ImportJob).where(ImportJob.id == job_id).values(
                lines_done=lines_read, rows=sum(counts.values()), updated_at=clock(), **counts))

        try:
            with visit_window(window(now)) if window else nullcontext():
                locations = LocationBook.load(session, settings) if settings is not None else None
                report = import_csv_text(session, decode(job.content), now, phone_region=phone_region,
                                         series_length=series_length, on_batch=on_batch, locations=locations)
        except UnusableFile as exc:
            session.rollback()
            return _finish(session, job_id, clock(), "failed", str(exc))
        except Exception:  # noqa: BLE001 - the job must say it stopped, not stay "running"
            session.rollback()
            log.exception("import job %s stopped", job_id)
            return _finish(session, job_id, clock(), "failed",
                           "the import stopped on an error; the rows before it are imported. Run it again to finish.")
        summary = report.summary()
        session.add(AuditEntry(at=clock(), actor=job.created_by or "(unknown)", action="import_csv",
                               target_type="appointments", target_id="",
                               detail={"filename": job.filename, "job_id": job_id,
                                       **{k: summary[k] for k in ("rows", *COUNTS)}}))
        return _finish(session, job_id, clock(), "done", "", content=b"")


def _finish(session: Session, job_id: int, now: datetime, status: str, error: str, **more) -> str:
    session.execute(update(ImportJob).where(ImportJob.id == job_id)
                    .values(status=status, error=error, finished_at=now, updated_at=now, **more))
    session.commit()
    return status


def run_in_thread(sessions: sessionmaker, job_id: int, clock: Callable[[], datetime], **options) -> threading.Thread:
    """Run the job in a daemon thread of this process (see the module's note)."""

    def target() -> None:
        try:
            run_job(sessions, job_id, clock, **options)
        except Exception:  # noqa: BLE001 - logged; the job shows as interrupted and can be run again
            log.exception("import job %s could not run", job_id)
        finally:
            _threads.pop(job_id, None)

    thread = threading.Thread(target=target, name=f"import-job-{job_id}", daemon=True)
    _threads[job_id] = thread
    thread.start()
    return thread


def wait_for(job_id: int, timeout: float) -> bool:
    """Wait for this process's thread of a job to end; True if it has (or there is none)."""
    thread = _threads.get(job_id)
    if thread is not None:
        thread.join(timeout)
        return not thread.is_alive()
    return True
