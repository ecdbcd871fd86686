"""Issue 13's Done-when, on the demo clinic a new install loads: Dana's depression course shows
PHQ-9 and GAD-7 charts with response and remission, and her PDF report reads correctly once its
pages are rendered to images."""
from __future__ import annotations

import pypdfium2 as pdfium
from sqlalchemy import select

from reminders.demo import load_demo
from reminders.models import Patient
from tests.test_staff_measures import SVG, charts


def dana(settings, sessions) -> int:
    load_demo(settings)
    with sessions() as session:
        return session.scalars(select(Patient.id).where(Patient.external_id == "demo-p6")).one()


def test_the_demo_patient_course_shows_phq9_and_gad7_with_response_and_remission(staff_client, settings, sessions):
    page = staff_client.get(f"/patients/{dana(settings, sessions)}").text
    section = page[page.index('id="measures"'):page.index('id="contact-head"')]
    titles = [chart.find(f"{SVG}title").text for chart in charts(section)]
    assert titles == ["PHQ-9 scores over the course", "GAD-7 scores over the course"]
    phq9 = section[section.index('-phq9"'):section.index('-gad7"')]
    gad7 = section[section.index('-gad7"'):section.index("measure-table")]
    for box, change in ((phq9, "14 points lower (−78 %)"), (gad7, "11 points lower (−73 %)")):
        assert change in box
        assert '<span class="flag flag-good measure-flag">Response</span>' in box
        assert '<span class="flag flag-good measure-flag">Remission</span>' in box


def test_the_demo_patient_pdf_report_renders_to_pages_that_carry_her_scores(staff_client, settings, sessions):
    response = staff_client.get(f"/patients/{dana(settings, sessions)}/report.pdf")
    assert response.status_code == 200 and response.data.startswith(b"%PDF-")
    document = pdfium.PdfDocument(response.data)
    text = ""
    for page in document:
        image = page.render(scale=1.5).to_pil().convert("L")
        assert sum(image.histogram()[:200]) > 0.005 * image.width * image.height  # not a blank page
        text += page.get_textpage().get_text_range() + "\n"
    for words in ("Dana Reyes", "Record ID: demo-p6", "Condition: depression", "PHQ-9", "GAD-7",
                  "Baseline 18", "Baseline 15", "latest 4", "Response: yes", "Remission: yes"):
        assert words in text, words
