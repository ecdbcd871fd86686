"""The staff UI in Debian's Chromium, driven by Playwright, against the real app on loopback.

Each test also takes a screenshot of the page it is about. They refresh the ones in
docs/screenshots/ (shown in the README) when UPDATE_SCREENSHOTS=1 is set, and otherwise go to a
temporary folder, so an ordinary run leaves the repository as it was.
"""
from __future__ import annotations

import os
import re
import tempfile
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from reminders.models import Appointment, Escalation, InboundMessage, TemplateVersion
from tests.browser.serving import CHROMIUM, serving, watched_page
from tests.browser.seed import ADMIN, CLINIC_NOW, STAFF, seed_clinic, settings  # noqa: F401 - the clinic's settings
from tests.fixtures.staff import PASSWORD, mfa_code

SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "reminders-screenshots"
)
# Dates early next year: in the future, and inside the booking window (two years ahead).
NEXT_YEAR = CLINIC_NOW.year + 1
DESKTOP = {"width": 1280, "height": 900}
TABLET = {"width": 820, "height": 1180}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed at /usr/bin/chromium "
                                                     "(apt-get install -y chromium chromium-driver)"),
]


@pytest.fixture
def clinic(settings, sessions):
    return seed_clinic(settings, sessions)


@pytest.fixture
def base_url(settings, clinic, clock):
    from reminders.web import create_app

    with serving(create_app(settings, {"CLOCK": clock})) as url:
        yield url


@pytest.fixture
def page(browser, base_url):
    with watched_page(browser, viewport=DESKTOP, base_url=base_url) as page:
        yield page


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in(page, email: str = STAFF, password: str = PASSWORD) -> None:
    from playwright.sync_api import expect

    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    signed_in, code = page.get_by_role("button", name="Sign out"), page.get_by_label("Code")
    expect(signed_in.or_(code)).to_be_visible()
    if code.is_visible():  # an admin: two-step sign-in, the code their phone app shows (pyotp)
        code.fill(mfa_code(email))
        page.get_by_role("button", name="Sign in").click()
    expect(signed_in).to_be_visible()


def test_sign_in_and_today(page, clinic):
    from playwright.sync_api import expect

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    expect(page.get_by_role("heading", name="Clinic reminders")).to_be_visible()
    shot(page, "login")
    page.get_by_label("Email").fill(STAFF)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-error")).to_contain_text("do not match an active account")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()
    expect(page.locator(".alert-banner")).to_contain_text("1 open escalation")
    today = page.locator("section.day").first
    expect(today.get_by_role("heading")).to_contain_text("Today · ")
    expect(today).to_contain_text("Sam Okafor")
    expect(today).to_contain_text("Induction 5 of 6")
    expect(today).to_contain_text("✓ Confirmed")
    expect(page.locator("section.day").nth(1)).to_contain_text("Reschedule asked")
    expect(page.locator(".due-list")).to_contain_text("Jordan Kim")
    expect(page.locator(".visit-messages summary").first).to_be_visible()
    shot(page, "today")
    page.set_viewport_size(TABLET)
    expect(page.locator(".columns")).to_be_visible()
    shot(page, "today-tablet")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_acknowledging_an_escalation(page, clinic, sessions):
    from playwright.sync_api import expect

    sign_in(page)
    page.locator(".alert-banner").click()
    expect(page.get_by_role("heading", name="Escalations")).to_be_visible()
    card = page.locator(f"#escalation-{clinic['escalation']}")
    expect(card).to_contain_text("i cant do this anymore")
    expect(card).to_contain_text("Staff alerted")
    shot(page, "escalations")
    card.get_by_text("Already done? Resolve it now").click()  # resolved at once, without claiming first
    card.get_by_label("What was done").fill("Called Sam at once; safe at home with his partner. Seeing him today.")
    card.get_by_role("button", name="Resolve").click()
    expect(page.locator(".notice-ok")).to_contain_text("Resolved: suicide risk from Sam Okafor")
    expect(page.locator(".alert-banner")).to_have_count(0)
    expect(page.locator(f"#escalation-{clinic['escalation']}.is-done")).to_contain_text("safe at home with his partner")
    with sessions() as session:
        escalation = session.get(Escalation, clinic["escalation"])
        assert escalation.status == "acknowledged" and escalation.acknowledged_by == STAFF


