"""What a patient's text does: opt-out, confirmation, check-in answer, staff inbox, escalation.

`handle_inbound` records the text, reads it (reminders.inbound.parsing), acts, and returns the
answer to send back in the same request. Every text ends in one of two places:

- handled by the service, with a classification that says how: ``stop``, ``start``, ``help``,
  ``confirm`` (a visit confirmed), ``checkin_answer`` (a score recorded), or
  ``checkin_unreadable`` (first unreadable answer to a check-in, re-asked once; unanswered
  re-asks go to staff after REASK_ANSWER_WAIT, see `unanswered_reasks_to_staff`);
- or in the staff inbox (``needs_staff``): reschedule requests, free text, questions, unprompted
  scores, a confirm with no visit to confirm, a second unreadable answer, anything from an
  unknown number, and every crisis (``crisis``, ``low_score``), which also opens an escalation.

Crisis detection runs on every text, keywords and unknown senders included.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reminders.inbound import escalations
from reminders.inbound.parsing import Reading, crisis_kind, detect_crisis, looks_spanish, read_reply
from reminders.logs import mask_phone
from reminders.models import Appointment, CheckIn, InboundMessage, OutboxMessage, Patient
from reminders.models.appointments import ACTIVE_STATUSES
from reminders.logs import also_sensitive, patient_values
from reminders.rendering import (TemplateStore, clinic_context, flag_failures, message_context, render, team_name,
                                 team_name_es)

log = logging.getLogger(__name__)

# A check-in prompt sent longer ago than this no longer makes a number a mood score.
CHECKIN_ANSWER_WINDOW = timedelta(days=3)
# A re-asked check-in the patient has not answered in this long goes to staff with what they wrote.
REASK_ANSWER_WAIT = timedelta(hours=4)
OPT_OUT_TEXT_LIMIT = 160  # Patient.opt_out_text's length

AWAITING, REASKED, ANSWERED, TO_STAFF = "awaiting", "reasked", "answered", "to_staff"
OPEN_CHECKIN = (AWAITING, REASKED)
# Classifications the service handles by itself (everything else is also in the staff inbox).
HANDLED = frozenset({"stop", "start", "help", "confirm", "checkin_answer", "checkin_unreadable"})
ERROR_CLASSIFICATION = "error"


@dataclass(frozen=True)
class InboundText:
    """Twilio's inbound form fields, as far as the service uses them."""

    message_sid: str | None
    from_number: str
    to_number: str = ""
    body: str = ""
    num_media: int = 0
    # What was wrong with the request's fields and was cleaned ("[sender number was malformed]"):
    # kept with the text for staff, who then see it in the inbox.
    notes: tuple[str, ...] = ()


@dataclass
class Handled:
    inbound_id: int | None
    classification: str
    needs_staff: bool
    reply: str | None
    alert_ids: list[int] = field(default_factory=list)
    escalation_id: int | None = None
    replayed: bool = False


# ---------------------------------------------------------------- the entry point

def handle_inbound(session: Session, settings, text: InboundText, now: datetime) -> Handled:
    """Record one inbound text and act on it. The caller commits, then sends `alert_ids` at once.

    A MessageSid seen before is not acted on again: the first answer is returned."""
    if text.message_sid:
        earlier = _by_sid(session, text.message_sid)
        if earlier is not None:
            return _replayed(earlier)
    inbound = InboundMessage(
        message_sid=text.message_sid or None, from_number=text.from_number, to_number=text.to_number,
        body=stored_body(text), received_at=now, classification="received", needs_staff=True,
    )
    session.add(inbound)
    try:
        session.flush()
    except IntegrityError:  # the same MessageSid in a concurrent request won the insert
        session.rollback()
        earlier = _by_sid(session, text.message_sid) if text.message_sid else None
        if earlier is None:
            raise
        return _replayed(earlier)
    return _Conversation(session, settings, inbound, text, now).run()


