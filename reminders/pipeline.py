"""One pass of the service: plan what changed, sweep what a dead worker left, send what is due.

`reminders tick` runs a pass synchronously; Celery beat runs the same steps every minute and
hands each due row to a send task instead.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Iterable

from sqlalchemy.orm import Session, sessionmaker

from reminders.channels import Channel, channels_for
from reminders.config import Settings
from reminders.db import session_factory
from reminders.inbound.escalations import plan_due_alerts
from reminders.inbound.replies import unanswered_reasks_to_staff
from reminders.planning.dispatcher import claim_due, mark_unknown_sends, queue_now, requeue_lost
from reminders.planning.planner import plan_pending
from reminders.planning.rules import RuleSettings
from reminders.sending import Sender

# Sending can plan more (an email in place of a refused text): a pass repeats up to this often.
MAX_ROUNDS = 5


def prepare(session: Session, settings: Settings, now: datetime) -> dict[str, int]:
    """Everything before sending: plan changed appointments, escalation re-alerts, sweeps."""
    planned = plan_pending(session, RuleSettings.from_settings(settings), now)
    alerts = plan_due_alerts(session, settings, now)
    to_staff = unanswered_reasks_to_staff(session, now)
    session.commit()
    unknown = mark_unknown_sends(session, now, timedelta(minutes=settings.stale_send_minutes))
    return {"planned": planned, "alerts_planned": alerts, "unknown": unknown, "checkins_to_staff": to_staff}


def due_ids(session: Session, now: datetime) -> list[int]:
    return sorted(set(requeue_lost(session, now)) | set(claim_due(session, now)))


def run_pass(settings: Settings, now: datetime, *, sessions: sessionmaker[Session] | None = None,
             channels: dict[str, Channel] | None = None) -> dict[str, int]:
    """Plan and send everything due at `now`, in this process. Returns counts by outcome."""
    sessions = sessions or session_factory(settings.effective_database_url)
    sender = Sender(sessions, settings, channels or channels_for(settings))
    with sessions() as session:
        summary = Counter(prepare(session, settings, now))
        for _round in range(MAX_ROUNDS):
            ids = due_ids(session, now)
            if not ids:
                break
            summary.update(sender.send(outbox_id, now) for outbox_id in ids)
    result = {key: summary.get(key, 0) for key in ("planned", "sent", "deferred", "skipped", "failed", "retrying")}
    result.update({key: value for key, value in summary.items() if key not in result and value})
    return result


def send_soon(settings: Settings, ids: Iterable[int], now: datetime,
              sessions: sessionmaker[Session] | None = None) -> None:
    """Send rows that must not wait for the next pass (crisis alerts).

    With a broker they go to the workers; without one they are sent here and now. The rows are
    queued in the database first, so the next pass covers a hand-off that got lost.
    """
    sessions = sessions or session_factory(settings.effective_database_url)
    with sessions() as session:
        ids = queue_now(session, list(ids), now)
    if not ids:
        return
    if settings.redis_url:
        from reminders.tasks import send_message

        for outbox_id in ids:
            send_message.delay(outbox_id)
        return
    sender = Sender(sessions, settings, channels_for(settings))
    for outbox_id in ids:
        sender.send(outbox_id, now)
