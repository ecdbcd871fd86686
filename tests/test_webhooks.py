"""POST /twilio/sms: signatures, replays, keywords, appointment replies, unknown numbers.

Requests are signed the way Twilio signs them and posted to the real app; outgoing texts go
through the fake Twilio server, email through the SMTP server, and time comes from the app's
injected clock (fixtures in tests/fixtures/twoway.py).
"""
from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from reminders.inbound.replies import HANDLED
from reminders.models import Appointment, Escalation, InboundMessage, Patient
from reminders.pipeline import run_pass
from reminders.web import create_app
from tests.conftest import at
from tests.fixtures.twoway import (
    BASE, NOW, PHONE, STAFF_EMAILS, STAFF_PHONES, STRANGER, VISIT, Twilio, answer, escalations, inbound, new_sid,
)
from tests.helpers import book, outbox, patient


class TestSignature:
    def test_a_signed_request_is_answered(self, twilio, booked):
        assert "Infusion Clinic" in answer(twilio.sms("HELP"))

    @pytest.mark.parametrize("signature", [None, "", "forged", "dGhpcyBpcyBub3QgaXQ="])
    def test_unsigned_or_forged_is_refused_and_stores_nothing(self, twilio, booked, session, signature):
        form = twilio.sms_form("STOP")
        response = twilio.post("/twilio/sms", form, signature=signature)
        assert response.status_code == 403
        assert inbound(session) == [] and not patient(session).sms_opted_out

    def test_signed_with_another_token_or_for_another_url_is_refused(self, twilio, booked, session):
        form = twilio.sms_form("I want to die")
        other_token = twilio.sign("/twilio/sms", form, token="0" * 32)
        assert twilio.post("/twilio/sms", form, signature=other_token).status_code == 403
        elsewhere = RequestValidator(twilio.auth_token).compute_signature("https://evil.example/twilio/sms", form)
        assert twilio.post("/twilio/sms", form, signature=elsewhere).status_code == 403
        assert inbound(session) == [] and escalations(session) == []

    def test_a_body_changed_after_signing_is_refused(self, twilio, booked, session):
        form = twilio.sms_form("C")
        signature = twilio.sign("/twilio/sms", form)
        response = twilio.post("/twilio/sms", {**form, "Body": "STOP"}, signature=signature)
        assert response.status_code == 403 and inbound(session) == []

    def test_without_a_token_everything_is_refused(self, configure, two_way, clock, session, booked, caplog):
        app = create_app(configure(TWILIO_AUTH_TOKEN=""), {"TESTING": True, "CLOCK": clock})
        poster = Twilio(app.test_client(), two_way.twilio_auth_token)
        assert poster.sms("STOP").status_code == 403
        assert poster.sms("STOP", sid="SMunsigned").status_code == 403
        assert inbound(session) == []
        assert any("TWILIO_AUTH_TOKEN" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)


