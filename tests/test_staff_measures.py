"""Measures on the staff side: the patient page's charts and flags, the questionnaires CSV, and the
report for a referrer or payer as a printable page and as a PDF (rendered to images and read back)."""
from __future__ import annotations

import csv
import io
import os
import secrets
import tempfile
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from sqlalchemy import select

from reminders.measures.questionnaires import record_answer
from reminders.models import AuditEntry, Escalation, Questionnaire
from tests.conftest import clock_now
from tests.fixtures.staff import add_patient, add_visit

SVG = "{http://www.w3.org/2000/svg}"
# Where the browser tests keep their screenshots (tests/browser/test_staff_browser.py).
SCREENSHOTS = (Path(__file__).resolve().parents[1] / "docs" / "screenshots" if os.environ.get("UPDATE_SCREENSHOTS") == "1"
               else Path(tempfile.gettempdir()) / "reminders-screenshots")
PHQ9 = {"baseline": [3, 3, 2, 2, 2, 2, 2, 2, 0],  # 18, moderately severe
        "infusion_3": [2, 2, 1, 1, 1, 1, 1, 0, 1],  # 10, moderate, item 9 answered 1
        "infusion_6": [1, 1, 1, 0, 1, 0, 0, 0, 0]}  # 4, minimal: response and remission
GAD7 = {"baseline": [3, 2, 2, 2, 2, 2, 2],  # 15, severe
        "infusion_3": [2, 1, 1, 1, 2, 1, 1],  # 9
        "infusion_6": [1, 1, 1, 1, 1, 1, 0]}  # 6, mild: a response, not a remission
ANSWERED_DAYS_AGO = {"baseline": 21, "infusion_3": 17, "infusion_6": 1}


def ask(session, patient, visit, scale: str, occasion: str, sent_at, status: str = "sent") -> Questionnaire:
    q = Questionnaire(occasion_key=f"test:{secrets.token_hex(6)}", token=secrets.token_urlsafe(16),
                      patient_id=patient.id, course_id=visit.course_id, appointment_id=visit.id, scale=scale,
                      occasion=occasion, language="en", channel="link", status=status, answers={}, sent_at=sent_at,
                      expires_at=sent_at + timedelta(days=7))
    session.add(q)
    session.flush()
    return q


def seed_course(session, settings, external_id: str = "p-maya", first: str = "Maya", last: str = "Lopez",
                phone: str = "+12025550143") -> dict:
    """Maya, treated for depression: five infusions held, the sixth tomorrow, a maintenance visit next month;
    PHQ-9 and GAD-7 answered at baseline, before infusion 3 and before infusion 6."""
    now = clock_now()
    maya = add_patient(session, external_id, first, last, phone)
    visits = [add_visit(session, maya, f"{external_id}-v{n}", now - timedelta(days=days), status="completed")
              for n, days in enumerate((20, 18, 16, 13, 11), start=1)]
    visits.append(add_visit(session, maya, f"{external_id}-v6", now + timedelta(days=1)))
    add_visit(session, maya, f"{external_id}-m1", now + timedelta(days=30), kind="maintenance")
    course = visits[0].course
    course.condition = "depression"
    by_occasion = {"baseline": visits[0], "infusion_3": visits[2], "infusion_6": visits[5]}
    for scale, answers in (("phq9", PHQ9), ("gad7", GAD7)):
        for occasion, values in answers.items():
            when = now - timedelta(days=ANSWERED_DAYS_AGO[occasion])
            q = ask(session, maya, by_occasion[occasion], scale, occasion, when - timedelta(hours=3))
            for item, value in enumerate(values, start=1):
                record_answer(session, settings, q, item, value, when)
    ask(session, maya, visits[5], "pain", "infusion_6", now - timedelta(hours=2))  # not started yet
    stale = ask(session, maya, visits[0], "pcl5", "baseline", now - timedelta(days=25))
    record_answer(session, settings, stale, 1, 4, now - timedelta(days=24))  # started, then left to expire
    session.commit()
    return {"patient": maya.id, "course": course.id}


@pytest.fixture
def maya(settings, sessions):
    with sessions() as session:
        return seed_course(session, settings)


