"""Exactly once under concurrency, against the real PostgreSQL (issue 2, item 4).

Every test gets a PostgreSQL schema of its own (the `pg_settings` fixture), runs the real
planner, dispatcher and sender from several threads, each thread with its own session and so
its own connection, and checks what reached the channel: one send per outbox row, one outbox
row per appointment, rule and channel. Time is injected; threads are joined with timeouts.
"""
from __future__ import annotations

from dataclasses import replace

import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, update

from reminders.channels import Receipt, channels_for
from reminders.channels.local_outbox import read_outbox
from reminders.db import session_factory
from reminders.models import Appointment, OutboxMessage, Patient
from reminders.models.outbox import Status
from reminders.pipeline import due_ids, run_pass
from reminders.outbox.moves import REQUEUE_AFTER
from reminders.provider_health import claim_due
from reminders.outbox import appointment_key
from reminders.planning.planner import plan_appointment, plan_pending, wanted_messages
from reminders.timing.rules import RuleSettings
from reminders.sending import Sender, backoff, retry_delay

pytestmark = pytest.mark.postgres

# Tuesday 10 March 2026, 12:00 in New York (EDT since 8 March): outside quiet hours.
NOW = datetime(2026, 3, 10, 16, 0, tzinfo=timezone.utc)
ZONE = "America/New_York"
# Threads finish as soon as their work is done; the limit only bounds a hang. Generous, because a
# loaded two-core machine can take many seconds for what takes one on a quiet one.
JOIN_SECONDS = 120


# -- helpers ---------------------------------------------------------------------------------

class RecordingChannel:
    """A channel that counts what it was asked to send, per outbox id (the message's reference)."""

    def __init__(self, name: str = "sms", *, gate: threading.Event | None = None,
                 entered: threading.Event | None = None, after_send: BaseException | None = None,
                 before_send: BaseException | None = None):
        self.name = name
        self.sent: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._gate, self._entered = gate, entered
        self._after_send, self._before_send = after_send, before_send

    def send(self, message) -> Receipt:
        if self._entered is not None:
            self._entered.set()
        if self._gate is not None:
            assert self._gate.wait(JOIN_SECONDS), "the test never opened the gate"
        if self._before_send is not None:
            raise self._before_send
        with self._lock:
            self.sent[int(message.reference)] += 1
        if self._after_send is not None:
            raise self._after_send
        return Receipt(provider_id=f"rec-{message.reference}", status="sent")

    def channels(self) -> dict:
        return {"sms": self, "email": self}


def run_threads(*targets, timeout: float = JOIN_SECONDS) -> None:
    """Run the callables at once (they start together at a barrier); re-raise the first error."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(targets))

    def wrap(target):
        def body():
            try:
                barrier.wait(timeout)
                target()
            except BaseException as exc:  # noqa: BLE001 - reported to the test below
                errors.append(exc)
        return body

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish in time"
    if errors:
        raise errors[0]


def add_patient(session, i: int, *, email: bool = False, preferred: str = "sms", zone: str = ZONE) -> Patient:
    patient = Patient(
        external_id=f"pat-{i}", first_name=f"Pat{i}", last_name="Example",
        phone=f"+1415555{i:04d}", email=f"pat{i}@example.test" if email else None,
        timezone=zone, preferred_channel=preferred, welcomed_at=NOW - timedelta(days=30),
        created_at=NOW, updated_at=NOW,
    )
    session.add(patient)
    return patient


def load_visits(sessions, count: int, *, starts_in: timedelta, kinds=(("induction", 2),),
                email: bool = False, preferred: str = "sms", zone: str = ZONE) -> list[int]:
    """`count` patients with one visit each, all marked needs_planning. Returns appointment ids."""
    with sessions() as session:
        appointments = []
        for i in range(count):
            patient = add_patient(session, i, email=email, preferred=preferred, zone=zone)
            kind, number = kinds[i % len(kinds)]
            appointment = Appointment(
                external_id=f"appt-{i}", patient=patient, kind=kind, number_in_course=number,
                starts_at=NOW + starts_in + timedelta(minutes=i % 50), duration_minutes=60,
                location="Suite 200", status="scheduled", needs_planning=True,
                created_at=NOW, updated_at=NOW,
            )
            session.add(appointment)
            appointments.append(appointment)
        session.commit()
        return [a.id for a in appointments]


def expected_keys(sessions, rs: RuleSettings, now: datetime) -> set[str]:
    """What one planner alone would have made: the rules' own answer for every appointment."""
    with sessions() as session:
        keys = set()
        for appointment in session.scalars(select(Appointment)):
            for message in wanted_messages(appointment, appointment.patient, rs, now):
                keys.add(appointment_key(appointment.id, message.rule.name, message.channel))
        return keys


