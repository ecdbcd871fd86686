#!/usr/bin/env python
"""How many clicks, and how many seconds, the staff app's everyday tasks take in Chromium.

Seeds the browser tests' clinic (tests/browser/seed.py) in a temporary SQLite database, serves the
app on loopback (no Twilio: texts go to the local outbox folder), drives Debian's Chromium at
1280x800 through each task as front desk, nurse or admin, and prints a table. A task that the UI
does not offer prints "not possible".

    python scripts/staff_task_timings.py [--runs 3] [--json out.json]
    PYTHONPATH=/tmp/before python scripts/staff_task_timings.py --json before.json   # another checkout
    python scripts/staff_task_timings.py --before before.json                       # side by side
    python scripts/staff_task_timings.py --before before.json --after after.json    # two saved runs

Clicks count every click, key press, choice in a list and dialog answered, plus one for each field
typed into (the click that puts the cursor there); scrolling a screen down (Page Down) counts too.
Seconds are time.monotonic() around the steps, from the start page to the confirmation the person
waits for: the app's and the browser's time (pages, server work, live updates), not the time a
person takes to read or type, and they stretch with the machine's load (written beside them).
Each task runs on its own copy of a clinic seeded for the run; the table shows the median of the runs.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if not any((Path(entry) / "reminders" / "__init__.py").exists()
           for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry):
    # The app and tests of this checkout (not wherever the package is installed), unless
    # PYTHONPATH names another checkout: the same script then measures an older copy of the code.
    sys.path.insert(0, str(REPO))

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 800}
FRONT_DESK, NURSE, ADMIN_ROLE = "front desk", "nurse", "admin"
NURSE_EMAIL = "nurse@clinic.test"
# The seeded clinic's patients the tasks act on (tests/browser/seed.py, plus extra_seed below).
UNMARKED_PATIENT = ("Dana", "Whitfield")
NEW_PATIENT = ("Robin", "Hale", "(202) 555-0137")
WAIT_MS = 30_000


# ---------------------------------------------------------------------------------------------
# Counting what a person does

class Hands:
    """Does what a person does on the page, counting it."""

    def __init__(self):
        self.clicks = 0
        self.started = time.monotonic()

    def click(self, locator) -> None:
        locator.click()
        self.clicks += 1

    def type_into(self, locator, text: str) -> None:
        locator.click()
        locator.fill(text)
        self.clicks += 1

    def choose(self, select, **option) -> None:
        select.select_option(**option)
        self.clicks += 2  # open the list, pick the option

    def press(self, locator, key: str) -> None:
        locator.press(key)
        self.clicks += 1

    def answer_dialog(self, dialog) -> None:
        self.clicks += 1
        dialog.accept()

    def result(self) -> tuple[int, float]:
        return self.clicks, time.monotonic() - self.started


def expect():
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def named(*words: str) -> re.Pattern:
    """An accessible name containing any of the words (case-insensitive)."""
    return re.compile("|".join(words), re.IGNORECASE)


def present(locator) -> bool:
    """On the page now (the app renders on the server: a loaded page has all it will have)."""
    return locator.count() > 0


def notice(page, pattern: str):
    """The notice a person waits for (a flash, or a status that updates live) matching `pattern`."""
    notices = page.locator(".notice, [role=status], [role=alert]")
    return notices.filter(has_text=re.compile(pattern, re.IGNORECASE)).first


def confirmed(page, pattern: str) -> None:
    expect()(notice(page, pattern)).to_be_visible(timeout=WAIT_MS)


def nav(page, name: str):
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=named(name)).first


def in_view(locator) -> bool:
    box = locator.bounding_box() if locator.is_visible() else None
    return box is not None and 0 <= box["y"] and box["y"] + box["height"] <= VIEWPORT["height"]


def bring_into_view(hands, page, locator, section: str) -> None:
    """What a person does to see a part of a long page: its link in the page's list of sections
    when there is one, else a screen down (Page Down) at a time."""
    if in_view(locator):
        return
    link = page.get_by_role("navigation", name=named("section")).get_by_role("link", name=named(section)).or_(
        page.get_by_role("tab", name=named(section)))
    if present(link):
        hands.click(link.first)
    for _ in range(40):
        if in_view(locator):
            return
        page_down(page)
        hands.clicks += 1


def page_down(page) -> None:
    """Page Down, then wait for the page to stop moving (a smooth scroll takes several frames)."""
    page.keyboard.press("PageDown")
    page.evaluate("""() => new Promise(done => {
        let last = -1, still = 0;
        const tick = () => {
            still = window.scrollY === last ? still + 1 : 0;
            last = window.scrollY;
            if (still >= 3) done(); else requestAnimationFrame(tick);
        };
        requestAnimationFrame(tick);
    })""")


def open_patient(hands, page, first: str, last: str) -> None:
    """From anywhere: Patients, then the patient's name in the list (searching when it is long)."""
    hands.click(nav(page, "^Patients"))
    link = page.locator("main").get_by_role("link", name=re.compile(rf"^({last}, {first}|{first} {last})$"))
    if not present(link):
        hands.type_into(page.get_by_role("searchbox").first, last)
        hands.press(page.get_by_role("searchbox").first, "Enter")
    hands.click(link.first)
    expect()(page.get_by_role("heading", level=1, name=re.compile(first))).to_be_visible(timeout=WAIT_MS)