def charts(page: str) -> list[ET.Element]:
    found = []
    start = 0
    while (start := page.find('<svg class="measure-chart"', start)) != -1:
        end = page.index("</svg>", start) + len("</svg>")
        found.append(ET.fromstring(page[start:end]))
        start = end
    return found


def audited(sessions, action: str) -> list[AuditEntry]:
    with sessions() as session:
        return session.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()


def test_the_patient_page_shows_both_charts_the_change_response_and_remission(staff_client, maya, sessions):
    page = staff_client.get(f"/patients/{maya['patient']}").text
    section = page[page.index('id="measures"'):page.index('id="contact-head"')]
    phq9, gad7 = charts(section)
    assert phq9.find(f"{SVG}title").text == "PHQ-9 scores over the course"
    assert gad7.find(f"{SVG}title").text == "GAD-7 scores over the course"
    assert phq9.find(f"{SVG}desc").text.startswith("3 PHQ-9 scores from ")
    assert "baseline 18, latest 4 of 27" in phq9.find(f"{SVG}desc").text
    # bands shaded and named, infusions held (solid) and to come (dashed), the baseline a square
    bands = [r for r in phq9.iter(f"{SVG}rect") if (r.get("class") or "").startswith("band ")]
    assert [r.find(f"{SVG}title").text for r in bands] == [
        "Minimal 0–4", "Mild 5–9", "Moderate 10–14", "Moderately severe 15–19", "Severe 20–27"]
    marks = {g.get("class"): [] for g in phq9.iter(f"{SVG}g")}
    for g in phq9.iter(f"{SVG}g"):
        marks[g.get("class")].append(g)
    assert len(marks["infusion infusion-held"]) == 5 and len(marks["infusion infusion-upcoming"]) == 2
    assert all(g.find(f"{SVG}line").get("stroke-dasharray") is None for g in marks["infusion infusion-held"])
    assert all(g.find(f"{SVG}line").get("stroke-dasharray") for g in marks["infusion infusion-upcoming"])
    assert len(marks["score score-baseline"]) == 1
    baseline = marks["score score-baseline"][0].find(f"{SVG}title").text
    assert baseline.startswith("Baseline, ") and baseline.endswith(": PHQ-9 18 (Moderately severe)")

    phq9_box = section[section.index('-phq9"'):section.index('-gad7"')]
    gad7_box = section[section.index('-gad7"'):section.index("measure-table")]
    assert "14 points lower (−78 %)" in phq9_box
    assert '<span class="flag flag-good measure-flag">Response</span>' in phq9_box
    assert '<span class="flag flag-good measure-flag">Remission</span>' in phq9_box
    assert "9 points lower (−60 %)" in gad7_box
    assert '<span class="flag flag-good measure-flag">Response</span>' in gad7_box
    assert "measure-flag\">Remission" not in gad7_box and "Not in remission (remission is below 5)" in gad7_box
    assert "The PHQ-9 chart as a table" in phq9_box  # the table alternative

    table = section[section.index('class="measure-table"'):]
    assert "Before infusion 3" in table and "Baseline, before infusion 1" in table
    assert "Item 9 answered 1: see the escalation" in table
    with sessions() as session:
        escalation = session.scalars(select(Escalation)).one()
    assert f'href="/escalations/#escalation-{escalation.id}"' in table
    for words in ("by link", "Completed", "Sent, not started", "Expired", "Moderately severe", "Minimal"):
        assert words in table, words
    assert len(audited(sessions, "view_patient")) == 1


def test_a_patient_without_questionnaires_gets_one_line(staff_client, sessions):
    with sessions() as session:
        sam = add_patient(session, "p-sam", "Sam", "Okafor", "+12025550178", None, channel="sms")
        add_visit(session, sam, "s1", clock_now() - timedelta(days=3), status="completed")
    page = staff_client.get(f"/patients/{sam.id}").text
    section = page[page.index('id="measures"'):page.index('id="contact-head"')]
    assert "No questionnaires have been sent to this patient." in section
    assert "measure-chart" not in section and "measure-table" not in section and "/report" not in section


