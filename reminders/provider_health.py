"""The circuit breaker: while a provider fails, a channel pauses for everyone instead of burning
every row's tries.

State is one `provider_health` row per channel, so web, workers and `reminders tick` agree.

- Every transient failure (5xx, 429, timeouts, refused connections, bad credentials) adds to the
  channel's `consecutive_failures`; any answer from the provider that is not an error resets it.
- After PROVIDER_FAILURE_THRESHOLD failures in a row, or at once when the provider said
  `Retry-After`, the breaker opens: `open_until` is set (the Retry-After, or a backoff that grows
  with every failed probe, at most PROVIDER_PROBE_MAX_SECONDS).
- While it is open, due rows of the channel stay `planned`: not claimed, not tried, their attempts
  unchanged. Staff crisis alerts are the exception: they are always tried (a second alert is better
  than none), and one that gets through closes the breaker like a probe.
- Once `open_until` has passed, exactly one row is let through as a probe (`take_probe` is a
  conditional UPDATE, so only one process wins). If it is sent, the breaker closes and everything
  that waited is due at once; if it fails, the breaker opens again for longer.
- A held row whose deadline passes (a reminder whose visit has started, a check-in 36 hours late)
  is marked failed with the reason, for staff to see.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from reminders.channel_specs import SPECS
from reminders.models import Appointment, OutboxMessage, ProviderHealth
from reminders.models.outbox import PENDING_STATUSES, Kind, Status
from reminders.outbox import moves
from reminders.timing.retries import backoff, delivery_deadline, gave_up_reason

log = logging.getLogger(__name__)

# A probe whose process died before it reported back frees the way for another after this.
PROBE_LEASE = timedelta(minutes=2)
# A Retry-After longer than this is read as this (a wrong header must not pause the clinic a day).
MAX_RETRY_AFTER = timedelta(hours=1)
RETRYING = moves.RETRYING


def provider_name(channel: str) -> str:
    """"SMS provider", "Email server": the channel's provider as a heading (its spec)."""
    spec = SPECS.get(channel)
    return spec.provider_title if spec is not None else f"{channel} provider"


def hold_reason(channel: str) -> str:
    spec = SPECS.get(channel)
    name = spec.provider if spec is not None and spec.provider else f"the {channel} provider"
    return f"waiting for {name} to answer again"


# ---------------------------------------------------------------- reading the state

@dataclass(frozen=True)
class Breaker:
    channel: str
    open_until: datetime | None
    probe_outbox_id: int | None
    consecutive_failures: int
    failing_since: datetime | None
    last_error: str | None

    @property
    def is_open(self) -> bool:
        """Open (or waiting for its probe): the channel's rows wait."""
        return self.open_until is not None


_COLUMNS = (ProviderHealth.channel, ProviderHealth.open_until, ProviderHealth.probe_outbox_id,
            ProviderHealth.consecutive_failures, ProviderHealth.failing_since, ProviderHealth.last_error)


def breakers(session: Session, *, only_open: bool = False) -> dict[str, Breaker]:
    """Every channel's breaker as the database has it now (columns, not cached ORM objects)."""
    query = select(*_COLUMNS)
    if only_open:
        query = query.where(ProviderHealth.open_until.is_not(None))
    return {row.channel: Breaker(*row) for row in session.execute(query)}


def breaker(session: Session, channel: str) -> Breaker | None:
    row = session.execute(select(*_COLUMNS).where(ProviderHealth.channel == channel)).first()
    return Breaker(*row) if row else None


# ---------------------------------------------------------------- recording outcomes

def _ensure_row(session: Session, channel: str, now: datetime) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(ProviderHealth).values(channel=channel, consecutive_failures=0, updated_at=now)
                    .on_conflict_do_nothing(index_elements=["channel"]))


def probe_delay(settings, failures_over_threshold: int) -> timedelta:
    return backoff(failures_over_threshold, cap=timedelta(seconds=settings.provider_probe_max_seconds))


