"""No-shows confirmed and undoable; a visit nobody marked is not assumed attended; Today by day.

Staff mark visits through the real forms on the app's clock, set by the test, and passes
run at chosen instants: the tests read what the patient was sent and what the pages say.
"""
from __future__ import annotations

import html as markup
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from reminders.models import Appointment, AuditEntry, InboundMessage
from reminders.no_show_undo import note_mark
from reminders.pipeline import run_pass
from reminders.timing.rules import MISSED_VISIT, RuleSettings, Visit, default_rules, plan_visit
from tests.conftest import at
from tests.fixtures.staff import login, make_user, post_form
from tests.helpers import book, outbox

NY = ZoneInfo("America/New_York")
VISIT = "2026-12-10T10:00:00-05:00"  # a Thursday; the visit lasts an hour


@pytest.fixture
def clock(clock):
    """Thursday 11:30 in New York: the visit has just ended."""
    clock.set("2026-12-10T11:30:00-05:00")
    return clock


@pytest.fixture
def desk(app, sessions, clock):
    """The front desk, signed in on the test's clock."""
    make_user(sessions, "desk@clinic.test", "staff")
    client = app.test_client()
    assert login(client, "desk@clinic.test").status_code == 302
    return client


def visit_now(session, visit_id: int) -> Appointment:
    session.expire_all()
    return session.get(Appointment, visit_id)


def missed_texts(session) -> list[str]:
    return [row.status for row in outbox(session, rule=MISSED_VISIT, part=1)]


def went(session, rule: str) -> list[str]:
    return [row.body for row in outbox(session, rule=rule, channel="sms", part=1) if row.status in ("sent", "delivered")]


def mark(client, visit: Appointment, status: str, **extra):
    return post_form(client, f"/visits/{visit.id}/status", {"status": status, "next": "/", **extra},
                     follow_redirects=True)


def undo(client, visit: Appointment):
    return post_form(client, f"/visits/{visit.id}/undo", {"next": "/"}, follow_redirects=True)


def visible(html: str) -> str:
    return " ".join(markup.unescape(re.sub(r"<[^>]+>", " ", html)).split())


# --- the rule --------------------------------------------------------------------------------------

def test_we_missed_you_is_planned_for_when_the_undo_window_closes():
    starts = at(VISIT)
    rs = RuleSettings()
    by_feed = Visit("induction", 2, 6, starts, "America/New_York", "no_show")
    by_staff = Visit("induction", 2, 6, starts, "America/New_York", "no_show",
                     status_changed_at=at("2026-12-10T11:30:00-05:00"))

    def missed(visit):
        return [m.planned_for for m in plan_visit(visit, {"sms"}, default_rules(rs), rs) if m.rule.name == MISSED_VISIT]

    assert missed(by_feed) == [at("2026-12-10T11:00:00-05:00")]  # the visit's end, as before
    assert missed(by_staff) == [at("2026-12-10T11:35:00-05:00")]


# --- confirm, undo, and what the patient gets -------------------------------------------------------

def test_no_show_asks_first_naming_the_patient_and_the_time(desk, session):
    visit = book(session, starts_at=VISIT, first_name="Jo")
    page = mark(desk, visit, "no_show")
    assert page.status_code == 200
    words = visible(page.text)
    assert "Mark Jo Lopez a no-show?" in words
    assert "Thu Dec 10, 2026, 10:00 AM EST" in words
    assert "waits 5 minutes: until then you can undo this and nothing is sent" in words
    assert visit_now(session, visit.id).status == "scheduled"  # nothing changed yet

    page = mark(desk, visit, "no_show", confirmed="yes")
    assert "Jo Lopez's 10:00 AM EST visit marked no-show." in visible(page.text)
    assert 'aria-label="Undo no show: Jo Lopez, 10:00 AM EST"' in page.text
    assert visit_now(session, visit.id).status == "no_show"


def test_we_missed_you_waits_until_the_undo_window_has_closed(settings, desk, session, clock):
    visit = book(session, starts_at=VISIT, first_name="Jo")
    mark(desk, visit, "no_show", confirmed="yes")  # 11:30
    run_pass(settings, at("2026-12-10T11:30:00-05:00"))
    run_pass(settings, at("2026-12-10T11:34:00-05:00"))
    assert missed_texts(session) == ["planned"]
    run_pass(settings, at("2026-12-10T11:35:30-05:00"))
    assert missed_texts(session) == ["sent"]

    clock.set("2026-12-10T11:36:00-05:00")  # the window has closed: no Undo left to offer
    assert "btn-undo" not in desk.get("/").text