def test_the_questionnaires_csv_has_one_row_each_with_the_answers(staff_client, maya, sessions):
    response = staff_client.get(f"/patients/{maya['patient']}/measures.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert 'filename="questionnaires-p-maya.csv"' in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 8
    done = [(r["scale"], r["occasion"], r["score"], r["band"]) for r in rows if r["status"] == "completed"]
    assert ("phq9", "baseline", "18", "moderately_severe") in done and ("gad7", "infusion_6", "6", "mild") in done
    third = next(r for r in rows if (r["scale"], r["occasion"]) == ("phq9", "infusion_3"))
    assert [third[f"item_{n}"] for n in range(1, 10)] == ["2", "2", "1", "1", "1", "1", "1", "0", "1"]
    assert third["self_harm_answer"] == "yes" and third["escalation_id"] and third["condition"] == "depression"
    assert {r["status"] for r in rows} == {"completed", "sent", "expired"}
    assert "item_20" in rows[0]  # PCL-5 has 20 items
    assert len(audited(sessions, "export_measures")) == 1


def test_the_report_page_reads_for_a_referrer(staff_client, maya, sessions):
    response = staff_client.get(f"/patients/{maya['patient']}/report")
    assert response.status_code == 200
    page = response.text
    for words in ("The Infusion Clinic", "Measurement-based care report", "Maya Lopez", "p-maya", "depression",
                  "Infusions attended", "PHQ-9: Patient Health Questionnaire (PHQ-9)", "Before infusion 3",
                  "14 points lower", "Self-harm answers", "item 9 answered 1", "not yet acknowledged by staff",
                  "Response: a score at least 50 % below the baseline", "PCL-5 below 33"):
        assert words in page, words
    assert len(charts(page)) == 2
    summary = page[page.index("PHQ-9: Patient"):page.index("GAD-7: ")]
    assert "<dt>Response</dt><dd>Yes (at least 50 % below baseline)</dd>" in summary and "<dt>Remission</dt><dd>Yes</dd>" in summary
    assert "@media print" in (Path(__file__).resolve().parents[1] / "reminders/web/static/staff.css").read_text()
    assert len(audited(sessions, "view_report")) == 1


def test_reports_need_a_signed_in_staff_member(client, maya):
    for path in ("report", "report.pdf", "measures.csv"):
        response = client.get(f"/patients/{maya['patient']}/{path}")
        assert response.status_code == 302 and "/login" in response.headers["Location"], path


def test_the_pdf_report_opens_and_shows_the_patient_and_their_scores(staff_client, maya, sessions):
    response = staff_client.get(f"/patients/{maya['patient']}/report.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF-")
    document = pdfium.PdfDocument(response.data)
    pages = len(document)
    assert 1 <= pages <= 4
    text = ""
    for index in range(pages):
        page = document[index]
        rendered = page.render(scale=1.5).to_pil()
        image = rendered.convert("L")
        low, high = image.getextrema()
        assert high - low > 100, f"page {index + 1} looks blank"
        dark = sum(image.histogram()[:200])
        assert dark > 0.005 * image.width * image.height, f"page {index + 1} has almost nothing on it"
        if index == 0:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            rendered.save(SCREENSHOTS / "measures-report-pdf-page1.png")
        text += page.get_textpage().get_text_range() + "\n"
    for words in ("The Infusion Clinic", "Maya Lopez", "Record ID: p-maya", "Condition: depression",
                  "infusions attended: 5", "Baseline 18", "latest 4", "14 points lower (−78 %)",
                  "Response: yes", "Remission: yes", "Baseline 15", "latest 6", "item 9 answered 1",
                  "not yet acknowledged by staff", "PCL-5 below 33", "Generated"):
        assert words in text, words
    assert f"page 1 of {pages}" in text
    assert len(audited(sessions, "download_report_pdf")) == 1


def test_an_acknowledged_self_harm_answer_says_who_acknowledged_it(staff_client, maya, sessions):
    with sessions() as session:
        escalation = session.scalars(select(Escalation)).one()
        escalation.status, escalation.acknowledged_by = "acknowledged", "nurse@clinic.test"
        escalation.acknowledged_at = clock_now()
        session.commit()
    assert "acknowledged by nurse@clinic.test" in staff_client.get(f"/patients/{maya['patient']}/report").text
    document = pdfium.PdfDocument(staff_client.get(f"/patients/{maya['patient']}/report.pdf").data)
    text = "".join(document[i].get_textpage().get_text_range() for i in range(len(document)))
    assert "acknowledged by nurse@clinic.test" in text


def test_staff_see_a_self_harm_answer_named_as_such_on_the_escalations_and_patient_pages(staff_client, maya):
    escalations = staff_client.get("/escalations/").text
    assert "A self-harm answer on a questionnaire" in escalations
    assert "PHQ-9 item 9, " in escalations and "better off dead" in escalations
    patient = staff_client.get(f"/patients/{maya['patient']}").text
    assert "A self-harm answer on a questionnaire" in patient


def test_the_report_of_a_patient_without_questionnaires_says_so(staff_client, sessions):
    with sessions() as session:
        sam = add_patient(session, "p-sam", "Sam", "Okafor", "+12025550178", None, channel="sms")
    assert "No questionnaires have been sent to this patient." in staff_client.get(f"/patients/{sam.id}/report").text
    document = pdfium.PdfDocument(staff_client.get(f"/patients/{sam.id}/report.pdf").data)
    text = document[0].get_textpage().get_text_range()
    assert len(document) == 1 and "Sam Okafor" in text and "No questionnaires have been sent" in text
    assert "Instruments" not in text



def test_a_name_outside_latin_1_prints_whole_in_the_pdf(staff_client, sessions):
    with sessions() as session:
        patient = add_patient(session, "p-anh", "Ánh", "Nguyễn", "+12025550179", None, channel="sms")
        patient.first_name, patient.last_name = "Łucja Ánh", "Nguyễn-Wróbel"
        session.commit()
    document = pdfium.PdfDocument(staff_client.get(f"/patients/{patient.id}/report.pdf").data)
    text = document[0].get_textpage().get_text_range()
    assert "Łucja Ánh Nguyễn-Wróbel" in text and "?" not in text

def test_a_report_of_another_patient_is_not_found(staff_client, maya):
    assert staff_client.get(f"/patients/{maya['patient'] + 99}/report.pdf").status_code == 404


# --- The chart and the words, without a database -----------------------------------------------

def taken(scale: str, occasion: str, score: int, days: int, number: int) -> Questionnaire:
    when = clock_now() - timedelta(days=days)
    return Questionnaire(id=number, scale=scale, occasion=occasion, status="completed", score=score, band="",
                         completed_at=when, screened_out=False, safety_raised=False)


def test_one_score_draws_a_lone_baseline_and_says_the_change_is_not_known_yet():
    from reminders.measures.progress import progress
    from reminders.web.staff.measures_chart import scale_chart
    from reminders.web.staff.measures_view import ScaleView

    [p] = progress([taken("phq9", "baseline", 12, 3, 1)]).values()
    chart = scale_chart(p, [], "America/New_York", chart_id="one")
    root = ET.fromstring(str(chart))
    assert root.find(f"{SVG}desc").text.startswith("One PHQ-9 score: 12 of 27 on ")
    assert not list(root.iter(f"{SVG}polyline")) and not list(root.iter(f"{SVG}circle"))
    assert [g.get("class") for g in root.iter(f"{SVG}g")] == ["score score-baseline"]
    view = ScaleView(p, chart)
    assert (view.change_words, view.response_words, view.remission_words) == (
        "Not yet: one score so far", "Not yet known", "Not yet known")
    assert "12 (baseline)" in str(chart.table)


def test_remission_is_not_claimed_below_the_threshold_at_baseline_nor_for_pain():
    from reminders.measures.progress import progress
    from reminders.web.staff.measures_chart import scale_chart
    from reminders.web.staff.measures_view import ScaleView

    found = progress([taken("gad7", "baseline", 4, 20, 1), taken("gad7", "infusion_3", 1, 10, 2),
                      taken("pain", "baseline", 8, 20, 3), taken("pain", "infusion_3", 3, 10, 4)])
    gad7, pain = (ScaleView(p, scale_chart(p, [], "UTC", chart_id=k)) for k, p in found.items())
    assert gad7.remission_words == "Started below 5" and gad7.response_words == "Response"
    assert gad7.change_words == "3 points lower (−75 %)"
    assert pain.remission_words == "No remission threshold for this scale"
    assert pain.change_words == "5 points lower (−63 %)"  # 62.5 rounds up, as a person would
