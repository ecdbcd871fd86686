"""Resend from the patient's page: what did not go, and one action to send it again.

The patient page shows the card (staff/_resend_card.html, data from `messages_to_resend`): each
message that failed or expired lately, with a button to resend it, or why it is not resent (a
reminder for a visit already past, a canceled visit, an opted-out patient); and one button for
all of them. Each button's confirmation names what will go; each resend is in the audit log.
The rules of what may go again are in reminders.outbox.resend.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, current_app, flash, redirect, request, url_for

from reminders.channel_specs import SPECS
from reminders.dispatch import send_soon
from reminders.models import Patient
from reminders.outbox import resend as outbox_resend
from reminders.timing.quiet_hours import QuietHours
from reminders.web.context import db, found, request_now, settings
from reminders.web.staff import audit
from reminders.web.staff.auth import current_user, guard
from reminders.web.staff.display import date_time, rule_label, time_only

log = logging.getLogger(__name__)

bp = Blueprint("resend", __name__, url_prefix="/patients")
guard(bp)

BLOCKED_WORDS = {
    outbox_resend.VISIT_PASSED: "Not resent: the visit it was for, {visit}, has passed.",
    outbox_resend.VISIT_CANCELED: "Not resent: the visit it was for was canceled.",
    outbox_resend.OPTED_OUT: "Not resent: {name} opted out of texts (STOP).",
}


@dataclass(frozen=True)
class ResendItem:
    """One message on the card, in staff words."""

    outbox_id: int
    label: str  # "Welcome text"
    what: str  # "the welcome text": for the confirmations
    when: str
    why: str  # why it did not go
    blocked: str | None  # why it is not resent


def _quiet(s) -> QuietHours:
    return QuietHours(start=s.quiet_hours_start, end=s.quiet_hours_end)


def _lowercase_first(label: str) -> str:
    return label[:1].lower() + label[1:] if label[:2] != label[:2].upper() else label


def _item(found: outbox_resend.Resendable, patient: Patient) -> ResendItem:
    label = rule_label(found.rule, found.kind)
    spec = SPECS.get(found.channel)
    channel = spec.short_label if spec is not None and spec.short_label else found.channel
    status = "Failed" if found.status != "skipped" else "Expired"
    blocked = None
    if found.blocked:
        blocked = BLOCKED_WORDS[found.blocked].format(visit=date_time(found.visit_starts_at, patient.timezone),
                                                      name=patient.first_name)
    return ResendItem(found.outbox_id, f"{label} ({channel})", f"the {_lowercase_first(label)}",
                      date_time(found.planned_for, patient.timezone), f"{status}: {found.why_it_did_not_go}", blocked)


@bp.app_template_global("messages_to_resend")
def messages_to_resend(patient: Patient) -> dict:
    """The card's content: the items, those that can go, and when they would go."""
    now = request_now()
    items = [_item(found, patient) for found in outbox_resend.what_did_not_go(db(), patient, now)]
    quiet = _quiet(settings())
    goes_at = quiet.next_allowed(now, patient.timezone)
    return {"items": items, "can_go": [item for item in items if not item.blocked],
            "quiet_until": time_only(goes_at, patient.timezone) if goes_at > now else None}


def naming(items: list[ResendItem]) -> str:
    """'the welcome text', 'the welcome text and the 24-hour reminder', 'a, b and c'."""
    names = [item.what for item in items]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@bp.post("/<int:patient_id>/resend")
def resend(patient_id: int):
    session, now = db(), request_now()
    patient = found(Patient, patient_id)
    wanted = [int(value) for value in request.form.getlist("outbox_id") if value.isdigit() and len(value) <= 18]
    card = {item.outbox_id: item for item in messages_to_resend(patient)["items"]}
    resent = outbox_resend.resend(session, patient, wanted, _quiet(settings()), now, current_user().email)
    back = redirect(url_for("patients.show", patient_id=patient.id) + "#resend")
    if not resent:
        session.rollback()
        flash("Nothing was resent: those messages have gone already or can no longer go.", "error")
        return back
    audit.record("resend_messages", "patient", patient.id, patient_id=patient.id, outbox_ids=resent,
                 messages=[card[i].label for i in resent if i in card])
    session.commit()
    due = _quiet(settings()).next_allowed(now, patient.timezone)
    what = naming([card[i] for i in resent if i in card])
    if due > now:
        flash(f"Resent to {patient.first_name}: {what}. It is quiet hours for them: "
              f"{'it goes' if len(resent) == 1 else 'they go'} at {time_only(due, patient.timezone)}.", "ok")
    else:
        _send_now(resent, now)
        flash(f"Resent to {patient.first_name}: {what}. {'It goes' if len(resent) == 1 else 'They go'} now; "
              "the messages below show when each has gone.", "ok")
    return back


def _send_now(ids: list[int], now: datetime) -> None:
    """Hand them to the sender at once, as staff replies are; if that fails the next pass sends them."""
    extensions = current_app.extensions
    try:
        send_soon(extensions["reminders.dispatcher"], extensions["reminders.sessions"], ids, now)
    except Exception:  # noqa: BLE001
        log.exception("resent %s: the immediate send failed; the next pass sends them", ids)
