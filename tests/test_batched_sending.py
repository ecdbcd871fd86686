"""Sending in batches: each text once, a provider's 429 pauses the rest, staff template edits
picked up by the next batch. Runs on SQLite and PostgreSQL, through the real twilio library and
the fake Twilio server."""
from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from reminders import sending
from reminders.channels import DeliveryError
from reminders.channels.twilio.client import TwilioMessaging
from reminders.models import OutboxMessage, ProviderHealth, TemplateVersion
from reminders.pipeline import due_ids, run_pass
from reminders.outbox.moves import claim_many_for_sending, queue_now
from reminders.provider_health import record_failure
from reminders.sending import Sender, batch, handover
from tests.conftest import at, both_databases
from tests.helpers import book, outbox
from tests.processes import one_text_templates

settings = both_databases()

VISIT = "2026-12-10T10:00:00-05:00"
DUE = "2026-12-09T10:00:00-05:00"  # the first-visit 24 h reminders of VISIT are due


@pytest.fixture
def sms_settings(settings, configure, twilio_settings, tmp_path):
    return configure(DATABASE_URL=settings.database_url, TEMPLATES_DIR=one_text_reminders(tmp_path),
                     **twilio_settings)


def one_text_reminders(tmp_path):
    """The templates with each reminder cut to its first text: these tests count batches of one
    text per reminder (a reminder's second text: tests/test_text_parts.py)."""
    return one_text_templates(tmp_path / "templates")


def book_many(session, count: int, starts_at: str = VISIT, welcomed: bool = True):
    for n in range(count):
        book(session, starts_at=starts_at, patient=f"p{n}", appointment=f"a{n}",
             phone=f"+1202555{n:04d}", first_name=f"Pat{n}", welcomed=welcomed)


def is_welcome(body: str) -> bool:
    return "Msg & data rates may apply" in body


def texts_by_number(fake_twilio) -> dict[str, list[str]]:
    """Each number's texts in the order they reached Twilio: "welcome" or "reminder"."""
    texts: dict[str, list[str]] = {}
    for message in fake_twilio.messages:
        texts.setdefault(message["to"], []).append("welcome" if is_welcome(message["body"]) else "reminder")
    return texts


def channels(settings):
    return {"sms": TwilioMessaging(settings)}


def to_numbers(fake_twilio) -> Counter:
    return Counter(message["to"] for message in fake_twilio.messages)


def test_a_backlog_goes_in_batches_each_text_once(sms_settings, session, fake_twilio):
    book_many(session, 130, welcomed=False)  # more than one in-process batch, welcomes included
    first = run_pass(sms_settings, at(DUE), channels=channels(sms_settings))
    again = run_pass(sms_settings, at(DUE) + timedelta(minutes=1), channels=channels(sms_settings))
    assert first["sent"] == 260 and again["sent"] == 0
    # each patient's welcome, its own text, went once and before their reminder
    texts = texts_by_number(fake_twilio)
    assert len(texts) == 130 and set(map(tuple, texts.values())) == {("welcome", "reminder")}
    rows = outbox(session, rule="first_induction_24h")
    assert all(r.status == "sent" and r.provider_id and r.attempts == 1 for r in rows)


def test_a_batch_handed_out_twice_sends_once(sms_settings, session, sessions, fake_twilio):
    book_many(session, 5)
    run_pass(sms_settings, at(DUE) - timedelta(days=3), channels=channels(sms_settings))  # plan only
    now = at(DUE)
    ids = due_ids(session, now)
    sender = Sender(sessions, sms_settings, channels(sms_settings))
    # the 72 h reminders are overdue too: the later 24 h one goes in their place
    assert Counter(sender.send_batch(ids, now)) == {"sent": 5, "skipped": 5}
    assert sender.send_batch(ids, now) == ["not_claimed"] * 10  # a redelivered task, a second worker
    assert len(fake_twilio.messages) == 5


def test_a_text_for_a_patient_being_welcomed_goes_after_the_welcome(sms_settings, session, fake_twilio):
    # Two visits of one new patient with reminders due at once: the welcome goes once, first.
    book(session, starts_at=VISIT, appointment="a1", welcomed=False)
    book(session, starts_at="2026-12-09T15:00:00-05:00", appointment="a0", kind="maintenance", welcomed=False)
    run_pass(sms_settings, at("2026-12-09T09:00:00-05:00"), channels=channels(sms_settings))
    assert texts_by_number(fake_twilio) == {"+12025550143": ["welcome", "reminder", "reminder"]}