class TestWithoutPublicURL:
    """Without PUBLIC_BASE_URL Twilio's signature is checked against the address the request came
    to, so a clinic that left it out still gets its patients' replies and crisis texts."""

    @pytest.fixture
    def no_url(self, configure, two_way):
        return configure(PUBLIC_BASE_URL="")

    def test_a_text_signed_for_the_address_it_came_to_is_answered(self, no_url, clock, session, booked,
                                                                   fake_twilio, smtp_server):
        poster = Twilio(create_app(no_url, {"TESTING": True, "CLOCK": clock}).test_client(),
                        no_url.twilio_auth_token, base="http://localhost")
        assert "988" in answer(poster.sms("I want to die"))
        assert [e.status for e in escalations(session)] == ["open"]
        assert sorted(m["to"] for m in fake_twilio.messages) == sorted(STAFF_PHONES)
        assert "confirmed" in answer(poster.sms("C"))

    def test_one_signed_for_another_address_is_refused_and_says_why(self, no_url, clock, session, booked, caplog):
        poster = Twilio(create_app(no_url, {"TESTING": True, "CLOCK": clock}).test_client(),
                        no_url.twilio_auth_token, base=BASE)
        assert poster.sms("STOP").status_code == 403
        assert inbound(session) == [] and not patient(session).sms_opted_out
        [refusal] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert "http://localhost/twilio/sms" in refusal and "TRUSTED_PROXY_HOPS" in refusal

    @pytest.mark.parametrize("hops, accepted", [("1", True), ("0", False)])
    def test_behind_a_proxy_the_forwarded_scheme_and_host_count_only_when_trusted(
            self, configure, no_url, clock, session, booked, hops, accepted):
        app = create_app(configure(TRUSTED_PROXY_HOPS=hops), {"TESTING": True, "CLOCK": clock})
        poster = Twilio(app.test_client(), no_url.twilio_auth_token, base=BASE)  # Twilio called the public URL
        form = poster.sms_form("C")
        forwarded = {"X-Twilio-Signature": poster.sign("/twilio/sms", {**form, "AccountSid": poster.account_sid}),
                     "X-Forwarded-For": "54.172.60.1", "X-Forwarded-Proto": "https",
                     "X-Forwarded-Host": BASE.split("//")[1]}
        response = poster.client.post("/twilio/sms", data={**form, "AccountSid": poster.account_sid},
                                      headers=forwarded, environ_base={"REMOTE_ADDR": "10.0.0.2"})
        assert response.status_code == (200 if accepted else 403)
        assert len(inbound(session)) == (1 if accepted else 0)

    def test_the_query_string_is_part_of_what_is_signed(self, twilio, booked, session):
        form = {"MessageSid": "SMx", "MessageStatus": "delivered", "AccountSid": twilio.account_sid}
        signature = twilio.sign("/twilio/status?outbox_id=1", form)
        assert twilio.post("/twilio/status?outbox_id=2", form, signature=signature).status_code == 403
        assert twilio.post("/twilio/status?outbox_id=1", form, signature=signature).status_code == 204


# ---------------------------------------------------------------- replays

class TestReplay:
    def test_a_replayed_message_sid_acts_once_and_answers_the_same(self, twilio, booked, session, clock):
        first = answer(twilio.sms("C", sid="SMreplay1"))
        session.expire_all()
        confirmed_at = session.get(Appointment, booked.id).confirmed_at
        clock.advance(minutes=3)
        again = answer(twilio.sms("C", sid="SMreplay1"))
        assert first == again and "confirmed" in first
        session.expire_all()
        assert session.get(Appointment, booked.id).confirmed_at == confirmed_at == NOW
        assert len(inbound(session)) == 1 and inbound(session)[0].reply_body == first

    def test_a_replayed_crisis_text_opens_one_escalation_and_alerts_once(self, twilio, booked, session, fake_twilio,
                                                                         smtp_server):
        first = answer(twilio.sms("i want to kill myself", sid="SMreplay2"))
        alerts = len(fake_twilio.messages), len(smtp_server.messages)
        assert alerts == (2, 2)
        assert answer(twilio.sms("i want to kill myself", sid="SMreplay2")) == first
        assert (len(fake_twilio.messages), len(smtp_server.messages)) == alerts
        assert len(escalations(session)) == 1 and len(inbound(session)) == 1

    def test_a_replayed_stop_keeps_the_first_time(self, twilio, booked, session, clock):
        twilio.sms("STOP", sid="SMreplay3")
        clock.advance(hours=1)
        twilio.sms("STOP", sid="SMreplay3")
        assert patient(session).opted_out_at == NOW


# ---------------------------------------------------------------- keywords

STOP_WORDS = ["STOP", "stop", " Stop ", "Stop.", "STOP!!!", "'stop'", "StopAll", "STOP ALL", "unsubscribe",
              "UNSUBSCRIBE", "Cancel", "CANCEL", "end", "END.", "quit", "Quit!", "revoke", "REVOKE", "optout",
              "OPT-OUT", "opt out", "stop please", "Please stop", "STOP texting me", "unsubscribe me"]
