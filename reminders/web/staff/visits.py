"""Visits by hand: add and edit patients and visits, cancel, mark completed or no-show, import CSV.

Every change goes through reminders.intake (the same upsert the API and the CSV import use), so
the affected visits are marked for planning and the next pass fixes their messages.
"""
from __future__ import annotations

import secrets
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, g, get_template_attribute, redirect, render_template, request, url_for
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy import select

from reminders import no_show_undo
from reminders.intake import import_jobs
from reminders.intake.csv_file import MAX_FILE_BYTES, UnusableFile
from reminders.intake.records import (
    APPOINTMENT_STATUSES, KEEP_LOCATION, AppointmentRecord, PatientRecord, VisitWindow, reasons,
)
from reminders.intake.upsert import ClosedLocation, IntakeError, upsert_appointment, upsert_patient
from reminders.locations import LocationBook, LocationError
from reminders.models import Appointment, Course, ImportJob, ImportJobRow, Patient, utcnow
from reminders.models.appointments import ACTIVE_STATUSES, AppointmentStatus
from reminders.models.patients import CONDITIONS, DEFAULT_LANGUAGE, LANGUAGES
from reminders.planning import course_dates
from reminders.planning.marking import mark_for_planning
from reminders.visits import moves
from reminders.visits.series import is_last_induction
from reminders.web.context import db, found, request_now, settings
from reminders.web.staff import audit, display, queries
from reminders.web.staff import door_checks, location_filter
from reminders.web.staff.auth import guard, safe_next
from reminders.web.staff.forms import (
    PATIENT_LABELS, VISIT_LABELS, patient_field_errors, visit_field_errors, visit_time_error,
)
from reminders.web.staff.patients import get_patient
from reminders.zones import iana_zones, is_region

bp = Blueprint("visits", __name__)
guard(bp)
# A visit's clinic location by name, on any staff page (nothing while the clinic has one location).
bp.add_app_template_global(location_filter.place_name, "place_name")

PATIENT_FIELDS = ("first_name", "last_name", "phone", "email", "timezone", "preferred_channel")
# Optional in a post (a form without them keeps what is stored), checked by PatientRecord too.
PREPARATION_FIELDS = ("language", "medications_to_hold")
LANGUAGE_NAMES = {"en": "English", "es": "Español (Spanish)"}
REPORT_ROWS_SHOWN = 2000
STATUS_ACTIONS = {AppointmentStatus.CANCELED: "canceled", AppointmentStatus.COMPLETED: "marked completed",
                  AppointmentStatus.NO_SHOW: "marked no-show", AppointmentStatus.SCHEDULED: "reopened"}
# What a course treats, as the forms offer it ("" is not recorded).
CONDITION_CHOICES = [("", "not recorded")] + [(c, "PTSD" if c == "ptsd" else c) for c in CONDITIONS]
KEEP = object()  # a form without the condition field leaves the course's as it is


def form_condition(errors: dict[str, str]):
    """The condition the posted form sets: a CONDITIONS value, None (not recorded), or KEEP."""
    if "condition" not in request.form:
        return KEEP
    value = request.form["condition"].strip().lower()
    if value and value not in CONDITIONS:
        errors["condition"] = "Choose a condition from the list."
        return KEEP
    return value or None


def set_course_condition(course: Course | None, condition) -> None:
    """Set and audit a change of what the course treats (the questionnaires it is sent follow it)."""
    if condition is KEEP or course is None or course.condition == condition:
        return
    course.condition = condition
    audit.record("change_condition", "course", course.id, patient_id=course.patient_id, condition=condition)


def open_course(patient: Patient) -> Course | None:
    """The course a new visit joins (reminders.intake.upsert.current_course), if there is one yet."""
    return next((c for c in reversed(patient.courses) if c.ended_at is None), None)


def new_external_id(prefix: str) -> str:
    return f"staff-{prefix}-{secrets.token_hex(5)}"


def zone_names() -> list[str]:
    """The zones the form offers: regions only (reminders.zones refuses "EST" and the like)."""
    return sorted(zone for zone in iana_zones() if is_region(zone))


# --- Patients ------------------------------------------------------------------------------------