def test_undo_puts_the_visit_back_as_it_was_and_sends_nothing(settings, desk, session, clock):
    visit = book(session, starts_at=VISIT, first_name="Jo")
    visit.status, visit.confirmed_at = "confirmed", at("2026-12-09T12:00:00-05:00")
    session.commit()
    mark(desk, visit, "no_show", confirmed="yes")
    run_pass(settings, at("2026-12-10T11:31:00-05:00"))
    assert missed_texts(session) == ["planned"]

    clock.set("2026-12-10T11:33:00-05:00")
    page = undo(desk, visit)
    assert "Undone: Jo Lopez's visit at 10:00 AM EST is confirmed again. Nothing was sent to the patient." \
        in visible(page.text)
    again = visit_now(session, visit.id)
    assert (again.status, again.confirmed_at) == ("confirmed", at("2026-12-09T12:00:00-05:00"))
    for when in ("2026-12-10T11:36:00-05:00", "2026-12-10T15:00:00-05:00", "2026-12-11T12:00:00-05:00"):
        run_pass(settings, at(when))
    assert went(session, MISSED_VISIT) == []
    task = session.scalar(select(InboundMessage).where(InboundMessage.classification == "missed_visit"))
    assert task is None or task.done_at is not None  # the "call the patient" task is withdrawn
    actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions[-2:] == ["visit_no_show", "visit_undo_no_show"]


def test_undo_after_the_window_is_refused_in_plain_words(desk, session, clock):
    visit = book(session, starts_at=VISIT, first_name="Jo")
    mark(desk, visit, "no_show", confirmed="yes")
    clock.set("2026-12-10T11:35:01-05:00")
    page = undo(desk, visit)
    assert "Too late to undo: Jo Lopez's visit stays marked no show." in visible(page.text)
    assert visit_now(session, visit.id).status == "no_show"


def test_completed_can_be_undone_too(desk, session, clock):
    visit = book(session, starts_at=VISIT, first_name="Jo")
    page = mark(desk, visit, "completed")
    notice = visible(page.text)
    assert "Jo Lopez's 10:00 AM EST visit marked completed. Undo until 11:35 AM EST" in notice
    clock.set("2026-12-10T11:32:00-05:00")
    undo(desk, visit)
    assert visit_now(session, visit.id).status == "scheduled"
    assert "Nothing to undo: Jo Lopez's visit is scheduled." in visible(undo(desk, visit).text)
    assert visit_now(session, visit.id).status == "scheduled"


def test_a_no_show_marked_by_a_feed_is_not_held(settings, session):
    """No undo outside the staff app: "we missed you" goes at the visit's end, as before."""
    from reminders.intake.records import AppointmentRecord
    from reminders.intake.upsert import upsert_appointment

    visit = book(session, starts_at=VISIT, first_name="Jo")
    upsert_appointment(session, visit.patient, AppointmentRecord(
        external_id=visit.external_id, kind=visit.kind, starts_at=visit.starts_at, location=visit.location,
        status="no_show"), at("2026-12-10T11:30:00-05:00"))
    session.commit()
    run_pass(settings, at("2026-12-10T11:30:00-05:00"))
    assert missed_texts(session) == ["sent"]


# --- a visit nobody marked --------------------------------------------------------------------------

def test_an_unmarked_visits_check_in_does_not_say_after_your_visit(settings, session):
    book(session, starts_at=VISIT, first_name="Jo")
    for when in ("2026-12-10T13:30:00-05:00", "2026-12-11T10:00:00-05:00", "2026-12-11T10:05:00-05:00"):
        run_pass(settings, at(when))
    [text] = went(session, "checkin_day_after")
    assert "after your visit" not in text
    assert text.startswith("Hi Jo, ") and "checking in. How is your mood today" in text


def test_a_completed_visits_check_in_still_says_after_your_visit(settings, session):
    visit = book(session, starts_at=VISIT, first_name="Jo", status="completed")
    assert visit.status == "completed"
    for when in ("2026-12-10T13:30:00-05:00", "2026-12-11T10:00:00-05:00", "2026-12-11T10:05:00-05:00"):
        run_pass(settings, at(when))
    [text] = went(session, "checkin_day_after")
    assert "checking in after your visit." in text


def test_in_spanish_too(settings, session):
    visit = book(session, starts_at=VISIT, first_name="Jo")
    visit.patient.language = "es"
    session.commit()
    for when in ("2026-12-10T13:30:00-05:00", "2026-12-11T10:00:00-05:00", "2026-12-11T10:05:00-05:00"):
        run_pass(settings, at(when))
    [text] = went(session, "checkin_day_after")
    assert "después de su visita" not in text and "para saber de usted." in text