def record_failure(session: Session, settings, channel: str, now: datetime, error: str,
                   retry_after: timedelta | None = None) -> Breaker:
    """A transient failure of the provider (not of one message). Opens the breaker when due."""
    _ensure_row(session, channel, now)
    failures = session.execute(
        update(ProviderHealth).where(ProviderHealth.channel == channel)
        .values(consecutive_failures=ProviderHealth.consecutive_failures + 1,
                failing_since=func.coalesce(ProviderHealth.failing_since, now),
                last_error=error[:500], probe_outbox_id=None, updated_at=now)
        .returning(ProviderHealth.consecutive_failures)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    over = failures - settings.provider_failure_threshold + 1
    delay = probe_delay(settings, over) if over > 0 else None
    if retry_after is not None:
        retry_after = min(retry_after, MAX_RETRY_AFTER)
        delay = max(delay or retry_after, retry_after)
    if delay is not None:
        until = now + delay
        opened = session.execute(
            update(ProviderHealth).where(ProviderHealth.channel == channel,
                                         or_(ProviderHealth.open_until.is_(None), ProviderHealth.open_until < until))
            .values(open_until=until).execution_options(synchronize_session=False)
        ).rowcount
        if opened:
            log.warning("%s failing (%s failures in a row, last: %s): %s messages wait until %s",
                        provider_name(channel), failures, error[:200], channel, until.isoformat(timespec="seconds"))
    return breaker(session, channel)


def record_success(session: Session, channel: str, now: datetime) -> bool:
    """The provider took a message: the failures in a row are over. When the breaker was open,
    it closes and what backed off meanwhile is due now. Returns True when the channel was failing."""
    state = breaker(session, channel)
    if state is None or not (state.consecutive_failures or state.is_open):
        return False
    recovered = session.execute(
        update(ProviderHealth).where(ProviderHealth.channel == channel,
                                     or_(ProviderHealth.consecutive_failures > 0, ProviderHealth.open_until.is_not(None)))
        .values(consecutive_failures=0, failing_since=None, open_until=None, probe_outbox_id=None, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not recovered or not state.is_open:
        return bool(recovered)
    # Rows that backed off on their own before the breaker opened need not wait out their backoff.
    pulled = moves.bring_forward_retries(session, channel, now, RETRYING)
    log.warning("%s answers again: the breaker is closed, %s retries brought forward", provider_name(channel), pulled)
    return True


# ---------------------------------------------------------------- letting rows through

def take_probe(session: Session, channel: str, outbox_id: int, now: datetime) -> bool:
    """Make this row the channel's one probe, if the breaker's time is up and nobody else has."""
    won = session.execute(
        update(ProviderHealth)
        .where(ProviderHealth.channel == channel, ProviderHealth.open_until.is_not(None),
               ProviderHealth.open_until <= now)
        .values(probe_outbox_id=outbox_id, open_until=now + PROBE_LEASE, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    return won == 1


def release_probe(session: Session, channel: str, outbox_id: int, now: datetime) -> None:
    """The probe did not reach the provider (quiet hours, skipped, a permanent refusal): let the
    next row probe at once."""
    session.execute(
        update(ProviderHealth)
        .where(ProviderHealth.channel == channel, ProviderHealth.probe_outbox_id == outbox_id,
               ProviderHealth.open_until.is_not(None))
        .values(probe_outbox_id=None, open_until=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def claim_due(session: Session, now: datetime, limit: int = 1000) -> list[int]:
    """The due rows to hand out (reminders.outbox.moves.claim_due), oldest first. A channel whose
    provider is failing gives no rows but staff alerts; once its wait is over, one row goes as
    the probe."""
    paused, probes = before_claiming(session, now)
    return moves.claim_due(session, now, limit, held_channels=paused, probes=probes)


def before_claiming(session: Session, now: datetime) -> tuple[list[str], list[int]]:
    """For the dispatcher: the channels whose rows are held now, and the probes it may queue.

    Held rows past their deadline are marked failed first."""
    paused = breakers(session, only_open=True)
    if not paused:
        return [], []
    give_up_held(session, paused, now)
    return list(paused), _queue_probes(session, paused, now)


def _queue_probes(session: Session, paused: dict[str, Breaker], now: datetime) -> list[int]:
    """Queue the oldest due row of each paused channel whose wait is over, as its one probe."""
    queued = []
    for channel, state in paused.items():
        if state.open_until > now:
            continue
        candidate = session.scalar(
            select(OutboxMessage.id)
            .where(OutboxMessage.status == Status.PLANNED, OutboxMessage.due_at <= now, OutboxMessage.channel == channel,
                   OutboxMessage.kind != Kind.ALERT)
            .order_by(OutboxMessage.due_at, OutboxMessage.id).limit(1)
            .with_for_update(skip_locked=True)
        )
        if candidate is None or not take_probe(session, channel, candidate, now):
            continue
        if moves.queue_probe(session, candidate, now):
            queued.append(candidate)
        else:
            release_probe(session, channel, candidate, now)
    return queued


def gate(session: Session, outbox_id: int, now: datetime) -> tuple[str, bool]:
    """Before a send claims its row: "go", "probe" (go, as the channel's probe), "held" (the row
    is back in `planned`, untouched) or "gave_up" (held past its deadline: marked failed); and
    whether the channel looked healthy (then a success need not be recorded). One query when
    all is well; the caller commits."""
    row = session.execute(
        select(OutboxMessage.channel, OutboxMessage.kind, OutboxMessage.status,
               ProviderHealth.open_until, ProviderHealth.probe_outbox_id, ProviderHealth.consecutive_failures)
        .outerjoin(ProviderHealth, ProviderHealth.channel == OutboxMessage.channel)
        .where(OutboxMessage.id == outbox_id)
    ).first()
    healthy = row is not None and row.open_until is None and not row.consecutive_failures
    if row is None or row.status != Status.QUEUED or row.kind == Kind.ALERT or row.open_until is None:
        return "go", healthy
    if row.probe_outbox_id == outbox_id:
        return "probe", False
    if row.open_until <= now and take_probe(session, row.channel, outbox_id, now):
        return "probe", False
    if give_up_held(session, [row.channel], now, ids=[outbox_id], statuses=(Status.QUEUED,)):
        return "gave_up", False
    moves.hold_queued(session, outbox_id, now, hold_reason(row.channel))
    return "held", False


def give_up_held(session: Session, channels, now: datetime, *, ids: list[int] | None = None,
                 statuses=(Status.PLANNED,)) -> int:
    """Mark failed the held rows of these channels that can no longer do their job."""
    query = (
        select(OutboxMessage.id, OutboxMessage.kind, OutboxMessage.planned_for, OutboxMessage.channel,
               Appointment.starts_at)
        .outerjoin(Appointment, Appointment.id == OutboxMessage.appointment_id)
        .where(OutboxMessage.status.in_(statuses), OutboxMessage.channel.in_(list(channels)),
               OutboxMessage.due_at <= now, OutboxMessage.kind != Kind.ALERT)
    )
    if ids is not None:
        query = query.where(OutboxMessage.id.in_(ids))
    late: dict[str, list[int]] = {}
    for row in session.execute(query):
        deadline = delivery_deadline(row.kind, row.planned_for, row.starts_at)
        if deadline is not None and deadline <= now:
            late.setdefault(gave_up_reason(row.kind), []).append(row.id)
    count = 0
    for reason, row_ids in late.items():
        count += moves.fail_many(session, row_ids, statuses, now, reason, "provider_down")
    if count:
        log.warning("%s messages given up: the provider stayed unavailable past their deadline", count)
    return count


# ---------------------------------------------------------------- what staff see

def waiting_count(session: Session, channel: str, now: datetime, *, alerts_only: bool = False) -> int:
    """Messages of the channel that are due, or backing off after a failure, and not yet gone."""
    query = select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.channel == channel, OutboxMessage.status.in_(PENDING_STATUSES),
        or_(OutboxMessage.due_at <= now, and_(OutboxMessage.attempts > 0, OutboxMessage.error_code.is_not(None))),
    )
    if alerts_only:
        query = query.where(OutboxMessage.kind == Kind.ALERT)
    return session.scalar(query) or 0


def provider_status(session: Session, now: datetime) -> list[dict]:
    """Each channel with a recorded state: ok, failing (errors, still trying) or paused (open)."""
    result = []
    for channel, state in sorted(breakers(session).items()):
        if state.is_open:
            condition = "paused"
        elif state.consecutive_failures:
            condition = "failing"
        else:
            condition = "ok"
        result.append({
            "channel": channel,
            "provider": provider_name(channel),
            "state": condition,
            "failing_since": state.failing_since,
            "consecutive_failures": state.consecutive_failures,
            "paused_until": state.open_until,
            "last_error": state.last_error if condition != "ok" else None,
            "waiting": waiting_count(session, channel, now) if condition != "ok" else 0,
            "alerts_waiting": waiting_count(session, channel, now, alerts_only=True) if condition != "ok" else 0,
        })
    return result
