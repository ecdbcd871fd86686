"""Message templates: the files in templates/ are the defaults; staff versions in the database win.

Rendering happens in Jinja2's sandbox with StrictUndefined, so a template can neither reach
Python internals nor silently print an empty name.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import FunctionLoader, StrictUndefined, TemplateError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.channels.segments import gsm_safe
from reminders.models import Appointment, Patient, TemplateVersion

SUFFIXES = {"sms": ".sms.j2", "subject": ".subject.j2", "text": ".email.txt.j2", "html": ".email.html.j2"}


@dataclass(frozen=True)
class TemplateProblem:
    name: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "template"
        return f"{self.name}, {where}: {self.reason}"


class TemplateStore:
    """Where template sources come from. One store per pass: overrides are read once."""

    def __init__(self, templates_dir: Path, session: Session | None = None):
        self.templates_dir = Path(templates_dir)
        self.session = session
        self._overrides: dict[str, str] | None = None
        self._environment: SandboxedEnvironment | None = None

    @property
    def environment(self) -> SandboxedEnvironment:
        """One sandbox per store, so each template is compiled once per pass."""
        if self._environment is None:
            self._environment = environment(self)
        return self._environment

    def language_dirs(self) -> list[Path]:
        return [p for p in self.templates_dir.iterdir() if p.is_dir() and len(p.name) == 2] if self.templates_dir.is_dir() else []

    def default_names(self) -> list[str]:
        return sorted(p.name for p in self.templates_dir.glob("*.j2"))

    def default_source(self, name: str) -> str | None:
        """A file in templates/, or in a language's folder there ("es/reply_crisis.sms.j2")."""
        path = self.templates_dir / name
        if path.parent not in (self.templates_dir, *self.language_dirs()) or not path.is_file():
            return None
        return path.read_text(encoding="utf-8")

    def overrides(self) -> dict[str, str]:
        if self._overrides is None:
            self._overrides = {}
            if self.session is not None:
                rows = self.session.scalars(
                    select(TemplateVersion).where(TemplateVersion.active).order_by(TemplateVersion.created_at, TemplateVersion.id)
                )
                for row in rows:  # the newest active version wins
                    self._overrides[row.name] = row.source
        return self._overrides

    def source(self, name: str) -> str | None:
        return self.overrides().get(name) or self.default_source(name)

    def exists(self, name: str) -> bool:
        return self.source(name) is not None


def _autoescape(name: str | None) -> bool:
    return bool(name and name.endswith(".html.j2"))


def environment(store: TemplateStore) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FunctionLoader(store.source),
        undefined=StrictUndefined,
        autoescape=_autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(store: TemplateStore, name: str, context: dict) -> str:
    text = store.environment.get_template(name).render(**context)
    if name.endswith(".sms.j2") or name.endswith(".subject.j2"):
        return _tidy_sms(text)
    return text.strip() + "\n"


def _tidy_sms(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.strip().splitlines()]
    return gsm_safe("\n".join(line for line in lines if line))


def validate(store: TemplateStore, name: str, source: str, context: dict) -> TemplateProblem | None:
    """Parse and render a candidate source with a sample context; the problem names its line."""
    env = environment(store)
    try:
        template = env.from_string(source)
    except TemplateSyntaxError as exc:
        return TemplateProblem(name, exc.lineno, exc.message or "syntax error")
    try:
        template.render(**context)
    except TemplateError as exc:
        return TemplateProblem(name, _template_line(exc), str(exc.message if hasattr(exc, "message") else exc))
    except Exception as exc:  # noqa: BLE001 - any failure of a candidate template is a refusal
        return TemplateProblem(name, _template_line(exc), f"{type(exc).__name__}: {exc}")
    return None


def _template_line(exc: BaseException) -> int | None:
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == "<template>":
            line = frame.lineno
    return line


def team_name(clinic_name: str) -> str:
    """"the Infusion Clinic team" for "The Infusion Clinic", "the Sunrise Ketamine team" otherwise."""
    name = clinic_name.strip()
    if name[:4].lower() == "the ":
        name = name[4:]
    return f"the {name} team"


def team_name_es(clinic_name: str) -> str:
    """"el equipo de The Infusion Clinic": names stay as the clinic writes them."""
    return f"el equipo de {clinic_name.strip()}"


def clinic_context(settings) -> dict:
    return {
        "name": settings.clinic_name,
        "team": team_name(settings.clinic_name),
        "team_es": team_name_es(settings.clinic_name),
        "phone": settings.clinic_phone,
        "address": settings.clinic_address,
        "crisis_line": settings.crisis_line,
        "emergency_number": settings.emergency_number,
    }


def visit_context(appointment: Appointment, zone: str, series_length: int) -> dict:
    local = appointment.starts_at.astimezone(ZoneInfo(zone))
    return {
        "date": f"{local:%A, %B} {local.day}",
        "time": local.strftime("%I:%M %p").lstrip("0"),
        "starts_at": local.isoformat(),
        "location": appointment.location or "",
        "kind": appointment.kind,
        "number": appointment.number_in_course,
        "series_length": max(series_length, appointment.number_in_course),
        "is_first": appointment.kind == "induction" and appointment.number_in_course == 1,
        "duration_minutes": appointment.duration_minutes,
    }


def message_context(settings, patient: Patient, appointment: Appointment | None, series_length: int) -> dict:
    context = {
        "patient": {"first_name": patient.first_name, "last_name": patient.last_name},
        "clinic": clinic_context(settings),
        "visit": None,
    }
    if appointment is not None:
        context["visit"] = visit_context(appointment, patient.timezone, series_length)
    return context


def sample_context(settings) -> dict:
    """A made-up patient and visit, for previews and for checking a template before it is saved."""
    return {
        "patient": {"first_name": "Alex", "last_name": "Rivera"},
        "clinic": clinic_context(settings),
        "visit": {
            "date": "Tuesday, March 3", "time": "9:30 AM", "starts_at": "2026-03-03T09:30:00-05:00",
            "location": "Suite 200", "kind": "induction", "number": 3, "series_length": 6,
            "is_first": False, "duration_minutes": 60,
        },
    }

