"""Crisis escalations: opened from a reply, alerted to staff until a person claims it.

An escalation is open (staff are alerted), then claimed ("I'm on it": who and when; the alerts
stop), then resolved with an outcome note (status "acknowledged", the word the API has always
used). A claimed escalation still gathers the sender's texts and still holds automated asks.

Staff are alerted in rounds. Round 1 is planned the moment the escalation opens (the webhook
sends it at once); `plan_due_alerts`, run by every pass, plans the next round each
ESCALATION_REALERT_MINUTES until someone claims it. A round is one outbox row per staff
phone (SMS) and per staff email, keyed ``esc:{id}:round:{n}:{channel}:{address}``: two passes
racing on the same escalation insert each alert once, and a row that fails transiently is
retried by the outbox's normal backoff.

What an escalation is (statuses, reasons, tiers) is in reminders.escalations.kinds, and
the alerts' rows and words in reminders.escalations.alerts; this module is the only one that
writes escalations.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from reminders.escalations.alerts import ALERT_RULE, alert_email, alert_rows, alert_sms
from reminders.escalations.kinds import (ACKNOWLEDGED, ACTIVE, CLAIMED, CRISIS_CLASSIFICATIONS, KIND_WORDS,
                                                OPEN, REASON_CRISIS, REASON_EMERGENCY, REASON_LOW_SCORE,
                                                REASON_SELF_HARM, REASON_URGENT, REASON_WORDS, RESOLVED, kind_of,
                                                reason_for, severity_order, staff_words, tier_of)
from reminders.locations import LocationBook, patient_location
from reminders.logs import mask_phone
from reminders.models import Escalation, InboundMessage, OutboxMessage, Patient
from reminders.models.outbox import Status
from reminders.outbox import cancel_pending, plan

__all__ = [
    "ACKNOWLEDGED", "ACTIVE", "ALERT_RULE", "CLAIMED", "CRISIS_CLASSIFICATIONS", "KIND_WORDS", "OPEN", "REASON_CRISIS",
    "REASON_EMERGENCY", "REASON_LOW_SCORE", "REASON_SELF_HARM", "REASON_URGENT", "REASON_WORDS", "RESOLVED",
    "EscalationNotFound", "acknowledge", "alert_email", "alert_rows", "alert_sms", "claim", "crisis_open",
    "erase_words", "kind_of", "open_escalation", "open_for", "open_for_answer", "plan_due_alerts", "plan_round",
    "point_at_text", "reason_for", "resolve", "severity_order", "staff_words", "texts_after", "tier_of",
]

log = logging.getLogger(__name__)

# When texts of several kinds pile onto one escalation, the reason staff see is the gravest: a
# medical emergency is answered 911 first whatever came before it.
_REASON_RANK = {REASON_URGENT: 0, REASON_LOW_SCORE: 1, REASON_CRISIS: 2, REASON_SELF_HARM: 2, REASON_EMERGENCY: 3}
# A new crisis text on an escalation that is already open brings its next round forward, but
# never closer than this to the last round: the new words may matter, a flood of alerts does not.
NEW_TEXT_REALERT_GAP = timedelta(minutes=5)
# A follow-up that adds something (a new symptom, a means, a time) pages at once: the nurse on her
# way to the phone needs "now it's going down my left arm" too. Thanks and "who is this?" never page.
FOLLOW_UP_REALERT_GAP = timedelta(0)
# A round with nothing sent this long after it was planned is worth an error in the log.
ROUND_STUCK_AFTER = timedelta(minutes=1)


class EscalationNotFound(LookupError):
    pass


# ---------------------------------------------------------------- opening

def open_escalation(session: Session, settings, *, patient: Patient | None, inbound: InboundMessage,
                    reason: str, now: datetime, realert: bool = True, at_once: bool = False,
                    location_id: int | None = None) -> tuple[Escalation, list[int]]:
    """Open an escalation for this text, or add the text to the one already open for the same
    patient (or, for an unknown sender, the same number). `settings`: the clinic's (the book's
    base); `location_id`: the location the text is for, whose on-call is alerted.

    `realert`: whether a text added to an open escalation brings its next round forward (crisis
    words do; a plain "ok thanks" after the crisis answer is only added); `at_once`: a follow-up
    that adds something pages now (FOLLOW_UP_REALERT_GAP after the last round at the soonest).
    Returns the escalation and the ids of the alert rows planned now, to be sent at once after
    the caller commits (pipeline.send_soon)."""
    return _open(session, settings, patient=patient, from_number=inbound.from_number, text=inbound.body or "",
                 inbound_id=inbound.id, reason=reason, now=now, realert=realert, at_once=at_once,
                 location_id=location_id)


def open_for_answer(session: Session, settings, *, patient: Patient, questionnaire_id: int, text: str,
                    now: datetime) -> tuple[Escalation, list[int]]:
    """A self-harm answer on a questionnaire: alerted to staff exactly like a crisis text, at the
    patient's location."""
    escalation, ids = _open(session, settings, patient=patient, from_number=patient.phone or "", text=text,
                            inbound_id=None, reason=REASON_SELF_HARM, now=now, realert=True,
                            location_id=patient_location(session, patient.id, now))
    if escalation.questionnaire_id is None:
        escalation.questionnaire_id = questionnaire_id
    return escalation, ids


