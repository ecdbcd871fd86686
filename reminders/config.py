"""Settings: one typed place, read from the environment, failing loudly on a bad value."""
from __future__ import annotations

import re
from datetime import date, time, timedelta
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated

from reminders.zones import check_time_zone

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


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_holidays(value) -> list[date]:
    """CLINIC_HOLIDAYS: "2026-12-25,2027-01-01" -> sorted dates."""
    days: set[date] = set()
    for part in _split_list(value):
        if isinstance(part, date):
            days.add(part)
            continue
        try:
            days.add(date.fromisoformat(str(part)))
        except ValueError:
            raise ValueError(f"CLINIC_HOLIDAYS: {part!r} is not a date like 2026-12-25") from None
    return sorted(days)


def parse_days(value, setting: str = "OFFICE_DAYS") -> list[str]:
    """OFFICE_DAYS: "mon-fri", "mon,tue,thu", "mon-fri,sat" -> ["mon", ...] in week order."""
    days: set[str] = set()
    for part in _split_list(value):
        first, _, last = part.lower().partition("-")
        first, last = first[:3], (last or first)[:3]
        if first not in WEEKDAYS or last not in WEEKDAYS:
            raise ValueError(f"{setting}: {part!r} is not a day or a range of days like mon-fri")
        start, end = WEEKDAYS.index(first), WEEKDAYS.index(last)
        if end < start:
            raise ValueError(f"{setting}: {part!r} runs backwards; write it from the earlier day")
        days.update(WEEKDAYS[start:end + 1])
    return [day for day in WEEKDAYS if day in days]