def test_a_batch_without_the_patients_welcome_sends_the_welcome_first(sms_settings, session, sessions, fake_twilio):
    # The welcome row is not among the ids handed out (it is planned a minute later, or queued for
    # another task): it is claimed into this batch and goes first, in the batch, not by a send of its own.
    book(session, starts_at=VISIT, appointment="a1", welcomed=False)
    run_pass(sms_settings, at(DUE) - timedelta(days=3), channels=channels(sms_settings))  # plan only
    reminder = outbox(session, rule="first_induction_24h")[0]
    queue_now(session, [reminder.id], at(DUE))
    session.commit()
    sender = Sender(sessions, sms_settings, channels(sms_settings))
    assert sender.send_batch([reminder.id], at(DUE)) == ["sent"]
    assert texts_by_number(fake_twilio) == {"+12025550143": ["welcome", "reminder"]}
    welcome = outbox(session, rule="welcome")[0]
    assert welcome.status == "sent" and welcome.sent_at <= outbox(session, rule="first_induction_24h")[0].sent_at


def test_a_welcome_another_worker_is_sending_is_not_sent_again(sms_settings, session, sessions, fake_twilio):
    book(session, starts_at=VISIT, appointment="a1", welcomed=False)
    run_pass(sms_settings, at(DUE) - timedelta(days=3), channels=channels(sms_settings))  # plan only
    reminder, welcome = outbox(session, rule="first_induction_24h")[0], outbox(session, rule="welcome")[0]
    queue_now(session, [reminder.id, welcome.id], at(DUE))
    with sessions() as other_worker:
        assert claim_many_for_sending(other_worker, [welcome.id], at(DUE)) == {welcome.id}
    sender = Sender(sessions, sms_settings, channels(sms_settings))
    assert sender.send_batch([reminder.id], at(DUE)) == ["sent"]
    assert texts_by_number(fake_twilio) == {"+12025550143": ["reminder"]}  # the welcome is the other worker's
    session.expire_all()
    assert outbox(session, rule="welcome")[0].status == "sending"


def test_a_429_pauses_the_rest_of_the_batch_without_costing_their_tries(sms_settings, session, fake_twilio):
    book_many(session, 6)
    fake_twilio.fail_next(status=429, code=20429, message="Too Many Requests", headers={"Retry-After": "30"})
    first = run_pass(sms_settings, at(DUE), channels=channels(sms_settings))
    assert len(fake_twilio.requests) == 1 and fake_twilio.messages == []  # nothing more was tried
    rows = outbox(session, rule="first_induction_24h")
    assert {r.status for r in rows} == {"planned"} and first["sent"] == 0
    assert sorted(r.attempts for r in rows) == [0, 0, 0, 0, 0, 1]  # only the refused one was tried
    assert run_pass(sms_settings, at(DUE) + timedelta(seconds=20), channels=channels(sms_settings))["sent"] == 0
    assert len(fake_twilio.requests) == 1  # the sender is still paused

    later = run_pass(sms_settings, at(DUE) + timedelta(seconds=31), channels=channels(sms_settings))
    assert later["sent"] == 6
    assert set(to_numbers(fake_twilio).values()) == {1} and len(to_numbers(fake_twilio)) == 6


def save_version(session, name: str, source: str, now) -> None:
    """What the staff template editor does: the new version is the active one."""
    session.execute(update(TemplateVersion).where(TemplateVersion.name == name).values(active=False))
    session.add(TemplateVersion(name=name, source=source, active=True, created_by="admin@clinic.test", created_at=now))
    session.commit()


def test_a_staff_edit_is_used_by_the_next_batch_and_a_failing_one_falls_back(sms_settings, session, fake_twilio):
    name = "first_induction_24h.sms.j2"
    book(session, starts_at=VISIT, patient="p1", appointment="a1", phone="+12025550101")
    run_pass(sms_settings, at(DUE), channels=channels(sms_settings))
    assert "Hi Maya, see you tomorrow at 10:00 AM" not in fake_twilio.messages[-1]["body"]

    save_version(session, name, "Hi {{ patient.first_name }}, see you tomorrow at {{ visit.time }}.", at(DUE))
    book(session, starts_at=VISIT, patient="p2", appointment="a2", phone="+12025550102")
    run_pass(sms_settings, at(DUE) + timedelta(minutes=1), channels=channels(sms_settings))
    assert fake_twilio.messages[-1]["body"].endswith("Hi Maya, see you tomorrow at 10:00 AM.")

    save_version(session, name, "Hi {{ patient.nickname.upper() }}", at(DUE) + timedelta(minutes=2))
    book(session, starts_at=VISIT, patient="p3", appointment="a3", phone="+12025550103")
    run_pass(sms_settings, at(DUE) + timedelta(minutes=3), channels=channels(sms_settings))
    body = fake_twilio.messages[-1]["body"]
    assert "nickname" not in body and "see you tomorrow" not in body and "Maya" in body  # the default file
    session.expire_all()
    failed = session.scalar(select(TemplateVersion).where(TemplateVersion.name == name, TemplateVersion.active))
    assert failed.failed_at is not None  # flagged for the admins

    book(session, starts_at=VISIT, patient="p4", appointment="a4", phone="+12025550104")
    run_pass(sms_settings, at(DUE) + timedelta(minutes=4), channels=channels(sms_settings))
    assert "see you tomorrow" not in fake_twilio.messages[-1]["body"]  # still the default until a fix
    assert len(fake_twilio.messages) == 4
    assert {r.status for r in session.scalars(select(OutboxMessage))} >= {"sent"}