def outbox_rows(sessions) -> list[OutboxMessage]:
    with sessions() as session:
        return session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()


def assert_one_row_per_appointment_rule_channel(sessions, want: set[str]) -> None:
    rows = outbox_rows(sessions)
    triples = Counter((row.appointment_id, row.rule, row.channel) for row in rows)
    duplicates = {triple: n for triple, n in triples.items() if n > 1}
    assert not duplicates, f"more than one outbox row for {list(duplicates)[:5]}"
    assert {row.dedupe_key for row in rows} == want
    assert len(rows) == len(want)


@pytest.fixture(autouse=True)
def one_text_per_reminder(monkeypatch, tmp_path):
    """These tests count sends of one text per reminder (a reminder's second text:
    tests/test_text_parts.py)."""
    from tests.test_batched_sending import one_text_reminders

    monkeypatch.setenv("TEMPLATES_DIR", str(one_text_reminders(tmp_path)))


@pytest.fixture
def pg_sessions(pg_settings):
    return session_factory(pg_settings.effective_database_url)


@pytest.fixture
def rs(pg_settings) -> RuleSettings:
    """No texts-per-visit budget: these tests compare what racing planners made with what the
    rules want (the budget's choices: tests/test_text_budget.py)."""
    return replace(RuleSettings.from_settings(pg_settings), texts_per_visit=None)


def one_due_row(pg_sessions, rs, *, email: bool = False) -> int:
    """One later-induction visit tomorrow morning: its 24 h reminder is due at NOW."""
    load_visits(pg_sessions, 1, starts_in=timedelta(hours=22), email=email)
    with pg_sessions() as session:
        plan_pending(session, rs, NOW)
        ids = claim_due(session, NOW)
    assert len(ids) == 1
    return ids[0]


# -- (a) planners racing ---------------------------------------------------------------------

@pytest.mark.parametrize("planners", [2, 4])
def test_planners_racing_leave_one_row_per_appointment_rule_and_channel(pg_settings, pg_sessions, rs, planners):
    kinds = (("induction", 1), ("induction", 3), ("maintenance", 1))
    ids = load_visits(pg_sessions, 200, starts_in=timedelta(days=10), kinds=kinds, email=True, preferred="both")
    want = expected_keys(pg_sessions, rs, NOW)
    assert len(want) > 3 * len(ids)  # several rules and channels per visit

    created: list[int] = []

    def planner():
        with pg_sessions() as session:
            # Small batches interleave the planners; SKIP LOCKED splits the work between them.
            created.append(plan_pending(session, rs, NOW, batch=15))

    run_threads(*[planner] * planners)

    assert_one_row_per_appointment_rule_channel(pg_sessions, want)
    # Every insert was counted by exactly one planner: none re-did another's appointment.
    assert len(created) == planners and sum(created) == len(want)
    with pg_sessions() as session:
        assert session.scalar(select(func.count()).where(Appointment.needs_planning)) == 0


def test_two_sessions_planning_the_same_appointments_at_once(pg_settings, pg_sessions, rs):
    """No SKIP LOCKED to split the work: both sessions plan every appointment, one from each end,
    so in the middle they insert the very same keys at the very same time."""
    kinds = (("induction", 1), ("induction", 4), ("maintenance", 2))
    load_visits(pg_sessions, 200, starts_in=timedelta(days=9), kinds=kinds, email=True, preferred="both")
    want = expected_keys(pg_sessions, rs, NOW)
    created: list[int] = []

    def planner(descending: bool):
        def run():
            total = 0
            with pg_sessions() as session:
                order = Appointment.id.desc() if descending else Appointment.id
                for appointment in session.scalars(select(Appointment).order_by(order)).all():
                    total += plan_appointment(session, appointment, rs, NOW)
                    session.commit()
            created.append(total)
        return run

    run_threads(planner(False), planner(True))

    assert_one_row_per_appointment_rule_channel(pg_sessions, want)
    assert sum(created) == len(want)  # ON CONFLICT DO NOTHING: each row counted by one session