def _patient_values(patient: Patient | None) -> dict:
    if patient is None:
        return {"first_name": "", "last_name": "", "phone": "", "email": "", "preferred_channel": "sms",
                "timezone": settings().clinic_timezone, "notes": "", "language": DEFAULT_LANGUAGE,
                "medications_to_hold": ""}
    values = {name: getattr(patient, name) or "" for name in (*PATIENT_FIELDS, *PREPARATION_FIELDS)}
    values["notes"] = patient.notes or ""
    return values


def _render_patient_form(patient: Patient | None, values: dict, errors: dict[str, str], status: int = 200,
                         duplicates=()):
    return render_template("staff/patient_form.html", patient=patient, values=values, errors=errors,
                           labels=PATIENT_LABELS, duplicates=duplicates, describe=door_checks.describe_duplicate,
                           zones=zone_names(), languages=[(code, LANGUAGE_NAMES.get(code, code)) for code in LANGUAGES],
                           sms_medications_max=settings().sms_medications_max_chars), status


@bp.route("/patients/new", methods=["GET", "POST"])
def new_patient():
    return _patient_form(None)


@bp.route("/patients/<int:patient_id>/edit", methods=["GET", "POST"])
def edit_patient(patient_id: int):
    return _patient_form(get_patient(patient_id))


def _patient_form(patient: Patient | None):
    session = db()
    if request.method == "GET":
        if patient is not None:
            audit.record("view_patient_form", "patient", patient.id)
            session.commit()
        return _render_patient_form(patient, _patient_values(patient), {})
    values = {name: request.form.get(name, "").strip() for name in (*PATIENT_FIELDS, "notes")}
    values["notes"] = values["notes"].replace("\x00", "")  # the other fields are checked by PatientRecord
    external_id = (patient.external_id if patient is not None else None) or new_external_id("p")
    # A blank last name is left out so that the record's default ("") applies: PatientRecord turns
    # "" into None before checking it is a string.
    given = {name: values[name] for name in PATIENT_FIELDS if values[name] or name != "last_name"}
    for name in PREPARATION_FIELDS:
        if name in request.form:
            given[name] = values[name] = request.form[name].strip()
    try:
        record = PatientRecord(external_id=external_id, phone_region=settings().default_phone_region, **given)
    except ValidationError as exc:
        return _render_patient_form(patient, values, patient_field_errors(exc), 422)
    duplicates = [] if patient is not None else door_checks.possible_duplicates(
        session, record.first_name, record.last_name or "", record.phone)
    if duplicates and request.form.get("create_anyway") != "1":
        audit.record("duplicate_patient_shown", "patient", "", possible_duplicates=[d.patient.id for d in duplicates])
        session.commit()
        return _render_patient_form(None, values, {}, 409, duplicates=duplicates)
    if patient is not None and patient.external_id is None:
        patient.external_id = external_id
    outcome = upsert_patient(session, record, request_now())
    saved = outcome.patient
    if saved.notes != values["notes"]:
        saved.notes = values["notes"]
    session.flush()
    audit.record("create_patient" if patient is None else "edit_patient", "patient", saved.id,
                 result=outcome.result,
                 **({"created_despite_possible_duplicates": [d.patient.id for d in duplicates]} if duplicates else {}))
    session.commit()
    flash(f"{saved.full_name} saved.", "ok")
    return redirect(url_for("patients.show", patient_id=saved.id))


# --- Visits --------------------------------------------------------------------------------------

def _visit_values(appointment: Appointment | None, patient: Patient) -> dict:
    if appointment is None:
        course = open_course(patient)
        return {"kind": _likely_kind(patient), "date": "", "time": "", "duration_minutes": "60", "location": "",
                "place": _usual_place(patient), "status": AppointmentStatus.SCHEDULED,
                "condition": (course.condition if course else None) or ""}
    local = appointment.starts_at.astimezone(ZoneInfo(patient.timezone))
    return {"kind": appointment.kind, "date": local.date().isoformat(), "time": local.strftime("%H:%M"),
            "duration_minutes": str(appointment.duration_minutes), "location": appointment.location,
            "place": _book().place(appointment.location_id).code, "status": appointment.status,
            "condition": (appointment.course.condition if appointment.course else None) or ""}


