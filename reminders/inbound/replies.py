"""What a patient's text does: opt-out, confirmation, check-in answer, staff inbox, escalation.

`handle_inbound` records the text, reads it (reminders.inbound.parsing, .symptoms), acts, and
returns the answer to send back in the same request. Every text ends in one of two places:

- handled by the service, with a classification that says how: ``stop``, ``start``, ``help``,
  ``confirm`` (a visit confirmed), ``ack`` (thanks, ok, a smile: recorded, no answer),
  ``checkin_answer`` (a score recorded), or ``checkin_unreadable`` (a text that tries to give a
  score and cannot be read, re-asked once; unanswered re-asks go to staff after
  REASK_ANSWER_WAIT, see `unanswered_reasks_to_staff`), ``questionnaire_answer`` and
  ``questionnaire_unreadable`` (a questionnaire by SMS: reminders.inbound.questionnaire_replies);
- or in the staff inbox (``needs_staff``): reschedule and cancel requests, free text, questions,
  side effects and blood pressures (ranked above routine items, PRIORITY_FLAGGED, with the
  reason), unprompted scores, a confirm with no visit to confirm, a second unreadable answer,
  a bare CANCEL (an opt-out that may have meant the visit), anything from an unknown number,
  and every crisis (``crisis``, ``low_score``), which also opens an escalation.

A check-in expects its number until CHECKIN_ANSWER_HOURS have passed or a newer text went to the
patient; a second text after the score (details) is added to it. A check-in and a questionnaire by
text are never open together (reminders.inbound.open_questions), and the answer to a score says
what the number was taken as ("Thank you, Maya: 7 for your mood today, glad to hear it!"). Crisis detection runs on every
text, keywords and unknown senders included. Answers are in the patient's language.

A clinic with several locations (reminders.locations): a text is for the location whose own number
it was sent to, else the patient's (location_of_text); it is answered in that location's name,
phone and office hours, and its escalation alerts that location's on-call.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, exists, func, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from reminders.channels.base import InboundText
from reminders.channels.kinds import spec_for
from reminders.inbound import escalations, questionnaire_replies
from reminders.inbound.answers import VisitFacts, direct_answer
from reminders.inbound.consent_words import wants_back_in
from reminders.inbound.item_answers import is_bare_number
from reminders.inbound.office_hours import OfficeHours, when_read
from reminders.inbound.parsing import CANCEL_WORDS, Reading, read_reply
from reminders.inbound.symptoms import Flags, read_flags, sounds_well
from reminders.triage import FOLLOW_UP, Context, Tier, Triage, assess, detect_language
from reminders.locations import LocationBook, patient_location
from reminders.logs import mask_phone
from reminders.models import Appointment, CheckIn, Escalation, InboundMessage, OutboxMessage, Patient, Questionnaire
from reminders.models.outbox import TEXT_CHANNELS, Kind
from reminders.models.appointments import ACTIVE_STATUSES
from reminders.models.measures import BY_SMS, SENT, STARTED
from reminders.models.base import UTCDateTime
from reminders.logs import also_sensitive, patient_values
from reminders.rendering import (TemplateStore, clinic_context, flag_failures, message_context, render,
                                 team_name, team_name_es, text_template)

log = logging.getLogger(__name__)

# Readings that are plain actions on a visit or on the texts themselves.
_ACTIONS = ("confirm", "soft_confirm", "reschedule", "stop", "start", "help", "ack")
# A re-asked check-in the patient has not answered in this long goes to staff with what they wrote.
REASK_ANSWER_WAIT = timedelta(hours=4)
OPT_OUT_TEXT_LIMIT = 160  # Patient.opt_out_text's length
FLAG_REASON_LIMIT = 300  # InboundMessage.flag_reason's length
# A reminder for the next visit sent this recently makes "see you then" or a thumbs-up a confirmation.
REMINDER_ANSWER_WINDOW = timedelta(days=8)

AWAITING, REASKED, ANSWERED, TO_STAFF = "awaiting", "reasked", "answered", "to_staff"
OPEN_CHECKIN = (AWAITING, REASKED)
# The staff inbox's order, highest first: crises, then red flags (side effects, a high blood
# pressure, a question), then everything else.
PRIORITY_ROUTINE, PRIORITY_FLAGGED, PRIORITY_CRISIS = 0, 1, 2
# Classifications the service handles by itself (everything else is also in the staff inbox).
HANDLED = frozenset({"stop", "start", "help", "confirm", "ack", "follow_up", "answered", "checkin_answer",
                     "checkin_unreadable",
                     "checkin_details", questionnaire_replies.ANSWERED, questionnaire_replies.UNREADABLE})
ERROR_CLASSIFICATION = "error"
# Mood at or above this is good news; pain at or below GOOD_PAIN is; pain at or above HIGH_PAIN is for a nurse.
GOOD_MOOD, GOOD_PAIN, HIGH_PAIN = 7, 3, 8


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

    A message id (the provider's) seen before is not acted on again: the first answer is returned.
    The text's row is inserted once what it does is known (or earlier, when a check-in or an
    escalation must point at it); the message id is unique, so a text seen before (a provider's
    retry, or the same text in a concurrent request) fails that insert, everything this request
    did is rolled back, and the first answer is returned. Nothing leaves the process before the
    caller commits (crisis alerts are sent after it), so a text is acted on once."""
    inbound = InboundMessage(
        message_sid=text.message_sid or None, from_number=text.from_number, to_number=text.to_number,
        channel=text.channel, body=stored_body(text), received_at=now, classification="received", needs_staff=True,
    )
    try:
        return _Conversation(session, settings, inbound, text, now).run()
    except IntegrityError:  # the same message id was stored first (earlier, or by a concurrent request)
        session.rollback()
        earlier = _by_sid(session, text.message_sid) if text.message_sid else None
        if earlier is None:
            raise
        return _replayed(earlier)


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
    book = LocationBook.load(session, settings)
    location_id = location_of_text(session, book, text.to_number, patient.id if patient else None, now)
    reply = fallback_reply("crisis" if crisis else "received", book.settings_for(location_id))
    inbound = InboundMessage(
        message_sid=text.message_sid or None, from_number=text.from_number, to_number=text.to_number,
        channel=text.channel, body=stored_body(text), received_at=now, patient_id=patient.id if patient else None,
        classification="crisis" if crisis else ERROR_CLASSIFICATION, needs_staff=True, reply_body=reply,
        priority=PRIORITY_CRISIS if crisis else PRIORITY_ROUTINE,
        flag_reason="possible crisis" if crisis else "the service could not act on this text",
    )
    session.add(inbound)
    session.flush()
    handled = Handled(inbound.id, inbound.classification, True, reply)
    if crisis:
        escalation, ids = escalations.open_escalation(
            session, settings, patient=patient, inbound=inbound, reason=escalations.REASON_CRISIS, now=now,
            location_id=location_id)
        handled.alert_ids, handled.escalation_id = ids, escalation.id
    return handled


