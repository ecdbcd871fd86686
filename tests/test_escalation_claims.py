"""Escalations claimed apart from resolved (issue 21, items 1 and 6).

A question a patient asks while an escalation is open is an inbox item of its own, kept after the
escalation is claimed and resolved; "I'm on it" stops the re-alerts; resolving takes an outcome
note; the kind is shown in words and the list is sorted by severity, then age.
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from reminders.escalations import claim, kind_of, resolve, severity_order
from reminders.models import Escalation, OutboxMessage
from reminders.pipeline import run_pass
from tests.fixtures.staff import csrf_token, login, make_user
from tests.fixtures.twoway import NOW, STAFF_PHONES, answer, escalations, inbound
from tests.helpers import book

QUESTION = "what time do I stop eating before my infusion... can I have tea?"


def staff_texts(fake_twilio) -> list[dict]:
    return [m for m in fake_twilio.messages if m["to"] in STAFF_PHONES]


@pytest.fixture
def nurse(web, sessions):
    make_user(sessions, "nurse@clinic.test", "staff")
    client = web.test_client()
    assert login(client, "nurse@clinic.test").status_code == 302
    return client


def post(client, path: str, data: dict | None = None):
    return client.post(path, data={**(data or {}), "csrf_token": csrf_token(client, "/escalations/")})


def waiting_items(api) -> list[dict]:
    return api("/api/v1/replies?needs_staff=true")["replies"]


class TestQuestionsAreNeverLost:
    def test_a_question_during_an_open_escalation_is_its_own_inbox_item_and_stays_after_resolving(
            self, twilio, booked, session, api, nurse, clock):
        answer(twilio.sms("i want to die"))
        clock.advance(minutes=3)
        answer(twilio.sms(QUESTION))
        crisis, question = inbound(session)
        assert question.classification == "question" and question.needs_staff and question.done_at is None
        assert "question asked while an escalation is open" in question.flag_reason
        [escalation] = escalations(session)
        assert QUESTION in escalation.text  # also kept with the escalation for whoever handles it

        assert post(nurse, f"/escalations/{escalation.id}/claim").status_code == 302
        assert {item["body"] for item in waiting_items(api)} == {"i want to die", QUESTION}
        assert post(nurse, f"/escalations/{escalation.id}/acknowledge", {"note": "Called her; safe."}).status_code == 302
        assert [item["body"] for item in waiting_items(api)] == [QUESTION]  # the crisis text left, the question stays
        page = nurse.get("/inbox/").text
        assert "can I have tea?" in page

    def test_who_is_this_during_an_escalation_is_answered_and_still_an_inbox_item_without_a_page(
            self, twilio, booked, session, fake_twilio, clock):
        answer(twilio.sms("i want to die"))
        clock.advance(minutes=2)
        reply = answer(twilio.sms("who is this?"))
        assert reply and len(staff_texts(fake_twilio)) == 2  # answered; on-call not paged again
        last = inbound(session)[-1]
        assert (last.classification, last.needs_staff) == ("question", True)

    def test_a_resolved_escalation_shows_the_texts_that_came_after_it(self, twilio, booked, session, nurse, clock):
        answer(twilio.sms("i want to die"))
        [escalation] = escalations(session)
        post(nurse, f"/escalations/{escalation.id}/acknowledge", {"note": "Called her; safe at home."})
        clock.advance(hours=1)
        answer(twilio.sms("Do I still come in on Thursday?"))
        page = nurse.get("/escalations/").text
        card = page[page.index(f'id="escalation-{escalation.id}"'):]
        assert "Texts since it was resolved" in card and "Do I still come in on Thursday?" in card
        assert "waiting in the inbox" in card
        patient_page = nurse.get(f"/patients/{escalation.patient_id}").text
        assert "Texts since:" in patient_page and "Do I still come in on Thursday?" in patient_page


class TestClaimThenResolve:
    def test_claiming_stops_the_re_alerts_and_records_who_and_when(self, twilio, booked, session, two_way,
                                                                   fake_twilio, nurse, api, clock):
        answer(twilio.sms("i want to die"))
        [escalation] = escalations(session)
        run_pass(two_way, NOW + timedelta(minutes=15))
        assert len(staff_texts(fake_twilio)) == 4  # rounds 1 and 2
        clock.now = NOW + timedelta(minutes=20)
        response = post(nurse, f"/escalations/{escalation.id}/claim")
        assert response.status_code == 302
        page = nurse.get(response.headers["Location"]).text
        assert "You are on it: suicide risk from Maya Lopez" in page
        assert "nurse@clinic.test</strong> is on it since" in page
        [escalation] = escalations(session)
        assert (escalation.status, escalation.claimed_by, escalation.claimed_at) == (
            "claimed", "nurse@clinic.test", NOW + timedelta(minutes=20))
        assert escalation.next_alert_at is None and escalation.acknowledged_at is None
        for minutes in (30, 45, 60, 120):
            run_pass(two_way, NOW + timedelta(minutes=minutes))
        assert len(staff_texts(fake_twilio)) == 4  # no round after the claim
        assert api(f"/api/v1/escalations/{escalation.id}")["status"] == "claimed"
        assert api(f"/api/v1/escalations/{escalation.id}")["claimed_by"] == "nurse@clinic.test"
        assert [e["id"] for e in api("/api/v1/escalations?status=claimed")["escalations"]] == [escalation.id]

    def test_a_claim_cancels_alerts_not_yet_sent(self, twilio, booked, session, fake_twilio, nurse):
        fake_twilio.outage()
        answer(twilio.sms("i want to die"))
        [escalation] = escalations(session)
        post(nurse, f"/escalations/{escalation.id}/claim")
        session.expire_all()
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.escalation_id == escalation.id,
                                                           OutboxMessage.channel == "sms")).all()
        assert rows and {row.status for row in rows} == {"canceled"}  # the emails went; the texts never will
        assert all(row.status_reason == "escalation claimed" for row in rows)

    def test_a_new_text_that_says_more_still_pages_once_but_the_rounds_do_not_restart(
            self, twilio, booked, session, two_way, fake_twilio, nurse, clock):
        answer(twilio.sms("i want to die"))
        [escalation] = escalations(session)
        post(nurse, f"/escalations/{escalation.id}/claim")
        clock.advance(minutes=5)
        reply = answer(twilio.sms("i have the pills here"))
        assert "alerted them again" in reply
        texts = staff_texts(fake_twilio)
        assert len(texts) == 4 and all("a colleague has claimed" in m["body"] for m in texts[2:])
        for minutes in (30, 60):
            run_pass(two_way, NOW + timedelta(minutes=minutes))
        assert len(staff_texts(fake_twilio)) == 4
        [escalation] = escalations(session)
        assert escalation.status == "claimed" and "i have the pills here" in escalation.text

    def test_resolving_needs_an_outcome_note_and_a_second_claim_keeps_the_first(self, twilio, booked, session,
                                                                                nurse, web, sessions, clock):
        answer(twilio.sms("i want to die"))
        [escalation] = escalations(session)
        post(nurse, f"/escalations/{escalation.id}/claim")
        make_user(sessions, "desk@clinic.test", "staff")
        desk = web.test_client()
        login(desk, "desk@clinic.test")
        page = desk.get(post(desk, f"/escalations/{escalation.id}/claim").headers["Location"]).text
        assert "nurse@clinic.test is already on it" in page
        page = nurse.get(post(nurse, f"/escalations/{escalation.id}/acknowledge", {"note": " "}).headers["Location"]).text
        assert "Write a short note of what was done" in page
        assert escalations(session)[0].status == "claimed"
        clock.advance(minutes=30)
        post(nurse, f"/escalations/{escalation.id}/acknowledge", {"note": "Called her; safe at home with her sister."})
        [escalation] = escalations(session)
        assert (escalation.status, escalation.acknowledged_by, escalation.ack_note) == (
            "acknowledged", "nurse@clinic.test", "Called her; safe at home with her sister.")
        assert escalation.claimed_by == "nurse@clinic.test"  # the claim is kept with the resolution
        page = nurse.get("/escalations/").text
        assert "Resolved by <strong>nurse@clinic.test</strong>" in page and "was on it from" in page

    def test_the_api_acknowledge_resolves_a_claimed_escalation(self, twilio, booked, session, nurse, api):
        answer(twilio.sms("i want to die"))
        [escalation] = escalations(session)
        post(nurse, f"/escalations/{escalation.id}/claim")
        response = api.client.post(f"/api/v1/escalations/{escalation.id}/ack", json={"by": "Dr. Rivera", "note": "ok"},
                                   headers=api.headers)
        assert response.status_code == 200 and response.json["result"] == "acknowledged"
        assert response.json["status"] == "acknowledged" and response.json["claimed_by"] == "nurse@clinic.test"

    def test_claim_and_resolve_functions_keep_the_first_record(self, twilio, booked, session):
        answer(twilio.sms("i want to die"))
        [escalation] = escalations(session)
        claim(session, escalation.id, "a@clinic.test", NOW)
        claim(session, escalation.id, "b@clinic.test", NOW + timedelta(minutes=1))
        resolve(session, escalation.id, "a@clinic.test", "done", NOW + timedelta(minutes=2))
        claim(session, escalation.id, "c@clinic.test", NOW + timedelta(minutes=3))
        session.commit()
        [escalation] = escalations(session)
        assert (escalation.status, escalation.claimed_by, escalation.acknowledged_by) == (
            "acknowledged", "a@clinic.test", "a@clinic.test")


class TestKindsAndOrder:
    def test_the_list_shows_the_kind_in_words_sorted_by_severity_then_age(self, twilio, session, nurse, clock):
        numbers = {"urgent": "+12025550161", "old_risk": "+12025550162", "emergency": "+12025550163",
                   "new_risk": "+12025550164"}
        for n, (name, phone) in enumerate(numbers.items()):
            book(session, starts_at="2026-12-10T10:00:00-05:00", patient=name, appointment=f"a{n}", phone=phone,
                 first_name=name.replace("_", "-").title())
        texts = {"urgent": "I've been vomiting all day and can't keep anything down",
                 "old_risk": "i want to die", "emergency": "I took all my pills", "new_risk": "kms"}
        for name, text in texts.items():  # oldest first: urgent, old_risk, emergency, new_risk
            answer(twilio.sms(text, from_=numbers[name]))
            clock.advance(minutes=5)
        rows = escalations(session)
        assert [kind_of(row) for row in sorted(rows, key=severity_order)] == [
            "Medical emergency", "Suicide risk", "Suicide risk", "Urgent"]
        page = nurse.get("/escalations/").text
        waiting = page[page.index('id="open-head"'):page.index('id="claimed-head"')]
        order = re.findall(r'data-kind="([^"]+)"', waiting)
        assert order == ["Medical emergency", "Suicide risk", "Suicide risk", "Urgent"]
        assert waiting.index("Old-Risk") < waiting.index("New-Risk")  # the older one first within a kind
        assert "I'm on it <span class=\"sr-only\">for Old-Risk" in waiting  # the button names the patient

    def test_the_banner_and_the_poll_name_the_newest_kind(self, twilio, booked, session, nurse, clock):
        answer(twilio.sms("I took all my pills"))
        data = nurse.get("/live.json").json
        assert data["open_escalations"] == 1 and data["newest_open_escalation_kind"] == "Medical emergency"
        page = nurse.get("/").text
        assert "1 open escalation (medical emergency)" in page
        [escalation] = escalations(session)
        post(nurse, f"/escalations/{escalation.id}/claim")
        data = nurse.get("/live.json").json
        assert data["open_escalations"] == 0 and data["newest_open_escalation_kind"] is None
        assert "alert-banner" not in nurse.get("/").text  # someone is on it: the red banner goes
        patient_page = nurse.get(f"/patients/{escalation.patient_id}").text
        assert "Being handled" in patient_page and "Medical emergency" in patient_page


def test_the_migration_adds_the_claim_columns(tmp_path):
    from alembic import command
    from sqlalchemy import create_engine, inspect

    from reminders.migrations import alembic_config

    url = f"sqlite:///{tmp_path / 'claims.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0017_escalation_claims")
    columns = {c["name"] for c in inspect(create_engine(url)).get_columns("escalations")}
    assert {"claimed_at", "claimed_by"} <= columns
    command.downgrade(config, "0016_checkin_links")
    columns = {c["name"] for c in inspect(create_engine(url)).get_columns("escalations")}
    assert "claimed_at" not in columns


@pytest.mark.parametrize("text", [
    "can my husband drive me", "Can we bring a friend to the infusion", "may i eat before", "is my ride allowed to wait",
    "what time do I stop eating", "¿puedo tomar café?",
])
def test_a_question_without_a_question_mark_is_still_a_question(text):
    from reminders.inbound.symptoms import asks_question

    assert asks_question(text)


@pytest.mark.parametrize("text", ["my husband can drive me", "ok thanks", "I can do it", "feeling better today"])
def test_a_statement_is_not_a_question(text):
    from reminders.inbound.symptoms import asks_question

    assert not asks_question(text)
