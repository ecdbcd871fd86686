"""A patient added or edited by hand, through the same upsert as the API and the CSV import; a new
patient who looks like one already on file is shown for staff to confirm first."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from pydantic import ValidationError

from reminders.intake.records import PatientRecord
from reminders.intake.upsert import upsert_patient
from reminders.models import Patient
from reminders.models.patients import DEFAULT_LANGUAGE, LANGUAGES
from reminders.web.context import db, request_now, settings
from reminders.web.staff import audit, door_checks
from reminders.web.staff.forms import PATIENT_LABELS, patient_field_errors
from reminders.web.staff.patients import get_patient
from reminders.web.staff.visit_fields import new_external_id, zone_names
from reminders.web.staff.visit_pages import bp

PATIENT_FIELDS = ("first_name", "last_name", "phone", "email", "timezone", "preferred_channel")
# Optional in a post (a form without them keeps what is stored), checked by PatientRecord too.
PREPARATION_FIELDS = ("language", "medications_to_hold")
LANGUAGE_NAMES = {"en": "English", "es": "Español (Spanish)"}


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