def _book() -> LocationBook:
    return location_filter.book()


def _open(location_id: int) -> bool:
    """Whether the location takes new visits (an inactive one keeps only the visits it has)."""
    return any(place.id == location_id for place in _book().choices())


def _usual_place(patient: Patient) -> str:
    """A new visit's location as the form first offers it: the patient's latest visit's, if still open."""
    held = [a for a in patient.appointments if a.status != AppointmentStatus.CANCELED and a.location_id is not None]
    if not held:
        return ""
    location_id = held[-1].location_id
    return _book().place(location_id).code if _open(location_id) else ""


def _place_choices(appointment: Appointment | None) -> list:
    """The locations the form offers (the default first, as ""): the open ones, and the visit's own."""
    book = _book()
    if not book.several:
        return []
    places = book.choices()
    if appointment is not None and appointment.location_id is not None and not _open(appointment.location_id):
        places = [*places, book.place(appointment.location_id)]
    return [("", book.default.name), *((place.code, place.name) for place in places)]


def _form_place(appointment: Appointment | None, errors: dict[str, str]):
    """The location the posted form chose: an id, None (the default), or KEEP_LOCATION when the form
    has no location select (a clinic with one location)."""
    if "place" not in request.form or not _book().several:
        return KEEP_LOCATION
    try:
        location_id = _book().match(request.form["place"])
    except LocationError:
        errors["place"] = "Choose a location from the list."
        return KEEP_LOCATION
    stored = appointment.location_id if appointment is not None else None
    if location_id is not None and location_id != stored and not _open(location_id):
        errors["place"] = "That location is closed to new visits: choose another."
        return KEEP_LOCATION
    return location_id


def _likely_kind(patient: Patient) -> str:
    held = [a for a in patient.appointments if a.status != AppointmentStatus.CANCELED]
    if not held:
        return "induction"
    last = held[-1]
    return "induction" if last.kind == "induction" and not is_last_induction(last, settings()) else "maintenance"


def local_instant(day: str, clock: str, zone: str) -> datetime:
    """A wall-clock time in the patient's zone as an aware instant; ValueError with a reason."""
    try:
        parsed_day = date.fromisoformat(day)
    except ValueError:
        raise ValueError("the date is missing or not a date") from None
    try:
        parsed_time = time.fromisoformat(clock)
    except ValueError:
        raise ValueError("the time is missing or not a time (like 09:30)") from None
    tz = ZoneInfo(zone)
    naive = datetime.combine(parsed_day, parsed_time)
    instant = naive.replace(tzinfo=tz)
    try:
        round_trip = instant.astimezone(ZoneInfo("UTC")).astimezone(tz).replace(tzinfo=None)
    except OverflowError:  # 9999-12-31 23:30 in a zone behind UTC
        raise ValueError(f"the date {day} is not a plausible visit date (check the year)") from None
    if round_trip != naive:
        raise ValueError(f"{clock} on {day} does not exist in {zone} (the clocks go forward then)")
    return instant


def _render_visit_form(patient, appointment, values, errors: dict[str, str], status: int = 200):
    places = _place_choices(appointment)
    labels = {**VISIT_LABELS, "place": "Location", "location": "Room"} if places else VISIT_LABELS
    return render_template("staff/visit_form.html", patient=patient, appointment=appointment, values=values,
                           errors=errors, labels=labels, statuses=APPOINTMENT_STATUSES,
                           conditions=CONDITION_CHOICES, places=places), status


@bp.route("/patients/<int:patient_id>/visits/new", methods=["GET", "POST"])
def new_visit(patient_id: int):
    return _visit_form(get_patient(patient_id), None)


@bp.route("/visits/<int:appointment_id>/edit", methods=["GET", "POST"])
def edit_visit(appointment_id: int):
    appointment = _get_appointment(appointment_id)
    return _visit_form(appointment.patient, appointment)


def _get_appointment(appointment_id: int) -> Appointment:
    return found(Appointment, appointment_id)


