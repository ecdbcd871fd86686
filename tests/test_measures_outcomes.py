"""The clinic outcomes: which courses finished induction, and per scale response, remission and median change."""
from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta, timezone

from reminders.measures import outcomes
from reminders.measures.outcomes import Filters, NOT_RECORDED, Share
from reminders.models import Appointment, Course, Patient, Questionnaire
from reminders.models.measures import COMPLETED, SENT
from reminders.scales import get_scale, result
from tests.conftest import both_databases

START = datetime(2026, 9, 1, 14, 0, tzinfo=timezone.utc)

settings = both_databases()


def patient(session, external_id: str) -> Patient:
    person = Patient(external_id=external_id, first_name="Maya", last_name="Lopez", phone="+12025550143",
                     timezone="America/New_York")
    session.add(person)
    session.flush()
    return person


def course(session, person: Patient, *, condition: str | None = "depression", attended: int = 6, planned: int = 6,
           start: datetime = START, scheduled: int = 0) -> Course:
    """A course whose first `attended` infusions, two days apart, were held; `scheduled` more to come."""
    row = Course(patient_id=person.id, started_at=start, induction_sessions_planned=planned, condition=condition)
    session.add(row)
    session.flush()
    for number in range(1, attended + scheduled + 1):
        session.add(Appointment(patient_id=person.id, course_id=row.id, kind="induction", number_in_course=number,
                                starts_at=start + timedelta(days=2 * (number - 1)),
                                status="completed" if number <= attended else "scheduled"))
    session.flush()
    return row


def scored(session, row: Course, scale: str, occasion: str, score: int, taken: datetime, status: str = COMPLETED):
    """A completed questionnaire with answers that add up to `score`, the way a patient's would."""
    definition = get_scale(scale)
    answers, left = {}, score
    for item in definition.items:
        top = max(o.value for o in definition.options_for(item))
        answers[item.number] = min(top, left)
        left -= answers[item.number]
    assert left == 0
    outcome = result(definition, answers)
    session.add(Questionnaire(
        occasion_key=secrets.token_hex(8), token=secrets.token_hex(8), patient_id=row.patient_id, course_id=row.id,
        scale=scale, occasion=occasion, status=status, answers={str(k): v for k, v in answers.items()},
        score=outcome.score if status == COMPLETED else None, band=outcome.band.key, sent_at=taken,
        expires_at=taken + timedelta(days=7), completed_at=taken if status == COMPLETED else None))
    session.flush()


def history(session, row: Course, scale: str, *scores: int, occasions=("baseline", "infusion_3", "infusion_6")):
    for occasion, score in zip(occasions, scores):
        number = 1 if occasion == "baseline" else int(occasion.split("_")[1])
        scored(session, row, scale, occasion, score, row.started_at + timedelta(days=2 * (number - 1), hours=-30))


def only(result_outcomes, key: str):
    return next(s for s in result_outcomes.overall.scales if s.scale.key == key)


def test_a_finished_course_counts_response_remission_and_median_change(session):
    maya = course(session, patient(session, "p1"))
    history(session, maya, "phq9", 18, 11, 4)
    history(session, maya, "gad7", 15, 9, 7)
    found = outcomes.outcomes(session, Filters())
    assert (found.overall.patients, found.overall.courses) == (1, 1)
    phq9, gad7 = only(found, "phq9"), only(found, "gad7")
    assert str(phq9.measured) == "1 of 1, 100 %"
    assert str(phq9.response) == "1 of 1, 100 %" and str(phq9.remission) == "1 of 1, 100 %"
    assert (phq9.median_points, round(phq9.median_percent)) == (-14, -78)
    # GAD-7 15 -> 7: a response (at least half below), not a remission (7 is not below 5)
    assert str(gad7.response) == "1 of 1, 100 %" and str(gad7.remission) == "0 of 1, 0 %"
    row = next(r for r in found.rows if r.scale.key == "phq9")
    assert (row.baseline, row.post_induction, row.change, row.response, row.remission) == (18, 4, (-14, -14 * 100 / 18), True, True)


def test_a_course_still_in_induction_is_not_counted(session):
    dana = course(session, patient(session, "p1"), attended=3, scheduled=3)
    history(session, dana, "phq9", 18, 11)
    found = outcomes.outcomes(session, Filters())
    assert found.overall.courses == 0 and found.rows == ()


def test_a_shorter_series_finishes_when_its_last_infusion_is_attended(session):
    sam = course(session, patient(session, "p1"), attended=4, planned=4)
    history(session, sam, "phq9", 20, 12, occasions=("baseline", "infusion_4"))
    found = outcomes.outcomes(session, Filters())
    assert found.overall.courses == 1 and only(found, "phq9").measured == Share(1, 1)
    assert found.rows[0].induction_ended_at == START + timedelta(days=6)


