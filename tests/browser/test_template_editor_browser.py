"""Issue 21, item 5 in Chromium: the template editor refuses what it should, says why in plain
words, lists what a message can use, and shows each text as it is sent.

Uses the set-up of test_staff_browser.py (Chromium, the seeded clinic, screenshots). Each story
is timed (time.monotonic() around its steps) for the issue's table; the times are printed.
"""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from reminders.models import AuditEntry, TemplateVersion
from reminders.rendering import TemplateStore
from tests.browser.seed import ADMIN, settings  # noqa: F401 - the seeded clinic's settings
from tests.browser.serving import watched_page
from tests.browser.test_staff_browser import (  # noqa: F401 - fixtures
    CHROMIUM, DESKTOP, base_url, clinic, page, shot, sign_in,
)
from tests.test_template_editor_refusals import LONG_REMINDER

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed at /usr/bin/chromium"),
]
CRISIS_SENTENCE = "Please call or text {{ clinic.crisis_line }} now to talk with someone, day or night."


@pytest.fixture
def audited_page(browser, base_url):
    """A page axe-core can be injected into (an inline script, which the app's CSP refuses)."""
    with watched_page(browser, viewport=DESKTOP, base_url=base_url, bypass_csp=True) as page:
        yield page


def open_template(page, name: str) -> None:
    from playwright.sync_api import expect

    page.get_by_role("link", name="Templates").click()
    expect(page.get_by_role("heading", name="Message templates")).to_be_visible()
    page.locator(f"a[href='/admin/templates/{name}']").click()
    expect(page.locator("#source")).to_be_visible()


def accessibility_of(page, name: str) -> list[str]:
    """axe-core on the page as it is (its variables open), at 1280x800 and 768x1024; [] when
    axe-core is not installed (tests/browser/test_accessibility_browser.py says how)."""
    from tests.browser.test_accessibility_browser import AXE, audit_both_sizes

    if not AXE.exists():
        return []
    page.locator("#variables summary").click()
    return audit_both_sizes(page, name)


def saved(sessions, name: str) -> list[TemplateVersion]:
    with sessions() as session:
        return session.scalars(select(TemplateVersion).where(TemplateVersion.name == name)).all()


def test_a_crisis_answer_without_988_is_refused_naming_the_sentence(page, clinic, settings, sessions):
    from playwright.sync_api import expect

    sign_in(page, ADMIN)
    started = time.monotonic()
    open_template(page, "reply_crisis.sms.j2")  # 2 clicks
    expect(page.locator("#lifelines")).to_contain_text("the crisis line (988)")
    default = TemplateStore(settings.templates_dir).default_source("reply_crisis.sms.j2")
    page.locator("#source").fill(default.replace(CRISIS_SENTENCE + " ", ""))
    error = page.locator("#template-error")
    expect(error).to_contain_text("This suicide-risk answer must give the crisis line, 988, and it is missing.")
    page.get_by_role("button", name="Save new version").click()  # 3 clicks
    expect(error).to_contain_text(f"The default says: “{CRISIS_SENTENCE}”")
    expect(error).to_be_focused()  # read first after the refused save
    took = time.monotonic() - started
    expect(page.get_by_label("Send it anyway", exact=False)).to_have_count(0)
    assert saved(sessions, "reply_crisis.sms.j2") == []
    shot(page, "template-crisis-refused")
    print(f"crisis answer without 988 refused: admin, 3 clicks, {took:.1f} s")


