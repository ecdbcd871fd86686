"""A batch of queued rows: claimed in one statement, read in a few set-based queries, every text
rendered and written in one commit, then handed over row after row, the sends committed in groups.
A breaker opened here or in another process stops the batch in hand: its other rows go back."""
from __future__ import annotations

import logging
import time
from datetime import datetime
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from reminders.channels import DeliveryError, OutgoingMessage, Receipt
from reminders.interruptions import is_interruption
from reminders.logs import patient_values, sensitive
from reminders.models import Appointment, OutboxMessage, Patient
from reminders.models.outbox import PENDING_STATUSES, Kind, ReasonCode
from reminders.outbox.moves import claim_many_for_sending, queue_now
from reminders.outbox.welcome import WAITING_FOR_WELCOME, waits_for_welcome, welcome_key, welcome_wait_until
from reminders.provider_health import breakers, hold_reason
from reminders.rendering import TemplateStore, flag_failures
from reminders.sending.compose import SPLIT_KINDS
from reminders.sending.gate import BatchFacts, needs_introduction
from reminders.sending.handover import Clock, delivery_failed, hold
from reminders.sending.numbers import Book
from reminders.sending.outcomes import PROVIDER_TROUBLE, AfterHandOver, NotHandedOver, SendOutcome
from reminders.sending.records import commit_sends, not_handed_over, record_again

log = logging.getLogger("reminders.sending")

# Sends are committed together, this many or this often, whichever comes first.
GROUP_COMMIT_SIZE = 25
GROUP_COMMIT_SECONDS = 0.25
# The longest a batch hands messages over (pacing makes them wait); well inside a task's limit.
BATCH_SECONDS = 60.0
# A batch looks at the breakers this often, so that a pause another process opened stops it too.
BREAKER_LOOK_SECONDS = 1.0


def claim_batch(session: Session, outbox_ids: list[int], now: datetime):
    """The breakers, the rows of a paused channel (they go one by one), the others, and those of
    the others this batch won. A lost connection here is tried once more on a fresh one: nothing
    is claimed before the last statement commits, and rows left `queued` would wait for the
    dispatcher's ten-minute requeue."""
    try:
        return _read_and_claim(session, outbox_ids, now)
    except DBAPIError as exc:
        session.rollback()
        log.warning("claiming a batch of %s row(s) failed (%s); trying once more", len(outbox_ids),
                    type(exc).__name__)
        return _read_and_claim(session, outbox_ids, now)


def _read_and_claim(session: Session, outbox_ids: list[int], now: datetime):
    state = breakers(session)
    kinds = dict(session.execute(select(OutboxMessage.id, OutboxMessage.channel)
                                 .where(OutboxMessage.id.in_(outbox_ids))
                                 .where(OutboxMessage.kind != Kind.ALERT)).all())
    one_by_one = [i for i in outbox_ids if kinds.get(i) in state and state[kinds[i]].is_open]
    together = [i for i in outbox_ids if i not in set(one_by_one)]
    return state, one_by_one, together, claim_many_for_sending(session, together, now)


def send_claimed_batch(sender, session: Session, ids: list[int], now: datetime,
                       healthy: dict[str, bool], book: Book) -> dict[int, str]:
    """A claimed batch sent by `sender` (a reminders.sending.Sender): prepared together, else
    one by one when that fails."""
    try:
        outcomes, ready = prepare_batch(sender, session, ids, now, book)
    except Exception as exc:  # noqa: BLE001 - one row's trouble (or the database's) must not cost the others
        if is_interruption(exc):
            raise
        session.rollback()
        log.exception("a batch of %s row(s) could not be prepared together; sending them one by one", len(ids))
        return {outbox_id: sender.send_one_claimed(session, outbox_id, now, False, book=book) for outbox_id in ids}
    outcomes.update(BatchRun(sender, session, now, healthy, book).send(ready))
    return outcomes