def test_template_editing_with_live_preview_and_a_refused_save(page, clinic, sessions):
    from playwright.sync_api import expect

    sign_in(page, ADMIN)
    page.get_by_role("link", name="Templates").click()
    expect(page.get_by_role("heading", name="Message templates")).to_be_visible()
    page.locator("a[href='/admin/templates/induction_24h.sms.j2']").click()
    source, preview, meter, error = (page.locator("#source"), page.locator("#preview"), page.locator("#sms-meter"),
                                     page.locator("#template-error"))
    expect(preview).to_contain_text("infusion 3 of 6 is Tuesday, March 3")
    expect(meter).to_contain_text("GSM-7")

    source.fill("Hi {{ patient.first_name }}, infusion {{ visit.number }} is {{ visit.date }} at {{ visit.time }}. "
                "Reply C to confirm.")
    # Each text as sent, in a bubble of its own (its meter above it).
    expect(preview.locator(".preview-sms")).to_have_text(["Hi Alex, infusion 3 is Tuesday, March 3 at 9:30 AM. "
                                                          "Reply C to confirm."])
    expect(meter).to_have_text("71 characters · GSM-7 · 1 segment")
    expect(meter).to_have_attribute("data-server-units", "71")  # the server counts the same
    source.press("Control+End")
    source.type(" 🙂")
    expect(meter).to_contain_text("UCS-2 · 2 segments")
    expect(page.locator("#sms-warning")).to_contain_text("UCS-2 because of 🙂")

    from reminders.text_segments import sms_length

    for text in ("", "plain", "x" * 160, "x" * 161, "[brackets] {braces} €uro ^~|\\", "ok\nnew line", "🙂" * 35,
                 "é" * 200, "Ω" + "y" * 69, "curly ’ quote"):
        in_browser = page.evaluate("text => window.smsLength(text)", text)
        python = sms_length(text)
        assert (in_browser["encoding"], in_browser["units"], in_browser["segments"], in_browser["allowed"]) == \
            (python.encoding, python.units, python.segments, python.allowed()), text

    source.fill("Hi {{ patient.first_name }},\nsee you {{ visit.dat }}")
    plain = "Line 2: `visit.dat` is not something this message can use. Did you mean `visit.date`?"
    expect(error).to_have_text(plain)
    page.get_by_role("button", name="Save new version").click()
    expect(page.locator("#template-error")).to_have_text(plain)
    expect(page.locator("#source")).to_have_value("Hi {{ patient.first_name }},\nsee you {{ visit.dat }}")
    with sessions() as session:
        assert session.scalars(select(TemplateVersion)).all() == []

    page.locator("#source").fill("Hi {{ patient.first_name }}, {{ clinic.name }} here: infusion {{ visit.number }} "
                                 "of {{ visit.series_length }} is {{ visit.date }} at {{ visit.time }}. No food for "
                                 "6 hours, no liquids for 2, and bring your ride home. Reply C to confirm or R to "
                                 "reschedule.")
    expect(page.locator("#template-error")).to_be_hidden()
    expect(page.locator("#preview")).to_contain_text("The Infusion Clinic here: infusion 3 of 6")
    page.get_by_role("button", name="Save new version").click()
    expect(page.locator(".notice-ok")).to_contain_text("Saved")
    expect(page.locator(".versions")).to_contain_text("in use")
    page.locator("#source").press("Control+End")
    page.locator("#source").type(" Thanks!")
    expect(page.locator("#preview")).to_contain_text("reschedule. Thanks!")
    shot(page, "template-editor")
    with sessions() as session:
        [version] = session.scalars(select(TemplateVersion)).all()
        assert version.name == "induction_24h.sms.j2" and version.created_by == ADMIN

    page.goto("/admin/templates/")
    expect(page.locator("a[href='/admin/templates/induction_24h.sms.j2']")).to_contain_text("edited")
    shot(page, "templates")

    page.locator("a[href='/admin/templates/maintenance_7d.email.html.j2']").click()
    frame = page.frame_locator("#preview-frame")
    expect(frame.get_by_text("Tuesday, March 3 at 9:30 AM")).to_be_visible()
    page.locator("#source").fill("<p>Dear {{ patient.first_name }}, see you <strong>{{ visit.date }}</strong>.</p>")
    expect(frame.get_by_text("Dear Alex, see you")).to_be_visible()
    expect(frame.locator("strong")).to_have_text("Tuesday, March 3")
    expect(page.locator("#sms-meter")).to_have_count(0)