def location_of_text(session: Session, book: LocationBook, to_number: str | None, patient_id: int | None,
                     now: datetime) -> int | None:
    """The location a text is for: the one whose own sending number it was sent to, else the
    patient's, else the default (None). A number shared by several locations (the clinic's own
    number is that of every location without one) says nothing by itself."""
    if not book.several:
        return None
    by_number = book.by_sender(to_number)
    return by_number if by_number is not None else patient_location(session, patient_id, now)


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
    log.info("inbound %s: message id seen before; answering as the first time", earlier.id)
    return Handled(earlier.id, earlier.classification, earlier.needs_staff, earlier.reply_body, replayed=True)


def _crisis_terms(body: str) -> tuple[str, ...]:
    """What a text that could not be acted on may be, for the fallback answer (assess never raises)."""
    triage = assess(body, Context(use_model=False))
    return triage.reasons if triage.alerts else ()


# ---------------------------------------------------------------- acting on one text

class _Conversation:
    """One inbound text from start to answer: who sent it, what it says, what it does."""

    crisis_priority = PRIORITY_CRISIS
    # Our first text to a patient carries the welcome; an answer on the check-in page
    # (reminders.inbound.checkin_links) is no text, and its patient may have no phone.
    welcomes_first = True

    def __init__(self, session: Session, settings, inbound: InboundMessage, text: InboundText, now: datetime,
                 facts: list[SenderFacts] | None = None):
        self.session, self.settings, self.inbound, self.text, self.now = session, settings, inbound, text, now
        # The sender's records, and for the one the number talks for its check-in, open
        # escalation, next visit and latest text from us: one query. `facts`: already known (the
        # check-in page knows its patient and check-in).
        self.facts = facts if facts is not None else sender_facts(session, text.from_number, now, settings)
        self.patients = [facts.patient for facts in self.facts]
        self.patient = _primary(session, self.patients, {f.patient.id: f.last_texted_at for f in self.facts})
        self.known = next((f for f in self.facts if f.patient is self.patient), None)
        for patient in self.patients:
            also_sensitive(*patient_values(patient))
        # Answered in the words and hours of the location the text is for; its escalation is
        # planned over the clinic's settings (`clinic_settings`), which know every location.
        self.clinic_settings = settings
        book = LocationBook.load(session, settings)
        self.location_id = location_of_text(session, book, text.to_number,
                                            self.patient.id if self.patient else None, now)
        self.settings = settings = book.settings_for(self.location_id)
        session.add(inbound)  # inserted at the first flush: see handle_inbound
        self.checkin = current_checkin(session, self.patient, now, settings, self.known) if self.patient else None
        # A questionnaire by SMS whose question is the latest we asked takes the answer (see
        # reminders.inbound.questionnaire_replies); a check-in asked later takes it instead.
        open_checkin = self.checkin is not None and self.checkin.status in OPEN_CHECKIN
        asked_at = self.checkin.prompted_at if open_checkin else None
        self.questionnaire = questionnaire_replies.current(self.known, asked_at, now) if self.patient else None
        # Its question still the latest we asked, but expired: a number is a late answer to it.
        self.closed_questionnaire = questionnaire_replies.closed(self.known, asked_at, now) if self.patient else None
        self.late_answer = None  # the text as a late answer to it, when it is one (run)
        self.late_self_harm = False  # that answer is above 0 to a self-harm item: a crisis
        self.expecting = open_checkin and self.questionnaire is None and self.closed_questionnaire is None
        self.store = TemplateStore(settings.templates_dir, session)
        self.appointment: Appointment | None = None
        self.alert_ids: list[int] = []
        self.escalation_id: int | None = None
        self.crisis = False
        self.priority, self.reasons = PRIORITY_ROUTINE, []
        self.answer: dict = {}
        self.text_language = detect_language(text.body)
        language = self.patient.language if self.patient is not None else None
        self.language = language or self.text_language
        self.triage: Triage | None = None
        self.read_as_answer = False  # read as the answer to the score or item asked (_assess)
        self.open_tier: str | None = None  # the tier of the escalation open before this text (_assess)

    def run(self) -> Handled:
        reading = self._read()
        if self.closed_questionnaire is not None:
            found = questionnaire_replies.read_answer(self.closed_questionnaire, self.text.body, reading)
            self.late_answer = found if found.value is not None else None
            self.late_self_harm = questionnaire_replies.is_self_harm(self.closed_questionnaire, found.value)
            if self.late_self_harm:
                self.reasons.append("a late answer to a self-harm question: "
                                    + questionnaire_replies.late_words(self.closed_questionnaire, found.value))
        answering = self.questionnaire is not None or self.late_answer is not None
        self.flags = read_flags(self.text.body)
        was_opted_out = bool(self.patient and self.patient.sms_opted_out)
        self.triage = triage = self._assess(reading, answering)
        keyword = reading.kind in ("stop", "start", "help")
        # While an escalation is open, whatever else the sender writes belongs with it ("I have the
        # pills here" has no crisis words of its own); a keyword, or an answer to the questionnaire
        # that opened it, counts only by its own words.
        joins = triage.follow_up and not keyword and not questionnaire_replies.answers_its_own_escalation(
            self, reading)
        own_alert = triage.alerts and triage.category != FOLLOW_UP
        self.crisis = (triage.alerts if joins else own_alert) or self.late_self_harm
        inbound = self.inbound
        inbound.patient_id = self.patient.id if self.patient else None
        if self.patient is None:
            classification, needs_staff, reply = self._from_unknown(reading)
        else:
            classification, needs_staff, reply = self._from_patient(reading)
        if self.crisis:
            classification, reply = self._escalate(reading, classification, reply)
            needs_staff = True
        elif joins and triage.acknowledgement_only:
            # "thanks", "who is this?": kept with the escalation, no page, no script again.
            self._stored()
            escalation, _ = escalations.open_escalation(
                self.session, self.clinic_settings, patient=self.patient, inbound=inbound,
                reason=escalations.REASON_CRISIS, now=self.now, realert=False, location_id=self.location_id)
            self.escalation_id = escalation.id
            classification, needs_staff = "follow_up", self.patient is None  # a stranger's text: staff read all
            if self.flags.question:
                # "who is this?": answered, and still a question a person closes (no page).
                classification, needs_staff = "question", True
                self._question_while_escalated()
            reply = None if was_opted_out else self._reply("follow_up_ack")
        elif was_opted_out and reading.kind not in ("stop", "start", "help"):
            # No texts to a number that opted out, except what carriers require; "wait, I still want
            # the reminders" is told how to come back.
            reply = self._reply("wants_back_in") if wants_back_in(self.text.body) else None
        elif (reply and self.patient and self.patient.welcomed_at is None and reading.kind not in ("stop", "help")
              and self.welcomes_first):
            # Our first text to this patient: it says who we are, HELP/STOP and the crisis line.
            welcome = self._render(self._template("welcome", self.language),
                                   message_context(self.settings, self.patient, None, 0))
            if welcome:
                reply = welcome + "\n\n" + reply
                self.patient.welcomed_at = self.now
        if self.text.notes:
            needs_staff = True  # a request with malformed fields is shown to a person, whatever it said
        inbound.classification, inbound.needs_staff = classification, needs_staff
        inbound.priority = self.priority if needs_staff else PRIORITY_ROUTINE
        inbound.flag_reason = "; ".join(dict.fromkeys(self.reasons))[:FLAG_REASON_LIMIT] if needs_staff else ""
        inbound.appointment_id = self.appointment.id if self.appointment else inbound.appointment_id
        inbound.reply_body = reply
        self.session.flush()
        log.info("inbound %s from %s: %s%s", inbound.id, mask_phone(self.text.from_number), classification,
                 " (staff inbox)" if needs_staff else "")
        return Handled(inbound.id, classification, needs_staff, reply, self.alert_ids, self.escalation_id)

    def _assess(self, reading: Reading, answering: bool) -> Triage:
        """The one triage decision for this text, in its context: an open escalation, an unknown
        number, the mood score asked (a pain score or a questionnaire's answer is never a mood)."""
        asked = "questionnaire" if answering else "mood" if self._scores_mood() else "pain"
        score = reading.score if reading.kind == "score" and asked == "mood" else None
        asking = self.questionnaire or self.closed_questionnaire
        # A score, an item's answer, or a plain action ("C", "can't make it thursday", STOP): the
        # rules read it, the model does not (it takes "won't be able to make it" for a goodbye).
        answered = reading.kind in ("score", *_ACTIONS) or (asking is not None and (
            is_bare_number(self.text.body)
            or questionnaire_replies.read_answer(asking, self.text.body, reading).value is not None))
        self.read_as_answer = answered
        self.open_tier = self._open_escalation_tier()
        return assess(self.text.body, Context(
            escalation=self.open_tier, unknown_sender=self.patient is None, asked=asked, score=score,
            crisis_score_max=self.settings.crisis_score_max, answered=answered,
            bp_alert=(self.settings.bp_alert_systolic, self.settings.bp_alert_diastolic)))

    def _open_escalation_tier(self) -> str | None:
        """The tier of the escalation open for this sender, if any."""
        if self.known is not None:
            escalation_id = self.known.escalation_id
            escalation = self.session.get(Escalation, escalation_id) if escalation_id is not None else None
        elif self.text.from_number:
            escalation = escalations.open_for(self.session, None, self.text.from_number)
        else:
            escalation = None  # no sender: nothing to belong to
        return escalations.tier_of(escalation.reason) if escalation is not None else None

    def _escalate(self, reading: Reading, classification: str, reply: str | None) -> tuple[str, str | None]:
        """Open the escalation (or add to the open one), page on-call, and answer by the tier."""
        triage = self.triage
        if self.text_language == "es":
            self.language = "es"  # a Spanish text is answered in Spanish (988 has a Spanish option)
        reason = escalations.reason_for(triage.tier, triage.category) if triage.alerts else escalations.REASON_CRISIS
        self._stored()  # the escalation points at the text
        escalation, self.alert_ids = escalations.open_escalation(
            self.session, self.clinic_settings, patient=self.patient, inbound=self.inbound, reason=reason,
            now=self.now, realert=triage.adds or not triage.follow_up or self.late_self_harm, at_once=triage.follow_up,
            location_id=self.location_id)
        self.escalation_id = escalation.id
        self.priority = PRIORITY_CRISIS
        self.reasons.insert(0, escalations.staff_words(triage))
        if triage.follow_up and self.flags.question:
            # Its own inbox item: neither claiming nor resolving the escalation closes it.
            classification = "question"
            self._question_while_escalated()
        elif reason == escalations.REASON_LOW_SCORE:
            classification = "low_score"
        elif reason == escalations.REASON_URGENT:
            classification = "urgent"
        else:
            classification = "crisis"
        answer = self._alert_reply(triage, Tier(self.open_tier or triage.tier))
        # The action's own answer still matters after an opt-out or a visit change.
        acted = reply and reading.kind in ("stop", "start", "confirm", "reschedule")
        return classification, (f"{answer}\n\n{reply}" if acted else self._with_score_noted(answer))

    def _question_while_escalated(self) -> None:
        """A question asked while an escalation is open: ranked with the crises and said to be one."""
        self.priority = max(self.priority, PRIORITY_CRISIS)
        self.reasons.append("a question asked while an escalation is open: answer it too")

    def _alert_reply(self, triage: Triage, open_tier: Tier) -> str:
        """911 first for an emergency, 988 first for suicide risk, the on-call promise for urgent; a
        follow-up that adds something is acknowledged in the escalation's own terms."""
        if self.late_self_harm and not triage.alerts:
            return self._crisis_reply("crisis")
        tier = max(triage.tier, open_tier, key=lambda t: t.rank) if triage.follow_up else triage.tier
        if triage.follow_up and triage.tier.rank <= open_tier.rank:
            return self._reply({Tier.EMERGENCY: "follow_up_emergency", Tier.SUICIDE_RISK: "follow_up_crisis"}.get(
                tier, "follow_up_urgent"))
        if tier is Tier.EMERGENCY:
            return self._crisis_reply("emergency")
        if tier is Tier.SUICIDE_RISK:
            return self._crisis_reply("crisis")
        return self._reply("possible_risk" if triage.by_model else "urgent")

    def _stored(self) -> int:
        """The text's row id, inserting the row now if it is not yet (a check-in or an escalation
        is about to point at it). A text seen before fails here: see handle_inbound."""
        if self.inbound.id is None:
            self.session.flush()
        return self.inbound.id

    def _read(self) -> Reading:
        try:
            asked = self.expecting or self.questionnaire is not None or self.closed_questionnaire is not None
            return read_reply(self.text.body, expecting_score=asked)
        except Exception:  # noqa: BLE001 - an unreadable text goes to staff, never nowhere
            log.exception("inbound from %s: the reply reader failed; sending the text to staff",
                          mask_phone(self.text.from_number))
            return Reading("free_text", note=self.text.body.strip(), crisis_terms=_crisis_terms(self.text.body))

    def _scores_mood(self) -> bool:
        """A mood score, as far as the crisis check goes (not a pain score, not a questionnaire's answer)."""
        if self.questionnaire is not None or self.late_answer is not None:
            return False
        return not (self.expecting and self.checkin.kind == "pain")

    # -- unknown senders: staff see everything; the answer reveals nothing about patients

    def _from_unknown(self, reading: Reading) -> tuple[str, bool, str | None]:
        if reading.kind == "stop":
            reply = self._reply("stop")
        elif reading.kind == "help":
            reply = self._reply("help")
        else:
            reply = self._reply("unknown")
        self._flag()
        return reading.kind, True, reply

    # -- patients

    def _from_patient(self, reading: Reading) -> tuple[str, bool, str | None]:
        kind = reading.kind
        if kind == "stop":
            return self._opt_out(reading)
        if kind == "start":
            return self._opt_in()
        if kind == "help":
            return "help", False, self._reply("help")
        if kind == "confirm":
            return self._confirm()
        if kind == "reschedule":
            return self._reschedule()
        answered = self._direct_answer(kind)
        if answered:
            return "answered", False, answered
        if questionnaire_replies.takes(self):
            return questionnaire_replies.take(self, reading)
        if self.late_answer is not None and not self.crisis:
            return questionnaire_replies.take_late(self, self.late_answer)
        if kind == "soft_confirm":
            if not self.expecting and self._reminded_visit() is not None:
                return self._confirm()
            kind = "ack"
        if kind == "ack":
            return "ack", False, None  # "thanks", "ok", a smile: recorded, nothing to answer
        if kind == "score" and self.expecting:
            return self._checkin_answer(reading)
        if kind == "unclear_score" and self.expecting and not self._flag(dry_run=True, questions=False):
            return self._checkin_unreadable()
        if self.expecting and self.checkin.status == REASKED:
            return self._checkin_unreadable()  # no score after the re-ask either: a person reads both
        if self.checkin is not None:
            return self._checkin_text(kind)
        if self._flag():
            return kind, True, self._reply("flagged")
        return kind, True, self._reply("received")

    def _direct_answer(self, kind: str) -> str | None:
        """A question the service can answer from what it holds ("what time do I stop eating?"), at any
        hour; None for anything a nurse must answer (medicines, symptoms) or that is not such a question."""
        if self.crisis or kind != "free_text" or self.read_as_answer or self.checkin is not None \
                or not self.flags.question:
            return None  # a check-in's or a questionnaire's answer, or a question about one, stays with it
        visit = self._next_visit()
        facts = VisitFacts.from_appointment(visit, self.patient) if visit is not None else None
        try:
            return direct_answer(self.text.body, language=self.language, visit=facts, settings=self.settings,
                                 now=self.now)
        except Exception:  # noqa: BLE001 - a staff member answers instead
            log.exception("direct answer failed; the question goes to staff")
            return None

    def _opt_out(self, reading: Reading) -> tuple[str, bool, str | None]:
        for patient in self.patients:  # the number opted out, whoever's record it is on
            if not patient.sms_opted_out:
                patient.sms_opted_out = True
                patient.opted_out_at = self.now
                patient.opt_out_text = self.text.body.strip()[:OPT_OUT_TEXT_LIMIT]
        if reading.keyword.upper() in CANCEL_WORDS:
            # CANCEL is an opt-out by carrier rule, but a patient may have meant the visit.
            visit = self._next_visit()
            self.appointment = visit
            self.reasons.append(f"texted {reading.keyword.upper()}: may have meant the visit (now opted out of texts)")
            return "stop", True, self._reply("stop_cancel")
        return "stop", False, self._reply("stop")

    def _opt_in(self) -> tuple[str, bool, str | None]:
        was_out = [patient for patient in self.patients if patient.sms_opted_out]
        for patient in was_out:
            patient.sms_opted_out = False
            patient.opted_in_at = self.now
        if was_out:
            return "start", False, self._reply("start")
        # YES is an opt-in word by carrier rule, but a subscribed patient saying "yes" just after a
        # reminder means the visit; otherwise tell them how to confirm it.
        if not self.expecting and self._reminded_visit() is not None:
            return self._confirm()
        return "start", False, self._reply("already_subscribed")

    def _confirm(self) -> tuple[str, bool, str | None]:
        visit = self._next_visit()
        if visit is None:
            return "confirm", True, self._reply("no_visit")
        self.appointment = visit
        if visit.status == "scheduled":
            visit.status, visit.confirmed_at = "confirmed", self.now
        return "confirm", False, self._reply("confirmed")

    def _reschedule(self) -> tuple[str, bool, str | None]:
        visit = self._next_visit()
        if visit is not None:
            self.appointment = visit
            visit.reschedule_requested_at = self.now
        self._flag()  # "can't come, throwing up all night" is also for a nurse
        return "reschedule", True, self._reply("reschedule")

    def _reminded_visit(self) -> Appointment | None:
        """The next visit, when the last text we sent this patient was a reminder for it, recently
        (so "👍" or "see you then" answers it, and not a check-in or our answer to one)."""
        visit = self._next_visit()
        if visit is None or self.checkin is not None:
            return None
        latest = self.known.latest_text
        if latest is None or latest.kind != Kind.REMINDER or latest.appointment_id != visit.id:
            return None
        return visit if latest.sent_at >= self.now - REMINDER_ANSWER_WINDOW else None

    def _next_visit(self) -> Appointment | None:
        return self.known.next_visit if self.known is not None else None

    # -- check-ins

    def _period_asked(self, checkin: CheckIn) -> str:
        """"week" when the question was about the week (a weekly check-in, a caring contact), else "day"."""
        prompt = self.session.get(OutboxMessage, checkin.prompt_outbox_id) if checkin.prompt_outbox_id else None
        weekly = prompt is not None and prompt.rule.startswith(("checkin_weekly", "caring_contact"))
        return "week" if weekly else "day"

    def _checkin_answer(self, reading: Reading) -> tuple[str, bool, str | None]:
        checkin = self.checkin
        checkin.score = reading.score
        earlier = checkin.raw_text if checkin.status == REASKED else checkin.note
        checkin.note = _joined(earlier, reading.note.strip())
        checkin.raw_text = f"{checkin.raw_text}\n{self.text.body}" if checkin.raw_text else self.text.body
        checkin.inbound_message_id = self._stored()
        checkin.status, checkin.answered_at = ANSWERED, self.now
        self.appointment = checkin.appointment
        self.answer = {"score": reading.score, "kind": checkin.kind, "period": self._period_asked(checkin)}
        flagged = self._flag(questions=True)
        if checkin.kind == "pain" and reading.score >= HIGH_PAIN:
            self.reasons.append(f"pain {reading.score}/10")
            self.priority, flagged = PRIORITY_FLAGGED, True
        self._add_details(checkin)
        if flagged:  # the number is still confirmed: "We noted 7 for your mood today."
            return "checkin_answer", True, self._with_score_noted(self._reply("flagged"))
        return "checkin_answer", False, self._reply(self._band(checkin.kind, reading.score))

    def _with_score_noted(self, reply: str) -> str:
        """The answer, then a line saying what the number was taken as (a check-in's score); after
        it, so that a crisis answer still opens with the crisis line."""
        if self.answer.get("score") is None:
            return reply
        noted = self._render(self._template("reply_checkin_noted", self.language), self._context())
        return f"{reply} {noted}" if noted else reply

    def _band(self, kind: str, score: int) -> str:
        if kind == "pain":
            return "checkin_thanks" if score <= GOOD_PAIN else "checkin_middling"
        if score >= GOOD_MOOD:
            return "checkin_thanks"
        return "checkin_middling" if score > self.settings.crisis_score_max + 1 else "checkin_low"

    def _checkin_unreadable(self) -> tuple[str, bool, str | None]:
        checkin = self.checkin
        self.appointment = checkin.appointment
        if checkin.status == AWAITING and not self.crisis:
            checkin.status, checkin.reasked_at = REASKED, self.now
            checkin.raw_text = f"{checkin.raw_text}\n{self.text.body}" if checkin.raw_text else self.text.body
            checkin.inbound_message_id = self._stored()
            return "checkin_unreadable", False, self._reply("checkin_reask" if checkin.kind != "pain"
                                                           else "checkin_reask_pain")
        earlier = self.session.get(InboundMessage, checkin.inbound_message_id) if checkin.inbound_message_id else None
        if earlier is not None:
            earlier.needs_staff = True
        checkin.status = TO_STAFF
        checkin.raw_text = f"{checkin.raw_text}\n{self.text.body}" if checkin.raw_text else self.text.body
        checkin.inbound_message_id = self._stored()
        self.reasons.append("check-in answer we could not read")
        if self._flag(questions=True):
            return "checkin_unreadable", True, self._reply("flagged")
        return "checkin_unreadable", True, self._reply("received")

    def _checkin_text(self, kind: str) -> tuple[str, bool, str | None]:
        """Words, not a score, while a check-in is open or just answered: staff read them now.

        Side effects are added to the check-in (its details); an open check-in still takes a score."""
        checkin = self.checkin
        self.appointment = checkin.appointment
        flagged = self._flag(questions=True)
        answered = checkin.status == ANSWERED
        if flagged or answered or self.crisis:  # what a nurse must see is kept with the check-in too
            checkin.raw_text = f"{checkin.raw_text}\n{self.text.body}" if checkin.raw_text else self.text.body
            checkin.note = _joined(checkin.note, self.text.body.strip())
            self._add_details(checkin)
        if flagged:
            return ("checkin_details" if answered else kind), True, self._reply("flagged")
        if answered:
            return "checkin_details", True, self._reply("checkin_details")
        if sounds_well(self.text.body):  # "Feeling great!": staff see it; the patient hears we're glad
            return kind, True, self._reply("checkin_thanks")
        return kind, True, self._reply("received")

    def _add_details(self, checkin: CheckIn) -> None:
        found = [r for r in self.reasons if r != "a question"]
        if found:
            checkin.details = _joined(checkin.details, "; ".join(found))

    def _flag(self, dry_run: bool = False, questions: bool = False) -> bool:
        """Side effects, a high blood pressure or (in a check-in answer) a question: a nurse reads it
        today, and the reason is kept for staff."""
        reasons = [r for r in flag_reasons(self.flags, self.settings) if questions or r != "a question"]
        if reasons and not dry_run:
            self.reasons.extend(reasons)
            self.priority = max(self.priority, PRIORITY_FLAGGED)
        return bool(reasons)

    # -- answers

    def _context(self) -> dict:
        if self.patient is None:
            context = {"patient": {"first_name": "", "last_name": ""}, "clinic": clinic_context(self.settings),
                       "visit": None}
        else:
            series = self.settings.induction_series_length
            with self.session.no_autoflush:  # loading the course need not insert the text's row early
                course = self.appointment.course if self.appointment is not None else None
            if course is not None:
                series = course.induction_sessions_planned
            context = message_context(self.settings, self.patient, self.appointment, series)
        hours = OfficeHours.from_settings(self.settings)
        context["answer"] = {"read_when": when_read(hours, self.now, self.language),
                             "in_office_hours": hours.is_open(self.now),
                             "score": self.answer.get("score"),
                             "asks": "hurt" if self.answer.get("kind") == "pain" else "mood",
                             "period": self.answer.get("period", "day"),
                             # side effects or a blood pressure (not only a question): "if you feel worse"
                             "symptoms": any(r != "a question" for r in self.reasons),
                             "poison_control": bool(self.triage and self.triage.poison_control),
                             "callback_minutes": self.settings.oncall_callback_minutes}
        return context

    def _reply(self, name: str) -> str:
        template = self._template(f"reply_{name}", self.language)
        context = self._context()
        return self._render(template, context) or fallback_reply(name, self.settings, context, self.language)

    def _crisis_reply(self, base: str) -> str:
        """"emergency" (911 first) or "crisis" (988 first), in the patient's language; whatever staff
        made of the template, the answer carries both numbers."""
        template = self._template(f"reply_{base}", self.language)
        context = self._context()
        text = self._render(template, context)
        if not text or self.settings.crisis_line not in text or self.settings.emergency_number not in text:
            text = fallback_reply(base, self.settings, context, language=self.language)
            if base == "emergency" and context["answer"]["poison_control"]:
                text += (" Poison Control: 1-800-222-1222." if self.language != "es"
                         else " Control de Envenenamientos: 1-800-222-1222.")
        return text

    def _template(self, name: str, language: str) -> str:
        """The answer's template on the channel the patient wrote on (its own wording, else SMS's)."""
        return text_template(self.store, name, spec_for(self.text.channel), language)

    def _render(self, name: str, context: dict) -> str | None:
        try:
            text = render(self.store, name, context) or None
            flag_failures(self.session, self.store, self.now)
            return text
        except Exception:  # noqa: BLE001 - a broken template must not cost the patient an answer
            log.exception("reply template %s failed; the built-in text is used", name)
            return None


