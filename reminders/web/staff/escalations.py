"""The escalation queue: open ones first (newest first), acknowledged ones stay visible below."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import case, select
from sqlalchemy.orm import selectinload

from reminders.inbound.escalations import EscalationNotFound, acknowledge
from reminders.models import Escalation, utcnow
from reminders.web.context import db
from reminders.web.staff import audit
from reminders.web.staff.auth import current_user, guard

bp = Blueprint("escalations", __name__, url_prefix="/escalations")
guard(bp)
SHOW_ACKNOWLEDGED = 100


@bp.get("/")
def index():
    open_first = case((Escalation.status == "open", 0), else_=1)
    rows = db().scalars(
        select(Escalation).order_by(open_first, Escalation.opened_at.desc(), Escalation.id.desc())
        .options(selectinload(Escalation.patient)).limit(500)
    ).all()
    open_rows = [row for row in rows if row.status == "open"]
    done_rows = [row for row in rows if row.status != "open"][:SHOW_ACKNOWLEDGED]
    return render_template("staff/escalations.html", open_rows=open_rows, done_rows=done_rows)


@bp.post("/<int:escalation_id>/acknowledge")
def acknowledge_one(escalation_id: int):
    note = request.form.get("note", "").strip()
    if not note:
        flash("Write a short note of what you did (e.g. 'called her, safe at home') to acknowledge.", "error")
        return redirect(url_for(".index") + f"#escalation-{escalation_id}")
    user, session = current_user(), db()
    try:
        escalation = acknowledge(session, escalation_id, user.email, note[:2000], utcnow())
    except EscalationNotFound:
        abort(404)
    audit.record("acknowledge_escalation", "escalation", escalation_id, patient_id=escalation.patient_id)
    session.commit()
    flash("Escalation acknowledged: staff will not be alerted about it again.", "ok")
    return redirect(url_for(".index"))
