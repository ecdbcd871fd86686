"""WhatsApp as a third channel: the same Twilio account, `whatsapp:` addresses, its own wording
where it differs from SMS, answers on the channel the patient wrote on, and the 24-hour rule for
free-form text. End to end against the fake Twilio server, with the signed webhook.

Maya prefers WhatsApp. Her first infusion is Thursday 10:00 New York; the 72-hour reminder is due
Monday 10:00.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from reminders.channels import channels_for
from reminders.channel_specs import SMS, WHATSAPP, spec_for
from reminders.channels.kinds import within_free_form_window
from reminders.channels.local_outbox import read_outbox
from reminders.intake.records import PatientRecord
from reminders.models import CheckIn, Patient
from reminders.models.replies import last_inbound_at
from reminders.outbox import Kind, OutboxRow, plan
from reminders.pipeline import run_pass
from reminders.rendering import TemplateStore, text_template
from reminders.timing.rules import RuleSettings, choose_channels, rules_by_name, texting_by
from reminders.web import create_app
from tests.conftest import at
from tests.fixtures.channels import TWILIO_TEST_FROM
from tests.fixtures.twoway import PHONE, Twilio, answer, inbound
from tests.helpers import book, outbox

WHATSAPP_FROM = "+15005550009"  # the clinic's WhatsApp sender, registered with Twilio
VISIT = "2026-12-10T10:00:00-05:00"  # Thursday: the first infusion
REMINDER_DUE = at("2026-12-07T10:00:00-05:00")  # Monday: 72 hours before
INFUSION = "2026-12-07T10:00:00-05:00"  # for the check-in: Monday's infusion
PROMPT_AT = at("2026-12-08T10:00:00-05:00")  # the day-after check-in goes Tuesday 10:00


@pytest.fixture
def whatsapp_on(configure, two_way):
    return configure(TWILIO_WHATSAPP_FROM=WHATSAPP_FROM)


@pytest.fixture
def clock(clock):
    """An hour after the check-in prompt went."""
    clock.set(PROMPT_AT + timedelta(hours=1))
    return clock


@pytest.fixture
def whatsapp_twilio(whatsapp_on, clock):
    """Posts to the app, configured with WhatsApp on, as Twilio does (signed)."""
    app = create_app(whatsapp_on, {"TESTING": True, "CLOCK": clock})
    return Twilio(app.test_client(), whatsapp_on.twilio_auth_token)


def from_whatsapp(twilio: Twilio, body: str):
    return twilio.sms(body, from_=f"whatsapp:{PHONE}", To=f"whatsapp:{WHATSAPP_FROM}")


def maya(session) -> Patient:
    session.expire_all()
    return session.scalar(select(Patient).where(Patient.external_id == "p1"))


# ---------------------------------------------------------------- the plug-in, without servers

class TestTheChannel:
    def test_whatsapp_is_a_text_channel_reached_at_the_phone_that_falls_back_to_sms(self):
        assert spec_for("whatsapp") is WHATSAPP
        assert (WHATSAPP.contact, WHATSAPP.is_text, WHATSAPP.fallback, WHATSAPP.template_fallback) == \
            ("phone", True, "sms", "sms")
        assert not WHATSAPP.carries_calendar and not WHATSAPP.counts_segments and WHATSAPP.reports_delivery

    def test_free_form_text_may_go_within_24_hours_of_the_patients_last_message(self):
        now = at("2026-12-08T15:00:00+00:00")
        assert within_free_form_window(WHATSAPP, now - timedelta(hours=23, minutes=59), now)
        assert within_free_form_window(WHATSAPP, now - timedelta(hours=24), now)
        assert not within_free_form_window(WHATSAPP, now - timedelta(hours=25), now)
        assert not within_free_form_window(WHATSAPP, None, now)  # never wrote on WhatsApp
        assert within_free_form_window(SMS, None, now)  # SMS has no window

    def test_every_text_a_rule_sends_goes_on_whatsapp_for_a_patient_who_chose_it(self):
        on, off = RuleSettings(whatsapp_enabled=True), RuleSettings()
        rules = rules_by_name(on)
        patient = Patient(phone=PHONE, email="maya@example.org", preferred_channel="whatsapp")
        for name in ("first_induction_72h", "first_induction_24h", "checkin_day_after", "rebook_nudge",
                     "welcome", "visit_moved"):
            assert choose_channels(rules[name], texting_by(patient.channels(), on)) == {"whatsapp"}, name
            assert choose_channels(rules[name], texting_by(patient.channels(), off)) == {"sms"}, name

    def test_other_patients_are_planned_as_before(self):
        on = RuleSettings(whatsapp_enabled=True)
        rules = rules_by_name(on)
        both = Patient(phone=PHONE, email="maya@example.org", preferred_channel="both")
        assert choose_channels(rules["first_induction_72h"], texting_by(both.channels(), on)) == {"sms", "email"}
        no_phone = Patient(phone=None, email="maya@example.org", preferred_channel="whatsapp")
        assert choose_channels(rules["first_induction_72h"], texting_by(no_phone.channels(), on)) == {"email"}

    def test_a_rule_without_whatsapp_wording_uses_its_sms_text_in_the_patients_language(self, settings):
        store = TemplateStore(settings.templates_dir)
        assert text_template(store, "welcome", WHATSAPP, "en") == "welcome.whatsapp.j2"
        assert text_template(store, "welcome", WHATSAPP, "es") == "es/welcome.whatsapp.j2"
        assert text_template(store, "checkin_day_after", WHATSAPP, "es") == "es/checkin_day_after.whatsapp.j2"
        assert text_template(store, "induction_24h", WHATSAPP, "en") == "induction_24h.sms.j2"
        assert text_template(store, "induction_24h", WHATSAPP, "es") == "es/induction_24h.sms.j2"
        assert text_template(store, "welcome", SMS, "es") == "es/welcome.sms.j2"

    def test_without_twilio_whatsapp_goes_to_the_local_outbox(self, configure, settings, session):
        settings = configure(TWILIO_WHATSAPP_FROM=WHATSAPP_FROM)
        assert channels_for(settings)["whatsapp"].name == "whatsapp"
        book(session, starts_at=VISIT, channel="whatsapp")
        run_pass(settings, REMINDER_DUE)
        [record] = read_outbox(settings.effective_outbox_dir)
        assert (record["channel"], record["to"]) == ("whatsapp", PHONE)

    def test_whatsapp_is_off_unless_its_sender_is_set(self, configure, settings):
        assert "whatsapp" not in channels_for(settings)
        with pytest.raises(ValueError, match="E.164"):
            configure(TWILIO_WHATSAPP_FROM="5550100")


# ---------------------------------------------------------------- sending through Twilio

class TestSending:
    def test_the_welcome_and_the_reminder_go_on_whatsapp_in_whatsapp_words(self, whatsapp_on, session,
                                                                           fake_twilio):
        book(session, starts_at=VISIT, channel="whatsapp", welcomed=False)
        run_pass(whatsapp_on, REMINDER_DUE)
        welcome, reminder = fake_twilio.messages
        for message in (welcome, reminder):
            assert message["to"] == f"whatsapp:{PHONE}"
            assert message["from_"] == f"whatsapp:{WHATSAPP_FROM}"
        assert "on WhatsApp" in welcome["body"] and "STOP" in welcome["body"] and "988" in welcome["body"]
        assert "Msg & data rates" not in welcome["body"]
        assert "infusion" in reminder["body"] and "Reply C to confirm" in reminder["body"]
        rows = outbox(session, status="sent")
        assert [(row.rule, row.channel) for row in rows] == [("welcome", "whatsapp"), ("first_induction_72h", "whatsapp")]
        assert {row.channel for row in outbox(session)} == {"whatsapp"}  # the later reminders too
        assert rows[1].segments is None  # WhatsApp is not billed by SMS segments
        assert rows[1].to_address == PHONE  # the row keeps the number; Twilio's address is the client's
        assert maya(session).welcomed_at is not None

    def test_with_whatsapp_off_the_same_patient_gets_sms(self, two_way, session, fake_twilio):
        book(session, starts_at=VISIT, channel="whatsapp", welcomed=False)
        run_pass(two_way, REMINDER_DUE)
        welcome, reminder = fake_twilio.messages
        for message in (welcome, reminder):
            assert (message["to"], message["from_"]) == (PHONE, TWILIO_TEST_FROM)
        assert "Msg & data rates" in welcome["body"]
        assert [(row.rule, row.channel) for row in outbox(session, status="sent")] == [
            ("welcome", "sms"), ("first_induction_72h", "sms")]

    def test_whatsapp_switched_off_after_planning_sends_the_planned_reminder_by_sms(self, whatsapp_on, two_way,
                                                                                    session, fake_twilio):
        book(session, starts_at=VISIT, channel="whatsapp")
        run_pass(whatsapp_on, REMINDER_DUE - timedelta(days=1))  # planned on WhatsApp, nothing due yet
        assert {row.channel for row in outbox(session)} == {"whatsapp"}
        run_pass(two_way, REMINDER_DUE)  # the clinic turned WhatsApp off meanwhile
        [reminder] = fake_twilio.messages
        assert (reminder["to"], reminder["from_"]) == (PHONE, TWILIO_TEST_FROM)
        [skipped] = outbox(session, status="skipped")
        assert skipped.channel == "whatsapp" and "sent as text message instead" in skipped.status_reason
        assert [(row.rule, row.channel) for row in outbox(session, status="sent")] == [("first_induction_72h", "sms")]

    def test_a_whatsapp_message_refused_for_good_goes_by_sms(self, whatsapp_on, session, fake_twilio):
        book(session, starts_at=VISIT, channel="whatsapp")
        fake_twilio.fail_next(status=400, code=63003, message="Channel could not find To address")
        run_pass(whatsapp_on, REMINDER_DUE)
        run_pass(whatsapp_on, REMINDER_DUE + timedelta(minutes=1))
        [failed] = outbox(session, status="failed")
        assert failed.channel == "whatsapp"
        [sent] = outbox(session, status="sent")
        assert (sent.rule, sent.channel, sent.status_reason) == ("first_induction_72h", "sms", None)
        assert fake_twilio.messages[-1]["to"] == PHONE

    def test_a_whatsapp_patient_who_opted_out_of_texts_gets_the_reminder_by_email(self, whatsapp_on, session,
                                                                                 fake_twilio):
        book(session, starts_at=VISIT, channel="whatsapp", email="maya@example.org")
        maya(session).sms_opted_out = True
        session.commit()
        run_pass(whatsapp_on, REMINDER_DUE)
        run_pass(whatsapp_on, REMINDER_DUE + timedelta(minutes=1))
        assert fake_twilio.messages == []
        [sent] = outbox(session, status="sent")
        assert (sent.rule, sent.channel, sent.to_address) == ("first_induction_72h", "email", "maya@example.org")

    def test_a_patient_who_prefers_sms_still_gets_sms_with_whatsapp_on(self, whatsapp_on, session, fake_twilio):
        book(session, starts_at=VISIT, channel="sms")
        run_pass(whatsapp_on, REMINDER_DUE)
        [reminder] = fake_twilio.messages
        assert (reminder["to"], reminder["from_"]) == (PHONE, TWILIO_TEST_FROM)

    def test_a_read_report_marks_the_whatsapp_message_delivered(self, whatsapp_on, whatsapp_twilio, session,
                                                              fake_twilio):
        book(session, starts_at=VISIT, channel="whatsapp")
        run_pass(whatsapp_on, REMINDER_DUE)
        [message] = fake_twilio.messages
        assert message["status_callback"].startswith("https://clinic.example.org/twilio/status?outbox_id=")
        [row] = outbox(session, status="sent")
        assert whatsapp_twilio.status(row.id, message["sid"], "sent").status_code == 204
        assert whatsapp_twilio.status(row.id, message["sid"], "read").status_code == 204
        [row] = outbox(session, rule="first_induction_72h")
        assert (row.status, row.provider_status) == ("delivered", "read")
        assert row.delivered_at is not None


# ---------------------------------------------------------------- the patient writes back on WhatsApp

@pytest.fixture
def checked_in(whatsapp_on, session, fake_twilio):
    """Maya had her infusion Monday and was asked on WhatsApp this morning how she is."""
    book(session, starts_at=INFUSION, status="completed", channel="whatsapp", appointment="a1",
         now=at("2026-12-01T12:00:00+00:00"))
    run_pass(whatsapp_on, PROMPT_AT)
    [prompt] = fake_twilio.messages
    assert prompt["to"] == f"whatsapp:{PHONE}" and "0 (worst) to 10 (best)" in prompt["body"]
    assert "Just reply here" in prompt["body"]  # the WhatsApp wording of the day-after check-in
    fake_twilio.messages.clear()
    return session.scalars(select(CheckIn)).one()


class TestAnswers:
    def test_a_score_on_whatsapp_answers_the_check_in(self, whatsapp_twilio, checked_in, session):
        reply = answer(from_whatsapp(whatsapp_twilio, "7"))
        assert "glad to hear it" in reply
        session.expire_all()
        checkin = session.get(CheckIn, checked_in.id)
        assert (checkin.score, checkin.status) == (7, "answered")
        [message] = inbound(session)
        assert (message.channel, message.from_number, message.to_number) == ("whatsapp", PHONE, WHATSAPP_FROM)
        assert message.patient_id == maya(session).id and message.classification == "checkin_answer"

    def test_crisis_words_on_whatsapp_get_the_crisis_line(self, whatsapp_twilio, checked_in, session):
        reply = answer(from_whatsapp(whatsapp_twilio, "2, I want to die"))
        assert "988" in reply and "911" in reply
        assert inbound(session)[0].classification == "crisis"

    def test_stop_on_whatsapp_opts_out_of_texts_on_both_channels(self, whatsapp_on, whatsapp_twilio, checked_in,
                                                                session, fake_twilio):
        reply = answer(from_whatsapp(whatsapp_twilio, "STOP"))
        assert "unsubscribed" in reply
        assert maya(session).sms_opted_out
        book(session, starts_at=VISIT, channel="whatsapp", appointment="a2")
        run_pass(whatsapp_on, at("2026-12-09T10:00:00-05:00"))  # Thursday's reminder is due
        assert fake_twilio.messages == []
        assert {row.status_reason for row in outbox(session, appointment_id=maya(session).appointments[-1].id)
                if row.status == "skipped"} == {"patient opted out of texts"}

    def test_the_last_whatsapp_message_is_known_per_channel(self, whatsapp_twilio, checked_in, session, clock):
        answer(from_whatsapp(whatsapp_twilio, "7"))
        patient_id = maya(session).id
        assert last_inbound_at(session, patient_id, "whatsapp") == clock.now
        assert last_inbound_at(session, patient_id, "sms") is None


# ---------------------------------------------------------------- the 24-hour rule

def staff_reply(session, patient_id: int, now, key: str = "reply:1") -> None:
    """A written answer from staff (free-form text, not a template), on the patient's channel."""
    plan(session, [OutboxRow(dedupe_key=key, kind=Kind.REPLY, rule="staff_reply", channel="whatsapp",
                             planned_for=now, due_at=now, patient_id=patient_id,
                             body="Dr. Lee read your message: keep the appointment, see you Thursday.")], now)
    session.commit()


