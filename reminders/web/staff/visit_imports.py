"""Visits imported from a CSV file. The upload is stored as an import job and imported off the
request (intake.import_jobs); the report page refreshes itself until the job is done."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from reminders.intake import import_jobs
from reminders.intake.csv_file import MAX_FILE_BYTES, UnusableFile
from reminders.intake.records import VisitWindow
from reminders.models import ImportJob, ImportJobRow
from reminders.web.context import db, found, request_clock, request_now, settings
from reminders.web.staff import audit
from reminders.web.staff.visit_pages import bp

REPORT_ROWS_SHOWN = 2000


def _start_job(job_id: int) -> None:
    from flask import current_app

    s = settings()
    import_jobs.run_in_thread(current_app.extensions["reminders.sessions"], job_id, request_clock(),
                              phone_region=s.default_phone_region, series_length=s.induction_series_length,
                              window=lambda now: VisitWindow.from_settings(s, now), settings=s)


def _recent_jobs() -> list[ImportJob]:
    return list(db().scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(10)))


@bp.route("/visits/import", methods=["GET", "POST"])
def import_csv():
    now = request_now()
    if request.method == "GET":
        return render_template("staff/import.html", error=None, filename="", jobs=_recent_jobs(), now=now,
                               state=import_jobs.state)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return render_template("staff/import.html", error="Choose a CSV file to upload.", filename="",
                               jobs=_recent_jobs(), now=now, state=import_jobs.state), 422
    data = upload.read(MAX_FILE_BYTES + 1)
    session = db()
    try:
        if len(data) > MAX_FILE_BYTES:
            raise UnusableFile(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
        job = import_jobs.create_job(session, upload.filename, data, g.staff.email, now)
    except UnusableFile as exc:
        session.rollback()
        return render_template("staff/import.html", error=str(exc), filename=upload.filename, jobs=_recent_jobs(),
                               now=now, state=import_jobs.state), 422
    audit.record("upload_csv", "import_job", job.id, filename=upload.filename[:200])
    session.commit()
    _start_job(job.id)
    return redirect(url_for("visits.import_report", job_id=job.id), 303)


@bp.get("/visits/imports/<int:job_id>")
def import_report(job_id: int):
    job = found(ImportJob, job_id)
    now = request_now()
    rows = list(db().scalars(select(ImportJobRow).where(ImportJobRow.job_id == job.id)
                             .order_by(ImportJobRow.line).limit(REPORT_ROWS_SHOWN + 1)))
    return render_template("staff/import_job.html", job=job, state=import_jobs.state(job, now),
                           can_run_again=import_jobs.can_run_again(job, now), rows=rows[:REPORT_ROWS_SHOWN],
                           more=len(rows) > REPORT_ROWS_SHOWN, full=job.lines_total <= import_jobs.FULL_REPORT_LINES,
                           stale_minutes=int(import_jobs.STALE_AFTER.total_seconds() // 60))


@bp.post("/visits/imports/<int:job_id>/run")
def run_import_again(job_id: int):
    session = db()
    job = found(ImportJob, job_id)
    if import_jobs.queue_again(session, job, request_now()):
        audit.record("rerun_import", "import_job", job.id)
        session.commit()
        _start_job(job.id)
        flash("Import started again: rows already imported stay as they are.", "ok")
    else:
        flash("This import is not interrupted: there is nothing to run again.", "error")
    return redirect(url_for("visits.import_report", job_id=job.id), 303)
