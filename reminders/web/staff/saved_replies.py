"""Saved replies (admins write them, per language) and starting a text from a patient's page.

A saved reply is a small template: the same sandbox, strict names and variables as the message
templates (reminders.rendering.message_context), rendered for the patient it is offered to, with
their next visit, so "eat nothing after 3:30 AM" is that patient's own clock time
(saved_reply_filling). The inbox item and the patient page offer the replies in the patient's
language; staff edit the words before sending.

A text started from the patient's page goes the way an inbox reply goes (inbox.plan_staff_reply):
refused for a patient who opted out or has no mobile number, held until quiet hours end unless
staff say it is urgent, one row however often the form is sent.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, session as browser_session, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.config import Settings
from reminders.models import OutboxMessage, Patient, SavedReply
from reminders.models.outbox import ChannelName
from reminders.models.saved_replies import SAVED_REPLY_LANGUAGES
from reminders.outbox.welcome import pending_welcome
from reminders.rendering import sample_context
from reminders.web.context import db, found, request_now, settings
from reminders.web.staff import audit, message_state
from reminders.web.staff.auth import current_user, guard
from reminders.web.staff.display import date_time, time_only
from reminders.web.staff.inbox import (
    REPLY_LIMIT, ReplyRefused, _send_now, plan_staff_reply, quiet_hours, why_no_reply,
)
from reminders.web.staff.saved_reply_filling import OfferedReply, fill_in, offered_replies, problem_words

bp = Blueprint("saved_replies", __name__)
guard(bp)

TITLE_LIMIT = 80
STAFF_TEXT_RULE = "staff_text"  # a text staff started from the patient's page (no text of theirs answered)
# What a saved reply may use, as the edit page lists it (the message templates' names).
VARIABLES = (
    ("patient.first_name", "the patient's first name"),
    ("visit.date", "their next visit's day: Tuesday, March 3"),
    ("visit.time", "its time: 9:30 AM"),
    ("visit.arrive_at", "when to arrive"),
    ("visit.eat_until", "eat nothing after (a clock time; empty when the clinic asks no fasting)"),
    ("visit.clear_liquids_until", "clear liquids until (a clock time)"),
    ("visit.done_around", "when they can leave"),
    ("visit.location", "where"),
    ("clinic.name", "the clinic's name"),
    ("clinic.phone", "the clinic's phone"),
    ("prep.solids_hours", "hours of fasting from food"),
    ("prep.clear_liquids_hours", "hours without drinks"),
)


@dataclass(frozen=True)
class PatientConversation:
    """What inbox.plan_staff_reply answers, for a text with no inbox item behind it: `id` names the
    conversation in the outbox row's key (a text started from the page, a broadcast's recipient)."""

    id: str
    patient: Patient
    channel: str = ChannelName.SMS


# --- Admins: list, add, edit, delete ----------------------------------------------------------

def _admin_only() -> None:
    if current_user().role != "admin":
        abort(403)


def _reply(reply_id: int) -> SavedReply:
    return found(SavedReply, reply_id)


@bp.get("/saved-replies/")
def index():
    _admin_only()
    replies = db().scalars(select(SavedReply).order_by(SavedReply.position, SavedReply.id)).all()
    by_language = {code: [r for r in replies if r.language == code and r.deleted_at is None]
                   for code in SAVED_REPLY_LANGUAGES}
    deleted = [r for r in replies if r.deleted_at is not None]
    samples = {code: sample_context(settings(), code) for code in SAVED_REPLY_LANGUAGES}

    def reads(reply: SavedReply) -> str:
        try:
            return fill_in(reply.body, samples.get(reply.language, samples["en"]))
        except Exception as exc:  # noqa: BLE001 - shown as the problem to fix
            return problem_words(exc)

    return render_template("staff/saved_replies.html", by_language=by_language, deleted=deleted,
                           languages=SAVED_REPLY_LANGUAGES, reads=reads)


def check_reply(s: Settings, values: dict, editing: SavedReply | None) -> tuple[dict, str]:
    """Errors by field, and the reply filled in for the sample patient (Alex Rivera) when it works."""
    errors: dict[str, str] = {}
    if values["language"] not in SAVED_REPLY_LANGUAGES:
        errors["language"] = "Choose English or Spanish."
    if not values["title"]:
        errors["title"] = "Give it a short name staff will pick it by."
    elif len(values["title"]) > TITLE_LIMIT:
        errors["title"] = f"Keep the name under {TITLE_LIMIT} characters."
    else:
        same = db().scalar(select(SavedReply.id).where(
            SavedReply.language == values["language"], SavedReply.title == values["title"],
            SavedReply.deleted_at.is_(None), SavedReply.id != (editing.id if editing else -1)))
        if same is not None:
            errors["title"] = "There is already a saved reply with that name in this language."
    preview = ""
    if not values["body"]:
        errors["body"] = "Write the reply."
    else:
        try:
            preview = fill_in(values["body"], sample_context(s, values["language"]
                                                             if values["language"] in SAVED_REPLY_LANGUAGES else "en"))
        except Exception as exc:  # noqa: BLE001
            errors["body"] = problem_words(exc)
        else:
            if len(preview) > REPLY_LIMIT:
                errors["body"] = f"Filled in, it is {len(preview)} characters long; keep it under {REPLY_LIMIT}."
    return errors, preview


def _form_values() -> dict:
    return {"language": request.form.get("language", "en"), "title": " ".join(request.form.get("title", "").split()),
            "body": request.form.get("body", "").strip()}


def _edit_page(reply: SavedReply | None, values: dict, errors: dict | None = None, preview: str = "",
               status: int = 200):
    return render_template("staff/saved_reply_form.html", reply=reply, values=values, errors=errors or {},
                           preview=preview, languages=SAVED_REPLY_LANGUAGES, variables=VARIABLES,
                           limit=REPLY_LIMIT), status


@bp.route("/saved-replies/new", methods=("GET", "POST"))
def create():
    _admin_only()
    if request.method == "GET":
        language = request.args.get("language", "en")
        return _edit_page(None, {"language": language if language in SAVED_REPLY_LANGUAGES else "en",
                                 "title": "", "body": ""})
    return _save(None)


@bp.route("/saved-replies/<int:reply_id>", methods=("GET", "POST"))
def edit(reply_id: int):
    _admin_only()
    reply = _reply(reply_id)
    if reply.deleted_at is not None:
        abort(404)
    if request.method == "GET":
        values = {"language": reply.language, "title": reply.title, "body": reply.body}
        return _edit_page(reply, values, preview=_sample_preview(values))
    return _save(reply)


def _sample_preview(values: dict) -> str:
    return check_reply(settings(), values, None)[1]


def _save(reply: SavedReply | None):
    session, values = db(), _form_values()
    errors, preview = check_reply(settings(), values, reply)
    if errors:
        return _edit_page(reply, values, errors, preview, 422)
    if request.form.get("action") == "preview":
        return _edit_page(reply, values, preview=preview)
    now, me = request_now(), current_user().email
    if reply is None:
        last = session.scalars(select(SavedReply.position).where(SavedReply.language == values["language"])
                               .order_by(SavedReply.position.desc()).limit(1)).first() or 0
        reply = SavedReply(position=last + 1, created_at=now, **values)
        session.add(reply)
        action = "add_saved_reply"
    else:
        before = (reply.language, reply.title, reply.body)
        if before == (values["language"], values["title"], values["body"]):
            flash("Nothing changed.", "info")
            return redirect(url_for(".index"))
        reply.language, reply.title, reply.body = values["language"], values["title"], values["body"]
        action = "edit_saved_reply"
    reply.updated_at, reply.updated_by = now, me
    session.flush()
    audit.record(action, "saved_reply", reply.id, title=reply.title, language=reply.language)
    session.commit()
    flash(f"Saved reply “{reply.title}” ({SAVED_REPLY_LANGUAGES[reply.language]}) saved. "
          "The inbox offers it from now on.", "ok")
    return redirect(url_for(".index") + f"#reply-{reply.id}")


@bp.post("/saved-replies/<int:reply_id>/delete")
def delete(reply_id: int):
    _admin_only()
    session, reply = db(), _reply(reply_id)
    if reply.deleted_at is None:
        reply.deleted_at, reply.updated_by = request_now(), current_user().email
        audit.record("delete_saved_reply", "saved_reply", reply.id, title=reply.title, language=reply.language)
        session.commit()
        flash(f"Saved reply “{reply.title}” deleted. It is listed under Deleted if you want it back.", "ok")
    return redirect(url_for(".index"))


@bp.post("/saved-replies/<int:reply_id>/restore")
def restore(reply_id: int):
    _admin_only()
    session, reply = db(), _reply(reply_id)
    if reply.deleted_at is not None:
        reply.deleted_at, reply.updated_by, reply.updated_at = None, current_user().email, request_now()
        audit.record("restore_saved_reply", "saved_reply", reply.id, title=reply.title, language=reply.language)
        session.commit()
        flash(f"Saved reply “{reply.title}” is back.", "ok")
    return redirect(url_for(".index") + f"#reply-{reply.id}")


# --- Starting a text from the patient's page ---------------------------------------------------

def text_refusal(patient: Patient) -> str | None:
    """Why staff cannot text this patient (None: they can)."""
    if patient.erased_at is not None:
        return "This patient's personal data was erased: nothing is sent to them."
    return why_no_reply(PatientConversation("", patient))


def send_text_form(patient: Patient) -> dict:
    """What the patient page's "Send a text" block shows (see _send_text.html)."""
    now, zone = request_now(), patient.timezone
    notice = text_notice(patient)
    refusal = text_refusal(patient)
    if refusal:
        return {"refusal": refusal, "notice": notice}
    quiet = quiet_hours(settings())
    in_quiet = quiet.contains(now, zone)
    draft = browser_session.get("text_draft") or {}
    if draft.get("patient_id") == patient.id:
        browser_session.pop("text_draft")  # shown once, with the reason it was not sent
    return {
        "refusal": None, "notice": notice, "token": secrets.token_hex(16), "limit": REPLY_LIMIT,
        "offered": offered_replies(db(), settings(), patient, now),
        "in_quiet": in_quiet, "local_now": time_only(now, zone),
        "quiet_ends": time_only(quiet.next_allowed(now, zone), zone) if in_quiet else "",
        "body": draft.get("body", "") if draft.get("patient_id") == patient.id else "",
        "error": draft.get("error", "") if draft.get("patient_id") == patient.id else "",
    }