def test_two_sessions_planning_the_same_batch_in_one_transaction(pg_settings, pg_sessions, rs):
    """Same appointments, same order, one transaction each: the second waits on the first's
    uncommitted keys and then inserts nothing."""
    load_visits(pg_sessions, 60, starts_in=timedelta(days=8), kinds=(("maintenance", 1),),
                email=True, preferred="both")
    want = expected_keys(pg_sessions, rs, NOW)
    created: list[int] = []

    def planner():
        with pg_sessions() as session:
            appointments = session.scalars(select(Appointment).order_by(Appointment.id)).all()
            created.append(sum(plan_appointment(session, a, rs, NOW) for a in appointments))
            session.commit()

    run_threads(planner, planner)

    assert_one_row_per_appointment_rule_channel(pg_sessions, want)
    assert sorted(created) == [0, len(want)]


def test_planned_counts_are_exact_on_postgresql(pg_settings, pg_sessions, rs):
    """Regression: the INSERT's rowcount reads -1 with SQLAlchemy 2.1 + psycopg, so the planner
    counts inserted rows with RETURNING (the pass summary's `planned` was negative)."""
    load_visits(pg_sessions, 40, starts_in=timedelta(days=10), kinds=(("induction", 1), ("maintenance", 1)),
                email=True, preferred="both")
    want = expected_keys(pg_sessions, rs, NOW)
    created: list[int] = []

    def planner():
        with pg_sessions() as session:
            created.append(plan_pending(session, rs, NOW, batch=5))

    run_threads(planner, planner)
    assert_one_row_per_appointment_rule_channel(pg_sessions, want)
    # Each row counted by the one planner that inserted it, none by the other.
    assert sum(created) == len(want)
    summary = run_pass(pg_settings, NOW, sessions=pg_sessions, channels=RecordingChannel().channels())
    assert summary["planned"] == 0


# -- (b) dispatchers and senders racing ------------------------------------------------------

def test_two_dispatcher_and_sender_loops_send_each_due_row_once(pg_settings, pg_sessions, rs):
    load_visits(pg_sessions, 300, starts_in=timedelta(hours=22))
    with pg_sessions() as session:
        plan_pending(session, rs, NOW)
        due = session.scalars(select(OutboxMessage.id).where(OutboxMessage.status == Status.PLANNED,
                                                             OutboxMessage.due_at <= NOW)).all()
    assert len(due) == 300  # one induction_24h text per visit is due now

    channel = RecordingChannel()
    claimed: dict[int, list[int]] = {0: [], 1: []}
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    # Each loop holds its first batch until the other has claimed one too: the race is then between
    # two loops that are both running (the thread scheduler could otherwise let one loop claim every
    # row before the other starts). A first claim that finds every due row locked by the other
    # loop's claim tries again.
    both_claimed = threading.Barrier(2, timeout=60)
    pause = threading.Event()

    def loop(me: int):
        sender = Sender(pg_sessions, pg_settings, channel.channels())

        def run():
            first = True
            while True:
                with pg_sessions() as session:
                    ids = claim_due(session, NOW, limit=20)
                if first and not ids:
                    pause.wait(0.01)
                    continue
                if first:
                    both_claimed.wait()
                    first = False
                if not ids:
                    break
                with lock:
                    claimed[me].extend(ids)
                    theirs = list(claimed[1 - me][-20:])
                results = [sender.send(outbox_id, NOW) for outbox_id in ids]
                # Also deliver the other loop's latest ids, as a broker redelivering would.
                results += [sender.send(outbox_id, NOW) for outbox_id in theirs]
                with lock:
                    outcomes.update(results)
        return run

    run_threads(loop(0), loop(1))

    assert claimed[0] and claimed[1], "both dispatchers should have claimed some rows"
    assert not set(claimed[0]) & set(claimed[1]), "a row was claimed by both dispatchers"
    assert sorted(claimed[0] + claimed[1]) == sorted(due)
    assert channel.sent == Counter({outbox_id: 1 for outbox_id in due})
    assert outcomes["sent"] == 300
    assert {row.status for row in outbox_rows(pg_sessions) if row.id in set(due)} == {Status.SENT}