def _visit_form(patient: Patient, appointment: Appointment | None):
    session = db()
    if request.method == "GET":
        audit.record("view_visit_form", "patient", patient.id, appointment_id=appointment.id if appointment else None)
        session.commit()
        values = _visit_values(appointment, patient)
        if appointment is None:  # a suggested next visit or replacement comes prefilled
            values.update({name: request.args[name].strip() for name in ("kind", "date", "time", "duration_minutes",
                                                                            "location", "place") if request.args.get(name)})
        return _render_visit_form(patient, appointment, values, {})
    values = {name: request.form.get(name, "").strip()
              for name in ("kind", "date", "time", "duration_minutes", "location", "place", "status", "condition")}
    errors: dict[str, str] = {}
    condition = form_condition(errors)
    location_id = _form_place(appointment, errors)
    try:
        starts_at = local_instant(values["date"], values["time"], patient.timezone)
    except ValueError as exc:
        field, sentence = visit_time_error(str(exc))
        errors[field] = sentence
        starts_at = None
    external_id = (appointment.external_id if appointment is not None else None) or new_external_id("v")
    record = None
    # A new time must fall in the booking window; a visit already on the books keeps its time.
    moved = appointment is None or starts_at != appointment.starts_at
    context = {"visit_window": VisitWindow.from_settings(settings(), request_now())} if moved and starts_at else None
    try:
        record = AppointmentRecord.model_validate(
            {"external_id": external_id, "kind": values["kind"], "starts_at": starts_at or request_now(),
             "duration_minutes": values["duration_minutes"], "location": values["location"],
             "status": values["status"] or None},
            context=context)
    except ValidationError as exc:
        for field, sentence in visit_field_errors(exc).items():
            errors.setdefault(field, sentence)
    if record is not None:
        record.location_id = location_id
    if not errors and moved and record.status in door_checks.HOLDS_TIME:
        other = door_checks.overlapping_visit(patient, starts_at, record.duration_minutes, leave_out=appointment)
        if other is not None:
            errors["time"] = door_checks.overlap_message(patient, other)
            audit.record("overlap_refused", "appointment", other.id, patient_id=patient.id)
            session.commit()
            return _render_visit_form(patient, appointment, values, errors, 409)
    if errors:
        return _render_visit_form(patient, appointment, values, errors, 422)
    if appointment is not None and appointment.external_id is None:
        appointment.external_id = external_id
    try:
        outcome = upsert_appointment(session, patient, record, request_now(), settings().induction_series_length)
    except ClosedLocation:
        session.rollback()
        return _render_visit_form(patient, appointment, values,
                                  {"place": "That location is closed to new visits: choose another."}, 422)
    except IntakeError as exc:
        session.rollback()
        return _render_visit_form(patient, appointment, values, {"date": str(exc)}, 409)
    audit.record("create_visit" if appointment is None else "edit_visit", "appointment", outcome.appointment.id,
                 patient_id=patient.id, result=outcome.result)
    set_course_condition(outcome.appointment.course, condition)
    session.commit()
    flash(f"Visit {'booked' if appointment is None else 'saved'}: the reminders will follow the change.", "ok")
    holidays = _book().settings_for(outcome.appointment.location_id).clinic_holidays  # the location's own
    holiday = door_checks.holiday_warning(starts_at.astimezone(ZoneInfo(patient.timezone)).date(),
                                          holidays) if moved else None
    if holiday:
        flash(holiday, "warn")
    return redirect(url_for("patients.show", patient_id=patient.id))


@bp.post("/visits/<int:appointment_id>/status")
def change_status(appointment_id: int):
    session = db()
    appointment = _get_appointment(appointment_id)
    patient = appointment.patient
    wanted = request.form.get("status", "")
    back = safe_next(request.form.get("next") or url_for("patients.show", patient_id=patient.id))
    if wanted not in STATUS_ACTIONS:
        abort(400)
    if wanted in (AppointmentStatus.COMPLETED, AppointmentStatus.NO_SHOW) and not queries.day_has_come(
            appointment, request_now()):
        flash("A visit can be marked completed or no-show on its day or later.", "error")
        return redirect(back)
    if wanted == AppointmentStatus.NO_SHOW and request.form.get("confirmed") != "yes":
        return _confirm_no_show(appointment, back)
    outcome = _save_status(session, appointment, wanted, request_now(), by=moves.MARK)
    audit.record(f"visit_{wanted}", "appointment", appointment.id, patient_id=patient.id, result=outcome.result)
    session.commit()
    flash(_status_message(appointment, wanted, back), "ok")
    return redirect(back)


