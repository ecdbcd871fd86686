"""A text while a check-in is open or just answered: the score taken, an unreadable answer asked
again once, words added to the check-in for staff."""
from __future__ import annotations

from reminders import checkins
from reminders.inbound.inbox_rank import PRIORITY_FLAGGED
from reminders.inbound.parsing import Reading
from reminders.inbound.symptoms import sounds_well
from reminders.models import CheckIn, InboundMessage, OutboxMessage

AWAITING, ANSWERED = checkins.AWAITING, checkins.ANSWERED
# Mood at or above this is good news; pain at or below GOOD_PAIN is; pain at or above HIGH_PAIN is for a nurse.
GOOD_MOOD, GOOD_PAIN, HIGH_PAIN = 7, 3, 8


class CheckinReplies:
    """The check-in's part of the conversation (reminders.inbound.conversation)."""

    def _period_asked(self, checkin: CheckIn) -> str:
        """"week" when the question was about the week (a weekly check-in, a caring contact), else "day"."""
        prompt = self.session.get(OutboxMessage, checkin.prompt_outbox_id) if checkin.prompt_outbox_id else None
        weekly = prompt is not None and prompt.rule.startswith(("checkin_weekly", "caring_contact"))
        return "week" if weekly else "day"

    def _checkin_answer(self, reading: Reading) -> tuple[str, bool, str | None]:
        checkin = self.checkin
        checkins.answer(checkin, score=reading.score, note=reading.note, text=self.text.body,
                        inbound_id=self.stored(), now=self.now)
        self.appointment = checkin.appointment
        self.answer = {"score": reading.score, "kind": checkin.kind, "period": self._period_asked(checkin)}
        flagged = self.flag(questions=True)
        if checkin.kind == "pain" and reading.score >= HIGH_PAIN:
            self.reasons.append(f"pain {reading.score}/10")
            self.priority, flagged = PRIORITY_FLAGGED, True
        self._add_details(checkin)
        if flagged:  # the number is still confirmed: "We noted 7 for your mood today."
            return "checkin_answer", True, self.with_score_noted(self.reply("flagged"))
        return "checkin_answer", False, self.reply(self._band(checkin.kind, reading.score))

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
            checkins.reask(checkin, text=self.text.body, inbound_id=self.stored(), now=self.now)
            return "checkin_unreadable", False, self.reply("checkin_reask" if checkin.kind != "pain"
                                                           else "checkin_reask_pain")
        earlier = self.session.get(InboundMessage, checkin.inbound_message_id) if checkin.inbound_message_id else None
        if earlier is not None:
            earlier.needs_staff = True
        checkins.hand_to_staff(checkin, text=self.text.body, inbound_id=self.stored())
        self.reasons.append("check-in answer we could not read")
        if self.flag(questions=True):
            return "checkin_unreadable", True, self.reply("flagged")
        return "checkin_unreadable", True, self.reply("received")

    def _checkin_text(self, kind: str) -> tuple[str, bool, str | None]:
        """Words, not a score, while a check-in is open or just answered: staff read them now.

        Side effects are added to the check-in (its details); an open check-in still takes a score."""
        checkin = self.checkin
        self.appointment = checkin.appointment
        flagged = self.flag(questions=True)
        answered = checkin.status == ANSWERED
        if flagged or answered or self.crisis:  # what a nurse must see is kept with the check-in too
            checkins.add_note(checkin, self.text.body)
            self._add_details(checkin)
        if flagged:
            return ("checkin_details" if answered else kind), True, self.reply("flagged")
        if answered:
            return "checkin_details", True, self.reply("checkin_details")
        if sounds_well(self.text.body):  # "Feeling great!": staff see it; the patient hears we're glad
            return kind, True, self.reply("checkin_thanks")
        return kind, True, self.reply("received")

    def _add_details(self, checkin: CheckIn) -> None:
        found = [r for r in self.reasons if r != "a question"]
        if found:
            checkins.add_details(checkin, "; ".join(found))
