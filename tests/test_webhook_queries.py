"""The inbound-text webhook's work per text (issue 11): the sender's patients, check-in, open
escalation, next visit, latest text and questionnaire waiting for an SMS answer in one query, the text's row
in one INSERT."""
from __future__ import annotations

from sqlalchemy import event, select

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


def test_a_questionnaire_answer_adds_only_the_questionnaires_update(twilio, booked, session, configure, fake_twilio):
    from reminders.models import Questionnaire
    from reminders.pipeline import run_pass
    from tests.conftest import at

    run_pass(configure(MEASURES_ENABLED="true", MEASURES_BY_SMS="true"), at("2026-12-08T10:00:00-05:00"))
    assert "2 of 9: " in answer(twilio.sms("0"))  # warm-up: the reply templates compiled
    replies = []
    statements = _statements(settings_of(twilio), lambda: replies.append(answer(twilio.sms("1"))))
    assert "9 of 9: " in replies[0]  # the sender's questionnaire is read with the sender
    assert statements.count("INSERT") == 1 and statements.count("UPDATE") == 1  # the text; the questionnaire
    assert statements.count("SELECT") <= 2  # the sender; the template versions at most
    session.expire_all()
    assert session.scalar(select(Questionnaire)).answered() == {1: 0, 2: 1}


def settings_of(twilio):
    return twilio.client.application.extensions["reminders.settings"]
