"""Today and the patient page in Chromium (issue 21, items 3 and 7): a no-show is confirmed by name
and can be undone, the day's visits come first with date navigation, nothing overlaps from 320 px
to 1280 px, the menu stays on one line, the conversation is one click away.

The app runs on the test's clock (tests/browser/conftest.py), at 11:30 on the seeded clinic's day;
Chromium is Debian's. Each walk prints its clicks and seconds (run with -s) for the issue's timing
table.
"""
from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from reminders.models import Appointment, OutboxMessage
from tests.browser.seed import CLINIC_NOW
from tests.browser.serving import watched_page
from tests.browser.test_staff_browser import CHROMIUM, base_url, shot, sign_in  # noqa: F401 - fixtures
from tests.fixtures.staff import add_inbound, add_outbox, add_patient, add_visit, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed at /usr/bin/chromium"),
]

NY = ZoneInfo("America/New_York")
STAFF, ADMIN = "frontdesk@clinic.test", "admin@clinic.test"
DAY = CLINIC_NOW.astimezone(NY).date()
LAPTOP = {"width": 1280, "height": 800}
WIDTHS = (320, 768, 1280)


def clinic_time(days: int, hour: int, minute: int = 0) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hour, minute, tzinfo=NY) + timedelta(days=days)


def day_words(day) -> str:
    return f"{day:%A, %B} {day.day}"


@pytest.fixture
def clock(clock):
    """11:30 on the clinic's day: two of the morning's visits are over."""
    clock.set(clinic_time(0, 11, 30).astimezone(ZoneInfo("UTC")))
    return clock


@pytest.fixture
def settings(configure, tmp_path, clock):
    from reminders.migrations import upgrade

    result = configure(DATABASE_URL=f"sqlite:///{tmp_path / 'reminders.db'}", CLINIC_TIMEZONE="America/New_York")
    upgrade(result.effective_database_url)
    return result


@pytest.fixture
def clinic(settings, sessions, clock):
    """A busy morning: two visits over and unmarked, four to come, one left unmarked two days ago."""
    from reminders.pipeline import run_pass

    make_user(sessions, STAFF, "staff")
    make_user(sessions, ADMIN, "admin")
    people = {}
    with sessions() as session:
        for key, first, last, phone, days, hour, minute in (
            ("marcus", "Marcus", "Lee", "+12025550111", 0, 8, 0),
            ("ana", "Ana", "Ruiz", "+12025550112", 0, 9, 30),
            ("maria", "María Fernanda", "Castillo-Villalobos", "+12025550113", 0, 13, 0),
            ("sam", "Sam", "Okafor", "+12025550114", 0, 14, 30),
            ("lena", "Lena", "Park", "+12025550115", 0, 16, 0),
            ("omar", "Omar", "Haddad", "+12025550116", 0, 17, 0),
            ("ben", "Ben", "Ode", "+12025550117", -2, 9, 0),
            ("jo", "Jo", "Kim", "+12025550118", 1, 10, 0),
        ):
            patient = add_patient(session, key, first, last, phone, email=None, channel="sms")
            people[key] = add_visit(session, patient, f"{key}-1", clinic_time(days, hour, minute)).id
            if key == "marcus":  # a conversation, and a long history above it before this change
                for n in range(12):
                    add_outbox(session, patient, session.get(Appointment, people[key]), f"induction_24h_{n}", "sms",
                               "delivered", clinic_time(-30 + 2 * n, 9), body=f"Reminder {n}: your infusion tomorrow.")
                add_inbound(session, patient, "Can I have tea before my infusion?", minutes_ago=90)
        session.commit()
    run_pass(settings, clock.now)
    return people


@pytest.fixture
def page(browser, base_url):
    with watched_page(browser, viewport=LAPTOP, base_url=base_url) as page:
        yield page


def report(task: str, clicks: int, started: float) -> None:
    print(f"\n[timing] {task}: {clicks} clicks, {time.monotonic() - started:.2f} s")


