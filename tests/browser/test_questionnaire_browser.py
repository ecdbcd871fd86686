"""The patient's questionnaire pages in Chromium on a phone (390 x 844, touch): a full PHQ-9 from
the texted link and the GAD-7 after it, timed; item 9 escalating with the 988/911 panel on
screen; an expired and a reused link refused.

The browser fixture and screenshots come from test_staff_browser.py; the app here has the fake
Twilio and the SMTP server (staff alerts go out), measures on and a public URL, and its clock set
on the afternoon the link was texted.
"""
from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import select

from reminders.models import Questionnaire
from tests.browser.serving import serving, watched_page
from tests.browser.test_staff_browser import CHROMIUM, shot  # noqa: F401
from tests.fixtures.twoway import NOW, STAFF_EMAILS, STAFF_PHONES, escalations
from tests.test_questionnaire_pages import send_link

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed at /usr/bin/chromium"),
]
PHONE = {"width": 390, "height": 844}
FINISH_WITHIN = 120.0  # seconds: the "under two minutes on a phone"
PHQ9 = ["Several days", "More than half the days", "Several days", "Nearly every day", "Not at all",
        "Several days", "Not at all", "Not at all", "Not at all"]


@pytest.fixture
def clock(clock):
    """The two-way tests' afternoon (tests.fixtures.twoway.NOW), when the link was texted."""
    clock.set(NOW)
    return clock


@pytest.fixture
def measured(configure, two_way):
    return configure(MEASURES_ENABLED="true")


@pytest.fixture
def base_url(measured, clock):
    from reminders.web import create_app

    with serving(create_app(measured, {"CLOCK": clock})) as url:
        yield url


@pytest.fixture
def scripts_on():
    return True


@pytest.fixture
def phone(browser, base_url, scripts_on):  # noqa: F811
    with watched_page(browser, viewport=PHONE, device_scale_factor=3, is_mobile=True, has_touch=True,
                      base_url=base_url, java_script_enabled=scripts_on) as page:
        yield page


def tap_answer(page, number: int, of: int, choice: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator(".progress")).to_contain_text(f"Question {number} of {of}")
    page.get_by_role("button", name=choice, exact=True).tap()


def fits_the_phone(page) -> None:
    """Every answer button is a full-width target at least 48 px tall, and nothing runs off the side."""
    for box in [b.bounding_box() for b in page.locator("button.option").all()]:
        assert box["height"] >= 48 and box["width"] >= PHONE["width"] - 40, box
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box


def test_a_full_phq9_on_a_phone_then_the_gad7_in_under_two_minutes(phone, measured, session, fake_twilio):
    from playwright.sync_api import expect

    token = send_link(measured, session, fake_twilio, condition="depression")
    started = time.monotonic()
    phone.goto(f"/q/{token}")
    expect(phone.get_by_role("heading", name="Hello Maya")).to_be_visible()
    expect(phone.locator("main")).to_contain_text("16 short questions, about 3 minutes.")
    expect(phone.locator("main")).to_contain_text("call or text 988 now")
    shot(phone, "questionnaire-phone-intro")
    phone.get_by_role("link", name="Start").tap()

    expect(phone.locator("legend")).to_contain_text("Little interest or pleasure in doing things")
    expect(phone.locator(".progress")).to_contain_text("Question 1 of 9 · Part 1 of 2")
    fits_the_phone(phone)
    shot(phone, "questionnaire-phone-question")
    for number, choice in enumerate(PHQ9[:3], start=1):
        tap_answer(phone, number, 9, choice)
    # Back to question 3, changed, and on again to 4.
    phone.get_by_role("link", name="Back to the previous question").tap()
    expect(phone.locator(".progress")).to_contain_text("Question 3 of 9")
    expect(phone.get_by_role("button", name="Several days (your answer)")).to_be_visible()
    phone.get_by_role("button", name="Not at all", exact=True).tap()
    for number, choice in enumerate(PHQ9[3:], start=4):
        tap_answer(phone, number, 9, choice)
    # The PHQ-9's difficulty question, unscored, after item 9 when a problem was checked off.
    expect(phone.locator(".progress")).to_contain_text("One last question")
    phone.get_by_role("button", name="Somewhat difficult").tap()
    expect(phone.get_by_role("heading", name="Thank you, Maya")).to_be_visible()
    phq9_took = time.monotonic() - started
    shot(phone, "questionnaire-phone-done")

    phone.get_by_role("link", name="One more short set: 7 questions").tap()
    for number in range(1, 8):
        tap_answer(phone, number, 7, "Several days")
    expect(phone.get_by_role("heading", name="Thank you, Maya")).to_be_visible()
    both_took = time.monotonic() - started
    print(f"\n[questionnaire] PHQ-9 on a 390x844 phone: {phq9_took:.1f} s from opening the link to the "
          f"thank-you page; PHQ-9 + GAD-7: {both_took:.1f} s")
    assert phq9_took < FINISH_WITHIN and both_took < FINISH_WITHIN

    session.expire_all()
    scores = {q.scale: (q.status, q.score) for q in session.scalars(select(Questionnaire))}
    assert scores == {"phq9": ("completed", 1 + 2 + 0 + 3 + 0 + 1), "gad7": ("completed", 7)}
    assert escalations(session) == []