def test_a_batch_that_runs_out_of_time_hands_the_rest_back_and_the_pass_sends_them(
        sms_settings, session, fake_twilio, monkeypatch):
    monkeypatch.setattr(batch, "BATCH_SECONDS", 0.0)  # as if pacing had used up the batch's time
    book_many(session, 5)
    summary = run_pass(sms_settings, at(DUE), channels=channels(sms_settings))
    assert summary["sent"] == 5 and summary["held"] >= 4  # one per batch, the rest in later rounds
    assert set(to_numbers(fake_twilio).values()) == {1} and len(to_numbers(fake_twilio)) == 5
    assert [r.attempts for r in outbox(session, rule="first_induction_24h")] == [1] * 5


# ---------------------------------------------------------------- a provider in trouble mid-batch

def planned_and_claimed(sms_settings, session, count: int) -> list[int]:
    """`count` patients' reminders planned, then claimed at DUE as a pass would hand them out."""
    book_many(session, count)
    run_pass(sms_settings, at(DUE) - timedelta(days=3), channels=channels(sms_settings))  # plan only
    return due_ids(session, at(DUE))


def sms_breaker(sessions) -> ProviderHealth | None:
    with sessions() as session:
        return session.get(ProviderHealth, "sms")


def test_a_provider_that_stops_answering_opens_the_breaker_and_the_rest_of_the_batch_waits(
        sms_settings, session, sessions, fake_twilio):
    """Timeouts (Twilio had the request; the answer never came in time) count toward the breaker
    like any provider failure. Those texts may have gone: unknown, for staff. Once the breaker is
    open the batch asks nothing more of Twilio; the rest go back untouched and go after the pause."""
    ids = planned_and_claimed(sms_settings, session, 8)
    fake_twilio.hang_next(times=5, seconds=1.0, accept=True)
    timing_out = sms_settings.model_copy(update={"twilio_timeout_seconds": 0.2})
    sender = Sender(sessions, sms_settings, {"sms": TwilioMessaging(timing_out)})
    assert Counter(sender.send_batch(ids, at(DUE))) == {"unknown": 5, "held": 3, "skipped": 8}
    assert len(fake_twilio.requests) == 5  # nothing more was asked once the breaker opened
    rows = outbox(session, rule="first_induction_24h")
    assert Counter(r.status for r in rows) == {"unknown": 5, "planned": 3}
    assert all(r.handed_at is not None for r in rows if r.status == "unknown")
    assert [r.attempts for r in rows if r.status == "planned"] == [0, 0, 0]  # held, not tried
    assert sms_breaker(sessions).open_until >= at(DUE) + timedelta(seconds=30)

    run_pass(sms_settings, at(DUE) + timedelta(seconds=40), channels=channels(sms_settings))
    assert set(to_numbers(fake_twilio).values()) == {1} and len(to_numbers(fake_twilio)) == 8
    assert Counter(r.status for r in outbox(session, rule="first_induction_24h")) == {"unknown": 5, "sent": 3}


class TimingOut:
    """A provider that answers nothing: every send times out after `seconds` of the batch's clock."""

    name = "sms"

    def __init__(self, monotonic: "FakeMonotonic", seconds: float):
        self.monotonic, self.seconds, self.calls = monotonic, seconds, 0

    def send(self, message):
        self.calls += 1
        self.monotonic.now += self.seconds
        raise DeliveryError("Twilio unreachable: ReadTimeout", permanent=False, code="timeout", maybe_sent=True)


class FakeMonotonic:
    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_a_pause_opened_late_in_a_batch_lasts_from_the_failure_not_from_the_batch_start(
        sms_settings, session, sessions, fake_twilio, monkeypatch):
    clock = FakeMonotonic()
    monkeypatch.setattr(batch, "time", clock)
    monkeypatch.setattr(handover, "time", clock)  # the batch's clock and each send's
    ids = planned_and_claimed(sms_settings, session, 8)
    provider = TimingOut(clock, seconds=10.0)
    outcomes = Sender(sessions, sms_settings, {"sms": provider}).send_batch(ids, at(DUE))
    assert provider.calls == 5 and Counter(outcomes)["held"] == 3
    # The fifth timeout came 50 s into the batch: the first pause (30 s) runs from there.
    assert sms_breaker(sessions).open_until == at(DUE) + timedelta(seconds=80)


