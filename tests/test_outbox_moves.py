"""The outbox's allowed moves are a table every status change is checked against; code decides on a
row's `reason_code`, never on the words staff read; sent rows are written before a commit of the
service's own sessions only."""
from __future__ import annotations

from datetime import timedelta
from itertools import product

import pytest
from alembic import command
from sqlalchemy import create_engine, event, inspect, select, text
from sqlalchemy.orm import Session

from reminders.db import ClinicSession
from reminders.migrations import alembic_config
from reminders.models import OutboxMessage
from reminders.models.outbox import ALLOWED_MOVES, FINAL_STATUSES, REPORTED, ReasonCode, Status
from reminders.outbox import delivery, moves, resend, rows
from reminders.outbox.moves import Move, OutboxMoveRefused, may_move
from tests.conftest import at

NOW = at("2026-12-07T15:00:00+00:00")
MOVES = [(name, value) for module in (moves, delivery, resend, rows)
         for name, value in vars(module).items() if isinstance(value, Move)]


def a_row(session, status: Status, **values) -> OutboxMessage:
    rule = values.pop("rule", "checkin_day_after")
    row = OutboxMessage(dedupe_key=f"k:{status}:{rule}", kind="checkin", rule=rule, channel="sms",
                        planned_for=NOW - timedelta(hours=1), due_at=values.pop("due_at", NOW - timedelta(hours=1)),
                        status=status, attempts=1, **values)
    session.add(row)
    session.commit()
    return row


def columns(row: OutboxMessage) -> dict:
    return {attr.key: getattr(row, attr.key) for attr in inspect(OutboxMessage).column_attrs}


# ---------------------------------------------------------------- the table

def test_the_table_names_every_status_and_only_statuses():
    assert set(ALLOWED_MOVES) == set(Status)
    assert all(targets <= set(Status) for targets in ALLOWED_MOVES.values())


def test_every_move_in_the_table_is_allowed_and_every_other_refused():
    for source, to in product(Status, Status):
        assert may_move(source, to) == (to in ALLOWED_MOVES[source]), (source, to)
        assert may_move(str(source), str(to)) == may_move(source, to)


def test_a_row_reaches_queued_and_sending_only_in_order_and_never_goes_back_to_them():
    assert [s for s in Status if may_move(s, Status.QUEUED)] == [Status.PLANNED]
    assert [s for s in Status if may_move(s, Status.SENDING)] == [Status.QUEUED]
    assert not any(may_move(final, Status.SENDING) or may_move(final, Status.QUEUED) for final in FINAL_STATUSES)
    assert not may_move(Status.DELIVERED, Status.SENT) and not may_move(Status.SENT, Status.PLANNED)
    assert not may_move(Status.UNKNOWN, Status.PLANNED)  # a person checks it before anyone resends it


def test_a_provider_report_may_move_any_row():
    assert all(REPORTED <= targets for targets in ALLOWED_MOVES.values())


@pytest.mark.parametrize("name,move", MOVES, ids=[name for name, _ in MOVES])
def test_every_conditional_move_of_the_outbox_is_in_the_table(name, move):
    assert move.sources and all(move.to in ALLOWED_MOVES[source] for source in move.sources)


def test_a_conditional_move_the_table_does_not_allow_is_refused_when_defined():
    with pytest.raises(OutboxMoveRefused, match="sent to planned"):
        Move((Status.PLANNED, Status.SENT), Status.PLANNED)
    with pytest.raises(OutboxMoveRefused):
        Move((Status.SKIPPED,), Status.SENDING)


# ---------------------------------------------------------------- a refused move changes nothing