START_WORDS = ["START", "start", " Start. ", "UNSTOP", "unstop", "Yes", "YES", "yes!"]
HELP_WORDS = ["HELP", "help", " Help? ", "INFO", "info", "Info."]


class TestKeywords:
    @pytest.mark.parametrize("word", STOP_WORDS)
    def test_opt_out_words_opt_the_number_out(self, twilio, booked, session, word, two_way, fake_twilio):
        reply = answer(twilio.sms(word))
        assert "unsubscribed" in reply and "START" in reply
        person = patient(session)
        assert person.sms_opted_out and person.opted_out_at == NOW and person.opt_out_text == word.strip()
        [message] = inbound(session)
        # A bare CANCEL opts out (carrier rule) and is shown to staff: the patient may have meant the visit.
        maybe_the_visit = word.strip().upper() == "CANCEL"
        assert (message.classification, message.needs_staff, message.patient_id) == ("stop", maybe_the_visit,
                                                                                       person.id)
        run_pass(two_way, at("2026-12-09T10:00:00-05:00"))  # the 24 h reminder's time
        assert fake_twilio.messages == []
        assert outbox(session, rule="first_induction_24h")[0].status_reason == "patient opted out of texts"

    @pytest.mark.parametrize("word", START_WORDS)
    def test_opt_in_words_opt_back_in(self, twilio, booked, session, word, two_way, fake_twilio, clock):
        twilio.sms("STOP")
        clock.advance(minutes=5)
        reply = answer(twilio.sms(word))
        assert "subscribed again" in reply and "STOP" in reply
        person = patient(session)
        assert not person.sms_opted_out and person.opted_in_at == clock.now
        run_pass(two_way, at("2026-12-09T10:00:00-05:00"))
        assert [m["to"] for m in fake_twilio.messages] == [PHONE, PHONE]  # the reminder and its second text

    def test_yes_from_a_subscribed_patient_explains_how_to_confirm(self, twilio, booked, session):
        reply = answer(twilio.sms("Yes"))
        assert "reply C" in reply and "reply R" in reply and "subscribed again" not in reply
        assert not patient(session).sms_opted_out and patient(session).opted_in_at is None

    @pytest.mark.parametrize("word", HELP_WORDS)
    def test_help_words_answer_with_the_clinic_name_and_phone(self, twilio, booked, session, word, two_way):
        reply = answer(twilio.sms(word))
        assert two_way.clinic_name in reply and two_way.clinic_phone in reply and "STOP" in reply
        assert "988" in reply
        assert inbound(session)[0].classification == "help"

    @pytest.mark.parametrize("text", ["I need to cancel my appointment", "cancel please", "the end",
                                      "please don't stop sending", "yes please"])
    def test_words_around_a_keyword_are_not_an_opt_out(self, twilio, booked, session, text):
        answer(twilio.sms(text))
        assert not patient(session).sms_opted_out

    def test_stop_with_crisis_words_opts_out_and_still_escalates(self, twilio, booked, session, fake_twilio):
        reply = answer(twilio.sms("STOP i want to kill myself"))
        assert patient(session).sms_opted_out
        assert "988" in reply and "911" in reply and "unsubscribed" in reply
        [escalation] = escalations(session)
        assert escalation.status == "open" and escalation.reason == "crisis_language"
        assert sorted(m["to"] for m in fake_twilio.messages) == sorted(STAFF_PHONES)

    def test_an_opted_out_patient_gets_no_answer_but_staff_see_the_text(self, twilio, booked, session):
        twilio.sms("STOP")
        assert answer(twilio.sms("Is my visit still on?")) is None
        message = inbound(session)[-1]
        assert message.needs_staff and message.patient_id == booked.patient_id
        assert "unsubscribed" in answer(twilio.sms("stop"))  # carriers want every STOP answered
        assert "Infusion Clinic" in answer(twilio.sms("HELP"))