def _save_status(session, appointment: Appointment, status: str, now: datetime, *, by: str):
    """The visit with a new status, through intake as any booking change (the planner follows)."""
    record = AppointmentRecord(
        external_id=appointment.external_id or new_external_id("v"), kind=appointment.kind,
        starts_at=appointment.starts_at, duration_minutes=appointment.duration_minutes,
        location=appointment.location, status=status,
    )
    if appointment.external_id is None:
        appointment.external_id = record.external_id
    return upsert_appointment(session, appointment.patient, record, now, settings().induction_series_length, by=by)


def _confirm_no_show(appointment: Appointment, back: str):
    """The no-show's confirmation (a page, so it works without JavaScript): it names the patient
    and the visit, and says when "we missed you" goes."""
    window = no_show_undo.undo_window(settings())
    return render_template("staff/no_show_confirm.html", appointment=appointment, patient=appointment.patient,
                           back=back, undo_minutes=int(window.total_seconds() // 60),
                           progress=queries.progress(appointment, settings().induction_series_length))


@bp.post("/visits/<int:appointment_id>/undo")
def undo_status(appointment_id: int):
    """Put a visit marked completed or no-show back as it was, within NO_SHOW_UNDO_MINUTES."""
    session = db()
    appointment = _get_appointment(appointment_id)
    patient = appointment.patient
    back = safe_next(request.form.get("next") or url_for("patients.show", patient_id=patient.id))
    now = request_now()
    if no_show_undo.undo_until(appointment, no_show_undo.undo_window(settings())) is None:
        flash(f"Nothing to undo: {patient.full_name}'s visit is {appointment.status.replace('_', ' ')}.", "error")
        return redirect(back)
    if not no_show_undo.can_undo(appointment, no_show_undo.undo_window(settings()), now):
        flash(f"Too late to undo: {patient.full_name}'s visit stays marked {appointment.status.replace('_', ' ')}. "
              "Change it from the visit's Edit page if it is wrong.", "error")
        return redirect(back)
    undone, restored = appointment.status, no_show_undo.status_to_restore(appointment)
    outcome = _save_status(session, appointment, restored, now, by=moves.UNDO)
    audit.record(f"visit_undo_{undone}", "appointment", appointment.id, patient_id=patient.id, result=outcome.result)
    session.commit()
    sent_nothing = " Nothing was sent to the patient." if undone == AppointmentStatus.NO_SHOW else ""
    flash(f"Undone: {patient.full_name}'s visit at {display.time_only(appointment.starts_at)} is "
          f"{restored} again.{sent_nothing}", "ok")
    return redirect(back)


def _held_in_course(appointment: Appointment) -> list[Appointment]:
    if appointment.course is None:
        return [appointment] if appointment.status != AppointmentStatus.CANCELED else []
    return sorted((a for a in appointment.course.appointments if a.status != AppointmentStatus.CANCELED),
                  key=lambda a: a.starts_at)


def _suggestion_link(patient: Patient, like: Appointment, day: date, text: str) -> Markup:
    """A link to the visit form prefilled for `day` at `like`'s time, place and length."""
    local = like.starts_at.astimezone(ZoneInfo(patient.timezone))
    href = url_for("visits.new_visit", patient_id=patient.id, kind=like.kind, date=day.isoformat(),
                   time=local.strftime("%H:%M"), location=like.location or "",
                   duration_minutes=str(like.duration_minutes),
                   **({"place": _book().place(like.location_id).code} if like.location_id is not None else {}))
    label = f"{day:%a} {day.day} {day:%b} {local.hour}:{local:%M}"
    return Markup('<a class="suggest-link" href="{}">{}: {}</a>').format(href, text, label)


def _marked_message(appointment: Appointment, wanted: str, back: str | None = None) -> Markup | str:
    """"Marcus Lee's 8:00 AM EST visit marked no-show." with its Undo button in the notice itself, so
    the undo is at hand wherever the mark was made (an earlier visit leaves Today once marked)."""
    done = (f"{appointment.patient.full_name}'s {display.time_only(appointment.starts_at)} visit "
            f"{STATUS_ACTIONS[wanted]}.")
    until = no_show_undo.undo_until(appointment, no_show_undo.undo_window(settings()))
    if until is None:
        return done
    if wanted == AppointmentStatus.NO_SHOW:
        done += " The \"we missed you\" text waits until the undo time is over."
    undo_button = get_template_attribute("staff/_visit_marks.html", "undo_button")
    return Markup("{} {}").format(done, undo_button(appointment, until, next=back))


def _status_message(appointment: Appointment, wanted: str, back: str | None = None) -> Markup | str:
    """The flash after a status change; after a completed infusion it proposes the next visit, after
    a cancellation a replacement at the end of the series (prefilled links to the visit form)."""
    done = f"Visit {STATUS_ACTIONS[wanted]}."
    if wanted in no_show_undo.UNDOABLE:
        done = _marked_message(appointment, wanted, back)
    if appointment.kind != "induction" or wanted not in (AppointmentStatus.COMPLETED, AppointmentStatus.CANCELED):
        return done
    patient = appointment.patient
    zone = ZoneInfo(patient.timezone)
    held = _held_in_course(appointment)
    days = [a.starts_at.astimezone(zone).date() for a in held]
    pattern = course_dates.guess_pattern(days)
    closed, holidays = settings().clinic_closed_days, frozenset(settings().clinic_holidays)
    try:
        if wanted == AppointmentStatus.COMPLETED:
            later = [a for a in held if a.starts_at > appointment.starts_at]
            if later or is_last_induction(appointment, settings()):
                return done
            day = course_dates.next_day(appointment.starts_at.astimezone(zone).date(), pattern, closed, holidays)
            return Markup("{} {}").format(done, _suggestion_link(patient, appointment, day, "Book the next visit"))
        if not held:
            return done
        last = held[-1]
        day = course_dates.next_day(last.starts_at.astimezone(zone).date(), pattern, closed, holidays)
        return Markup("{} {}").format(done, _suggestion_link(patient, last, day,
                                                               "Add a replacement at the end of the series"))
    except course_dates.CourseDatesError:
        return done


# --- A whole induction course -------------------------------------------------------------------

COURSE_FIELDS = ("first_date", "time", "pattern", "length", "duration_minutes", "location", "place", "condition")


def _course_values(patient: Patient) -> dict:
    # A new course most often treats what the last one did.
    last = patient.courses[-1].condition if patient.courses else None
    return {"first_date": "", "time": "", "pattern": course_dates.DEFAULT_PATTERN,
            "length": str(settings().induction_series_length), "duration_minutes": "60", "location": "",
            "place": _usual_place(patient), "condition": last or ""}


def _render_course_form(patient: Patient, values: dict, errors: dict, preview=None, status: int = 200,
                        changed: bool = False):
    closed = settings().clinic_closed_days
    return render_template(
        "staff/course_form.html", patient=patient, values=values, errors=errors, preview=preview, changed=changed,
        previewed=",".join(start.isoformat() for start in preview or []),
        patterns=[(key, label) for key, (label, _, _) in course_dates.PATTERNS.items()],
        closed_names=[course_dates.DAY_NAMES[d] for d in closed], max_length=course_dates.MAX_LENGTH,
        holidays=[day for day in settings().clinic_holidays if day >= request_now().date()],
        conditions=CONDITION_CHOICES, places=_place_choices(None),
    ), status


def _course_starts(patient: Patient, values: dict, errors: dict) -> list[datetime]:
    """The visits' start instants from the form, or [] with the reasons by field in `errors`."""
    try:
        first = date.fromisoformat(values["first_date"])
    except ValueError:
        errors["first_date"] = "Enter the date of the first visit."
    try:
        at = time.fromisoformat(values["time"])
    except ValueError:
        errors["time"] = "Enter the time of the visits, like 09:00."
    try:
        length = int(values["length"])
        if not 1 <= length <= course_dates.MAX_LENGTH:
            raise ValueError
    except ValueError:
        errors["length"] = f"Enter a number of visits from 1 to {course_dates.MAX_LENGTH}."
    if values["pattern"] not in course_dates.PATTERNS:
        errors["pattern"] = "Choose one of the patterns."
    if errors:
        return []
    plan = course_dates.CoursePlan(first, at, patient.timezone, values["pattern"], length,
                                   frozenset(settings().clinic_closed_days), frozenset(settings().clinic_holidays))
    try:
        return course_dates.course_starts(plan)
    except course_dates.CourseDatesError as exc:
        errors["first_date"] = str(exc)
        return []


def _course_records(values: dict, starts: list[datetime], errors: dict) -> list[AppointmentRecord]:
    window = VisitWindow.from_settings(settings(), request_now())
    records = []
    for starts_at in starts:
        try:
            records.append(AppointmentRecord.model_validate(
                {"external_id": new_external_id("v"), "kind": "induction", "starts_at": starts_at,
                 "duration_minutes": values["duration_minutes"] or "60", "location": values["location"],
                 "status": AppointmentStatus.SCHEDULED},
                context={"visit_window": window}))
        except ValidationError as exc:
            for reason in reasons(exc):
                field = "duration_minutes" if "duration" in reason else "location" if "location" in reason else "first_date"
                errors.setdefault(field, reason)
            return []
    return records


def _start_fresh_course(session, patient: Patient, now: datetime) -> str | None:
    """Close the patient's open course if it has visits (all behind them), so that the new visits
    start a course of their own; why not, when it still has visits to come."""
    open_courses = session.scalars(select(Course).where(Course.patient_id == patient.id, Course.ended_at.is_(None)))
    for course in open_courses:
        held = [a for a in course.appointments if a.status != AppointmentStatus.CANCELED]
        coming = sorted(a.starts_at for a in held if a.status in ACTIVE_STATUSES and a.starts_at > now)
        if coming:
            return (f"{patient.full_name} still has a visit booked on {coming[0].astimezone(ZoneInfo(patient.timezone)):%a %b %d} "
                    "in the current course. Cancel the visits to come first, or book single visits.")
        if held:
            course.ended_at = now
            audit.record("end_course", "course", course.id, patient_id=patient.id)
    session.flush()
    return None


@bp.route("/patients/<int:patient_id>/courses/new", methods=["GET", "POST"])
def new_course(patient_id: int):
    """Book an induction course in one form: first date and time, a pattern, length and place once;
    "Preview" lists the visits, "Book N visits" saves them all through the same upsert as one visit."""
    session = db()
    patient = get_patient(patient_id)
    if request.method == "GET":
        audit.record("view_course_form", "patient", patient.id)
        session.commit()
        return _render_course_form(patient, _course_values(patient), {})
    values = {name: request.form.get(name, "").strip() for name in COURSE_FIELDS}
    errors: dict[str, str] = {}
    condition = form_condition(errors)
    location_id = _form_place(None, errors)
    starts = _course_starts(patient, values, errors)
    records = _course_records(values, starts, errors) if starts else []
    for record in records:
        record.location_id = location_id
    overlap = door_checks.first_overlap(patient, starts, records[0].duration_minutes) if records else None
    if overlap:
        errors["first_date"] = overlap
    if errors:
        return _render_course_form(patient, values, errors, status=409 if overlap else 422)
    shown = ",".join(start.isoformat() for start in starts)
    if request.form.get("action") != "book":
        return _render_course_form(patient, values, {}, preview=starts)
    if request.form.get("previewed") != shown:  # the form changed after its preview: show the new one
        return _render_course_form(patient, values, {}, preview=starts, changed=True)
    now = request_now()
    refusal = _start_fresh_course(session, patient, now)
    if refusal:
        session.rollback()
        return _render_course_form(patient, values, {"first_date": refusal}, preview=starts, status=409)
    created = []
    try:
        for record in records:
            outcome = upsert_appointment(session, patient, record, now, len(records))
            created.append(outcome.appointment)
    except IntakeError as exc:
        session.rollback()
        return _render_course_form(patient, values, {"first_date": str(exc)}, preview=starts, status=409)
    course = created[0].course
    held = [a for a in course.appointments if a.status != AppointmentStatus.CANCELED and a.kind == "induction"]
    if course.induction_sessions_planned < len(held):
        course.induction_sessions_planned = min(len(held), course_dates.MAX_LENGTH)
    for appointment in created:
        audit.record("create_visit", "appointment", appointment.id, patient_id=patient.id, result="created")
    audit.record("create_course", "course", course.id, patient_id=patient.id, visits=len(created),
                 pattern=values["pattern"])
    set_course_condition(course, condition)
    session.commit()
    flash(f"{len(created)} visits booked: the reminders will follow.", "ok")
    return redirect(url_for("patients.show", patient_id=patient.id))


@bp.post("/courses/<int:course_id>/series")
def change_series(course_id: int):
    session = db()
    course = session.get(Course, course_id)
    if course is None:
        abort(404)
    try:
        planned = int(request.form.get("induction_sessions_planned", ""))
    except ValueError:
        planned = 0
    condition = request.form.get("condition")
    if condition is not None and (condition or None) != course.condition:
        if condition and condition not in CONDITIONS:
            flash(f"Condition must be one of {', '.join(CONDITIONS)}.", "error")
        else:
            course.condition = condition or None
            audit.record("change_condition", "course", course.id, patient_id=course.patient_id,
                         condition=course.condition)
            session.commit()
            flash(f"Course condition set to {course.condition or 'not recorded'}.", "ok")
    if not 1 <= planned <= 12:
        flash("The induction series must be between 1 and 12 infusions.", "error")
    elif planned != course.induction_sessions_planned:
        course.induction_sessions_planned = planned
        mark_for_planning(session, appointment_ids=[a.id for a in course.appointments])
        audit.record("change_series", "course", course.id, patient_id=course.patient_id, planned=planned)
        session.commit()
        flash(f"Induction series set to {planned} infusions.", "ok")
    return redirect(url_for("patients.show", patient_id=course.patient_id))


# --- CSV import ---------------------------------------------------------------------------------
# The upload is stored as an import job and imported off the request (intake.import_jobs); the
# report page refreshes itself until the job is done.

def _clock():
    from flask import current_app

    clock = current_app.config.get("CLOCK")
    return clock or utcnow


def _start_job(job_id: int) -> None:
    from flask import current_app

    s = settings()
    import_jobs.run_in_thread(current_app.extensions["reminders.sessions"], job_id, _clock(),
                              phone_region=s.default_phone_region, series_length=s.induction_series_length,
                              window=lambda now: VisitWindow.from_settings(s, now), settings=s)


def _recent_jobs() -> list[ImportJob]:
    return list(db().scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(10)))


