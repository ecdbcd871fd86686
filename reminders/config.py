"""Settings: one typed place, read from the environment, failing loudly on a bad value."""
from __future__ import annotations

import re
from datetime import date, time, timedelta
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated

from reminders.channel_specs import WHATSAPP
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

    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR, validation_alias="REMINDERS_DATA_DIR",
        json_schema_extra={"shown_default": "`./reminders-data`"},
        description="the folder of the SQLite file, the local outbox, the generated secret key and the metrics files")
    database_url: str = Field(default="", description=(
        "SQLAlchemy URL; PostgreSQL: `postgresql+psycopg://user:pass@host/db`; empty: the SQLite file "
        "`REMINDERS_DATA_DIR/reminders.db`"))
    database_statement_timeout_seconds: float = Field(default=60, ge=0, le=24 * 3600, description=(
        "PostgreSQL: a statement running longer is canceled (`statement_timeout` on every connection), so "
        "a pass or a request never hangs on the database; a visit whose planning is cut off this way is "
        "planned at the next pass. Migrations run without it. `0`: the server's own setting"))
    database_idle_in_transaction_timeout_seconds: float = Field(default=120, ge=0, le=24 * 3600, description=(
        "PostgreSQL: a session left idle inside a transaction longer (a hung process) is ended and its "
        "locks released (`idle_in_transaction_session_timeout`). `0`: the server's own setting. Both "
        "timeouts are sent as libpq `options` (merged with an `options` in `DATABASE_URL`, which wins); "
        "behind PgBouncer, which refuses `options`, set both to `0` and set them on the role instead "
        "(`ALTER ROLE reminders SET statement_timeout = '60s'`)"))
    redis_url: str = Field(
        default="",
        description="Celery broker; without it `reminders run` sends from its own process")
    secret_key: str = Field(default="", description=(
        "signs staff sessions; a key derived from it encrypts the staff two-step secrets (changing it "
        "means resetting them: `reminders user reset-mfa`); empty: generated into the data dir"))
    mfa_required: bool = Field(default=False, description=(
        "`true`: every staff account must use two-step sign-in, not only admins (who always must); see "
        "[Two-step sign-in](staff.md#two-step-sign-in)"))
    retention_days: int = Field(default=0, ge=0, le=36500, description=(
        "message bodies and inbound texts older than this many days are blanked by `reminders purge` (the "
        "rows stay as metadata); `0`: kept for ever; see [Retention and patients' "
        "rights](staff.md#retention-and-patients-rights)"))
    metrics_token: str = Field(default="", description=(
        "the bearer token Prometheus sends to `GET /metrics`; empty: `/metrics` answers loopback callers "
        "only (see [Metrics](operations.md#metrics))"))
    prometheus_multiproc_dir: str = Field(default="", description=(
        "the folder every process writes its metric counters to; web and workers must share it; empty: "
        "`REMINDERS_DATA_DIR/metrics`"))

    twilio_account_sid: str = Field(default="", description=(
        "SMS via Twilio: the account SID; a signed webhook request whose `AccountSid` is another "
        "account's is refused. Without the Twilio settings SMS goes to the local outbox"))
    twilio_auth_token: str = Field(default="", description=(
        "SMS via Twilio: the auth token, also the key of Twilio's webhook signatures (without it both "
        "webhooks refuse every request)"))
    twilio_from: str = Field(default="", description="SMS via Twilio: a number or a Messaging Service SID (`MG…`)")
    twilio_api_base_url: str = Field(
        default="",
        description="point the twilio library elsewhere (tests, proxies); empty: Twilio's")
    twilio_timeout_seconds: float = Field(default=10.0, gt=0, le=120, description=(
        "SMS via Twilio: how long one request may wait for Twilio's answer; a text with no answer "
        "may have gone, so it is not sent again but shown to staff as `unknown`"))
    public_base_url: str = Field(default="", description=(
        "the URL Twilio calls and signs, e.g. `https://reminders.clinic.org`; enables status callbacks "
        "and the questionnaire and check-in links"))
    trusted_proxy_hops: int = Field(default=0, ge=0, le=5, description=(
        "reverse proxies in front of the web app that add `X-Forwarded-For`/`-Proto`/`-Host`; with 1, a "
        "patient's own address is read from them (the questionnaire pages' rate limits), and the public "
        "scheme and host (Twilio's signature when `PUBLIC_BASE_URL` is not set)"))
    sms_per_second: float = Field(default=0.0, ge=0.0, le=10_000, description=(
        "texts a second the sender may send, for every worker together: 1 for a long code, 3 for a "
        "toll-free number (+1 8xx), 100 for a short code or a Messaging Service (`MG…`); set it when "
        "Twilio has given the number another rate; `0`: from the form of `TWILIO_FROM`"))

    smtp_host: str = Field(default="", description="email: the SMTP server; empty: email goes to the local outbox")
    smtp_port: int = Field(default=587, description="email: the SMTP server's port")
    smtp_username: str = Field(default="", description="email: the SMTP login; empty: no login")
    smtp_password: str = Field(default="", description="email: the SMTP password")
    smtp_starttls: bool = Field(default=True, description="email: upgrade the connection with STARTTLS")
    smtp_timeout_seconds: float = Field(default=20.0, description="email: how long one SMTP conversation may take")
    mail_from: str = Field(default="Clinic reminders <reminders@localhost>", description="email: the From address")

    staff_alert_emails: Annotated[list[str], NoDecode] = Field(default=[], description=(
        "who is alerted by email about a possible crisis, with the text (comma-separated); a location's "
        "own on-call emails take their place for its patients"))
    staff_alert_phones: Annotated[list[str], NoDecode] = Field(default=[], description=(
        "who is alerted by SMS about a possible crisis, with no name or message text (comma-separated); a "
        "location's own on-call phones take their place for its patients"))

    clinic_name: str = Field(default="The Infusion Clinic", description="the clinic's name, used in every message")
    clinic_phone: str = Field(
        default="+1 555 010 0100",
        description="the clinic's phone number, used in every message")
    clinic_address: str = Field(default="", description="the clinic's address, used in the pre-visit messages")
    clinic_timezone: str = Field(default="America/New_York", description=(
        "staff UI times and the default for patients; a region zone (`EST`, `UTC-5`, `Etc/GMT+5` are "
        "refused with the region to use)"))
    crisis_line: str = Field(default="988", description="given in every crisis answer")
    emergency_number: str = Field(default="911", description="given in every crisis and emergency answer")
    default_phone_region: str = Field(
        default="US",
        description="how numbers without `+country` are read, and the region phone numbers are written for staff in")

    quiet_hours_start: time = Field(
        default=time(21, 0),
        description="quiet hours begin, patient-local: nothing is sent to a patient from then until `QUIET_HOURS_END`")
    quiet_hours_end: time = Field(default=time(8, 0), description="quiet hours end, patient-local")
    checkin_hour: int = Field(default=10, description="local hour of check-ins and nudges")
    induction_series_length: int = Field(default=6, description="infusions in an induction series")
    induction_rebook_hours: int = Field(
        default=48, ge=1, le=24 * 60,
        description="nudge (and staff list: overdue) when no next infusion is booked this long after one")
    induction_rebook_days: int | None = Field(default=None, ge=1, le=60, description=(
        "older form of `INDUCTION_REBOOK_HOURS`, in days; used only when `INDUCTION_REBOOK_HOURS` is not "
        "set"))
    maintenance_interval_days: int = Field(
        default=42,
        description="weekly check-ins and the staff list run until a maintenance visit is this long ago")
    maintenance_nudge_days_before: int = Field(
        default=7, ge=0, le=60,
        description="the maintenance booking nudge goes this many days before the interval ends (`0`: on the day)")
    caring_contact_weeks: int = Field(default=8, ge=0, le=52, description=(
        "weekly caring contacts after the induction series, until a next visit is booked, for at most "
        "this many weeks (`0`: none)"))
    texts_per_visit: int = Field(default=7, ge=3, le=30, description=(
        "at most this many texts per visit (3 to 30), as the welcome quotes; over it the questionnaire's "
        "reminder gives way first, then weekly check-ins, the questionnaire, the nudges; never a "
        "reminder, \"we missed you\" or the day-after check-in"))
    unmarked_visits_count_as_attended_after_hours: int | None = Field(default=2, ge=0, le=24 * 14, description=(
        "a visit nobody marked counts as attended (its check-in may go) this long after its end; empty or "
        "`0`: never, the check-in waits for staff to mark the visit. Such a check-in does not say \"after "
        "your visit\" (it asks how the patient is today), and the visit stays on Today to be marked"))
    no_show_undo_minutes: int = Field(default=5, ge=0, le=60, description=(
        "after staff mark a visit no-show or completed (a confirmation names the patient and time), Today "
        "and the patient's page offer \"Undo\" this long; \"we missed you\" waits until it is over, and an "
        "undo puts the visit back as it was and sends nothing (`0`: no undo, the text goes at once)"))
    crisis_score_max: int = Field(default=2, description="mood scores 0 to this open an escalation")
    bp_alert_systolic: int = Field(default=160, ge=90, le=300, description=(
        "a home blood pressure in a reply whose systolic number is at or above this goes to the top of "
        "the staff inbox (\"a nurse will read this today\"); with a headache, chest or vision symptom it "
        "pages on-call now (urgent)"))
    bp_alert_diastolic: int = Field(default=100, ge=50, le=200, description=(
        "the same for the diastolic number: at or above it, the top of the staff inbox; with a headache, "
        "chest or vision symptom, on-call is paged now"))
    office_hours_start: time = Field(default=time(8, 0), description=(
        "when a nurse starts reading the inbox, in `CLINIC_TIMEZONE`: inside office hours a flagged reply "
        "is told \"today\"; outside, when the office next opens"))
    office_hours_end: time = Field(
        default=time(17, 0),
        description="when a nurse stops reading the inbox, in `CLINIC_TIMEZONE`")
    office_days: Annotated[list[str], NoDecode] = Field(
        default=["mon", "tue", "wed", "thu", "fri"],
        description="the days a nurse reads the inbox, as a range or a list (`mon-fri`, `mon,wed,fri`, `mon-fri,sat`)")
    clinic_closed_days: Annotated[list[str], NoDecode] = Field(
        default=["sat", "sun"],
        description="days a course booked at once never falls on (written as `OFFICE_DAYS`: `sat,sun`, `fri-sun`)")
    clinic_holidays: Annotated[list[date], NoDecode] = Field(default=[], description=(
        "the clinic's holidays, `YYYY-MM-DD` comma-separated (`2026-12-25,2027-01-01`): a course booked "
        "at once and a suggested next or replacement visit move past them; a visit booked by hand on one "
        "is saved with a warning"))
    checkin_answer_hours: int = Field(default=24, ge=1, le=24 * 7, description=(
        "a check-in takes a number (and a second text with details) for this long, unless a newer text "
        "went to the patient first; a check-in email's link works this long; an unanswered check-in or "
        "questionnaire question by text holds back the other kind this long at most"))
    escalation_realert_minutes: int = Field(
        default=15,
        description="re-alert staff this often until someone acknowledges a possible crisis")
    oncall_callback_minutes: int = Field(
        default=30, ge=5, le=240,
        description="what a patient whose text paged on-call (the urgent tier) is told: a call within about this long")
    send_retry_first_seconds: int = Field(default=30, ge=1, le=3600, description=(
        "the wait before a message a provider refused for now (a 429, a 5xx, no connection) is tried "
        "again; each next wait doubles, up to 30 minutes, plus up to a fifth of itself"))
    send_max_attempts: int = Field(default=5, description=(
        "an internal error (a bug, not the provider) is retried this often; a provider's errors are "
        "retried until the message is too late (see [Provider outages](outages.md))"))
    provider_failure_threshold: int = Field(
        default=5, ge=1,
        description="transient failures in a row that pause a channel (the circuit breaker)")
    provider_probe_max_seconds: int = Field(
        default=300, ge=1,
        description="the longest wait between two probes of a paused channel")
    pass_seconds: int = Field(
        default=60, ge=1, le=3600,
        description=("beat (and `reminders run`'s scheduler) starts a pass this often: plans what is due and "
                     "hands it to the workers; a minute suits every clinic, tests use a few seconds"))
    stale_send_minutes: int = Field(
        default=10,
        description="a send still in hand this long after its worker stopped is shown to staff as unknown")
    # Visits may be entered (API, CSV, staff form) from this many days ago to this many ahead;
    # anything else is refused with the reason (a typo in the year, not a booking).
    visit_window_past_days: int = Field(default=365, ge=0, le=3650, description=(
        "a visit's time, new or moved, must fall at most this many days back (API, CSV import, staff "
        "form); whatever the window, years before 2000 or from 2100 on are refused"))
    visit_window_future_days: int = Field(default=730, ge=1, le=3650, description=(
        "a visit's time, new or moved, must fall at most this many days ahead (API, CSV import, staff "
        "form)"))
    # Preparation before a visit (reminders.preparation): turned into clock times in the patient's
    # zone in every pre-visit message. Fasting hours are real hours before the visit's start.
    fasting_solids_hours: float = Field(default=6, ge=0, le=24, description=(
        "no solid food (or milk) this many hours before the visit; `0` leaves the line out (see "
        "[Preparation](preparation.md))"))
    fasting_clear_liquids_hours: float = Field(default=2, ge=0, le=24, description=(
        "clear liquids (water, black coffee or tea, clear juice) until this many hours before; at most "
        "the hours for food"))
    arrive_minutes_before: int = Field(
        default=15, ge=0, le=180,
        description="the \"arrive by\" time: this many minutes before the visit")
    recovery_minutes: int = Field(default=45, ge=0, le=480, description=(
        "rest after the infusion; \"done around\" is the visit's booked `duration_minutes` plus this, "
        "rounded up to a quarter hour (set it to `0` if your bookings already include recovery)"))
    rideshare_allowed: bool = Field(
        default=False,
        description="`false`: an adult the patient knows must take them home; `true`: an adult, a taxi or a rideshare")
    no_alcohol_hours: int = Field(
        default=24, ge=0, le=168,
        description="\"no alcohol or cannabis for N hours\" after the visit; `0` leaves it out")
    sms_medications_max_chars: int = Field(default=40, ge=0, le=120, description=(
        "a patient's \"medications to hold\" note goes in a reminder's first text when it is at most this "
        "long; a longer one points a patient with email to it, and goes in full in the next text to a "
        "patient without; `0` keeps it out of the first text"))
    outbox_dir: Path | None = Field(default=None, description=(
        "where the local outbox writes messages when Twilio or SMTP is not configured; empty: "
        "`REMINDERS_DATA_DIR/outbox`"))
    templates_dir: Path = Field(
        default_factory=default_templates_dir,
        json_schema_extra={"shown_default": "the package's `templates/`"},
        description="the default message templates (staff edits live in the database)")
    twilio_whatsapp_from: str = Field(default="", description=(
        "the clinic's WhatsApp sender registered with Twilio, E.164 (`+15550100100`); patients who prefer "
        "WhatsApp get their texts there (see [WhatsApp](whatsapp.md)); empty: WhatsApp off"))

    # FHIR R4 appointments in (reminders.fhir, `reminders fhir sync`); empty FHIR_BASE_URL: off.
    fhir_base_url: str = Field(default="", description=(
        "the FHIR R4 server's base (`https://ehr.example/fhir`); `reminders fhir sync` and beat's sync "
        "read its appointments (see [FHIR appointments](appointments.md#fhir-appointments)); empty: FHIR "
        "off"))
    fhir_token: str = Field(default="", description=(
        "a bearer token for the FHIR server; or leave it empty and use SMART backend services (the client "
        "settings below)"))
    fhir_client_id: str = Field(default="", description="SMART backend services: the OAuth 2 client id")
    fhir_client_secret: str = Field(
        default="",
        description="SMART backend services: the OAuth 2 client secret (sent as HTTP Basic)")
    fhir_private_key_file: Path | None = Field(default=None, description=(
        "instead of a secret: an unencrypted PEM private key (RSA: the assertion is signed RS384; EC "
        "P-384: ES384)"))
    fhir_key_id: str = Field(
        default="",
        description="the `kid` of `FHIR_PRIVATE_KEY_FILE`'s key in the JWKS the server was given")
    fhir_token_url: str = Field(
        default="",
        description="the OAuth 2 token endpoint; empty: read from `FHIR_BASE_URL/.well-known/smart-configuration`")
    fhir_scope: str = Field(default="system/Appointment.read system/Patient.read", description="the scopes asked for")
    fhir_appointment_types: Annotated[dict[str, str], NoDecode] = Field(
        default={"induction": "induction", "maintenance": "maintenance"}, description=(
        "which appointment types are induction and which maintenance: a code or text of "
        "`appointmentType`, `serviceType` or `serviceCategory` (any case) = the kind, as "
        "`KET-IND=induction,KET-MAINT=maintenance` or JSON `{\"Ketamine Induction\": \"induction\"}`"))
    fhir_default_kind: str = Field(default="", description=(
        "the kind of a visit whose type is not in the mapping; empty: such a visit is rejected and named "
        "in the report"))
    fhir_sync_minutes: int = Field(
        default=5, ge=1, le=24 * 60,
        description="beat syncs this often when `FHIR_BASE_URL` is set")
    fhir_reconcile_days: int = Field(default=30, ge=0, le=730, description=(
        "each sync re-reads the visits from now to this many days ahead and cancels those here the server "
        "no longer has (deleted); `0`: never"))
    fhir_first_sync_days: int = Field(default=2, ge=0, le=365, description=(
        "the first sync of a server reads the visits from this many days ago on; later ones what changed "
        "since"))
    fhir_page_size: int = Field(default=100, ge=1, le=1000, description="`_count` of each search page")
    fhir_timeout_seconds: float = Field(
        default=30, gt=0, le=600,
        description="how long one request to the FHIR server may take")
    fhir_id_prefix: str = Field(default="fhir:", description=(
        "put before the server's ids to make `external_id` (patients and visits), so they never meet the "
        "ids of a CSV file; the window re-read cancels only visits with it (empty: no re-read)"))

    # Validated questionnaires (reminders.measures): which visits get one, when, and for how long
    # the link works. Infusion numbers past the course's series mean its last infusion.
    measures_enabled: bool = Field(
        default=True,
        description="validated questionnaires before measured visits (see [Questionnaires](measures.md))")
    measures_infusions: Annotated[list[int], NoDecode] = Field(
        default=[1, 3, 6],
        description="the induction infusions a questionnaire comes before (a number past the series: its last)")
    measures_before_maintenance: bool = Field(
        default=True,
        description="a questionnaire before every maintenance visit too")
    measures_hours_before: int = Field(
        default=48, ge=2, le=24 * 14,
        description="when the questionnaire goes before the visit")
    measures_reminder_hours_before: int = Field(
        default=30, ge=1, le=24 * 14,
        description="when its one reminder goes before the visit, if it is not done")
    questionnaire_link_days: int = Field(default=7, ge=1, le=60, description="how long a questionnaire's link works")
    measures_by_sms: bool = Field(
        default=False,
        description="questions by text one at a time instead of a link (also when `PUBLIC_BASE_URL` is not set)")
    measures_by_condition: dict[str, list[str]] = Field(default={
        "depression": ["phq9", "gad7"], "anxiety": ["gad7", "phq9"], "ptsd": ["pcl5", "phq9"],
        "pain": ["pain", "phq9"], "other": ["phq9"],
    }, description=(
        "the scales each course condition is given, in order (JSON), e.g. `{\"depression\": [\"phq9\"], "
        "\"other\": [\"phq9\"]}`; an unknown scale name is logged and skipped"))
    pcl5_response_points: int = Field(default=10, ge=1, le=80, description=(
        "PCL-5 response: a drop of at least this many points from baseline (National Center for PTSD: 10 "
        "to 20 points is a meaningful change); the PHQ-9 and GAD-7 keep a 50 % drop"))

    # HL7 v2 scheduling messages in (reminders.hl7, `reminders hl7 listen`): MLLP has no sign-in
    # and no encryption, so it listens on this machine only unless HL7_BIND says otherwise.
    hl7_port: int = Field(default=2575, ge=1, le=65535, description=(
        "the port `reminders hl7 listen` takes HL7 v2 messages on (MLLP; see [HL7 "
        "v2](appointments.md#hl7-v2))"))
    hl7_bind: str = Field(default="127.0.0.1", description=(
        "the address it listens on: MLLP has no sign-in and no encryption, so only this machine unless "
        "set (`0.0.0.0`: every address; docker-compose passes `--host 0.0.0.0` inside its container)"))
    hl7_appointment_types: Annotated[dict[str, str], NoDecode] = Field(default={
        "induction": "induction", "maintenance": "maintenance", "booster": "maintenance"}, description=(
        "which SIU appointment types are induction and which maintenance: a code or text of AIS-3, else "
        "SCH-8, else SCH-7 (any case) = the kind, as `KETIND=induction,KETMNT=maintenance` or JSON "
        "`{\"Ketamine Induction\": \"induction\"}`"))
    hl7_default_kind: str = Field(default="", description=(
        "the kind of a booking whose type is not in the mapping; empty: it is answered AE with the type "
        "named (a visit already stored keeps its kind)"))

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
        from reminders.fhir_settings import parse_appointment_types

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
        value = value.strip().removeprefix(WHATSAPP.address_prefix)
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


