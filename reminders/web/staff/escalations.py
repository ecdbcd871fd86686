"""The escalation queue: waiting for someone, then being handled (claimed), then resolved.

Waiting and claimed ones are sorted by kind (medical emergency, suicide risk, urgent) and, within
a kind, oldest first; resolved ones stay visible below, newest first, each with the texts its
sender wrote after it was resolved (those are inbox items of their own).
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import case, select
from sqlalchemy.orm import selectinload

from reminders.escalations import (CLAIMED, OPEN, EscalationNotFound, claim, kind_of, resolve,
                                           severity_order, texts_after)
from reminders.models import Escalation
from reminders.web.context import db, request_now
from reminders.web.staff import audit, location_filter
from reminders.web.staff.auth import current_user, guard

bp = Blueprint("escalations", __name__, url_prefix="/escalations")
guard(bp)
SHOW_RESOLVED = 100
NOTE_LIMIT = 2000


@bp.app_template_filter("escalation_kind")
def escalation_kind(escalation: Escalation) -> str:
    """"Medical emergency", "Suicide risk" or "Urgent": the kind, in words, wherever one is shown."""
    return kind_of(escalation)


@bp.app_template_global("texts_after_escalation")
def texts_after_escalation(escalation: Escalation, limit: int = 5) -> list:
    """What the sender wrote after the escalation was resolved, newest first."""
    return texts_after(db(), escalation, limit)


@bp.get("/")
def index():
    active_first = case((Escalation.status.in_((OPEN, CLAIMED)), 0), else_=1)
    places = location_filter.page_filter()
    rows = db().scalars(
        location_filter.narrowed(select(Escalation), Escalation.location_id, places.scope)
        .order_by(active_first, Escalation.opened_at.desc(), Escalation.id.desc())
        .options(selectinload(Escalation.patient)).limit(500)
    ).all()
    return render_template(
        "staff/escalations.html", places=places, place_name=location_filter.place_name,
        open_rows=sorted((row for row in rows if row.status == OPEN), key=severity_order),
        claimed_rows=sorted((row for row in rows if row.status == CLAIMED), key=severity_order),
        done_rows=[row for row in rows if row.status not in (OPEN, CLAIMED)][:SHOW_RESOLVED])


@bp.post("/<int:escalation_id>/claim")
def claim_one(escalation_id: int):
    user, session = current_user(), db()
    try:
        escalation = claim(session, escalation_id, user.email, request_now())
    except EscalationNotFound:
        abort(404)
    if escalation.claimed_by != user.email or escalation.status != CLAIMED:
        flash(_already_taken(escalation), "error")
        return redirect(url_for(".index") + f"#escalation-{escalation_id}")
    audit.record("claim_escalation", "escalation", escalation_id, patient_id=escalation.patient_id)
    session.commit()
    flash(f"You are on it: {_whose(escalation)}. Staff will not be alerted again; resolve it with a note "
          "when it is done.", "ok")
    return redirect(url_for(".index") + f"#escalation-{escalation_id}")


@bp.post("/<int:escalation_id>/acknowledge")
def acknowledge_one(escalation_id: int):
    """Resolve, with an outcome note (the route keeps its first name: alerts and bookmarks use it)."""
    note = request.form.get("note", "").strip()
    if not note:
        flash("Write a short note of what was done (e.g. 'called her, safe at home') to resolve it.", "error")
        return redirect(url_for(".index") + f"#escalation-{escalation_id}")
    user, session = current_user(), db()
    try:
        escalation = resolve(session, escalation_id, user.email, note[:NOTE_LIMIT], request_now())
    except EscalationNotFound:
        abort(404)
    audit.record("acknowledge_escalation", "escalation", escalation_id, patient_id=escalation.patient_id)
    session.commit()
    flash(f"Resolved: {_whose(escalation)}. Staff will not be alerted about it again.", "ok")
    return redirect(url_for(".index"))



def _whose(escalation: Escalation) -> str:
    who = escalation.patient.full_name if escalation.patient is not None else "an unknown number"
    return f"{kind_of(escalation).lower()} from {who}"


def _already_taken(escalation: Escalation) -> str:
    if escalation.status == CLAIMED:
        return f"{escalation.claimed_by} is already on it; you can still resolve it with a note."
    return f"It was already resolved by {escalation.acknowledged_by or 'someone'}."
