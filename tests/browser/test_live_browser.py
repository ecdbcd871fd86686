"""Live pages in Chromium: a crisis text arriving through the signed webhook while Today is open
shows the red banner within 10 seconds without a click, the menu badges follow, a page being
typed in is not reloaded under the typist, the no-contacts banner, the 404 page, the skip link.

Fixtures (Chromium, the signed-in page, the seed clinic, screenshots) come from
test_staff_browser.py; the app here also has Twilio (the fake) and a public URL, so that the
webhook takes signed texts, and no staff alert contacts.
"""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from reminders.models import Escalation, InboundMessage
from tests.browser.serving import serving, signed_sms_sender
from tests.browser.test_staff_browser import CHROMIUM, clinic, page, settings, shot, sign_in  # noqa: F401
from tests.fixtures.twoway import BASE

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed at /usr/bin/chromium"),
]
MAYA_PHONE = "+12025550143"  # the seed's Maya Lopez


@pytest.fixture
def live_settings(configure, settings, twilio_settings):
    return configure(**twilio_settings, PUBLIC_BASE_URL=BASE)


@pytest.fixture
def base_url(live_settings, clinic, clock):  # noqa: F811 - this module's app takes signed webhooks
    from reminders.web import create_app

    with serving(create_app(live_settings, {"CLOCK": clock})) as url:
        yield url


@pytest.fixture
def text_in(base_url, live_settings):
    """Posts an SMS to the running app's webhook over HTTP, signed as Twilio signs it."""
    return signed_sms_sender(base_url, live_settings, MAYA_PHONE)


def test_a_crisis_text_while_today_is_open_shows_the_banner_within_10_seconds(page, clinic, text_in, sessions):
    from playwright.sync_api import expect

    sign_in(page)
    expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()
    banner = page.locator("#live-alert .alert-banner")
    expect(banner).to_contain_text("1 open escalation")
    badge = page.locator('[data-live-badge="open_escalations"]')
    expect(badge).to_have_text("1 open")
    sound = page.get_by_role("button", name="Turn on sound alerts")
    sound.click()  # the one click the browser needs before it plays a sound
    expect(page.get_by_role("button", name="Turn off sound alerts")).to_be_visible()
    assert page.evaluate("localStorage.getItem('reminders.soundAlerts')") == "on"
    beeps_before = int(page.locator("#sound-toggle").get_attribute("data-beeps") or 0)
    stamp = page.locator("body").get_attribute("data-live-stamp")

    answer = text_in("i cant do this anymore, i want to end it all")
    assert "988" in answer or "crisis" in answer.lower()  # the patient got the crisis line at once
    sent = time.monotonic()
    # From here no click: the page finds out by itself.
    expect(banner).to_contain_text("2 open escalations", timeout=30_000)
    waited = time.monotonic() - sent
    assert waited < 10, f"the banner took {waited:.1f} s"
    with sessions() as session:
        newest = session.scalar(select(Escalation).order_by(Escalation.id.desc()))
        assert newest.text.startswith("i cant do this anymore")
    expect(banner).to_have_attribute("href", f"/escalations/#escalation-{newest.id}")
    expect(page.locator("#live-alert")).to_have_attribute("aria-live", "polite")
    expect(badge).to_have_text("2 open")
    # Today reloaded its content (a new stamp) and the sound alert played.
    expect(page.locator("body")).not_to_have_attribute("data-live-stamp", stamp)
    expect(banner).to_contain_text("New escalation: 2 open escalations")
    beeps = int(page.locator("#sound-toggle").get_attribute("data-beeps") or 0)
    assert beeps == beeps_before + 1, (beeps_before, beeps)
    assert page.evaluate("localStorage.getItem('reminders.seenEscalation')") == str(newest.id)
    expect(page.locator(".config-banner")).to_contain_text("Crisis alerts cannot reach anyone")
    shot(page, "live-new-escalation")

    banner.click()
    card = page.locator(f"#escalation-{newest.id}")
    expect(card).to_contain_text("i cant do this anymore")
    expect(card).to_contain_text("nobody alerted (no contacts configured)")
    expect(card).not_to_contain_text("Next alert")