def row_of(page, name: str, control):
    """The innermost list item, table row or card naming the patient (or user) that holds the control."""
    for selector in ("li", "tr", "article"):
        rows = page.locator(selector).filter(has_text=name).filter(has=control)
        if present(rows):
            return rows.last
    return None


def then_confirm(hands, page, done, also: str | None = None) -> None:
    """After an action: the confirmation the UI asks for when it asks for one (a confirm page or a
    dialog in the page, its button starting with Yes or Confirm, or with `also`; a browser's own
    dialog is answered by the handler), then `done`, the result a person waits for."""
    words = r"^(yes|confirm)\b" + (f"|^{also}" if also else "")
    asked = page.locator("main, dialog[open]").get_by_role("button", name=re.compile(words, re.IGNORECASE))
    expect()(done.or_(asked).first).to_be_visible(timeout=WAIT_MS)
    if not done.is_visible() and asked.first.is_visible():
        hands.click(asked.first)
    expect()(done).to_be_visible(timeout=WAIT_MS)


# ---------------------------------------------------------------------------------------------
# The tasks: each takes a signed-in page on Today and returns (clicks, seconds), or None when the
# UI does not offer it.

def mark_no_show(page):
    """Front desk: mark a visit that is over (nobody marked it) as a no-show."""
    name = " ".join(UNMARKED_PATIENT)
    button_name = named("no-show", "no show")
    row = row_of(page, name, page.get_by_role("button", name=button_name))
    if row is None:
        return None
    hands = Hands()
    page.on("dialog", hands.answer_dialog)
    hands.click(row.get_by_role("button", name=button_name).first)
    then_confirm(hands, page, notice(page, "no-show|did not come|missed"), "mark .*no-show")
    return hands.result()


def undo_no_show(page):
    """Front desk: undo the no-show just marked (within the undo window): on the page the marking
    led to, else on the patient's page, where a person would look next."""
    if mark_no_show(page) is None:
        return None
    hands = Hands()
    undo = page.get_by_role("button", name=named("^undo"))
    if not present(undo):
        link = page.locator("main").get_by_role("link", name=" ".join(UNMARKED_PATIENT))
        if present(link):
            hands.click(link.first)
            expect()(page.get_by_role("heading", level=1, name=UNMARKED_PATIENT[0])).to_be_visible(timeout=WAIT_MS)
        else:
            open_patient(hands, page, *UNMARKED_PATIENT)
    if not present(undo):
        return None
    hands.click(undo.first)
    confirmed(page, "undone|undo|back to|reopened|scheduled")
    return hands.result()