def point_at_text(session: Session, escalation_id: int, stored_text: Callable[[], int]) -> None:
    """A self-harm answer by text: its escalation, opened before the text was stored, points at
    that text (`stored_text` stores it and gives its id; called only when it is needed)."""
    escalation = session.get(Escalation, escalation_id)
    if escalation is not None and escalation.inbound_message_id is None:
        escalation.inbound_message_id = stored_text()


def _open(session: Session, settings, *, patient: Patient | None, from_number: str, text: str,
          inbound_id: int | None, reason: str, now: datetime, realert: bool,
          at_once: bool = False, location_id: int | None = None) -> tuple[Escalation, list[int]]:
    # Texts with no sender at all are each their own escalation: nothing says they are one person.
    escalation = open_for(session, patient, from_number) if patient is not None or from_number else None
    book = LocationBook.load(session, settings)
    if escalation is None:
        escalation = Escalation(
            patient_id=patient.id if patient else None, inbound_message_id=inbound_id,
            from_number=from_number, reason=reason, text=text, status=OPEN,
            opened_at=now, alert_round=0, next_alert_at=now, location_id=location_id,
        )
        session.add(escalation)
        session.flush()
        log.warning("escalation %s opened (%s) for %s", escalation.id, reason,
                    f"patient {patient.id}" if patient else f"unknown number {mask_phone(from_number)}")
    else:
        if escalation.location_id is None:
            escalation.location_id = location_id  # opened at the default location: now known where
        escalation.text = _appended(escalation.text, text, now, book.settings_for(escalation.location_id))
        if realert and _REASON_RANK.get(reason, 2) > _REASON_RANK.get(escalation.reason, 2):
            escalation.reason = reason
        gap = FOLLOW_UP_REALERT_GAP if at_once else NEW_TEXT_REALERT_GAP
        soonest = max((escalation.last_alerted_at or now) + gap, now)
        if realert and (escalation.next_alert_at is None or soonest < escalation.next_alert_at):
            escalation.next_alert_at = soonest
        log.warning("escalation %s: another text added (%s)", escalation.id, reason if realert else "follow-up")
    due = escalation.next_alert_at is not None and escalation.next_alert_at <= now
    ids = _plan_round(session, settings, escalation, now, book)[1] if due else []
    return escalation, ids


def open_for(session: Session, patient: Patient | None, from_number: str) -> Escalation | None:
    """The sender's escalation not yet resolved (open or claimed), the newest."""
    query = select(Escalation).where(Escalation.status.in_(ACTIVE))
    if patient is not None:
        query = query.where(Escalation.patient_id == patient.id)
    else:
        query = query.where(Escalation.patient_id.is_(None), Escalation.from_number == from_number)
    return session.scalars(query.order_by(Escalation.opened_at.desc(), Escalation.id.desc()).limit(1)).first()


