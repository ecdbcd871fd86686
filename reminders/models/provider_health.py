from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from reminders.models.base import Base, UTCDateTime, utcnow


class ProviderHealth(Base):
    """How one channel's provider (Twilio for "sms", the SMTP server for "email") is doing.

    Shared by every process (web, workers, `reminders tick`): the circuit breaker lives here, not
    in memory. `open_until` is set while the breaker is open: no message of the channel is tried
    before it, then one probe message (`probe_outbox_id`) checks whether the provider is back.
    """

    __tablename__ = "provider_health"

    channel: Mapped[str] = mapped_column(String(10), primary_key=True)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)  # first failure of this streak
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    open_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # set while the breaker is open
    probe_outbox_id: Mapped[int | None] = mapped_column(Integer)  # the one row allowed through
    last_error: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