def record_failure(session: Session, settings, text: InboundText, now: datetime) -> Handled:
    """When acting on a text failed: keep it for staff and still answer with the crisis line.

    A text that might be a crisis opens an escalation here too, if the database allows."""
    session.rollback()
    crisis = _crisis_terms(text.body)
    if text.message_sid:
        earlier = _by_sid(session, text.message_sid)
        if earlier is not None:
            return _replayed(earlier)
    patient = _primary(session, _patients_for(session, text.from_number))
    reply = fallback_reply("crisis" if crisis else "received", settings)
    inbound = InboundMessage(
        message_sid=text.message_sid or None, from_number=text.from_number, to_number=text.to_number,
        body=stored_body(text), received_at=now, patient_id=patient.id if patient else None,
        classification="crisis" if crisis else ERROR_CLASSIFICATION, needs_staff=True, reply_body=reply,
    )
    session.add(inbound)
    session.flush()
    handled = Handled(inbound.id, inbound.classification, True, reply)
    if crisis:
        escalation, ids = escalations.open_escalation(
            session, settings, patient=patient, inbound=inbound, reason=escalations.REASON_CRISIS, now=now)
        handled.alert_ids, handled.escalation_id = ids, escalation.id
    return handled


def stored_body(text: InboundText) -> str:
    """The text as staff see it; pictures are not fetched, so they are named."""
    notes = list(text.notes)
    if text.num_media > 0:
        what = "1 picture or file" if text.num_media == 1 else f"{text.num_media} pictures or files"
        notes.append(f"[{what} attached: see the message in Twilio's log]")
    if not notes:
        return text.body
    note = " ".join(notes)
    return f"{text.body}\n{note}" if text.body.strip() else note


def _by_sid(session: Session, sid: str) -> InboundMessage | None:
    return session.scalar(select(InboundMessage).where(InboundMessage.message_sid == sid))


def _replayed(earlier: InboundMessage) -> Handled:
    log.info("inbound %s: MessageSid seen before; answering as the first time", earlier.id)
    return Handled(earlier.id, earlier.classification, earlier.needs_staff, earlier.reply_body, replayed=True)


def _crisis_terms(body: str) -> tuple[str, ...]:
    try:
        return detect_crisis(body)
    except Exception:  # noqa: BLE001 - a text that cannot be checked is treated as a crisis
        log.exception("crisis check failed; treating the text as a possible crisis")
        return ("unchecked",)


# ---------------------------------------------------------------- acting on one text

