"""Two-step sign-in and a patient's erasure in Chromium: the QR code drawn inline, the recovery
codes shown once, an admin's Export data and Erase patient on the patient page."""
from __future__ import annotations

import re

import pyotp

from reminders.models import utcnow
from tests.browser.seed import STAFF
from tests.browser.test_staff_browser import (  # noqa: F401 - fixtures
    CHROMIUM, base_url, clinic, page, pytestmark, settings, shot, sign_in,
)
from tests.fixtures.staff import PASSWORD, make_user


def test_an_admin_sets_up_two_step_sign_in_before_anything_else(page, clinic, sessions):
    from playwright.sync_api import expect

    make_user(sessions, "newadmin@clinic.test", "admin", mfa=False)
    page.goto("/login")
    page.get_by_label("Email").fill("newadmin@clinic.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Set up two-step sign-in")).to_be_visible()
    page.goto("/patients/")
    expect(page).to_have_url(re.compile(r"/account/mfa$"))
    qr = page.locator("#mfa-qr svg")
    expect(qr).to_be_visible()
    assert qr.bounding_box()["width"] > 100  # big enough to scan
    shot(page, "mfa-enrol")
    secret = page.locator("#mfa-secret").inner_text()
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).at(utcnow()))
    page.get_by_role("button", name="Turn on two-step sign-in").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    page.get_by_role("link", name="I have saved them: continue").click()
    expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()


def test_an_admin_erases_a_patient_after_a_confirmation_naming_them(page, clinic):
    from playwright.sync_api import expect

    from tests.browser.seed import ADMIN

    sign_in(page, ADMIN)
    page.goto(f"/patients/{clinic['maya']}")
    page.get_by_role("link", name="Erase patient").click()
    expect(page.get_by_role("heading", name="Erase Maya Lopez?")).to_be_visible()
    shot(page, "patient-erase")
    page.get_by_role("button", name="Erase Maya Lopez").click()
    expect(page.locator("#erased-notice")).to_contain_text("personal data was erased")
    expect(page.get_by_role("heading", level=1)).to_have_text("(erased)")
    expect(page.get_by_role("link", name="Erase patient")).to_have_count(0)


def test_staff_see_neither_admin_action(page, clinic):
    from playwright.sync_api import expect

    sign_in(page, STAFF)
    page.goto(f"/patients/{clinic['maya']}")
    expect(page.get_by_role("link", name="Edit details")).to_be_visible()
    expect(page.get_by_role("link", name="Export data")).to_have_count(0)
    expect(page.get_by_role("link", name="Erase patient")).to_have_count(0)