def _joined(*parts: str) -> str:
    return "; ".join(part for part in (p.strip() for p in parts) if part)


def flag_reasons(flags: Flags, settings) -> list[str]:
    """Why a text goes to the top of the staff inbox, in words staff read at a glance."""
    reasons = []
    high = flags.high_pressures(settings.bp_alert_systolic, settings.bp_alert_diastolic)
    effects = list(flags.side_effects)
    if flags.pressures and not high and "blood pressure" in effects:
        effects.remove("blood pressure")  # a normal reading, given as asked
    if high and "blood pressure" in effects:
        effects.remove("blood pressure")
    if effects:
        reasons.append("side effects: " + ", ".join(effects))
    if high:
        reasons.append("blood pressure " + ", ".join(f"{s}/{d}" for s, d in high))
    if flags.question:
        reasons.append("a question")
    return reasons


FALLBACKS = {
    "en": {
        "crisis": ("We're so sorry you're going through this. Please call or text {crisis} now to talk with someone, "
                   "day or night. If you are in immediate danger, call {emergency}. We have alerted {team}, "
                   "but this number is not watched around the clock."),
        "emergency": ("This may be a medical emergency: please call {emergency} now. If you are having thoughts of "
                      "harming yourself, call or text {crisis}, day or night. We have alerted {team}, but this "
                      "number is not watched around the clock."),
        "stop": ("{clinic}: you're unsubscribed and will get no more texts from us. Reply START to resubscribe. In a "
                 "crisis call or text {crisis}."),
        "urgent": ("Thank you for telling us. We have paged the on-call nurse, who will call you within about "
                   "{callback} minutes. If it gets worse, call {emergency}. In a crisis, call or text {crisis}."),
        "possible_risk": ("Thank you for your message. We want to be sure you're OK, so we've asked the on-call nurse "
                          "to read it now. If you are having thoughts of harming yourself, call or text {crisis} any "
                          "time, or {emergency} in an emergency."),
        "follow_up_emergency": ("Thank you for telling us. The on-call nurse has your message and we have alerted them "
                                "again. If this is getting worse, call {emergency} now."),
        "follow_up_crisis": ("Thank you for telling us. The on-call nurse has your message and we have alerted them "
                             "again. Please call or text {crisis} now, day or night, or {emergency} if you are in "
                             "danger."),
        "follow_up_urgent": ("Thank you for telling us. The on-call nurse has your message and we have alerted them "
                             "again. If it gets worse, call {emergency}."),
        "follow_up_ack": "Thank you. This is {clinic}'s text line: the on-call nurse has your message and will reach out.",
        "wants_back_in": ("{clinic}: you're unsubscribed right now, so we can't send reminders. To get them again, "
                          "reply START."),
        "stop_cancel": ("{clinic}: you're unsubscribed and will get no more texts from us. If you meant to cancel a "
                        "visit, please call us on {phone}, or reply START and then R."),
        "start": "{clinic}: you're subscribed again. Reply HELP for help, STOP to opt out.",
        "already_subscribed": ("{clinic}: you're subscribed to visit reminders. To confirm your visit reply C, to "
                               "reschedule reply R. Reply HELP for help, STOP to opt out."),
        "help": ("{clinic}: visit reminders and check-ins. Questions: call {phone}. Reply STOP to opt out. Not "
                 "watched around the clock: in a crisis call or text {crisis}, or {emergency} in an emergency."),
        "confirmed": "Thank you, your visit is confirmed. See you then! Reply R if you need to reschedule.",
        "no_visit": "Thank you. We couldn't find an upcoming visit for you, so someone from {clinic} will be in touch.",
        "reschedule": "Thank you. Someone from {clinic} will call you to find a new time. Or call us on {phone}.",
        "checkin_thanks": "Thank you, glad to hear it!",
        "checkin_middling": ("Thank you for letting us know. If anything changes or you have a question, text us or "
                             "call {phone}. In a crisis, call or text {crisis}."),
        "checkin_low": ("Thank you for telling us. We're sorry today is hard. If you'd like to talk, call us on "
                        "{phone}. In a crisis, call or text {crisis} any time."),
        "checkin_details": "Thank you, we've added that to your check-in.",
        "checkin_reask": "Sorry, we couldn't read a number there. From 0 (worst) to 10 (best), how is your mood today?",
        "checkin_reask_pain": ("Sorry, we couldn't read a number there. From 0 (no pain) to 10 (worst), how is your "
                               "pain today?"),
        "flagged": ("Thank you for telling us. A nurse will read this {read_when}. If you feel much worse, call "
                    "{emergency}. In a crisis, call or text {crisis}."),
        "received": ("Thank you, we've passed your message to {team}. Questions: call {phone}. Not watched around "
                     "the clock: in a crisis call or text {crisis}, or {emergency} in an emergency."),
        "unknown": ("Thank you for your message to {clinic}. Questions: call {phone}. Not watched around the clock: "
                    "in a crisis call or text {crisis}, or {emergency} in an emergency."),
    },
    "es": {
        # The crisis answers keep the wording of the shipped templates es/reply_crisis|emergency.
        "crisis": ("Lamentamos mucho que esté pasando por esto. Llame o mande un texto al {crisis} ahora, a cualquier "
                   "hora (marque 2 para español, o envíe AYUDA por texto). Si está en peligro inmediato, llame al "
                   "{emergency}. Ya avisamos al equipo de {clinic}, pero este número no se revisa las 24 horas."),
        "emergency": ("Esto puede ser una emergencia médica: llame al {emergency} ahora. Si piensa en hacerse daño, "
                      "llame o mande un texto al {crisis} (marque 2 para español), a cualquier hora. Ya avisamos al "
                      "equipo de {clinic}, pero este número no se revisa las 24 horas."),
        "stop": ("{clinic}: ya no le enviaremos mensajes. Para volver a recibirlos, responda START. En una crisis llame o "
                 "escriba al {crisis}."),
        "urgent": ("Gracias por contarnos. Avisamos a la enfermera de guardia, que le va a llamar en unos {callback} "
                   "minutos. Si empeora, llame al {emergency}. En una crisis, llame o escriba al {crisis}."),
        "possible_risk": ("Gracias por su mensaje. Queremos saber que está bien, así que le pedimos a la enfermera de "
                          "guardia que lo lea ahora. Si piensa en hacerse daño, llame o escriba al {crisis} a cualquier "
                          "hora, o al {emergency} en una emergencia."),
        "follow_up_emergency": ("Gracias por contarnos. La enfermera de guardia tiene su mensaje y le avisamos otra "
                                "vez. Si esto empeora, llame al {emergency} ahora."),
        "follow_up_crisis": ("Gracias por contarnos. La enfermera de guardia tiene su mensaje y le avisamos otra vez. "
                             "Por favor llame o escriba al {crisis} ahora, o al {emergency} si está en peligro."),
        "follow_up_urgent": ("Gracias por contarnos. La enfermera de guardia tiene su mensaje y le avisamos otra vez. "
                             "Si empeora, llame al {emergency}."),
        "follow_up_ack": ("Gracias. Este es el número de mensajes de {clinic}: la enfermera de guardia tiene su mensaje "
                          "y se va a comunicar con usted."),
        "wants_back_in": ("{clinic}: ahora no recibe mensajes nuestros. Para volver a recibir los recordatorios, "
                          "responda START."),
        "stop_cancel": ("{clinic}: ya no le enviaremos mensajes. Si lo que quiere es cancelar una cita, llame al "
                        "{phone} o responda START y luego R."),
        "start": ("{clinic}: le volveremos a enviar recordatorios de sus citas. Responda AYUDA para ayuda o PARAR para "
                  "no recibirlos."),
        "already_subscribed": ("{clinic}: ya recibe nuestros recordatorios. Para confirmar su cita responda C; para "
                               "cambiarla, R."),
        "help": ("{clinic}: recordatorios de citas. Preguntas: llame al {phone}. Responda PARAR para no recibir "
                 "mensajes. En una crisis llame o escriba al {crisis}; en una emergencia, al {emergency}."),
        "confirmed": "¡Gracias! Su cita queda confirmada. Lo esperamos. Si necesita cambiarla, responda R.",
        "no_visit": "Gracias. No encontramos su próxima cita, así que alguien de {clinic} le llamará.",
        "reschedule": "Gracias. Alguien de {clinic} le va a llamar para buscar otra hora. O llame al {phone}.",
        "checkin_thanks": "¡Gracias, nos alegra mucho!",
        "checkin_middling": ("Gracias por contarnos. Si algo cambia o tiene preguntas, llame al {phone} o mande un "
                             "mensaje. En una crisis llame o escriba al {crisis}."),
        "checkin_low": ("Gracias por contarnos. Sentimos que hoy sea un mal momento. Si quiere hablar, llame al "
                        "{phone}. A cualquier hora del día o de la noche puede llamar o mandar un texto al {crisis}."),
        "checkin_details": "Gracias, lo añadimos a su respuesta.",
        "checkin_reask": ("Perdone, no logramos leer la respuesta. Del 0 (muy mal) al 10 (muy bien), ¿qué tal se "
                          "siente hoy?"),
        "checkin_reask_pain": ("Perdone, no logramos leer la respuesta. Del 0 (nada) al 10 (el peor), ¿qué tanto le "
                               "duele hoy?"),
        "flagged": ("Gracias por contarnos. Una enfermera va a leer esto {read_when}. Si se siente mucho peor, llame "
                    "al {emergency}. En una crisis llame o escriba al {crisis}."),
        "received": ("Gracias. Pasamos su mensaje a nuestro equipo. Nadie lee estos mensajes las 24 horas: en una "
                     "crisis llame o escriba al {crisis}; en una emergencia, al {emergency}."),
        "unknown": ("Gracias por su mensaje a {clinic}. Preguntas: llame al {phone}. En una crisis llame o escriba al "
                    "{crisis}; en una emergencia, al {emergency}."),
    },
}


