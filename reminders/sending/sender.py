"""The sender: one row, a batch, or a backlog handed to the providers, the rows of each sending
number in batches of their own (reminders.sending.batch), the texts that follow sent right after."""
from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from reminders import metrics
from reminders.channels import Channel, OutgoingMessage
from reminders.config import Settings
from reminders.interruptions import is_interruption
from reminders.logs import patient_values, sensitive
from reminders.models import Appointment, OutboxMessage, Patient
from reminders.outbox.moves import claim_for_sending, queue_now
from reminders.outbox.rows import following_parts
from reminders.provider_health import gate as provider_gate, release_probe
from reminders.rendering import TemplateStore, flag_failures
from reminders.sending import compose, gate
from reminders.sending.batch import claim_batch, send_claimed_batch
from reminders.sending.handover import hand_over, retry_or_fail, settle_after_hand_over
from reminders.sending.numbers import Book, LocationChannels, grouped_by_sender, read_book, side_by_side
from reminders.sending.outcomes import AfterHandOver, NotHandedOver, SendOutcome
from reminders.sending.records import not_handed_over

log = logging.getLogger("reminders.sending")


@dataclass
class Sender:
    sessions: sessionmaker[Session]
    settings: Settings
    channels: dict[str, Channel]

    provider_recovered: bool = False
    # Outcomes of the texts sent right after the one before them (send_batch answers for the ids
    # it was given): the in-process dispatcher adds them to its pass's summary.
    following_outcomes: Counter = field(default_factory=Counter)
    _by_location: LocationChannels = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._by_location = LocationChannels(self.settings, self.channels)

    def send(self, outbox_id: int, now: datetime) -> str:
        """Send one row if it is still wanted. Returns the outcome: sent, deferred, skipped, ..."""
        with self.sessions() as session:
            # While the channel's provider is failing, the row waits untouched (reminders.provider_health).
            passage, healthy = provider_gate(session, outbox_id, now)
            if passage != "go":
                session.commit()
            if passage in ("held", "gave_up"):
                return SendOutcome(passage)
            if not claim_for_sending(session, outbox_id, now):
                return SendOutcome.NOT_CLAIMED
            return self.send_one_claimed(session, outbox_id, now, healthy, probe=passage == "probe")

    def send_one_claimed(self, session: Session, outbox_id: int, now: datetime, healthy: bool,
                         probe: bool = False, store: TemplateStore | None = None, book: Book | None = None) -> str:
        row = session.get(OutboxMessage, outbox_id)
        patient = session.get(Patient, row.patient_id) if row.patient_id else None
        # Whatever fails below, the log shows none of this patient's details or the text.
        with sensitive(*patient_values(patient), row.to_address, row.body):
            try:
                outcome = self._send_claimed(session, row, now, provider_healthy=healthy, store=store, book=book)
            except NotHandedOver:
                outcome = not_handed_over(session, row, [], now)
            except AfterHandOver as after:
                outcome = self.after_hand_over_failed(session, outbox_id, after, now)
            except Exception as exc:  # noqa: BLE001 - recorded on this row; the pass goes on for the others
                if is_interruption(exc):
                    raise  # a time limit: the row is released (never handed) or shown unknown, never "failed"
                outcome = self.internal_error(session, outbox_id, exc, now)
            if probe:
                release_probe(session, row.channel, outbox_id, now)  # unless the provider answered
            session.commit()
        return outcome

    def after_hand_over_failed(self, session: Session, outbox_id: int, after: AfterHandOver, now: datetime) -> str:
        session.rollback()
        row = session.get(OutboxMessage, outbox_id)
        with sensitive(row.to_address, row.body, row.subject):
            log.exception("outbox %s: error after the message was handed to the provider", outbox_id)
        return settle_after_hand_over(session, self.settings, row, after.receipt, now)

    def internal_error(self, session: Session, outbox_id: int, exc: Exception, now: datetime) -> str:
        session.rollback()
        row = session.get(OutboxMessage, outbox_id)
        with sensitive(row.to_address, row.body, row.subject):
            log.exception("outbox %s: unexpected error while sending", outbox_id)
        return retry_or_fail(session, self.settings, row, now,
                             f"internal error: {type(exc).__name__} (see the service log)",
                             code="internal", max_attempts=self.settings.send_max_attempts)

    # ------------------------------------------------------------------ batches

    def send_batch(self, outbox_ids: list[int], now: datetime) -> list[str]:
        """Send a batch of queued rows; the outcome of each, in the order given.

        One claim for the batch, a few set-based reads, every rendered text written in one
        commit before the first provider call, then one commit per message sent. A row whose
        channel is paused (its provider failing) goes through `send`, one by one, where the
        breaker decides (probe, hold, give up).

        Rows of different sending numbers (a clinic's locations) go side by side, each number at
        its own pace: one waiting for its slot keeps none of the others waiting."""
        if not outbox_ids:
            return []
        book, groups = grouped_by_sender(self.sessions, self.settings, outbox_ids)
        outcomes = side_by_side(self.sessions, groups, lambda ids: self._send_from_one_sender(ids, now, book))
        return [outcomes.get(outbox_id, SendOutcome.NOT_CLAIMED) for outbox_id in outbox_ids]

    def send_backlog(self, outbox_ids: list[int], now: datetime, batch_size: int) -> Counter:
        """Send many queued rows, `batch_size` at a time: each sending number's rows in batches of
        their own, the numbers side by side. The outcomes counted."""
        book, groups = grouped_by_sender(self.sessions, self.settings, outbox_ids)

        def one_sender(ids: list[int]) -> dict[int, str]:
            outcomes: dict[int, str] = {}
            for start in range(0, len(ids), batch_size):
                outcomes.update(self._send_from_one_sender(ids[start:start + batch_size], now, book))
            return outcomes

        outcomes = side_by_side(self.sessions, groups, one_sender)
        return Counter(outcomes.get(outbox_id, SendOutcome.NOT_CLAIMED) for outbox_id in outbox_ids)

    def by_sender(self, outbox_ids: list[int]) -> list[list[int]]:
        """The rows grouped by the number (or channel) they go from, each group in the order given."""
        return grouped_by_sender(self.sessions, self.settings, outbox_ids)[1]

    def _send_from_one_sender(self, outbox_ids: list[int], now: datetime, book: Book) -> dict[int, str]:
        outcomes: dict[int, str] = {}
        with self.sessions() as session:
            state, one_by_one, together, claimed = claim_batch(session, outbox_ids, now)
            for outbox_id in together:
                if outbox_id not in claimed:
                    outcomes[outbox_id] = SendOutcome.NOT_CLAIMED
            if claimed:
                healthy = {channel: not (b.is_open or b.consecutive_failures) for channel, b in state.items()}
                outcomes.update(send_claimed_batch(self, session, claimed, now, healthy, book))
        for outbox_id in one_by_one:
            outcomes[outbox_id] = self.send(outbox_id, now)
        metrics.count_sends(self.settings, self.sessions, outcomes)  # GET /metrics: reminders_messages_total
        self._send_following(outbox_ids, outcomes, now)
        return outcomes

    def _book(self, session: Session) -> Book:
        return read_book(session, self.settings)

    def _channels_at(self, book: Book, location_id: int | None) -> dict[str, Channel]:
        """The channels a location's messages go by (built once for the Sender's life)."""
        return self._by_location.at(book, location_id)

    def _send_following(self, outbox_ids: list[int], outcomes: dict[int, str], now: datetime) -> None:
        """The texts that follow those just sent go at once, each its own row claimed on its own
        (a crash between two texts leaves the next one planned and due: the next pass sends it,
        and never the first again)."""
        sent = [outbox_id for outbox_id in outbox_ids if outcomes.get(outbox_id) == SendOutcome.SENT]
        if not sent:
            return
        with self.sessions() as session:
            rows = session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(sent))).all()
            following = following_parts(session, sorted(rows, key=lambda r: sent.index(r.id)))
            queued = queue_now(session, following, now) if following else []
        if queued:
            outcomes = self.send_batch(queued, now)
            with self._lock:  # senders side by side may both have texts that follow
                self.following_outcomes.update(outcomes)

    # ------------------------------------------------------------------ one row

    def prepare(self, session: Session, store: TemplateStore, row: OutboxMessage, patient: Patient | None,
                appointment: Appointment | None, now: datetime, book: Book,
                facts: gate.BatchFacts | None = None) -> OutgoingMessage | str:
        """Decide whether a claimed row still goes, and render it: an outcome (skipped, deferred)
        or the message. Its words and its sender are those of its location: its visit's, now (the
        visit may have moved to another location since the row was planned), else its own. The
        row records both, with what it says, before the provider is asked."""
        location = compose.location_of(row, appointment)
        address = getattr(self._channels_at(book, location).get(row.channel), "from_address", None)
        where, sender = book.settings_for(location), compose.From(location, (address or "")[:64])
        if row.part > 1:
            before = gate.following_part(session, self.settings, row, patient, appointment, now, where)
            return before if isinstance(before, str) else compose.following_message(self.settings, row, before, sender)
        stopped = gate.first_part(session, self.settings, self.channels, row, patient, appointment, now, where,
                                      facts, self.send)
        if stopped:
            return stopped
        return compose.write_message(session, self.settings, store, row, patient, appointment, now, where, sender)

    def _send_claimed(self, session: Session, row: OutboxMessage, now: datetime, *, provider_healthy: bool = False,
                      store: TemplateStore | None = None, book: Book | None = None) -> str:
        patient = session.get(Patient, row.patient_id) if row.patient_id else None
        appointment = session.get(Appointment, row.appointment_id) if row.appointment_id else None
        store = store or TemplateStore(self.settings.templates_dir, session)
        book = book or self._book(session)
        message = self.prepare(session, store, row, patient, appointment, now, book)
        if isinstance(message, str):
            return message
        flag_failures(session, store, now)  # a staff template that failed: the default went, admins see it
        session.commit()  # the row says what is going out before the provider is asked

        with sensitive(message.to, message.body, message.subject):
            return self.hand_over(session, row, patient, message, now, provider_healthy, book=book)

    def hand_over(self, session: Session, row: OutboxMessage, patient: Patient | None, message: OutgoingMessage,
                  now: datetime, provider_healthy: bool, sent: list | None = None, book: Book | None = None) -> str:
        channels = self._channels_at(book, row.location_id) if book is not None else self.channels
        return hand_over(session, self.settings, channels, row, patient, message, now, provider_healthy,
                         sent=sent, recovered=self._recovered)

    def _recovered(self) -> None:
        self.provider_recovered = True  # a flag for the caller (reminders.tasks)