class TestTheSessionWindow:
    def test_a_written_reply_within_24_hours_goes_on_whatsapp(self, whatsapp_on, whatsapp_twilio, checked_in,
                                                             session, fake_twilio, clock):
        answer(from_whatsapp(whatsapp_twilio, "7"))
        later = clock.now + timedelta(hours=23)
        staff_reply(session, maya(session).id, later)
        run_pass(whatsapp_on, later)
        [message] = [m for m in fake_twilio.messages if "Dr. Lee" in m["body"]]
        assert (message["to"], message["from_"]) == (f"whatsapp:{PHONE}", f"whatsapp:{WHATSAPP_FROM}")

    def test_a_written_reply_after_25_hours_goes_by_sms(self, whatsapp_on, whatsapp_twilio, checked_in, session,
                                                       fake_twilio, clock):
        answer(from_whatsapp(whatsapp_twilio, "7"))
        later = clock.now + timedelta(hours=25)
        staff_reply(session, maya(session).id, later)
        run_pass(whatsapp_on, later)
        [message] = [m for m in fake_twilio.messages if "Dr. Lee" in m["body"]]
        assert (message["to"], message["from_"]) == (PHONE, TWILIO_TEST_FROM)


# ---------------------------------------------------------------- intake

def test_intake_accepts_whatsapp_as_a_preference_that_needs_a_phone(client, api_headers, session):
    patient = {"external_id": "p1", "first_name": "Maya", "last_name": "Lopez", "phone": "+1 202 555 0143",
               "timezone": "America/New_York", "preferred_channel": "WhatsApp"}
    response = client.post("/api/v1/patients", json=patient, headers=api_headers)
    assert response.status_code == 201, response.json
    assert maya(session).preferred_channel == "whatsapp"
    with pytest.raises(ValueError, match=r"phone is missing \(preferred_channel is whatsapp\)"):
        PatientRecord(external_id="p2", first_name="Sam", timezone="America/New_York", email="sam@example.org",
                      preferred_channel="whatsapp")