def fallback_reply(name: str, settings, context: dict | None = None, language: str = "en") -> str:
    """The built-in answer, used when a template cannot be rendered."""
    texts = FALLBACKS.get(language, FALLBACKS["en"])
    answer = (context or {}).get("answer") or {}
    return texts.get(name, texts["received"]).format(
        clinic=settings.clinic_name, phone=settings.clinic_phone, crisis=settings.crisis_line,
        emergency=settings.emergency_number, team=team_name(settings.clinic_name),
        callback=settings.oncall_callback_minutes,
        team_es=team_name_es(settings.clinic_name), read_when=answer.get("read_when", "as soon as the office opens"
                                                                          if language == "en" else "en cuanto abra"))


# ---------------------------------------------------------------- lookups

def _patients_for(session: Session, number: str) -> list[Patient]:
    if not number:
        return []
    return list(session.scalars(select(Patient).where(Patient.phone == number).order_by(Patient.id)))


def _primary(session: Session, patients: list[Patient], last: dict[int, datetime | None] | None = None
             ) -> Patient | None:
    """The patient a shared number is talking for: the one we texted last there. `last`: when
    each was texted last, when already read (sender_facts)."""
    if len(patients) <= 1:
        return patients[0] if patients else None
    if last is None:
        last = dict(session.execute(
            select(OutboxMessage.patient_id, func.max(OutboxMessage.sent_at))
            .where(OutboxMessage.patient_id.in_([p.id for p in patients]),
                   OutboxMessage.channel.in_(TEXT_CHANNELS), OutboxMessage.sent_at.is_not(None))
            .group_by(OutboxMessage.patient_id)
        ).all())
    return max(patients, key=lambda p: (last.get(p.id) is not None, last.get(p.id) or p.created_at, -p.id))