# ---------------------------------------------------------------- appointment replies

class TestAppointmentReplies:
    @pytest.mark.parametrize("text", ["C", "c", " C ", "1", "confirm", "Confirmed!", "I confirm", "I'll be there",
                                      "ok confirm thanks", "Confirm my appointment"])
    def test_confirm_confirms_the_next_visit_visible_in_the_api(self, twilio, booked, session, api, text):
        reply = answer(twilio.sms(text))
        assert "confirmed" in reply and "Thursday, December 10 at 10:00 AM" in reply and "Maya" in reply
        body = api("/api/v1/appointments/a1")
        assert body["status"] == "confirmed" and at(body["confirmed_at"]) == NOW
        [message] = inbound(session)
        assert (message.classification, message.needs_staff, message.appointment_id) == ("confirm", False, booked.id)

    def test_confirm_picks_the_next_upcoming_visit_not_a_past_or_canceled_one(self, twilio, session, api):
        book(session, starts_at="2026-12-01T10:00:00-05:00", appointment="past", status="completed")
        book(session, starts_at="2026-12-09T10:00:00-05:00", appointment="off", status="canceled")
        book(session, starts_at="2026-12-11T10:00:00-05:00", appointment="next")
        book(session, starts_at="2026-12-18T10:00:00-05:00", appointment="later")
        answer(twilio.sms("C"))
        statuses = {key: api(f"/api/v1/appointments/{key}")["status"] for key in ("past", "off", "next", "later")}
        assert statuses == {"past": "completed", "off": "canceled", "next": "confirmed", "later": "scheduled"}

    @pytest.mark.parametrize("text", ["R", "r", "3", "reschedule", "Reschedule please", "Can I reschedule?",
                                      "I need to reschedule", "something came up, can we resched?"])
    def test_reschedule_marks_the_visit_for_a_call_and_says_so(self, twilio, booked, session, api, text):
        reply = answer(twilio.sms(text))
        assert "will call you" in reply and "December 10" in reply
        body = api("/api/v1/appointments/a1")
        assert at(body["reschedule_requested_at"]) == NOW and body["status"] == "scheduled"
        [item] = api("/api/v1/replies?needs_staff=true")["replies"]
        assert item["classification"] == "reschedule" and item["patient_external_id"] == "p1"
        assert item["appointment_external_id"] == "a1" and item["body"] == text

    def test_nothing_upcoming_is_said_kindly_and_goes_to_staff(self, twilio, session, api):
        book(session, starts_at="2026-12-01T10:00:00-05:00", status="completed")
        reply = answer(twilio.sms("C"))
        assert "could not find an upcoming visit" in reply and "in touch" in reply
        [item] = api("/api/v1/replies?needs_staff=true")["replies"]
        assert item["classification"] == "confirm" and item["patient_external_id"] == "p1"
        reschedule = answer(twilio.sms("R"))
        assert "will call you to find a new time" in reschedule

    def test_free_text_goes_to_the_staff_inbox_and_is_acknowledged(self, twilio, booked, session, api, two_way):
        reply = answer(twilio.sms("My sister will drive me home instead of my husband"))
        assert "passed your message" in reply and "not watched around the clock" in reply
        assert "988" in reply and "911" in reply and two_way.clinic_phone in reply
        [item] = api("/api/v1/replies?needs_staff=true")["replies"]
        assert item["classification"] == "free_text" and item["patient_external_id"] == "p1"
        assert item["reply"] == reply
        history = api("/api/v1/replies?patient_external_id=p1")["replies"]
        assert [h["body"] for h in history] == ["My sister will drive me home instead of my husband"]

    def test_a_picture_without_words_reaches_staff(self, twilio, booked, session):
        answer(twilio.sms("", NumMedia="1", MediaUrl0="https://api.twilio.com/media/ME1"))
        [message] = inbound(session)
        assert message.needs_staff and "attached" in message.body

    def test_the_first_answer_to_a_patient_never_texted_introduces_the_service(self, twilio, session, clock):
        book(session, starts_at=VISIT, welcomed=False)
        reply = answer(twilio.sms("C"))
        assert "Reply HELP for help, STOP to opt out" in reply and "confirmed" in reply
        assert patient(session).welcomed_at == NOW
        assert "STOP to opt out" not in answer(twilio.sms("confirm"))