def saved_replies_for(patient: Patient | None) -> list[OfferedReply]:
    """The replies an inbox item offers (inbox_item.html): inbox.py does not import this module,
    which plans its texts through inbox.py."""
    return offered_replies(db(), settings(), patient, request_now())


@bp.app_context_processor
def _page_helpers():
    return {"send_text_form": send_text_form, "saved_replies_for": saved_replies_for}


def _text_problem(body: str) -> str | None:
    if not body:
        return "write the text first."
    if len(body) > REPLY_LIMIT:
        return f"it is {len(body)} characters long; keep it under {REPLY_LIMIT}."
    return None


@bp.post("/patients/<int:patient_id>/text")
def start_text(patient_id: int):
    session, now = db(), request_now()
    patient = found(Patient, patient_id)
    back = url_for("patients.show", patient_id=patient.id) + "#send-text"
    body, urgent = request.form.get("body", "").strip(), request.form.get("send_now") == "yes"
    browser_session.pop("text_draft", None)
    try:
        refusal = text_refusal(patient) or _text_problem(body)
        if refusal:
            raise ReplyRefused(refusal)
        planned = plan_staff_reply(session, settings(), PatientConversation(f"text-p{patient.id}", patient),
                                   body, now, send_now=urgent, token=request.form.get("token"))
    except ReplyRefused as refused:
        session.rollback()
        # The page is another module's: the typed words wait in the browser's session for it.
        browser_session["text_draft"] = {"patient_id": patient.id, "body": body[:REPLY_LIMIT * 2],
                                         "error": str(refused)}
        flash(f"The text to {patient.first_name} was not sent: {refused}", "error")
        return redirect(back)
    if planned.outbox_id is None:
        flash(f"That text to {patient.first_name} was already sent.", "ok")
        return redirect(back)
    session.get(OutboxMessage, planned.outbox_id).rule = STAFF_TEXT_RULE
    audit.record("start_text", "patient", patient.id, patient_id=patient.id, outbox_id=planned.outbox_id,
                 channel=planned.channel, urgent=urgent)
    session.commit()
    if planned.now:
        send_after_welcome(session, [patient], [planned.outbox_id], now)
        # Its true state (waiting, sent, failed) shows in the block, as an inbox reply's does.
        return redirect(url_for("patients.show", patient_id=patient.id, text=planned.outbox_id) + "#send-text")
    flash(f"It is quiet hours for {patient.first_name}: the text goes at "
          f"{date_time(planned.due_at, patient.timezone)}. It shows under Messages as waiting.", "ok")
    return redirect(back)


