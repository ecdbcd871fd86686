"""Sending one outbox row: re-check, render, send through its channel, record what happened.

The row is claimed with a conditional UPDATE first, so a redelivered task or a second worker
finds nothing to do. The rendered text is written before the provider is called, and the row is
marked in flight (`handed_at`) just before its own call: a worker that dies after that leaves the
row in `sending`, which the sweep turns into `unknown` for staff; one that dies (or loses its
database) before it, leaves a row that goes back to the schedule. A provider failure that opens the
breaker, here or in another process, stops the batch in hand: its other rows go back, untried.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, selectinload, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from reminders.inbound import checkin_links
from reminders.calendar import visit_ics, visit_words
from reminders.inbound.escalations import crisis_open
from reminders.interruptions import is_interruption
from reminders.channels import Attachment, Channel, DeliveryError, OutgoingMessage, Receipt, channels_for
from reminders.channels.kinds import spec_for, within_free_form_window
from reminders.channels.segments import sms_length
from reminders.config import Settings
from reminders.locations import LocationBook
from reminders.models import Appointment, CheckIn, Location, OutboxMessage, Patient
from reminders.models.outbox import Kind, Status
from reminders.models.replies import checkin_kind, last_inbound_at
from reminders.outbox import moves
from reminders.outbox.moves import claim_for_sending, claim_many_for_sending, queue_now
from reminders.outbox.rows import following_parts, plan_fallback_twin, plan_following_parts, previous_part_key
from reminders.planning.welcome import (
    WAITING_FOR_WELCOME, reason_not_to_welcome, send_welcome_first, waits_for_welcome, welcome_wait_until,
)
from reminders.logs import patient_values, sensitive
from reminders import metrics
from reminders.measures.questionnaires import for_message as questionnaire_for_message
from reminders.planning.rules import (
    REMINDER, UNGATED_KINDS, Rule, RuleSettings, SendFacts, backoff, reason_not_to_send, retry_delay, rules_by_name,
)
from reminders.planning.rules import asks_for_a_score
from reminders.inbound import open_questions
from reminders.planning.budget import OVER_BUDGET
from reminders.planning.visit_texts import gives_way
from reminders.missed_visits import next_visit_context
from reminders.planning.rules import MISSED_VISIT
from reminders.provider_health import breakers, gate, hold_reason, record_failure, record_success, release_probe
from reminders.rendering import (
    TemplateStore, flag_failures, message_context, message_templates, render, template_language, text_parts,
)

log = logging.getLogger(__name__)

# Automated asks wait while a crisis escalation of the patient's is open (checked again this often).
PAUSED_IN_A_CRISIS = (Kind.CHECKIN, Kind.QUESTIONNAIRE, Kind.NUDGE)
CRISIS_PAUSE_RECHECK = timedelta(minutes=30)

# Sends are committed together, this many or this often, whichever comes first.
GROUP_COMMIT_SIZE = 25
GROUP_COMMIT_SECONDS = 0.25
# The longest a batch hands messages over (pacing makes them wait); well inside a task's limit.
BATCH_SECONDS = 60.0
# A batch looks at the breakers this often, so that a pause another process opened stops it too.
BREAKER_LOOK_SECONDS = 1.0
# Outcomes of a provider's trouble (a refusal worth retrying; no answer in time, the text perhaps
# gone): they count toward the breaker, which may have opened with them.
PROVIDER_TROUBLE = ("retrying", "unknown")
NOT_HANDED_OVER = "the database failed just before the send; back in the schedule"
# Messages whose text may go as several texts when it does not fit one (reminders.rendering.
# text_parts). A question (a check-in, a questionnaire) stays one text: its answer refers to it.
SPLIT_KINDS = (Kind.REMINDER, Kind.NUDGE)
# A following text whose text before it has not gone yet looks again this often.
FOLLOWING_RECHECK = timedelta(minutes=1)
# What a text before a following one may end as, for the following one to go: it was handed over.
# (One left `unknown` may not have gone: the text after it waits for no one and is skipped, for
# staff to see with it.)
HANDED_OVER = (Status.SENT, Status.DELIVERED, Status.UNDELIVERED)
# Rows of different sending numbers go side by side, each at its own pace, at most this many at
# once: each keeps a database connection busy now and then (the pool holds 15).
SENDER_THREADS = 12


__all__ = ["Sender", "backoff", "retry_delay"]


@dataclass
class Sender:
    sessions: sessionmaker[Session]
    settings: Settings
    channels: dict[str, Channel]

    provider_recovered: bool = False
    # Outcomes of the texts sent right after the one before them (send_batch answers for the ids
    # it was given): the in-process dispatcher adds them to its pass's summary.
    following_outcomes: Counter = field(default_factory=Counter)
    # The channels of each location's sending number, built once (a Twilio client is not free).
    _channels_by_sender: dict[tuple, dict[str, Channel]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def rule_settings(self) -> RuleSettings:
        return RuleSettings.from_settings(self.settings)

    def send(self, outbox_id: int, now: datetime) -> str:
        """Send one row if it is still wanted. Returns the outcome: sent, deferred, skipped, ..."""
        with self.sessions() as session:
            # While the channel's provider is failing, the row waits untouched (reminders.provider_health).
            passage, healthy = gate(session, outbox_id, now)
            if passage != "go":
                session.commit()
            if passage in ("held", "gave_up"):
                return passage
            if not claim_for_sending(session, outbox_id, now):
                return "not_claimed"
            return self._send_one_claimed(session, outbox_id, now, healthy, probe=passage == "probe")

    def _send_one_claimed(self, session: Session, outbox_id: int, now: datetime, healthy: bool,
                          probe: bool = False, store: TemplateStore | None = None, book: "_Book | None" = None) -> str:
        row = session.get(OutboxMessage, outbox_id)
        patient = session.get(Patient, row.patient_id) if row.patient_id else None
        # Whatever fails below, the log shows none of this patient's details or the text.
        with sensitive(*patient_values(patient), row.to_address, row.body):
            try:
                outcome = self._send_claimed(session, row, now, provider_healthy=healthy, store=store, book=book)
            except _NotHandedOver:
                outcome = self._not_handed_over(session, row, [], now)
            except _AfterHandOver as after:
                outcome = self._after_hand_over_failed(session, outbox_id, after, now)
            except Exception as exc:  # noqa: BLE001 - recorded on this row; the pass goes on for the others
                if is_interruption(exc):
                    raise  # a time limit: the row is released (never handed) or shown unknown, never "failed"
                outcome = self._internal_error(session, outbox_id, exc, now)
            if probe:
                release_probe(session, row.channel, outbox_id, now)  # unless the provider answered
            session.commit()
        return outcome

    def _after_hand_over_failed(self, session: Session, outbox_id: int, after: "_AfterHandOver", now: datetime) -> str:
        session.rollback()
        row = session.get(OutboxMessage, outbox_id)
        with sensitive(row.to_address, row.body, row.subject):
            log.exception("outbox %s: error after the message was handed to the provider", outbox_id)
        return self._settle_after_hand_over(session, row, after.receipt, now)

    def _internal_error(self, session: Session, outbox_id: int, exc: Exception, now: datetime) -> str:
        session.rollback()
        row = session.get(OutboxMessage, outbox_id)
        with sensitive(row.to_address, row.body, row.subject):
            log.exception("outbox %s: unexpected error while sending", outbox_id)
        return self._retry_or_fail(session, row, now, f"internal error: {type(exc).__name__} (see the service log)",
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
        book, groups = self._grouped_by_sender(outbox_ids)
        outcomes = self._side_by_side(groups, lambda ids: self._send_from_one_sender(ids, now, book))
        return [outcomes.get(outbox_id, "not_claimed") for outbox_id in outbox_ids]

    def send_backlog(self, outbox_ids: list[int], now: datetime, batch_size: int) -> Counter:
        """Send many queued rows, `batch_size` at a time: each sending number's rows in batches of
        their own, the numbers side by side. The outcomes counted."""
        book, groups = self._grouped_by_sender(outbox_ids)

        def one_sender(ids: list[int]) -> dict[int, str]:
            outcomes: dict[int, str] = {}
            for start in range(0, len(ids), batch_size):
                outcomes.update(self._send_from_one_sender(ids[start:start + batch_size], now, book))
            return outcomes

        outcomes = self._side_by_side(groups, one_sender)
        return Counter(outcomes.get(outbox_id, "not_claimed") for outbox_id in outbox_ids)

    def by_sender(self, outbox_ids: list[int]) -> list[list[int]]:
        """The rows grouped by the number (or channel) they go from, each group in the order given."""
        return self._grouped_by_sender(outbox_ids)[1]

    def _send_from_one_sender(self, outbox_ids: list[int], now: datetime, book: "_Book") -> dict[int, str]:
        outcomes: dict[int, str] = {}
        with self.sessions() as session:
            state, one_by_one, together, claimed = self._claim_batch(session, outbox_ids, now)
            for outbox_id in together:
                if outbox_id not in claimed:
                    outcomes[outbox_id] = "not_claimed"
            if claimed:
                healthy = {channel: not (b.is_open or b.consecutive_failures) for channel, b in state.items()}
                outcomes.update(self._send_claimed_batch(session, claimed, now, healthy, book))
        for outbox_id in one_by_one:
            outcomes[outbox_id] = self.send(outbox_id, now)
        metrics.count_sends(self.settings, self.sessions, outcomes)  # GET /metrics: reminders_messages_total
        self._send_following(outbox_ids, outcomes, now)
        return outcomes

    def _grouped_by_sender(self, outbox_ids: list[int]) -> tuple["_Book", list[list[int]]]:
        """The batch's locations, and its rows grouped by sending number (one group while the
        clinic has no locations)."""
        with self.sessions() as session:
            book = self._book(session)
            if not book.several or len(outbox_ids) < 2:
                return book, [list(outbox_ids)]
            senders = self._senders(session, book, outbox_ids)
        groups: dict[str, list[int]] = {}
        for outbox_id in outbox_ids:
            groups.setdefault(senders.get(outbox_id, ""), []).append(outbox_id)
        return book, list(groups.values())

    @staticmethod
    def _senders(session: Session, book: "_Book", outbox_ids: list[int]) -> dict[int, str]:
        """What paces each row: its location's number for a text, else its channel's one sender."""
        rows = session.execute(
            select(OutboxMessage.id, OutboxMessage.channel, OutboxMessage.location_id,
                   Appointment.id.label("visit_id"), Appointment.location_id.label("visit_location"))
            .outerjoin(Appointment, Appointment.id == OutboxMessage.appointment_id)
            .where(OutboxMessage.id.in_(outbox_ids)))
        return {row.id: book.settings_for(row.visit_location if row.visit_id is not None else row.location_id)
                .twilio_from if row.channel == "sms" else row.channel for row in rows}

    def _side_by_side(self, groups: list[list[int]], send) -> dict[int, str]:
        """`send` each group, in threads of their own when there are several (each its own
        session); an error in one is raised once every group is done. On SQLite, one writer at a
        time, the groups go one after the other."""
        outcomes: dict[int, str] = {}
        bind = self.sessions.kw.get("bind")
        if len(groups) == 1 or (bind is not None and bind.dialect.name == "sqlite"):
            for group in groups:
                outcomes.update(send(group))
            return outcomes
        with ThreadPoolExecutor(max_workers=min(len(groups), SENDER_THREADS),
                                thread_name_prefix="reminders-sender") as pool:
            done = [pool.submit(send, group) for group in groups]
        for future in done:
            outcomes.update(future.result())
        return outcomes

    def _book(self, session: Session) -> "_Book":
        locations = session.scalars(select(Location).order_by(Location.name)).all()
        return _Book(LocationBook(self.settings, locations),
                     {location.id: location.sms_per_second for location in locations})

    def _channels_at(self, book: "_Book", location_id: int | None) -> dict[str, Channel]:
        """The channels a location's messages go by: its texts from its own number (built once for
        the Sender's life), its emails as every location's."""
        place = book.settings_for(location_id)
        if place.twilio_from == self.settings.twilio_from or "sms" not in self.channels:
            return self.channels
        # SMS_PER_SECOND is TWILIO_FROM's pace: a location's own number goes at its own rate, else
        # at the rate of its kind (reminders.pacing.rate_for).
        rate = book.own_rates.get(location_id) or 0.0
        key = (place.twilio_from, rate)
        with self._lock:
            channels = self._channels_by_sender.get(key)
            if channels is None:
                built = channels_for(place.model_copy(update={"sms_per_second": rate}))
                channels = self._channels_by_sender[key] = {**self.channels, "sms": built["sms"]}
        return channels

    def _send_following(self, outbox_ids: list[int], outcomes: dict[int, str], now: datetime) -> None:
        """The texts that follow those just sent go at once, each its own row claimed on its own
        (a crash between two texts leaves the next one planned and due: the next pass sends it,
        and never the first again)."""
        sent = [outbox_id for outbox_id in outbox_ids if outcomes.get(outbox_id) == "sent"]
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

    def _claim_batch(self, session: Session, outbox_ids: list[int], now: datetime):
        """The breakers, the rows of a paused channel (they go one by one), the others, and those of
        the others this batch won. A lost connection here is tried once more on a fresh one: nothing
        is claimed before the last statement commits, and rows left `queued` would wait for the
        dispatcher's ten-minute requeue."""
        try:
            return self._read_and_claim(session, outbox_ids, now)
        except DBAPIError as exc:
            session.rollback()
            log.warning("claiming a batch of %s row(s) failed (%s); trying once more", len(outbox_ids),
                        type(exc).__name__)
            return self._read_and_claim(session, outbox_ids, now)

    @staticmethod
    def _read_and_claim(session: Session, outbox_ids: list[int], now: datetime):
        state = breakers(session)
        kinds = dict(session.execute(select(OutboxMessage.id, OutboxMessage.channel)
                                     .where(OutboxMessage.id.in_(outbox_ids))
                                     .where(OutboxMessage.kind != Kind.ALERT)).all())
        one_by_one = [i for i in outbox_ids if kinds.get(i) in state and state[kinds[i]].is_open]
        together = [i for i in outbox_ids if i not in set(one_by_one)]
        return state, one_by_one, together, claim_many_for_sending(session, together, now)

    def _send_claimed_batch(self, session: Session, ids: list[int], now: datetime,
                            healthy: dict[str, bool], book: "_Book") -> dict[int, str]:
        try:
            outcomes, ready, later, store = self._prepare_batch(session, ids, now, book)
        except Exception as exc:  # noqa: BLE001 - one row's trouble (or the database's) must not cost the others
            if is_interruption(exc):
                raise
            session.rollback()
            log.exception("a batch of %s row(s) could not be prepared together; sending them one by one", len(ids))
            return {outbox_id: self._send_one_claimed(session, outbox_id, now, False, book=book) for outbox_id in ids}

        paused: set[str] = set()
        clock = _Clock(now)
        # Paced at a long code's 1 a second, a batch could outlast its task's time limit: what is
        # left after BATCH_SECONDS goes back, due, to the next round (or the next pass).
        deadline, handed = time.monotonic() + BATCH_SECONDS, 0
        # Sends are committed in groups: a worker killed before a group's commit leaves its rows in
        # `sending`, which the sweep shows staff as unknown; none is ever sent twice.
        unsaved: list[tuple[OutboxMessage, Patient | None, Receipt]] = []
        last_commit = time.monotonic()
        look_again = last_commit + BREAKER_LOOK_SECONDS  # the batch began with the breakers as they were
        # A text that may have a following one goes after the patient's other texts of the batch,
        # so that nothing of theirs comes between it and its rest (sent once the batch is done).
        ready = sorted(ready, key=lambda item: item[0].kind in SPLIT_KINDS and item[0].kind != Kind.ALERT)
        for row, patient, message in ready:
            if self._needs_introduction(row, patient) and waits_for_welcome(session, patient):
                # Its welcome, earlier in this batch, did not go: the text waits for it (never without HELP/STOP).
                outcomes[row.id] = _hold(session, row, now, WAITING_FOR_WELCOME,
                                         due_at=welcome_wait_until(session, patient, now))
                unsaved.clear()
                continue
            if row.channel in paused and row.kind != Kind.ALERT:
                outcomes[row.id] = _hold(session, row, now, hold_reason(row.channel))  # commits
                unsaved.clear()
                continue
            if handed and time.monotonic() > deadline and row.kind != Kind.ALERT:
                outcomes[row.id] = _hold(session, row, now, "waiting for the sending number's pace")
                unsaved.clear()
                continue
            at = clock.now()
            with sensitive(*patient_values(patient), message.to, message.body, message.subject):
                try:
                    outcome = self._hand_over(session, row, patient, message, at,
                                              healthy.get(row.channel, False), sent=unsaved, book=book)
                except _NotHandedOver:
                    outcome = self._not_handed_over(session, row, unsaved, at)
                except _AfterHandOver as after:
                    outcome = self._after_hand_over_failed(session, row.id, after, at)
                    self._record_again(session, unsaved, at)
                except Exception as exc:  # noqa: BLE001 - recorded on this row; the batch goes on
                    if is_interruption(exc):
                        session.commit()  # the sends of the batch so far are kept
                        raise
                    outcome = self._internal_error(session, row.id, exc, at)
                    self._record_again(session, unsaved, at)
                if (outcome != "sent" or len(unsaved) >= GROUP_COMMIT_SIZE
                        or time.monotonic() - last_commit >= GROUP_COMMIT_SECONDS):
                    self._commit_sends(session, unsaved, at)
                    last_commit = time.monotonic()
            outcomes[row.id] = outcome
            handed += 1
            if outcome == "sent":
                healthy[row.channel] = True
            elif outcome in PROVIDER_TROUBLE:
                healthy[row.channel] = False
                look_again = 0.0  # this failure may have opened the breaker: look at once
            if time.monotonic() >= look_again:
                self._commit_sends(session, unsaved, at)
                # A breaker opened here or by another process: the rest of the batch waits with the others.
                paused |= _open_breakers(self.sessions)
                look_again = time.monotonic() + BREAKER_LOOK_SECONDS
        self._commit_sends(session, unsaved, clock.now())
        for outbox_id in later:
            outcomes[outbox_id] = self._send_one_claimed(session, outbox_id, now, False, store=store, book=book)
        return outcomes

    def _prepare_batch(self, session: Session, ids: list[int], now: datetime, book: "_Book"):
        """Read the batch in a few set-based queries, re-check and render each row, and write every
        rendered text in one commit before the first provider call. Returns the outcomes so far
        (skipped, deferred, ...), the messages ready to go, the rows to send after the batch (their
        patient's welcome first) and the batch's template store."""
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids)).order_by(OutboxMessage.id)).all()
        order = {outbox_id: n for n, outbox_id in enumerate(ids)}
        # A patient's welcome goes before their other texts of the batch (reminders.planning.welcome).
        rows = sorted(rows, key=lambda r: (r.kind != Kind.WELCOME, order[r.id]))
        patients = _by_id(session, Patient, {r.patient_id for r in rows})
        appointments = _by_id(session, Appointment, {r.appointment_id for r in rows},
                              selectinload(Appointment.course))
        facts = _BatchFacts.read(session, rows, appointments.values(), now)
        store = TemplateStore(self.settings.templates_dir, session)  # the versions checked once for the batch
        outcomes: dict[int, str] = {}
        ready: list[tuple[OutboxMessage, Patient | None, OutgoingMessage]] = []
        welcomed_here = {r.patient_id for r in rows if r.kind == Kind.WELCOME}
        # A text to a patient not yet welcomed whose welcome is not in this batch goes on its own
        # after the batch, where the welcome is sent first (send_welcome_first, in its own session).
        later: list[int] = []
        for row in rows:
            patient, appointment = patients.get(row.patient_id), appointments.get(row.appointment_id)
            if self._needs_introduction(row, patient) and patient.id not in welcomed_here:
                later.append(row.id)
                continue
            with sensitive(*patient_values(patient), row.to_address, row.body):
                try:
                    prepared = self._prepare(session, store, row, patient, appointment, now, book, facts)
                except DeliveryError as error:
                    outcomes[row.id] = self._delivery_failed(session, row, patient, error, now)
                    continue
                if isinstance(prepared, str):
                    outcomes[row.id] = prepared
                else:
                    ready.append((row, patient, prepared))
        flag_failures(session, store, now)
        session.commit()  # every row says what is going out before the provider is asked
        return outcomes, ready, later, store

    def _commit_sends(self, session: Session, unsaved: list, now: datetime) -> None:
        """Commit the sends recorded since the last commit. A commit that fails (the database
        ended the session) is tried once more on a fresh connection, the sends recorded again: each
        went to the provider, and a send left unrecorded would be shown to staff as unknown."""
        try:
            session.commit()
        except Exception as exc:  # noqa: BLE001
            if is_interruption(exc):
                raise
            log.warning("committing %s send(s) failed (%s); trying once more", len(unsaved), type(exc).__name__)
            session.rollback()
            self._record_again(session, unsaved, now)
            session.commit()
        unsaved.clear()

    def _not_handed_over(self, session: Session, row: OutboxMessage, unsaved: list, now: datetime) -> str:
        """The database failed just before the provider call: nothing went. The row goes back to
        the schedule, still due; if even that fails, the sweep puts it back (never `unknown`)."""
        session.rollback()
        log.warning("outbox %s: not handed to the provider (the database failed just before); back in the "
                    "schedule", row.id)
        self._record_again(session, unsaved, now)
        try:
            outcome = _hold(session, row, now, NOT_HANDED_OVER)  # commits the sends recorded again too
        except Exception as exc:  # noqa: BLE001 - the sweep releases it (release_unhanded)
            if is_interruption(exc):
                raise
            session.rollback()
            log.warning("outbox %s: could not be put back (%s); the sweep will", row.id, type(exc).__name__)
            outcome = "not_handed"
        unsaved.clear()
        return outcome

    def _record_again(self, session: Session, unsaved: list, now: datetime) -> None:
        """Sends recorded since the last commit went with the rollback of a failed one: record
        them again. If even that fails they stay in `sending`, and staff see them as unknown."""
        try:
            for row, patient, receipt in unsaved:
                self._record_sent(session, row, patient, receipt, now)
        except Exception:  # noqa: BLE001
            session.rollback()
            unsaved.clear()
            log.exception("sends of this batch could not be recorded; they will show as unknown")

    def _prepare(self, session: Session, store: TemplateStore, row: OutboxMessage, patient: Patient | None,
                 appointment: Appointment | None, now: datetime, book: "_Book", facts: "_BatchFacts | None" = None):
        """Decide whether a claimed row still goes, and render it: an outcome (skipped, deferred)
        or the message. Its words and its sender are those of its location: its visit's, now (the
        visit may have moved to another location since the row was planned), else its own. The
        row records both, with what it says, before the provider is asked."""
        location = _location_of(row, appointment)
        sender = getattr(self._channels_at(book, location).get(row.channel), "from_address", None)
        return self._prepare_at(session, store, row, patient, appointment, now, book.settings_for(location),
                                _From(location, (sender or "")[:64]), facts)

    def _prepare_at(self, session: Session, store: TemplateStore, row: OutboxMessage, patient: Patient | None,
                    appointment: Appointment | None, now: datetime, where: Settings, sender: "_From",
                    facts: "_BatchFacts | None" = None):
        spec = spec_for(row.channel)
        if row.part > 1:
            return self._prepare_following(session, row, patient, appointment, now, where, sender)
        reason = self._reason_for_another_channel(session, row, spec, patient, now)
        if reason:
            plan_fallback_twin(session, row, patient, now)
            return self._finish_unsent(row, reason, now)
        if row.kind == Kind.REPLY and spec.is_text and patient is not None and patient.sms_opted_out:
            # A written answer planned before the patient opted out (held for quiet hours) stays unsent.
            return self._finish_unsent(row, "patient opted out of texts", now)
        if row.kind not in UNGATED_KINDS:
            reason = self._reason_not_to_send(session, row, appointment, now, facts)
            if reason:
                return self._finish_unsent(row, reason, now)
            if spec.is_text and patient is not None and patient.sms_opted_out:
                plan_fallback_twin(session, row, patient, now)
                return self._finish_unsent(row, "patient opted out of texts", now)
            if self._held_for_quiet_hours(row, patient, now, where):
                return "deferred"
            if row.kind in PAUSED_IN_A_CRISIS and patient is not None and crisis_open(session, patient.id):
                # No "how is your mood 0 to 10?" to a patient a nurse is reaching out to now.
                moves.defer(row, now + CRISIS_PAUSE_RECHECK, "paused while a crisis escalation is open")
                return "deferred"
            waiting = open_questions.waits_until(session, self.settings, row, now)  # one number asked at a time
            if waiting is not None:
                moves.defer(row, waiting, open_questions.WAITING)
                return "deferred"
            if gives_way(session, row, self.rule_settings.texts_per_visit):
                return self._finish_unsent(row, OVER_BUDGET, now)
            reason = self._introduce(session, row, patient, now)
            if reason == WAITING_FOR_WELCOME:  # held, not tried: its try is not counted
                moves.defer(row, welcome_wait_until(session, patient, now), reason)
                row.attempts = max(row.attempts - 1, 0)
                return "deferred"
            if reason:
                return self._finish_unsent(row, reason, now)
        extra = {}
        if row.kind == Kind.QUESTIONNAIRE and patient is not None:
            extra = questionnaire_for_message(session, where, row.rule, patient, appointment, spec, now)
            if isinstance(extra, str):
                return self._finish_unsent(row, extra, now)
        if row.kind == Kind.CHECKIN and not spec.is_text and patient is not None:
            extra = checkin_links.for_message(session, where, row, patient, now)  # its answer page
        message = self._render_row(store, row, patient, appointment, where, extra)
        parts = [message.body]
        if self._may_split(row, spec):
            parts = text_parts(message.body) or [message.body]
            message = replace(message, body=parts[0])
        sender.write_on(row)  # with the words: one UPDATE of the row, not a second
        moves.write_rendered(row, to=message.to, subject=message.subject, body=message.body,
                             segments=sms_length(message.body).segments if spec.counts_segments else row.segments)
        if self._may_split(row, spec):
            # The texts after this one are planned now, with its own words, before the provider is asked.
            plan_following_parts(session, row, parts[1:], [sms_length(part).segments for part in parts[1:]], now)
        return message

    def _held_for_quiet_hours(self, row: OutboxMessage, patient: Patient | None, now: datetime,
                              where: Settings) -> bool:
        """Deferred to the end of the patient's quiet hours, in their own zone, when `now` is in them."""
        zone = patient.timezone if patient else where.clinic_timezone
        quiet = self.rule_settings.quiet
        if not quiet.contains(now, zone):
            return False
        moves.defer(row, quiet.next_allowed(now, zone), "waiting for the end of quiet hours")
        return True

    def _may_split(self, row: OutboxMessage, spec) -> bool:
        """Whether this row's text goes as several when it does not fit one: a rule's text (never
        a written one) of a kind that may, on a channel billed by segments."""
        return spec.counts_segments and row.kind in SPLIT_KINDS and row.rule in rules_by_name(self.rule_settings)

    def _prepare_following(self, session: Session, row: OutboxMessage, patient: Patient | None,
                           appointment: Appointment | None, now: datetime, where: Settings, sender: "_From"):
        """A text that follows another (the rest of a message too long for one): it goes once the
        one before it went, with the words written when that one was rendered; it is canceled or
        skipped with it, and waits while it waits."""
        before = session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == previous_part_key(row)))
        if before is None or before.status in (Status.CANCELED, Status.SKIPPED, Status.FAILED, Status.UNKNOWN):
            moves.mark_unsent_with(row, before)
            return "skipped"
        if before.status not in HANDED_OVER:
            moves.defer(row, max(now + FOLLOWING_RECHECK, before.due_at), f"waiting for text {before.id} to go first")
            return "deferred"
        if appointment is not None and appointment.status == "canceled":
            return self._finish_unsent(row, moves.VISIT_CANCELED, now)
        if patient is not None and patient.sms_opted_out:
            return self._finish_unsent(row, "patient opted out of texts", now)
        if self._held_for_quiet_hours(row, patient, now, where):
            return "deferred"
        callback = None
        if spec_for(row.channel).reports_delivery and self.settings.public_base_url:
            callback = f"{self.settings.public_base_url.rstrip('/')}/twilio/status?outbox_id={row.id}"
        sender.write_on(row)
        return OutgoingMessage(to=row.to_address or before.to_address, body=row.body, status_callback=callback,
                               reference=str(row.id))

    def _reason_for_another_channel(self, session: Session, row: OutboxMessage, spec, patient: Patient | None,
                                    now: datetime) -> str | None:
        """Why this row goes by its channel's fallback instead: the channel is switched off, or it is
        free-form text outside the channel's window (WhatsApp's 24 hours since the patient wrote)."""
        if patient is None or not spec.fallback:
            return None
        instead = spec_for(spec.fallback).words
        if row.channel not in self.channels:
            return f"{spec.words}s are switched off: sent as {instead} instead"
        if row.kind == Kind.REPLY and not within_free_form_window(
                spec, last_inbound_at(session, patient.id, row.channel), now):
            hours = spec.free_form_window.total_seconds() / 3600
            return f"more than {hours:.0f} h since the patient last wrote by {spec.words}: sent as {instead} instead"
        return None

    def _render_row(self, store: TemplateStore, row: OutboxMessage, patient: Patient | None,
                    appointment: Appointment | None, where: Settings, extra: dict | None = None) -> OutgoingMessage:
        """The message one row sends, in its location's words (`where`: its settings). `extra`:
        context of the row's own kind (a questionnaire's link)."""
        rules = rules_by_name(self.rule_settings)
        return self._compose(store, row, patient, appointment, rules.get(row.rule), where, extra or {})

    @staticmethod
    def _needs_introduction(row: OutboxMessage, patient: Patient | None) -> bool:
        """A text that must wait for the patient's welcome text to go first."""
        return (spec_for(row.channel).is_text and row.kind not in (*UNGATED_KINDS, Kind.WELCOME)
                and patient is not None and patient.welcomed_at is None)

    def _introduce(self, session: Session, row: OutboxMessage, patient: Patient | None, now: datetime) -> str | None:
        """The welcome text (its own row, reminders.planning.welcome): it goes once, and before the
        patient's first other text. Returns why a welcome row is not sent."""
        if row.kind == Kind.WELCOME:
            return reason_not_to_welcome(patient)
        if self._needs_introduction(row, patient):
            send_welcome_first(session, patient, now, self.send)
            if waits_for_welcome(session, patient):  # it could not go (an outage): this text waits, held
                return WAITING_FOR_WELCOME
        return None

    def _send_claimed(self, session: Session, row: OutboxMessage, now: datetime, *, provider_healthy: bool = False,
                      store: TemplateStore | None = None, book: "_Book | None" = None) -> str:
        patient = session.get(Patient, row.patient_id) if row.patient_id else None
        appointment = session.get(Appointment, row.appointment_id) if row.appointment_id else None
        store = store or TemplateStore(self.settings.templates_dir, session)
        book = book or self._book(session)
        message = self._prepare(session, store, row, patient, appointment, now, book)
        if isinstance(message, str):
            return message
        flag_failures(session, store, now)  # a staff template that failed: the default went, admins see it
        session.commit()  # the row says what is going out before the provider is asked

        with sensitive(message.to, message.body, message.subject):
            return self._hand_over(session, row, patient, message, now, provider_healthy, book=book)

    def _hand_over(self, session: Session, row: OutboxMessage, patient: Patient | None, message: OutgoingMessage,
                   now: datetime, provider_healthy: bool, sent: list | None = None, book: "_Book | None" = None) -> str:
        if row.kind in UNGATED_KINDS:
            message = replace(message, urgent=True)  # paced ahead of reminders (reminders.pacing)
        channels = self._channels_at(book, row.location_id) if book is not None else self.channels
        channel, clock = channels[row.channel], _Clock(now)
        try:
            reserve = getattr(channel, "reserve", None)
            if reserve is not None:  # the wait for the sending number's pace comes before the record
                reserve(message)
                message = replace(message, slot_reserved=True)
            # In flight only now, just before its own provider call: a worker stopped before this
            # point leaves the row to go back to the schedule, never to "unknown".
            if not self._mark_in_flight(session, row, clock.now()):
                log.warning("outbox %s: no longer this worker's claim; left to whoever has it", row.id)
                return "not_claimed"
            receipt = channel.send(message)
        except DeliveryError as error:
            # The provider's trouble, not this message's (a code worth a few tries, such as a phone
            # switched off, is the number's trouble: it must not pause texts for everyone).
            # Timed from the answer (or the timeout), not from when the send began.
            if not error.permanent and error.max_attempts is None:
                record_failure(session, self.settings, row.channel, clock.now(), str(error),
                               _seconds(error.retry_after))
            return self._delivery_failed(session, row, patient, error, clock.now())
        except _NotHandedOver:
            raise
        except Exception as exc:  # noqa: BLE001 - not a provider answer: it may or may not have gone
            raise _AfterHandOver(None) from exc
        now = clock.now()
        try:
            if not provider_healthy and record_success(session, row.channel, now):
                # A paused channel answers again (its probe went): rows held meanwhile can go now.
                self.provider_recovered = True  # a flag for the caller (reminders.tasks)
            self._record_sent(session, row, patient, receipt, now)
        except Exception as exc:  # noqa: BLE001 - the provider has it: whatever failed here, never send again
            raise _AfterHandOver(receipt) from exc
        if sent is not None:
            sent.append((row, patient, receipt))
        log.info("outbox %s: sent %s %s via %s", row.id, row.rule, row.kind, row.channel)
        return "sent"

    @staticmethod
    def _mark_in_flight(session: Session, row: OutboxMessage, now: datetime) -> bool:
        try:
            return moves.mark_in_flight(session, row, now)
        except Exception as exc:  # noqa: BLE001 - the provider was not called: the row can go back
            if is_interruption(exc):
                raise
            raise _NotHandedOver() from exc

    def _record_sent(self, session: Session, row: OutboxMessage, patient: Patient | None, receipt: Receipt,
                     now: datetime) -> None:
        moves.mark_sent(session, row, receipt.provider_id, receipt.status, now)
        if row.kind == Kind.WELCOME and patient is not None:
            _record(session, patient, Patient, welcomed_at=now)
        if asks_for_a_score(row.kind, row.rule, row.channel) and patient is not None:
            appointment = session.get(Appointment, row.appointment_id) if row.appointment_id else None
            session.add(CheckIn(patient_id=patient.id, appointment_id=row.appointment_id,
                                prompt_outbox_id=row.id, status="awaiting", prompted_at=now,
                                kind=checkin_kind(appointment)))
            session.flush()

    def _settle_after_hand_over(self, session: Session, row: OutboxMessage, receipt: Receipt | None,
                                now: datetime) -> str:
        """An error after the provider was called. Accepted: the row is sent (the details that
        failed to record are in the log). Unclear: `unknown` for staff, as when the provider stops
        answering mid-send; a staff crisis alert is tried again (a second alert beats none)."""
        if receipt is not None:
            moves.mark_sent_unrecorded(row, receipt.provider_id, receipt.status, now)
            return "sent"
        if row.kind == Kind.ALERT:
            return self._retry_or_fail(session, row, now, "unexpected error during the send", code="internal",
                                       max_attempts=self.settings.send_max_attempts)
        moves.mark_unknown(row, "an unexpected error during the send; check before resending", "internal")
        return "unknown"

    def _reason_not_to_send(self, session: Session, row: OutboxMessage, appointment: Appointment | None,
                            now: datetime, facts: "_BatchFacts | None" = None) -> str | None:
        if appointment is None:
            return None
        facts = facts or _BatchFacts.read(session, [row], [appointment], now)  # a batch of one
        facts_now = SendFacts(
            status=appointment.status,
            starts_at=appointment.starts_at,
            next_visit_starts_at=facts.next_visit_start(appointment),
            superseded=facts.superseded(row),
            overdue_by=now - row.planned_for,
        )
        return reason_not_to_send(row.kind, row.rule, facts_now, now)

    def _compose(self, store: TemplateStore, row: OutboxMessage, patient: Patient | None,
                 appointment: Appointment | None, rule: Rule | None, where: Settings,
                 extra: dict | None = None) -> OutgoingMessage:
        spec = spec_for(row.channel)
        callback = None
        if spec.reports_delivery and self.settings.public_base_url:
            callback = f"{self.settings.public_base_url.rstrip('/')}/twilio/status?outbox_id={row.id}"
        to = row.to_address
        if not to and patient is not None:
            to = getattr(patient, spec.contact)
        if not to:
            raise DeliveryError(f"no {row.channel} address on file", permanent=True, code="no_address")
        if row.body is not None and rule is None:  # written when planned: staff alerts, replies
            return OutgoingMessage(to=to, body=row.body, subject=row.subject, status_callback=callback, reference=str(row.id))
        if rule is None:
            raise DeliveryError(f"no rule named {row.rule!r}", permanent=True, code="unknown_rule")
        series = appointment.course.induction_sessions_planned if appointment and appointment.course else where.induction_series_length
        names = message_templates(store, rule.template, patient.language if patient else None, spec)
        language = template_language(names["text"] if spec.has_subject else names["body"])
        context = message_context(where, patient, appointment, series, language) | (extra or {})
        if rule.name == MISSED_VISIT and appointment is not None and patient is not None:
            context["next_visit"] = next_visit_context(where, patient, appointment, language)
        if not spec.has_subject:
            return OutgoingMessage(to=to, body=render(store, names["body"], context, keep_break=self._may_split(row, spec)),
                                   status_callback=callback, reference=str(row.id))
        attachments = ()
        if appointment is not None and rule.kind == REMINDER and spec.carries_calendar:
            attachments = (self._calendar_entry(appointment, language, where),)
        return OutgoingMessage(
            to=to,
            subject=render(store, names["subject"], context),
            body=render(store, names["text"], context),
            html=render(store, names["html"], context) if names["html"] else None,
            attachments=attachments,
            reference=str(row.id),
        )

    @staticmethod
    def _calendar_entry(appointment: Appointment, language: str, where: Settings) -> Attachment:
        title, description = visit_words(where.clinic_name, where.clinic_phone, language)
        data = visit_ics(
            uid=f"appointment-{appointment.id}@clinic-reminders",
            starts_at=appointment.starts_at,
            ends_at=appointment.ends_at,
            summary=title,
            location=appointment.location or where.clinic_address,
            description=description,
        )
        return Attachment("visit.ics", "text/calendar", data)

    def _finish_unsent(self, row: OutboxMessage, reason: str, now: datetime) -> str:
        moves.mark_unsent(row, reason)
        return "skipped"

    def _delivery_failed(self, session: Session, row: OutboxMessage, patient: Patient | None,
                         error: DeliveryError, now: datetime) -> str:
        if error.maybe_sent and row.kind != Kind.ALERT:
            # Sending again could text the patient twice; a person decides. (A staff alert is
            # retried: a second alert is better than none.)
            moves.mark_unknown(row, "the provider stopped answering during the send; check before resending",
                               error.code, str(error))
            log.warning("outbox %s: outcome unknown (code %s)", row.id, error.code)
            return "unknown"
        if not error.permanent:
            return self._retry_or_fail(session, row, now, str(error), code=error.code,
                                       retry_after=_seconds(error.retry_after), max_attempts=error.max_attempts)
        moves.mark_failed(row, "the provider refused it for good", error.code, str(error))
        log.warning("outbox %s: permanent failure (code %s)", row.id, error.code)
        if patient is not None:
            plan_fallback_twin(session, row, patient, now)
        return "failed"

    def _retry_or_fail(self, session: Session, row: OutboxMessage, now: datetime, reason: str, code: str | None,
                       retry_after: timedelta | None = None, max_attempts: int | None = None) -> str:
        """Try again later (reminders.outbox.moves.retry_or_fail). A provider's trouble (an outage,
        429, bad credentials) is retried for as long as the message can still do its job; our own
        (an internal error) at most SEND_MAX_ATTEMPTS times, a code the provider says is worth only
        a few tries at most that many."""
        visit = session.get(Appointment, row.appointment_id) if row.appointment_id else None
        return moves.retry_or_fail(row, now, reason, code, visit_starts_at=visit.starts_at if visit else None,
                                   retry_after=retry_after, max_attempts=max_attempts)