# Every setting in one group of the settings reference (docs/configuration.md, written by
# scripts/settings_reference.py); a new field goes in one of them.
SETTING_GROUPS: dict[str, tuple[str, ...]] = {
    "clinic": (
        "clinic_name", "clinic_phone", "clinic_address", "clinic_timezone", "crisis_line",
        "emergency_number", "default_phone_region", "staff_alert_emails", "staff_alert_phones",
        "quiet_hours_start", "quiet_hours_end", "checkin_hour", "office_hours_start", "office_hours_end",
        "office_days", "clinic_closed_days", "clinic_holidays", "induction_series_length",
        "induction_rebook_hours", "induction_rebook_days", "maintenance_interval_days",
        "maintenance_nudge_days_before", "caring_contact_weeks", "texts_per_visit",
        "unmarked_visits_count_as_attended_after_hours", "no_show_undo_minutes", "checkin_answer_hours",
        "visit_window_past_days", "visit_window_future_days", "fasting_solids_hours",
        "fasting_clear_liquids_hours", "arrive_minutes_before", "recovery_minutes", "rideshare_allowed",
        "no_alcohol_hours", "sms_medications_max_chars", "measures_enabled", "measures_infusions",
        "measures_before_maintenance", "measures_hours_before", "measures_reminder_hours_before",
        "questionnaire_link_days", "measures_by_sms", "measures_by_condition",
    ),
    "clinical thresholds": (
        "crisis_score_max", "bp_alert_systolic", "bp_alert_diastolic", "escalation_realert_minutes",
        "oncall_callback_minutes", "pcl5_response_points",
    ),
    "channels": (
        "twilio_account_sid", "twilio_auth_token", "twilio_from", "twilio_whatsapp_from",
        "twilio_api_base_url", "twilio_timeout_seconds", "public_base_url", "sms_per_second", "smtp_host",
        "smtp_port", "smtp_username", "smtp_password", "smtp_starttls", "smtp_timeout_seconds", "mail_from",
    ),
    "integrations": (
        "fhir_base_url", "fhir_token", "fhir_client_id", "fhir_client_secret", "fhir_private_key_file",
        "fhir_key_id", "fhir_token_url", "fhir_scope", "fhir_appointment_types", "fhir_default_kind",
        "fhir_sync_minutes", "fhir_reconcile_days", "fhir_first_sync_days", "fhir_page_size",
        "fhir_timeout_seconds", "fhir_id_prefix", "hl7_port", "hl7_bind", "hl7_appointment_types",
        "hl7_default_kind",
    ),
    "infrastructure": (
        "data_dir", "database_url", "database_statement_timeout_seconds",
        "database_idle_in_transaction_timeout_seconds", "redis_url", "secret_key", "mfa_required",
        "retention_days", "metrics_token", "prometheus_multiproc_dir", "trusted_proxy_hops",
        "outbox_dir", "templates_dir", "pass_seconds", "stale_send_minutes", "send_retry_first_seconds",
        "send_max_attempts", "provider_failure_threshold", "provider_probe_max_seconds",
    ),
}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    get_settings.cache_clear()