def answer_with_saved_reply(page):
    """Nurse: answer Maya's question in the inbox with a saved reply (sent), and mark it done."""
    hands = Hands()
    hands.click(nav(page, "^Inbox"))
    item = page.locator("article").filter(has_text="Can my husband drive me?").first
    hands.click(item.get_by_role("link", name=named("open", "reply")).first)
    saved = page.get_by_label(named("saved reply")).first
    if not present(saved):
        return None
    labels = [label.strip() for label in saved.locator("option:not([disabled])").all_inner_texts()]
    ride = next((label for label in labels if re.search("ride|drive", label, re.I)), labels[-1])
    hands.choose(saved, label=ride)
    box = page.get_by_label(re.compile("(reply|text|message) to Maya", re.I)).first
    expect()(box).not_to_have_value("", timeout=WAIT_MS)
    hands.click(page.get_by_role("button", name=named("^send")).first)
    confirmed(page, "Reply to Maya (was )?sent|quiet hours for Maya")  # sent: not merely waiting
    done = page.get_by_role("button", name=named("mark done", "close"))
    if present(done):
        hands.click(done.first)
        confirmed(page, "done|closed")
    return hands.result()


def claim_and_resolve_escalation(page):
    """Nurse: take the open escalation ("I'm on it"), then close it with a note of what was done.
    Where there is no claim, the one step there is (acknowledge, with the note)."""
    hands = Hands()
    hands.click(nav(page, "^Escalations"))

    def card():
        return page.locator("article").filter(has_text="i cant do this anymore").first

    claim = card().get_by_role("button", name=named("claim", "on it", "take"))
    if present(claim):
        hands.click(claim.first)
        confirmed(page, "claim|yours|on it|taken")
    note = card().get_by_label(named("what was done", "note", "outcome")).first
    if not note.is_visible():
        hands.click(card().locator("summary").filter(has_text=named("resolve", "close", "outcome")).first)
    hands.type_into(note, "Called Sam at once; safe at home with his partner. Seeing him today.")
    hands.click(card().get_by_role("button", name=named("resolve", "acknowledge", "close")).last)
    confirmed(page, "resolved|acknowledged|closed")
    return hands.result()


def create_patient_and_book(page):
    """Front desk: a new patient, then their first visit."""
    first, last, phone = NEW_PATIENT
    hands = Hands()
    hands.click(nav(page, "^Patients"))
    hands.click(page.get_by_role("link", name=named("new patient")).first)
    hands.type_into(page.get_by_label("First name"), first)
    hands.type_into(page.get_by_label("Last name"), last)
    hands.type_into(page.get_by_label(named("phone")).first, phone)
    zone = page.get_by_label(named("time zone")).first
    if not zone.input_value():
        hands.type_into(zone, "America/New_York")
    hands.click(page.get_by_role("button", name=named("save patient", "create", "add patient")).first)
    page_of_patient = page.get_by_role("heading", level=1, name=re.compile(f"^{first} {last}"))
    then_confirm(hands, page, page_of_patient, "create anyway")  # a possible duplicate: none here
    hands.click(page.get_by_role("link", name=named("book a visit")).first)
    hands.type_into(page.get_by_label(re.compile("^Date")), visit_day().isoformat())
    hands.type_into(page.get_by_label(re.compile("^Time")), "10:30")
    location = page.get_by_label(re.compile("^Location"))
    if not location.input_value():
        hands.type_into(location, "Suite 200")
    hands.click(page.get_by_role("button", name=named("book visit", "^book")).first)
    confirmed(page, "booked")
    return hands.result()


def book_course(page):
    """Front desk: Jordan's six-infusion induction course, previewed, then booked."""
    hands = Hands()
    open_patient(hands, page, "Jordan", "Kim")
    hands.click(page.get_by_role("link", name=named("induction course", "new course")).first)
    hands.type_into(page.get_by_label(named("first visit date")).first, course_monday().isoformat())
    hands.type_into(page.get_by_label(re.compile("^Time")).first, "09:00")
    hands.click(page.get_by_label(named("Monday, Wednesday and Friday")).first)
    location = page.get_by_label(re.compile("^Location")).first
    if not location.input_value():
        hands.type_into(location, "Suite 200")
    hands.click(page.get_by_role("button", name=named("^preview")).first)
    book = page.get_by_role("button", name=re.compile(r"^Book \d+ visits", re.I)).first
    expect()(book).to_be_visible(timeout=WAIT_MS)
    hands.click(book)
    confirmed(page, r"\d+ visits booked")
    return hands.result()