def claim_missing_welcomes(session: Session, rows, patients: dict, now: datetime) -> list[int]:
    """The pending welcomes of patients with a text in the batch but not their welcome: queued now
    and claimed into this batch, where they go first. A welcome another worker is sending is not
    taken, and not waited for (a worker that died mid-send would keep the texts waiting until the
    sweep): it is on its way, and is never sent twice."""
    welcomed_here = {r.patient_id for r in rows if r.kind == Kind.WELCOME}
    keys = {welcome_key(patients[r.patient_id]) for r in rows
            if needs_introduction(r, patients.get(r.patient_id)) and r.patient_id not in welcomed_here}
    if not keys:
        return []
    pending = list(session.scalars(select(OutboxMessage.id).where(
        OutboxMessage.dedupe_key.in_(sorted(keys)), OutboxMessage.status.in_(PENDING_STATUSES))))
    queue_now(session, pending, now)  # planned -> queued, due now; a queued one stays queued
    return sorted(claim_many_for_sending(session, pending, now))


def prepare_batch(sender, session: Session, ids: list[int], now: datetime, book: Book):
    """Read the batch in a few set-based queries, re-check and render each row, and write every
    rendered text in one commit before the first provider call. Returns the outcomes so far
    (skipped, deferred, held, ...) and the messages ready to go."""
    rows = session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids)).order_by(OutboxMessage.id)).all()
    patients = _by_id(session, Patient, {r.patient_id for r in rows})
    welcomes = claim_missing_welcomes(session, rows, patients, now)
    if welcomes:
        rows = [*rows, *session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(welcomes)))]
        ids = [*ids, *welcomes]
    order = {outbox_id: n for n, outbox_id in enumerate(ids)}
    # A patient's welcome goes before their other texts of the batch (reminders.outbox.welcome).
    rows = sorted(rows, key=lambda r: (r.kind != Kind.WELCOME, order[r.id]))
    appointments = _by_id(session, Appointment, {r.appointment_id for r in rows}, selectinload(Appointment.course))
    facts = BatchFacts.read(session, rows, appointments.values(), now)
    store = TemplateStore(sender.settings.templates_dir, session)  # the versions checked once for the batch
    outcomes: dict[int, str] = {}
    ready: list[tuple[OutboxMessage, Patient | None, OutgoingMessage]] = []
    welcomed_here = {r.patient_id for r in rows if r.kind == Kind.WELCOME}
    for row in rows:
        patient, appointment = patients.get(row.patient_id), appointments.get(row.appointment_id)
        if (needs_introduction(row, patient) and patient.id not in welcomed_here
                and waits_for_welcome(session, patient)):  # its welcome could not be claimed here, nor has it gone
            outcomes[row.id] = hold(session, row, now, WAITING_FOR_WELCOME, code=ReasonCode.WAITING_FOR_WELCOME,
                                    due_at=welcome_wait_until(session, patient, now))
            continue
        with sensitive(*patient_values(patient), row.to_address, row.body):
            try:
                prepared = sender.prepare(session, store, row, patient, appointment, now, book, facts)
            except DeliveryError as error:
                outcomes[row.id] = delivery_failed(session, sender.settings, row, patient, error, now)
                continue
            if isinstance(prepared, str):
                outcomes[row.id] = prepared
            else:
                ready.append((row, patient, prepared))
    flag_failures(session, store, now)
    session.commit()  # every row says what is going out before the provider is asked
    return outcomes, ready


