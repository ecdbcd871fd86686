"""The patient page's measures in Chromium: the PHQ-9 and GAD-7 charts drawn and readable, the
flags beside them, and the report one click away.

Uses the set-up of test_staff_browser.py (Chromium, the seeded clinic, screenshots).
"""
from __future__ import annotations

import pytest

from tests.browser.test_staff_browser import (  # noqa: F401 - fixtures
    CHROMIUM, TABLET, base_url, page, settings, shot, sign_in,
)
from tests.test_staff_measures import seed_course

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed at /usr/bin/chromium"),
]


@pytest.fixture
def clinic(settings, sessions):
    from tests.browser.seed import seed_clinic

    ids = seed_clinic(settings, sessions)
    with sessions() as session:
        ids["rosa"] = seed_course(session, settings, "p-rosa", "Rosa", "Diaz", "+12025550133")["patient"]
    return ids


def test_the_patient_page_charts_each_scale_with_its_flags(page, clinic):
    from playwright.sync_api import expect

    sign_in(page)
    page.goto(f"/patients/{clinic['rosa']}")
    expect(page.get_by_role("heading", name="Rosa Diaz")).to_be_visible()
    measures = page.locator("#measures")
    expect(measures.get_by_role("heading", name="Measures")).to_be_visible()
    phq9 = measures.get_by_role("img", name="PHQ-9 scores over the course")
    gad7 = measures.get_by_role("img", name="GAD-7 scores over the course")
    expect(phq9).to_be_visible()
    expect(gad7).to_be_visible()
    for chart in (phq9, gad7):
        box = chart.bounding_box()
        assert box["width"] > 300 and box["height"] > 120, box  # drawn at a readable size, not collapsed
    expect(phq9.locator("rect.band")).to_have_count(5)
    expect(phq9.locator("g.infusion-held")).to_have_count(5)
    expect(phq9.locator("g.infusion-upcoming")).to_have_count(2)
    phq9_box = measures.locator("[id$='-phq9']")
    expect(phq9_box.locator(".measure-change")).to_have_text("14 points lower (−78 %)")
    expect(phq9_box.locator(".measure-flag")).to_have_text(["Response", "Remission"])
    expect(measures.locator("[id$='-gad7'] .measure-flag")).to_have_text(["Response"])
    expect(measures.locator(".measure-table")).to_contain_text("Item 9 answered 1: see the escalation")
    page.evaluate("window.scrollTo(0, 0)")  # the sticky menu at the top of the full-page shot
    shot(page, "patient-measures")
    page.set_viewport_size(TABLET)
    expect(phq9).to_be_visible()
    shot(page, "patient-measures-tablet")

    measures.get_by_role("link", name="Report for a referrer or payer").click()
    expect(page.get_by_role("heading", name="Measurement-based care report")).to_be_visible()
    expect(page.locator(".report-patient")).to_have_text("Rosa Diaz")
    page.emulate_media(media="print")
    expect(page.locator(".topbar")).to_be_hidden()
    expect(page.locator(".report-actions")).to_be_hidden()
    shot(page, "measures-report-print")
