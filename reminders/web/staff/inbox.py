"""Replies that need a person (free text, unreadable answers, reschedule requests, unknown
numbers), red flags first (a crisis, then side effects, high blood pressures and questions, with
the reason), and messages that did not arrive or may not have.

An item opens beside the whole conversation with the patient, and can be answered from there: the
answer is an outbox row like every message (kind reply, on the channel the patient wrote on),
held to quiet hours unless staff confirm it is urgent, and refused for a patient who opted out.
"""
from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from reminders.channel_specs import is_text_channel
from reminders.config import Settings
from reminders.dispatch import send_soon
from reminders.inbound.delivery_reports import delivery_problems
from reminders.inbound.replies import location_of_text
from reminders.locations import LocationBook
from reminders.models import InboundMessage
from reminders.models.outbox import ChannelName, Kind
from reminders.outbox import OutboxRow, plan
from reminders.timing.quiet_hours import QuietHours
from reminders.web.context import db, found, request_now, settings
from reminders.web.staff import audit, location_filter, message_state, queries
from reminders.web.staff.auth import current_user, guard
from reminders.web.staff.display import date_time, time_only

log = logging.getLogger(__name__)

bp = Blueprint("inbox", __name__, url_prefix="/inbox")
guard(bp)
SHOW_DONE = 50
SHOW_PROBLEMS = 50
REPLY_LIMIT = 1000  # characters: about seven text segments
NOTE_LIMIT = 2000
STAFF_REPLY_RULE = "staff_reply"
TOKEN = re.compile(r"^[0-9a-f]{16,64}$")


class ReplyRefused(Exception):
    """A reply that cannot be sent; the message says why, in words for staff."""


@dataclass(frozen=True)
class PlannedReply:
    outbox_id: int | None  # None: the same form was sent twice; the first one stands
    channel: str
    due_at: datetime
    now: bool  # due at once (handed to the sender) rather than at the end of quiet hours


def quiet_hours(s: Settings) -> QuietHours:
    return QuietHours(s.quiet_hours_start, s.quiet_hours_end)


def reply_channel(message: InboundMessage) -> str:
    """The patient's text channel: the one they wrote on."""
    return message.channel if is_text_channel(message.channel) else ChannelName.SMS


def why_no_reply(message: InboundMessage) -> str | None:
    """Why this item cannot be answered by text (None: it can)."""
    patient = message.patient
    if patient is None:
        return "This number is not on file as a patient, so the service does not text it. Call them instead."
    if patient.sms_opted_out:
        return (f"{patient.first_name} has opted out of texts (they texted {patient.opt_out_text or 'STOP'}), "
                "so no reply can be sent. Call them instead; texts start again only if they text START.")
    if not patient.phone:
        return f"There is no mobile number on file for {patient.first_name}. Call or email them instead."
    return None


def plan_staff_reply(session: Session, s: Settings, message: InboundMessage, body: str, now: datetime, *,
                     send_now: bool = False, token: str | None = None) -> PlannedReply:
    """Plan a written answer to an inbox item. Raises ReplyRefused with the reason for staff.

    Outside quiet hours (in the patient's zone) it is due now; inside them it waits for their end
    unless `send_now` (staff confirmed it is urgent). `token` identifies one filled-in form, so a
    form sent twice plans one reply."""
    body = body.strip()
    if not body:
        raise ReplyRefused("Write the reply first.")
    if len(body) > REPLY_LIMIT:
        raise ReplyRefused(f"The reply is {len(body)} characters long; keep it under {REPLY_LIMIT}.")
    reason = why_no_reply(message)
    if reason:
        raise ReplyRefused(reason)
    patient = message.patient
    due = now if send_now else quiet_hours(s).next_allowed(now, patient.timezone)
    token = token if token and TOKEN.match(token) else secrets.token_hex(16)
    channel = reply_channel(message)
    ids = plan(session, [OutboxRow(
        dedupe_key=f"reply:{message.id}:{token}", kind=Kind.REPLY, rule=STAFF_REPLY_RULE, channel=channel,
        planned_for=now, due_at=due, patient_id=patient.id, to_address=None, body=body,
        location_id=location_of_text(session, LocationBook.load(session, s), getattr(message, "to_number", None),
                                     patient.id, now),
    )], now)
    return PlannedReply(ids[0] if ids else None, channel, due, due <= now)


def items_with_location(scope: location_filter.Scope, now: datetime, *conditions):
    """Inbox items and each one's location (its patient's), kept to the scope's locations."""
    location = queries.patient_location_of(InboundMessage.patient_id, now)
    query = select(InboundMessage, location.label("location_id")).where(InboundMessage.needs_staff, *conditions)
    return location_filter.narrowed(query, location, scope).options(selectinload(InboundMessage.patient))


def _listed(query) -> tuple[list[InboundMessage], dict[int, str]]:
    """The items, and the name of each one's location (when the clinic has several)."""
    rows = db().execute(query).all()
    return [m for m, _ in rows], {m.id: location_filter.place_name(location_id) for m, location_id in rows}


