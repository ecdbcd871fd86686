"""Escalations in Chromium (issue 21, items 1 and 6): a question asked during an open escalation is
an inbox item of its own and stays after the escalation is resolved; a nurse presses "I'm on it"
(the re-alerts stop: no new round on the injected clock) and later resolves with a note; the list
shows each kind in words, sorted by severity then age; the banner names the kind.

Uses the set-up of test_staff_browser.py (Chromium, the seeded clinic: Sam's suicide-risk
escalation is open, 12 minutes old). The app here takes signed texts, alerts one staff phone on
the fake Twilio, and runs on an injected clock that the passes share.
"""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from reminders.models import Escalation, OutboxMessage
from reminders.pipeline import run_pass
from tests.browser.serving import serving, signed_sms_sender
from tests.browser.test_staff_browser import CHROMIUM, clinic, page, settings, shot, sign_in  # noqa: F401
from tests.fixtures.twoway import BASE

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed at /usr/bin/chromium"),
]
MAYA_PHONE, JORDAN_PHONE = "+12025550143", "+12025550199"  # the seed's Maya Lopez and Jordan Kim
ON_CALL = "+12025550101"
QUESTION = "what time do I stop eating... can I have tea?"


@pytest.fixture
def alerting_settings(configure, settings, twilio_settings):  # noqa: F811
    return configure(**twilio_settings, PUBLIC_BASE_URL=BASE, STAFF_ALERT_PHONES=ON_CALL)


@pytest.fixture
def base_url(alerting_settings, clinic, clock):  # noqa: F811 - this module's app takes signed webhooks
    from reminders.web import create_app

    with serving(create_app(alerting_settings, {"CLOCK": clock})) as url:
        yield url


@pytest.fixture
def text_in(base_url, alerting_settings):
    """Posts an SMS to the running app's webhook over HTTP, signed as Twilio signs it."""
    return signed_sms_sender(base_url, alerting_settings, MAYA_PHONE)


def alert_rows(sessions, escalation_id: int) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(OutboxMessage)
                              .where(OutboxMessage.escalation_id == escalation_id))


def newest_escalation(sessions, phone: str) -> Escalation:
    with sessions() as session:
        return session.scalar(select(Escalation).where(Escalation.from_number == phone)
                              .order_by(Escalation.id.desc()))


def test_claim_then_resolve_with_questions_kept_kinds_shown_and_sorted(page, clinic, text_in, sessions, clock,
                                                                       alerting_settings, fake_twilio):
    from playwright.sync_api import expect

    # Jordan: an urgent text; Maya: a medical emergency, then a question while it is open.
    text_in("I've been vomiting all day and can't keep anything down", JORDAN_PHONE)
    clock.advance(minutes=1)
    text_in("I took all my pills")
    clock.advance(minutes=2)
    text_in(QUESTION)
    maya = newest_escalation(sessions, MAYA_PHONE)

    sign_in(page)
    banner = page.locator("#live-alert .alert-banner")
    expect(banner).to_contain_text("3 open escalations (newest: medical emergency)")

    # The list: the kind in words, gravest first whatever its age (Maya's is the newest).
    banner.click()
    waiting = page.locator("section[aria-labelledby='open-head'] .escalation")
    expect(waiting).to_have_count(3)
    expect(waiting.locator(".escalation-kind")).to_have_text(["Medical emergency", "Suicide risk", "Urgent"])
    expect(waiting.nth(0)).to_contain_text("Maya Lopez")
    expect(waiting.nth(1)).to_contain_text("Sam Okafor")
    expect(waiting.nth(2)).to_contain_text("Jordan Kim")
    shot(page, "escalations-by-severity")

    # I'm on it: one click; the re-alerts stop.
    rounds_before = alert_rows(sessions, maya.id)
    started = time.monotonic()
    page.get_by_role("button", name="I'm on it for Maya Lopez").click()
    expect(page.locator(".notice-ok").filter(has_text="You are on it")).to_be_visible()
    claimed = page.locator(f"section[aria-labelledby='claimed-head'] #escalation-{maya.id}")
    expect(claimed).to_contain_text("frontdesk@clinic.test is on it since")
    claim_seconds = time.monotonic() - started
    expect(banner).to_contain_text("2 open escalations")  # the banner counts the ones nobody has
    for minutes in (16, 31, 46):  # the passes on the injected clock: a round each 15 minutes if unclaimed
        run_pass(alerting_settings, clock.now + timedelta(minutes=minutes))
    assert alert_rows(sessions, maya.id) == rounds_before, "a claimed escalation was alerted again"
    jordan = newest_escalation(sessions, JORDAN_PHONE)
    assert alert_rows(sessions, jordan.id) > 1  # unclaimed ones still are

    # The question is its own inbox item.
    page.get_by_role("link", name="Inbox").first.click()
    question = page.locator(".inbox-item").filter(has_text="can I have tea?")
    expect(question).to_be_visible()

    # Resolve later, with a note.
    page.goto("/escalations/")
    claimed = page.locator(f"#escalation-{maya.id}")
    started = time.monotonic()
    claimed.get_by_label("What was done (the outcome)").fill("Called Maya: she took her usual dose, not more. Safe.")
    claimed.get_by_role("button", name="Resolve Maya Lopez's escalation").click()
    expect(page.locator(".notice-ok").filter(has_text="Resolved")).to_be_visible()
    resolve_seconds = time.monotonic() - started
    resolved = page.locator(f"section[aria-labelledby='done-head'] #escalation-{maya.id}")
    expect(resolved).to_contain_text("Resolved by frontdesk@clinic.test")

    # The question is still waiting after the escalation is resolved; the crisis text itself left.
    page.get_by_role("link", name="Inbox").first.click()
    expect(page.locator(".inbox-item").filter(has_text="can I have tea?")).to_be_visible()
    expect(page.locator(".inbox-item").filter(has_text="I took all my pills")).to_have_count(0)

    # What Maya writes after it was resolved is shown on the resolved card and her page.
    clock.advance(minutes=5)
    text_in("Do I still come in on Thursday?")
    page.goto("/escalations/")
    expect(resolved).to_contain_text("Texts since it was resolved")
    expect(resolved).to_contain_text("Do I still come in on Thursday?")
    page.goto(f"/patients/{clinic['maya']}")
    expect(page.locator(f"#escalation-{maya.id}")).to_contain_text("Do I still come in on Thursday?")

    # At tablet width nothing spills sideways.
    page.set_viewport_size({"width": 768, "height": 1024})
    page.goto("/escalations/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    shot(page, "escalations-tablet")
    print(f"\nTIMING claim: 1 click, {claim_seconds:.2f} s; resolve: 1 fill + 1 click, {resolve_seconds:.2f} s")