def test_two_passes_at_once_plan_and_send_everything_once(pg_settings, pg_sessions):
    """Two `reminders tick` (or two beat schedulers) running the whole pass at the same instant."""
    load_visits(pg_sessions, 300, starts_in=timedelta(hours=22), kinds=(("induction", 2), ("maintenance", 1)))
    channel = RecordingChannel()
    summaries: list[dict] = []

    def tick():
        summaries.append(run_pass(pg_settings, NOW, sessions=pg_sessions, channels=channel.channels()))

    run_threads(tick, tick)

    rows = outbox_rows(pg_sessions)
    sent = [row for row in rows if row.status == Status.SENT]
    assert len(sent) == 300  # the 24 h reminder of each visit
    assert channel.sent == Counter({row.id: 1 for row in sent})
    assert sum(s["sent"] for s in summaries) == 300
    assert sum(s["planned"] for s in summaries) == len(rows)
    assert len({(row.appointment_id, row.rule, row.channel) for row in rows}) == len(rows)

    # And again: nothing more goes out.
    again = run_pass(pg_settings, NOW, sessions=pg_sessions, channels=channel.channels())
    assert again["sent"] == 0 and again["planned"] == 0
    assert sum(channel.sent.values()) == 300


# -- (c) a redelivered task ------------------------------------------------------------------

def test_sending_the_same_row_twice_sends_once(pg_settings, pg_sessions, rs):
    outbox_id = one_due_row(pg_sessions, rs)
    channel = RecordingChannel()
    sender = Sender(pg_sessions, pg_settings, channel.channels())

    assert sender.send(outbox_id, NOW) == "sent"
    assert sender.send(outbox_id, NOW) == "not_claimed"
    assert Sender(pg_sessions, pg_settings, channel.channels()).send(outbox_id, NOW + timedelta(minutes=1)) == "not_claimed"
    assert channel.sent == Counter({outbox_id: 1})


def test_a_task_delivered_twice_at_the_same_time_sends_once(pg_settings, pg_sessions, rs):
    """The first delivery is inside the provider call when the second arrives."""
    outbox_id = one_due_row(pg_sessions, rs)
    gate, entered = threading.Event(), threading.Event()
    channel = RecordingChannel(gate=gate, entered=entered)
    results: dict[str, str] = {}

    def first():
        results["first"] = Sender(pg_sessions, pg_settings, channel.channels()).send(outbox_id, NOW)

    thread = threading.Thread(target=first, daemon=True)
    thread.start()
    assert entered.wait(JOIN_SECONDS)
    with pg_sessions() as session:
        assert session.get(OutboxMessage, outbox_id).status == Status.SENDING
    results["second"] = Sender(pg_sessions, pg_settings, channel.channels()).send(outbox_id, NOW)
    gate.set()
    thread.join(JOIN_SECONDS)
    assert not thread.is_alive()

    assert results == {"first": "sent", "second": "not_claimed"}
    assert channel.sent == Counter({outbox_id: 1})


def test_the_celery_task_redelivered_sends_once(pg_settings, pg_sessions, rs, monkeypatch):
    """Through the task function itself and through Celery's local `apply`, with the configured
    channels (no provider settings: the local outbox)."""
    import reminders.tasks as tasks
    from reminders.celery_app import make_celery

    outbox_id = one_due_row(pg_sessions, rs)
    monkeypatch.setattr(tasks, "utcnow", lambda: NOW)
    tasks._senders.clear()
    app = make_celery(pg_settings)
    send_batch = app.tasks["reminders.tasks.send_batch"]
    try:
        assert send_batch([outbox_id]) == ["sent"]
        assert send_batch([outbox_id]) == ["not_claimed"]
        assert send_batch.apply(args=[[outbox_id]]).get(timeout=JOIN_SECONDS) == ["not_claimed"]
        assert send_batch.apply(args=[[outbox_id, outbox_id]]).get(timeout=JOIN_SECONDS) == ["not_claimed"] * 2
    finally:
        tasks._senders.clear()

    written = [m for m in read_outbox(pg_settings.effective_outbox_dir) if m["reference"] == str(outbox_id)]
    assert len(written) == 1
    with pg_sessions() as session:
        row = session.get(OutboxMessage, outbox_id)
        assert (row.status, row.attempts, row.provider_id) == (Status.SENT, 1, written[0]["id"])


