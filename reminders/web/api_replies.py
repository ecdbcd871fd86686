"""API routes for what patients text back: check-ins, replies, escalations, follow-ups, delivery problems.

GET  /api/v1/checkins?patient_external_id=...     a patient's mood check-ins, oldest first
GET  /api/v1/replies?patient_external_id=...      a patient's inbound texts, oldest first
GET  /api/v1/replies?needs_staff=true             the staff inbox (not done yet), red flags first, then newest
GET  /api/v1/escalations[?status=open|claimed|acknowledged]   open first, newest first
GET  /api/v1/escalations/<id>
POST /api/v1/escalations/<id>/ack  {"by": "...", "note": "..."}   resolves it: 200 with the escalation; 404 unknown
GET  /api/v1/followups                            patients who should be booked and are not
GET  /api/v1/delivery-problems                    texts and emails that did not arrive, newest first
"""
from __future__ import annotations

from flask import g, jsonify, request
from sqlalchemy import case, select
from sqlalchemy.orm import selectinload

from reminders.escalations import ACKNOWLEDGED, CLAIMED, OPEN, EscalationNotFound, acknowledge
from reminders.followup import Followup, patients_needing_booking
from reminders.inbound.delivery_reports import delivery_problems
from reminders.models import Appointment, CheckIn, Escalation, InboundMessage, OutboxMessage
from reminders.web.api_auth import require_token
from reminders.web.api_requests import BadRequest, api_blueprint, json_body, patient_by_external_id, patient_from_query
from reminders.web.context import db, request_now, settings
from reminders.web.serialize import iso, message_json

api_replies = api_blueprint("api_replies", __name__)

MAX_LIST = 500
NOTE_LIMIT = 2000


# ---------------------------------------------------------------- shapes

def _visit_json(appointment: Appointment | None) -> dict | None:
    if appointment is None:
        return None
    return {
        "external_id": appointment.external_id, "kind": appointment.kind,
        "number_in_course": appointment.number_in_course, "starts_at": iso(appointment.starts_at),
        "status": appointment.status,
    }


def checkin_json(checkin: CheckIn) -> dict:
    return {
        "id": checkin.id,
        "status": checkin.status,
        "kind": checkin.kind,  # "mood" (0 worst, 10 best) or "pain" (0 none, 10 worst)
        "score": checkin.score,
        "note": checkin.note,
        "details": checkin.details,
        "raw_text": checkin.raw_text,
        "prompted_at": iso(checkin.prompted_at),
        "reasked_at": iso(checkin.reasked_at),
        "answered_at": iso(checkin.answered_at),
        "appointment_external_id": checkin.appointment.external_id if checkin.appointment else None,
        "appointment_starts_at": iso(checkin.appointment.starts_at) if checkin.appointment else None,
        "follows": _visit_json(checkin.appointment),
        "inbound_message_id": checkin.inbound_message_id,
    }


def inbound_json(message: InboundMessage) -> dict:
    return {
        "id": message.id,
        "direction": "in",
        "received_at": iso(message.received_at),
        "from": message.from_number,
        "patient_external_id": message.patient.external_id if message.patient else None,
        "appointment_external_id": _appointment_external_id(message.appointment_id),
        "body": message.body,
        "classification": message.classification,
        "needs_staff": message.needs_staff,
        "priority": message.priority,  # 2 crisis, 1 a nurse today (side effects, blood pressure, question), 0 routine
        "flag_reason": message.flag_reason,
        "done_at": iso(message.done_at),
        "done_by": message.done_by,
        "reply": message.reply_body,
        "message_sid": message.message_sid,
    }


def _appointment_external_id(appointment_id: int | None) -> str | None:
    if appointment_id is None:
        return None
    appointment = db().get(Appointment, appointment_id)
    return appointment.external_id if appointment else None


def escalation_json(escalation: Escalation, alerts: list[OutboxMessage] | None = None) -> dict:
    patient = escalation.patient
    data = {
        "id": escalation.id,
        "status": escalation.status,
        "reason": escalation.reason,
        "opened_at": iso(escalation.opened_at),
        "patient_external_id": patient.external_id if patient else None,
        "patient_name": patient.full_name if patient else None,
        "from": escalation.from_number,
        "text": escalation.text,
        "inbound_message_id": escalation.inbound_message_id,
        "alert_round": escalation.alert_round,
        "last_alerted_at": iso(escalation.last_alerted_at),
        "next_alert_at": iso(escalation.next_alert_at),
        "acknowledged_at": iso(escalation.acknowledged_at),
        "acknowledged_by": escalation.acknowledged_by,
        "ack_note": escalation.ack_note,
        "claimed_at": iso(escalation.claimed_at),
        "claimed_by": escalation.claimed_by,
    }
    if alerts is not None:
        data["alerts"] = [
            {"id": row.id, "channel": row.channel, "to": row.to_address, "status": row.status,
             "error_code": row.error_code, "sent_at": iso(row.sent_at), "delivered_at": iso(row.delivered_at)}
            for row in alerts
        ]
    return data


def followup_json(row: Followup) -> dict:
    nudge = row.nudge
    return {
        "patient_external_id": row.patient.external_id,
        "patient_name": row.patient.full_name,
        "phone": row.patient.phone,
        "kind": row.kind,
        "reason": row.reason,
        "due_by": iso(row.due_by),
        "overdue": row.overdue,
        "last_visit": _visit_json(row.last_visit),
        "next_visit": _visit_json(row.next_visit),
        "missed_visit": _visit_json(row.missed_since),
        "nudge": {"channel": nudge.channel, "status": nudge.status, "due_at": iso(nudge.due_at),
                  "sent_at": iso(nudge.sent_at)} if nudge else None,
    }