# ---------------------------------------------------------------- the schema

def _migrate_down_and_up(url: str) -> None:
    from alembic import command
    from sqlalchemy import create_engine, text

    from reminders.migrations import alembic_config, upgrade

    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO patients (first_name, last_name, phone, timezone, preferred_channel, sms_opted_out, language, "
            "medications_to_hold, notes, created_at, updated_at) VALUES ('Maya', 'Lopez', '+12025550143', "
            "'America/New_York', 'whatsapp', false, 'en', '', '', '2026-11-01 12:00:00', '2026-11-01 12:00:00')"))
    command.downgrade(alembic_config(url), "0007_replies_checkin")
    with engine.begin() as connection:
        assert connection.execute(text("SELECT preferred_channel FROM patients")).scalar() == "sms"
    upgrade(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE patients SET preferred_channel = 'whatsapp'"))
        assert connection.execute(text("SELECT count(*) FROM inbound_messages WHERE channel = 'sms'")).scalar() == 0
    engine.dispose()


def test_the_migration_goes_down_and_up_again_on_sqlite(tmp_path):
    _migrate_down_and_up(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
def test_the_migration_goes_down_and_up_again_on_postgres(postgres_url):
    _migrate_down_and_up(postgres_url)
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import IntegrityError

    engine = create_engine(postgres_url)
    with pytest.raises(IntegrityError), engine.begin() as connection:  # the CHECK still holds
        connection.execute(text("UPDATE patients SET preferred_channel = 'fax'"))
    engine.dispose()


def test_the_fake_twilio_refuses_a_whatsapp_message_from_an_sms_number(fake_twilio):
    from twilio.base.exceptions import TwilioRestException
    from twilio.rest import Client

    client = Client(fake_twilio.account_sid, fake_twilio.auth_token)
    client.api.base_url, client.edge, client.region = fake_twilio.url, None, None
    messages = client.api.v2010.account.messages
    with pytest.raises(TwilioRestException) as refused:
        messages.create(to=f"whatsapp:{PHONE}", from_=TWILIO_TEST_FROM, body="hello")
    assert refused.value.code == 21910
    assert messages.create(to=f"whatsapp:{PHONE}", from_=f"whatsapp:{WHATSAPP_FROM}", body="hello").sid
