"""A visit marked canceled, completed or no-show (or reopened) from its buttons, and the undo of a
mark within NO_SHOW_UNDO_MINUTES. The status goes through intake as any booking change, so the
planner follows; the notice after it proposes the next visit of an induction series."""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import abort, flash, get_template_attribute, redirect, render_template, request, url_for
from markupsafe import Markup

from reminders import no_show_undo
from reminders.intake.records import AppointmentRecord
from reminders.intake.upsert import upsert_appointment
from reminders.models import Appointment, Patient
from reminders.models.appointments import AppointmentStatus
from reminders.timing import course_dates
from reminders.visits import moves
from reminders.visits.series import is_last_induction
from reminders.web.context import db, request_now, settings
from reminders.web.staff import audit, display, queries
from reminders.web.staff.auth import safe_next
from reminders.web.staff.visit_fields import book, get_appointment, new_external_id
from reminders.web.staff.visit_pages import bp

STATUS_ACTIONS = {AppointmentStatus.CANCELED: "canceled", AppointmentStatus.COMPLETED: "marked completed",
                  AppointmentStatus.NO_SHOW: "marked no-show", AppointmentStatus.SCHEDULED: "reopened"}


@bp.post("/visits/<int:appointment_id>/status")
def change_status(appointment_id: int):
    session = db()
    appointment = get_appointment(appointment_id)
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
    appointment = get_appointment(appointment_id)
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


# --- The notice after a mark ---------------------------------------------------------------------

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
                   **({"place": book().place(like.location_id).code} if like.location_id is not None else {}))
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