def parse_kind_map(value, setting: str) -> dict[str, str]:
    """"IND=induction, BOOST=maintenance" or a JSON object -> {"ind": "induction", ...} (keys lower case)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            import json

            try:
                value = json.loads(text)
            except ValueError as exc:
                raise ValueError(f"{setting} is not valid JSON: {exc}") from None
        else:
            pairs = [part.partition("=") for part in re.split(r"[,;\n]+", text) if part.strip()]
            if any(not sep or not key.strip() for key, sep, _ in pairs):
                raise ValueError(f"{setting} must be pairs like IND=induction,BOOST=maintenance")
            value = {key: kind for key, _, kind in pairs}
    if not isinstance(value, dict):
        raise ValueError(f"{setting} must be pairs like IND=induction,BOOST=maintenance")
    out = {}
    for key, kind in value.items():
        kind = str(kind).strip().lower()
        if kind not in ("induction", "maintenance"):
            raise ValueError(f"{setting}: {key!r} must map to induction or maintenance, not {kind!r}")
        out[str(key).strip().lower()] = kind
    return out


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    data_dir: Path = Field(default=DEFAULT_DATA_DIR, validation_alias="REMINDERS_DATA_DIR")
    database_url: str = ""
    # Every PostgreSQL connection (reminders.db.server_options): a statement running longer is
    # canceled; a session idle inside a transaction longer is ended, its locks released. 0: the
    # server's own setting (e.g. behind PgBouncer, which refuses the startup `options`).
    database_statement_timeout_seconds: float = Field(default=60, ge=0, le=24 * 3600)
    database_idle_in_transaction_timeout_seconds: float = Field(default=120, ge=0, le=24 * 3600)
    redis_url: str = ""
    secret_key: str = ""
    # Two-step sign-in (reminders.mfa): always for admins; true: for every staff account too.
    mfa_required: bool = False
    # Message bodies and inbound texts older than this many days are blanked by `reminders purge`
    # (the rows stay as metadata); 0: kept for ever (reminders.retention).
    retention_days: int = Field(default=0, ge=0, le=36500)
    # GET /metrics (reminders.metrics): a bearer token Prometheus must send; without it only
    # callers on this machine (loopback) are answered. The folder every process (web, each Celery
    # worker process, `reminders tick`) writes its counters to; default REMINDERS_DATA_DIR/metrics.
    metrics_token: str = ""
    prometheus_multiproc_dir: str = ""

    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from: str = ""
    twilio_api_base_url: str = ""
    public_base_url: str = ""
    # Reverse proxies in front of the web app that add X-Forwarded-For (0: none). With one, the
    # patient's own address is read from that header (rate limits count per patient, not per proxy).
    trusted_proxy_hops: int = Field(default=0, ge=0, le=5)
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
    # The induction "not booked" nudge goes this long after an infusion with no next one booked.
    induction_rebook_hours: int = Field(default=48, ge=1, le=24 * 60)
    # Older setting, in days: still honoured when set and INDUCTION_REBOOK_HOURS is not.
    induction_rebook_days: int | None = Field(default=None, ge=1, le=60)
    maintenance_interval_days: int = 42
    # The maintenance booking nudge goes this many days before the interval ends.
    maintenance_nudge_days_before: int = Field(default=7, ge=0, le=60)
    # Caring contacts: a short weekly note after the induction series, until a next visit is
    # booked, for at most this many weeks (0: none).
    caring_contact_weeks: int = Field(default=8, ge=0, le=52)
    # At most this many texts around one visit (its reminders, check-ins, nudges, questionnaire),
    # as the welcome promises; lower-priority texts give way, never safety ones (reminders.planning.budget).
    texts_per_visit: int = Field(default=7, ge=3, le=30)
    # A visit still scheduled or confirmed this many hours after it ended counts as attended
    # (its check-in goes); empty or 0: never, the check-in waits for staff to mark the visit.
    unmarked_visits_count_as_attended_after_hours: int | None = Field(default=2, ge=0, le=24 * 14)
    # Staff can undo a no-show or completed mark this many minutes; "we missed you" waits for it.
    no_show_undo_minutes: int = Field(default=5, ge=0, le=60)
    crisis_score_max: int = 2
    # A home blood pressure at or above either number puts a check-in answer at the top of the
    # staff inbox (the crisis reader's own, higher threshold is a medical emergency).
    bp_alert_systolic: int = Field(default=160, ge=90, le=300)
    bp_alert_diastolic: int = Field(default=100, ge=50, le=200)
    # When a nurse reads the inbox (clinic zone): what a flagged answer tells the patient.
    office_hours_start: time = time(8, 0)
    office_hours_end: time = time(17, 0)
    office_days: Annotated[list[str], NoDecode] = ["mon", "tue", "wed", "thu", "fri"]
    # Days no visit is booked on when a whole induction course is booked at once ("sat,sun").
    clinic_closed_days: Annotated[list[str], NoDecode] = ["sat", "sun"]
    # Holidays (YYYY-MM-DD, comma-separated): no course visit or suggested visit falls on one;
    # a visit booked by hand on one is allowed with a warning (reminders.calendar).
    clinic_holidays: Annotated[list[date], NoDecode] = []
    # A check-in expects a number for this long, unless a newer text went to the patient first.
    checkin_answer_hours: int = Field(default=24, ge=1, le=24 * 7)
    escalation_realert_minutes: int = 15
    # What a patient whose text paged on-call (the urgent tier) is told: a call within about this long.
    oncall_callback_minutes: int = Field(default=30, ge=5, le=240)
    send_max_attempts: int = 5  # internal errors only; a provider's trouble is retried until too late
    provider_failure_threshold: int = Field(default=5, ge=1)  # failures in a row that pause a channel
    provider_probe_max_seconds: int = Field(default=300, ge=1)  # longest pause between probes
    stale_send_minutes: int = 10
    # Visits may be entered (API, CSV, staff form) from this many days ago to this many ahead;
    # anything else is refused with the reason (a typo in the year, not a booking).
    visit_window_past_days: int = Field(default=365, ge=0, le=3650)
    visit_window_future_days: int = Field(default=730, ge=1, le=3650)
    # Preparation before a visit (reminders.preparation): turned into clock times in the patient's
    # zone in every pre-visit message. Fasting hours are real hours before the visit's start.
    fasting_solids_hours: float = Field(default=6, ge=0, le=24)
    fasting_clear_liquids_hours: float = Field(default=2, ge=0, le=24)
    arrive_minutes_before: int = Field(default=15, ge=0, le=180)
    recovery_minutes: int = Field(default=45, ge=0, le=480)  # added to the visit's booked duration
    rideshare_allowed: bool = False  # a taxi or rideshare home instead of an adult who drives
    no_alcohol_hours: int = Field(default=24, ge=0, le=168)  # no alcohol or cannabis after a visit
    sms_medications_max_chars: int = Field(default=40, ge=0, le=120)  # longer notes: "see your email"
    outbox_dir: Path | None = None
    templates_dir: Path = Field(default_factory=default_templates_dir)
    # The clinic's WhatsApp sender, registered with Twilio (E.164, "+15550100100"); empty: WhatsApp
    # is off and a patient who prefers it gets SMS. Sent through the same Twilio account.
    twilio_whatsapp_from: str = ""

    # FHIR R4 appointments in (reminders.fhir, `reminders fhir sync`); empty FHIR_BASE_URL: off.
    fhir_base_url: str = ""
    fhir_token: str = ""  # a bearer token; or SMART backend services with the client settings below
    fhir_client_id: str = ""
    fhir_client_secret: str = ""
    fhir_private_key_file: Path | None = None  # PEM (RSA: RS384, EC: ES384) for a signed client assertion
    fhir_key_id: str = ""  # the `kid` of that key in the JWKS the server has
    fhir_token_url: str = ""  # empty: read from FHIR_BASE_URL/.well-known/smart-configuration
    fhir_scope: str = "system/Appointment.read system/Patient.read"
    # Appointment type (a code or text of appointmentType or serviceType, any case) -> visit kind.
    fhir_appointment_types: Annotated[dict[str, str], NoDecode] = {"induction": "induction", "maintenance": "maintenance"}
    fhir_default_kind: str = ""  # for a type not in the mapping; empty: such a visit is rejected, named in the report
    fhir_sync_minutes: int = Field(default=5, ge=1, le=24 * 60)  # beat's sync, when FHIR_BASE_URL is set
    fhir_reconcile_days: int = Field(default=30, ge=0, le=730)  # visits re-read (deletions found) from now to this far ahead
    fhir_first_sync_days: int = Field(default=2, ge=0, le=365)  # the first sync reads visits from this many days ago on
    fhir_page_size: int = Field(default=100, ge=1, le=1000)
    fhir_timeout_seconds: float = Field(default=30, gt=0, le=600)
    fhir_id_prefix: str = "fhir:"  # before the server's ids in external_id (patients and visits)

    # Validated questionnaires (reminders.measures): which visits get one, when, and for how long
    # the link works. Infusion numbers past the course's series mean its last infusion.
    measures_enabled: bool = True
    measures_infusions: Annotated[list[int], NoDecode] = [1, 3, 6]
    measures_before_maintenance: bool = True
    measures_hours_before: int = Field(default=48, ge=2, le=24 * 14)
    # One reminder, if the questionnaire is not done by then.
    measures_reminder_hours_before: int = Field(default=30, ge=1, le=24 * 14)
    questionnaire_link_days: int = Field(default=7, ge=1, le=60)
    # Questionnaires by text, one item at a time, even with PUBLIC_BASE_URL set (no link page).
    # Without PUBLIC_BASE_URL they always go by text (there is no link to send).
    measures_by_sms: bool = False
    # Course condition -> the scales it is given, in order (JSON); unknown scale names are logged and skipped.
    measures_by_condition: dict[str, list[str]] = {
        "depression": ["phq9", "gad7"], "anxiety": ["gad7", "phq9"], "ptsd": ["pcl5", "phq9"],
        "pain": ["pain", "phq9"], "other": ["phq9"],
    }
    # PCL-5 response: a drop of at least this many points from baseline (National Center for PTSD:
    # a change of 10 to 20 points is clinically meaningful).
    pcl5_response_points: int = Field(default=10, ge=1, le=80)

    # HL7 v2 scheduling messages in (reminders.hl7, `reminders hl7 listen`): MLLP has no sign-in
    # and no encryption, so it listens on this machine only unless HL7_BIND says otherwise.
    hl7_port: int = Field(default=2575, ge=1, le=65535)
    hl7_bind: str = "127.0.0.1"
    # SIU appointment type (AIS-3, else SCH-8, else SCH-7; its code or text, any case) -> visit kind:
    # "IND=induction,BOOST=maintenance" or a JSON object.
    hl7_appointment_types: Annotated[dict[str, str], NoDecode] = {
        "induction": "induction", "maintenance": "maintenance", "booster": "maintenance"}
    hl7_default_kind: str = ""  # for a type not in the mapping; empty: such a booking is answered AE

    @field_validator("measures_infusions", mode="before")
    @classmethod
    def _infusions(cls, value):
        items = _split_list(value) if isinstance(value, str) else value
        try:
            numbers = sorted({int(item) for item in items})
        except (TypeError, ValueError):
            raise ValueError(f"MEASURES_INFUSIONS must be infusion numbers like 1,3,6, not {value!r}") from None
        if any(n < 1 for n in numbers):
            raise ValueError("MEASURES_INFUSIONS numbers start at 1 (the first infusion)")
        return numbers

    @field_validator("fhir_appointment_types", mode="before")
    @classmethod
    def _fhir_types(cls, value):
        from reminders.fhir.settings import parse_appointment_types

        return parse_appointment_types(value)

    @field_validator("fhir_default_kind")
    @classmethod
    def _fhir_default_kind(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in ("", "induction", "maintenance"):
            raise ValueError(f"FHIR_DEFAULT_KIND {value!r} must be induction, maintenance or empty")
        return value

    @field_validator("hl7_appointment_types", mode="before")
    @classmethod
    def _hl7_types(cls, value):
        return parse_kind_map(value, "HL7_APPOINTMENT_TYPES")

    @field_validator("hl7_default_kind")
    @classmethod
    def _hl7_default_kind(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in ("", "induction", "maintenance"):
            raise ValueError(f"HL7_DEFAULT_KIND {value!r} must be induction, maintenance or empty")
        return value

    @field_validator("staff_alert_emails", "staff_alert_phones", mode="before")
    @classmethod
    def _lists(cls, value):
        return _split_list(value)

    @field_validator("unmarked_visits_count_as_attended_after_hours", "induction_rebook_days", mode="before")
    @classmethod
    def _empty_is_none(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("office_days", "clinic_closed_days", mode="before")
    @classmethod
    def _days(cls, value, info):
        return parse_days(value, info.field_name.upper())

    @field_validator("clinic_holidays", mode="before")
    @classmethod
    def _holidays(cls, value):
        return parse_holidays(value)

    @field_validator("clinic_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_time_zone(value, "CLINIC_TIMEZONE")

    @field_validator("twilio_whatsapp_from")
    @classmethod
    def _whatsapp_sender(cls, value: str) -> str:
        value = value.strip().removeprefix("whatsapp:")
        if value and not re.fullmatch(r"\+[1-9]\d{6,14}", value):
            raise ValueError(f"TWILIO_WHATSAPP_FROM {value!r} must be a number in E.164 form, like +15550100100")
        return value

    @model_validator(mode="after")
    def _fasting(self):
        if self.fasting_clear_liquids_hours > self.fasting_solids_hours:
            raise ValueError("FASTING_CLEAR_LIQUIDS_HOURS cannot be more than FASTING_SOLIDS_HOURS "
                             "(clear liquids are allowed for longer than food, not shorter)")
        return self

    @property
    def induction_rebook_after(self) -> timedelta:
        if self.induction_rebook_days is not None and "induction_rebook_hours" not in self.model_fields_set:
            return timedelta(days=self.induction_rebook_days)
        return timedelta(hours=self.induction_rebook_hours)

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
    def whatsapp_enabled(self) -> bool:
        return bool(self.twilio_whatsapp_from)

    @property
    def smtp_configured(self) -> bool:
        return bool(self.smtp_host)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    get_settings.cache_clear()
