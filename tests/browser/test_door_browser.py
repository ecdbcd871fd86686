"""In Chromium: bad data caught at the door (a zone that is a fixed offset, a possible duplicate
patient, an overlapping visit, a course over a clinic holiday) and accounts (an admin resets a
password and changes a role; the user chooses a new password; a form whose session ended keeps
its text). Each story prints its clicks and seconds for the issue's timing table."""
from __future__ import annotations

import time
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from reminders.models import InboundMessage, Patient, StaffSession
from tests.browser.seed import ADMIN, CLINIC_NOW, CLINIC_ZONE, STAFF
from tests.browser.serving import watched_page
from tests.browser.test_staff_browser import CHROMIUM, TABLET, base_url, clinic, sign_in  # noqa: F401 - fixtures
from tests.fixtures.staff import PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed at /usr/bin/chromium"),
]
LAPTOP = {"width": 1280, "height": 800}


def week_after_next_monday() -> date:
    today = CLINIC_NOW.astimezone(ZoneInfo(CLINIC_ZONE)).date()
    return today + timedelta(days=(7 - today.weekday()) + 7)


HOLIDAY = week_after_next_monday() + timedelta(days=2)  # a Wednesday


@pytest.fixture
def settings(configure, tmp_path, clock):
    from reminders.migrations import upgrade

    result = configure(DATABASE_URL=f"sqlite:///{tmp_path / 'reminders.db'}", CLINIC_TIMEZONE=CLINIC_ZONE,
                       CLINIC_HOLIDAYS=HOLIDAY.isoformat())
    upgrade(result.effective_database_url)
    return result


@pytest.fixture(params=[LAPTOP, TABLET], ids=["laptop", "tablet"])
def page(browser, base_url, request):
    # axe-core is injected as an inline script, which the app's CSP refuses: this context lets it in.
    with watched_page(browser, viewport=request.param, base_url=base_url, bypass_csp=True) as page:
        yield page


def no_axe_violations(page, state: str) -> None:
    """axe-core (tests/browser/node_modules, as test_accessibility_browser.py uses it) on the page now."""
    from tests.browser.test_accessibility_browser import AXE, violations

    if not AXE.exists():
        return
    found = violations(page)
    assert found == [], f"{state}: {found}"


class Stopwatch:
    """Clicks and seconds of one task, printed for the timing table (pytest -s shows them)."""

    def __init__(self, task: str, role: str):
        self.task, self.role, self.clicks, self.started = task, role, 0, time.monotonic()

    def click(self, locator) -> None:
        self.clicks += 1
        locator.click()

    def untimed(self, check, *args) -> None:
        """A check of the test's own (axe-core), not counted in the task's seconds."""
        began = time.monotonic()
        check(*args)
        self.started += time.monotonic() - began

    def done(self) -> float:
        seconds = time.monotonic() - self.started
        print(f"\nTIMING | {self.task} | {self.role} | {self.clicks} clicks | {seconds:.1f} s")
        return seconds