@dataclass(frozen=True)
class _Book:
    """A batch's locations (reminders.locations), and the pace each location set for its number."""

    book: LocationBook
    own_rates: dict[int, float | None]

    @property
    def several(self) -> bool:
        return self.book.several

    def settings_for(self, location_id: int | None) -> Settings:
        return self.book.settings_for(location_id)


@dataclass(frozen=True)
class _From:
    """Where a message goes out for and from: its location and that location's sender."""

    location_id: int | None
    address: str

    def write_on(self, row: OutboxMessage) -> None:
        if row.location_id != self.location_id:
            row.location_id = self.location_id
        if row.from_address != self.address:  # a following text was planned with its sender
            row.from_address = self.address


def _location_of(row: OutboxMessage, appointment: Appointment | None) -> int | None:
    """A row's location: its visit's when it has one, else its own (a welcome, a staff alert)."""
    return appointment.location_id if appointment is not None else row.location_id


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


class _NotHandedOver(Exception):
    """The database failed just before the provider call (recording the row in flight): nothing went."""


class _Clock:
    """A batch's (or a send's) `now`, moved on by the whole seconds spent since: a batch paced at
    a long code's pace, or waiting out provider timeouts, runs for a minute, and a breaker opened
    from its start time would be over before it opened."""

    def __init__(self, start: datetime):
        self._start, self._began = start, time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=int(time.monotonic() - self._began))