@dataclass
class SenderFacts:
    """What an inbound text needs to know about one patient on the sender's number."""
    patient: Patient
    checkin: CheckIn | None  # the latest asked or answered within the window (see current_checkin)
    newer_text_sent: bool  # a text went to the patient after that check-in was asked
    escalation_id: int | None  # the open escalation, if any
    next_visit: Appointment | None
    latest_text: object | None  # (kind, appointment_id, sent_at) of the latest text we sent, replies aside
    last_texted_at: datetime | None  # the latest text of any kind sent there (which patient a shared number is)
    questionnaire: Questionnaire | None = None  # by SMS, an item asked (the latest asked), expired at most LATE_ANSWER ago


def sender_facts(session: Session, number: str, now: datetime, settings) -> list[SenderFacts]:
    """The patients on this number, each with their current check-in, open escalation, next visit,
    latest text from us and questionnaire waiting for an SMS answer, in one query (correlated
    subqueries pick each one's row, so the answer is the same as current_checkin,
    escalations.open_for, next_visit and _reminded_visit's look-up would give)."""
    if not number:
        return []
    window = timedelta(hours=settings.checkin_answer_hours)
    query = _sender_facts_statement(session.get_bind().dialect)
    rows = session.execute(query, {"number": number, "now": now, "since": now - window,
                                   "closed_since": now - questionnaire_replies.LATE_ANSWER}).all()
    return [SenderFacts(patient=row[0], checkin=row[1], newer_text_sent=bool(row[1] is not None and row[3]),
                        escalation_id=row[4], next_visit=row[2],
                        latest_text=_LatestText(row[5], row[6], row[7]) if row[5] is not None else None,
                        last_texted_at=row[8], questionnaire=row[9])
            for row in rows]


