"""The audit log: who looked at which patient, and who changed what. Committed with the change."""
from __future__ import annotations

import re

from flask import g

from reminders.models import AuditEntry
from reminders.web.context import db, request_now


def record(action: str, target_type: str = "", target_id: int | str | None = "", *, actor: str | None = None,
           **detail) -> AuditEntry:
    """Add an entry to the request's session; the caller commits it together with its change."""
    if actor is None:
        user = g.get("staff")
        actor = user.email if user is not None else "(anonymous)"
    entry = AuditEntry(
        at=request_now(), actor=actor[:254], action=action[:60], target_type=target_type[:40],
        target_id="" if target_id is None else str(target_id)[:64], detail=detail,
    )
    db().add(entry)
    return entry


# --- The audit log page (admins): who did what to which patient, in plain words -----------------

ACTIONS = {
    "view_patient": "Opened the patient page",
    "view_patient_form": "Opened the patient's details form",
    "view_visit_form": "Opened the visit form",
    "export_checkins": "Downloaded the check-ins (CSV)",
    "view_report": "Opened the measures report",
    "download_report_pdf": "Downloaded the measures report (PDF)",
    "export_measures": "Downloaded the questionnaires (CSV)",
    "export_outcomes": "Downloaded the clinic outcomes (CSV)",
    "create_patient": "Added a patient",
    "edit_patient": "Changed the patient's details",
    "create_visit": "Booked a visit",
    "edit_visit": "Changed a visit",
    "visit_completed": "Marked a visit completed",
    "visit_no_show": "Marked a visit as no-show",
    "visit_canceled": "Canceled a visit",
    "visit_scheduled": "Put a visit back on the schedule",
    "change_condition": "Changed the condition treated",
    "change_series": "Changed the number of infusions",
    "acknowledge_escalation": "Resolved an escalation",
    "claim_escalation": "Claimed an escalation (I'm on it)",
    "inbox_done": "Marked an inbox message done",
    "inbox_reply": "Replied to a patient by text",
    "resend_messages": "Resent messages that had not gone",
    "inbox_assign": "Took an inbox message",
    "inbox_release": "Let an inbox message go",
    "inbox_note": "Wrote what was done on an inbox message",
    "create_course": "Booked an induction course",
    "end_course": "Closed a finished course",
    "view_course_form": "Opened the new course form",
    "upload_csv": "Uploaded a visits file",
    "rerun_import": "Ran an import again",
    "import_csv": "Imported visits from a file",
    "login": "Signed in",
    "logout": "Signed out",
    "login_failed": "Sign-in refused",
    "login_refused_locked": "Sign-in refused: the account is locked",
    "account_locked": "Account locked after wrong passwords",
    "login_throttled": "Sign-ins slowed down after wrong passwords",
    "change_password": "Changed their password",
    "create_user": "Added a staff account",
    "activate_user": "Turned a staff account on",
    "deactivate_user": "Turned a staff account off",
    "unlock_user": "Unlocked a staff account",
    "save_template": "Saved a new version of a message",
    "restore_template": "Restored an earlier version of a message",
    "reset_template": "Went back to the standard message",
    "mfa_enrolled": "Turned on two-step sign-in",
    "mfa_new_recovery_codes": "Made new recovery codes",
    "reset_mfa": "Reset a user's two-step sign-in",
    "export_patient": "Downloaded everything stored about the patient (JSON)",
    "erase_patient": "Erased the patient's personal data",
    "duplicate_patient_shown": "Was shown a possible duplicate patient",
    "overlap_refused": "Was refused a visit overlapping another",
    "change_role": "Changed a staff account's role",
    "reset_password": "Reset a staff account's password",
    "forced_password_change": "Chose a new password after a reset",
    "create_location": "Added a location",
    "edit_location": "Changed a location",
    "set_staff_locations": "Changed the locations a staff account works at",
}
DETAIL_WORDS = {
    "result": "Outcome", "condition": "Condition", "planned": "Infusions in the course", "filename": "File",
    "rows": "Rows", "created": "Created", "updated": "Updated", "unchanged": "Unchanged", "rejected": "Rejected",
    "email": "Account", "role": "Role", "reason": "Why", "sessions_ended": "Other sign-ins ended",
    "version_id": "Version", "address": "Address", "second_step": "Second step",
    "recovery_codes_left": "Recovery codes left", "possible_duplicates": "Possible duplicates",
    "created_despite_possible_duplicates": "Created despite possible duplicates", "from_role": "Role before",
    "how": "How", "messages": "Messages", "restored_from": "Restored from version", "note": "Note",
    "code": "Code", "name": "Name", "changed": "Changed", "locations": "Locations",
}
# Shown as names and links instead (or not at all: an id says nothing to a person).
PATIENT_ID = re.compile(r"[0-9]{1,18}")
DETAIL_HIDDEN = {"patient_id", "appointment_id", "job_id", "escalation_id", "course_id", "message_id"}
VALUE_WORDS = {"crisis_language": "crisis language", "no_show": "no-show"}


def action_label(action: str) -> str:
    return ACTIONS.get(action) or action.replace("_", " ").capitalize()


def _ids(entries, target_type: str) -> set[int]:
    return {int(e.target_id) for e in entries if e.target_type == target_type and str(e.target_id).isdigit()}


def _detail_id(entry, key: str) -> int | None:
    value = (entry.detail or {}).get(key)
    return value if isinstance(value, int) else int(value) if isinstance(value, str) and value.isdigit() else None