def test_a_no_show_is_confirmed_by_name_and_can_be_undone(page, clinic, clock, settings, sessions):
    from playwright.sync_api import expect

    from reminders.pipeline import run_pass

    sign_in(page)
    today = page.locator("section.chosen-day")
    started = time.monotonic()
    today.get_by_role("button", name="No-show: Marcus Lee, 8:00 AM EST").click()
    expect(page.get_by_role("heading", name="Mark Marcus Lee a no-show?")).to_be_visible()
    expect(page.locator(".confirm-visit")).to_contain_text(f"{DAY:%a %b} {DAY.day}, {DAY.year}, 8:00 AM EST")
    expect(page.locator(".confirm-card")).to_contain_text("until then you can undo this and nothing is sent")
    shot(page, "no-show-confirm")
    page.get_by_role("button", name="Yes, mark Marcus Lee a no-show").click()
    expect(page.locator(".notice-ok")).to_contain_text("Marcus Lee's 8:00 AM EST visit marked no-show.")
    report("mark a no-show (front desk)", 2, started)
    undo = today.get_by_role("button", name="Undo no show: Marcus Lee, 8:00 AM EST")
    expect(undo).to_be_visible()
    expect(today.locator(f"#visit-{clinic['marcus']}")).to_contain_text("until 11:35 AM EST")

    run_pass(settings, clock.now + timedelta(minutes=1))
    clock.advance(minutes=2)
    started = time.monotonic()
    undo.click()
    expect(page.locator(".notice-ok")).to_contain_text(
        "Undone: Marcus Lee's visit at 8:00 AM EST is scheduled again. Nothing was sent to the patient.")
    report("undo a no-show (front desk)", 1, started)
    expect(today.get_by_role("button", name="No-show: Marcus Lee, 8:00 AM EST")).to_be_visible()
    for minutes in (6, 60):
        run_pass(settings, clock.now + timedelta(minutes=minutes))
    with sessions() as session:
        missed = session.scalars(select(OutboxMessage.status).where(OutboxMessage.rule == "missed_visit")).all()
    assert "sent" not in missed

    # Without an undo, the text goes once the window has closed and the Undo button is gone.
    today.get_by_role("button", name="No-show: Ana Ruiz, 9:30 AM EST").click()
    page.get_by_role("button", name="Yes, mark Ana Ruiz a no-show").click()
    expect(today.get_by_role("button", name="Undo no show: Ana Ruiz, 9:30 AM EST")).to_be_visible()
    clock.advance(minutes=6)
    page.reload()
    expect(today.locator(f"#visit-{clinic['ana']}")).to_contain_text("no show")
    expect(today.get_by_role("button", name=re.compile("Undo"))).to_have_count(0)


def test_today_opens_on_the_day_with_date_navigation(page, clinic):
    from playwright.sync_api import expect

    sign_in(page)
    heading = page.locator("section.chosen-day h2")
    expect(heading).to_have_text(f"Today · {day_words(DAY)}")
    first = page.locator("section.chosen-day .visit-row").first
    expect(first).to_contain_text("Marcus Lee")
    box = first.bounding_box()
    assert box["y"] + box["height"] <= LAPTOP["height"], box  # above the fold on a laptop
    to_mark = page.locator(".to-mark")
    expect(to_mark).to_contain_text("Ben Ode")
    expect(to_mark).not_to_contain_text("Marcus Lee")  # the day's own visits are marked in its list
    expect(page.locator("section.chosen-day")).to_contain_text("Not marked yet")
    shot(page, "today-day")

    started = time.monotonic()
    page.get_by_role("link", name=re.compile("^Next day")).click()
    expect(heading).to_have_text(f"Tomorrow · {day_words(DAY + timedelta(days=1))}")
    report("see tomorrow's visits (front desk)", 1, started)
    expect(page).to_have_url(re.compile(rf"\?day={DAY + timedelta(days=1)}$"))
    expect(page.locator("section.chosen-day")).to_contain_text("Jo Kim")

    page.get_by_role("link", name=re.compile("^← Previous day")).click()
    expect(heading).to_have_text(f"Today · {day_words(DAY)}")
    started = time.monotonic()
    page.get_by_label("Day", exact=True).fill((DAY - timedelta(days=2)).isoformat())
    page.get_by_role("button", name="Show day").click()
    expect(heading).to_have_text(day_words(DAY - timedelta(days=2)))
    report("open a chosen day (front desk)", 2, started)
    expect(page.locator("section.chosen-day")).to_contain_text("Ben Ode")
    page.get_by_role("link", name="Today", exact=True).last.click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(heading).to_have_text(f"Today · {day_words(DAY)}")