class PausedElsewhere:
    """Twilio through the fake, while another process's send opens the SMS breaker after `after` sends."""

    name = "sms"

    def __init__(self, settings, sessions, after: int):
        self.twilio, self.settings, self.sessions, self.after = TwilioMessaging(settings), settings, sessions, after

    def send(self, message):
        receipt = self.twilio.send(message)
        self.after -= 1
        if self.after == 0:
            with self.sessions() as other:
                record_failure(other, self.settings, "sms", at(DUE), "Twilio error 20429: Too Many Requests",
                               retry_after=timedelta(seconds=60))
                other.commit()
        return receipt


def test_a_pause_another_process_opened_stops_a_batch_in_hand(sms_settings, session, sessions, fake_twilio,
                                                                monkeypatch):
    monkeypatch.setattr(batch, "BREAKER_LOOK_SECONDS", 0.0)
    ids = planned_and_claimed(sms_settings, session, 6)
    sender = Sender(sessions, sms_settings, {"sms": PausedElsewhere(sms_settings, sessions, after=2)})
    assert Counter(sender.send_batch(ids, at(DUE))) == {"sent": 2, "held": 4, "skipped": 6}
    assert len(fake_twilio.requests) == 2
    assert Counter(r.status for r in outbox(session, rule="first_induction_24h")) == {"sent": 2, "planned": 4}


def test_the_database_failing_just_before_a_provider_call_puts_the_row_back_not_unknown(
        sms_settings, session, sessions, fake_twilio, monkeypatch):
    """Nothing was sent, so nobody need check it: the row goes back to the schedule, still due, and
    the sends recorded before it are kept."""
    from sqlalchemy.exc import OperationalError

    from reminders.outbox import moves

    ids = planned_and_claimed(sms_settings, session, 4)
    real, calls = moves.mark_in_flight, []

    def connection_ended_on_the_second(session_, row, now):
        calls.append(row.id)
        if len(calls) == 2:
            raise OperationalError("UPDATE outbox", {}, Exception("terminating connection"))
        return real(session_, row, now)

    monkeypatch.setattr(moves, "mark_in_flight", connection_ended_on_the_second)
    outcomes = Sender(sessions, sms_settings, channels(sms_settings)).send_batch(ids, at(DUE))
    assert Counter(outcomes) == {"sent": 3, "held": 1, "skipped": 4}
    put_back = [r for r in outbox(session, rule="first_induction_24h") if r.id == calls[1]][0]
    assert (put_back.status, put_back.attempts, put_back.status_reason) == ("planned", 0, sending.NOT_HANDED_OVER)
    assert len(fake_twilio.requests) == 3

    monkeypatch.setattr(moves, "mark_in_flight", real)
    run_pass(sms_settings, at(DUE) + timedelta(minutes=1), channels=channels(sms_settings))
    assert set(to_numbers(fake_twilio).values()) == {1} and len(to_numbers(fake_twilio)) == 4


def test_the_database_failing_while_a_batch_is_read_sends_its_rows_one_by_one(
        sms_settings, session, sessions, fake_twilio, monkeypatch):
    """The rows are claimed; a read after the claim fails (the session ended): they go one by one,
    not left claimed for the sweep to put back minutes later."""
    from sqlalchemy.exc import OperationalError

    ids = planned_and_claimed(sms_settings, session, 3)

    def session_ended(*args):
        raise OperationalError("SELECT patients", {}, Exception("terminating connection due to administrator command"))

    monkeypatch.setattr(batch, "_by_id", session_ended)  # the batch's set-based reads only
    outcomes = Sender(sessions, sms_settings, channels(sms_settings)).send_batch(ids, at(DUE))
    assert Counter(outcomes) == {"sent": 3, "skipped": 3}
    assert set(to_numbers(fake_twilio).values()) == {1} and len(to_numbers(fake_twilio)) == 3


def test_the_database_failing_before_a_batch_is_claimed_is_tried_once_more(
        sms_settings, session, sessions, fake_twilio, monkeypatch):
    """Rows left `queued` by a task that failed would wait for the ten-minute requeue."""
    from sqlalchemy.exc import OperationalError

    ids = planned_and_claimed(sms_settings, session, 3)
    real, calls = batch.breakers, []

    def ended_once(session_, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("SELECT provider_health", {}, Exception("terminating connection"))
        return real(session_, **kwargs)

    monkeypatch.setattr(batch, "breakers", ended_once)
    outcomes = Sender(sessions, sms_settings, channels(sms_settings)).send_batch(ids, at(DUE))
    assert Counter(outcomes) == {"sent": 3, "skipped": 3}
    assert len(fake_twilio.messages) == 3