_built_statements: dict[str, object] = {}
_building = threading.Lock()


def _sender_facts_statement(dialect):
    """sender_facts' statement for this database kind, built and compiled once per process.
    It is compiled before any thread can see it: SQLAlchemy fills in parts of a statement on its
    first compile, and two webhook threads compiling one new statement at once could read each
    other's half-made columns (NoSuchColumnError on a patient's text)."""
    statement = _built_statements.get(dialect.name)
    if statement is None:
        with _building:
            statement = _built_statements.get(dialect.name)
            if statement is None:
                statement = _sender_facts_query(dialect.name)
                statement.compile(dialect=dialect)
                _built_statements[dialect.name] = statement
    return statement


def _sender_facts_query(dialect: str):
    """sender_facts' statement (built once per process and database kind: aliases and subqueries
    cost more to build than the query costs to run); `number`, `now` and `since` are bound per
    text. Every part is picked per patient through an index (patient_id): on PostgreSQL the
    check-in and the visit are LATERAL joins, elsewhere joins on the id a subquery picks."""
    now, since = bindparam("now", type_=UTCDateTime), bindparam("since", type_=UTCDateTime)
    closed_since = bindparam("closed_since", type_=UTCDateTime)

    def one_per_patient(model, *conditions, order):
        """The row of `model` a subquery picks for each patient, as an entity to outer-join."""
        if dialect == "postgresql":
            picked = (select(model).where(model.patient_id == Patient.id, *conditions)
                      .order_by(*order(model)).limit(1).lateral())
            return aliased(model, picked), true()
        other = aliased(model)
        picked_id = (select(other.id).where(other.patient_id == Patient.id, *[c(other) for c in conditions])
                     .order_by(*order(other)).limit(1).correlate(Patient).scalar_subquery())
        return model, model.id == picked_id

    if dialect == "postgresql":
        checkin_conditions = (CheckIn.status.in_(OPEN_CHECKIN + (ANSWERED,)), CheckIn.prompted_at >= since,
                              CheckIn.prompted_at <= now)
        visit_conditions = (Appointment.starts_at > now, Appointment.status.in_(ACTIVE_STATUSES))
        asked_conditions = (Questionnaire.channel == BY_SMS, Questionnaire.status.in_((SENT, STARTED)),
                            Questionnaire.asked_item.is_not(None), Questionnaire.expires_at > closed_since)
    else:
        checkin_conditions = (lambda c: c.status.in_(OPEN_CHECKIN + (ANSWERED,)), lambda c: c.prompted_at >= since,
                              lambda c: c.prompted_at <= now)
        visit_conditions = (lambda a: a.starts_at > now, lambda a: a.status.in_(ACTIVE_STATUSES))
        asked_conditions = (lambda q: q.channel == BY_SMS, lambda q: q.status.in_((SENT, STARTED)),
                            lambda q: q.asked_item.is_not(None), lambda q: q.expires_at > closed_since)
    checkin, checkin_on = one_per_patient(CheckIn, *checkin_conditions,
                                          order=lambda c: (c.prompted_at.desc(), c.id.desc()))
    visit, visit_on = one_per_patient(Appointment, *visit_conditions, order=lambda a: (a.starts_at, a.id))
    asked, asked_on = one_per_patient(Questionnaire, *asked_conditions,
                                      order=lambda q: (q.asked_at.desc(), q.id.desc()))

    opened = aliased(Escalation)
    escalation_id = (
        select(opened.id).where(opened.status.in_(escalations.ACTIVE), opened.patient_id == Patient.id)
        .order_by(opened.opened_at.desc(), opened.id.desc()).limit(1)
        .correlate(Patient).scalar_subquery())

    def latest(column):
        sent = aliased(OutboxMessage)
        return (select(getattr(sent, column))
                .where(sent.patient_id == Patient.id, sent.channel.in_(TEXT_CHANNELS),
                       sent.kind.not_in((Kind.REPLY, Kind.ALERT)), sent.sent_at.is_not(None), sent.sent_at <= now)
                .order_by(sent.sent_at.desc(), sent.id.desc()).limit(1)
                .correlate(Patient).scalar_subquery())

    any_text = aliased(OutboxMessage)
    last_texted_at = (
        select(func.max(any_text.sent_at))
        .where(any_text.patient_id == Patient.id, any_text.channel.in_(TEXT_CHANNELS),
               any_text.sent_at.is_not(None))
        .correlate(Patient).scalar_subquery())
    later = aliased(OutboxMessage)
    newer = (
        exists().where(later.patient_id == Patient.id, later.channel.in_(TEXT_CHANNELS),
                       later.kind.not_in((Kind.REPLY, Kind.ALERT)),
                       later.sent_at > checkin.prompted_at, later.sent_at <= now,
                       later.id != func.coalesce(checkin.prompt_outbox_id, 0)))
    return (
        select(Patient, checkin, visit, newer, escalation_id, latest("kind"), latest("appointment_id"),
               latest("sent_at"), last_texted_at, asked)
        .select_from(Patient)
        .outerjoin(checkin, checkin_on)
        .outerjoin(visit, visit_on)
        .outerjoin(asked, asked_on)
        .where(Patient.phone == bindparam("number"))
        .order_by(Patient.id)
    )


