"""Issue 20: at most one open numeric question at a time, and a bare number confirmed as what it was
taken for.

Maya had an infusion on Monday (its day-after check-in goes Tuesday at 10:00) and a measured
infusion on Thursday (its questionnaire goes by text 48 hours before). Both ask her for a number
on the same Tuesday, on different scales: the later one waits until the first is answered or has
closed (CHECKIN_ANSWER_HOURS), and her "2" is read as the answer to the question asked last.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from reminders.inbound.open_questions import WAITING
from reminders.models import CheckIn, Patient, Questionnaire
from reminders.pipeline import run_pass
from tests.conftest import at
from tests.fixtures.twoway import PHONE, answer
from tests.helpers import book, outbox

CHECKIN_GOES = at("2026-12-08T10:00:00-05:00")


@pytest.fixture
def measured(configure, two_way):
    return configure(MEASURES_ENABLED="true", MEASURES_BY_SMS="true", MEASURES_INFUSIONS="2")


def book_week(session, second_infusion_at: str) -> None:
    book(session, starts_at="2026-12-07T10:00:00-05:00", status="completed", appointment="a1")
    book(session, starts_at=second_infusion_at, appointment="a2")


def say(twilio, clock, when, body: str) -> str | None:
    clock.now = when
    return answer(twilio.sms(body))


def asked(session) -> list[str]:
    """The rules of the texts that asked Maya for a number, in the order they went."""
    rows = [row for row in outbox(session) if row.rule in ("checkin_day_after", "measures", "measures_reminder")
            and row.status in ("sent", "delivered")]
    return [row.rule for row in sorted(rows, key=lambda row: (row.sent_at, row.id))]


def questionnaire(session) -> Questionnaire:
    session.expire_all()
    return session.scalar(select(Questionnaire))


def checkin(session) -> CheckIn:
    session.expire_all()
    return session.scalar(select(CheckIn))


def test_the_questionnaire_waits_for_the_checkin_and_a_2_is_a_mood_of_2(session, measured, twilio, clock):
    book_week(session, "2026-12-10T11:00:00-05:00")  # questionnaire due Tuesday 11:00
    run_pass(measured, CHECKIN_GOES)
    run_pass(measured, at("2026-12-08T11:00:00-05:00"))
    assert asked(session) == ["checkin_day_after"]
    [waiting] = outbox(session, rule="measures", channel="sms")
    assert (waiting.status, waiting.status_reason) == ("planned", WAITING)
    reply = say(twilio, clock, at("2026-12-08T11:05:00-05:00"), "2")
    # A mood of 2 is low: the crisis lines first, then what the number was taken as.
    assert reply.startswith("We're so sorry") and reply.endswith("We noted 2 for your mood today."), reply
    assert reply.index("988") < reply.index("We noted 2")
    assert (checkin(session).score, checkin(session).status) == (2, "answered")
    assert questionnaire(session) is None  # not asked yet, so no item took the 2


def test_an_answered_checkin_lets_the_questionnaire_go_and_its_2_is_an_item_answer(session, measured, twilio,
                                                                                    clock):
    book_week(session, "2026-12-10T11:00:00-05:00")
    run_pass(measured, CHECKIN_GOES)
    reply = say(twilio, clock, at("2026-12-08T10:30:00-05:00"), "8")
    assert reply == "Thank you, Maya: 8 for your mood today, glad to hear it!", reply
    run_pass(measured, at("2026-12-08T11:00:00-05:00"))
    assert asked(session) == ["checkin_day_after", "measures"]
    reply = say(twilio, clock, at("2026-12-08T11:10:00-05:00"), "2")
    assert reply.startswith("2 for question 1, thank you. 2 of 9: Feeling down, depressed, or hopeless."), reply
    assert questionnaire(session).answered() == {1: 2}
    assert checkin(session).score == 8  # the check-in kept its own answer


def test_the_checkin_waits_for_the_questionnaire_until_it_closes(session, measured, twilio, clock):
    book_week(session, "2026-12-10T09:00:00-05:00")  # questionnaire due Tuesday 9:00, before the check-in
    run_pass(measured, at("2026-12-08T09:00:00-05:00"))
    run_pass(measured, CHECKIN_GOES)
    assert asked(session) == ["measures"]
    waiting = outbox(session, rule="checkin_day_after", channel="sms")[0]  # Monday's visit's
    assert (waiting.status, waiting.status_reason) == ("planned", WAITING)
    reply = say(twilio, clock, at("2026-12-08T10:05:00-05:00"), "2")
    assert reply.startswith("2 for question 1, thank you. 2 of 9:"), reply
    assert checkin(session) is None
    # She stops answering: the questionnaire's question closes a day after it was asked, and the
    # check-in goes then (never both open at once).
    now = CHECKIN_GOES
    while now < at("2026-12-09T10:00:00-05:00"):
        now += timedelta(minutes=30)
        run_pass(measured, now)
        assert len([rule for rule in asked(session) if rule == "checkin_day_after"]) == 0 or \
            now >= questionnaire(session).asked_at + timedelta(hours=measured.checkin_answer_hours)
    run_pass(measured, at("2026-12-09T10:30:00-05:00"))
    assert asked(session)[-1] == "checkin_day_after"
    reply = say(twilio, clock, at("2026-12-09T10:40:00-05:00"), "7")
    assert reply == "Thank you, Maya: 7 for your mood today, glad to hear it!", reply
    assert checkin(session).score == 7 and questionnaire(session).answered() == {1: 2}


def test_a_spanish_patient_hears_what_the_number_was_taken_for(session, measured, twilio, clock):
    book_week(session, "2026-12-10T11:00:00-05:00")
    maya = session.scalar(select(Patient).where(Patient.phone == PHONE))
    maya.language = "es"
    session.commit()
    run_pass(measured, CHECKIN_GOES)
    reply = say(twilio, clock, at("2026-12-08T10:30:00-05:00"), "8")
    assert reply == "¡Gracias, Maya! Anotamos un 8 de 10 para su ánimo de hoy; nos alegra mucho.", reply
    run_pass(measured, at("2026-12-08T11:00:00-05:00"))
    reply = say(twilio, clock, at("2026-12-08T11:10:00-05:00"), "2")
    assert reply.startswith("Anotamos 2 en la pregunta 1, gracias. 2 de 9:"), reply
