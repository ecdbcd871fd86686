"""Handing queued outbox rows to whoever sends them: this process, or the Celery workers.

A process chooses its dispatcher once, when it starts (`reminders.celery_app.dispatcher_for`): the
web app keeps it in `app.extensions`, the worker builds it from its own Celery app, `reminders
tick` always sends in process. Every caller that has rows to send (the scheduler's pass, the webhook's crisis alerts)
goes through it, so no caller needs to know whether Celery is there.

Rows are `queued` in the database before they are handed off; the database stays the schedule.
A hand-off that fails puts its rows back to `planned`, still due, so the next pass (within a
minute) takes them again, and urgent rows (crisis alerts to staff) are sent in this process at
once instead of waiting for the broker to come back.

Urgent rows (staff alerts) go one to a task, on a queue of their own that a consumer of their
own takes (reminders.alert_queue), so an alert never waits behind reminders and an SMS alert and
an email alert never wait for each other. A live broker is not taken as a live worker: an urgent
row no worker has claimed within
ALERT_CLAIM_WAIT is sent by the process that handed it out (the claim is a conditional UPDATE,
so a worker that wakes up meanwhile and this process never both send it).
"""
from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Iterable, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from reminders.alert_queue import ALERT_QUEUE
from reminders.channels import Channel, channels_for
from reminders.config import Settings
from reminders.db import session_factory
from reminders.models import OutboxMessage
from reminders.models.outbox import Status
from reminders.outbox.moves import queue_now, release_to_planned
from reminders.sending import Sender

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)

SEND_BATCH_TASK = "reminders.tasks.send_batch"
# Ids per Celery task: small enough that a killed worker leaves few rows for the sweep, large
# enough that a backlog of thousands is a few hundred tasks.
BATCH_SIZE = 20
# Rows sent together in this process: one claim and one commit of rendered texts per batch.
IN_PROCESS_BATCH_SIZE = 100
# An urgent row (a crisis alert) still unclaimed this long after its hand-off: no worker is taking
# work, and the process that handed it out sends it itself.
ALERT_CLAIM_WAIT = 5.0


class Dispatcher(Protocol):
    """Sends rows already `queued` in the database. Returns outcomes counted (sent, queued, ...)."""

    def hand_off(self, ids: list[int], now: datetime, *, urgent: bool = False) -> Counter: ...


class InProcessDispatcher:
    """Sends in the calling thread: `reminders tick`, `reminders run` without a broker, tests."""

    def __init__(self, sender: Sender):
        self.sender = sender

    def hand_off(self, ids: list[int], now: datetime, *, urgent: bool = False) -> Counter:
        # Each sending number's rows in batches of their own, the numbers side by side.
        outcomes = self.sender.send_backlog(ids, now, IN_PROCESS_BATCH_SIZE) if ids else Counter()
        # The texts that went right after the one before them (the rest of a long text) count too.
        outcomes.update(self.sender.following_outcomes)
        self.sender.following_outcomes.clear()
        return outcomes


class CeleryDispatcher:
    """Hands rows to the workers of one Celery app (the one built from the settings)."""

    def __init__(self, app: "Celery", sessions: sessionmaker[Session], fallback: InProcessDispatcher):
        self.app = app
        self.sessions = sessions
        self.fallback = fallback

    def hand_off(self, ids: list[int], now: datetime, *, urgent: bool = False) -> Counter:
        outcomes: Counter = Counter()
        handed: list[int] = []
        for batch in self._batches(ids, urgent):
            route = {"queue": ALERT_QUEUE} if urgent else {"priority": 5}
            try:
                self.app.send_task(SEND_BATCH_TASK, args=[batch], **route)
            except Exception as error:  # noqa: BLE001 - any broker failure: the rows must not sit queued
                outcomes.update(self._handed_off_failed(batch, now, error, urgent))
            else:
                outcomes["queued"] += len(batch)
                handed += batch
        if urgent and handed:
            self._watch(handed, now)
        return outcomes

    def _batches(self, ids: list[int], urgent: bool) -> list[list[int]]:
        """One urgent row to a task. Others: each task one sending number's rows, the numbers taking
        turns, so that the workers pace different numbers at once rather than all queue behind one."""
        if urgent:
            return [[outbox_id] for outbox_id in ids]
        try:
            groups = self.fallback.sender.by_sender(ids) if ids else []
        except Exception as error:  # noqa: BLE001 - the rows still go, in the order given
            log.warning("could not group %s row(s) by sending number (%s); handing them out as they come",
                        len(ids), type(error).__name__)
            groups = [ids]
        per_sender = [[group[start:start + BATCH_SIZE] for start in range(0, len(group), BATCH_SIZE)]
                      for group in groups]
        return [batches[turn] for turn in range(max(map(len, per_sender), default=0))
                for batches in per_sender if turn < len(batches)]

    def _watch(self, ids: list[int], now: datetime) -> None:
        # The hand-off's clock moved on by the wait (an injected clock in tests stays consistent).
        later = now + timedelta(seconds=ALERT_CLAIM_WAIT)
        timer = threading.Timer(ALERT_CLAIM_WAIT, self.send_unclaimed, args=(ids, later))
        timer.daemon = True
        timer.name = "reminders-alert-watch"
        timer.start()

    def send_unclaimed(self, ids: list[int], now: datetime) -> Counter:
        """Send the urgent rows no worker has claimed yet, from this process."""
        try:
            with self.sessions() as session:
                left = list(session.scalars(select(OutboxMessage.id).where(
                    OutboxMessage.id.in_(ids), OutboxMessage.status == Status.QUEUED)))
            if not left:
                return Counter()
            log.error("%s urgent row(s) not claimed by any worker within %.0f s (is the worker running?); "
                      "sending them from this process", len(left), ALERT_CLAIM_WAIT)
            return self.fallback.hand_off(left, now, urgent=True)
        except Exception:  # noqa: BLE001 - a timer thread must not die silently; the next pass re-queues
            log.exception("sending unclaimed urgent rows from this process failed; the next pass hands them out")
            return Counter()

    def _handed_off_failed(self, batch: list[int], now: datetime, error: Exception, urgent: bool) -> Counter:
        reason = f"{type(error).__name__}: {error}"[:300]
        if urgent:
            log.error("handing %s urgent row(s) to the Celery workers failed (%s); sending them from this "
                      "process now", len(batch), reason)
            return self.fallback.hand_off(batch, now, urgent=True)
        with self.sessions() as session:
            released = release_to_planned(session, batch, now, "the hand-off to the workers failed; retrying")
        log.error("handing %s row(s) to the Celery workers failed (%s); they stay due and the next pass "
                  "(within a minute) hands them out again", len(released), reason)
        return Counter(handoff_failed=len(released))


def send_soon(dispatcher: Dispatcher, sessions: sessionmaker[Session], ids: Iterable[int], now: datetime) -> Counter:
    """Send rows that must not wait for the next pass (crisis alerts): queue them, hand them off.

    Rows already taken by someone else (a racing pass) are left to them."""
    with sessions() as session:
        queued = queue_now(session, list(ids), now)
    return dispatcher.hand_off(queued, now, urgent=True) if queued else Counter()


def in_process(settings: Settings, sessions: sessionmaker[Session] | None = None,
               channels: dict[str, Channel] | None = None) -> InProcessDispatcher:
    sessions = sessions or session_factory(settings.effective_database_url)
    return InProcessDispatcher(Sender(sessions, settings, channels or channels_for(settings)))