def test_front_desk_is_stopped_at_the_door(page, clinic, sessions):
    from playwright.sync_api import expect

    sign_in(page)
    # A new patient typed with "EST", who turns out to share Maya's name: the zone is refused with
    # the region to use, then the possible duplicate is shown before anything is created.
    watch = Stopwatch("new patient: EST refused, duplicate shown, created anyway", "front desk")
    page.goto("/patients/new")
    page.get_by_label("First name").fill("Maya")
    page.get_by_label("Last name").fill("Lopez")
    page.get_by_label("Mobile phone").fill("(202) 555-0111")
    page.get_by_label("Time zone").fill("EST")
    watch.click(page.get_by_role("button", name="Save patient"))
    expect(page.locator("#err-timezone")).to_have_text("EST is a fixed offset (no summer time); use America/New_York.")
    expect(page.get_by_label("Time zone")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Time zone").fill("America/New_York")
    watch.click(page.get_by_role("button", name="Save patient"))
    duplicates = page.locator("#possible-duplicates")
    expect(duplicates).to_contain_text("This patient may already be on file")
    expect(duplicates).to_contain_text("Maya Lopez, (202) 555-0143 (same name)")
    expect(duplicates.get_by_role("link", name="Use Maya Lopez")).to_have_attribute("href", f"/patients/{clinic['maya']}")
    watch.untimed(no_axe_violations, page, "possible duplicates shown")
    watch.click(duplicates.get_by_role("button", name="Create Maya Lopez anyway"))
    expect(page.locator(".notice-ok")).to_contain_text("Maya Lopez saved.")
    watch.done()
    with sessions() as session:
        assert len(session.scalars(select(Patient).where(Patient.first_name == "Maya")).all()) == 2

    # The new Maya: a course over the holiday week skips the Wednesday holiday.
    watch = Stopwatch("course over a holiday week", "front desk")
    watch.click(page.get_by_role("link", name="+ New induction course"))
    page.get_by_label("First visit date").fill(week_after_next_monday().isoformat())
    page.get_by_label("Time (America/New_York)").fill("09:00")
    page.get_by_label("Number of visits").fill("3")
    expect(page.locator(".page-head")).to_contain_text(f"or on a clinic holiday ({HOLIDAY:%b} {HOLIDAY.day})")
    watch.click(page.get_by_role("button", name="Preview"))
    visits = page.locator(".course-visits li")
    expect(visits).to_have_count(3)
    friday = HOLIDAY + timedelta(days=2)
    expect(visits.nth(1)).to_contain_text(f"{friday:%a %b} {friday.day},")
    watch.click(page.get_by_role("button", name="Book 3 visits"))
    expect(page.locator(".notice-ok")).to_contain_text("3 visits booked")
    watch.done()

    # The same patient twice at once: refused, naming the visit it would overlap.
    watch = Stopwatch("visit overlapping another refused", "front desk")
    watch.click(page.get_by_role("link", name="+ Book a visit"))
    page.get_by_label("Date", exact=True).fill(friday.isoformat())
    page.get_by_label("Time (America/New_York)").fill("09:30")
    watch.click(page.get_by_role("button", name="Book visit"))
    expect(page.locator("#err-time")).to_contain_text(
        f"Maya Lopez already has an induction infusion then: {friday:%a %b} {friday.day}, {friday.year}, 9:00 AM")
    expect(page.locator("#err-time")).to_contain_text("Choose another time, or change that visit.")
    watch.done()
    no_axe_violations(page, "overlapping visit refused")
    for selector in ("#err-time", ".page-head h1"):  # nothing runs off the screen on a laptop or a tablet
        box = page.locator(selector).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= page.viewport_size["width"]


def test_an_admin_resets_a_password_and_changes_a_role(page, browser, base_url, clinic):
    from playwright.sync_api import expect

    sign_in(page, ADMIN)
    watch = Stopwatch("reset a password, change a role", "admin")
    page.goto("/admin/users")
    row = page.locator("tr").filter(has_text=STAFF)
    watch.click(row.locator("summary"))  # opens the reset form under it
    watch.click(row.get_by_role("button", name=f"Reset the password of {STAFF}"))
    handed = page.locator(".password-handover")
    expect(handed).to_contain_text(f"Password reset for {STAFF}")
    given = page.locator(".temporary-password").inner_text()
    row = page.locator("tr").filter(has_text=STAFF)
    row.get_by_label(f"Role of {STAFF}", exact=True).select_option("admin")
    watch.click(row.get_by_role("button", name=f"Change role of {STAFF}"))
    expect(page.locator(".notice-ok")).to_contain_text(f"{STAFF} is now admin.")
    row = page.locator("tr").filter(has_text=STAFF)
    row.get_by_label(f"Role of {STAFF}", exact=True).select_option("staff")
    watch.click(row.get_by_role("button", name=f"Change role of {STAFF}"))
    expect(page.locator(".notice-ok")).to_contain_text(f"{STAFF} is now staff.")
    expect(page.locator("tr").filter(has_text=STAFF)).to_contain_text("new password due at sign-in")
    watch.done()
    page.locator("tr").filter(has_text=STAFF).locator("summary").click()  # the reset form open, too
    no_axe_violations(page, "users page, a reset form open")

    with watched_page(browser, viewport=page.viewport_size, base_url=base_url, bypass_csp=True) as desk:
        watch = Stopwatch("sign in after a reset, choose a new password", "front desk")
        desk.goto("/")
        desk.get_by_label("Email").fill(STAFF)
        desk.get_by_label("Password").fill(given)
        watch.click(desk.get_by_role("button", name="Sign in"))
        expect(desk.get_by_role("heading", name="Choose a new password")).to_be_visible()
        desk.goto("/patients/")  # nothing else opens until then
        expect(desk.get_by_role("heading", name="Choose a new password")).to_be_visible()
        watch.untimed(no_axe_violations, desk, "the new password page")
        desk.get_by_label("The password you were given").fill(given)
        desk.get_by_label("New password", exact=True).fill("front desk's own 2026")
        desk.get_by_label("New password again").fill("front desk's own 2026")
        watch.click(desk.get_by_role("button", name="Change password"))
        expect(desk.locator(".notice-ok")).to_contain_text("sign in with the one you chose")
        expect(desk.get_by_role("heading", name="Today", exact=True)).to_be_visible()
        watch.done()


def test_a_form_whose_session_ended_keeps_its_text(page, clinic, sessions, clock):
    from playwright.sync_api import expect

    typed = "Called Maya: her husband drives her at 5, she will text if it changes."
    with sessions() as session:
        item = session.scalar(select(InboundMessage).where(InboundMessage.body.like("Can my husband drive me%")))
    sign_in(page)
    page.goto(f"/inbox/{item.id}")
    note = page.get_by_label("Note for the team (who you called, what was agreed)")
    note.fill(typed)
    with sessions() as session:  # the session ends meanwhile (signed out elsewhere, or run out)
        session.execute(update(StaffSession).values(revoked_at=clock.now))
        session.commit()
    watch = Stopwatch("session ended mid-form: sign in, text kept", "front desk")
    watch.click(page.get_by_role("button", name="Save and mark done"))
    expect(page.locator(".notice-warn")).to_contain_text("Your session ended before this was sent")
    page.get_by_label("Email").fill(STAFF)
    page.get_by_label("Password").fill(PASSWORD)
    watch.click(page.get_by_role("button", name="Sign in"))
    expect(page).to_have_url(f"{page.url.split('/inbox')[0].split('/login')[0]}/inbox/{item.id}")
    note = page.get_by_label("Note for the team (who you called, what was agreed)")
    expect(note).to_have_value(typed)
    expect(note).to_be_focused()
    expect(page.locator(".unsent-restored")).to_contain_text("What you typed is back in the form")
    watch.untimed(no_axe_violations, page, "a form given back its text")
    watch.click(page.get_by_role("button", name="Save and mark done"))
    expect(page.locator(".notice-ok")).to_contain_text("marked done")
    watch.done()
    # The page that says "marked done" forgets the kept text once its script has run.
    page.wait_for_function("() => window.sessionStorage.getItem('reminders.unsentForm') === null")