def test_a_lost_task_requeued_while_the_original_arrives_late_sends_once(pg_settings, pg_sessions, rs):
    """The broker lost the task (so the row sat `queued`); the next pass queues it again; then the
    original shows up after all. Both deliveries race for the claim; one wins."""
    outbox_id = one_due_row(pg_sessions, rs)
    later = NOW + REQUEUE_AFTER + timedelta(minutes=1)
    with pg_sessions() as session:
        assert due_ids(session, later) == [outbox_id]  # requeued
        assert session.get(OutboxMessage, outbox_id).status == Status.QUEUED
    channel = RecordingChannel()
    results: list[str] = []
    run_threads(*[lambda: results.append(Sender(pg_sessions, pg_settings, channel.channels()).send(outbox_id, later))] * 2)
    assert sorted(results) == ["not_claimed", "sent"]
    assert channel.sent == Counter({outbox_id: 1})


def move_visit(pg_sessions, moved_to: datetime, status: str | None = None) -> None:
    """What a CSV re-import or PATCH /api/v1/appointments does to visit appt-0."""
    from reminders.intake.records import AppointmentRecord
    from reminders.intake.upsert import upsert_appointment

    with pg_sessions() as session:
        patient = session.scalar(select(Patient).where(Patient.external_id == "pat-0"))
        record = AppointmentRecord(external_id="appt-0", kind="induction", starts_at=moved_to,
                                   duration_minutes=60, location="Suite 200", status=status)
        assert upsert_appointment(session, patient, record, NOW).result == "updated"
        session.commit()


def test_a_visit_moved_while_its_reminder_is_queued_gets_it_at_the_new_time(pg_settings, pg_sessions, rs):
    """Regression: a `queued` row (its task still in the broker) was not re-timed, and the late
    task sent the 24 h reminder 8 days early and none at the new time."""
    outbox_id = one_due_row(pg_sessions, rs)  # `queued`: its send task is on the way to a worker
    moved_to = NOW + timedelta(days=8)
    move_visit(pg_sessions, moved_to)

    channel = RecordingChannel()
    run_pass(pg_settings, NOW + timedelta(minutes=1), sessions=pg_sessions, channels=channel.channels())
    # The task for the old time reaches a worker only now.
    Sender(pg_sessions, pg_settings, channel.channels()).send(outbox_id, NOW + timedelta(minutes=2))
    assert not channel.sent, "the 24 h reminder went out 8 days before the moved visit"

    with pg_sessions() as session:
        row = session.get(OutboxMessage, outbox_id)
    assert row.due_at == moved_to - timedelta(hours=24)
    on_time = run_pass(pg_settings, row.due_at, sessions=pg_sessions, channels=channel.channels())
    assert on_time["sent"] == 1 and channel.sent == Counter({outbox_id: 1})


def test_a_visit_canceled_while_its_reminder_is_queued_gets_nothing(pg_settings, pg_sessions, rs):
    outbox_id = one_due_row(pg_sessions, rs)
    move_visit(pg_sessions, NOW + timedelta(hours=22), status="canceled")
    channel = RecordingChannel()
    run_pass(pg_settings, NOW + timedelta(minutes=1), sessions=pg_sessions, channels=channel.channels())
    assert Sender(pg_sessions, pg_settings, channel.channels()).send(outbox_id, NOW + timedelta(minutes=2)) == "not_claimed"
    assert not channel.sent
    with pg_sessions() as session:
        row = session.get(OutboxMessage, outbox_id)
    assert (row.status, row.status_reason) == ("canceled", "visit canceled")


def test_a_sender_claiming_between_the_planners_read_and_write_is_not_undone(pg_settings, pg_sessions, rs, monkeypatch):
    """The planner reads the pending rows, then a worker claims and sends one, then the planner
    writes the new times: its write must not turn the sent row back into a planned one (which
    would send it a second time at the visit's new time)."""
    import reminders.planning.one_visit as one_visit

    outbox_id = one_due_row(pg_sessions, rs)
    moved_to = NOW + timedelta(days=3)
    move_visit(pg_sessions, moved_to)
    channel = RecordingChannel()
    real_update = one_visit.reschedule_pending

    def interleaved(session, row_id, *args):
        if row_id == outbox_id and not channel.sent:  # a worker gets there first
            assert Sender(pg_sessions, pg_settings, channel.channels()).send(outbox_id, NOW) == "sent"
        return real_update(session, row_id, *args)

    monkeypatch.setattr(one_visit, "reschedule_pending", interleaved)
    with pg_sessions() as session:
        plan_pending(session, rs, NOW + timedelta(seconds=1))
    assert channel.sent == Counter({outbox_id: 1})
    monkeypatch.setattr(one_visit, "reschedule_pending", real_update)

    with pg_sessions() as session:
        row = session.get(OutboxMessage, outbox_id)
    assert row.status == Status.SENT
    later = run_pass(pg_settings, moved_to - timedelta(hours=24), sessions=pg_sessions, channels=channel.channels())
    assert later["sent"] == 0
    assert channel.sent == Counter({outbox_id: 1})