def describe(session, entries) -> list[dict]:
    """Each entry as a row of plain words: action, the patient's name, what it was done to, details."""
    found = _load_targets(session, entries)
    rows = []
    for entry in entries:
        what, link, patient_id = _target_words(entry, found)
        patient = found["patient"].get(patient_id) if patient_id else None
        rows.append({"entry": entry, "action": action_label(entry.action), "patient": patient,
                     "patient_missing": patient_id is not None and patient is None, "what": what, "link": link,
                     "details": _detail_words(entry, what)})
    return rows


def _load_targets(session, entries) -> dict[str, dict]:
    """The rows the entries name, by target type and id, and every patient they lead to."""
    from sqlalchemy import select

    from reminders.models import Appointment, Course, Escalation, InboundMessage, Patient, StaffUser

    def load(model, ids):
        return {row.id: row for row in session.scalars(select(model).where(model.id.in_(ids)))} if ids else {}

    visit_ids = _ids(entries, "appointment") | {i for e in entries if (i := _detail_id(e, "appointment_id"))}
    found = {
        "appointment": load(Appointment, visit_ids),
        "course": load(Course, _ids(entries, "course")),
        "escalation": load(Escalation, _ids(entries, "escalation")),
        "inbound_message": load(InboundMessage, _ids(entries, "inbound_message")),
        "staff_user": load(StaffUser, _ids(entries, "staff_user")),
    }
    patient_ids = _ids(entries, "patient") | {i for e in entries if (i := _detail_id(e, "patient_id"))}
    patient_ids |= {row.patient_id for kind in ("appointment", "course", "escalation", "inbound_message")
                    for row in found[kind].values() if row.patient_id}
    found["patient"] = load(Patient, patient_ids)
    return found


def _target_words(entry, found: dict[str, dict]) -> tuple[str, str | None, int | None]:
    """What the entry was done to, a link to it, and the patient it concerns: (what, link, patient id)."""
    from reminders.web.staff.display import date_time, short_date

    target, target_id, patient_id = entry.target_type, entry.target_id, _detail_id(entry, "patient_id")
    number = int(target_id) if str(target_id).isdigit() else None
    what, link = "", None
    if target == "patient":
        patient_id = number
    elif target == "appointment" or _detail_id(entry, "appointment_id"):
        visit = found["appointment"].get(number if target == "appointment" else _detail_id(entry, "appointment_id"))
        if visit is not None:
            patient_id = patient_id or visit.patient_id
            what = f"Visit {date_time(visit.starts_at)}"
        elif target == "appointment":
            what = "A visit since removed"
    elif target == "course":
        course = found["course"].get(number)
        patient_id = patient_id or (course.patient_id if course else None)
        what = f"Course started {short_date(course.started_at)}" if course is not None else "Course"
    elif target == "escalation":
        escalation = found["escalation"].get(number)
        patient_id = patient_id or (escalation.patient_id if escalation else None)
        what, link = "Escalation", f"/escalations/#escalation-{number}"
    elif target == "inbound_message":
        message = found["inbound_message"].get(number)
        patient_id = patient_id or (message.patient_id if message else None)
        what = "Message from an unknown number" if message is not None and message.patient_id is None \
            else "Inbox message"
    elif target == "staff_user":
        user = found["staff_user"].get(number)
        what = f"Account {user.email}" if user is not None and user.email != entry.actor else ""
    else:
        what, link = _other_target_words(entry)
    return what, link, patient_id


def _other_target_words(entry) -> tuple[str, str | None]:
    """What an entry about no single row of a patient's was done to: a message, a location, a file."""
    target, target_id = entry.target_type, entry.target_id
    if target == "template":
        return f"Message {target_id}", None
    if target == "location":
        return "Location", "/admin/locations"
    if target == "import_job":
        return "Visits file", f"/visits/imports/{target_id}"
    if target == "appointments" and _detail_id(entry, "job_id"):
        return "Visits file", f"/visits/imports/{_detail_id(entry, 'job_id')}"
    return "", None


def _detail_words(entry, what: str) -> list[tuple[str, str]]:
    details = []
    for key, value in (entry.detail or {}).items():
        if key in DETAIL_HIDDEN or value is None or value == "":
            continue
        if key in ("email",) and what.endswith(str(value)):
            continue
        text = VALUE_WORDS.get(value, str(value).replace("_", " ")) if isinstance(value, str) else str(value)
        details.append((DETAIL_WORDS.get(key) or key.replace("_", " ").capitalize(), text))
    return details


def log_page(limit: int):
    """GET /admin/audit: the newest entries, filtered by staff member (?who=) and by patient (?patient=)."""
    from flask import render_template, request
    from sqlalchemy import and_, func, or_, select

    from reminders.models import Patient, StaffUser

    session = db()
    who = request.args.get("who", "").replace("\x00", "").strip()[:254]
    patient_param = request.args.get("patient", "").replace("\x00", "").strip()[:40]
    # A database id fits in 18 digits; anything else (a huge number, "abc", "²") matches no patient.
    patient = session.get(Patient, int(patient_param)) if PATIENT_ID.fullmatch(patient_param) else None
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if who:
        query = query.where(func.lower(AuditEntry.actor) == who.lower())
    if patient_param:
        pid = patient.id if patient is not None else -1
        query = query.where(or_(and_(AuditEntry.target_type == "patient", AuditEntry.target_id == str(pid)),
                                AuditEntry.detail["patient_id"].as_integer() == pid))
    entries = session.scalars(query.limit(limit)).all()
    staff = session.scalars(select(StaffUser.email).order_by(func.lower(StaffUser.email))).all()
    return render_template("staff/audit.html", rows=describe(session, entries), limit=limit, who=who,
                           staff_emails=staff, patient=patient, patient_param=patient_param,
                           patient_unknown=bool(patient_param) and not PATIENT_ID.fullmatch(patient_param))