def crisis_open(session: Session, patient_id: int) -> bool:
    """Whether a crisis escalation (suicide risk, a medical emergency: not an urgent page) of this
    patient's is open: automated asks (check-ins, questionnaires, nudges) wait meanwhile."""
    return session.scalar(
        select(Escalation.id).where(Escalation.patient_id == patient_id, Escalation.status.in_(ACTIVE),
                                    Escalation.reason != REASON_URGENT).limit(1)) is not None


def _appended(text: str, body: str, now: datetime, settings) -> str:
    local = now.astimezone(ZoneInfo(settings.clinic_timezone))
    return f"{text}\n\n[{local:%Y-%m-%d %H:%M %Z}] {body}".strip()


# ---------------------------------------------------------------- alert rounds

def plan_due_alerts(session: Session, settings, now: datetime) -> int:
    """Plan staff alerts for escalations whose next alert is due (open ones every round; a claimed
    one only for a new text that said more). Returns rows planned."""
    due = session.scalars(
        select(Escalation)
        .where(Escalation.status.in_(ACTIVE), Escalation.next_alert_at <= now)
        .order_by(Escalation.next_alert_at, Escalation.id)
        .with_for_update(skip_locked=True)
    ).all()
    book = LocationBook.load(session, settings) if due else None
    return sum(_plan_round(session, settings, escalation, now, book)[0] for escalation in due)


def plan_round(session: Session, settings, escalation: Escalation, now: datetime) -> list[int]:
    """Plan the next round of alerts for one escalation. Returns the ids of its pending rows
    (also those a racing planner inserted first: claiming them is what makes each go once)."""
    return _plan_round(session, settings, escalation, now)[1]


def _plan_round(session: Session, settings, escalation: Escalation, now: datetime,
                book: LocationBook | None = None) -> tuple[int, list[int]]:
    """`settings`: the clinic's; the round goes to the on-call of the escalation's location."""
    interval = timedelta(minutes=settings.escalation_realert_minutes)
    round_no = escalation.alert_round + 1
    patient = session.get(Patient, escalation.patient_id) if escalation.patient_id else None
    book = book or LocationBook.load(session, settings)
    place = book.place(escalation.location_id)
    rows = alert_rows(place.settings, escalation, patient, round_no, now, place=place if book.several else None)
    if not rows:
        # Never dropped silently: the escalation stays open in the staff UI and the API, and
        # this is logged again every round until someone claims it.
        log.error("escalation %s is open and NOBODY WAS ALERTED: no STAFF_ALERT_PHONES or STAFF_ALERT_EMAILS "
                  "are configured%s. Set them; until then watch the escalations page.", escalation.id,
                  f" (nor on-call for {place.name})" if place.id is not None else "")
        escalation.next_alert_at = now + interval if escalation.status == OPEN else None
        return 0, []
    if round_no > 1:
        if escalation.last_alerted_at is None or escalation.last_alerted_at <= now - ROUND_STUCK_AFTER:
            _warn_if_previous_round_failed(session, escalation, round_no - 1)
        # Earlier rounds still waiting (an SMS outage, a stopped worker) give way to this one: after
        # two hours on-call gets one alert per phone, the latest, not eight at once.
        earlier = session.scalars(select(OutboxMessage.id).where(
            OutboxMessage.escalation_id == escalation.id,
            OutboxMessage.dedupe_key.not_like(f"esc:{escalation.id}:round:{round_no}:%"))).all()
        superseded = cancel_pending(session, now, "superseded by a newer alert round", ids=earlier,
                                    escalation_id=escalation.id) if earlier else 0
        if superseded:
            log.warning("escalation %s: %s unsent alert(s) of earlier rounds replaced by round %s",
                        escalation.id, superseded, round_no)
    inserted = len(plan(session, rows, now))
    keys = [row.dedupe_key for row in rows]
    ids = list(session.scalars(
        select(OutboxMessage.id).where(OutboxMessage.dedupe_key.in_(keys), OutboxMessage.status == Status.PLANNED)
        .order_by(OutboxMessage.id)
    ))
    escalation.alert_round = round_no
    escalation.last_alerted_at = now
    # Once claimed, rounds stop: a new text that says more pages once (the patient is told so).
    escalation.next_alert_at = now + interval if escalation.status == OPEN else None
    log.warning("escalation %s: alert round %s planned (%s rows)", escalation.id, round_no, len(rows))
    return inserted, ids


