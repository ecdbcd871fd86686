"""Booking a whole induction course, Today for the front desk and the readable mood chart, in
Chromium. The fixtures (browser, seeded clinic, app on loopback, page) are those of
test_staff_browser.py, imported from it."""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from reminders.models import Appointment, OutboxMessage, Patient, utcnow
from reminders.pipeline import run_pass
from tests.browser.test_staff_browser import (  # noqa: F401 (fixtures)
    NEXT_YEAR, SCREENSHOTS, TABLET, base_url, clinic, page, pytestmark, settings, shot, sign_in,
)


def dst_week_monday(year: int) -> date:
    """The Monday before the US clocks go forward (the second Sunday of March)."""
    first = date(year, 3, 1)
    second_sunday = first + timedelta(days=(6 - first.weekday()) % 7 + 7)
    return second_sunday - timedelta(days=6)


def test_a_six_visit_course_is_booked_in_one_form(page, clinic, sessions, settings):
    from playwright.sync_api import expect

    clinic_zone = ZoneInfo(settings.clinic_timezone)
    with sessions() as session:
        jordan = session.scalar(select(Patient).where(Patient.external_id == "p-jordan"))
        jordan.timezone = settings.clinic_timezone  # times shown once, in the clinic's zone
        session.commit()
    sign_in(page)
    page.goto(f"/patients/{jordan.id}")
    page.get_by_role("link", name="+ New induction course").click()
    expect(page.get_by_role("heading", name=re.compile("New induction course"))).to_be_visible()
    monday = dst_week_monday(NEXT_YEAR)
    page.get_by_label("First visit date").fill(monday.isoformat())
    page.get_by_label(re.compile(r"^Time")).fill("09:00")
    page.get_by_label("Monday, Wednesday and Friday").check()
    expect(page.get_by_label("Number of visits")).to_have_value("6")
    page.get_by_label("Location").fill("Suite 200")
    page.get_by_role("button", name="Preview").click()

    days = [monday + timedelta(days=d) for d in (0, 2, 4, 7, 9, 11)]  # over the weekend the clocks change
    preview = page.locator(".course-visits li")
    expect(preview).to_have_count(6)
    for item, day in zip(range(6), days):
        zone = datetime.combine(day, time(9), clinic_zone).tzname()  # EST, then EDT after the weekend
        expect(preview.nth(item)).to_have_text(f"{day:%a %b} {day.day}, {day.year}, 9:00 AM {zone}")
    shot(page, "course-form")
    page.get_by_role("button", name="Book 6 visits").click()
    expect(page.locator(".notice-ok")).to_contain_text("6 visits booked")
    lines = page.locator(".visit-line").filter(has_text=f"{NEXT_YEAR}, 9:00 AM")
    expect(lines).to_have_count(6)
    for number, day in enumerate(days, start=1):
        expect(page.locator(".visit-list")).to_contain_text(f"{day:%a %b} {day.day}, {day.year}, 9:00 AM")
    expect(lines.filter(has_text="Induction 6 of 6")).to_have_count(1)

    run_pass(settings, utcnow())  # the planner's pass, as the worker runs it
    with sessions() as session:
        visits = session.scalars(select(Appointment).where(Appointment.patient_id == jordan.id,
                                                           Appointment.kind == "induction")).all()
        assert len(visits) == 6 and not any(v.needs_planning for v in visits)
        planned = session.scalars(select(OutboxMessage.appointment_id)
                                  .where(OutboxMessage.status == "planned",
                                         OutboxMessage.appointment_id.in_([v.id for v in visits]))).all()
        assert set(planned) == {v.id for v in visits}  # every visit has its reminders planned
    page.reload()
    planned_messages = page.locator("details.planned-messages").last
    expect(planned_messages.locator("summary")).to_contain_text("Planned messages")
    planned_messages.locator("summary").click()
    expect(planned_messages.locator(".timeline-planned")).to_contain_text("planned")


def test_today_puts_what_needs_action_in_front(page, clinic):
    from playwright.sync_api import expect

    sign_in(page)
    expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()
    maya = page.locator(".visit-row").filter(has_text="Maya Lopez")
    expect(maya.locator(".visit-todo")).to_contain_text("Reschedule asked")
    expect(maya.locator(".visit-todo")).to_contain_text("First infusion")
    sam = page.locator(".visit-row").filter(has_text="Sam Okafor")
    expect(sam).to_contain_text("✓ Confirmed")
    # Message states are one click away, not on the row.
    details = sam.locator("details.visit-messages")
    expect(details.locator(".msg").first).to_be_hidden()
    details.locator("summary").click()
    expect(details.locator(".msg").first).to_be_visible()


def test_the_mood_chart_has_axis_titles_numbers_and_a_table(page, clinic):
    from playwright.sync_api import expect

    sign_in(page)
    page.goto(f"/patients/{clinic['sam']}")
    chart = page.get_by_role("img", name="Mood scores over time")
    expect(chart).to_be_visible()
    expect(chart.locator("text.axis-title")).to_have_text(["Mood (10 = best)", "Date of each infusion"])
    expect(chart.locator("text.infusion-number")).to_have_text(["1", "2", "3", "4"])
    expect(chart.locator("text.infusion-date")).to_have_count(4)
    expect(chart.locator(".score-low")).to_have_count(1)  # the 2 of "rough night"
    table = page.get_by_role("table", name=re.compile("The chart as a table"))
    expect(table).to_be_visible()
    expect(table.locator("tbody tr")).to_have_count(9)
    expect(table).to_contain_text("2 (low)")
    page.set_viewport_size(TABLET)
    size = chart.locator("text.axis-title").first.evaluate("el => getComputedStyle(el).fontSize")
    assert size == "15px"
    chart.scroll_into_view_if_needed()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("figure.chart").screenshot(path=str(SCREENSHOTS / "chart-tablet.png"))