REFUSED = {
    "defer": (Status.DELIVERED, lambda s, row: moves.defer(row, NOW, "waiting for the end of quiet hours")),
    "mark_unsent": (Status.SENT, lambda s, row: moves.mark_unsent(row, "visit canceled")),
    "mark_unsent_with": (Status.DELIVERED, lambda s, row: moves.mark_unsent_with(row, None)),
    "mark_unknown": (Status.DELIVERED, lambda s, row: moves.mark_unknown(row, "check it", "internal", "boom")),
    "mark_sent": (Status.DELIVERED, lambda s, row: moves.mark_sent(s, row, "SM1", "queued", NOW)),
    "mark_sent_unrecorded": (Status.CANCELED, lambda s, row: moves.mark_sent_unrecorded(row, "SM1", "queued", NOW)),
    "retry_or_fail": (Status.SENT, lambda s, row: moves.retry_or_fail(row, NOW, "503", "20503", visit_starts_at=None)),
}


@pytest.mark.parametrize("writer", sorted(REFUSED))
def test_a_refused_move_raises_and_leaves_the_row_unchanged(settings, session, writer):
    status, write = REFUSED[writer]
    row = a_row(session, status, status_reason="as it was", reason_code=ReasonCode.QUIET_HOURS)
    before = columns(row)
    with pytest.raises(OutboxMoveRefused) as refused:
        write(session, row)
    assert (refused.value.outbox_id, refused.value.sources) == (row.id, (status,))
    assert columns(row) == before
    session.commit()
    session.expire_all()
    assert columns(session.get(OutboxMessage, row.id)) == before


def test_a_conditional_move_leaves_a_row_that_moved_on(settings, session):
    row = a_row(session, Status.SENT)
    moves.hold(session, row, NOW, "waiting for the sending number's pace")
    assert moves.queue_now(session, [row.id], NOW) == []
    assert moves.cancel_pending(session, NOW, "visit moved", ids=[row.id]) == 0
    session.expire_all()
    assert session.get(OutboxMessage, row.id).status == Status.SENT


# ---------------------------------------------------------------- reason codes

def test_a_retry_is_brought_forward_by_its_code_not_by_its_words(settings, session):
    later = NOW + timedelta(hours=1)
    retrying = a_row(session, Status.SENDING, rule="retrying")
    outcome = moves.retry_or_fail(retrying, NOW, "503", "20503", visit_starts_at=None,
                                  retry_after=timedelta(minutes=30))
    assert outcome == "retrying"
    assert retrying.reason_code == ReasonCode.RETRYING and retrying.status_reason.startswith(moves.RETRYING)
    worded = a_row(session, Status.PLANNED, rule="worded", due_at=later, status_reason=f"{moves.RETRYING} (by hand)")
    coded = a_row(session, Status.PLANNED, rule="coded", due_at=later, status_reason="other words",
                  reason_code=ReasonCode.RETRYING)
    session.commit()
    assert moves.bring_forward_retries(session, "sms", NOW) == 2
    session.commit()
    session.expire_all()
    assert {row.rule: row.due_at == NOW for row in session.scalars(select(OutboxMessage))} == {
        "retrying": True, "worded": False, "coded": True}
    assert worded.id and coded.id


def test_a_reason_that_goes_away_takes_its_code_with_it(settings, session):
    row = a_row(session, Status.SENDING)
    moves.defer(row, NOW, "waiting for the end of quiet hours", ReasonCode.QUIET_HOURS)
    assert row.reason_code == ReasonCode.QUIET_HOURS
    session.commit()
    moves.queue_now(session, [row.id], NOW)
    assert moves.claim_for_sending(session, row.id, NOW)
    session.expire_all()
    row = session.get(OutboxMessage, row.id)
    moves.mark_failed(row, "the provider refused it for good", "21610", "blocked")
    assert (row.status, row.reason_code) == (Status.FAILED, None)


@pytest.mark.parametrize("reason,status,code", [
    ("visit canceled", Status.CANCELED, ReasonCode.VISIT_CANCELED),
    ("too late to be useful", Status.SKIPPED, ReasonCode.EXPIRED),
    ("visit already started", Status.SKIPPED, None),
])
def test_a_rules_reason_not_to_send_brings_its_code(settings, session, reason, status, code):
    row = a_row(session, Status.SENDING)
    moves.mark_unsent(row, reason)
    assert (row.status, row.status_reason, row.reason_code) == (status, reason, code)


