"""GET /live.json: what the staff pages poll to update themselves (counts and a change stamp).

Counts and ids only, never a name, number or message text: the page reloads its own content
(which carries the patient data, behind the same session) when the stamp changes. A visitor
without a staff session gets 401, not the login page, so a poll never follows a redirect.
"""
from __future__ import annotations

import hashlib

from flask import Blueprint, jsonify
from sqlalchemy import func, select

from reminders.models import Appointment, Escalation, InboundMessage
from reminders.web.context import db
from reminders.web.staff.auth import current_user, service_problems

bp = Blueprint("live", __name__)
POLL_SECONDS = 4  # a change shows within ~5 s, well inside the 10 s the clinic asked for


@bp.before_request
def _require_session():
    if current_user() is None:
        return jsonify({"error": "sign in first"}), 401
    return None


def counts(session) -> dict:
    """The menu badges and the banner: open escalations, inbox items waiting for staff."""
    open_count, newest_open = session.execute(
        select(func.count(), func.max(Escalation.id)).where(Escalation.status == "open")).one()
    waiting = session.scalar(select(func.count()).select_from(InboundMessage)
                             .where(InboundMessage.needs_staff, InboundMessage.done_at.is_(None))) or 0
    return {"open_escalations": open_count or 0, "newest_open_escalation_id": newest_open,
            "inbox_waiting": waiting}


def snapshot(session) -> dict:
    """counts() plus the newest escalation and a stamp that changes with anything Today,
    Escalations or the inbox show: a new or acknowledged escalation, a reply in or handled, a
    visit booked, moved, confirmed or marked; and the worker or beat stopping or running again
    (the banner, see service_problems), so that a page left open shows it."""
    live = counts(session)
    newest_escalation, acknowledged = session.execute(
        select(func.max(Escalation.id), func.count(Escalation.acknowledged_at))).one()
    newest_inbound, done = session.execute(
        select(func.max(InboundMessage.id), func.count(InboundMessage.done_at))).one()
    visits_changed, visits = session.execute(select(func.max(Appointment.updated_at), func.count())
                                             .select_from(Appointment)).one()
    parts = (live["open_escalations"], newest_escalation, acknowledged, live["inbox_waiting"], newest_inbound,
             done, visits, visits_changed.isoformat() if visits_changed is not None else "",
             tuple(problem["role"] for problem in service_problems()))
    stamp = hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
    return {**live, "newest_escalation_id": newest_escalation, "stamp": stamp, "poll_seconds": POLL_SECONDS}


@bp.get("/live.json")
def live_json():
    return jsonify(snapshot(db()))