def test_no_post_induction_score_is_counted_among_the_courses_but_not_measured(session):
    maya = course(session, patient(session, "p1"))
    history(session, maya, "phq9", 18, 11)  # the questionnaire before infusion 3 is mid-induction
    scored(session, maya, "phq9", "infusion_6", 0, START + timedelta(days=9), status=SENT)  # never answered
    found = outcomes.outcomes(session, Filters())
    phq9 = only(found, "phq9")
    assert str(phq9.measured) == "0 of 1, 0 %" and str(phq9.response) == "none to count"
    assert phq9.median_points is None
    assert (found.rows[0].baseline, found.rows[0].post_induction, found.rows[0].response) == (18, None, None)


def test_a_score_in_the_weeks_after_induction_counts_and_one_months_later_does_not(session):
    maya = course(session, patient(session, "p1"))
    history(session, maya, "phq9", 18)
    scored(session, maya, "phq9", "maintenance", 6, START + timedelta(days=10 + 40))
    assert outcomes.outcomes(session, Filters()).rows[0].post_induction is None
    scored(session, maya, "phq9", "maintenance", 9, START + timedelta(days=10 + 14))
    assert outcomes.outcomes(session, Filters()).rows[0].post_induction == 9


def test_a_baseline_of_zero_has_a_change_in_points_but_no_percent_and_no_response(session):
    maya = course(session, patient(session, "p1"))
    history(session, maya, "phq9", 0, 0, 2)
    phq9 = only(outcomes.outcomes(session, Filters()), "phq9")
    assert phq9.measured == Share(1, 1) and phq9.median_points == 2 and phq9.median_percent is None
    assert str(phq9.response) == "none to count"
    assert str(phq9.remission) == "none to count"  # never at or above 5, so never in remission


def test_a_baseline_below_the_threshold_does_not_count_as_remission(session):
    low = course(session, patient(session, "p1"))
    history(session, low, "phq9", 4, 2, 1)
    high = course(session, patient(session, "p2"))
    history(session, high, "phq9", 16, 10, 9)
    phq9 = only(outcomes.outcomes(session, Filters()), "phq9")
    assert str(phq9.remission) == "0 of 1, 0 %"  # only the course that started at 16 could remit
    assert str(phq9.response) == "1 of 2, 50 %"  # 4 -> 1 is a response; 16 -> 9 is not
    assert phq9.median_points == (-3 + -7) / 2


def test_two_courses_of_one_patient_are_two_courses_and_one_patient(session):
    person = patient(session, "p1")
    first = course(session, person, start=START)
    history(session, first, "phq9", 20, 15, 12)
    second = course(session, person, start=START + timedelta(days=90), condition="anxiety")
    history(session, second, "phq9", 16, 9, 3)
    found = outcomes.outcomes(session, Filters(zone="America/New_York"))
    assert (found.overall.patients, found.overall.courses) == (1, 2)
    assert str(only(found, "phq9").response) == "1 of 2, 50 %"
    assert [(g.label, g.courses) for g in found.by_condition] == [("depression", 1), ("anxiety", 1)]
    assert [g.label for g in found.by_month] == ["2026-09", "2026-12"]
    assert [(r.course_id, r.baseline, r.post_induction) for r in found.rows] == [(first.id, 20, 12), (second.id, 16, 3)]


def test_filters_by_condition_and_by_the_day_induction_ended(session):
    depressed = course(session, patient(session, "p1"))
    history(session, depressed, "phq9", 18, 11, 4)
    unrecorded = course(session, patient(session, "p2"), condition=None, start=START + timedelta(days=30))
    history(session, unrecorded, "phq9", 12, 8, 7)
    assert outcomes.outcomes(session, Filters(condition="depression")).overall.courses == 1
    assert [r.course_id for r in outcomes.outcomes(session, Filters(condition=NOT_RECORDED)).rows] == [unrecorded.id]
    assert outcomes.outcomes(session, Filters(condition="ptsd")).overall.courses == 0
    # induction ended 2026-09-11 and 2026-10-11
    assert [r.course_id for r in outcomes.outcomes(session, Filters(ended_from=date(2026, 10, 1))).rows] == [unrecorded.id]
    assert [r.course_id for r in outcomes.outcomes(session, Filters(ended_to=date(2026, 9, 11))).rows] == [depressed.id]
    assert [g.label for g in outcomes.outcomes(session, Filters()).by_condition] == ["depression", "not recorded"]