def test_a_row_inserted_with_only_the_rules_words_gets_their_code(settings, session):
    row = a_row(session, Status.SKIPPED, status_reason="too late to be useful")
    other = a_row(session, Status.SKIPPED, rule="other", status_reason="visit already started")
    session.expire_all()
    assert (row.reason_code, other.reason_code) == (ReasonCode.EXPIRED, None)


def test_the_migration_gives_rows_written_before_it_their_codes(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    command.upgrade(alembic_config(url), "0022_locations")
    engine = create_engine(url)
    words = {
        1: ("planned", "retrying after a temporary error (attempt 2)", "retrying"),
        2: ("canceled", "no longer applies: now infusion 3 of 6", "withdrawn"),
        3: ("canceled", "visit marked no-show", "withdrawn"),
        4: ("canceled", "visit canceled", "visit_canceled"),
        5: ("skipped", "too late to be useful", "expired"),
        6: ("planned", "waiting for the welcome text to go first", "waiting_for_welcome"),
        7: ("canceled", "no text planned for the patient yet", "nothing_to_introduce"),
        8: ("unknown", moves.UNKNOWN_AFTER_CRASH, "unknown_after_crash"),
        9: ("planned", "waiting for the SMS provider to answer again", "provider_paused"),
        10: ("failed", "provider unavailable until the visit", "gave_up"),
        11: ("skipped", "visit already started", None),
        12: ("canceled", "no longer needed: the text is shorter now", None),
        13: ("sent", None, None),
    }
    with engine.begin() as connection:
        for outbox_id, (status, reason, _code) in words.items():
            connection.execute(text(
                "INSERT INTO outbox (id, dedupe_key, kind, rule, channel, planned_for, due_at, status, status_reason, "
                "attempts, part, created_at, updated_at) VALUES (:id, :key, 'reminder', 'r', 'sms', :now, :now, "
                ":status, :reason, 0, 1, :now, :now)"),
                {"id": outbox_id, "key": f"k{outbox_id}", "now": NOW, "status": status, "reason": reason})
    command.upgrade(alembic_config(url), "0023_outbox_reason_code")
    with engine.connect() as connection:
        codes = dict(connection.execute(text("SELECT id, reason_code FROM outbox")).all())
    engine.dispose()
    assert codes == {outbox_id: code for outbox_id, (_status, _reason, code) in words.items()}


# ---------------------------------------------------------------- sent rows, written before commit

def test_the_sent_rows_listeners_are_on_the_services_sessions_only():
    assert event.contains(ClinicSession, "before_commit", moves._write_sent_before_commit)
    assert event.contains(ClinicSession, "after_rollback", moves._forget_sent_on_rollback)
    assert not event.contains(Session, "before_commit", moves._write_sent_before_commit)


def test_a_send_is_written_with_the_next_commit_of_a_service_session(settings, sessions):
    with sessions() as session:
        assert isinstance(session, ClinicSession)
        row = a_row(session, Status.SENDING)
        moves.mark_sent(session, row, "SM1", "queued", NOW)
        assert session.info.get("reminders.outbox.sent")
        session.commit()
        assert not session.info.get("reminders.outbox.sent")
    with sessions() as session:
        assert session.get(OutboxMessage, row.id).status == Status.SENT


def test_a_send_in_another_session_is_written_at_once(settings, sessions):
    engine = sessions.kw["bind"]
    with Session(engine) as session:
        row = a_row(session, Status.SENDING)
        moves.mark_sent(session, row, "SM1", "queued", NOW)
        assert not session.info.get("reminders.outbox.sent")
        outbox_id = row.id
        session.commit()
    with sessions() as session:
        row = session.get(OutboxMessage, outbox_id)
        assert (row.status, row.provider_id) == (Status.SENT, "SM1")
