from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from reminders.models.base import Base, UTCDateTime


class FhirSyncState(Base):
    """Where the FHIR sync of one server (FHIR_BASE_URL) stands: the newest `meta.lastUpdated` it
    has taken in, of appointments and of patients (the next sync asks for `_lastUpdated=ge` that), and
    what its last run did."""

    __tablename__ = "fhir_sync_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    base_url: Mapped[str] = mapped_column(String(500), unique=True)
    high_water: Mapped[datetime | None] = mapped_column(UTCDateTime)
    patient_high_water: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the same for `Patient` searches
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_reconciled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_summary: Mapped[dict | None] = mapped_column(JSON)
