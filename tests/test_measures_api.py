"""GET /api/v1/measures: a patient's questionnaires and, per scale, the current course's progress."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from reminders.measures.questionnaires import record_answer
from reminders.models import Questionnaire
from reminders.pipeline import run_pass
from tests.conftest import at
from tests.helpers import book
from tests.test_measures_outcomes import scored

BASE = "https://clinic.example.org"
VISIT = "2026-10-20T10:00:00-04:00"  # the API's clock reads 2026-11-01: the links have expired by then
PHQ9_18 = {1: 3, 2: 3, 3: 3, 4: 3, 5: 2, 6: 2, 7: 2, 8: 0, 9: 0}  # item 9 (self-harm) at 0


@pytest.fixture
def measured(configure, settings):
    return configure(MEASURES_ENABLED="true", PUBLIC_BASE_URL=BASE)


def answered_baseline(session, settings):
    """Maya's first infusion: PHQ-9 and GAD-7 links go 48 h before; she answers the PHQ-9 only."""
    visit = book(session, starts_at=VISIT)
    visit.course.condition = "depression"
    session.commit()
    run_pass(settings, at("2026-10-18T10:00:00-04:00"))
    phq9 = session.scalar(select(Questionnaire).where(Questionnaire.scale == "phq9"))
    for item, value in PHQ9_18.items():
        record_answer(session, settings, phq9, item, value, at("2026-10-18T11:00:00-04:00"))
    session.commit()
    return visit


def test_questionnaires_with_answers_and_a_summary_per_scale(measured, session, client, api_headers):
    visit = answered_baseline(session, measured)
    scored(session, visit.course, "phq9", "infusion_3", 8, at("2026-10-24T09:00:00-04:00"))
    session.commit()
    response = client.get("/api/v1/measures?patient_external_id=p1", headers=api_headers)
    assert response.status_code == 200, response.json
    body = response.json
    assert (body["patient_external_id"], body["condition"]) == ("p1", "depression")
    first, gad7, later = body["questionnaires"]
    assert (first["scale"], first["occasion"], first["visit_external_id"], first["channel"], first["status"]) == \
        ("phq9", "baseline", "a1", "link", "completed")
    assert (first["score"], first["band"], first["band_label"]) == (18, "moderately_severe", "Moderately severe")
    assert first["answers"] == {str(item): value for item, value in PHQ9_18.items()}
    assert first["completed_at"].startswith("2026-10-18T15:00") and first["sent_at"].startswith("2026-10-18T14:00")
    assert (first["screened_out"], first["safety_raised"], first["expired"]) == (False, False, False)
    assert (gad7["scale"], gad7["status"], gad7["score"], gad7["answers"], gad7["expired"]) == \
        ("gad7", "sent", None, {}, True)
    assert (later["occasion"], later["score"]) == ("infusion_3", 8)
    phq9 = body["summary"]["phq9"]
    assert (phq9["baseline"]["score"], phq9["latest"]["score"], phq9["change_points"], phq9["change_percent"]) == \
        (18, 8, -10, -55.6)
    assert (phq9["response"], phq9["remission"], phq9["name"]) == (True, False, "PHQ-9")
    assert "gad7" not in body["summary"]  # nothing answered yet


def test_a_single_score_has_a_baseline_but_no_change(measured, session, client, api_headers):
    answered_baseline(session, measured)
    phq9 = client.get("/api/v1/measures?patient_external_id=p1", headers=api_headers).json["summary"]["phq9"]
    assert phq9["baseline"] == phq9["latest"] and phq9["change_points"] is None
    assert (phq9["response"], phq9["remission"]) == (False, None)


def test_a_patient_without_questionnaires_has_empty_lists(session, client, api_headers):
    book(session, starts_at=VISIT)
    body = client.get("/api/v1/measures?patient_external_id=p1", headers=api_headers).json
    assert (body["questionnaires"], body["summary"], body["condition"]) == ([], {}, None)


def test_the_summary_is_of_the_current_course(session, client, api_headers):
    visit = book(session, starts_at=VISIT)
    old = visit.course
    scored(session, old, "phq9", "baseline", 20, at("2026-01-10T09:00:00-05:00"))
    scored(session, old, "phq9", "infusion_6", 4, at("2026-01-20T09:00:00-05:00"))
    old.ended_at = at("2026-03-01T00:00:00-05:00")
    session.commit()
    book(session, starts_at=at(VISIT) + timedelta(days=30), appointment="a2")
    body = client.get("/api/v1/measures?patient_external_id=p1", headers=api_headers).json
    assert len(body["questionnaires"]) == 2 and body["summary"] == {}


def test_a_missing_or_unknown_patient_is_refused_in_json(client, api_headers, settings):
    missing = client.get("/api/v1/measures", headers=api_headers)
    assert missing.status_code == 400 and "patient_external_id" in missing.json["error"]
    assert missing.json["fields"] == ["patient_external_id"]
    unknown = client.get("/api/v1/measures?patient_external_id=nobody", headers=api_headers)
    assert unknown.status_code == 404 and unknown.json["error"] == "no patient with external_id 'nobody'"
    assert client.get("/api/v1/measures?patient_external_id=p1").status_code == 401
