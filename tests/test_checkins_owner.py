"""Check-in moves (reminders.checkins): the allowed ones, and every other refused."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from reminders import checkins
from reminders.checkins import ANSWERED, AWAITING, NEXT, REASKED, TO_STAFF, CheckInStatus, RefusedMove
from reminders.models import CheckIn

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)


def _checkin(status: str = AWAITING, **values) -> CheckIn:
    return CheckIn(**{"id": 7, "status": status, "raw_text": "", "note": "", "details": "", **values})


def test_the_stored_words_stay():
    assert [s.value for s in CheckInStatus] == ["awaiting", "reasked", "answered", "to_staff"]
    assert set(NEXT) == set(CheckInStatus)


def test_an_answer_after_a_reask_keeps_both_texts():
    checkin = _checkin()
    checkins.reask(checkin, text="dunno", inbound_id=1, now=NOW)
    assert (checkin.status, checkin.reasked_at, checkin.raw_text) == (REASKED, NOW, "dunno")
    checkins.answer(checkin, score=6, note=" tired ", text="6 tired", inbound_id=2, now=NOW)
    assert (checkin.status, checkin.score, checkin.answered_at) == (ANSWERED, 6, NOW)
    assert (checkin.note, checkin.raw_text, checkin.inbound_message_id) == ("dunno; tired", "dunno\n6 tired", 2)


def test_words_join_an_answered_check_in():
    checkin = _checkin()
    checkins.answer(checkin, score=8, note="", text="8", inbound_id=1, now=NOW)
    checkins.add_note(checkin, "headache since noon ")
    checkins.add_details(checkin, "headache")
    assert (checkin.note, checkin.raw_text, checkin.details) == ("headache since noon", "8\nheadache since noon ",
                                                                  "headache")


def test_the_sweep_hands_a_reask_to_staff_without_a_text():
    checkin = _checkin(REASKED, raw_text="hmm", inbound_message_id=3)
    checkins.hand_to_staff(checkin)
    assert (checkin.status, checkin.raw_text, checkin.inbound_message_id) == (TO_STAFF, "hmm", 3)


@pytest.mark.parametrize("status, move", [
    (ANSWERED, "answer"), (ANSWERED, "reask"), (ANSWERED, "hand_to_staff"),
    (TO_STAFF, "answer"), (TO_STAFF, "reask"), (REASKED, "reask"),
])
def test_a_move_not_listed_is_refused_and_changes_nothing(status, move):
    checkin = _checkin(status, raw_text="before")
    calls = {"answer": lambda: checkins.answer(checkin, score=5, note="", text="5", inbound_id=9, now=NOW),
             "reask": lambda: checkins.reask(checkin, text="?", inbound_id=9, now=NOW),
             "hand_to_staff": lambda: checkins.hand_to_staff(checkin, text="?", inbound_id=9)}
    with pytest.raises(RefusedMove, match=f"check-in 7 is {status}"):
        calls[move]()
    assert (checkin.status, checkin.raw_text, checkin.score, checkin.inbound_message_id) == (status, "before", None,
                                                                                             None)