def test_patient_page_with_mood_chart(page, clinic):
    from playwright.sync_api import expect

    sign_in(page)
    page.get_by_role("link", name="Patients").click()
    page.get_by_role("link", name="Okafor, Sam").click()
    expect(page.get_by_role("heading", name="Sam Okafor")).to_be_visible()
    chart = page.get_by_role("img", name="Mood scores over time")
    expect(chart).to_be_visible()
    expect(chart.locator(".score")).to_have_count(5)
    expect(chart.locator("g.infusion")).to_have_count(4)
    expect(chart.locator("desc")).to_contain_text("5 mood scores")
    expect(page.locator(".notes")).to_contain_text("dizzy for an hour")
    expect(page.locator(".timeline")).to_be_visible()
    expect(page.locator(".card-alert")).to_contain_text("Open escalation")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export check-ins (CSV)").click()
    assert download.value.suggested_filename == "checkins-p-sam.csv"
    shot(page, "patient-chart")


def test_inbox_and_booking_a_visit_by_hand(page, clinic, sessions):
    from playwright.sync_api import expect

    sign_in(page)
    page.get_by_role("link", name="Inbox").click()
    waiting = page.locator(".inbox-item")
    expect(waiting).to_have_count(3)
    expect(waiting.first).to_contain_text("Can my husband drive me?")
    shot(page, "inbox-list")
    waiting.first.get_by_role("button", name="Mark done").click()
    expect(page.locator(".notice-ok")).to_contain_text("Marked done")
    expect(page.locator(".inbox-item")).to_have_count(2)
    with sessions() as session:
        assert len(session.scalars(select(InboundMessage).where(InboundMessage.done_by == STAFF)).all()) == 2

    page.goto(f"/patients/{clinic['maya']}")
    page.get_by_role("link", name="+ Book a visit").click()
    expect(page.get_by_role("heading", name=re.compile("Book a visit"))).to_be_visible()
    day = date(NEXT_YEAR, 1, 15)
    page.get_by_label("Date").fill(day.isoformat())
    page.get_by_label(re.compile(r"^Time")).fill("10:30")
    page.get_by_label("Location").fill("Suite 200")
    shot(page, "visit-form")
    page.get_by_role("button", name="Book visit").click()
    expect(page.locator(".notice-ok")).to_contain_text("Visit booked")
    expect(page.locator(".visit-list")).to_contain_text(f"{day:%a} Jan 15, {NEXT_YEAR}, 10:30 AM EST")
    with sessions() as session:
        booked = session.scalar(select(Appointment).where(Appointment.external_id.like("staff-v-%")))
        assert booked.needs_planning is True and booked.number_in_course == 2

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(".visit-line").filter(has_text=f"Jan 15, {NEXT_YEAR}").get_by_role("button", name="Cancel").click()
    expect(page.locator(".notice-ok")).to_contain_text("Visit canceled")


def test_csv_upload_report(page, clinic, tmp_path):
    from playwright.sync_api import expect

    csv_file = tmp_path / "visits.csv"
    csv_file.write_text(
        "external_id,patient_external_id,first_name,last_name,phone,email,timezone,preferred_channel,kind,"
        "starts_at,duration_minutes,location,status\n"
        f"ehr-1,c-1,Ana,Diaz,+12025550111,,America/New_York,sms,induction,{NEXT_YEAR}-02-01T10:00:00-05:00,60,Suite 200,\n"
        f"ehr-2,c-2,Bo,Ng,555,,America/New_York,sms,induction,{NEXT_YEAR}-02-01T11:00:00-05:00,60,Suite 200,\n"
        f"ehr-3,c-3,Cy,Ito,+12025550112,,America/New_York,text,maintenance,{NEXT_YEAR}-02-01,60,,\n"
    )
    sign_in(page)
    page.get_by_role("link", name="Import").click()
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Upload and import").click()
    report = page.locator("#import-report")
    expect(report).to_contain_text("1 created")
    expect(report).to_contain_text("2 rejected")
    expect(report.locator("tr.row-bad").first).to_contain_text("3")
    expect(report).to_contain_text("phone '555' is not a valid number")
    shot(page, "import-report")
