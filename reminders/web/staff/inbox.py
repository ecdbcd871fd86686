"""Replies that need a person (free text, unreadable answers, reschedule requests, unknown
numbers), red flags first (a crisis, then side effects, high blood pressures and questions, with
the reason), and messages that did not arrive or may not have."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from reminders.inbound.delivery import delivery_problems
from reminders.models import InboundMessage, utcnow
from reminders.web.context import db
from reminders.web.staff import audit
from reminders.web.staff.auth import current_user, guard

bp = Blueprint("inbox", __name__, url_prefix="/inbox")
guard(bp)
SHOW_DONE = 50
SHOW_PROBLEMS = 50


@bp.get("/")
def index():
    waiting = db().scalars(
        select(InboundMessage).where(InboundMessage.needs_staff, InboundMessage.done_at.is_(None))
        .order_by(InboundMessage.priority.desc(), InboundMessage.received_at.desc())
        .options(selectinload(InboundMessage.patient))
    ).all()
    done = db().scalars(
        select(InboundMessage).where(InboundMessage.needs_staff, InboundMessage.done_at.is_not(None))
        .order_by(InboundMessage.done_at.desc()).limit(SHOW_DONE).options(selectinload(InboundMessage.patient))
    ).all()
    problems = delivery_problems(db(), limit=SHOW_PROBLEMS)
    return render_template("staff/inbox.html", waiting=waiting, done=done, problems=problems)


@bp.post("/<int:message_id>/done")
def mark_done(message_id: int):
    session = db()
    message = session.get(InboundMessage, message_id)
    if message is None:
        abort(404)
    if message.done_at is None:
        message.done_at, message.done_by = utcnow(), current_user().email
        audit.record("inbox_done", "inbound_message", message.id, patient_id=message.patient_id)
        session.commit()
        flash("Marked done.", "ok")
    return redirect(url_for(".index"))