def reset_password(page):
    """Admin: a new password for the front desk account (a temporary one, shown once)."""
    from tests.browser.seed import STAFF

    hands = Hands()
    page.on("dialog", hands.answer_dialog)
    hands.click(nav(page, "^Users"))
    wording = named("password")
    row = page.locator("tr").filter(has_text=STAFF).first
    opener = row.locator("summary").filter(has_text=wording)
    submit = row.get_by_role("button", name=wording).or_(row.get_by_role("link", name=wording))
    if not present(opener) and not present(submit):
        return None
    if present(opener):
        hands.click(opener.first)
    hands.click(submit.filter(visible=True).last)
    then_confirm(hands, page, notice(page, "password"))
    return hands.result()


def fix_template(page):
    """Admin: a small fix to the 24-hour reminder, the preview following, a new version saved."""
    hands = Hands()
    hands.click(nav(page, "^Templates"))
    hands.click(page.get_by_role("link", name=named(r"induction_24h\.sms")).first)
    source = page.get_by_label(re.compile("^Template", re.I)).first
    fixed = source.input_value().replace("Reply C to confirm or R to reschedule.", "Reply C to confirm, R to reschedule.")
    hands.type_into(source, fixed)
    expect()(page.locator("#preview")).to_contain_text("Reply C to confirm, R to reschedule", timeout=WAIT_MS)
    hands.click(page.get_by_role("button", name=named("save new version", "^save")).first)
    confirmed(page, "saved")
    return hands.result()


def find_conversation(page):
    """Nurse: from Today, Sam's conversation on his page, in view."""
    hands = Hands()
    hands.click(page.locator("main").get_by_role("link", name=re.compile("^(Sam Okafor|Okafor, Sam)")).first)
    expect()(page.get_by_role("heading", level=1, name=re.compile("Sam"))).to_be_visible(timeout=WAIT_MS)
    heading = page.get_by_role("heading", name=re.compile(r"^(Conversation|Messages)\b", re.I)).first
    bring_into_view(hands, page, heading, "conversation|messages")
    expect()(heading).to_be_in_viewport(timeout=WAIT_MS)
    return hands.result()


def resend_failed(page):
    """Nurse: send again all the texts that did not reach Maya (failed in an outage)."""
    hands = Hands()
    page.on("dialog", hands.answer_dialog)
    open_patient(hands, page, "Maya", "Lopez")
    resend = page.get_by_role("button", name=named("resend", "send again", "retry"))
    if not present(resend):
        return None
    every = resend.filter(has_text=named("all"))
    button = every.first if present(every) else resend.first
    bring_into_view(hands, page, button, "resend|did not go|failed")
    hands.click(button)
    then_confirm(hands, page, notice(page, "resent|sent again|queued"))
    return hands.result()


def broadcast_tomorrow(page):
    """Front desk: a short text to tomorrow's patients, after seeing who gets it."""
    hands = Hands()
    entry = page.get_by_role("link", name=named("broadcast", "text a day", "patients of a day"))
    if not present(entry):
        return None
    hands.click(entry.first)
    tomorrow_link = page.locator("main").get_by_role("link", name=re.compile("^tomorrow$", re.I))
    if present(tomorrow_link):
        hands.click(tomorrow_link.first)
    else:
        hands.type_into(page.get_by_label(named("^day", "date")).first, tomorrow().isoformat())
    hands.type_into(page.get_by_label(re.compile(r"^(text|message)\b", re.I)).first,
                    "The Infusion Clinic: the Elm St parking is closed tomorrow; please use the garage on 5th.")
    preview = page.get_by_role("button", name=named("preview", "who gets"))
    if present(preview):
        hands.click(preview.first)
    expect()(page.locator("main").get_by_role("link", name="Maya Lopez")).to_be_visible(timeout=WAIT_MS)
    hands.click(page.get_by_role("button", name=named("^send")).first)
    then_confirm(hands, page, notice(page, "planned for|sent to|sending|queued|nobody was texted twice"))
    return hands.result()


