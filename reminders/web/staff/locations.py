"""The clinic's locations (admins): the list, with the default location (the settings) first, and
a form to add a location or change one. Every field left empty is the setting's value, which the
form says beside it. reminders.locations.save_location checks and stores what was typed."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from reminders.config import Settings
from reminders.locations import OVERRIDES, LocationBook, LocationError, describe, save_location
from reminders.models import Location
from reminders.web.context import db, settings
from reminders.web.staff import audit
from reminders.web.staff.auth import guard

bp = Blueprint("locations", __name__, url_prefix="/admin/locations")
guard(bp, admin=True)

LABELS = {
    "code": "Code", "name": "Name patients read", "address": "Address", "phone": "Phone patients call",
    "timezone": "Time zone", "sender": "Sending number", "sms_per_second": "Texts a second",
    "office_hours_start": "Office hours start", "office_hours_end": "Office hours end", "office_days": "Office days",
    "holidays": "Holidays", "oncall_phones": "On-call phones", "oncall_emails": "On-call emails",
    "arrive_minutes_before": "Minutes to arrive early", "rideshare_allowed": "Rideshare home allowed",
    "active": "Active",
}
# What a field may hold (the columns' sizes), checked before the database would refuse it.
LONGEST = {"code": 40, "name": 200, "address": 300, "phone": 40, "timezone": 64, "sender": 64,
           "office_hours_start": 5, "office_hours_end": 5, "office_days": 60, "holidays": 2000,
           "oncall_phones": 2000, "oncall_emails": 2000, "sms_per_second": 20, "arrive_minutes_before": 10}
EXAMPLES = {
    "code": "Short, for CSV files and the API: lower-case letters, digits and dashes, like austin.",
    "address": "", "phone": "", "timezone": "A region, like America/Chicago.",
    "sender": "A number like +15550100100, or a Messaging Service SID (MG…).",
    "office_hours_start": "Like 08:00.", "office_hours_end": "Like 17:00.", "office_days": "Like mon-fri.",
    "holidays": "Dates like 2026-12-25, separated by commas.",
    "oncall_phones": "Numbers like +15550100100, separated by commas: texted when a patient may be in crisis.",
    "oncall_emails": "Addresses separated by commas: emailed when a patient may be in crisis.",
}
TEXT_FIELDS = ("name", "address", "phone", "timezone", "sender", "office_hours_start", "office_hours_end",
               "office_days", "holidays", "oncall_phones", "oncall_emails", "sms_per_second", "arrive_minutes_before")


def setting_text(value) -> str:
    """A setting's value as a person would type it in the form."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, time):
        return f"{value:%H:%M}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(item.isoformat() if isinstance(item, date) else str(item) for item in value)
    return str(value)


def empty_means(column: str, s: Settings) -> str:
    """What an empty field stands for: the setting's name and its value."""
    setting = OVERRIDES[column][0]
    value = setting_text(getattr(s, setting))
    return f"Empty: {setting.upper()}, {value}" if value else f"Empty: {setting.upper()} (not set)"


def field_of(message: str) -> str:
    """The form field a LocationError is about, from its words."""
    if "code" in message.split(" ", 3)[:3] or message.startswith(("Another location", "There is no location")):
        return "code"
    if "needs a name" in message:
        return "name"
    for column, (_, words) in OVERRIDES.items():
        if message.startswith((f"The {words} ", f"The {words.rstrip('s')} ")):
            return column
    return "name"


@dataclass
class Row:
    """A location in the list: its values, and which of them are the settings'."""

    place: dict
    own: set[str]
    active: bool
    default: bool = False


def _rows(book: LocationBook, locations: list[Location]) -> list[Row]:
    rows = [Row(describe(book.default), set(), True, default=True)]
    for location in locations:
        own = {column for column in OVERRIDES if getattr(location, column) not in (None, "")}
        rows.append(Row(describe(book.place(location.id)), own, location.active))
    return rows


def _locations() -> list[Location]:
    return db().scalars(select(Location).order_by(Location.active.desc(), Location.name)).all()


@bp.get("")
def index():
    locations = _locations()
    return render_template("staff/locations.html", rows=_rows(LocationBook(settings(), locations), locations))


def _values_of(location: Location | None) -> dict:
    if location is None:
        return {"code": "", **{column: "" for column in TEXT_FIELDS}, "rideshare_allowed": "", "active": True}
    values = {column: "" if getattr(location, column) is None else str(getattr(location, column))
              for column in ("code", *TEXT_FIELDS)}
    if location.sms_per_second is not None:
        values["sms_per_second"] = f"{location.sms_per_second:g}"
    rideshare = location.rideshare_allowed
    values["rideshare_allowed"] = "" if rideshare is None else ("yes" if rideshare else "no")
    values["active"] = location.active
    return values


def _typed() -> dict:
    values = {column: request.form.get(column, "").strip() for column in ("code", *TEXT_FIELDS)}
    values["rideshare_allowed"] = request.form.get("rideshare_allowed", "")
    values["active"] = request.form.get("active") == "yes"
    return values


def _form(location: Location | None, values: dict, errors: dict | None = None, status: int = 200):
    s = settings()
    return render_template("staff/location_form.html", location=location, values=values, errors=errors or {},
                           labels=LABELS, examples=EXAMPLES, text_fields=TEXT_FIELDS,
                           empty_means=lambda column: empty_means(column, s),
                           rideshare_default=setting_text(s.rideshare_allowed)), status


def _too_long(values: dict) -> None:
    for column, longest in LONGEST.items():
        if len(values.get(column, "")) > longest:
            raise LocationError(f"The {LABELS[column].lower()} is {len(values[column])} characters long; "
                                f"keep it to {longest}")


def _save(location: Location | None, values: dict):
    """Store what was typed, audited; or the form again with the reason beside the field."""
    before = _values_of(location) if location is not None else None
    fields = {**{column: values[column] for column in ("code", *TEXT_FIELDS)},
              "rideshare_allowed": {"yes": True, "no": False}.get(values["rideshare_allowed"]),
              "active": values["active"]}
    try:
        _too_long(values)
        saved = save_location(db(), fields, code=location.code if location is not None else None)
    except LocationError as exc:
        db().rollback()
        message = str(exc)
        return _form(location, values, {field_of(message): message if message.endswith(".") else message + "."}, 422)
    if before is None:
        audit.record("create_location", "location", saved.id, code=saved.code, name=saved.name)
        flash(f"{saved.name} is added. Visits booked there use its settings.", "ok")
    else:
        after = _values_of(saved)
        changed = [LABELS[column].lower() for column in LABELS if before.get(column) != after.get(column)]
        audit.record("edit_location", "location", saved.id, code=saved.code, name=saved.name,
                     changed=", ".join(changed) or "nothing")
        flash(f"{saved.name} is saved.", "ok")
    db().commit()
    return redirect(url_for(".index"))


@bp.get("/new")
def new():
    return _form(None, _values_of(None))


@bp.post("/new")
def create():
    return _save(None, _typed())


def _location(code: str) -> Location:
    location = db().scalar(select(Location).where(Location.code == code))
    if location is None:
        abort(404)
    return location


@bp.get("/<code>/edit")
def edit(code: str):
    location = _location(code)
    return _form(location, _values_of(location))


@bp.post("/<code>/edit")
def update(code: str):
    return _save(_location(code), _typed())