# -- (d) a worker that dies mid-send ---------------------------------------------------------

@pytest.mark.parametrize("death", ["before the provider answered", "after the provider accepted"])
def test_a_worker_dying_mid_send_leaves_an_unknown_row_that_is_not_resent(pg_settings, pg_sessions, rs, death):
    outbox_id = one_due_row(pg_sessions, rs)
    if death == "before the provider answered":
        dying = RecordingChannel(before_send=SystemExit("worker killed"))
        expected_sends = 0
    else:
        dying = RecordingChannel(after_send=KeyboardInterrupt())
        expected_sends = 1
    with pytest.raises((SystemExit, KeyboardInterrupt)):
        Sender(pg_sessions, pg_settings, dying.channels()).send(outbox_id, NOW)
    assert sum(dying.sent.values()) == expected_sends

    with pg_sessions() as session:
        row = session.get(OutboxMessage, outbox_id)
        assert row.status == Status.SENDING
        assert row.body and row.to_address  # what was going out is on record

    survivor = RecordingChannel()
    stale = timedelta(minutes=pg_settings.stale_send_minutes)
    # A redelivered task and a pass before the sweep's threshold leave it alone.
    assert Sender(pg_sessions, pg_settings, survivor.channels()).send(outbox_id, NOW + timedelta(minutes=1)) == "not_claimed"
    early = run_pass(pg_settings, NOW + stale - timedelta(minutes=1), sessions=pg_sessions, channels=survivor.channels())
    assert early.get("unknown", 0) == 0 and early["sent"] == 0
    # After it: shown as unknown, never sent again.
    swept = run_pass(pg_settings, NOW + stale + timedelta(minutes=1), sessions=pg_sessions, channels=survivor.channels())
    assert swept["unknown"] == 1 and swept["sent"] == 0
    later = run_pass(pg_settings, NOW + timedelta(hours=3), sessions=pg_sessions, channels=survivor.channels())
    assert later["sent"] == 0
    assert Sender(pg_sessions, pg_settings, survivor.channels()).send(outbox_id, NOW + timedelta(hours=3)) == "not_claimed"
    assert not survivor.sent

    with pg_sessions() as session:
        row = session.get(OutboxMessage, outbox_id)
        assert row.status == Status.UNKNOWN
        assert "worker stopped" in row.status_reason
        assert row.attempts == 1


def test_a_row_left_sending_is_shown_to_staff_as_unknown(pg_settings, pg_sessions, rs):
    """A row a dead worker left in `sending` an hour ago, its provider call begun: the next pass
    marks it `unknown`, and the record staff read (the JSON the API's /messages and the UI
    serialize) says so and why."""
    from reminders.web.serialize import message_json

    outbox_id = one_due_row(pg_sessions, rs)
    with pg_sessions() as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.id == outbox_id)
                        .values(status=Status.SENDING, claimed_at=NOW - timedelta(hours=1),
                                handed_at=NOW - timedelta(hours=1), attempts=1))
        session.commit()
    channel = RecordingChannel()
    summary = run_pass(pg_settings, NOW, sessions=pg_sessions, channels=channel.channels())
    assert summary["unknown"] == 1 and summary["sent"] == 0
    assert not channel.sent
    assert run_pass(pg_settings, NOW + timedelta(hours=1), sessions=pg_sessions, channels=channel.channels())["sent"] == 0
    assert not channel.sent

    with pg_sessions() as session:
        message = message_json(session.get(OutboxMessage, outbox_id))
    assert message["status"] == "unknown"
    assert "check before resending" in message["status_reason"]
    assert message["attempts"] == 1


# -- (e) provider errors: transient retried through the database, permanent recorded ---------