class _Conversation:
    """One inbound text from start to answer: who sent it, what it says, what it does."""

    def __init__(self, session: Session, settings, inbound: InboundMessage, text: InboundText, now: datetime):
        self.session, self.settings, self.inbound, self.text, self.now = session, settings, inbound, text, now
        self.patients = _patients_for(session, text.from_number)
        self.patient = _primary(session, self.patients)
        for patient in self.patients:
            also_sensitive(*patient_values(patient))
        self.checkin = open_checkin(session, self.patient, now) if self.patient else None
        self.store = TemplateStore(settings.templates_dir, session)
        self.appointment: Appointment | None = None
        self.alert_ids: list[int] = []
        self.escalation_id: int | None = None
        self.crisis = False

    def run(self) -> Handled:
        reading = self._read()
        was_opted_out = bool(self.patient and self.patient.sms_opted_out)
        low_score = reading.kind == "score" and reading.score is not None \
            and reading.score <= self.settings.crisis_score_max
        flagged = bool(reading.crisis_terms or low_score)
        # While an escalation is open, whatever else the sender writes belongs with it
        # ("I have the pills here" has no crisis words of its own).
        follow_up = not flagged and reading.kind not in ("stop", "start", "help") and \
            escalations.open_for(self.session, self.patient, self.text.from_number) is not None
        self.crisis = flagged or follow_up
        inbound = self.inbound
        inbound.patient_id = self.patient.id if self.patient else None
        if self.patient is None:
            classification, needs_staff, reply = self._from_unknown(reading)
        else:
            classification, needs_staff, reply = self._from_patient(reading)
        if self.crisis:
            urgent = crisis_kind(reading.crisis_terms)
            reason = (escalations.REASON_EMERGENCY if urgent == "medical"
                      else escalations.REASON_CRISIS if reading.crisis_terms or not low_score
                      else escalations.REASON_LOW_SCORE)
            escalation, self.alert_ids = escalations.open_escalation(
                self.session, self.settings, patient=self.patient, inbound=inbound, reason=reason, now=self.now,
                realert=flagged)
            self.escalation_id = escalation.id
            classification = "low_score" if reason == escalations.REASON_LOW_SCORE else "crisis"
            needs_staff = True
            crisis = self._crisis_reply(medical=urgent == "medical", spanish=looks_spanish(self.text.body))
            # The action's own answer still matters after an opt-out or a visit change.
            acted = reply and reading.kind in ("stop", "start", "confirm", "reschedule")
            reply = f"{crisis}\n\n{reply}" if acted else crisis
        elif was_opted_out and reading.kind not in ("stop", "start", "help"):
            reply = None  # no texts to a number that opted out, except what carriers require
        elif reply and self.patient and self.patient.welcomed_at is None and reading.kind not in ("stop", "help"):
            # Our first text to this patient: it says who we are, HELP/STOP and the crisis line.
            welcome = self._render("welcome.sms.j2", message_context(self.settings, self.patient, None, 0))
            if welcome:
                reply = welcome + "\n\n" + reply
                self.patient.welcomed_at = self.now
        if self.text.notes:
            needs_staff = True  # a request with malformed fields is shown to a person, whatever it said
        inbound.classification, inbound.needs_staff = classification, needs_staff
        inbound.appointment_id = self.appointment.id if self.appointment else None
        inbound.reply_body = reply
        self.session.flush()
        log.info("inbound %s from %s: %s%s", inbound.id, mask_phone(self.text.from_number), classification,
                 " (staff inbox)" if needs_staff else "")
        return Handled(inbound.id, classification, needs_staff, reply, self.alert_ids, self.escalation_id)

    def _read(self) -> Reading:
        try:
            return read_reply(self.text.body, expecting_score=self.checkin is not None)
        except Exception:  # noqa: BLE001 - an unreadable text goes to staff, never nowhere
            log.exception("inbound %s: the reply reader failed; sending the text to staff", self.inbound.id)
            return Reading("free_text", note=self.text.body.strip(), crisis_terms=_crisis_terms(self.text.body))

    # -- unknown senders: staff see everything; the answer reveals nothing about patients

    def _from_unknown(self, reading: Reading) -> tuple[str, bool, str | None]:
        context = self._context()
        if reading.kind == "stop":
            reply = self._render("reply_stop.sms.j2", context) or fallback_reply("stop", self.settings)
        elif reading.kind == "help":
            reply = self._render("reply_help.sms.j2", context) or fallback_reply("help", self.settings)
        else:
            reply = self._render("reply_unknown.sms.j2", context) or fallback_reply("unknown", self.settings)
        return reading.kind, True, reply

    # -- patients

    def _from_patient(self, reading: Reading) -> tuple[str, bool, str | None]:
        kind = reading.kind
        if kind == "stop":
            return "stop", False, self._opt_out()
        if kind == "start":
            return "start", False, self._opt_in()
        if kind == "help":
            return "help", False, self._reply("help")
        if kind == "confirm":
            return self._confirm()
        if kind == "reschedule":
            return self._reschedule()
        if kind == "score" and self.checkin is not None:
            return self._checkin_answer(reading)
        if kind == "score":
            return "score", True, self._reply("received")  # a score nobody asked for: staff read it
        if self.checkin is not None and "?" not in self.text.body:
            return self._checkin_unreadable()
        return kind, True, self._reply("received")

    def _opt_out(self) -> str:
        for patient in self.patients:  # the number opted out, whoever's record it is on
            if not patient.sms_opted_out:
                patient.sms_opted_out = True
                patient.opted_out_at = self.now
                patient.opt_out_text = self.text.body.strip()[:OPT_OUT_TEXT_LIMIT]
        return self._reply("stop")

    def _opt_in(self) -> str:
        was_out = [patient for patient in self.patients if patient.sms_opted_out]
        for patient in was_out:
            patient.sms_opted_out = False
            patient.opted_in_at = self.now
        # YES is an opt-in word by carrier rule, but a subscribed patient saying "yes" to a
        # reminder most likely means the visit: tell them how to confirm it.
        return self._reply("start" if was_out else "already_subscribed")

    def _confirm(self) -> tuple[str, bool, str | None]:
        visit = next_visit(self.session, self.patient, self.now)
        if visit is None:
            return "confirm", True, self._reply("no_visit")
        self.appointment = visit
        if visit.status == "scheduled":
            visit.status, visit.confirmed_at = "confirmed", self.now
        return "confirm", False, self._reply("confirmed")

    def _reschedule(self) -> tuple[str, bool, str | None]:
        visit = next_visit(self.session, self.patient, self.now)
        if visit is not None:
            self.appointment = visit
            visit.reschedule_requested_at = self.now
        return "reschedule", True, self._reply("reschedule")

    def _checkin_answer(self, reading: Reading) -> tuple[str, bool, str | None]:
        checkin = self.checkin
        earlier = checkin.raw_text if checkin.status == REASKED else ""
        checkin.score = reading.score
        checkin.note = "; ".join(part for part in (earlier.strip(), reading.note.strip()) if part)
        checkin.raw_text = f"{earlier}\n{self.text.body}" if earlier else self.text.body
        checkin.inbound_message_id = self.inbound.id
        checkin.status, checkin.answered_at = ANSWERED, self.now
        self.appointment = checkin.appointment
        return "checkin_answer", False, self._reply("checkin_thanks")

    def _checkin_unreadable(self) -> tuple[str, bool, str | None]:
        checkin = self.checkin
        self.appointment = checkin.appointment
        if checkin.status == AWAITING and not self.crisis:
            checkin.status, checkin.reasked_at = REASKED, self.now
            checkin.raw_text, checkin.inbound_message_id = self.text.body, self.inbound.id
            return "checkin_unreadable", False, self._reply("checkin_reask")
        earlier = self.session.get(InboundMessage, checkin.inbound_message_id) if checkin.inbound_message_id else None
        if earlier is not None:
            earlier.needs_staff = True
        checkin.status = TO_STAFF
        checkin.raw_text = f"{checkin.raw_text}\n{self.text.body}" if checkin.raw_text else self.text.body
        checkin.inbound_message_id = self.inbound.id
        return "checkin_unreadable", True, self._reply("received")

    # -- answers

    def _context(self) -> dict:
        if self.patient is None:
            return {"patient": {"first_name": "", "last_name": ""}, "clinic": clinic_context(self.settings), "visit": None}
        series = self.settings.induction_series_length
        if self.appointment is not None and self.appointment.course is not None:
            series = self.appointment.course.induction_sessions_planned
        return message_context(self.settings, self.patient, self.appointment, series)

    def _reply(self, name: str) -> str:
        return self._render(f"reply_{name}.sms.j2", self._context()) or fallback_reply(name, self.settings)

    def _crisis_reply(self, *, medical: bool, spanish: bool) -> str:
        """A medical emergency is answered with 911 first, a suicidal crisis with 988 first; a
        Spanish text in Spanish (with 988's Spanish option)."""
        base = "emergency" if medical else "crisis"
        template, fallback = (f"es/reply_{base}.sms.j2", f"{base}_es") if spanish else (f"reply_{base}.sms.j2", base)
        text = self._render(template, self._context())
        # Whatever staff made of the template, the answer carries both numbers.
        if not text or self.settings.crisis_line not in text or self.settings.emergency_number not in text:
            return fallback_reply(fallback, self.settings)
        return text

    def _render(self, name: str, context: dict) -> str | None:
        try:
            text = render(self.store, name, context) or None
            flag_failures(self.session, self.store, self.now)
            return text
        except Exception:  # noqa: BLE001 - a broken template must not cost the patient an answer
            log.exception("reply template %s failed; the built-in text is used", name)
            return None