def test_a_three_segment_reminder_is_refused_then_sent_anyway_by_an_admin(audited_page, clinic, sessions):
    from playwright.sync_api import expect

    page = audited_page

    sign_in(page, ADMIN)
    started = time.monotonic()
    open_template(page, "induction_24h.sms.j2")  # 2 clicks
    page.locator("#source").fill(LONG_REMINDER)
    error = page.locator("#template-error")
    expect(error).to_contain_text("This text is 3 segments")
    # A reminder goes as the texts that hold it: cut between words, which the admin is asked to decide.
    expect(page.locator("#sms-meter")).to_have_text("2 texts · GSM-7 · 3 segments in all")
    page.get_by_role("button", name="Save new version").click()  # 3
    expect(error).to_contain_text("a text keeps to 2")
    auditing = time.monotonic()
    audited = accessibility_of(page, "A reminder refused over its budget")  # (not part of the story's time)
    started += time.monotonic() - auditing
    page.get_by_label("Send it anyway as 3 segments").check()  # 4
    page.get_by_role("button", name="Save new version").click()  # 5
    expect(page.locator(".notice-ok")).to_contain_text("Saved over the budget: it goes as 3 segments")
    took = time.monotonic() - started
    [version] = saved(sessions, "induction_24h.sms.j2")
    assert version.source == LONG_REMINDER
    assert audited == [], "axe-core found:\n" + "\n".join(audited)
    with sessions() as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "save_template"))
    assert entry.actor == ADMIN and entry.detail["over_budget_segments"] == 3
    print(f"3-segment reminder refused, then sent anyway: admin, 5 clicks, {took:.1f} s")


def test_plain_errors_the_variables_and_each_text_as_sent(page, clinic, sessions):
    from playwright.sync_api import expect

    sign_in(page, ADMIN)
    open_template(page, "induction_24h.sms.j2")
    source, error = page.locator("#source"), page.locator("#template-error")
    started = time.monotonic()
    source.fill("Hi\n{{ clinic.name }} here.\nSee you, {{ patient.nickname }}!")
    expect(error).to_have_text("Line 3: `patient.nickname` is not something this message can use. "
                               "Did you mean `patient.first_name`?")
    print(f"unknown variable named with its line: admin, 0 clicks, {time.monotonic() - started:.1f} s")
    source.fill("Hi\n{% if visit.is_first %}first time\nsee you")
    expect(error).to_have_text("Line 2: a `{% if %}` is never closed: end it with `{% endif %}`.")

    page.get_by_text("What this message can use").click()
    variables = page.locator("#variables")
    for name in ("visit.eat_until", "visit.clear_liquids_until", "prep.solids_hours", "prep.fasting"):
        expect(variables.get_by_text(name, exact=True)).to_be_visible()

    started = time.monotonic()
    source.fill(LONG_REMINDER.replace(" Arrive ", "\n---\nArrive "))
    texts = page.locator("#preview .preview-text")
    expect(texts).to_have_count(2)
    expect(error).to_be_hidden()
    expect(texts.nth(0).locator(".text-meter")).to_contain_text("Text 1 of 2 · ")
    expect(texts.nth(0).locator(".preview-sms")).to_contain_text("stop clear liquids at")
    expect(texts.nth(1).locator(".preview-sms")).to_contain_text("Arrive ")
    expect(page.locator("#sms-meter")).to_have_text("2 texts · GSM-7 · 3 segments in all")
    print(f"each text previewed with its own meter: admin, 0 clicks, {time.monotonic() - started:.1f} s")
    shot(page, "template-editor-parts")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    page.set_viewport_size({"width": 768, "height": 1024})
    expect(texts).to_have_count(2)
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    shot(page, "template-editor-parts-tablet")
    assert saved(sessions, "induction_24h.sms.j2") == []


def test_what_is_typed_before_the_editors_script_has_run_is_previewed(page, clinic):
    """The editor's script is deferred: on a slow connection staff can type before it runs. The
    preview answers for what is in the box then, not only for the next keystroke."""
    from playwright.sync_api import expect

    sign_in(page, ADMIN)
    held = []
    page.route("**/static/template_editor.js*", lambda route: held.append(route))  # the script's request waits
    page.goto("/admin/templates/induction_24h.sms.j2", wait_until="commit")
    page.locator("#source").fill("Hi\n{{ clinic.name }} here.\nSee you, {{ patient.nickname }}!")
    page.wait_for_function("() => true")  # let the page's events run, so the script's request is held
    assert len(held) == 1, "the editor's script was not asked for"
    held[0].continue_()
    expect(page.locator("#template-error")).to_have_text(
        "Line 3: `patient.nickname` is not something this message can use. Did you mean `patient.first_name`?")