class _AfterHandOver(Exception):
    """Raised once the provider was called: with its receipt when it accepted the message."""

    def __init__(self, receipt: Receipt | None):
        super().__init__("error after the provider was called")
        self.receipt = receipt


def _record(session: Session, obj, model, **values) -> None:
    """UPDATE one row by id (a patient), and let the loaded object show the same values without a reload."""
    session.execute(update(model).where(model.id == obj.id).values(**values)
                    .execution_options(synchronize_session=False))
    for key, value in values.items():
        set_committed_value(obj, key, value)


def _by_id(session: Session, model, ids: set, *options) -> dict:
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    return {obj.id: obj for obj in session.scalars(select(model).where(model.id.in_(ids)).options(*options))}


def _open_breakers(sessions: sessionmaker[Session]) -> set[str]:
    """The channels paused now, read in a session of its own: a look that fails (the database ended
    the connection) sees none and leaves the batch's session and rows as they were; the batch goes
    on, and its next send records a failure of its own if the provider is down."""
    try:
        with sessions() as look:
            return set(breakers(look, only_open=True))
    except Exception as exc:  # noqa: BLE001 - a look, nothing to record
        if is_interruption(exc):
            raise
        log.warning("could not look at the providers' breakers (%s); the batch goes on", type(exc).__name__)
        return set()


