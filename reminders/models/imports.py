from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reminders.models.base import Base, UTCDateTime, utcnow

IMPORT_JOB_STATES = ("queued", "running", "done", "failed")


class ImportJob(Base):
    """A CSV file uploaded by staff, imported in the background; its report fills in as it runs.

    updated_at is the heartbeat: a running job writes it with every batch, so a job whose
    process died shows as interrupted once it has not moved for a while (see intake.import_jobs)."""

    __tablename__ = "import_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(254), default="")
    content: Mapped[bytes] = mapped_column(LargeBinary)  # the file as uploaded; emptied once imported
    status: Mapped[str] = mapped_column(String(20), default="queued")
    lines_total: Mapped[int] = mapped_column(Integer, default=0)
    lines_done: Mapped[int] = mapped_column(Integer, default=0)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ImportJobRow(Base):
    """One line of an import job's report: every refused row, and every row of a small file."""

    __tablename__ = "import_job_rows"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("import_jobs.id", ondelete="CASCADE"), index=True)
    line: Mapped[int] = mapped_column(Integer)
    external_id: Mapped[str] = mapped_column(String(128), default="")
    result: Mapped[str] = mapped_column(String(10))
    reasons: Mapped[list] = mapped_column(JSON, default=list)
