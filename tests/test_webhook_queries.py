"""The inbound-text webhook's work per text (issue 11): the sender's patients, check-in, open
escalation, next visit and latest text in one query, the text's row in one INSERT."""
from __future__ import annotations

from sqlalchemy import event

from reminders.db import get_engine
from reminders.models import Appointment
from tests.fixtures.twoway import answer, inbound


def _statements(settings, send) -> list[str]:
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        seen.append(statement.split(None, 1)[0].upper())

    engine = get_engine(settings.effective_database_url)
    event.listen(engine, "before_cursor_execute", count)
    try:
        send()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return [s for s in seen if s not in ("PRAGMA", "BEGIN", "COMMIT", "ROLLBACK")]


def test_a_text_from_a_patient_is_one_select_and_one_insert(twilio, booked, session, settings):
    twilio.sms("warm-up: templates compiled")
    statements = _statements(settings, lambda: twilio.sms("What time is my visit?"))
    # at most one aggregate look at the template versions (every 2 s per process) besides
    assert statements.count("INSERT") == 1 and statements.count("UPDATE") == 0
    assert 1 <= statements.count("SELECT") <= 2


def test_a_confirmation_adds_only_the_visits_update(twilio, booked, session, settings):
    twilio.sms("warm-up")
    replies = []
    statements = _statements(settings, lambda: replies.append(answer(twilio.sms("C"))))
    assert "confirmed" in replies[0]
    assert statements.count("INSERT") == 1 and statements.count("UPDATE") == 1  # the visit's
    assert statements.count("SELECT") <= 3  # the sender; the visit's course; the template versions at most
    session.expire_all()
    assert session.get(Appointment, booked.id).status == "confirmed"
    assert [m.classification for m in inbound(session)][-1] == "confirm"