class BatchRun:
    """The rendered messages of a batch handed over one after the other. Paced at a long code's
    1 a second, a batch could outlast its task's time limit: what is left after BATCH_SECONDS goes
    back, due, to the next round (or the next pass). Sends are committed in groups: a worker
    killed before a group's commit leaves its rows in `sending`, which the sweep shows staff as
    unknown; none is ever sent twice."""

    def __init__(self, sender, session: Session, now: datetime, healthy: dict[str, bool], book: Book):
        self.sender, self.session, self.start, self.healthy, self.book = sender, session, now, healthy, book
        self.paused: set[str] = set()
        self.clock = Clock(now)
        self.deadline, self.handed = time.monotonic() + BATCH_SECONDS, 0
        self.unsaved: list[tuple[OutboxMessage, Patient | None, Receipt]] = []
        self.last_commit = time.monotonic()
        self.look_again = self.last_commit + BREAKER_LOOK_SECONDS  # the batch began with the breakers as they were

    def send(self, ready: list[tuple[OutboxMessage, Patient | None, OutgoingMessage]]) -> dict[int, str]:
        outcomes: dict[int, str] = {}
        # A text that may have a following one goes after the patient's other texts of the batch,
        # so that nothing of theirs comes between it and its rest (sent once the batch is done).
        ready = sorted(ready, key=lambda item: item[0].kind in SPLIT_KINDS and item[0].kind != Kind.ALERT)
        for row, patient, message in ready:
            outcome = self._held(row, patient)
            if outcome is None:
                outcome, at = self._hand_over(row, patient, message)
                self._counted(row, outcome, at)
            outcomes[row.id] = outcome
        commit_sends(self.session, self.unsaved, self.clock.now())
        return outcomes

    def _held(self, row: OutboxMessage, patient: Patient | None) -> str | None:
        """A row that does not go in this batch after all, back in the schedule: its welcome,
        earlier in this batch, did not go (never without HELP/STOP); its provider paused; the
        batch's time is up."""
        session, now = self.session, self.start
        if needs_introduction(row, patient) and waits_for_welcome(session, patient):
            outcome = hold(session, row, now, WAITING_FOR_WELCOME, due_at=welcome_wait_until(session, patient, now),
                           code=ReasonCode.WAITING_FOR_WELCOME)
        elif row.channel in self.paused and row.kind != Kind.ALERT:
            outcome = hold(session, row, now, hold_reason(row.channel), code=ReasonCode.PROVIDER_PAUSED)  # commits
        elif self.handed and time.monotonic() > self.deadline and row.kind != Kind.ALERT:
            outcome = hold(session, row, now, "waiting for the sending number's pace")
        else:
            return None
        self.unsaved.clear()
        return outcome

    def _hand_over(self, row: OutboxMessage, patient: Patient | None,
                   message: OutgoingMessage) -> tuple[str, datetime]:
        session, sender, unsaved, at = self.session, self.sender, self.unsaved, self.clock.now()
        with sensitive(*patient_values(patient), message.to, message.body, message.subject):
            try:
                outcome = sender.hand_over(session, row, patient, message, at, self.healthy.get(row.channel, False),
                                           sent=unsaved, book=self.book)
            except NotHandedOver:
                outcome = not_handed_over(session, row, unsaved, at)
            except AfterHandOver as after:
                outcome = sender.after_hand_over_failed(session, row.id, after, at)
                record_again(session, unsaved, at)
            except Exception as exc:  # noqa: BLE001 - recorded on this row; the batch goes on
                if is_interruption(exc):
                    session.commit()  # the sends of the batch so far are kept
                    raise
                outcome = sender.internal_error(session, row.id, exc, at)
                record_again(session, unsaved, at)
            if (outcome != SendOutcome.SENT or len(unsaved) >= GROUP_COMMIT_SIZE
                    or time.monotonic() - self.last_commit >= GROUP_COMMIT_SECONDS):
                commit_sends(session, unsaved, at)
                self.last_commit = time.monotonic()
        return outcome, at

    def _counted(self, row: OutboxMessage, outcome: str, at: datetime) -> None:
        """The provider's health as this send showed it; a look at the breakers when it is time."""
        self.handed += 1
        if outcome == SendOutcome.SENT:
            self.healthy[row.channel] = True
        elif outcome in PROVIDER_TROUBLE:
            self.healthy[row.channel] = False
            self.look_again = 0.0  # this failure may have opened the breaker: look at once
        if time.monotonic() >= self.look_again:
            commit_sends(self.session, self.unsaved, at)
            # A breaker opened here or by another process: the rest of the batch waits with the others.
            self.paused |= open_breakers(self.sender.sessions)
            self.look_again = time.monotonic() + BREAKER_LOOK_SECONDS


def open_breakers(sessions: sessionmaker[Session]) -> set[str]:
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


def _by_id(session: Session, model, ids: set, *options) -> dict:
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    return {obj.id: obj for obj in session.scalars(select(model).where(model.id.in_(ids)).options(*options))}