@dataclass(frozen=True)
class _LatestText:
    kind: str
    appointment_id: int | None
    sent_at: datetime


def current_checkin(session: Session, patient: Patient | None, now: datetime, settings,
                    facts: SenderFacts | None = None) -> CheckIn | None:
    """The check-in this patient's next text belongs to: asked (or answered) within
    CHECKIN_ANSWER_HOURS, with no newer text sent to the patient since it was asked.

    An open one (awaiting, re-asked) takes a score; an answered one takes details. `facts`:
    what sender_facts read for this patient (no query then)."""
    if patient is None:
        return None
    if facts is not None and facts.patient is patient:
        return None if facts.checkin is None or facts.newer_text_sent else facts.checkin
    window = timedelta(hours=settings.checkin_answer_hours)
    checkin = session.scalars(
        select(CheckIn)
        .where(CheckIn.patient_id == patient.id, CheckIn.status.in_(OPEN_CHECKIN + (ANSWERED,)),
               CheckIn.prompted_at >= now - window, CheckIn.prompted_at <= now)
        .order_by(CheckIn.prompted_at.desc(), CheckIn.id.desc())
        .limit(1)
    ).first()
    if checkin is None or newer_text_sent(session, patient, checkin, now):
        return None
    return checkin


def newer_text_sent(session: Session, patient: Patient, checkin: CheckIn, now: datetime) -> bool:
    """Whether a text (a reminder, another check-in, a nudge) went to the patient after the
    check-in was asked: then the conversation has moved on, and a number is no longer its answer."""
    return session.scalar(
        select(OutboxMessage.id).where(
            OutboxMessage.patient_id == patient.id, OutboxMessage.channel.in_(TEXT_CHANNELS),
            OutboxMessage.kind.not_in((Kind.REPLY, Kind.ALERT)),
            OutboxMessage.sent_at > checkin.prompted_at, OutboxMessage.sent_at <= now,
            OutboxMessage.id != (checkin.prompt_outbox_id or 0))
        .limit(1)
    ) is not None


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