@bp.route("/visits/import", methods=["GET", "POST"])
def import_csv():
    now = _clock()()
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


def _get_job(job_id: int) -> ImportJob:
    job = db().get(ImportJob, job_id)
    if job is None:
        abort(404)
    return job


@bp.get("/visits/imports/<int:job_id>")
def import_report(job_id: int):
    job = _get_job(job_id)
    now = _clock()()
    rows = list(db().scalars(select(ImportJobRow).where(ImportJobRow.job_id == job.id)
                             .order_by(ImportJobRow.line).limit(REPORT_ROWS_SHOWN + 1)))
    return render_template("staff/import_job.html", job=job, state=import_jobs.state(job, now),
                           can_run_again=import_jobs.can_run_again(job, now), rows=rows[:REPORT_ROWS_SHOWN],
                           more=len(rows) > REPORT_ROWS_SHOWN, full=job.lines_total <= import_jobs.FULL_REPORT_LINES,
                           stale_minutes=int(import_jobs.STALE_AFTER.total_seconds() // 60))


@bp.post("/visits/imports/<int:job_id>/run")
def run_import_again(job_id: int):
    session = db()
    job = _get_job(job_id)
    if import_jobs.queue_again(session, job, _clock()()):
        audit.record("rerun_import", "import_job", job.id)
        session.commit()
        _start_job(job.id)
        flash("Import started again: rows already imported stay as they are.", "ok")
    else:
        flash("This import is not interrupted: there is nothing to run again.", "error")
    return redirect(url_for("visits.import_report", job_id=job.id), 303)