@bp.get("/")
def index():
    places, now = location_filter.page_filter(), request_now()
    waiting, waiting_places = _listed(
        items_with_location(places.scope, now, InboundMessage.done_at.is_(None))
        .order_by(InboundMessage.priority.desc(), InboundMessage.received_at.desc()))
    done, done_places = _listed(
        items_with_location(places.scope, now, InboundMessage.done_at.is_not(None))
        .order_by(InboundMessage.done_at.desc()).limit(SHOW_DONE))
    problems = [m for m in delivery_problems(db(), limit=SHOW_PROBLEMS) if places.scope.admits(m.location_id)]
    return render_template("staff/inbox.html", waiting=waiting, done=done, problems=problems,
                           me=current_user().email, places=places,
                           place_of={**waiting_places, **done_places})


def _message(message_id: int) -> InboundMessage:
    return found(InboundMessage, message_id)


@bp.get("/<int:message_id>")
def item(message_id: int):
    return _item_page(_message(message_id))


def _item_page(message: InboundMessage, error: str | None = None, body: str = "", status: int = 200):
    now = request_now()
    patient = message.patient
    zone = patient.timezone if patient else settings().clinic_timezone
    quiet = quiet_hours(settings())
    in_quiet = quiet.contains(now, zone)
    return render_template(
        "staff/inbox_item.html", m=message, patient=patient, zone=zone,
        thread=queries.thread(db(), message.patient_id, message.from_number),
        refusal=why_no_reply(message), token=secrets.token_hex(16),
        channel=reply_channel(message), in_quiet=in_quiet,
        quiet_ends=time_only(quiet.next_allowed(now, zone), zone) if in_quiet else "",
        local_now=time_only(now, zone), me=current_user().email, limit=REPLY_LIMIT, error=error, body=body,
        reply_notice=message_state.reply_notice(db(), request.args.get("reply"), patient),
    ), status


@bp.post("/<int:message_id>/reply")
def reply(message_id: int):
    session, now = db(), request_now()
    message = _message(message_id)
    body = request.form.get("body", "")
    try:
        planned = plan_staff_reply(session, settings(), message, body, now,
                                   send_now=request.form.get("send_now") == "yes", token=request.form.get("token"))
    except ReplyRefused as refused:
        session.rollback()
        return _item_page(message, str(refused), body, 422)
    if planned.outbox_id is None:
        flash("That reply was already sent.", "ok")
        return redirect(url_for(".item", message_id=message.id))
    if message.assigned_to is None:
        message.assigned_to, message.assigned_at = current_user().email, now
    audit.record("inbox_reply", "inbound_message", message.id, patient_id=message.patient_id,
                 outbox_id=planned.outbox_id, channel=planned.channel, urgent=request.form.get("send_now") == "yes")
    session.commit()
    name = message.patient.first_name
    if planned.now:
        _send_now([planned.outbox_id], now)
        # Its true state (waiting, sent, failed) is on the page, updated live (message_state).
        return redirect(url_for(".item", message_id=message.id, reply=planned.outbox_id))
    zone = message.patient.timezone
    flash(f"It is quiet hours for {name}: the reply goes at {date_time(planned.due_at, zone)}.", "ok")
    return redirect(url_for(".item", message_id=message.id))


def _send_now(ids: list[int], now: datetime) -> None:
    """Hand the reply to the sender at once, as crisis alerts are; if that fails the row is in the
    outbox and the next pass (within a minute) sends it."""
    extensions = current_app.extensions
    try:
        send_soon(extensions["reminders.dispatcher"], extensions["reminders.sessions"], ids, now)
    except Exception:  # noqa: BLE001
        log.exception("staff reply %s: the immediate send failed; the next pass sends it", ids)


@bp.post("/<int:message_id>/assign")
def assign(message_id: int):
    session = db()
    message = _message(message_id)
    me = current_user().email
    if request.form.get("release") == "yes":
        if message.assigned_to == me:
            message.assigned_to = message.assigned_at = None
            audit.record("inbox_release", "inbound_message", message.id, patient_id=message.patient_id)
            flash("You let the item go.", "ok")
    elif message.assigned_to != me:
        message.assigned_to, message.assigned_at = me, request_now()
        audit.record("inbox_assign", "inbound_message", message.id, patient_id=message.patient_id)
        flash("The item is yours.", "ok")
    session.commit()
    return _back(message)


@bp.post("/<int:message_id>/note")
def note(message_id: int):
    session = db()
    message = _message(message_id)
    text = request.form.get("done_note", "").strip()
    if len(text) > NOTE_LIMIT:
        flash(f"The note is {len(text)} characters long; keep it under {NOTE_LIMIT}.", "error")
        return _back(message)
    message.done_note = text
    audit.record("inbox_note", "inbound_message", message.id, patient_id=message.patient_id)
    if request.form.get("and_done") == "yes" and message.done_at is None:
        message.done_at, message.done_by = request_now(), current_user().email
        audit.record("inbox_done", "inbound_message", message.id, patient_id=message.patient_id)
        session.commit()
        flash("Note saved and marked done.", "ok")
        return redirect(url_for(".index"))
    session.commit()
    flash("Note saved.", "ok")
    return _back(message)


def _back(message: InboundMessage):
    if request.form.get("from") == "item":
        return redirect(url_for(".item", message_id=message.id))
    return redirect(url_for(".index") + f"#message-{message.id}")


@bp.post("/<int:message_id>/done")
def mark_done(message_id: int):
    session = db()
    message = _message(message_id)
    if message.done_at is None:
        message.done_at, message.done_by = request_now(), current_user().email
        audit.record("inbox_done", "inbound_message", message.id, patient_id=message.patient_id)
        session.commit()
        flash("Marked done.", "ok")
    return redirect(url_for(".index"))