def overlaps(page) -> list[str]:
    """Pairs of pieces of one visit line (time, name, tags, flags, place, buttons) whose boxes
    intersect, and whether the page is wider than the window."""
    return page.evaluate("""() => {
      const found = [];
      const pieces = ['.visit-row-time', '.visit-row-who > a', '.visit-row-who .tag', '.visit-todo > li',
                      '.visit-row-place', '.visit-actions button', '.to-mark-who > a', '.to-mark-when'];
      for (const line of document.querySelectorAll('.visit-row-line, .to-mark-visit')) {
        const boxes = pieces.flatMap(s => [...line.querySelectorAll(s)])
          .map(e => [e, e.getBoundingClientRect()]).filter(([, r]) => r.width > 0 && r.height > 0);
        for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
          const [a, r] = boxes[i], [b, q] = boxes[j];
          if (a.contains(b) || b.contains(a)) continue;
          const x = Math.min(r.right, q.right) - Math.max(r.left, q.left);
          const y = Math.min(r.bottom, q.bottom) - Math.max(r.top, q.top);
          if (x > 1 && y > 1) found.push(`${a.textContent.trim()} / ${b.textContent.trim()}`);
        }
      }
      const root = document.documentElement;
      if (root.scrollWidth > root.clientWidth + 1) found.push(`page ${root.scrollWidth} px wide in ${root.clientWidth}`);
      return found;
    }""")


def test_nothing_overlaps_from_320_px_and_targets_are_24_px(page, clinic):
    sign_in(page)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto("/")
        assert overlaps(page) == [], width
        small = page.evaluate("""() => [...document.querySelectorAll('main a, main button, main input')]
            .filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height < 24; })
            .filter(e => !e.closest('p, li.flag, .muted, summary'))
            .map(e => e.textContent.trim() || e.name)""")
        assert small == [], (width, small)
        shot(page, f"today-{width}")


def test_the_menu_stays_on_one_line_at_1280_px(page, clinic):
    sign_in(page, ADMIN)
    page.set_viewport_size(LAPTOP)
    page.goto("/")
    for width in (1280, 1440, 1920):
        page.set_viewport_size({"width": width, "height": 800})
        tops = page.evaluate("() => [...document.querySelectorAll('.nav a')].map(a => Math.round(a.getBoundingClientRect().top))")
        assert len(tops) >= 9 and len(set(tops)) == 1, (width, tops)  # one line
        clashes = page.evaluate("""() => {
          const nav = document.querySelector('.nav');
          const others = [...document.querySelectorAll('.topbar > *:not(.nav)')]
            .map(e => e.getBoundingClientRect()).filter(r => r.width > 0);
          const links = [...nav.querySelectorAll('a')].map(a => a.getBoundingClientRect());
          const hit = (r, q) => Math.min(r.right, q.right) - Math.max(r.left, q.left) > 1
                                && Math.min(r.bottom, q.bottom) - Math.max(r.top, q.top) > 1;
          return links.filter(l => others.some(o => hit(l, o))).length
                 + (nav.scrollWidth > nav.clientWidth + 1 ? 100 : 0);
        }""")
        assert clashes == 0, width  # nothing under another, nothing cut off
        header = page.evaluate("() => document.querySelector('.topbar').getBoundingClientRect().height")
        assert header < 120, (width, header)
        shot(page, f"menu-{width}")


def test_the_conversation_is_one_click_away_on_the_patient_page(page, clinic):
    from playwright.sync_api import expect

    sign_in(page)
    page.locator("section.chosen-day").get_by_role("link", name="Marcus Lee").click()
    expect(page.get_by_role("heading", name="Marcus Lee", exact=True)).to_be_visible()
    sections = page.get_by_role("navigation", name="Sections of this page")
    for name in ("Visits", "Conversation", "Check-ins", "Measures", "Contact"):
        expect(sections.get_by_role("link", name=name)).to_be_visible()
    started = time.monotonic()
    sections.get_by_role("link", name="Conversation").click()
    expect(page).to_have_url(re.compile(r"#messages$"))
    heading = page.locator("#timeline-head")
    expect(heading).to_be_in_viewport()
    report("reach the conversation on the patient page (nurse)", 1, started)
    box = heading.bounding_box()
    topbar = page.locator(".topbar").bounding_box()
    assert box["y"] >= topbar["y"] + topbar["height"] - 1, (box, topbar)  # not under the sticky header
    expect(page.locator("#messages")).to_contain_text("Can I have tea before my infusion?")
