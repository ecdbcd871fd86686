"""A text that acts on the texts themselves or on the visit: an opt-out (STOP; a bare CANCEL may
have meant the visit, and staff are told), an opt-in (START; YES just after a reminder confirms
it), a confirmation (C, or "see you then" after a reminder) and a reschedule request."""
from __future__ import annotations

from datetime import timedelta

from reminders import consent
from reminders.inbound.parsing import CANCEL_WORDS, Reading
from reminders.models import Appointment
from reminders.models.appointments import AppointmentStatus
from reminders.models.outbox import Kind
from reminders.visits import moves

# A reminder for the next visit sent this recently makes "see you then" or a thumbs-up a confirmation.
REMINDER_ANSWER_WINDOW = timedelta(days=8)


class KeywordReplies:
    """Opting out and in, confirming and rescheduling, for the conversation
    (reminders.inbound.conversation)."""

    def _opt_out(self, reading: Reading) -> tuple[str, bool, str | None]:
        for patient in self.patients:  # the number opted out, whoever's record it is on
            consent.opt_out(patient, self.text.channel, self.now, how=self.text.body.strip())
        if reading.keyword.upper() in CANCEL_WORDS:
            # CANCEL is an opt-out by carrier rule, but a patient may have meant the visit.
            visit = self._next_visit()
            self.appointment = visit
            self.reasons.append(f"texted {reading.keyword.upper()}: may have meant the visit (now opted out of texts)")
            return "stop", True, self.reply("stop_cancel")
        return "stop", False, self.reply("stop")

    def _opt_in(self) -> tuple[str, bool, str | None]:
        was_out = [patient for patient in self.patients if consent.opt_in(patient, self.text.channel, self.now)]
        if was_out:
            return "start", False, self.reply("start")
        # YES is an opt-in word by carrier rule, but a subscribed patient saying "yes" just after a
        # reminder means the visit; otherwise tell them how to confirm it.
        if not self.expecting and self._reminded_visit() is not None:
            return self._confirm()
        return "start", False, self.reply("already_subscribed")

    def _confirm(self) -> tuple[str, bool, str | None]:
        visit = self._next_visit()
        if visit is None:
            return "confirm", True, self.reply("no_visit")
        self.appointment = visit
        if moves.allowed(visit.status, AppointmentStatus.CONFIRMED, by=moves.PATIENT):
            moves.move(visit, AppointmentStatus.CONFIRMED, self.now, by=moves.PATIENT)
        return "confirm", False, self.reply("confirmed")

    def _reschedule(self) -> tuple[str, bool, str | None]:
        visit = self._next_visit()
        if visit is not None:
            self.appointment = visit
            visit.reschedule_requested_at = self.now
        self.flag()  # "can't come, throwing up all night" is also for a nurse
        return "reschedule", True, self.reply("reschedule")

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
