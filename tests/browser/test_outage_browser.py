"""An SMS outage in Chromium, told truthfully on pages left open: the provider banner appears
without a reload, a reply typed meanwhile shows "waiting" and then "sent" by itself when the fake
Twilio answers again, the banner clears; then a new patient's failed welcome and expired texts
are resent from their page in one action (a reminder for a visit already past is not, and the
page says so).

The app runs on the test's clock (tests/browser/conftest.py), which the test moves; it runs the
passes the scheduler would run, at the same times. Fixtures come from test_staff_browser.py.
"""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from reminders.models import OutboxMessage, Patient
from reminders.outbox.welcome import welcome_key
from reminders.pipeline import run_pass
from reminders.provider_health import record_failure
from tests.browser.seed import settings  # noqa: F401 - the seeded clinic's settings
from tests.browser.serving import serving, watched_page
from tests.browser.test_staff_browser import CHROMIUM, sign_in  # noqa: F401 - fixtures
from tests.fixtures.staff import add_patient, add_visit

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed at /usr/bin/chromium"),
]
LAPTOP, TABLET = {"width": 1280, "height": 800}, {"width": 768, "height": 1024}
TYPED = "Yes, your husband can drive you home."
TWILIO_DOWN = "Twilio error 20503: Unable to create record: Service unavailable"
NY = "America/New_York"


@pytest.fixture
def clinic(settings, sessions):  # noqa: F811
    from tests.browser.seed import seed_clinic

    return seed_clinic(settings, sessions)  # seeded (and its pass run) before Twilio is configured


@pytest.fixture
def sms(configure, clinic, twilio_settings):
    return configure(**twilio_settings)


@pytest.fixture
def marcus(sessions, clinic, clock):
    """A new patient whose welcome failed in an earlier outage, with a check-in that expired, a
    reminder refused for a visit still ahead and one for a visit already past."""
    now = clock.now
    with sessions() as session:
        patient = add_patient(session, "p-marcus", "Marcus", "Reed", "+12025550188", None, zone=NY, channel="sms")
        past = add_visit(session, patient, "marcus-1", now - timedelta(days=2), status="completed")
        ahead = add_visit(session, patient, "marcus-2", now + timedelta(days=2, hours=2))
        rows = [
            ("welcome", "welcome", None, "failed", "provider unavailable until it was too late to be useful", 3),
            ("checkin", "checkin_day_after", past, "skipped", "too late to be useful", 1),
            ("reminder", "induction_24h", ahead, "failed", "the provider refused it for good", 0),
            ("reminder", "first_induction_24h", past, "failed", "provider unavailable until the visit", 3),
        ]
        for kind, rule, visit, status, reason, days_ago in rows:
            when = now - timedelta(days=days_ago, minutes=5)
            session.add(OutboxMessage(
                dedupe_key=welcome_key(patient) if kind == "welcome" else f"marcus:{rule}", kind=kind, rule=rule, channel="sms", patient_id=patient.id,
                appointment_id=visit.id if visit else None, planned_for=when, due_at=when, status=status,
                status_reason=reason))
        past.needs_planning = ahead.needs_planning = False  # their messages are the ones above
        session.commit()
        return patient.id


@pytest.fixture
def base_url(sms, clock):
    from reminders.web import create_app

    with serving(create_app(sms, {"CLOCK": clock})) as url:
        yield url


def _outage_begins(sessions, sms, fake_twilio, now):
    """Twilio answers 503 and the breaker opens, as a pass's failures would open it."""
    fake_twilio.outage(status=503, code=20503)
    with sessions() as session:
        for _ in range(sms.provider_failure_threshold):
            record_failure(session, sms, "sms", now, TWILIO_DOWN)
        session.commit()


