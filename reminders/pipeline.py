"""One pass of the service: plan what changed, sweep what a dead worker left, hand out what is due.

`reminders tick` runs a pass and sends in this process; Celery beat runs the same pass every
minute with the workers' dispatcher, which hands the due rows to send tasks in batches.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import case, select
from sqlalchemy.orm import Session, sessionmaker

from reminders.channels import Channel
from reminders.config import Settings
from reminders.db import session_factory
from reminders.dispatch import Dispatcher, in_process
from reminders.escalations import plan_due_alerts
from reminders.models import OutboxMessage
from reminders.models.outbox import Kind
from reminders.inbound.replies import unanswered_reasks_to_staff
from reminders.outbox.moves import mark_unknown_sends, release_unhanded, requeue_lost
from reminders.provider_health import claim_due
from reminders.planning.planner import plan_pending, planning_budget
from reminders.timing.rules import RuleSettings
from reminders.sending import BATCH_SECONDS

# A row claimed this long ago and never handed to its provider belongs to a worker that stopped: a
# live batch reaches every row it claimed within BATCH_SECONDS (then puts the rest back).
UNHANDED_AFTER = timedelta(seconds=BATCH_SECONDS + 60)
# A round hands out up to claim_due's limit; sending can plan more (an email in place of a
# refused text), so a pass repeats until nothing due is left, up to this many rounds.
MAX_ROUNDS = 50
# A scheduled pass (beat's every PASS_SECONDS, `reminders run`'s) plans for at most this long (and
# at most a third of the time to the next pass, so that passes do not pile up), then hands out what
# is due: a large import is planned over several passes, soonest visits first, and never holds up
# reminders already planned or a re-alert to staff. The summary's `planning_unfinished` says visits
# are still marked. `reminders tick` plans everything.
SCHEDULED_PLANNING_SECONDS = 20.0


def scheduled_planning_seconds(settings: Settings) -> float:
    return min(SCHEDULED_PLANNING_SECONDS, settings.pass_seconds / 3)


def prepare(session: Session, settings: Settings, now: datetime,
            planning_seconds: float | None = None) -> dict[str, int]:
    """Everything before sending: escalation re-alerts, changed appointments planned (for at most
    `planning_seconds`; None: all of them), sweeps."""
    alerts = plan_due_alerts(session, settings, now)
    to_staff = unanswered_reasks_to_staff(session, now)
    session.commit()  # a re-alert is never held up by the visits' planning
    with planning_budget(planning_seconds) as budget:
        planned = plan_pending(session, RuleSettings.from_settings(settings), now)
    session.commit()
    unknown = mark_unknown_sends(session, now, timedelta(minutes=settings.stale_send_minutes))
    released = release_unhanded(session, now, UNHANDED_AFTER)
    return {"planned": planned, "visits_planned": budget.visits, "planning_unfinished": int(budget.stopped),
            "alerts_planned": alerts, "unknown": unknown, "checkins_to_staff": to_staff, "released_unsent": released}


def due_ids(session: Session, now: datetime) -> list[int]:
    """The rows to hand out now, staff crisis alerts first, then in due order (what waited
    longest through an outage goes first)."""
    ids = set(requeue_lost(session, now)) | set(claim_due(session, now))
    if not ids:
        return []
    return list(session.scalars(
        select(OutboxMessage.id).where(OutboxMessage.id.in_(ids))
        .order_by(case((OutboxMessage.kind == Kind.ALERT, 0), else_=1), OutboxMessage.due_at, OutboxMessage.id)
    ))


def alert_ids(session: Session, ids: list[int]) -> list[int]:
    return list(session.scalars(select(OutboxMessage.id).where(OutboxMessage.id.in_(ids),
                                                                 OutboxMessage.kind == Kind.ALERT)))


def run_pass(settings: Settings, now: datetime, *, sessions: sessionmaker[Session] | None = None,
             channels: dict[str, Channel] | None = None, dispatcher: Dispatcher | None = None,
             scheduled: bool | None = None) -> dict[str, int]:
    """Plan what changed and hand out everything due at `now` until nothing due is left.

    With no dispatcher the rows are sent in this process (`reminders tick`); the Celery beat task
    passes the workers' dispatcher. A scheduled pass (by default, one given a dispatcher: beat's,
    `reminders run`'s) plans for at most scheduled_planning_seconds; otherwise every visit marked
    is planned first. Returns counts by outcome."""
    scheduled = dispatcher is not None if scheduled is None else scheduled
    sessions = sessions or session_factory(settings.effective_database_url)
    dispatcher = dispatcher or in_process(settings, sessions, channels)
    with sessions() as session:
        summary = Counter(prepare(session, settings, now, scheduled_planning_seconds(settings) if scheduled else None))
        for _round in range(MAX_ROUNDS):
            ids = due_ids(session, now)
            # No transaction stays open while they are sent (in this process that can take minutes):
            # PostgreSQL ends a session idle in one (DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS).
            session.commit()
            if not ids:
                break
            # Staff alerts go on their own (reminders.alerts): never behind a backlog of reminders.
            alerts = set(alert_ids(session, ids))
            session.commit()
            outcomes = Counter()
            if alerts:
                outcomes.update(dispatcher.hand_off([i for i in ids if i in alerts], now, urgent=True))
            outcomes.update(dispatcher.hand_off([i for i in ids if i not in alerts], now))
            summary.update(outcomes)
            if outcomes.get("handoff_failed"):
                break  # the broker is down: what was put back waits for the next pass
    result = {key: summary.get(key, 0) for key in ("planned", "sent", "deferred", "skipped", "failed", "retrying")}
    result.update({key: value for key, value in summary.items() if key not in result and value})
    return result