def test_a_transient_twilio_error_is_retried_with_backoff_through_the_database(
        pg_settings, pg_sessions, rs, configure, twilio_settings, fake_twilio):
    settings = configure(**twilio_settings)
    load_visits(pg_sessions, 1, starts_in=timedelta(hours=22))
    fake_twilio.fail_next(status=503, code=20503, message="Service unavailable", times=2)

    first = run_pass(settings, NOW, sessions=pg_sessions)
    assert first["retrying"] == 1 and first["sent"] == 0
    [row] = [r for r in outbox_rows(pg_sessions) if r.rule == "induction_24h"]
    assert (row.status, row.attempts, row.error_code) == (Status.PLANNED, 1, "20503")
    assert row.due_at == NOW + retry_delay(1, row.id)
    assert NOW + backoff(1) <= row.due_at <= NOW + backoff(1) * 1.2  # backoff plus jitter
    assert len(fake_twilio.requests) == 1 and not fake_twilio.messages

    # Before the backoff is over, a pass leaves it alone, and so does a redelivered old task.
    early = run_pass(settings, row.due_at - timedelta(seconds=1), sessions=pg_sessions)
    assert early["sent"] == early["retrying"] == 0
    assert Sender(pg_sessions, settings, channels_for(settings)).send(row.id, NOW + timedelta(seconds=5)) == "not_claimed"
    assert len(fake_twilio.requests) == 1

    # After it, it is tried again: a second transient error doubles the wait.
    second_at = row.due_at
    second = run_pass(settings, second_at, sessions=pg_sessions)
    assert second["retrying"] == 1
    with pg_sessions() as session:
        row = session.get(OutboxMessage, row.id)
    assert (row.status, row.attempts) == (Status.PLANNED, 2)
    assert row.due_at == second_at + retry_delay(2, row.id) and backoff(2) == 2 * backoff(1)

    third = run_pass(settings, row.due_at, sessions=pg_sessions)
    assert third["sent"] == 1
    with pg_sessions() as session:
        row = session.get(OutboxMessage, row.id)
    assert (row.status, row.attempts) == (Status.SENT, 3)
    assert row.provider_id == fake_twilio.messages[0]["sid"]
    assert len(fake_twilio.messages) == 1 and len(fake_twilio.requests) == 3

    # And never again.
    assert run_pass(settings, row.due_at + timedelta(hours=1), sessions=pg_sessions)["sent"] == 0
    assert len(fake_twilio.requests) == 3


def test_transient_errors_are_retried_past_the_configured_attempts_until_the_visit(
        pg_settings, pg_sessions, rs, configure, twilio_settings, fake_twilio):
    """SEND_MAX_ATTEMPTS no longer bounds a provider's trouble: the reminder is retried until its
    visit starts, then marked failed for staff, and never sent after."""
    settings = configure(SEND_MAX_ATTEMPTS=3, **twilio_settings)
    load_visits(pg_sessions, 1, starts_in=timedelta(hours=22))
    fake_twilio.outage(status=500, code=20500)

    at = NOW
    while at <= NOW + timedelta(hours=23):
        run_pass(settings, at, sessions=pg_sessions)
        at += timedelta(hours=1)
    [row] = [r for r in outbox_rows(pg_sessions) if r.rule == "induction_24h"]
    assert (row.status, row.status_reason) == (Status.FAILED, "provider unavailable until the visit")
    assert row.attempts > 3
    tried = len(fake_twilio.requests)
    fake_twilio.recover()
    run_pass(settings, at + timedelta(hours=2), sessions=pg_sessions)
    assert len(fake_twilio.requests) == tried and not fake_twilio.messages


def test_a_permanent_twilio_error_is_recorded_and_not_retried(
        pg_settings, pg_sessions, rs, configure, twilio_settings, fake_twilio):
    settings = configure(**twilio_settings)
    load_visits(pg_sessions, 2, starts_in=timedelta(hours=22))
    fake_twilio.fail_for("+14155550000", status=400, code=21211)

    summary = run_pass(settings, NOW, sessions=pg_sessions)
    assert summary["failed"] == 1 and summary["sent"] == 1
    rows = {r.appointment_id: r for r in outbox_rows(pg_sessions) if r.rule == "induction_24h"}
    bad, good = sorted(rows.values(), key=lambda r: r.to_address or "")
    assert bad.to_address == "+14155550000"
    assert (bad.status, bad.error_code, bad.attempts) == (Status.FAILED, "21211", 1)
    assert bad.status_reason == "the provider refused it for good"
    assert "[number]" in bad.error_message and "4155550000" not in bad.error_message
    assert good.status == Status.SENT

    for minutes in (1, 31, 120):
        run_pass(settings, NOW + timedelta(minutes=minutes), sessions=pg_sessions)
    assert [r["form"]["To"] for r in fake_twilio.requests].count("+14155550000") == 1
    with pg_sessions() as session:
        assert session.get(OutboxMessage, bad.id).status == Status.FAILED


