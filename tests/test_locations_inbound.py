"""Texts to a clinic with several locations: a text is for the location whose number it was sent
to (else the patient's), is answered in that location's words and office hours, and a crisis
alerts that location's on-call only, from that location's number, in every round."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from reminders.locations import save_location
from reminders.models import OutboxMessage
from reminders.pipeline import run_pass
from tests.conftest import at
from tests.fixtures.twoway import CLINIC_NUMBER, NOW, STAFF_EMAILS, STAFF_PHONES, STRANGER, answer, escalations
from tests.helpers import book

NY_SENDER, CHI_SENDER, LA_SENDER = "+12125550100", "+13125550100", "+13105550100"
NY_ONCALL, CHI_ONCALL, LA_ONCALL = "+12125550199", "+13125550199", "+13105550199"
NY_EMAIL, CHI_EMAIL, LA_EMAIL = "oncall-ny@clinic.test", "oncall-chi@clinic.test", "oncall-la@clinic.test"
ONCALL_PHONES = {NY_ONCALL, CHI_ONCALL, LA_ONCALL, *STAFF_PHONES}
NY_PHONE = "+12025550150"
FRIDAY_EVENING_CHICAGO = at("2026-12-11T18:30:00-06:00")  # 19:30 in New York, 16:30 in Los Angeles


@pytest.fixture
def places(session):
    """New York open late (to 8 PM), Chicago from 7:30 AM to 6 PM, Los Angeles: each its own
    number and on-call."""
    made = {}
    for code, name, zone, sender, phone, oncall, email, hours in (
            ("ny", "Bright Minds New York", "America/New_York", NY_SENDER, "(212) 555-0100", NY_ONCALL, NY_EMAIL,
             ("08:00", "20:00")),
            ("chicago", "Bright Minds Chicago", "America/Chicago", CHI_SENDER, "(312) 555-0100", CHI_ONCALL,
             CHI_EMAIL, ("07:30", "18:00")),
            ("la", "Bright Minds Los Angeles", "America/Los_Angeles", LA_SENDER, "(310) 555-0100", LA_ONCALL,
             LA_EMAIL, ("08:00", "17:00"))):
        made[code] = save_location(session, {
            "code": code, "name": name, "timezone": zone, "sender": sender, "phone": phone,
            "oncall_phones": oncall, "oncall_emails": email, "office_hours_start": hours[0],
            "office_hours_end": hours[1], "office_days": "mon-fri"}).id
    session.commit()
    return made


def at_location(session, location_id: int, **kwargs):
    visit = book(session, **kwargs)
    visit.location_id = location_id
    session.commit()
    return visit


@pytest.fixture
def chicago_patient(session, places):
    return at_location(session, places["chicago"], starts_at="2026-12-15T10:00:00-06:00", patient="chi",
                       zone="America/Chicago")


def alert_rows(session) -> list[OutboxMessage]:
    session.expire_all()
    return list(session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "alert").order_by(OutboxMessage.id)))


def oncall_texts(fake_twilio) -> list[dict]:
    return [m for m in fake_twilio.messages if m["to"] in ONCALL_PHONES]


def mailed_to(smtp_server) -> list[str]:
    return sorted(r for m in smtp_server.messages for r in m.rcpt_tos)


class TestOnCallOfTheLocation:
    def test_a_crisis_text_to_chicago_alerts_chicagos_on_call_only_from_chicagos_number(
            self, twilio, chicago_patient, places, session, fake_twilio, smtp_server):
        reply = answer(twilio.sms("I want to kill myself", To=CHI_SENDER))
        assert "988" in reply and "911" in reply
        [escalation] = escalations(session)
        assert escalation.location_id == places["chicago"] and escalation.patient_id == chicago_patient.patient_id
        rows = alert_rows(session)
        assert {(row.channel, row.to_address) for row in rows} == {("sms", CHI_ONCALL), ("email", CHI_EMAIL)}
        assert {row.location_id for row in rows} == {places["chicago"]}
        [sms] = oncall_texts(fake_twilio)
        assert sms["to"] == CHI_ONCALL and sms["body"].startswith("Bright Minds Chicago: URGENT")
        assert "phone ending 43" in sms["body"] and "Maya" not in sms["body"]
        assert sms["from_"] == CHI_SENDER
        assert mailed_to(smtp_server) == [CHI_EMAIL]
        [mail] = smtp_server.messages
        assert mail.message["Subject"].startswith("Bright Minds Chicago: URGENT")
        assert "Location: Bright Minds Chicago" in mail.message.get_body(("plain",)).get_content()

    def test_every_re_alert_round_goes_to_the_same_on_call(self, twilio, chicago_patient, places, session, two_way,
                                                          fake_twilio, smtp_server):
        answer(twilio.sms("i want to die", To=CHI_SENDER))
        run_pass(two_way, NOW + timedelta(minutes=15))
        texts = oncall_texts(fake_twilio)
        assert [m["to"] for m in texts] == [CHI_ONCALL, CHI_ONCALL]
        assert [m["from_"] for m in texts] == [CHI_SENDER, CHI_SENDER]
        assert "(alert 2, not yet claimed)" in texts[1]["body"]
        assert mailed_to(smtp_server) == [CHI_EMAIL, CHI_EMAIL]
        assert escalations(session)[0].alert_round == 2
        assert {row.location_id for row in alert_rows(session)} == {places["chicago"]}

    def test_a_text_to_the_clinics_own_number_is_for_the_patients_location(
            self, twilio, chicago_patient, places, session, fake_twilio, smtp_server):
        answer(twilio.sms("i want to die", To=CLINIC_NUMBER))
        assert escalations(session)[0].location_id == places["chicago"]
        assert [m["to"] for m in oncall_texts(fake_twilio)] == [CHI_ONCALL]
        assert mailed_to(smtp_server) == [CHI_EMAIL]

    def test_a_crisis_from_an_unknown_number_to_los_angeles_alerts_los_angeles(
            self, twilio, places, session, fake_twilio, smtp_server):
        reply = answer(twilio.sms("i want to end my life", from_=STRANGER, To=LA_SENDER))
        assert "988" in reply
        [escalation] = escalations(session)
        assert escalation.patient_id is None and escalation.location_id == places["la"]
        [sms] = oncall_texts(fake_twilio)
        assert sms["to"] == LA_ONCALL and "an unknown number" in sms["body"]
        assert sms["from_"] == LA_SENDER
        assert mailed_to(smtp_server) == [LA_EMAIL]

    def test_an_unknown_number_is_answered_in_the_words_of_the_location_it_wrote_to(self, twilio, places):
        reply = answer(twilio.sms("hi who is this", from_=STRANGER, To=LA_SENDER))
        assert "Bright Minds Los Angeles" in reply and "(310) 555-0100" in reply

    def test_a_self_harm_answer_by_text_alerts_the_patients_location(self, twilio, places, session, configure,
                                                                     fake_twilio, smtp_server):
        measured = configure(MEASURES_ENABLED="true", MEASURES_BY_SMS="true")
        at_location(session, places["chicago"], starts_at="2026-12-10T10:00:00-06:00", patient="chi",
                    zone="America/Chicago")
        run_pass(measured, at("2026-12-08T10:00:00-06:00"))  # the PHQ-9's first question, 48 hours ahead
        fake_twilio.reset()
        for body in ("0", "0"):
            answer(twilio.sms(body, To=CHI_SENDER))
        assert "988" in answer(twilio.sms("1", To=CHI_SENDER))  # item 9: thoughts of self-harm
        [escalation] = escalations(session)
        assert escalation.reason == "self_harm_answer" and escalation.location_id == places["chicago"]
        assert [m["to"] for m in oncall_texts(fake_twilio)] == [CHI_ONCALL]
        assert mailed_to(smtp_server) == [CHI_EMAIL]

    def test_a_location_without_its_own_on_call_alerts_the_clinics(self, twilio, session, places, fake_twilio,
                                                                    smtp_server):
        boston = save_location(session, {"code": "boston", "name": "Bright Minds Boston", "sender": "+16175550100"})
        session.commit()
        answer(twilio.sms("i want to die", from_=STRANGER, To="+16175550100"))
        assert escalations(session)[0].location_id == boston.id
        assert sorted(m["to"] for m in oncall_texts(fake_twilio)) == sorted(STAFF_PHONES)
        assert mailed_to(smtp_server) == sorted(STAFF_EMAILS)


class TestTheLocationsWords:
    def test_a_friday_evening_question_is_answered_with_chicagos_office_hours(self, twilio, chicago_patient, places,
                                                                               session, clock):
        at_location(session, places["ny"], starts_at="2026-12-15T10:00:00-05:00", patient="ny", appointment="a-ny",
                    phone=NY_PHONE, first_name="Nora")
        clock.now = FRIDAY_EVENING_CHICAGO
        text = "I've been dizzy since the infusion, is that normal?"
        chicago = answer(twilio.sms(text, To=CHI_SENDER))
        assert "Maya" in chicago and "when it opens Monday at 7:30 AM" in chicago
        # The same text at the same moment to New York, open until 8 PM there: read today.
        new_york = answer(twilio.sms(text, from_=NY_PHONE, To=NY_SENDER))
        assert "Nora" in new_york and "A nurse will read this today" in new_york
        assert escalations(session) == []

    def test_chicagos_hours_are_read_in_chicagos_time(self, twilio, chicago_patient, places, clock):
        clock.now = at("2026-12-11T17:30:00-06:00")  # 18:30 in New York, past Chicago's closing there
        reply = answer(twilio.sms("I've been dizzy since the infusion, is that normal?", To=CHI_SENDER))
        assert "A nurse will read this today" in reply

    def test_a_holiday_at_the_location_is_closed(self, twilio, chicago_patient, places, session, clock):
        save_location(session, {"holidays": "2026-12-14"}, code="chicago")
        session.commit()
        clock.now = FRIDAY_EVENING_CHICAGO
        reply = answer(twilio.sms("I've been dizzy since the infusion, is that normal?", To=CHI_SENDER))
        assert "when it opens Tuesday at 7:30 AM" in reply

    def test_help_and_stop_name_the_location_and_its_phone(self, twilio, chicago_patient, places, session):
        help_reply = answer(twilio.sms("HELP", To=CHI_SENDER))
        assert help_reply.startswith("Bright Minds Chicago:") and "(312) 555-0100" in help_reply
        stop_reply = answer(twilio.sms("STOP", To=CHI_SENDER))
        assert stop_reply.startswith("Bright Minds Chicago:")
        session.expire_all()
        assert chicago_patient.patient.sms_opted_out


class TestNoLocations:
    def test_a_crisis_alerts_the_clinics_on_call_as_before(self, twilio, booked, session, fake_twilio, smtp_server,
                                                          two_way):
        answer(twilio.sms("i want to die"))
        [escalation] = escalations(session)
        assert escalation.location_id is None
        assert {row.location_id for row in alert_rows(session)} == {None}
        texts = oncall_texts(fake_twilio)
        assert sorted(m["to"] for m in texts) == sorted(STAFF_PHONES)
        assert all(m["body"].startswith(f"URGENT: possible suicide risk text to {two_way.clinic_name} from a patient")
                   for m in texts)
        assert mailed_to(smtp_server) == sorted(STAFF_EMAILS)

    def test_a_text_to_another_number_is_still_the_clinics(self, twilio, booked, two_way):
        reply = answer(twilio.sms("HELP", To="+13125550100"))
        assert reply.startswith(f"{two_way.clinic_name}:")