FALLBACKS = {
    "crisis": ("We're so sorry you're going through this. Please call or text {crisis} now to talk with someone, "
               "day or night. If you are in immediate danger, call {emergency}. We have alerted {team}, "
               "but this number is not watched around the clock."),
    "emergency": ("This may be a medical emergency: please call {emergency} now. If you are having thoughts of "
                  "harming yourself, call or text {crisis}, day or night. We have alerted {team}, but this number "
                  "is not watched around the clock."),
    "crisis_es": ("Sentimos mucho que estés pasando por esto. Llama o envía un texto al {crisis} ahora (marca 2 para "
                  "español, o escribe AYUDA al {crisis}), de día o de noche. Si estás en peligro inmediato, llama al "
                  "{emergency}. Avisamos a {team_es}, pero este número no se atiende las 24 horas."),
    "emergency_es": ("Esto puede ser una emergencia médica: llama al {emergency} ahora. Si piensas en hacerte daño, "
                     "llama o envía un texto al {crisis} (marca 2 para español). Avisamos a {team_es}, pero este "
                     "número no se atiende las 24 horas."),
    "stop": "{clinic}: you're unsubscribed and will get no more texts from us. Reply START to resubscribe.",
    "start": "{clinic}: you're subscribed again. Reply HELP for help, STOP to opt out.",
    "already_subscribed": ("{clinic}: you're subscribed to visit reminders. To confirm your visit reply C, to "
                           "reschedule reply R. Reply HELP for help, STOP to opt out."),
    "help": ("{clinic}: visit reminders and check-ins. Questions: call {phone}. Reply STOP to opt out. Not watched "
             "around the clock: in a crisis call or text {crisis}, or {emergency} in an emergency."),
    "confirmed": "Thank you: your visit is confirmed. Reply R if you need to reschedule.",
    "no_visit": "Thank you. Someone from {clinic} will be in touch. Questions: call {phone}.",
    "reschedule": "Thank you. Someone from {clinic} will call you to find a new time. Or call us on {phone}.",
    "checkin_thanks": "Thank you: your answer is with your care team. In a crisis call or text {crisis}.",
    "checkin_reask": "Sorry, we could not read a number. How is your mood, from 0 (worst) to 10 (best)?",
    "received": ("Thank you, we have passed your message to {team}. Questions: call {phone}. Not watched "
                 "around the clock: in a crisis call or text {crisis}, or {emergency} in an emergency."),
    "unknown": ("Thank you for your message to {clinic}. Questions: call {phone}. Not watched around the clock: "
                "in a crisis call or text {crisis}, or {emergency} in an emergency."),
}