def test_an_outage_told_truthfully_then_what_did_not_go_resent_in_one_action(
        browser, base_url, sms, sessions, fake_twilio, clinic, marcus, clock):
    from playwright.sync_api import expect

    timings = {}
    with watched_page(browser, viewport=LAPTOP, base_url=base_url) as page:
        sign_in(page)
        page.get_by_role("link", name="Inbox").click()
        page.locator(".inbox-item").filter(has_text="Can my husband drive me?").get_by_role(
            "link", name="Open and reply").click()
        expect(page.get_by_role("heading", name="Maya Lopez")).to_be_visible()
        region = page.locator("#provider-status")
        expect(region).to_have_attribute("role", "status")
        expect(region.locator(".provider-banner")).to_have_count(0)

        # The outage begins while the page is open: the banner comes by itself, in plain words.
        _outage_begins(sessions, sms, fake_twilio, clock.now)
        began = time.monotonic()
        banner = region.locator(".provider-banner")
        expect(banner).to_contain_text("Text messages have not gone out since", timeout=30_000)
        timings["banner appears"] = time.monotonic() - began
        expect(banner).to_contain_text("go automatically when Twilio answers again; nothing needs to be done.")
        expect(banner).to_contain_text("call the patients with visits in the next 2 hours")
        expect(banner).not_to_contain_text("20503")  # Twilio's raw error is not the headline
        expect(page.locator('[role="alert"].provider-banner')).to_have_count(0)  # not re-announced as an alert

        # A reply typed meanwhile says it is waiting, not "sent".
        started = time.monotonic()
        page.get_by_label("Your reply to Maya").fill(TYPED)
        page.get_by_role("button", name="Send reply").click()
        state = page.locator(".reply-state")
        expect(state).to_contain_text("Reply to Maya is waiting to go out: Twilio is not answering right now.")
        expect(state).to_have_attribute("data-state", "waiting")
        timings["reply (2 clicks)"] = time.monotonic() - started
        assert not [m for m in fake_twilio.messages if m["body"] == TYPED]

        # Twilio answers again; the scheduler's pass sends what waited: the page follows, no reload.
        fake_twilio.recover()
        for minutes in (5, 6, 7):  # the probe, then what waited
            clock.now = clock.now + timedelta(minutes=1 if minutes > 5 else 5)
            run_pass(sms, clock.now)
        recovered = time.monotonic()
        expect(state).to_have_text("Reply to Maya sent.", timeout=30_000)
        expect(banner).to_have_count(1)
        expect(region).to_contain_text("Text messages are going out again.", timeout=30_000)
        expect(region.locator(".provider-banner:not(.provider-recovered)")).to_have_count(0)
        timings["sent and cleared, live"] = time.monotonic() - recovered
        assert [m["to"] for m in fake_twilio.messages if m["body"] == TYPED] == ["+12025550143"]

        # Marcus's page: what did not go, and one action (with a confirmation naming it) to resend.
        page.goto(f"/patients/{marcus}")
        card = page.locator("#resend")
        expect(card.get_by_role("heading", name="Messages that did not go (4)")).to_be_visible()
        expect(card).to_contain_text("Not resent: the visit it was for, ")
        expect(card.get_by_role("button", name="Resend the welcome text to Marcus")).to_be_visible()
        confirmations = []
        page.once("dialog", lambda dialog: (confirmations.append(dialog.message), dialog.accept()))
        started = time.monotonic()
        card.get_by_role("button", name="Resend all 3 to Marcus").click()
        expect(page.locator(".notice-ok")).to_contain_text("Resent to Marcus: the welcome text, ")
        timings["resend all (2 clicks)"] = time.monotonic() - started
        assert confirmations and confirmations[0].startswith("Resend 3 messages to Marcus Reed now: the welcome text, ")
        assert "Not resent: 1 that can no longer go." in confirmations[0]
        to_marcus = [m["body"] for m in fake_twilio.messages if m["to"] == "+12025550188"]
        assert "STOP" in to_marcus[0] and len(to_marcus) >= 3  # the welcome (HELP/STOP) first (a reminder may be 2 texts)
        expect(page.locator("#resend").get_by_role("heading")).to_have_text("Messages that did not go (1)")
        expect(page.locator("#resend").get_by_role("button")).to_have_count(0)

        # On a tablet the card fits the screen and its buttons are big enough to tap.
        page.set_viewport_size(TABLET)
        box = page.locator("#resend").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= TABLET["width"]

    with sessions() as session:
        assert session.scalar(select(Patient.welcomed_at).where(Patient.id == marcus)) is not None
        statuses = dict(session.execute(select(OutboxMessage.rule, OutboxMessage.status).where(
            OutboxMessage.patient_id == marcus, OutboxMessage.part == 1)).all())
        assert statuses == {"welcome": "sent", "checkin_day_after": "sent", "induction_24h": "sent",
                            "first_induction_24h": "failed"}
    print("\nH2 timings (s):", {name: round(seconds, 2) for name, seconds in timings.items()})
