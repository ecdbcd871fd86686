"""Every staff page passes an axe-core audit at 1280x800 and 768x1024, in Chromium.

axe-core is pinned in tests/browser/package-lock.json and installed by `scripts/test` (npm ci);
the test injects the file from node_modules, so nothing is fetched while it runs. Beside the
audit: no page is wider than the tablet, the header stops being sticky at 200 % zoom, a refused
form puts the focus on its error summary, Today's controls are at least 24 px, and buttons that
repeat down a list say whose visit they act on.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from reminders.models import Appointment, utcnow
from tests.browser.seed import ADMIN, STAFF, settings  # noqa: F401 - the seeded clinic's settings
from tests.browser.serving import watched_page
from tests.browser.test_staff_browser import CHROMIUM, base_url, shot  # noqa: F401 - fixtures (base_url serves this file's clinic)
from tests.fixtures.staff import PASSWORD, mfa_code

AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
SIZES = {"desktop": {"width": 1280, "height": 800}, "tablet": {"width": 768, "height": 1024}}
ZOOMED = {"width": 640, "height": 400}  # 1280x800 at 200 % zoom, in CSS pixels
SMALLEST_TARGET = 24

# Every page a signed-in admin can open: (what it is, its address). The address may name the seeded
# clinic's records: {patient}, {maya}, {visit}, {message}, {job}. Add a new staff page here.
PAGES = [
    ("Today", "/"),
    ("Escalations", "/escalations/"),
    ("Inbox", "/inbox/"),
    ("An inbox item", "/inbox/{message}"),
    ("Patients", "/patients/"),
    ("A patient", "/patients/{patient}"),
    ("A patient before a first visit", "/patients/{maya}"),
    ("New patient form", "/patients/new"),
    ("Patient edit form", "/patients/{patient}/edit"),
    ("New visit form", "/patients/{patient}/visits/new"),
    ("Visit edit form", "/visits/{visit}/edit"),
    ("Course form", "/patients/{patient}/courses/new"),
    ("Import", "/visits/import"),
    ("An import report", "/visits/imports/{job}"),
    ("Outcomes", "/outcomes"),
    ("A patient's report", "/patients/{patient}/report"),
    ("Templates", "/admin/templates/"),
    ("A template editor", "/admin/templates/first_induction_24h.sms.j2"),
    ("Users", "/admin/users"),
    ("Locations", "/admin/locations"),
    ("New location form", "/admin/locations/new"),
    ("Audit", "/admin/audit"),
    ("Password change", "/account/password"),
    ("Two-step sign-in status", "/account/mfa"),
    ("Error page (404)", "/patients/999999"),
    ("Saved replies", "/saved-replies/"),
    ("New saved reply", "/saved-replies/new"),
    ("Broadcast", "/broadcast/"),
]
# Pages reached by a button: (what it is, the page, the button's name). Forms are sent as they
# are (empty), with the browser's own checks off, to see the app's error messages.
AFTER_A_CLICK = [
    ("Patient form, refused", "/patients/new", "Save patient"),
    ("Visit form, refused", "/patients/{patient}/visits/new", "Book visit"),
    ("Course form, previewed", "/patients/{patient}/courses/new", "Preview"),
    ("No-show confirmation", "/", "No-show"),
    ("Saved reply form, refused", "/saved-replies/new", "Save reply"),
    ("Broadcast preview", "/broadcast/", "Preview who gets it"),
    ("Location form, refused", "/admin/locations/new", "Add the location"),
]
# Also walked by the test itself: the sign-in page, the two-step code page, new recovery codes, and
# two-step enrolment (as a user without it).

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed at /usr/bin/chromium"),
    pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed: npm ci --prefix tests/browser"),
]


@pytest.fixture
def clinic(settings, sessions):
    from tests.browser.seed import seed_clinic

    ids = seed_clinic(settings, sessions)
    ids["patient"] = ids["sam"]  # the fullest page: visits, check-ins, an escalation, messages
    with sessions() as session:
        ids["visit"] = session.scalar(select(Appointment.id).where(Appointment.patient_id == ids["sam"])
                                      .order_by(Appointment.starts_at.desc()).limit(1))
        ids["message"] = _an_inbox_item(session)
    ids["job"] = _an_import(settings, sessions)
    return ids


def _an_import(settings, sessions) -> int:
    """A finished import with a created row and a rejected one (a report with both kinds)."""
    from reminders.intake import import_jobs

    year = utcnow().year + 1
    with sessions() as session:
        job = import_jobs.create_job(session, "visits.csv", (
            "external_id,patient_external_id,first_name,last_name,phone,email,timezone,channel,kind,starts_at,"
            "duration_minutes,location,condition\n"
            f"ehr-1,c-1,Ana,Diaz,+12025550111,,America/New_York,sms,induction,{year}-02-01T10:00:00-05:00,60,Suite 200,\n"
            f"ehr-2,c-2,Bo,Ng,555,,America/New_York,sms,induction,{year}-02-01T11:00:00-05:00,60,Suite 200,\n"
        ).encode(), STAFF, utcnow())
        session.commit()
        job_id = job.id
    import_jobs.run_job(sessions, job_id, utcnow)
    return job_id


def _an_inbox_item(session) -> int:
    from reminders.models import InboundMessage

    return session.scalar(select(InboundMessage.id).where(InboundMessage.body.like("Can my husband%")))


@pytest.fixture
def page(browser, base_url):
    # The app's CSP allows no inline script; axe-core is injected as one, so the test's context lets it in.
    with watched_page(browser, viewport=SIZES["desktop"], base_url=base_url, bypass_csp=True) as page:
        yield page


def violations(page) -> list[dict]:
    """What axe-core finds on the page as it is now, WCAG 2.2 AA and best practice."""
    # Two frames: the page has laid itself out at the new size and staff.js has answered the resize.
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    return page.evaluate("rules => axe.run(document, {runOnly: rules}).then(r => r.violations.map(v => ({"
                         "id: v.id, impact: v.impact, help: v.help, "
                         "nodes: v.nodes.map(n => n.target.join(' ') + '  ' + n.failureSummary.split('\\n').slice(1, 3).join(' '))})))",
                         RULES)


def audit_both_sizes(page, name: str) -> list[str]:
    """The page at each size: its violations and a page wider than the window, one readable line each."""
    found = []
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        for v in violations(page):
            nodes = "\n      ".join(v["nodes"][:6])
            found.append(f"{name} ({size}): {v['id']} [{v['impact']}] {v['help']}\n      {nodes}")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > viewport["width"]:  # a sideways scroll on a tablet held upright
            found.append(f"{name} ({size}): the page is {width} px wide in {viewport['width']}")
    page.set_viewport_size(SIZES["desktop"])
    return found


def sign_in_audited(page, email: str) -> list[str]:
    """Signs in, auditing the sign-in page and (for an admin) the two-step code page on the way."""
    from playwright.sync_api import expect

    page.goto("/login")
    found = audit_both_sizes(page, "Sign-in page")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    signed_in, code = page.get_by_role("button", name="Sign out"), page.get_by_label("Code")
    expect(signed_in.or_(code)).to_be_visible()
    if code.is_visible():
        found += audit_both_sizes(page, "Two-step code page")
        code.fill(mfa_code(email))
        page.get_by_role("button", name="Sign in").click()
    expect(signed_in).to_be_visible()
    return found


def sign_in_plain(page, email: str) -> None:
    """Signs in a user without two-step sign-in."""
    from playwright.sync_api import expect

    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_every_staff_page_has_no_axe_violations_at_desktop_and_tablet_sizes(page, clinic):
    from playwright.sync_api import expect

    found = sign_in_audited(page, ADMIN)
    for name, path in PAGES:
        page.goto(path.format(**clinic))
        expect(page.locator("main h1, main h2").first).to_be_visible()
        found += audit_both_sizes(page, name)

    for name, path, button in AFTER_A_CLICK:
        page.goto(path.format(**clinic))
        page.evaluate("() => document.querySelectorAll('form').forEach(form => { form.noValidate = true; })")
        with page.expect_navigation():
            page.locator("main").get_by_role("button", name=button).first.click()
        expect(page.locator("main h1, main h2").first).to_be_visible()
        found += audit_both_sizes(page, name)

    page.goto("/account/mfa")
    page.get_by_label("Code").fill(mfa_code(ADMIN))
    page.get_by_role("button", name=re.compile("new recovery codes", re.I)).click()
    expect(page.locator("main")).to_contain_text(re.compile("recovery codes", re.I))
    found += audit_both_sizes(page, "New recovery codes")

    page.get_by_role("button", name="Sign out").click()
    sign_in_plain(page, STAFF)
    page.goto("/account/mfa")
    expect(page.locator("#mfa-qr svg")).to_be_visible()
    found += audit_both_sizes(page, "Two-step enrolment")
    assert found == [], "axe-core found:\n" + "\n".join(found)


def test_at_200_percent_zoom_the_header_scrolls_away_with_the_page(page, clinic):
    from playwright.sync_api import expect

    sign_in_plain(page, STAFF)
    header = page.locator("header.topbar")
    expect(header).to_have_css("position", "sticky")  # at 1280x800 the menu stays in reach
    page.set_viewport_size(ZOOMED)
    page.goto(f"/patients/{clinic['sam']}")
    expect(header).to_have_css("position", "static")
    page.mouse.wheel(0, 600)
    page.wait_for_function("() => window.scrollY > 300")
    assert header.bounding_box()["y"] + header.bounding_box()["height"] <= 0, "the header still covers the page"
    shot(page, "a11y-zoomed-patient")


def test_the_patient_page_fits_a_tablet_held_upright(page, clinic):
    from playwright.sync_api import expect

    sign_in_plain(page, STAFF)
    page.set_viewport_size(SIZES["tablet"])
    for patient in ("sam", "maya"):
        page.goto(f"/patients/{clinic[patient]}")
        expect(page.locator("main h1")).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= SIZES["tablet"]["width"], f"{patient}'s page is {width} px wide in 768"
    shot(page, "a11y-patient-tablet")


def test_a_refused_form_puts_the_focus_on_what_to_fix(page, clinic):
    from playwright.sync_api import expect

    sign_in_plain(page, STAFF)
    page.goto("/patients/new")
    page.locator("main form").first.evaluate("form => form.noValidate = true")  # as a browser without checks
    started = time.monotonic()
    page.get_by_role("button", name=re.compile("^(Add|Save|Create)", re.I)).first.click()
    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    print(f"timing: refused patient form -> focus on its errors: 1 click, {time.monotonic() - started:.2f} s")
    expect(summary).to_contain_text("Please fix")
    first_problem = summary.get_by_role("link").first  # each problem links to its field
    page.keyboard.press("Tab")  # one key from the summary to the first problem's link
    expect(first_problem).to_be_focused()


def test_a_refused_sign_in_and_password_change_put_the_focus_on_the_error(page, clinic):
    from playwright.sync_api import expect

    page.goto("/login")
    page.get_by_label("Email").fill(STAFF)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".error-summary")).to_be_focused()  # not the email field's autofocus
    sign_in_plain(page, STAFF)
    page.goto("/account/password")
    page.get_by_label("Current password").fill("not the password")
    page.get_by_label("New password", exact=True).fill("a new long password")
    page.get_by_label("New password again").fill("a new long password")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator(".error-summary")).to_be_focused()


def test_every_control_on_today_is_at_least_24_px(page, clinic):
    from playwright.sync_api import expect

    sign_in_plain(page, STAFF)
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        page.goto("/")
        expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()
        controls = page.evaluate("""min => Array.from(document.querySelectorAll(
                'a[href], button, input:not([type=hidden]), select, textarea, summary, [role=button], [tabindex="0"]'))
            .filter(el => el.offsetParent !== null && !el.closest('.sr-only, .skip-link'))
            .map(el => [el, el.getBoundingClientRect()])
            .map(([el, box]) => `${el.tagName.toLowerCase()} "${(el.textContent || el.value || '').trim().slice(0, 40)}"`
                                + ` ${Math.round(box.width)}x${Math.round(box.height)}`
                                + (box.width < min || box.height < min ? ' SMALL' : ''))""", SMALLEST_TARGET)
        small = [control for control in controls if control.endswith(" SMALL")]
        assert small == [], f"{len(small)} of {len(controls)} controls under {SMALLEST_TARGET} px on Today ({size}): {small}"


def test_repeated_buttons_say_whose_visit_they_act_on(page, clinic):
    from playwright.sync_api import expect

    sign_in_plain(page, STAFF)
    for path, heading in (("/", "Today"), (f"/patients/{clinic['sam']}", "Sam Okafor"),
                          (f"/patients/{clinic['maya']}", "Maya Lopez")):
        page.goto(path)
        expect(page.locator("main h1").first).to_contain_text(heading)
        # Buttons with the same visible word (Completed, No-show, Cancel...) must differ in what a screen
        # reader hears, and name the patient.
        alike = page.evaluate("""() => {
            const byWord = {};
            document.querySelectorAll('main button').forEach(b => {
                if (b.offsetParent === null) return;
                const word = b.textContent.replace(/\\s+/g, ' ').trim();
                (byWord[word] = byWord[word] || []).push(b.getAttribute('aria-label') || word);
            });
            return Object.entries(byWord).filter(([word, names]) => names.length > 1)
                .filter(([word, names]) => new Set(names).size < names.length);
        }""")
        assert alike == [], f"buttons on {path} that sound the same: {alike}"
    status_buttons = page.locator("main form[action$='/status'] button")
    expect(status_buttons.first).to_be_attached()  # Maya's visit tomorrow can be canceled
    for index in range(status_buttons.count()):
        expect(status_buttons.nth(index)).to_have_attribute("aria-label", re.compile("Maya Lopez"))
