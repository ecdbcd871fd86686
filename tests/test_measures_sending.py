"""Questionnaires before visits: when the link (or the first question by text) goes, once, to whom,
and what answers do: scored when complete, a self-harm answer escalated like a crisis text."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from reminders.measures.questionnaires import AnswerRefused, find_by_token, record_answer
from reminders.models import Escalation, OutboxMessage, Questionnaire
from reminders.pipeline import run_pass
from tests.conftest import at, both_databases
from tests.helpers import book, outbox, sent

VISIT = "2026-12-10T10:00:00-05:00"  # a Thursday
BASE = "https://clinic.example.org"

settings = both_databases()


@pytest.fixture
def measured(configure, settings):
    return configure(MEASURES_ENABLED="true", PUBLIC_BASE_URL=BASE, STAFF_ALERT_EMAILS="oncall@clinic.test")


def tick(settings, when: str):
    return run_pass(settings, at(when))


def measures_sent(session) -> list[tuple[str, str]]:
    return [(rule, channel) for rule, channel in sent(session) if rule.startswith("measures")]


def questionnaires(session) -> list[Questionnaire]:
    session.expire_all()
    return list(session.scalars(select(Questionnaire).order_by(Questionnaire.id)))


def set_condition(session, visit, condition):
    visit.course.condition = condition
    session.commit()


def test_the_link_goes_once_48_hours_before_the_first_infusion(measured, session):
    visit = book(session, starts_at=VISIT)
    set_condition(session, visit, "depression")
    tick(measured, "2026-12-08T09:59:00-05:00")
    assert measures_sent(session) == []
    tick(measured, "2026-12-08T10:00:00-05:00")
    assert measures_sent(session) == [("measures", "sms")]
    body = outbox(session, rule="measures")[0].body
    token = re.search(r"/q/([A-Za-z0-9_-]+)", body).group(1)
    assert f"{BASE}/q/{token}" in body and "16 short questions" in body
    assert "depress" not in body.lower() and "PHQ" not in body
    found = questionnaires(session)
    assert [(q.scale, q.occasion, q.channel) for q in found] == [("phq9", "baseline", "link"), ("gad7", "baseline", "link")]
    assert found[0].token == token and found[1].token != token
    assert tick(measured, "2026-12-08T10:00:00-05:00")["sent"] == 0
    assert len(questionnaires(session)) == 2


def test_one_reminder_when_not_done_and_none_once_done(measured, session):
    visit = book(session, starts_at=VISIT)
    book(session, starts_at="2026-12-15T10:00:00-05:00", patient="p2", appointment="a2", phone="+12025550144")
    tick(measured, "2026-12-08T10:00:00-05:00")
    done = questionnaires(session)[0]  # p1 answers everything (condition not set: PHQ-9 only)
    assert [q.scale for q in questionnaires(session)] == ["phq9"]
    for item in range(1, 10):
        record_answer(session, measured, done, item, 0, at("2026-12-08T11:00:00-05:00"))
    session.commit()
    tick(measured, "2026-12-09T04:00:00-05:00")  # 30 h before: quiet hours until 8 AM
    assert measures_sent(session) == [("measures", "sms")]
    tick(measured, "2026-12-09T08:00:00-05:00")
    reminder = outbox(session, rule="measures_reminder")[0]
    assert (reminder.status, reminder.status_reason) == ("skipped", "questionnaire already answered")
    assert visit.id


def test_a_canceled_visit_gets_no_questionnaire(measured, session):
    visit = book(session, starts_at=VISIT)
    visit.status = "canceled"
    session.commit()
    tick(measured, "2026-12-08T10:00:00-05:00")
    assert measures_sent(session) == [] and questionnaires(session) == []


def test_infusions_3_and_the_last_of_a_shorter_series_and_maintenance(measured, session):
    starts = ["2026-12-01", "2026-12-03", "2026-12-05", "2026-12-08", "2026-12-10"]
    for n, day in enumerate(starts, start=1):
        book(session, starts_at=f"{day}T10:00:00-05:00", appointment=f"a{n}")
    visit = book(session, starts_at="2027-01-20T10:00:00-05:00", appointment="m1", kind="maintenance")
    visit.course.induction_sessions_planned = 5
    session.commit()
    run_pass(measured, at("2026-11-20T10:00:00-05:00"))  # plans
    planned = {(r.appointment_id, r.rule) for r in outbox(session) if r.kind == "questionnaire"}
    numbers = {a.id: a.number_in_course for a in [visit.course.appointments[i] for i in range(5)]}
    measured_visits = sorted(numbers[a] for a, rule in planned if rule == "measures" and a in numbers)
    assert measured_visits == [1, 3, 5]
    assert (visit.id, "measures") in planned


def test_by_sms_without_a_public_address_the_first_question_goes_by_text(configure, settings, session):
    measured = configure(MEASURES_ENABLED="true", PUBLIC_BASE_URL="")
    book(session, starts_at=VISIT, email="maya@example.org", channel="both")
    tick(measured, "2026-12-08T10:00:00-05:00")
    rows = {r.channel: r for r in outbox(session, rule="measures")}
    assert rows["email"].status == "skipped"
    text = rows["sms"].body
    assert "Little interest or pleasure in doing things" in text and "Reply 0 Not at all, 1 Several days" in text
    [q] = questionnaires(session)
    assert (q.channel, q.asked_item) == ("sms", 1)


def test_answers_are_kept_one_by_one_and_scored_when_complete(measured, session):
    book(session, starts_at=VISIT)
    tick(measured, "2026-12-08T10:00:00-05:00")
    q = questionnaires(session)[0]
    now = at("2026-12-08T11:00:00-05:00")
    answers = [3, 3, 2, 2, 2, 2, 1, 1, 0]
    for item, value in enumerate(answers[:4], start=1):
        record_answer(session, measured, q, item, value, now)
    session.commit()
    q = find_by_token(session, q.token)
    assert (q.status, q.answered()) == ("started", {1: 3, 2: 3, 3: 2, 4: 2})
    for item, value in enumerate(answers[4:], start=5):
        outcome = record_answer(session, measured, q, item, value, now)
    session.commit()
    assert outcome.next_item is None
    assert (q.status, q.score, q.band) == ("completed", 16, "moderately_severe")
    with pytest.raises(AnswerRefused):
        record_answer(session, measured, q, 1, 0, now)


def test_item_9_above_0_opens_an_escalation_with_the_answer_and_alerts_staff(measured, session):
    book(session, starts_at=VISIT)
    tick(measured, "2026-12-08T10:00:00-05:00")
    q = questionnaires(session)[0]
    outcome = record_answer(session, measured, q, 9, 1, at("2026-12-08T11:00:00-05:00"))
    session.commit()
    assert outcome.escalated and outcome.alert_ids
    [escalation] = session.scalars(select(Escalation)).all()
    assert escalation.reason == "self_harm_answer" and escalation.questionnaire_id == q.id
    assert 'item 9' in escalation.text and '"Several days" (1)' in escalation.text
    alert = session.get(OutboxMessage, outcome.alert_ids[0])
    assert alert.to_address == "oncall@clinic.test" and "self-harm answer on a questionnaire" in alert.subject
    with pytest.raises(AnswerRefused):
        record_answer(session, measured, q, 9, 4, at("2026-12-08T11:00:00-05:00"))


def test_progress_reads_baseline_latest_response_and_remission(measured, session):
    from reminders.measures.progress import progress

    first = book(session, starts_at=VISIT)
    book(session, starts_at="2026-12-14T10:00:00-05:00", appointment="a2")
    book(session, starts_at="2026-12-16T10:00:00-05:00", appointment="a3")
    tick(measured, "2026-12-08T10:00:00-05:00")
    tick(measured, "2026-12-12T10:00:00-05:00")  # before infusion 2: nothing; 3 is on the 16th
    tick(measured, "2026-12-14T10:00:00-05:00")
    baseline, third = questionnaires(session)
    for q, values, when in ((baseline, [2, 2, 2, 2, 2, 2, 2, 2, 0], "2026-12-08T12:00:00-05:00"),
                            (third, [1, 1, 1, 1, 0, 0, 0, 0, 0], "2026-12-14T12:00:00-05:00")):
        for item, value in enumerate(values, start=1):
            record_answer(session, measured, q, item, value, at(when))
    session.commit()
    phq9 = progress([q for q in questionnaires(session) if q.course_id == first.course_id])["phq9"]
    assert (phq9.baseline.score, phq9.latest.score, phq9.change) == (16, 4, (-12, -75.0))
    assert phq9.response and phq9.remission
    assert phq9.band_label(phq9.baseline) == "Moderately severe"