def _hold(session: Session, row: OutboxMessage, now: datetime, reason: str, due_at: datetime | None = None) -> str:
    moves.hold(session, row, now, reason, due_at=due_at)
    return "held"


@dataclass
class _BatchFacts:
    """The re-check facts of a batch (or of one row), read in two queries instead of two per row."""

    visits_by_patient: dict[int, list[tuple[datetime, int]]]
    later_reminders: dict[tuple[int, str], list[tuple[datetime, int]]]

    @classmethod
    def read(cls, session: Session, rows, appointments, now: datetime) -> "_BatchFacts":
        patient_ids = {a.patient_id for a in appointments}
        visits: dict[int, list[tuple[datetime, int]]] = {}
        if patient_ids:
            for patient_id, starts_at, appointment_id in session.execute(
                    select(Appointment.patient_id, Appointment.starts_at, Appointment.id)
                    .where(Appointment.patient_id.in_(patient_ids), Appointment.status != "canceled")):
                visits.setdefault(patient_id, []).append((starts_at, appointment_id))
        reminders: dict[tuple[int, str], list[tuple[datetime, int]]] = {}
        appointment_ids = {r.appointment_id for r in rows if r.kind == REMINDER and r.appointment_id is not None}
        if appointment_ids:
            for appointment_id, channel, planned_for, outbox_id in session.execute(
                    select(OutboxMessage.appointment_id, OutboxMessage.channel, OutboxMessage.planned_for, OutboxMessage.id)
                    .where(OutboxMessage.appointment_id.in_(appointment_ids), OutboxMessage.kind == REMINDER,
                           OutboxMessage.planned_for <= now, OutboxMessage.status.not_in((Status.CANCELED, Status.SKIPPED)))):
                reminders.setdefault((appointment_id, channel), []).append((planned_for, outbox_id))
        return cls(visits, reminders)

    def next_visit_start(self, appointment: Appointment) -> datetime | None:
        later = [starts for starts, other in self.visits_by_patient.get(appointment.patient_id, ())
                 if other != appointment.id and starts > appointment.starts_at]
        return min(later, default=None)

    def superseded(self, row: OutboxMessage) -> bool:
        """When several reminders for one visit are overdue at once, only the latest one goes: a
        later reminder of the same visit and channel is due too."""
        if row.kind != REMINDER:
            return False
        return any(other != row.id and planned > row.planned_for
                   for planned, other in self.later_reminders.get((row.appointment_id, row.channel), ()))
