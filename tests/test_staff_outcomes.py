"""The clinic outcomes page and its CSV export, as staff see them."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

from sqlalchemy import select

from reminders.models import AuditEntry
from tests.test_measures_outcomes import START, course, history, patient


SCALE_CELL = '<td data-label="Scale">{}</td>'


def seed(sessions):
    with sessions() as session:
        maya = course(session, patient(session, "p1"))
        history(session, maya, "phq9", 18, 11, 4)
        history(session, maya, "gad7", 15, 9, 4)
        sam = course(session, patient(session, "p2"), condition="ptsd", start=START + timedelta(days=35))
        history(session, sam, "pcl5", 52, 38, 30)
        dana = course(session, patient(session, "p3"), start=START + timedelta(days=35))
        history(session, dana, "phq9", 20, 16, 14)
        course(session, patient(session, "p4"), attended=2, scheduled=4)  # still in induction: not counted
        session.commit()


def test_outcomes_need_a_sign_in(client):
    assert client.get("/outcomes").status_code == 302
    assert client.get("/outcomes.csv").status_code == 302


def test_outcomes_page_shows_shares_with_counts_by_condition_and_month(staff_client, sessions):
    seed(sessions)
    page = staff_client.get("/outcomes")
    assert page.status_code == 200
    text = page.text
    assert 'aria-current="page">Outcomes</a>' in text
    assert "3 patients finished induction (3 courses)" in text
    # PHQ-9: Maya 18 -> 4 (response, remission), Dana 20 -> 14 (neither)
    assert "<td data-label=\"Response\">1 of 2, 50 %</td>" in text
    assert "<td data-label=\"Remission\">1 of 2, 50 %</td>" in text
    assert "-10 points (-54 %)" in text  # median of -14 and -6 points, of -78 % and -30 %
    assert "-22 points (-42 %)" in text  # PCL-5 52 -> 30
    assert "<strong>PTSD</strong>" in text and "<strong>depression</strong>" in text
    assert "<strong>2026-09</strong>" in text and "<strong>2026-10</strong>" in text
    assert "How each number is counted" in text


def test_outcomes_filters_by_condition_and_dates(staff_client, sessions):
    seed(sessions)
    ptsd = staff_client.get("/outcomes?condition=ptsd").text
    assert "1 patient finished induction (1 course)" in ptsd
    assert SCALE_CELL.format("PHQ-9") not in ptsd and SCALE_CELL.format("PCL-5") in ptsd
    september = staff_client.get("/outcomes?from=2026-09-01&to=2026-09-30").text
    assert "1 patient finished induction (1 course)" in september
    assert SCALE_CELL.format("PCL-5") not in september
    nothing = staff_client.get("/outcomes?from=2027-01-01").text
    assert "No course matching these filters has finished induction." in nothing
    typo = staff_client.get("/outcomes?from=2026-13-01")
    assert typo.status_code == 200 and "is not a date" in typo.text and "3 patients finished induction" in typo.text


def test_outcomes_csv_has_a_line_per_course_and_scale_and_is_audited(staff_client, sessions):
    seed(sessions)
    response = staff_client.get("/outcomes.csv?condition=depression")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["patient_external_id"], r["scale"], r["baseline"], r["post_induction"], r["change_points"],
             r["change_percent"], r["response"], r["remission"]) for r in rows] == [
        ("p1", "PHQ-9", "18", "4", "-14", "-78", "yes", "yes"),
        ("p1", "GAD-7", "15", "4", "-11", "-73", "yes", "yes"),
        ("p3", "PHQ-9", "20", "14", "-6", "-30", "no", "no"),
    ]
    assert {r["condition"] for r in rows} == {"depression"} and rows[0]["induction_ended_on"] == "2026-09-11"
    with sessions() as session:
        assert session.scalars(select(AuditEntry).where(AuditEntry.action == "export_outcomes")).all()


def test_the_demo_clinic_has_outcomes_to_show(staff_client, settings, sessions):
    from reminders.demo import load_demo

    load_demo(settings)
    load_demo(settings)  # twice: the questionnaires are not added again
    text = staff_client.get("/outcomes").text
    assert "2 patients finished induction (2 courses)" in text
    for scale in ("PHQ-9", "GAD-7", "PCL-5"):
        assert SCALE_CELL.format(scale) in text
    assert "-14 points (-78 %)" in text and "-11 points (-73 %)" in text and "-22 points (-42 %)" in text
    assert "<strong>PTSD</strong>" in text and "<strong>depression</strong>" in text
    rows = list(csv.DictReader(io.StringIO(staff_client.get("/outcomes.csv").text)))
    assert sorted((r["patient_external_id"], r["scale"], r["baseline"], r["post_induction"], r["response"],
                   r["remission"]) for r in rows) == [
        ("demo-p4", "PCL-5", "52", "30", "yes", "yes"),  # 22 points lower: a response (10 points or more)
        ("demo-p6", "GAD-7", "15", "4", "yes", "yes"),
        ("demo-p6", "PHQ-9", "18", "4", "yes", "yes"),
    ]