def fallback_reply(name: str, settings) -> str:
    """The built-in answer, used when a template cannot be rendered."""
    return FALLBACKS.get(name, FALLBACKS["received"]).format(
        clinic=settings.clinic_name, phone=settings.clinic_phone, crisis=settings.crisis_line,
        emergency=settings.emergency_number, team=team_name(settings.clinic_name),
        team_es=team_name_es(settings.clinic_name))


# ---------------------------------------------------------------- lookups

def _patients_for(session: Session, number: str) -> list[Patient]:
    if not number:
        return []
    return list(session.scalars(select(Patient).where(Patient.phone == number).order_by(Patient.id)))


def _primary(session: Session, patients: list[Patient]) -> Patient | None:
    """The patient a shared number is talking for: the one we texted last there."""
    if len(patients) <= 1:
        return patients[0] if patients else None
    last = dict(session.execute(
        select(OutboxMessage.patient_id, func.max(OutboxMessage.sent_at))
        .where(OutboxMessage.patient_id.in_([p.id for p in patients]), OutboxMessage.channel == "sms",
               OutboxMessage.sent_at.is_not(None))
        .group_by(OutboxMessage.patient_id)
    ).all())
    return max(patients, key=lambda p: (last.get(p.id) is not None, last.get(p.id) or p.created_at, -p.id))


def open_checkin(session: Session, patient: Patient | None, now: datetime) -> CheckIn | None:
    """The check-in this patient's next text answers, if one was asked recently."""
    if patient is None:
        return None
    return session.scalars(
        select(CheckIn)
        .where(CheckIn.patient_id == patient.id, CheckIn.status.in_(OPEN_CHECKIN),
               CheckIn.prompted_at >= now - CHECKIN_ANSWER_WINDOW, CheckIn.prompted_at <= now)
        .order_by(CheckIn.prompted_at.desc(), CheckIn.id.desc())
        .limit(1)
    ).first()


def next_visit(session: Session, patient: Patient, now: datetime) -> Appointment | None:
    return session.scalars(
        select(Appointment)
        .where(Appointment.patient_id == patient.id, Appointment.starts_at > now,
               Appointment.status.in_(ACTIVE_STATUSES))
        .order_by(Appointment.starts_at, Appointment.id)
        .limit(1)
    ).first()


# ---------------------------------------------------------------- the sweep

def unanswered_reasks_to_staff(session: Session, now: datetime) -> int:
    """Re-asked check-ins left unanswered for REASK_ANSWER_WAIT go to staff with what was written.

    Run by every pass: without it, a first unreadable answer ("dizzy since yesterday") from a
    patient who never replies to the re-ask would be seen by nobody."""
    stale = session.scalars(
        select(CheckIn).where(CheckIn.status == REASKED, CheckIn.reasked_at <= now - REASK_ANSWER_WAIT)
    ).all()
    for checkin in stale:
        checkin.status = TO_STAFF
        message = session.get(InboundMessage, checkin.inbound_message_id) if checkin.inbound_message_id else None
        if message is not None:
            message.needs_staff = True
        else:
            log.warning("check-in %s went to staff without its text", checkin.id)
    return len(stale)