def start_text(page):
    """Nurse: start a text to Maya from her page (sent)."""
    hands = Hands()
    open_patient(hands, page, "Maya", "Lopez")
    opener = page.locator("main").get_by_role("link", name=named("send a text", "start a text", "new text")).or_(
        page.locator("main").get_by_role("button", name=named("send a text", "start a text", "new text")))
    box = page.get_by_label(re.compile("^(text|message) to Maya", re.I)).first
    if not present(box) and not present(opener):
        return None
    if present(opener):
        hands.click(opener.first)
    bring_into_view(hands, page, box, "conversation|messages|send a text")
    hands.type_into(box, "Hi Maya, it's Jo from the clinic: your ride form is ready at the front desk.")
    hands.click(page.get_by_role("button", name=named("^send")).first)
    confirmed(page, "Text to Maya (was )?sent|quiet hours for Maya")
    return hands.result()


TASKS = [
    ("a", "mark a visit no-show", FRONT_DESK, mark_no_show),
    ("a2", "undo that no-show", FRONT_DESK, undo_no_show),
    ("b", "answer an inbox question with a saved reply", NURSE, answer_with_saved_reply),
    ("c", "claim an escalation, then resolve it with a note", NURSE, claim_and_resolve_escalation),
    ("d", "create a new patient and book a visit", FRONT_DESK, create_patient_and_book),
    ("e", "book a six-infusion course", FRONT_DESK, book_course),
    ("f", "reset a user's password", ADMIN_ROLE, reset_password),
    ("g", "fix a template (24 h reminder: edit, preview, save)", ADMIN_ROLE, fix_template),
    ("h", "find a patient's conversation from Today", NURSE, find_conversation),
    ("i", "resend a patient's failed messages", NURSE, resend_failed),
    ("j", "send a broadcast to tomorrow's patients", FRONT_DESK, broadcast_tomorrow),
    ("k", "start a text to a patient", NURSE, start_text),
]


# ---------------------------------------------------------------------------------------------
# Dates the tasks book (in the future, inside the booking window, on no holiday)

def visit_day():
    from reminders.models import utcnow

    return utcnow().date().replace(year=utcnow().year + 1, month=1, day=15)


def course_monday():
    """A Monday in early March next year (the browser tests' course week)."""
    from datetime import date

    from reminders.models import utcnow

    first = date(utcnow().year + 1, 3, 1)
    return first + timedelta(days=(7 - first.weekday()) % 7)


def tomorrow():
    from zoneinfo import ZoneInfo

    from reminders.config import get_settings
    from reminders.models import utcnow

    return utcnow().astimezone(ZoneInfo(get_settings().clinic_timezone)).date() + timedelta(days=1)


# ---------------------------------------------------------------------------------------------
# The clinic, the app and the browser

def clean_environment(folder: Path) -> None:
    """The browser tests' settings (tests/conftest.py), none of the developer's own."""
    from reminders.config import Settings, reset_settings
    from reminders.models import utcnow
    from tests.browser.seed import daytime_zone

    for name in [name.upper() for name in Settings.model_fields] + ["REMINDERS_DATA_DIR"]:
        os.environ.pop(name, None)
    os.environ.update(
        REMINDERS_DATA_DIR=str(folder / "data"), SECRET_KEY="timings-secret", SMS_PER_SECOND="10000",
        MEASURES_ENABLED="false", DATABASE_URL=f"sqlite:///{folder / 'reminders.db'}",
        CLINIC_TIMEZONE=daytime_zone(utcnow()),
    )
    reset_settings()


def extra_seed(settings, sessions) -> None:
    """What the tasks need beyond the browser tests' clinic: a nurse, a visit over that nobody
    marked, and two of Maya's texts that failed in an outage."""
    from sqlalchemy import select

    from reminders.models import OutboxMessage, Patient, utcnow
    from tests.fixtures.staff import add_patient, add_visit, make_user

    make_user(sessions, NURSE_EMAIL, "staff")
    now = utcnow()
    with sessions() as session:
        dana = add_patient(session, "p-dana", *UNMARKED_PATIENT, "+12025550155", None, channel="sms")
        starts = (now - timedelta(hours=3)).replace(second=0, microsecond=0)
        add_visit(session, dana, "dana-1", starts, kind="maintenance")
        maya = session.scalar(select(Patient).where(Patient.external_id == "p-maya"))
        texts = session.scalars(select(OutboxMessage).where(OutboxMessage.patient_id == maya.id,
                                                            OutboxMessage.channel == "sms")
                                .order_by(OutboxMessage.id)).all()
        for row in texts[:2]:
            row.status, row.error_code = "failed", "30003"
            row.error_message = row.status_reason = "Unreachable destination handset (provider outage)"
            row.sent_at = row.sent_at or now - timedelta(minutes=30)
        session.commit()