def test_badges_follow_the_inbox_on_a_page_that_does_not_reload(page, clinic, text_in, sessions):
    from playwright.sync_api import expect

    sign_in(page)
    page.goto(f"/patients/{clinic['sam']}")
    inbox = page.locator('[data-live-badge="inbox_waiting"]')
    expect(inbox).to_have_text("3 waiting")
    expect(page.get_by_role("link", name="Inbox 3 waiting")).to_be_visible()
    page.evaluate("window.__stillHere = true")
    text_in("Can I bring my own blanket on Thursday?")
    expect(inbox).to_have_text("4 waiting", timeout=30_000)
    assert page.evaluate("window.__stillHere") is True  # updated in place, not reloaded
    with sessions() as session:
        for message in session.scalars(select(InboundMessage).where(InboundMessage.needs_staff,
                                                                    InboundMessage.done_at.is_(None))):
            message.done_at, message.done_by = message.received_at, "admin@clinic.test"
        session.commit()
    expect(inbox).to_be_hidden(timeout=30_000)


def test_a_page_being_typed_in_is_not_reloaded_under_the_typist(page, clinic, text_in):
    from playwright.sync_api import expect

    sign_in(page)
    page.goto("/escalations/")
    card = page.locator(f"#escalation-{clinic['escalation']}")
    card.get_by_text("Already done? Resolve it now").click()
    note = card.get_by_label("What was done")
    note.fill("Called Sam, he is")
    page.evaluate("window.__stillHere = true")
    text_in("Is parking free at the clinic?")
    expect(page.get_by_role("button", name="Show them")).to_be_visible(timeout=30_000)
    expect(page.locator(".live-note")).to_contain_text("This page has new changes")
    assert page.evaluate("window.__stillHere") is True
    expect(note).to_have_value("Called Sam, he is")
    page.get_by_role("button", name="Show them").click()
    expect(page.locator(".live-note")).to_have_count(0)


def test_a_missing_page_is_styled_inside_the_app(page, clinic):
    from playwright.sync_api import expect

    sign_in(page)
    response = page.goto("/patients/9999")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.get_by_role("link", name="Back to Today")).to_be_visible()
    shot(page, "not-found")


def test_the_skip_link_comes_first_and_moves_to_the_content(page, clinic):
    from playwright.sync_api import expect

    sign_in(page)
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()


def test_the_audit_log_in_names_filtered_by_patient_and_staff_member(page, clinic):
    from playwright.sync_api import expect

    from tests.browser.seed import ADMIN

    sign_in(page, ADMIN)
    page.goto(f"/patients/{clinic['sam']}")
    page.goto(f"/patients/{clinic['maya']}")
    page.goto("/admin/audit")
    table = page.locator(".audit-table")
    expect(table).to_contain_text("Opened the patient page")
    expect(table).to_contain_text("Sam Okafor")
    expect(table).not_to_contain_text("view_patient")
    table.locator("tr").filter(has_text="Maya Lopez").first.get_by_role("link", name="only this patient").click()
    expect(page.locator(".audit-filter")).to_contain_text("Patient: Maya Lopez")
    expect(table).not_to_contain_text("Sam Okafor")
    page.get_by_label("Staff member").select_option(ADMIN)
    page.get_by_role("button", name="Show").click()
    expect(table.locator("tbody tr").first).to_contain_text(ADMIN)
    expect(page.locator(".audit-filter")).to_contain_text("Patient: Maya Lopez")
    shot(page, "audit")


def test_the_patient_form_says_what_to_fix_beside_the_field(page, clinic):
    from playwright.sync_api import expect

    sign_in(page)
    page.goto("/patients/new")
    page.get_by_label("Time zone").fill("Mars/Base")
    page.get_by_role("button", name="Save patient").click()
    first = page.get_by_label("First name")
    expect(first).to_have_attribute("aria-invalid", "true")
    expect(first).to_have_accessible_description("Enter the patient's first name.")
    expect(page.get_by_label("Time zone")).to_have_accessible_description(
        "Choose a time zone from the list, e.g. America/Chicago.")
    page.get_by_role("link", name="First name").click()
    shot(page, "patient-form-errors")
