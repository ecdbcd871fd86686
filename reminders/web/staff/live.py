"""GET /live.json: what the staff pages poll to update themselves (counts and a change stamp).

Counts and ids only, never a name, number or message text: the page reloads its own content
(which carries the patient data, behind the same session) when the stamp changes. A visitor
without a staff session gets 401, not the login page, so a poll never follows a redirect.
"""
from __future__ import annotations

import hashlib

from flask import Blueprint, jsonify, request
from sqlalchemy import func, select

from reminders.escalations import OPEN, kind_of
from reminders.models import Appointment, Escalation, InboundMessage
from reminders.web.context import db, request_now
from reminders.web.staff import location_filter, queries
from reminders.web.staff.auth import current_user, service_problems

bp = Blueprint("live", __name__)
POLL_SECONDS = 4  # a change shows within ~5 s, well inside the 10 s the clinic asked for


@bp.before_request
def _require_session():
    if current_user() is None:
        return jsonify({"error": "sign in first"}), 401
    return None


def counts(session, scope: location_filter.Scope = location_filter.EVERYTHING) -> dict:
    """The menu badges and the banner: escalations nobody has claimed yet (and the newest one's
    kind in words: "Medical emergency", "Suicide risk", "Urgent"), inbox items waiting for staff;
    those of the user's locations (`scope`)."""
    open_count, newest_open = session.execute(location_filter.narrowed(
        select(func.count(), func.max(Escalation.id)).where(Escalation.status == OPEN),
        Escalation.location_id, scope)).one()
    newest = session.get(Escalation, newest_open) if newest_open is not None else None
    waiting_query = select(func.count()).select_from(InboundMessage).where(InboundMessage.needs_staff,
                                                                           InboundMessage.done_at.is_(None))
    if not scope.everything:
        waiting_query = location_filter.narrowed(
            waiting_query, queries.patient_location_of(InboundMessage.patient_id, request_now()), scope)
    waiting = session.scalar(waiting_query) or 0
    return {"open_escalations": open_count or 0, "newest_open_escalation_id": newest_open,
            "newest_open_escalation_kind": kind_of(newest) if newest is not None else None,
            "inbox_waiting": waiting}


def snapshot(session, scope: location_filter.Scope = location_filter.EVERYTHING) -> dict:
    """counts() plus the newest escalation and a stamp that changes with anything Today,
    Escalations or the inbox show: a new, claimed or resolved escalation, a reply in or handled, a
    visit booked, moved, confirmed or marked; and the worker or beat stopping or running again
    (the banner, see service_problems), so that a page left open shows it."""
    live = counts(session, scope)
    newest_escalation, acknowledged, claimed = session.execute(location_filter.narrowed(
        select(func.max(Escalation.id), func.count(Escalation.acknowledged_at), func.count(Escalation.claimed_at)),
        Escalation.location_id, scope)).one()
    newest_inbound, done = session.execute(
        select(func.max(InboundMessage.id), func.count(InboundMessage.done_at))).one()
    visits_changed, visits = session.execute(select(func.max(Appointment.updated_at), func.count())
                                             .select_from(Appointment)).one()
    parts = (live["open_escalations"], newest_escalation, acknowledged, claimed, live["inbox_waiting"], newest_inbound,
             done, visits, visits_changed.isoformat() if visits_changed is not None else "",
             tuple(problem["role"] for problem in service_problems()))
    stamp = hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
    return {**live, "newest_escalation_id": newest_escalation, "stamp": stamp, "poll_seconds": POLL_SECONDS}


@bp.get("/live.json")
def live_json():
    session = db()
    return jsonify({**snapshot(session, location_filter.user_scope()), **provider_part(session)})


def provider_part(session) -> dict:
    """the provider banners' words (no raw error) and, for the ids a page asks about
    (?outbox=1,2), each message's state: an open page shows an outage and a reply's fate live."""
    from reminders.web.context import request_now
    from reminders.web.staff import message_state
    from reminders.web.staff.provider_banner import for_the_poll, provider_banners

    return {"providers": for_the_poll(provider_banners(session, request_now())),
            "outbox": message_state.states(session, message_state.parse_ids(request.args.get("outbox")))}