# ---------------------------------------------------------------- unknown numbers

class TestUnknownNumber:
    @pytest.mark.parametrize("text", ["C", "Hi is this Maya's clinic?", "R", "7", "START"])
    def test_a_stranger_gets_a_polite_answer_that_reveals_nothing(self, twilio, booked, session, text, two_way):
        reply = answer(twilio.sms(text, from_=STRANGER))
        assert two_way.clinic_name in reply and two_way.clinic_phone in reply and "988" in reply
        for secret in ("Maya", "Lopez", "December", "confirmed", "visit"):
            assert secret not in reply
        [message] = inbound(session)
        assert message.patient_id is None and message.needs_staff and message.from_number == STRANGER
        assert session.get(Appointment, booked.id).status == "scheduled"

    def test_stop_and_help_from_a_stranger_are_answered_as_carriers_require(self, twilio, session, two_way):
        assert "unsubscribed" in answer(twilio.sms("STOP", from_=STRANGER))
        assert two_way.clinic_phone in answer(twilio.sms("HELP", from_=STRANGER))

    def test_a_crisis_from_a_stranger_still_escalates(self, twilio, session, fake_twilio, smtp_server):
        reply = answer(twilio.sms("nobody would care if i was gone, i want to end it all", from_=STRANGER))
        assert "988" in reply and "911" in reply
        [escalation] = escalations(session)
        assert escalation.patient_id is None and escalation.from_number == STRANGER
        assert sorted(m["to"] for m in fake_twilio.messages) == sorted(STAFF_PHONES)
        assert all("unknown number (phone ending 77)" in m["body"] for m in fake_twilio.messages)
        assert len(smtp_server.messages) == 2


# ---------------------------------------------------------------- nothing escapes

def test_when_acting_fails_the_text_is_kept_for_staff_and_the_crisis_line_still_goes(
        twilio, booked, session, monkeypatch, fake_twilio):
    import reminders.inbound.conversation as conversation

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(conversation, "current_checkin", broken)  # every text now fails half-way
    reply = answer(twilio.sms("C"))
    assert "988" in reply
    [message] = inbound(session)
    assert message.needs_staff and message.classification == "error" and message.patient_id == booked.patient_id
    assert session.get(Appointment, booked.id).status == "scheduled"  # half an action is not kept
    crisis = answer(twilio.sms("i'm going to overdose tonight"))
    assert "988" in crisis and "911" in crisis
    [escalation] = escalations(session)
    assert escalation.patient_id == booked.patient_id and len(fake_twilio.messages) == 2
    assert inbound(session)[-1].classification == "crisis"


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.text(max_size=160), sender=st.sampled_from([PHONE, STRANGER]))
def test_any_text_through_the_webhook_is_answered_and_handled_or_in_the_staff_inbox(twilio, booked, session, body,
                                                                                   sender):
    sid = new_sid("SMprop")
    response = twilio.sms(body, from_=sender, sid=sid)
    assert response.status_code == 200
    ET.fromstring(response.data)
    session.expire_all()
    message = session.scalar(select(InboundMessage).where(InboundMessage.message_sid == sid))
    assert message is not None and message.body == body.replace("\x00", "")
    assert message.needs_staff or message.classification in HANDLED
    if sender == STRANGER:
        assert message.needs_staff and message.patient_id is None
    count = session.scalar(select(func.count()).select_from(Patient).where(Patient.sms_opted_out))
    if count:  # keep the next example's patient reachable
        session.query(Patient).update({"sms_opted_out": False})
        session.commit()


