"""Answering a patient from the inbox, and the patient page a nurse reads, in Chromium.

Uses the set-up of test_staff_browser.py (Chromium, the seeded clinic, screenshots); the app here
sends texts to the fake Twilio REST server on loopback.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path
import pytest
from sqlalchemy import select

from reminders.models import OutboxMessage, Patient
from tests.browser.seed import settings  # noqa: F401 - the seeded clinic's settings
from tests.browser.serving import serving
from tests.browser.test_staff_browser import CHROMIUM, TABLET, page, shot, sign_in  # noqa: F401 - fixtures
from tests.fixtures.staff import add_inbound

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed at /usr/bin/chromium"),
]
TYPED = "Yes, your husband can drive you. Please do not drive yourself after the infusion."


@pytest.fixture
def clinic(settings, sessions):
    from tests.browser.seed import seed_clinic

    return seed_clinic(settings, sessions)  # seeded (and its pass run) before Twilio is configured


@pytest.fixture
def base_url(configure, clinic, twilio_settings, clock):
    from reminders.web import create_app

    app = create_app(configure(**twilio_settings), {"CLOCK": clock})
    with serving(app) as url:
        yield url


def test_a_reply_typed_in_the_inbox_reaches_the_patient_once(page, clinic, sessions, fake_twilio):
    from playwright.sync_api import expect

    sign_in(page)
    page.get_by_role("link", name="Inbox").click()
    item = page.locator(".inbox-item").filter(has_text="Can my husband drive me?")
    item.get_by_role("button", name="Assign to me").click()
    expect(page.locator(".notice-ok")).to_contain_text("The item is yours")
    expect(page.locator(".inbox-item").filter(has_text="Can my husband drive me?")).to_contain_text("Taken by you")
    page.locator(".inbox-item").filter(has_text="Can my husband drive me?").get_by_role(
        "link", name="Open and reply").click()
    expect(page.get_by_role("heading", name="Maya Lopez")).to_be_visible()
    thread = page.locator(".thread")
    expect(thread).to_contain_text("Can my husband drive me?")
    expect(page.get_by_role("link", name="Call (202) 555-0143")).to_have_attribute("href", "tel:+12025550143")

    page.get_by_label("Start from a saved reply").select_option(label="Ride home")
    box = page.get_by_label("Your reply to Maya")
    expect(box).to_have_value(re.compile("someone else can drive you"))
    box.fill(TYPED)
    expect(page.locator("#reply-meter")).to_contain_text(f"{len(TYPED)} characters · 1 text")
    shot(page, "inbox")  # the README's inbox: an item beside its conversation, a reply typed
    page.get_by_role("button", name="Send reply").click()
    expect(page.locator(".reply-state")).to_have_text("Reply to Maya sent.")  # its true state
    expect(page.locator(".thread .tl-out").last).to_contain_text(TYPED)
    assert page.locator(".thread").evaluate(  # the thread opens on its newest messages
        "t => t.scrollHeight <= t.clientHeight || t.scrollTop + t.clientHeight >= t.scrollHeight - 2")

    sent = [m for m in fake_twilio.messages if m["body"] == TYPED]
    assert len(sent) == 1 and sent[0]["to"] == "+12025550143"
    with sessions() as session:
        [row] = session.scalars(select(OutboxMessage).where(OutboxMessage.body == TYPED)).all()
        assert row.kind == "reply" and row.channel == "sms" and row.patient_id == clinic["maya"]

    # On a tablet the conversation goes under the item, the reply box still in reach.
    page.set_viewport_size(TABLET)
    tops = page.evaluate("""() => ['#reply-head', '#thread-head']
        .map(s => document.querySelector(s).getBoundingClientRect().top)""")
    assert tops[0] < tops[1]
    page.screenshot(path=str(Path(tempfile.gettempdir()) / "reminders-screenshots" / "inbox-item-tablet.png"),
                    full_page=True)
    page.get_by_label("Note for the team (who you called, what was agreed)").fill("Texted: husband can drive.")
    page.get_by_role("button", name="Save and mark done").click()
    expect(page.locator(".notice-ok")).to_contain_text("marked done")
    page.goto(f"/patients/{clinic['maya']}")
    expect(page.locator(".timeline")).to_contain_text(TYPED)
    expect(page.locator(".timeline")).to_contain_text("Reply from the clinic")


def test_an_opted_out_patient_cannot_be_texted_from_the_inbox(page, clinic, sessions, fake_twilio):
    from playwright.sync_api import expect

    with sessions() as session:
        lee = session.scalar(select(Patient).where(Patient.external_id == "p-lee"))
        add_inbound(session, lee, "Is my visit still on?", minutes_ago=5)
    sign_in(page)
    page.get_by_role("link", name="Inbox").click()
    item = page.locator(".inbox-item").filter(has_text="Is my visit still on?")
    expect(item).to_contain_text("Opted out of texts")
    item.get_by_role("link", name="Open", exact=True).click()
    expect(page.locator("#reply-refused")).to_contain_text("Lee has opted out of texts")
    expect(page.locator("#reply-refused")).to_contain_text("Call them instead")
    expect(page.get_by_role("button", name="Send reply")).to_have_count(0)
    expect(page.get_by_role("link", name="Call (202) 555-0166")).to_be_visible()
    assert fake_twilio.messages == [] or all(m["to"] != "+12025550166" for m in fake_twilio.messages)


def test_the_patient_page_shows_the_crisis_text_first(page, clinic):
    from playwright.sync_api import expect

    sign_in(page)
    page.goto(f"/patients/{clinic['sam']}")
    expect(page.get_by_role("heading", name="Sam Okafor")).to_be_visible()
    pinned = page.locator("#pinned")
    expect(pinned).to_contain_text("i cant do this anymore. i just want it all to stop")
    expect(pinned).to_contain_text("Open escalation")
    # The crisis is the first thing under the name, before the visits, the conversation and the check-ins.
    order = page.evaluate("""() => ['#pinned', '#visits-head', '#timeline-head', '#answers-head']
        .map(s => document.querySelector(s).getBoundingClientRect().top)""")
    assert order == sorted(order)
    first_quote = page.locator("main blockquote:visible").first
    expect(first_quote).to_have_text("i cant do this anymore. i just want it all to stop")
    planned = page.locator("details.planned-messages").filter(has_text="Planned messages")
    expect(planned).to_be_visible()
    expect(planned.locator(".tl").first).to_be_hidden()  # folded until opened
    planned.locator("summary").click()
    expect(planned.locator(".tl").first).to_be_visible()
    planned.locator("summary").click()
    expect(page.locator(".answers")).to_contain_text("Mood 3 of 10")
    expect(page.locator("main")).not_to_contain_text("checkin answer")
    expect(page.locator("main")).not_to_contain_text("Rule:")
    expect(page.get_by_role("link", name="(202) 555-0178")).to_have_attribute("href", "tel:+12025550178")
    page.evaluate("window.scrollTo(0, 0)")  # the sticky menu at the top of the full-page shot
    shot(page, "patient")