def _alerts_by_escalation(ids: list[int]) -> dict[int, list[OutboxMessage]]:
    found: dict[int, list[OutboxMessage]] = {i: [] for i in ids}
    if ids:
        for row in db().scalars(select(OutboxMessage).where(OutboxMessage.escalation_id.in_(ids)).order_by(OutboxMessage.id)):
            found[row.escalation_id].append(row)
    return found


def _flag(name: str) -> bool | None:
    value = request.args.get(name)
    if value is None:
        return None
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise BadRequest(f"{name} must be true or false", status=422, field=name)


# ---------------------------------------------------------------- routes

@api_replies.get("/checkins")
@require_token
def list_checkins():
    patient = patient_from_query("check-ins")
    rows = db().scalars(
        select(CheckIn).where(CheckIn.patient_id == patient.id)
        .order_by(CheckIn.prompted_at, CheckIn.id).options(selectinload(CheckIn.appointment))
    ).all()
    return jsonify({"patient_external_id": patient.external_id, "checkins": [checkin_json(row) for row in rows]})


@api_replies.get("/replies")
@require_token
def list_replies():
    external_id = request.args.get("patient_external_id")
    needs_staff = _flag("needs_staff")
    if not external_id and needs_staff is None:
        raise BadRequest("add ?patient_external_id=... for a patient's texts or ?needs_staff=true for the staff inbox",
                         status=422)
    query = select(InboundMessage).options(selectinload(InboundMessage.patient))
    payload: dict = {}
    if external_id:
        patient = patient_by_external_id(external_id)
        query = query.where(InboundMessage.patient_id == patient.id).order_by(InboundMessage.received_at, InboundMessage.id)
        payload["patient_external_id"] = external_id
    else:
        # The staff inbox: crises, then red flags, then the rest; newest first within each.
        query = query.order_by(InboundMessage.priority.desc(), InboundMessage.received_at.desc(),
                               InboundMessage.id.desc())
    if needs_staff is not None:
        query = query.where(InboundMessage.needs_staff == needs_staff)
        if needs_staff:
            query = query.where(InboundMessage.done_at.is_(None))
    rows = db().scalars(query.limit(MAX_LIST)).all()
    return jsonify({**payload, "replies": [inbound_json(row) for row in rows]})


@api_replies.get("/escalations")
@require_token
def list_escalations():
    status = request.args.get("status")
    if status is not None and status not in (OPEN, CLAIMED, ACKNOWLEDGED):
        raise BadRequest(f"status must be {OPEN}, {CLAIMED} or {ACKNOWLEDGED}", status=422, field="status")
    open_first = case((Escalation.status == OPEN, 0), else_=1)
    query = (select(Escalation).options(selectinload(Escalation.patient))
             .order_by(open_first, Escalation.opened_at.desc(), Escalation.id.desc()).limit(MAX_LIST))
    if status:
        query = query.where(Escalation.status == status)
    rows = db().scalars(query).all()
    alerts = _alerts_by_escalation([row.id for row in rows])
    return jsonify({"escalations": [escalation_json(row, alerts[row.id]) for row in rows]})


def _escalation(escalation_id: int) -> Escalation:
    escalation = db().get(Escalation, escalation_id)
    if escalation is None:
        raise BadRequest(f"no escalation {escalation_id}", status=404)
    return escalation


@api_replies.get("/escalations/<int:escalation_id>")
@require_token
def get_escalation(escalation_id: int):
    escalation = _escalation(escalation_id)
    return jsonify(escalation_json(escalation, _alerts_by_escalation([escalation.id])[escalation.id]))


@api_replies.post("/escalations/<int:escalation_id>/ack")
@require_token
def acknowledge_escalation(escalation_id: int):
    data = json_body(optional=True)
    by, note = data.get("by"), data.get("note") or ""
    for field, value in (("by", by), ("note", note)):
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"{field} must be text", status=422, errors=[f"{field} must be text"], field=field)
        if value and "\x00" in value:
            raise BadRequest(f"{field} contains a NUL character", status=422,
                             errors=[f"{field} contains a NUL character"], field=field)
    by = (by or "").strip() or f"api token {g.api_token_name}"
    session = db()
    try:
        already = _escalation(escalation_id).status == ACKNOWLEDGED
        escalation = acknowledge(session, escalation_id, by[:254], note.strip()[:NOTE_LIMIT], request_now())
    except EscalationNotFound:
        raise BadRequest(f"no escalation {escalation_id}", status=404) from None
    session.commit()
    body = escalation_json(escalation, _alerts_by_escalation([escalation.id])[escalation.id])
    return jsonify({**body, "result": "already_acknowledged" if already else "acknowledged"})


@api_replies.get("/followups")
@require_token
def list_followups():
    rows = patients_needing_booking(db(), settings(), request_now())
    return jsonify({"followups": [followup_json(row) for row in rows]})


@api_replies.get("/delivery-problems")
@require_token
def list_delivery_problems():
    rows = delivery_problems(db())
    return jsonify({"messages": [
        {**message_json(row), "patient_external_id": row.patient.external_id if row.patient else None}
        for row in rows
    ]})
