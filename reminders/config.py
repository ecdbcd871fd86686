"""Settings: one typed place, read from the environment, failing loudly on a bad value."""
from __future__ import annotations

import re
from datetime import time
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated

from reminders.intake.records import check_time_zone

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = Path.cwd() / "reminders-data"


def default_templates_dir() -> Path:
    """templates/ beside the package (a checkout), else in the working directory (an image)."""
    for candidate in (PROJECT_ROOT / "templates", Path.cwd() / "templates"):
        if candidate.is_dir():
            return candidate
    return PROJECT_ROOT / "templates"


def _split_list(value):
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part.strip() for part in re.split(r"[,;\s]+", value) if part.strip()]
    return list(value)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    data_dir: Path = Field(default=DEFAULT_DATA_DIR, validation_alias="REMINDERS_DATA_DIR")
    database_url: str = ""
    redis_url: str = ""
    secret_key: str = ""

    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from: str = ""
    twilio_api_base_url: str = ""
    public_base_url: str = ""
    # Texts a second from TWILIO_FROM; 0: from its form (1 long code, 3 toll-free, 100 short code
    # or Messaging Service), see reminders.pacing.
    sms_per_second: float = Field(default=0.0, ge=0.0, le=10_000)

    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = True
    smtp_timeout_seconds: float = 20.0
    mail_from: str = "Clinic reminders <reminders@localhost>"

    staff_alert_emails: Annotated[list[str], NoDecode] = []
    staff_alert_phones: Annotated[list[str], NoDecode] = []

    clinic_name: str = "The Infusion Clinic"
    clinic_phone: str = "+1 555 010 0100"
    clinic_address: str = ""
    clinic_timezone: str = "America/New_York"
    crisis_line: str = "988"
    emergency_number: str = "911"
    default_phone_region: str = "US"

    quiet_hours_start: time = time(21, 0)
    quiet_hours_end: time = time(8, 0)
    checkin_hour: int = 10
    induction_series_length: int = 6
    induction_rebook_days: int = 4
    maintenance_interval_days: int = 42
    crisis_score_max: int = 2
    escalation_realert_minutes: int = 15
    send_max_attempts: int = 5  # internal errors only; a provider's trouble is retried until too late
    provider_failure_threshold: int = Field(default=5, ge=1)  # failures in a row that pause a channel
    provider_probe_max_seconds: int = Field(default=300, ge=1)  # longest pause between probes
    stale_send_minutes: int = 10
    # Visits may be entered (API, CSV, staff form) from this many days ago to this many ahead;
    # anything else is refused with the reason (a typo in the year, not a booking).
    visit_window_past_days: int = Field(default=365, ge=0, le=3650)
    visit_window_future_days: int = Field(default=730, ge=1, le=3650)
    outbox_dir: Path | None = None
    templates_dir: Path = Field(default_factory=default_templates_dir)

    @field_validator("staff_alert_emails", "staff_alert_phones", mode="before")
    @classmethod
    def _lists(cls, value):
        return _split_list(value)

    @field_validator("clinic_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_time_zone(value, "CLINIC_TIMEZONE")

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'reminders.db'}"

    @property
    def effective_outbox_dir(self) -> Path:
        return self.outbox_dir or (self.data_dir / "outbox")

    @property
    def twilio_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.twilio_from)

    @property
    def smtp_configured(self) -> bool:
        return bool(self.smtp_host)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    get_settings.cache_clear()
