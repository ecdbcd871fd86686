"""Check-ins for patients who have no text channel: by email, with a link to a page that takes the
answer as the same words by text would be taken (stored, triaged, escalated, answered)."""
from __future__ import annotations

import html as html_text
import re

import pytest
from sqlalchemy import select

from reminders.models import CheckIn, Course
from reminders.pipeline import run_pass
from tests.conftest import at, both_databases
from tests.fixtures.twoway import STAFF_PHONES, escalations, inbound
from tests.helpers import book, outbox, sent

INFUSION = "2026-12-10T10:00:00-05:00"  # Thursday
CHECKIN_DUE = "2026-12-11T10:00:00-05:00"  # the day after, 10 AM in New York
EMAIL = "maya@example.org"
settings = both_databases()  # every test on SQLite and on PostgreSQL


def email_only(session, *, language: str = "en", condition: str | None = None):
    visit = book(session, starts_at=INFUSION, phone=None, email=EMAIL, channel="email", status="completed")
    visit.patient.language = language
    session.get(Course, visit.course_id).condition = condition
    session.commit()
    return visit


def the_link(body: str) -> str:
    return re.search(r"https://clinic\.example\.org(/c/[A-Za-z0-9_-]+)", body).group(1)


def page_text(response) -> str:
    return " ".join(html_text.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


@pytest.fixture
def page(web, clock):
    clock.now = at("2026-12-11T12:00:00-05:00")
    return web.test_client()


@pytest.fixture
def emailed(two_way, session):
    """Maya prefers email and has no phone: her day-after check-in went by email; its link."""
    email_only(session)
    run_pass(two_way, at(CHECKIN_DUE))
    [row] = outbox(session, rule="checkin_day_after")
    assert (row.channel, row.status) == ("email", "sent")
    return the_link(row.body)


def the_checkin(session) -> CheckIn:
    session.expire_all()
    return session.scalars(select(CheckIn)).one()


class TestByEmail:
    def test_the_day_after_check_in_goes_by_email_with_a_link(self, two_way, session, emailed):
        [row] = outbox(session, rule="checkin_day_after")
        assert row.subject == "How are you feeling after your visit?"
        assert "How is your mood today, from 0 (worst) to 10 (best)?" in row.body
        assert "dizziness" in row.body and "works until Saturday, December 12 at 10:00 AM" in row.body
        assert the_checkin(session).status == "awaiting"

    def test_the_answer_on_the_page_is_the_check_ins_answer_staff_see(self, page, session, emailed, api):
        form = page.get(emailed)
        assert form.status_code == 200
        shown = page_text(form)
        assert "Hello Maya" in shown and "How is your mood today" in shown and "Floaty or blurry vision" in shown
        assert form.headers["Referrer-Policy"] == "no-referrer" and form.headers["Cache-Control"] == "no-store"
        done = page.post(emailed, data={"score": "3", "effect": ["dizziness"], "words": "Slept badly last night"},
                         follow_redirects=True)
        assert done.status_code == 200 and "Thank you, Maya" in page_text(done)
        assert "A nurse will read this today" in page_text(done)  # the answer a text with a side effect gets
        checkin = the_checkin(session)
        assert (checkin.status, checkin.score) == ("answered", 3)
        assert "dizziness" in checkin.details and "Slept badly last night" in checkin.note
        [answer] = api("/api/v1/checkins?patient_external_id=p1")["checkins"]
        assert answer["score"] == 3 and "dizziness" in answer["details"]
        [message] = inbound(session)
        assert message.channel == "web" and message.needs_staff and "dizziness" in message.flag_reason

    def test_a_pain_course_asks_about_pain(self, two_way, session, page):
        email_only(session, condition="pain")
        run_pass(two_way, at(CHECKIN_DUE))
        [row] = outbox(session, rule="checkin_day_after")
        assert "How much does it hurt today" in row.body and "mood" not in row.body
        assert "How much does it hurt today" in page_text(page.get(the_link(row.body)))

    def test_a_spanish_patient_reads_it_in_spanish(self, two_way, session, page):
        email_only(session, language="es")
        run_pass(two_way, at(CHECKIN_DUE))
        [row] = outbox(session, rule="checkin_day_after")
        assert "¿qué tal se siente hoy?" in row.body and "usted" in row.body
        shown = page_text(page.get(the_link(row.body)))
        assert "Hola Maya" in shown and "Mareo" in shown and "Enviar" in shown


class TestCrisis:
    def test_crisis_words_escalate_and_the_page_gives_988_and_911(self, page, session, emailed, fake_twilio):
        done = page.post(emailed, data={"score": "5", "words": "I don't want to be alive anymore"},
                         follow_redirects=True)
        shown = page_text(done)
        assert "988" in shown and "911" in shown and "Please reach out now" in shown
        [escalation] = escalations(session)
        assert escalation.status == "open" and escalation.patient_id is not None
        paged = {m["to"] for m in fake_twilio.messages}
        assert set(STAFF_PHONES) <= paged
        assert the_checkin(session).status == "answered"

    def test_a_spanish_crisis_is_answered_in_spanish(self, two_way, session, page):
        email_only(session, language="es")
        run_pass(two_way, at(CHECKIN_DUE))
        [row] = outbox(session, rule="checkin_day_after")
        done = page.post(the_link(row.body), data={"score": "1", "words": "ya no quiero vivir"}, follow_redirects=True)
        shown = page_text(done)
        assert "988" in shown and "911" in shown and "Por favor" in shown
        assert len(escalations(session)) == 1


class TestOnce:
    def test_a_second_submit_shows_the_thanks_and_stores_nothing_more(self, page, session, emailed):
        first = page_text(page.post(emailed, data={"score": "6"}, follow_redirects=True))
        assert "Thank you, Maya" in first and "text us" not in first.lower()
        again = page.post(emailed, data={"score": "2", "words": "worse"}, follow_redirects=True)
        assert again.status_code == 200 and "Thank you, Maya" in page_text(again)
        assert len(inbound(session)) == 1 and the_checkin(session).score == 6
        assert escalations(session) == []
        assert page.get(emailed, follow_redirects=True).status_code == 200  # the thank-you again

    def test_a_forged_token_is_refused(self, page, emailed):
        response = page.get("/c/" + "A" * 22)
        assert response.status_code == 404 and "Page not found" in page_text(response)
        assert page.post("/c/" + "A" * 22, data={"score": "3"}).status_code == 404

    def test_a_stale_link_is_refused(self, page, clock, session, emailed):
        clock.now = at("2026-12-13T10:00:00-05:00")
        response = page.get(emailed)
        assert response.status_code == 410 and "expired" in page_text(response)
        assert page.post(emailed, data={"score": "3"}).status_code == 410
        assert the_checkin(session).status == "awaiting"

    def test_an_answer_that_is_not_a_number_from_0_to_10_is_asked_again(self, page, session, emailed):
        for score in ("11", "", "x"):
            response = page.post(emailed, data={"score": score})
            assert response.status_code == 400 and "Please choose a number from 0 to 10" in page_text(response)
        assert the_checkin(session).status == "awaiting"


class TestChannels:
    def test_a_patient_with_sms_and_email_gets_one_check_in_by_text(self, two_way, session):
        book(session, starts_at=INFUSION, email=EMAIL, channel="both", status="completed")
        run_pass(two_way, at(CHECKIN_DUE))
        assert [s for s in sent(session) if s[0].startswith("checkin")] == [("checkin_day_after", "sms")]

    def test_a_patient_who_stopped_texts_gets_the_check_in_by_email(self, two_way, session):
        visit = book(session, starts_at=INFUSION, email=EMAIL, channel="both", status="completed")
        visit.patient.sms_opted_out = True
        session.commit()
        run_pass(two_way, at(CHECKIN_DUE))
        [row] = [row for row in outbox(session, rule="checkin_day_after") if row.status == "sent"]
        assert row.channel == "email" and "/c/" in row.body

    def test_weekly_check_ins_between_maintenance_visits_go_by_email(self, two_way, session):
        book(session, starts_at=INFUSION, phone=None, email=EMAIL, channel="email", kind="maintenance",
             status="completed")
        run_pass(two_way, at("2026-12-17T10:00:00-05:00"))
        [row] = outbox(session, rule="checkin_weekly_1")
        assert (row.channel, row.status) == ("email", "sent") and "/c/" in row.body

    def test_no_email_to_an_email_only_patient_asks_for_a_reply_by_text(self, two_way, session):
        book(session, starts_at="2026-12-20T10:00:00-05:00", phone=None, email=EMAIL, channel="email",
             appointment="a1")
        book(session, starts_at="2027-01-30T10:00:00-05:00", phone=None, email=EMAIL, channel="email",
             appointment="m1", kind="maintenance")
        for day in ("2026-12-17T10:00:00-05:00", "2026-12-19T10:00:00-05:00", "2026-12-21T10:00:00-05:00",
                    "2027-01-23T10:00:00-05:00", "2027-01-29T10:00:00-05:00"):
            run_pass(two_way, at(day))
        emails = [row for row in outbox(session, channel="email") if row.body]
        assert len(emails) >= 4
        for row in emails:
            body = row.body.lower()
            assert not ("reply" in body and "text" in body), row.rule
            assert "reply c" not in body and "our text" not in body, row.rule