def _warn_if_previous_round_failed(session: Session, escalation: Escalation, round_no: int) -> None:
    statuses = list(session.scalars(
        select(OutboxMessage.status).where(
            OutboxMessage.escalation_id == escalation.id,
            OutboxMessage.dedupe_key.like(f"esc:{escalation.id}:round:{round_no}:%"),
        )
    ))
    if statuses and not any(status in (Status.SENT, Status.DELIVERED) for status in statuses):
        log.error("escalation %s: no alert of round %s has gone out yet (%s); check the SMS and email "
                  "settings", escalation.id, round_no, ", ".join(sorted(set(statuses))))


# ---------------------------------------------------------------- claiming and resolving

def claim(session: Session, escalation_id: int, by: str, now: datetime) -> Escalation:
    """"I'm on it": the re-alerts stop and unsent alerts are canceled; the escalation stays until
    resolved. Claiming twice, or a resolved one, keeps the first record."""
    escalation = _get(session, escalation_id)
    if escalation.status == OPEN:
        escalation.status, escalation.claimed_at, escalation.claimed_by = CLAIMED, now, by
        escalation.next_alert_at = None
        cancel_pending(session, now, "escalation claimed", escalation_id=escalation.id)
        log.info("escalation %s claimed", escalation.id)
    return escalation


def resolve(session: Session, escalation_id: int, by: str, note: str, now: datetime) -> Escalation:
    """Resolved, with what was done: alerts stop (if no one had claimed it) and its crisis texts
    leave the staff inbox, marked done by the same person. A question the sender asked meanwhile
    is an inbox item of its own and stays until someone answers it. Resolving twice keeps the
    first record."""
    escalation = _get(session, escalation_id)
    if escalation.status != RESOLVED:
        escalation.status = RESOLVED
        escalation.acknowledged_at = now
        escalation.acknowledged_by = by
        escalation.ack_note = note or ""
        escalation.next_alert_at = None
        cancel_pending(session, now, "escalation resolved", escalation_id=escalation.id)
        for message in session.scalars(_its_crisis_texts(escalation, now)):
            message.done_at, message.done_by = now, by
        log.info("escalation %s resolved", escalation.id)
    return escalation


# The API's word (POST /api/v1/escalations/<id>/ack): acknowledging is resolving.
acknowledge = resolve


def erase_words(session: Session, patient_id: int) -> None:
    """An erased patient's words and number go (reminders.retention.erase); the record of the
    escalation stays."""
    session.execute(update(Escalation).where(Escalation.patient_id == patient_id)
                    .values(text="", from_number="", ack_note="").execution_options(synchronize_session=False))


def _get(session: Session, escalation_id: int) -> Escalation:
    escalation = session.get(Escalation, escalation_id)
    if escalation is None:
        raise EscalationNotFound(f"no escalation {escalation_id}")
    return escalation


def _its_crisis_texts(escalation: Escalation, now: datetime):
    texts = select(InboundMessage).where(
        InboundMessage.classification.in_(CRISIS_CLASSIFICATIONS),
        InboundMessage.needs_staff, InboundMessage.done_at.is_(None),
        InboundMessage.received_at >= escalation.opened_at, InboundMessage.received_at <= now,
    )
    return texts.where(*_from_its_sender(escalation))


def _from_its_sender(escalation: Escalation) -> tuple:
    if escalation.patient_id is not None:
        return (InboundMessage.patient_id == escalation.patient_id,)
    return (InboundMessage.patient_id.is_(None), InboundMessage.from_number == escalation.from_number)


def texts_after(session: Session, escalation: Escalation, limit: int = 5) -> list[InboundMessage]:
    """The sender's texts since the escalation was resolved, newest first: on its card, so a
    resolved escalation never hides what the patient wrote next."""
    if escalation.acknowledged_at is None:
        return []
    return list(session.scalars(
        select(InboundMessage).where(InboundMessage.received_at > escalation.acknowledged_at,
                                     *_from_its_sender(escalation))
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc()).limit(limit)))