def test_a_row_a_stopped_worker_claimed_but_never_handed_to_the_provider_is_sent_once_at_a_later_pass(
        pg_settings, pg_sessions, rs):
    """`docker stop` of a worker in the middle of a batch: the rows it had claimed but not yet
    handed to the provider go back to the schedule and are sent, once; none is shown as unknown."""
    outbox_id = one_due_row(pg_sessions, rs)
    with pg_sessions() as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.id == outbox_id)
                        .values(status=Status.SENDING, claimed_at=NOW - timedelta(minutes=5), attempts=1))
        session.commit()
    channel = RecordingChannel()
    summary = run_pass(pg_settings, NOW, sessions=pg_sessions, channels=channel.channels())
    assert summary["released_unsent"] == 1 and summary.get("unknown", 0) == 0
    assert summary["sent"] == 1 and sum(channel.sent.values()) == 1
    assert run_pass(pg_settings, NOW + timedelta(hours=1), sessions=pg_sessions, channels=channel.channels())["sent"] == 0
    with pg_sessions() as session:
        row = session.get(OutboxMessage, outbox_id)
        assert (row.status, row.attempts) == (Status.SENT, 1)


def test_a_slow_worker_whose_claim_was_released_meanwhile_does_not_send_it_too(pg_settings, pg_sessions, rs):
    """The sweep releases a claimed row only after a live batch would have reached it; if a slow
    worker reaches it later anyway, its claim is no longer its own and it skips the row."""
    from reminders.outbox import moves

    outbox_id = one_due_row(pg_sessions, rs)
    with pg_sessions() as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.id == outbox_id)
                        .values(status=Status.QUEUED, queued_at=NOW))
        session.commit()
        assert moves.claim_many_for_sending(session, [outbox_id], NOW) == {outbox_id}
        slow = session.get(OutboxMessage, outbox_id)
        claimed_at = slow.claimed_at
    with pg_sessions() as session:
        assert moves.release_unhanded(session, NOW + timedelta(minutes=5), timedelta(minutes=2)) == 1
        assert moves.claim_for_sending(session, outbox_id, NOW + timedelta(minutes=5)) is False  # planned, not queued
    with pg_sessions() as session:
        row = session.get(OutboxMessage, outbox_id)
        row.claimed_at = claimed_at  # what the slow worker still holds
        session.expunge(row)
        assert moves.mark_in_flight(session, row, NOW + timedelta(minutes=6)) is False


def test_a_queued_row_another_transaction_holds_for_a_moment_is_still_sent_by_its_batch(pg_settings, pg_sessions, rs):
    """A batch's claim skips rows locked elsewhere, so that two workers never wait on each other.
    A row locked by something that is not a sender (an overlapping pass) must not be left `queued`
    with no task (that waits for the ten-minute requeue): once the lock goes, the batch takes it."""
    outbox_id = one_due_row(pg_sessions, rs)
    channel = RecordingChannel()
    sender = Sender(pg_sessions, pg_settings, channel.channels())
    holder = pg_sessions()
    holder.execute(select(OutboxMessage.id).where(OutboxMessage.id == outbox_id).with_for_update())
    releaser = threading.Timer(0.5, holder.rollback)
    releaser.start()
    try:
        assert sender.send_batch([outbox_id], NOW) == ["sent"]
    finally:
        releaser.join(JOIN_SECONDS)
        holder.close()
    assert channel.sent == Counter({outbox_id: 1})


def test_a_row_another_worker_is_claiming_is_not_claimed_twice_by_a_batch_that_waited(pg_settings, pg_sessions, rs):
    """The other side of the wait: the row's holder was a worker claiming it; when its claim
    commits, the batch that waited finds the row `sending` and leaves it."""
    outbox_id = one_due_row(pg_sessions, rs)
    channel = RecordingChannel()
    holder = pg_sessions()
    holder.execute(update(OutboxMessage).where(OutboxMessage.id == outbox_id)
                   .values(status=Status.SENDING, claimed_at=NOW, attempts=OutboxMessage.attempts + 1))
    releaser = threading.Timer(0.5, holder.commit)
    releaser.start()
    try:
        assert Sender(pg_sessions, pg_settings, channel.channels()).send_batch([outbox_id], NOW) == ["not_claimed"]
    finally:
        releaser.join(JOIN_SECONDS)
        holder.close()
    assert channel.sent == Counter()