@pytest.mark.postgres
def test_on_postgresql_texts_arriving_together_in_a_new_process_are_all_read(configure, pg_settings):
    """The first texts a web process reads arrive in several threads at once: each must find its
    patient (the shared look-up statement was once compiled by two threads together and failed)."""
    import threading

    from reminders import db
    from reminders.inbound import sender_lookup

    with db.session_factory(pg_settings.effective_database_url)() as session:
        book(session, starts_at=VISIT)
        session.commit()
    for _ in range(15):
        sender_lookup._built_statements.clear()  # as in a new process: nothing built, nothing compiled
        db.dispose_engines()
        sessions = db.session_factory(pg_settings.effective_database_url)
        found, start = [], threading.Barrier(4)

        def read():
            with sessions() as session:
                start.wait(60)
                found.append([facts.patient.phone for facts in sender_lookup.sender_facts(session, PHONE, NOW, pg_settings)])

        threads = [threading.Thread(target=read) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert found == [[PHONE]] * 4


@pytest.mark.postgres
def test_on_postgresql_a_crisis_is_answered_alerted_and_a_concurrent_replay_acts_once(
        configure, pg_settings, twilio_settings, smtp_settings, fake_twilio, smtp_server, clock):
    import threading

    from reminders.db import session_factory

    settings = configure(**twilio_settings, **smtp_settings, PUBLIC_BASE_URL=BASE,
                         STAFF_ALERT_PHONES=",".join(STAFF_PHONES), STAFF_ALERT_EMAILS=",".join(STAFF_EMAILS))
    sessions = session_factory(settings.effective_database_url)
    with sessions() as session:
        visit = book(session, starts_at=VISIT)
        visit.patient.welcomed_at = NOW
        session.commit()
    app = create_app(settings, {"TESTING": True, "CLOCK": clock})
    form = Twilio.sms_form("i want to kill myself", sid="SMpgreplay")
    answers, start = [], threading.Barrier(3)

    def deliver():
        poster = Twilio(app.test_client(), settings.twilio_auth_token)
        start.wait(60)
        answers.append(answer(poster.post("/twilio/sms", form)))

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answers) == 3 and len(set(answers)) == 1 and "988" in answers[0]
    assert sorted(m["to"] for m in fake_twilio.messages) == sorted(STAFF_PHONES)
    assert len(smtp_server.messages) == 2
    poster = Twilio(app.test_client(), settings.twilio_auth_token)
    assert "confirmed" in answer(poster.sms("C"))
    assert "unsubscribed" in answer(poster.sms("STOP"))
    with sessions() as session:
        assert len(session.scalars(select(InboundMessage)).all()) == 3
        assert len(session.scalars(select(Escalation)).all()) == 1
        person = session.scalar(select(Patient))
        assert person.sms_opted_out and session.scalar(select(Appointment)).status == "confirmed"


# ---------------------------------------------------------------- Twilio's forms, without Flask

