"""Retention and patients' rights: purging old message words, a patient's data as JSON, erasure.

Purge (`reminders purge`, RETENTION_DAYS): the words of messages older than RETENTION_DAYS are
blanked and the rows kept as metadata (when, to whom, which rule, status, scores):
- outbox rows: subject and body (body_purged_at set). Never a row still pending (planned, queued,
  sending) or an alert of an escalation still open.
- inbound texts: body, the automatic answer, the staff note (body_purged_at set). Never one still
  waiting in the staff inbox or one behind an escalation still open.
- check-ins: the patient's own words (raw text, note) once answered; the score stays.
- escalations once acknowledged: the text that opened them.
A dry run counts the same rows and changes nothing.

Export: everything stored about one patient, as JSON (patient, courses, visits, messages, replies,
check-ins, measures, escalations, and the audit rows about them). Erasure: the patient's personal
data (name, phone, email, notes, message words, the numbers texts came from) is blanked, pending
messages are canceled, future visits canceled, open questionnaire links expire; the rows stay as
anonymous metadata, and the audit row of the erasure is kept like every other. An erased patient
stays erased: the Patient model keeps no contact details on an erased row, whatever an import says.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, exists, func, inspect, not_, or_, select, update
from sqlalchemy.orm import Session

from reminders import checkins, consent
from reminders import escalations
from reminders.models import (Appointment, AuditEntry, CheckIn, Course, Escalation, InboundMessage, OutboxMessage,
                              Patient, Questionnaire, utcnow)
from reminders.models.outbox import PENDING_STATUSES, Status
from reminders.models.patients import ERASED_NAME
from reminders.outbox.moves import cancel_pending
from reminders.visits.moves import cancel_coming

ERASED_REASON = "patient erased"
NOT_FINAL = (*PENDING_STATUSES, Status.SENDING)


class PatientNotFound(LookupError):
    pass


class ErasureRefused(ValueError):
    pass


@dataclass
class PurgeReport:
    cutoff: str
    dry_run: bool
    outbox_bodies: int = 0
    inbound_texts: int = 0
    checkin_texts: int = 0
    escalation_texts: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def _open_escalation_of_inbound():
    # Open or claimed: not resolved yet ("acknowledged" is resolved).
    return exists().where(Escalation.inbound_message_id == InboundMessage.id, Escalation.status != "acknowledged")


def _purge_conditions(cutoff: datetime) -> dict:
    open_alert = exists().where(Escalation.id == OutboxMessage.escalation_id, Escalation.status != "acknowledged")
    return {
        OutboxMessage: and_(
            OutboxMessage.body_purged_at.is_(None),
            or_(OutboxMessage.body.is_not(None), OutboxMessage.subject.is_not(None)),
            OutboxMessage.status.not_in([s.value for s in NOT_FINAL]),
            OutboxMessage.created_at < cutoff,
            func.coalesce(OutboxMessage.sent_at, OutboxMessage.created_at) < cutoff,
            not_(open_alert),
        ),
        InboundMessage: and_(
            InboundMessage.body_purged_at.is_(None),
            InboundMessage.received_at < cutoff,
            # still waiting for a person in the staff inbox
            not_(and_(InboundMessage.needs_staff.is_(True), InboundMessage.done_at.is_(None))),
            not_(_open_escalation_of_inbound()),
        ),
        CheckIn: and_(
            or_(CheckIn.raw_text != "", CheckIn.note != ""),
            CheckIn.status.not_in(["awaiting", "reasked"]),
            func.coalesce(CheckIn.answered_at, CheckIn.created_at) < cutoff,
        ),
        Escalation: and_(
            Escalation.status == "acknowledged",
            Escalation.text != "",
            Escalation.opened_at < cutoff,
            func.coalesce(Escalation.acknowledged_at, Escalation.opened_at) < cutoff,
        ),
    }


def purge(session: Session, now: datetime, retention_days: int, dry_run: bool = False) -> PurgeReport:
    """Blank the words older than `retention_days` (see the module's docstring); the caller commits."""
    if retention_days <= 0:
        raise ValueError("RETENTION_DAYS must be at least 1 to purge")
    cutoff = now - timedelta(days=retention_days)
    conditions = _purge_conditions(cutoff)
    report = PurgeReport(cutoff=cutoff.isoformat(), dry_run=dry_run)
    values = {
        OutboxMessage: ("outbox_bodies", {"body": None, "subject": None, "body_purged_at": now}),
        InboundMessage: ("inbound_texts", {"body": "", "reply_body": None, "done_note": "", "body_purged_at": now}),
        CheckIn: ("checkin_texts", {"raw_text": "", "note": ""}),
        Escalation: ("escalation_texts", {"text": ""}),
    }
    for model, (field, new_values) in values.items():
        if dry_run:
            count = session.scalar(select(func.count()).select_from(model).where(conditions[model])) or 0
        else:
            count = session.execute(update(model).where(conditions[model]).values(**new_values)
                                    .execution_options(synchronize_session=False)).rowcount or 0
        setattr(report, field, count)
    return report


# --- one patient ------------------------------------------------------------------------------------

def find_patient(session: Session, external_id: str) -> Patient:
    patient = session.scalar(select(Patient).where(Patient.external_id == external_id))
    if patient is None:
        raise PatientNotFound(f"no patient with the external id {external_id!r}")
    return patient


def _value(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def _row(obj, leave_out: tuple[str, ...] = ()) -> dict:
    return {attr.key: _value(getattr(obj, attr.key)) for attr in inspect(obj).mapper.column_attrs
            if attr.key not in leave_out}


def patient_data(session: Session, patient: Patient) -> dict:
    """Everything stored about the patient, as JSON-ready dicts."""
    def rows(model, *where, order):
        return [_row(r, ("token",) if model is Questionnaire else ()) for r in
                session.scalars(select(model).where(*where).order_by(order))]

    pid = patient.id
    audit_rows = session.scalars(select(AuditEntry).where(or_(
        and_(AuditEntry.target_type == "patient", AuditEntry.target_id == str(pid)),
        AuditEntry.detail["patient_id"].as_integer() == pid)).order_by(AuditEntry.id))
    return {
        "exported_at": utcnow().isoformat(),
        "patient": _row(patient),
        "courses": rows(Course, Course.patient_id == pid, order=Course.id),
        "visits": rows(Appointment, Appointment.patient_id == pid, order=Appointment.starts_at),
        "messages": rows(OutboxMessage, OutboxMessage.patient_id == pid, order=OutboxMessage.id),
        "replies": rows(InboundMessage, InboundMessage.patient_id == pid, order=InboundMessage.id),
        "checkins": rows(CheckIn, CheckIn.patient_id == pid, order=CheckIn.id),
        "measures": rows(Questionnaire, Questionnaire.patient_id == pid, order=Questionnaire.id),
        "escalations": rows(Escalation, Escalation.patient_id == pid, order=Escalation.id),
        "audit": [{k: v for k, v in _row(e).items() if k not in ("prev_hash", "hash")} for e in audit_rows],
    }


def export_patient(session: Session, external_id: str, actor: str) -> dict:
    """The patient's data by external_id, with an audit row (the caller commits)."""
    patient = find_patient(session, external_id)
    data = patient_data(session, patient)
    session.add(AuditEntry(at=utcnow(), actor=actor, action="export_patient", target_type="patient",
                           target_id=str(patient.id)))
    return data


def erase(session: Session, patient: Patient, actor: str, now: datetime | None = None) -> dict:
    """Erase the patient's personal data (see the module's docstring); the caller commits. Refused
    while an escalation of theirs is open (a possible crisis is acknowledged first)."""
    now = now or utcnow()
    pid = patient.id
    if session.scalar(select(func.count()).select_from(Escalation)
                      .where(Escalation.patient_id == pid, Escalation.status != "acknowledged")):
        raise ErasureRefused("This patient has an open escalation: resolve it first, then erase.")
    if patient.erased_at is not None:
        raise ErasureRefused("This patient's data is erased already.")
    pending = session.scalars(select(OutboxMessage.id).where(OutboxMessage.patient_id == pid,
                                                             OutboxMessage.status.in_(PENDING_STATUSES))).all()
    canceled = cancel_pending(session, now, ERASED_REASON, ids=pending) if pending else 0
    visits = cancel_coming(session, pid, now)
    session.execute(update(OutboxMessage).where(OutboxMessage.patient_id == pid).values(
        body=None, subject=None, to_address=None, error_message=None, body_purged_at=now)
        .execution_options(synchronize_session=False))
    session.execute(update(InboundMessage).where(InboundMessage.patient_id == pid).values(
        body="", reply_body=None, done_note="", from_number="", body_purged_at=now)
        .execution_options(synchronize_session=False))
    checkins.erase_words(session, pid)
    escalations.erase_words(session, pid)
    session.execute(update(Questionnaire).where(Questionnaire.patient_id == pid, Questionnaire.expires_at > now)
                    .values(expires_at=now).execution_options(synchronize_session=False))
    patient.erased_at = now  # the Patient model blanks the personal fields of an erased row (models.patients)
    patient.first_name, patient.last_name = ERASED_NAME, ""
    consent.opt_out_erased(patient, now)
    session.add(AuditEntry(at=now, actor=actor, action="erase_patient", target_type="patient", target_id=str(pid),
                           detail={"messages_canceled": canceled, "visits_canceled": visits}))
    session.flush()
    return {"patient_id": pid, "external_id": patient.external_id, "erased_at": now.isoformat(),
            "messages_canceled": canceled, "visits_canceled": visits}


def erase_patient(session: Session, external_id: str, actor: str, now: datetime | None = None) -> dict:
    return erase(session, find_patient(session, external_id), actor, now)