def send_after_welcome(session: Session, patients: list[Patient], ids: list[int], now: datetime) -> None:
    """Hand texts staff wrote to the sender now; a patient who has not had their welcome text (who
    is texting, HELP/STOP) gets it first, as the sender does for every scheduled text. (A reply to
    a patient's own text needs none: they wrote first.)"""
    welcomes = [found for patient in patients if (found := pending_welcome(session, patient)) is not None]
    if welcomes:
        _send_now(welcomes, now)
    if ids:
        _send_now(ids, now)


def text_words(state: str, name: str, reason: str | None) -> str:
    why = f": {reason}" if reason else ""
    return {
        message_state.SENT: f"Text to {name} sent.",
        message_state.WAITING: f"Text to {name} is waiting to go out. It goes automatically; this note changes "
                               "when it has gone.",
        message_state.FAILED: f"Text to {name} could not be sent{why}. Call {name}, or send it again.",
        message_state.UNCLEAR: f"Text to {name} may not have gone (the provider stopped answering). Check with "
                               f"{name} before sending it again.",
    }.get(state, f"Text to {name} was not sent{why}.")


def text_notice(patient: Patient) -> dict | None:
    """The state of the text just sent from the page (?text=<outbox id>), with the words for each
    state for the page to switch to as /live.json reports it (message_state, as an inbox reply)."""
    value = request.args.get("text", "")
    row = db().get(OutboxMessage, int(value)) if value.isdigit() and len(value) < 12 else None
    if row is None or row.patient_id != patient.id or row.rule != STAFF_TEXT_RULE:
        return None
    states = (message_state.WAITING, message_state.SENT, message_state.FAILED, message_state.NOT_SENT,
              message_state.UNCLEAR)
    words = {state: text_words(state, patient.first_name, row.status_reason) for state in states}
    state = message_state.state_of(row.status)
    return {"id": row.id, "state": state, "text": words.get(state, words[message_state.WAITING]), "words": words}