def test_the_check_in_subject_and_every_channel_follow_the_mark(settings):
    from reminders.rendering import TemplateStore, render, sample_context

    store = TemplateStore(settings.templates_dir)
    for language, prefix in (("en", ""), ("es", "es/")):
        context = sample_context(settings, language)
        unmarked = {**context, "visit": {**context["visit"], "unmarked": True}}
        for part in ("subject.j2", "sms.j2", "whatsapp.j2", "email.txt.j2", "email.html.j2"):
            name = f"{prefix}checkin_day_after.{part}"
            assert ("after your visit" in render(store, name, context)) == (language == "en"), name
            assert "after your visit" not in render(store, name, unmarked), name
            assert "después de su visita" not in render(store, name, unmarked), name


# --- Today ---------------------------------------------------------------------------------------------

def test_today_opens_on_the_day_and_earlier_unmarked_visits_are_listed_once(desk, sessions, session, clock):
    from tests.fixtures.staff import add_patient, add_visit

    clock.set("2026-12-10T12:00:00-05:00")
    with sessions() as s:
        marcus = add_patient(s, "m1", "Marcus", "Lee", "+12025550111")
        add_visit(s, marcus, "m-today", at("2026-12-10T08:00:00-05:00"))
        ana = add_patient(s, "a1", "Ana", "Ruiz", "+12025550112")
        add_visit(s, ana, "a-earlier", at("2026-12-08T09:00:00-05:00"))
        ben = add_patient(s, "b1", "Ben", "Ode", "+12025550113")
        add_visit(s, ben, "b-tomorrow", at("2026-12-11T09:00:00-05:00"))
    html = desk.get("/").text
    chosen = html.split('class="day chosen-day"', 1)[1].split("</section>", 1)[0]
    assert "Today · Thursday, December 10" in chosen and "Marcus Lee" in chosen and "Not marked yet" in chosen
    assert 'aria-label="No-show: Marcus Lee, 10:00 AM EST"' not in chosen  # the visit's own time, not now
    assert 'aria-label="No-show: Marcus Lee, 8:00 AM EST"' in chosen
    to_mark = html.split('aria-labelledby="unmarked-head"', 1)[1].split("</section>", 1)[0]
    assert "Ana Ruiz" in to_mark and "Marcus Lee" not in to_mark  # today's is marked in today's list
    assert 'aria-label="No-show: Ana Ruiz, Dec 8 9:00 AM EST"' in to_mark
    assert html.index("Marcus Lee") < html.index("Ben Ode")

    html = desk.get("/?day=2026-12-11").text
    assert "<h1>Tomorrow · Friday, December 11</h1>" in html
    chosen = html.split('class="day chosen-day"', 1)[1].split("</section>", 1)[0]
    assert "Ben Ode" in chosen and "Marcus Lee" not in html.split("Later that week")[0].split("To mark")[0]
    assert 'href="/?day=2026-12-12" rel="next"' in html and 'href="/" rel="prev"' in html

    html = desk.get("/?day=2026-12-06").text
    assert "No visits booked on Sunday, December 6." in visible(html)

    html = desk.get("/?day=tomorrow").text
    assert "“tomorrow” is not a date we can show (use the date picker): showing today." in visible(html)
    assert "<h1>Today</h1>" in html


def test_marking_from_another_day_returns_to_that_day(desk, sessions, session, clock):
    from tests.fixtures.staff import add_patient, add_visit

    clock.set("2026-12-10T12:00:00-05:00")
    with sessions() as s:
        ana = add_patient(s, "a1", "Ana", "Ruiz", "+12025550112")
        visit = add_visit(s, ana, "a-earlier", at("2026-12-08T09:00:00-05:00"))
    html = desk.get("/?day=2026-12-08").text
    assert 'name="next" value="/?day=2026-12-08"' in html
    page = post_form(desk, f"/visits/{visit.id}/status", {"status": "completed", "next": "/?day=2026-12-08"},
                     token_from="/?day=2026-12-08")
    assert page.headers["Location"] == "/?day=2026-12-08"


def test_note_mark_keeps_what_an_undo_puts_back():
    visit = Appointment(status="confirmed")
    note_mark(visit, datetime(2026, 12, 10, 16, 30, tzinfo=NY))
    assert visit.status_before_change == "confirmed" and visit.status_changed_at is not None
    assert timedelta(minutes=5) == RuleSettings().no_show_undo
