"""One patient's text from start to answer: who sent it, what it says, what it does
(reminders.inbound.replies tells the whole story).

The conversation reads the text, triages it, opens or joins an escalation for a crisis, and hands
the rest to its parts: keywords and visit actions (reminders.inbound.keywords), check-in answers
(reminders.inbound.checkin_answers), questionnaires by SMS (reminders.inbound.questionnaire_replies),
the answer's words (reminders.inbound.reply_texts)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from reminders import checkins
from reminders import escalations
from reminders.channels.base import InboundText
from reminders.inbound import questionnaire_replies
from reminders.inbound.answers import VisitFacts, direct_answer
from reminders.inbound.checkin_answers import CheckinReplies
from reminders.inbound.consent_words import wants_back_in
from reminders.inbound.inbox_rank import (FLAG_REASON_LIMIT, PRIORITY_CRISIS, PRIORITY_FLAGGED, PRIORITY_ROUTINE,
                                          flag_reasons)
from reminders.inbound.item_answers import is_bare_number
from reminders.inbound.keywords import KeywordReplies
from reminders.inbound.parsing import Reading, asks_who_is_writing, read_reply
from reminders.inbound.reply_texts import ReplyWriting
from reminders.inbound.sender_lookup import (OPEN_CHECKIN, SenderFacts, current_checkin, location_of_text,
                                             primary_patient, sender_facts)
from reminders.inbound.symptoms import read_flags
from reminders.locations import LocationBook
from reminders.logs import also_sensitive, mask_phone, patient_values
from reminders.models import Appointment, Escalation, InboundMessage
from reminders.rendering import TemplateStore, message_context
from reminders.triage import FOLLOW_UP, Context, Tier, Triage, assess, detect_language

log = logging.getLogger(__name__)

# Readings that are plain actions on a visit or on the texts themselves.
_ACTIONS = ("confirm", "soft_confirm", "reschedule", "stop", "start", "help", "ack")
REASKED = checkins.REASKED


@dataclass
class Handled:
    inbound_id: int | None
    classification: str
    needs_staff: bool
    reply: str | None
    alert_ids: list[int] = field(default_factory=list)
    escalation_id: int | None = None
    replayed: bool = False


def crisis_terms(body: str) -> tuple[str, ...]:
    """What a text that could not be acted on may be, for the fallback answer (assess never raises)."""
    triage = assess(body, Context(use_model=False))
    return triage.reasons if triage.alerts else ()


class Conversation(KeywordReplies, CheckinReplies, ReplyWriting):
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
        self.patient = primary_patient(session, self.patients, {f.patient.id: f.last_texted_at for f in self.facts})
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
        reading = self.read()
        if self.closed_questionnaire is not None:
            self._read_late_answer(reading)
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
        self.inbound.patient_id = self.patient.id if self.patient else None
        if self.patient is None:
            classification, needs_staff, reply = self._from_unknown(reading)
        else:
            classification, needs_staff, reply = self._from_patient(reading)
        if self.crisis:
            classification, reply = self._escalate(reading, classification, reply)
            needs_staff = True
        elif joins and triage.acknowledgement_only:
            classification, needs_staff, reply = self._kept_with_escalation(was_opted_out)
        elif was_opted_out and reading.kind not in ("stop", "start", "help"):
            # No texts to a number that opted out, except what carriers require; "wait, I still want
            # the reminders" is told how to come back.
            reply = self.reply("wants_back_in") if wants_back_in(self.text.body) else None
        elif (reply and self.patient and self.patient.welcomed_at is None and reading.kind not in ("stop", "help")
              and self.welcomes_first):
            reply = self._with_welcome(reply)
        if self.text.notes:
            needs_staff = True  # a request with malformed fields is shown to a person, whatever it said
        return self._recorded(classification, needs_staff, reply)

    def _read_late_answer(self, reading: Reading) -> None:
        """The text as a late answer to the closed questionnaire's question, when it is one."""
        found = questionnaire_replies.read_answer(self.closed_questionnaire, self.text.body, reading)
        self.late_answer = found if found.value is not None else None
        self.late_self_harm = questionnaire_replies.is_self_harm(self.closed_questionnaire, found.value)
        if self.late_self_harm:
            self.reasons.append("a late answer to a self-harm question: "
                                + questionnaire_replies.late_words(self.closed_questionnaire, found.value))

    def _kept_with_escalation(self, was_opted_out: bool) -> tuple[str, bool, str | None]:
        """"thanks", "who is this?": kept with the escalation, no page, no script again."""
        self.stored()
        escalation, _ = escalations.open_escalation(
            self.session, self.clinic_settings, patient=self.patient, inbound=self.inbound,
            reason=escalations.REASON_CRISIS, now=self.now, realert=False, location_id=self.location_id)
        self.escalation_id = escalation.id
        classification, needs_staff = "follow_up", self.patient is None  # a stranger's text: staff read all
        if self.flags.question:
            # "who is this?": answered, and still a question a person closes (no page).
            classification, needs_staff = "question", True
            self._question_while_escalated()
        return classification, needs_staff, None if was_opted_out else self.reply("follow_up_ack")

    def _with_welcome(self, reply: str) -> str:
        """Our first text to this patient: it says who we are, HELP/STOP and the crisis line."""
        welcome = self.render(self.template("welcome", self.language),
                              message_context(self.settings, self.patient, None, 0))
        if not welcome:
            return reply
        self.patient.welcomed_at = self.now
        return welcome + "\n\n" + reply

    def _recorded(self, classification: str, needs_staff: bool, reply: str | None) -> Handled:
        """The text's row says what it did and what it was answered; flushed (inserted if not yet)."""
        inbound = self.inbound
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
        self.stored()  # the escalation points at the text
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
        return classification, (f"{answer}\n\n{reply}" if acted else self.with_score_noted(answer))

    def _question_while_escalated(self) -> None:
        """A question asked while an escalation is open: ranked with the crises and said to be one."""
        self.priority = max(self.priority, PRIORITY_CRISIS)
        self.reasons.append("a question asked while an escalation is open: answer it too")

    def _alert_reply(self, triage: Triage, open_tier: Tier) -> str:
        """911 first for an emergency, 988 first for suicide risk, the on-call promise for urgent; a
        follow-up that adds something is acknowledged in the escalation's own terms."""
        if self.late_self_harm and not triage.alerts:
            return self.crisis_reply("crisis")
        tier = max(triage.tier, open_tier, key=lambda t: t.rank) if triage.follow_up else triage.tier
        if triage.follow_up and triage.tier.rank <= open_tier.rank:
            return self.reply({Tier.EMERGENCY: "follow_up_emergency", Tier.SUICIDE_RISK: "follow_up_crisis"}.get(
                tier, "follow_up_urgent"))
        if tier is Tier.EMERGENCY:
            return self.crisis_reply("emergency")
        if tier is Tier.SUICIDE_RISK:
            return self.crisis_reply("crisis")
        return self.reply("possible_risk" if triage.by_model else "urgent")

    def stored(self) -> int:
        """The text's row id, inserting the row now if it is not yet (a check-in or an escalation
        is about to point at it). A text seen before fails here: see handle_inbound."""
        if self.inbound.id is None:
            self.session.flush()
        return self.inbound.id

    def read(self) -> Reading:
        try:
            asked = self.expecting or self.questionnaire is not None or self.closed_questionnaire is not None
            return read_reply(self.text.body, expecting_score=asked)
        except Exception:  # noqa: BLE001 - an unreadable text goes to staff, never nowhere
            log.exception("inbound from %s: the reply reader failed; sending the text to staff",
                          mask_phone(self.text.from_number))
            return Reading("free_text", note=self.text.body.strip(), crisis_terms=crisis_terms(self.text.body))

    def _scores_mood(self) -> bool:
        """A mood score, as far as the crisis check goes (not a pain score, not a questionnaire's answer)."""
        if self.questionnaire is not None or self.late_answer is not None:
            return False
        return not (self.expecting and self.checkin.kind == "pain")

    def _from_unknown(self, reading: Reading) -> tuple[str, bool, str | None]:
        if reading.kind == "stop":
            reply = self.reply("stop")
        elif reading.kind == "help":
            reply = self.reply("help")
        else:
            reply = self.reply("unknown")
        self.flag()
        return reading.kind, True, reply

    def _from_patient(self, reading: Reading) -> tuple[str, bool, str | None]:
        kind = reading.kind
        if kind == "stop":
            return self._opt_out(reading)
        if kind == "start":
            return self._opt_in()
        if kind == "help" or (kind == "free_text" and asks_who_is_writing(self.text.body)):
            return "help", False, self.reply("help")  # who we are, how to reach a person, how to stop
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
        if kind == "unclear_score" and self.expecting and not self.flag(dry_run=True, questions=False):
            return self._checkin_unreadable()
        if self.expecting and self.checkin.status == REASKED:
            return self._checkin_unreadable()  # no score after the re-ask either: a person reads both
        if self.checkin is not None:
            return self._checkin_text(kind)
        if self.flag():
            return kind, True, self.reply("flagged")
        return kind, True, self.reply("received")

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

    def _next_visit(self) -> Appointment | None:
        return self.known.next_visit if self.known is not None else None

    def flag(self, dry_run: bool = False, questions: bool = False) -> bool:
        """Side effects, a high blood pressure or (in a check-in answer) a question: a nurse reads it
        today, and the reason is kept for staff."""
        reasons = [r for r in flag_reasons(self.flags, self.settings) if questions or r != "a question"]
        if reasons and not dry_run:
            self.reasons.extend(reasons)
            self.priority = max(self.priority, PRIORITY_FLAGGED)
        return bool(reasons)