def test_item_9_on_a_phone_shows_988_and_911_and_alerts_the_on_call_staff(phone, measured, session,
                                                                          fake_twilio, smtp_server):
    from playwright.sync_api import expect

    token = send_link(measured, session, fake_twilio)
    phone.goto(f"/q/{token}/1")
    for number in range(1, 9):
        tap_answer(phone, number, 9, "Not at all")
    tap_answer(phone, 9, 9, "Several days")
    panel = phone.get_by_role("alert")
    expect(panel).to_be_visible()
    expect(panel).to_contain_text("call or text 988")
    expect(panel).to_contain_text("If you are in danger, call 911.")
    expect(panel).to_contain_text("Your care team has been told about your answer and will contact you.")
    expect(phone.get_by_role("link", name="Call 988")).to_have_attribute("href", "tel:988")
    expect(phone.get_by_role("link", name="Text 988")).to_have_attribute("href", "sms:988")
    expect(phone.get_by_role("link", name="Call 911")).to_have_attribute("href", "tel:911")
    box = panel.bounding_box()
    assert box["y"] < PHONE["height"] / 2  # at the top of the screen, not below the fold
    shot(phone, "questionnaire-phone-safety")

    [escalation] = escalations(session)
    assert escalation.reason == "self_harm_answer" and '"Several days" (1)' in escalation.text
    assert sorted(m["to"] for m in fake_twilio.messages if m["to"] in STAFF_PHONES) == sorted(STAFF_PHONES)
    assert {r for m in smtp_server.messages for r in m.rcpt_tos} >= set(STAFF_EMAILS)


def test_an_expired_and_a_reused_link_are_refused_on_a_phone(phone, measured, session, fake_twilio, clock):
    from playwright.sync_api import expect

    token = send_link(measured, session, fake_twilio)
    phone.goto(f"/q/{token}/1")
    for number in range(1, 10):
        tap_answer(phone, number, 9, "Not at all")
    expect(phone.get_by_role("heading", name="Thank you, Maya")).to_be_visible()

    reused = phone.goto(f"/q/{token}")
    assert reused.status == 410
    expect(phone.get_by_role("heading", name="Already answered")).to_be_visible()
    expect(phone.locator("main")).to_contain_text("These questions are already answered, thank you.")
    shot(phone, "questionnaire-phone-reused")

    other = send_link(measured, session, fake_twilio, patient="p2", appointment="a2", phone_number="+12025550144")
    clock.advance(days=8)
    expired = phone.goto(f"/q/{other}")
    assert expired.status == 410
    expect(phone.get_by_role("heading", name="This link has expired")).to_be_visible()
    expect(phone.locator("main")).to_contain_text("Please call the clinic at +1 555 010 0100.")
    expect(phone.get_by_role("link", name="+1 555 010 0100")).to_have_attribute("href", "tel:+15550100100")
    expect(phone.get_by_role("button")).to_have_count(0)
    shot(phone, "questionnaire-phone-expired")
    assert re.search(r"/q/", phone.url)


@pytest.mark.parametrize("scripts_on", [False])
def test_a_spanish_patient_answers_with_javascript_off(phone, measured, session, fake_twilio):
    from playwright.sync_api import expect

    token = send_link(measured, session, fake_twilio, language="es")
    phone.goto(f"/q/{token}")
    expect(phone.get_by_role("heading", name="Hola Maya")).to_be_visible()
    phone.get_by_role("link", name="Empezar").tap()
    expect(phone.locator("legend")).to_contain_text("Poco interés o placer en hacer cosas")
    shot(phone, "questionnaire-phone-question-es")
    for number in range(1, 9):
        expect(phone.locator(".progress")).to_contain_text(f"Pregunta {number} de 9")
        phone.get_by_role("button", name="Ningún día", exact=True).tap()
    phone.get_by_role("button", name="Varios días", exact=True).tap()
    expect(phone.get_by_role("alert")).to_contain_text("Si está en peligro, llame al 911.")
    # The difficulty question (unscored) follows item 9 when a problem was checked off.
    expect(phone.locator(".progress")).to_contain_text("Una última pregunta")
    phone.get_by_role("button", name="Un poco difícil", exact=True).tap()
    expect(phone.get_by_role("heading", name="Gracias, Maya")).to_be_visible()
    shot(phone, "questionnaire-phone-safety-es")
    session.expire_all()
    q = session.scalar(select(Questionnaire).where(Questionnaire.token == token))
    assert (q.status, q.score, q.safety_raised) == ("completed", 1, True)