def get_settings():
    from reminders.config import get_settings as settings_from_environment

    return settings_from_environment()


def seeded_clinic(folder: Path):
    from reminders.db import session_factory
    from reminders.migrations import upgrade
    from tests.browser.seed import seed_clinic

    clean_environment(folder)
    settings = get_settings()
    upgrade(settings.effective_database_url)
    sessions = session_factory(settings.effective_database_url)
    seed_clinic(settings, sessions)
    extra_seed(settings, sessions)
    return settings


def app_clock(settings):
    """The real clock, moved past the clinic's quiet hours when the script runs during them (a
    reply would wait for the morning): it still runs, so undo windows close as they would."""
    from reminders.models import utcnow

    started = utcnow()
    try:
        from reminders.timing.quiet_hours import QuietHours

        shifted = QuietHours().next_allowed(started, settings.clinic_timezone)
    except Exception:  # noqa: BLE001 - an older or newer checkout: the real clock
        shifted = started
    offset = shifted - started
    return lambda: utcnow() + offset


@contextmanager
def launched_chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            yield browser
        finally:
            browser.close()


def signed_in_page(browser, base_url: str, role: str):
    from tests.browser.seed import ADMIN, STAFF
    from tests.fixtures.staff import PASSWORD, mfa_code

    email = {FRONT_DESK: STAFF, NURSE: NURSE_EMAIL, ADMIN_ROLE: ADMIN}[role]
    context = browser.new_context(viewport=VIEWPORT, base_url=base_url, timezone_id="America/New_York")
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    signed_in, code = page.get_by_role("button", name="Sign out"), page.get_by_label("Code")
    expect()(signed_in.or_(code)).to_be_visible(timeout=WAIT_MS)
    if code.is_visible():
        code.fill(mfa_code(email))
        page.get_by_role("button", name="Sign in").click()
    expect()(signed_in).to_be_visible(timeout=WAIT_MS)
    page.goto("/")
    return context, page


def run_once(browser, run: int, tasks, verbose: bool) -> dict[str, tuple[int, float] | None | str]:
    """Every task once, each on its own copy of a clinic seeded for this run (a task changes what
    the next would find)."""
    from reminders.db import dispose_engines
    from reminders.web import create_app
    from tests.browser.serving import serving

    results: dict[str, tuple[int, float] | None | str] = {}
    with tempfile.TemporaryDirectory(prefix="staff-timings-") as folder:
        seeded = Path(folder) / "seeded"
        seeded_clinic(seeded)
        dispose_engines()
        for key, _title, role, task in tasks:
            copy = Path(folder) / key
            shutil.copytree(seeded, copy)
            clean_environment(copy)
            settings = get_settings()
            app = create_app(settings, {"CLOCK": app_clock(settings)})
            with serving(app) as base_url:
                context, page = signed_in_page(browser, base_url, role)
                try:
                    results[key] = task(page)
                except Exception as error:  # noqa: BLE001 - one task's trouble is reported, not fatal
                    results[key] = failure(error)
                if verbose and not isinstance(results[key], tuple):
                    page.screenshot(path=str(Path(tempfile.gettempdir()) / f"staff-timings-{key}-{run}.png"))
                context.close()
            dispose_engines()
            if verbose:
                print(f"run {run + 1} {key}: {results[key]}", file=sys.stderr)
    return results


def failure(error: Exception) -> str:
    """A failed task in a few words: Playwright's first line, and why an element could not be used."""
    lines = str(error).splitlines()
    why = next((line.strip(" -") for line in lines if "intercepts pointer events" in line), "")
    return f"failed: {lines[0][:120] if lines else type(error).__name__}{' (' + why[:120] + ')' if why else ''}"


