"""Issue 20, item 5: questionnaires that measure honestly, as staff and the API show them.

A PHQ-9 stopped by text after a negative PHQ-2 is "PHQ-2 screen negative (score N)", never a PHQ-9
total, and never a response or a remission: not in the API, not on the outcomes page, not on the
patient page, not in the PDF. PCL-5 response is a drop of PCL5_RESPONSE_POINTS points (10 by
default). The scales say what their published forms say.
"""
from __future__ import annotations

import secrets
from datetime import timedelta

import pypdfium2 as pdfium
import pytest
from sqlalchemy import select

from reminders.measures.questionnaires import record_answer
from reminders.models import Questionnaire
from reminders.models.measures import BY_SMS, SENT
from reminders.scales import get_scale
from tests.test_measures_outcomes import START, course, history, patient

RESPONSE_CELL = '<td data-label="Response">{}</td>'
REMISSION_CELL = '<td data-label="Remission">{}</td>'


@pytest.fixture
def points():
    return None


@pytest.fixture
def settings(configure, tmp_path, points):
    """The app's settings, with PCL5_RESPONSE_POINTS when a test names `points`."""
    from reminders.migrations import upgrade

    extra = {} if points is None else {"PCL5_RESPONSE_POINTS": str(points)}
    result = configure(DATABASE_URL=f"sqlite:///{tmp_path / 'reminders.db'}", **extra)
    upgrade(result.effective_database_url)
    return result


def screened_out_by_sms(session, settings, row, occasion: str, taken, item1: int, item2: int) -> Questionnaire:
    """The patient answers a PHQ-9 by text: a PHQ-2 below 3 stops it after item 9 (asked anyway)."""
    q = Questionnaire(occasion_key=secrets.token_hex(8), token=secrets.token_hex(8), patient_id=row.patient_id,
                      course_id=row.id, scale="phq9", occasion=occasion, channel=BY_SMS, status=SENT, answers={},
                      screened_out=False, safety_raised=False, sent_at=taken - timedelta(hours=2),
                      expires_at=taken + timedelta(days=7))
    session.add(q)
    session.flush()
    for item, value in ((1, item1), (2, item2), (9, 0)):
        record_answer(session, settings, q, item, value, taken)
    return q


def seed_screen_negative(sessions, settings) -> int:
    """Maya: a PHQ-9 of 18 at baseline, then by text a PHQ-2 of 2 before infusion 6 (induction over)."""
    with sessions() as session:
        maya = course(session, patient(session, "p1"))
        history(session, maya, "phq9", 18, occasions=("baseline",))
        q = screened_out_by_sms(session, settings, maya, "infusion_6", START + timedelta(days=9), 1, 1)
        assert (q.status, q.score, q.band, q.screened_out) == ("completed", None, "screen_negative", True)
        session.commit()
        return maya.patient_id


def pdf_text(data: bytes) -> str:
    document = pdfium.PdfDocument(data)
    return "\n".join(page.get_textpage().get_text_range() for page in document).replace("\r", "")


# ---------------------------------------------------------------- a screened-out PHQ-2

def test_a_screened_out_phq2_after_a_baseline_of_18_is_no_response_in_the_api(
        settings, sessions, client, api_headers):
    seed_screen_negative(sessions, settings)
    body = client.get("/api/v1/measures?patient_external_id=p1", headers=api_headers).json
    baseline, screen = body["questionnaires"]
    assert (baseline["score"], baseline["screen"]) == (18, None)
    assert (screen["screen"], screen["screen_name"], screen["screen_score"], screen["score"]) == \
        ("negative", "PHQ-2", 2, None)
    assert (screen["band"], screen["band_label"], screen["screened_out"]) == \
        ("screen_negative", "PHQ-2 screen negative (score 2)", True)
    phq9 = body["summary"]["phq9"]
    assert phq9["baseline"]["score"] == 18 and phq9["latest"]["score"] == 18  # the screen is not a score
    assert (phq9["response"], phq9["remission"], phq9["change_points"]) == (False, None, None)
    assert [(s["screen"], s["screen_score"], s["label"]) for s in phq9["screen_negatives"]] == \
        [("negative", 2, "PHQ-2 screen negative (score 2)")]


def test_a_screened_out_phq2_is_no_response_or_remission_on_the_outcomes_page(settings, sessions, staff_client):
    seed_screen_negative(sessions, settings)
    text = staff_client.get("/outcomes").text
    assert "1 patient finished induction (1 course)" in text
    assert RESPONSE_CELL.format("0 of 0, none to count") in text or RESPONSE_CELL.format("none to count") in text
    assert "1 of 1" not in text
    assert "PHQ-2 screen negative" in text  # how it is counted: never toward response or remission
    rows = staff_client.get("/outcomes.csv").text.splitlines()
    assert rows[1].split(",")[4:] == ["18", "", "", "", "", ""]  # baseline 18, no post-induction score


def test_a_screened_out_phq2_reads_as_screen_negative_on_the_patient_page_and_in_the_pdf(
        settings, sessions, staff_client):
    patient_id = seed_screen_negative(sessions, settings)
    page = staff_client.get(f"/patients/{patient_id}").text
    section = page[page.index('id="measures"'):]
    assert "PHQ-2 screen negative (score 2)" in section and "not a PHQ-9 total" in section
    assert "measure-flag\">Response" not in section and "measure-flag\">Remission" not in section

    report = staff_client.get(f"/patients/{patient_id}/report").text
    assert "PHQ-2 screen negative (score 2)" in report
    assert "<dt>Response</dt><dd>Yes" not in report and "<dt>Remission</dt><dd>Yes" not in report

    response = staff_client.get(f"/patients/{patient_id}/report.pdf")
    assert response.status_code == 200
    text = pdf_text(response.data)
    assert "Baseline 18" in text and "latest 18" in text
    assert "PHQ-2 screen negative (score 2)" in text
    assert "Response: yes" not in text and "Remission: yes" not in text
    assert "Response: not yet known" in text


