"""Crisis escalation: the answer in the same request, staff alerts through the fake Twilio and the
SMTP server at once, re-alerts every 15 minutes until acknowledged, never twice in a round."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import select

from reminders.escalations import EscalationNotFound, acknowledge, plan_due_alerts, plan_round
from reminders.models import Escalation, OutboxMessage
from reminders.pipeline import run_pass
from tests.conftest import at
from tests.helpers import book

from tests.fixtures.twoway import BASE, NOW, PHONE, STAFF_EMAILS, STAFF_PHONES, answer, escalations, inbound

CRISIS_TEXTS = [
    "I want to kill myself", "i dont want to be here anymore", "thinking about ending it all tonight",
    "I took all my pills", "i want to d1e", "been cutting myself again", "sewer slide", "kms",
    "I'm going to overdose", "there's no reason to live",
]


def alerts(session, escalation_id: int | None = None) -> list[OutboxMessage]:
    session.expire_all()
    query = select(OutboxMessage).where(OutboxMessage.kind == "alert").order_by(OutboxMessage.id)
    if escalation_id is not None:
        query = query.where(OutboxMessage.escalation_id == escalation_id)
    return list(session.scalars(query))


def staff_texts(fake_twilio) -> list[dict]:
    return [m for m in fake_twilio.messages if m["to"] in STAFF_PHONES]


def ack(api, escalation_id: int, by: str = "nurse@clinic.test", note: str = "Called her; safe at home."):
    return api.client.post(f"/api/v1/escalations/{escalation_id}/ack", json={"by": by, "note": note},
                           headers=api.headers)


class TestTheAnswer:
    @pytest.mark.parametrize("text", CRISIS_TEXTS)
    def test_crisis_language_is_answered_at_once_with_the_crisis_line_and_911(self, twilio, booked, session, text,
                                                                               fake_twilio, smtp_server):
        reply = answer(twilio.sms(text))
        assert "988" in reply and "911" in reply and "not watched around the clock" in reply
        [escalation] = escalations(session)
        if escalation.reason == "medical_emergency":  # pills already taken: 911 first, and Poison Control
            assert reply.startswith("This may be a medical emergency") and "1-800-222-1222" in reply
        else:
            assert "sorry" in reply.lower() and escalation.reason == "crisis_language"
        assert (escalation.status, escalation.text) == ("open", text)
        assert escalation.patient_id == booked.patient_id and escalation.alert_round == 1
        # Staff alerted in the same request: a text to each phone, an email to each address.
        assert sorted(m["to"] for m in staff_texts(fake_twilio)) == sorted(STAFF_PHONES)
        assert sorted(r for m in smtp_server.messages for r in m.rcpt_tos) == sorted(STAFF_EMAILS)
        [message] = inbound(session)
        assert message.classification == "crisis" and message.needs_staff

    @pytest.mark.parametrize("score", ["0", "1", "2", "2/10", "zero", "1 - awful day"])
    def test_a_score_at_the_bottom_of_the_scale_escalates(self, twilio, session, score, fake_twilio, smtp_server,
                                                          two_way):
        book(session, starts_at="2026-12-07T10:00:00-05:00", status="completed")
        run_pass(two_way, at("2026-12-08T10:00:00-05:00"))  # the check-in goes out
        fake_twilio.reset()
        reply = answer(twilio.sms(score))
        assert "988" in reply and "911" in reply
        [escalation] = escalations(session)
        assert escalation.reason == "low_score" and escalation.status == "open"
        assert sorted(m["to"] for m in fake_twilio.messages) == sorted(STAFF_PHONES)
        assert len(smtp_server.messages) == 2

    def test_a_score_of_3_does_not_escalate(self, twilio, session, two_way, fake_twilio):
        book(session, starts_at="2026-12-07T10:00:00-05:00", status="completed")
        run_pass(two_way, at("2026-12-08T10:00:00-05:00"))
        reply = answer(twilio.sms("3"))
        assert "988" in reply and escalations(session) == []  # the thank-you still names the line

    def test_the_crisis_line_and_emergency_number_are_configurable(self, configure, two_way, clock, booked, session):
        from reminders.web import create_app
        from tests.fixtures.twoway import Twilio

        changed = configure(CRISIS_LINE="13 11 14", EMERGENCY_NUMBER="000")
        poster = Twilio(create_app(changed, {"TESTING": True, "CLOCK": clock}).test_client(), two_way.twilio_auth_token)
        reply = answer(poster.sms("I want to end my life"))
        assert "13 11 14" in reply and "000" in reply

    def test_a_staff_edit_that_drops_the_numbers_is_not_used(self, twilio, booked, session):
        from reminders.models import TemplateVersion

        session.add(TemplateVersion(name="reply_crisis.sms.j2", source="We hear you. Talk soon.", created_by="x"))
        session.commit()
        reply = answer(twilio.sms("i want to die"))
        assert "988" in reply and "911" in reply


class TestAlerts:
    def test_the_text_alert_shows_no_name_and_no_message_but_the_email_does(self, twilio, booked, session,
                                                                             fake_twilio, smtp_server):
        text = "I want to kill myself tonight"
        answer(twilio.sms(text))
        for sms in staff_texts(fake_twilio):
            body = sms["body"]
            assert body.startswith("URGENT") and "phone ending 43" in body and "15:00" in body
            assert f"{BASE}/escalations" in body
            for private in ("Maya", "Lopez", "kill", "tonight", PHONE):
                assert private not in body
        for mail in smtp_server.messages:
            content = mail.message.get_body(("plain",)).get_content()
            assert "Maya Lopez" in content and text in content and PHONE in content
            assert "Maya" not in mail.message["Subject"] and "URGENT" in mail.message["Subject"]
        rows = alerts(session)
        assert {(row.channel, row.status) for row in rows} == {("sms", "sent"), ("email", "sent")}
        escalation = escalations(session)[0]
        assert {row.dedupe_key for row in rows} == {
            f"esc:{escalation.id}:round:1:sms:{STAFF_PHONES[0]}", f"esc:{escalation.id}:round:1:sms:{STAFF_PHONES[1]}",
            f"esc:{escalation.id}:round:1:email:{STAFF_EMAILS[0]}", f"esc:{escalation.id}:round:1:email:{STAFF_EMAILS[1]}",
        }

    def test_alerts_go_at_night_too(self, twilio, booked, session, fake_twilio, clock):
        clock.now = at("2026-12-09T03:00:00-05:00")
        answer(twilio.sms("i want to die"))
        assert len(staff_texts(fake_twilio)) == 2

    def test_re_alerted_every_15_minutes_until_acknowledged_and_never_twice_in_a_round(
            self, twilio, booked, session, two_way, fake_twilio, smtp_server, api):
        answer(twilio.sms("i want to die"))
        escalation = escalations(session)[0]
        assert (len(staff_texts(fake_twilio)), len(smtp_server.messages)) == (2, 2)

        run_pass(two_way, NOW + timedelta(minutes=14, seconds=59))
        assert (len(staff_texts(fake_twilio)), len(smtp_server.messages)) == (2, 2)

        run_pass(two_way, NOW + timedelta(minutes=15))
        run_pass(two_way, NOW + timedelta(minutes=15))  # the same instant again
        assert (len(staff_texts(fake_twilio)), len(smtp_server.messages)) == (4, 4)
        assert all("(alert 2, not yet claimed)" in m["body"] for m in staff_texts(fake_twilio)[2:])
        assert escalations(session)[0].alert_round == 2

        run_pass(two_way, NOW + timedelta(minutes=30))
        assert len(staff_texts(fake_twilio)) == 6

        response = ack(api, escalation.id)
        assert response.status_code == 200 and response.json["status"] == "acknowledged"
        assert response.json["acknowledged_by"] == "nurse@clinic.test" and response.json["result"] == "acknowledged"
        for minutes in (45, 60, 120):
            run_pass(two_way, NOW + timedelta(minutes=minutes))
        assert (len(staff_texts(fake_twilio)), len(smtp_server.messages)) == (6, 6)
        assert api("/api/v1/replies?needs_staff=true")["replies"] == []  # the crisis text left the inbox too

    def test_a_failed_alert_is_retried_and_each_phone_gets_one(self, twilio, booked, session, two_way, fake_twilio):
        fake_twilio.fail_next(status=500, code=20500)
        reply = answer(twilio.sms("i want to die"))
        assert "988" in reply  # the patient's answer does not depend on the alerts
        assert len(staff_texts(fake_twilio)) == 1
        failed = [row for row in alerts(session) if row.channel == "sms" and row.status == "planned"]
        assert len(failed) == 1 and failed[0].error_code == "20500"
        run_pass(two_way, NOW + timedelta(seconds=29))
        assert len(staff_texts(fake_twilio)) == 1
        run_pass(two_way, NOW + timedelta(seconds=36))  # 30 s and its jitter (at most a fifth)
        assert sorted(m["to"] for m in staff_texts(fake_twilio)) == sorted(STAFF_PHONES)

    def test_after_a_two_hour_sms_outage_on_call_gets_the_latest_round_once_not_every_round_at_once(
            self, twilio, booked, session, two_way, fake_twilio):
        fake_twilio.outage()
        answer(twilio.sms("i want to die"))
        for minutes in range(1, 121):  # beat's pass every minute through the outage
            run_pass(two_way, NOW + timedelta(minutes=minutes))
        assert staff_texts(fake_twilio) == []
        fake_twilio.recover()
        run_pass(two_way, NOW + timedelta(minutes=125))
        texts = staff_texts(fake_twilio)
        assert sorted(m["to"] for m in texts) == sorted(STAFF_PHONES), [m["body"][:40] for m in texts]
        assert all("not yet claimed" in m["body"] for m in texts)  # the latest round's words
        superseded = [row for row in alerts(session) if row.status == "canceled"]
        assert superseded and all("newer alert round" in row.status_reason for row in superseded)

    def test_smtp_down_does_not_stop_the_texts_and_the_email_is_retried(self, twilio, booked, session, two_way,
                                                                        fake_twilio, smtp_server):
        smtp_server.reject_next("mail", code=451, text="4.3.0 try again later", times=2)
        answer(twilio.sms("i want to die"))
        assert len(staff_texts(fake_twilio)) == 2 and len(smtp_server.messages) == 0
        run_pass(two_way, NOW + timedelta(seconds=36))  # 30 s and its jitter (at most a fifth)
        assert len(smtp_server.messages) == 2

    def test_two_planners_racing_on_one_round_plan_each_alert_once(self, twilio, booked, sessions, two_way):
        answer(twilio.sms("i want to die"))
        later = NOW + timedelta(minutes=15)
        with sessions() as first, sessions() as second:
            stale = first.get(Escalation, 1)  # read before the other planner commits
            assert plan_due_alerts(second, two_way, later) == 4
            second.commit()
            planned = sorted(second.scalars(select(OutboxMessage.id).where(OutboxMessage.dedupe_key.like("%round:2%"))))
            assert plan_round(first, two_way, stale, later) == planned  # its inserts were all duplicates
            first.commit()
            rows = second.scalars(select(OutboxMessage).where(OutboxMessage.kind == "alert")).all()
            assert len(rows) == 8 and len({row.dedupe_key for row in rows}) == 8

    def test_more_crisis_texts_join_the_open_escalation_and_are_each_answered(self, twilio, booked, session,
                                                                                two_way, fake_twilio, clock):
        answer(twilio.sms("i want to die"))
        clock.advance(minutes=1)
        reply = answer(twilio.sms("i have the pills here"))  # adds a means: on-call paged again at once
        assert "988" in reply and "alerted them again" in reply
        assert len(staff_texts(fake_twilio)) == 4
        clock.advance(seconds=3)
        answer(twilio.sms("ok"))  # only acknowledges: no page
        assert len(staff_texts(fake_twilio)) == 4
        answer(twilio.sms("kms"))  # seconds later, but it says more: paged again at once
        [escalation] = escalations(session)
        assert "i want to die" in escalation.text and "i have the pills here" in escalation.text and "kms" in escalation.text
        assert len(staff_texts(fake_twilio)) == 6
        run_pass(two_way, clock.now + timedelta(minutes=1))  # the next pass adds nothing before the 15 minutes
        assert len(staff_texts(fake_twilio)) == 6
        clock.now = NOW + timedelta(minutes=30)
        answer(twilio.sms("i want to kill myself"))
        assert len(staff_texts(fake_twilio)) == 8 and len(escalations(session)) == 1

    def test_after_an_acknowledgement_a_new_crisis_opens_a_new_escalation(self, twilio, booked, session, api, clock,
                                                                          fake_twilio):
        answer(twilio.sms("i want to die"))
        ack(api, escalations(session)[0].id)
        clock.advance(hours=2)
        answer(twilio.sms("i want to die"))
        first, second = escalations(session)
        assert (first.status, second.status) == ("acknowledged", "open")
        assert len(staff_texts(fake_twilio)) == 4

    def test_without_staff_contacts_it_stays_open_and_logs_an_error_every_round(self, configure, two_way, clock,
                                                                                 booked, session, caplog, api):
        from reminders.web import create_app
        from tests.fixtures.twoway import Twilio

        bare = configure(STAFF_ALERT_PHONES="", STAFF_ALERT_EMAILS="")
        poster = Twilio(create_app(bare, {"TESTING": True, "CLOCK": clock}).test_client(), two_way.twilio_auth_token)
        with caplog.at_level(logging.ERROR):
            reply = answer(poster.sms("i want to die"))
            assert "988" in reply
            run_pass(bare, NOW + timedelta(minutes=15))
        errors = [r for r in caplog.records if r.levelno == logging.ERROR and "NOBODY WAS ALERTED" in r.getMessage()]
        assert len(errors) == 2
        [item] = api("/api/v1/escalations?status=open")["escalations"]
        assert item["status"] == "open" and item["alert_round"] == 0 and item["alerts"] == []


class TestEscalationsApi:
    def test_open_first_newest_first_with_the_alerts(self, twilio, session, api, clock):
        book(session, starts_at="2026-12-10T10:00:00-05:00", patient="p1", appointment="a1")
        book(session, starts_at="2026-12-10T11:00:00-05:00", patient="p2", appointment="a2", phone="+12025550166")
        answer(twilio.sms("i want to die"))
        clock.advance(minutes=10)
        answer(twilio.sms("i took too many pills", from_="+12025550166"))
        clock.advance(minutes=10)
        answer(twilio.sms("i want to die", from_="+12025550199"))
        first = escalations(session)[0].id
        assert ack(api, first).status_code == 200
        items = api("/api/v1/escalations")["escalations"]
        assert [(i["patient_external_id"], i["status"]) for i in items] == [
            (None, "open"), ("p2", "open"), ("p1", "acknowledged")]
        assert items[1]["text"] == "i took too many pills" and items[1]["patient_name"] == "Maya Lopez"
        assert {a["channel"] for a in items[1]["alerts"]} == {"sms", "email"}
        assert [i["status"] for i in api("/api/v1/escalations?status=open")["escalations"]] == ["open", "open"]
        assert api.client.get("/api/v1/escalations?status=bogus", headers=api.headers).status_code == 422
        assert api(f"/api/v1/escalations/{first}")["ack_note"] == "Called her; safe at home."

    def test_ack_unknown_is_404_and_twice_keeps_the_first_record(self, twilio, booked, session, api, clock):
        assert ack(api, 999).status_code == 404
        answer(twilio.sms("i want to die"))
        escalation_id = escalations(session)[0].id
        clock.advance(minutes=3)
        ack(api, escalation_id, by="first@clinic.test", note="called")
        clock.advance(minutes=3)
        again = ack(api, escalation_id, by="second@clinic.test", note="also called")
        assert again.status_code == 200 and again.json["result"] == "already_acknowledged"
        assert again.json["acknowledged_by"] == "first@clinic.test" and again.json["ack_note"] == "called"
        assert at(again.json["acknowledged_at"]) == NOW + timedelta(minutes=3)

    def test_ack_without_a_body_names_the_token_and_needs_one(self, twilio, booked, session, api):
        answer(twilio.sms("i want to die"))
        escalation_id = escalations(session)[0].id
        assert api.client.post(f"/api/v1/escalations/{escalation_id}/ack").status_code == 401
        response = api.client.post(f"/api/v1/escalations/{escalation_id}/ack", headers=api.headers)
        assert response.status_code == 200 and response.json["acknowledged_by"] == "api token tests"
        bad = api.client.post(f"/api/v1/escalations/{escalation_id}/ack", json={"by": 5}, headers=api.headers)
        assert bad.status_code == 422

    def test_acknowledge_is_what_the_staff_ui_calls(self, twilio, booked, session):
        answer(twilio.sms("i want to die"))
        escalation = acknowledge(session, escalations(session)[0].id, "nurse@clinic.test", "ok", NOW)
        session.commit()
        assert escalation.next_alert_at is None
        with pytest.raises(EscalationNotFound):
            acknowledge(session, 12345, "x", "", NOW)


@pytest.mark.postgres
def test_two_passes_at_once_on_postgresql_send_each_round_once(configure, pg_settings, twilio_settings, smtp_settings,
                                                               fake_twilio, smtp_server):
    """Real concurrency: two passes in two threads, each with its own connection, at one instant."""
    import threading
    from collections import Counter

    from reminders.db import session_factory
    from reminders.inbound.replies import InboundText, handle_inbound

    settings = configure(**twilio_settings, **smtp_settings, PUBLIC_BASE_URL=BASE,
                         STAFF_ALERT_PHONES=",".join(STAFF_PHONES), STAFF_ALERT_EMAILS=",".join(STAFF_EMAILS))
    sessions = session_factory(settings.effective_database_url)
    with sessions() as session:
        book(session, starts_at="2026-12-10T10:00:00-05:00")
        handle_inbound(session, settings, InboundText("SMpg1", PHONE, "+15005550006", "i want to die"), NOW)
        session.commit()  # round 1 planned, never sent: round 2 takes its place (one alert a phone)
    later = NOW + timedelta(minutes=15)
    start, errors = threading.Barrier(2), []

    def one_pass():
        try:
            start.wait(60)
            run_pass(settings, later, sessions=sessions)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=one_pass) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and not any(thread.is_alive() for thread in threads)
    assert Counter(m["to"] for m in staff_texts(fake_twilio)) == {phone: 1 for phone in STAFF_PHONES}
    assert Counter(r for m in smtp_server.messages for r in m.rcpt_tos) == {email: 1 for email in STAFF_EMAILS}
    assert all("alert 2" in m["body"] for m in staff_texts(fake_twilio))
    with sessions() as session:
        [escalation] = session.scalars(select(Escalation)).all()
        assert escalation.alert_round == 2 and escalation.next_alert_at == later + timedelta(minutes=15)