class TestSignatureFunctions:
    """reminders.channels.twilio.webhooks takes everything as arguments: no request, no settings."""

    TOKEN = "f" * 32
    PATH = "/twilio/status?outbox_id=12"
    FORM = {"MessageSid": "SMabc", "MessageStatus": "delivered", "AccountSid": "AC" + "1" * 32}

    def signed(self, path: str = PATH, form: dict | None = None, url_base: str = BASE) -> dict:
        signature = RequestValidator(self.TOKEN).compute_signature(url_base + path, self.FORM if form is None else form)
        return {"x-twilio-signature": signature}  # header names are matched in any case

    def test_a_signed_form_passes_and_any_change_is_named(self):
        from reminders.channels.twilio.webhooks import signature_problem, signed_url

        assert signed_url(BASE + "/", self.PATH + "?") == BASE + self.PATH
        assert signature_problem(self.TOKEN, BASE, self.PATH, self.signed(), self.FORM) is None
        moved = signature_problem(self.TOKEN, BASE, "/twilio/status?outbox_id=13", self.signed(), self.FORM)
        assert "does not match" in moved and "outbox_id=13" in moved
        changed = {**self.FORM, "MessageStatus": "failed"}
        assert "does not match" in signature_problem(self.TOKEN, BASE, self.PATH, self.signed(), changed)
        assert signature_problem(self.TOKEN, BASE, self.PATH, {}, self.FORM) == "no X-Twilio-Signature header"
        assert "does not match" in signature_problem(self.TOKEN, BASE, self.PATH,
                                                     self.signed(url_base="https://evil.example"), self.FORM)

    def test_without_a_token_or_a_public_url_nothing_passes(self):
        from reminders.channels.twilio.webhooks import signature_problem

        assert "TWILIO_AUTH_TOKEN" in signature_problem("", BASE, self.PATH, self.signed(), self.FORM)
        assert "PUBLIC_BASE_URL" in signature_problem(self.TOKEN, "", self.PATH, self.signed(), self.FORM)

    def test_a_json_body_is_checked_through_its_hash(self):
        from reminders.channels.twilio.webhooks import signature_problem

        body = '{"MessageSid": "SMabc", "MessageStatus": "delivered"}'
        path = f"/twilio/status?bodySHA256={hashlib.sha256(body.encode()).hexdigest()}"
        headers = self.signed(path, {})
        assert signature_problem(self.TOKEN, BASE, path, headers, {}, body) is None
        assert signature_problem(self.TOKEN, BASE, path, headers, {}, body.replace("delivered", "failed"))

    def test_another_account_is_refused_and_only_its_end_is_named(self):
        from reminders.channels.twilio.webhooks import account_problem

        ours = self.FORM["AccountSid"]
        assert account_problem(ours, self.FORM) is None
        assert account_problem("", {"AccountSid": "AC" + "2" * 32}) is None  # none configured
        other = account_problem(ours, {"AccountSid": "AC" + "2" * 28 + "9876"})
        assert "'9876'" in other and "2" * 28 not in other
        assert "missing" in account_problem(ours, {})


class TestInboundForm:
    def test_a_whatsapp_text_is_the_whatsapp_channel_with_plain_numbers(self):
        from reminders.channels.twilio.webhooks import parse_inbound

        form = Twilio.sms_form("C", from_=f"whatsapp:{PHONE}", sid="SMwa1", To="whatsapp:+15005550006")
        text = parse_inbound(form)
        assert (text.channel, text.from_number, text.to_number) == ("whatsapp", PHONE, "+15005550006")
        assert (text.message_sid, text.body, text.notes) == ("SMwa1", "C", ())

    def test_a_text_is_the_sms_channel_and_odd_fields_are_cleaned_with_a_note(self):
        from reminders.channels.twilio.webhooks import parse_inbound

        text = parse_inbound(Twilio.sms_form("ok", from_=PHONE[:4] + "\x00" + PHONE[4:], NumMedia="x"))
        assert (text.channel, text.from_number, text.num_media) == ("sms", PHONE, 0)
        assert text.notes == ("[sender number was malformed]",)

    def test_a_whatsapp_text_from_a_patient_is_hers(self, twilio, booked, session):
        reply = answer(twilio.sms("C", from_=f"whatsapp:{PHONE}", To="whatsapp:+15005550006"))
        assert "confirmed" in reply
        session.expire_all()
        assert session.get(Appointment, booked.id).status == "confirmed"
        [message] = inbound(session)
        assert message.patient_id == booked.patient_id and message.from_number == PHONE

    def test_the_answer_is_twiml_with_the_reply_or_nothing(self):
        from reminders.channels.twilio.webhooks import twiml_answer

        assert [m.text for m in ET.fromstring(twiml_answer("See you <then> & thanks")).iter("Message")] == [
            "See you <then> & thanks"]
        assert list(ET.fromstring(twiml_answer(None)).iter("Message")) == []