def test_a_screened_out_row_stored_with_a_total_before_the_change_still_counts_for_nothing(
        settings, sessions, client, api_headers):
    with sessions() as session:
        maya = course(session, patient(session, "p1"))
        history(session, maya, "phq9", 18, occasions=("baseline",))
        history(session, maya, "phq9", 2, occasions=("infusion_6",))
        old = session.scalars(select(Questionnaire).where(Questionnaire.occasion == "infusion_6")).one()
        old.screened_out = True  # stored the old way: unasked items as 0, a "total" of 2
        session.commit()
    body = client.get("/api/v1/measures?patient_external_id=p1", headers=api_headers).json
    assert body["questionnaires"][1]["score"] is None and body["questionnaires"][1]["screen"] == "negative"
    assert (body["summary"]["phq9"]["response"], body["summary"]["phq9"]["remission"]) == (False, None)


# ---------------------------------------------------------------- PCL-5 response by points

def seed_pcl5(sessions) -> int:
    with sessions() as session:
        sam = course(session, patient(session, "p2"), condition="ptsd")
        history(session, sam, "pcl5", 52, 38, 30)
        session.commit()
        return sam.patient_id


@pytest.mark.parametrize("points, responded", [(None, True), (25, False)])
def test_pcl5_52_to_30_is_a_response_at_10_points_and_not_at_25(
        points, responded, settings, sessions, client, api_headers, staff_client):
    assert settings.pcl5_response_points == (points or 10)
    patient_id = seed_pcl5(sessions)
    summary = client.get("/api/v1/measures?patient_external_id=p2", headers=api_headers).json["summary"]["pcl5"]
    assert (summary["change_points"], summary["response"]) == (-22, responded)
    assert summary["response_rule"] == f"at least {points or 10} points below baseline"

    outcomes = staff_client.get("/outcomes").text
    assert RESPONSE_CELL.format("1 of 1, 100 %" if responded else "0 of 1, 0 %") in outcomes
    assert f"PCL-5: at least {points or 10} points below" in outcomes

    page = staff_client.get(f"/patients/{patient_id}").text
    box = page[page.index('-pcl5"'):page.index("measure-table")]
    assert ('<span class="flag flag-good measure-flag">Response</span>' in box) is responded
    pdf = pdf_text(staff_client.get(f"/patients/{patient_id}/report.pdf").data)
    assert (f"Response: yes (at least {points or 10} points below baseline)" in pdf) is responded


# ---------------------------------------------------------------- the published wording

def test_the_spanish_gad7_has_its_own_published_stem_and_answers():
    gad7, phq9 = get_scale("gad7"), get_scale("phq9")
    assert gad7.instructions.es == ("Durante las últimas 2 semanas, ¿con qué frecuencia ha sentido molestias "
                                    "por los siguientes problemas?")
    assert gad7.instructions.es != phq9.instructions.es
    assert [o.text("es") for o in gad7.options] == ["Ningún día", "Varios días", "Más de la mitad de los días",
                                                    "Casi todos los días"]


def test_the_pcl5_names_the_worst_event_on_its_first_page(settings, sessions, client):
    with sessions() as session:
        sam = course(session, patient(session, "p2"), condition="ptsd")
        q = Questionnaire(occasion_key="x", token="pcl5-token-0123456789", patient_id=sam.patient_id,
                          course_id=sam.id, scale="pcl5", occasion="baseline", status=SENT, answers={},
                          screened_out=False, safety_raised=False, sent_at=START,
                          expires_at=START + timedelta(days=3650))
        session.add(q)
        session.commit()
    text = client.get("/q/pcl5-token-0123456789/1").text
    assert "Keeping your worst event in mind" in text
    assert "in response to a very stressful experience" in text and "in the past month" in text


# ---------------------------------------------------------------- the PHQ-9 difficulty question

def test_the_phq9_difficulty_question_is_asked_after_item_9_stored_unscored_and_shown(
        settings, sessions, client, staff_client, api_headers):
    with sessions() as session:
        maya = course(session, patient(session, "p1"))
        session.add(Questionnaire(occasion_key="y", token="phq9-token-0123456789", patient_id=maya.patient_id,
                                  course_id=maya.id, scale="phq9", occasion="baseline", status=SENT, answers={},
                                  screened_out=False, safety_raised=False, sent_at=START,
                                  expires_at=START + timedelta(days=3650)))
        session.commit()
        patient_id = maya.patient_id
    token = "phq9-token-0123456789"
    for item, value in enumerate([2, 2, 1, 1, 0, 0, 0, 0, 0], start=1):
        response = client.post(f"/q/{token}/{item}", data={"answer": str(value)})
        assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/q/{token}/extra")
    asked = client.get(f"/q/{token}/extra").text
    assert "how difficult have these problems made it for you" in asked and "Somewhat difficult" in asked
    done = client.post(f"/q/{token}/extra", data={"answer": "1"})
    assert done.headers["Location"].endswith(f"/q/{token}/done")

    first = client.get("/api/v1/measures?patient_external_id=p1", headers=api_headers).json["questionnaires"][0]
    assert (first["score"], first["difficulty"], first["difficulty_label"]) == (6, 1, "Somewhat difficult")
    page = staff_client.get(f"/patients/{patient_id}").text
    assert "Difficulty: Somewhat difficult" in page