def summarise(runs: list[dict], tasks) -> list[dict]:
    rows = []
    for key, title, role, _task in tasks:
        outcomes = [run[key] for run in runs]
        measured = [o for o in outcomes if isinstance(o, tuple)]
        failures = [o for o in outcomes if isinstance(o, str)]
        row = {"key": key, "task": title, "role": role, "clicks": None, "seconds": None, "note": ""}
        if measured:
            row["clicks"] = statistics.median_low([clicks for clicks, _ in measured])
            row["seconds"] = round(statistics.median([seconds for _, seconds in measured]), 2)
            if len(measured) < len(outcomes):
                row["note"] = f"median of {len(measured)} of {len(outcomes)} runs; " + (failures or ["not possible"])[0]
        elif failures:
            row["note"] = failures[0]
        else:
            row["note"] = "not possible"
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# The table

def cell(row: dict | None, field: str) -> str:
    if row is None:
        return "—"
    if row["clicks"] is None:
        return row["note"] if field == "clicks" else ""
    return str(row[field]) if field == "clicks" else f"{row[field]:.2f}"


def print_table(rows: list[dict], before: list[dict] | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Staff tasks in Chromium at 1280x800 (median of runs)")
    for name in ("", "Task", "Role"):
        table.add_column(name)
    if before is not None:
        by_key = {row["key"]: row for row in before}
        for name in ("Clicks before", "Seconds before", "Clicks after", "Seconds after"):
            table.add_column(name, justify="right")
        for row in rows:
            old = by_key.get(row["key"])
            table.add_row(row["key"], row["task"], row["role"], cell(old, "clicks"), cell(old, "seconds"),
                          cell(row, "clicks"), cell(row, "seconds"))
    else:
        table.add_column("Clicks", justify="right")
        table.add_column("Seconds", justify="right")
        for row in rows:
            table.add_row(row["key"], row["task"], row["role"], cell(row, "clicks"), cell(row, "seconds"))
    console = Console(width=160)
    console.print(table)
    for row in rows + (before or []):
        if row["clicks"] is not None and row["note"]:
            console.print(f"{row['key']}: {row['note']}")


def measure(runs: int, tasks, verbose: bool) -> list[dict]:
    # The app's request log and the outbox notices would bury the table.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with launched_chromium() as browser:
        outcomes = [run_once(browser, run, tasks, verbose) for run in range(runs)]
    return summarise(outcomes, tasks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of every task; the table shows medians")
    parser.add_argument("--json", type=Path, help="also write the table to this file")
    parser.add_argument("--before", type=Path, help="a table written earlier (--json): show it beside this one")
    parser.add_argument("--after", type=Path, help="with --before: a table written earlier instead of measuring now")
    parser.add_argument("--only", help="task keys to run, comma-separated (e.g. a,b)")
    parser.add_argument("--verbose", action="store_true", help="each run's result on stderr, screenshots of failures")
    args = parser.parse_args(argv)
    tasks = [t for t in TASKS if not args.only or t[0] in args.only.split(",")]
    if args.after:
        rows = json.loads(args.after.read_text())["tasks"]
        load = None
    else:
        # Seconds stretch with the machine's load: kept beside them (1-minute load, start and end).
        load = [os.getloadavg()[0]]
        rows = measure(args.runs, tasks, args.verbose)
        load.append(os.getloadavg()[0])
    if args.json:
        import reminders

        args.json.write_text(json.dumps({"code": str(Path(reminders.__file__).parents[1]), "runs": args.runs,
                                         "viewport": VIEWPORT, "load_average": load, "tasks": rows},
                                        indent=2) + "\n")
    earlier = json.loads(args.before.read_text()) if args.before else None
    print_table(rows, earlier["tasks"] if earlier else None)
    loads = [("before", earlier.get("load_average")) if earlier else ("", None), ("now", load)]
    said = [f"{when} {low:.1f}-{high:.1f}".strip() for when, pair in loads if pair for low, high in [sorted(pair)]]
    if said:
        print(f"Load average (1 min, 2 cores shared) while measuring: {', '.join(said)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
