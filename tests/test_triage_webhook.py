"""Triage through the signed webhook: every example of the clinical-triage issue gets the tier and
the answer a nurse line would give, pages the right people at once (at any hour), and follow-ups
to an open escalation keep its kind. Two clinics' hours: New York on Tuesday afternoon (NOW) and
a night at 02:30."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from reminders.escalations import acknowledge
from reminders.models import InboundMessage, OutboxMessage, Patient
from reminders.pipeline import run_pass
from tests.conftest import at
from tests.fixtures.twoway import NOW, STAFF_EMAILS, STAFF_PHONES, STRANGER, answer, escalations, inbound
from tests.helpers import book

NIGHT = at("2026-12-09T02:30:00-05:00")  # Wednesday 02:30 in New York; the infusion is Wednesday 9:00
MORNING_VISIT = "2026-12-09T09:00:00-05:00"
POISON_CONTROL = "1-800-222-1222"


def staff_texts(fake_twilio) -> list[str]:
    return [m["body"] for m in fake_twilio.messages if m["to"] in STAFF_PHONES]


def staff_emails(smtp_server) -> list:
    return [m for m in smtp_server.messages if set(m.rcpt_tos) & set(STAFF_EMAILS)]


def last(session) -> InboundMessage:
    return inbound(session)[-1]


def is_911_first(reply: str) -> bool:
    return "911" in reply and "988" in reply and reply.index("911") < reply.index("988")


def is_988_first(reply: str) -> bool:
    return "988" in reply and "911" in reply and reply.index("988") < reply.index("911")


# ---------------------------------------------------------------- dangerous before: now paged

SUICIDE_RISK = [
    "Thank you for everything... I won't be needing any more appointments after this.",
    "it's ok. I've made my peace.",
    "I'm giving my guitar and my books to my nephew... he'll take better care of them",
    "if this doesn't work I don't know what I'll do",
    "🔫",
    "about to swallow all my sleeping pills",
    "kіll myself",  # a Cyrillic і
]
EMERGENCY = [
    "took a couple extra of my sleeping pills... feel really out of it",
    "Vicodin and xanax mixed",
    "I took 3 of my clonazepam and had 4 beers",
    "my lips are swelling and my throat feels tight",
    "me desmaye... me pegue en la cabeza",
    "tome demasiadas pastillas",
]


@pytest.mark.parametrize("text", SUICIDE_RISK)
def test_suicide_risk_is_answered_988_first_and_pages_on_call_by_text_and_email(
        twilio, booked, session, fake_twilio, smtp_server, text):
    reply = answer(twilio.sms(text))
    assert is_988_first(reply) and "passed on" not in reply, reply
    [escalation] = escalations(session)
    assert escalation.reason == "crisis_language" and escalation.status == "open"
    assert len(staff_texts(fake_twilio)) == len(STAFF_PHONES) and len(staff_emails(smtp_server)) == len(STAFF_EMAILS)
    assert last(session).classification == "crisis" and last(session).priority == 2


@pytest.mark.parametrize("text", EMERGENCY)
def test_an_overdose_or_a_medical_emergency_is_answered_911_first_and_pages_on_call(
        twilio, booked, session, fake_twilio, text):
    reply = answer(twilio.sms(text))
    assert reply.startswith("This may be a medical emergency") or reply.startswith("Esto puede ser una emergencia")
    assert is_911_first(reply), reply
    [escalation] = escalations(session)
    assert escalation.reason == "medical_emergency"
    assert len(staff_texts(fake_twilio)) == len(STAFF_PHONES)
    assert all("possible medical emergency" in t for t in staff_texts(fake_twilio))


@pytest.mark.parametrize("text", ["took a couple extra of my sleeping pills... feel really out of it",
                                  "tome demasiadas pastillas", "I took 3 of my clonazepam and had 4 beers"])
def test_an_overdose_is_also_given_poison_control(twilio, booked, session, text):
    assert POISON_CONTROL in answer(twilio.sms(text))


def test_a_spanish_overdose_is_answered_in_spanish_911_first_with_poison_control(twilio, booked, session):
    reply = answer(twilio.sms("tome demasiadas pastillas"))
    assert reply.startswith("Esto puede ser una emergencia médica: llame al 911 ahora.")
    assert "Control de Envenenamientos" in reply and "988" in reply


def test_a_worried_relative_from_a_number_the_clinic_does_not_know_pages_on_call(
        twilio, booked, session, fake_twilio):
    reply = answer(twilio.sms("my wife Rosa had her infusion yesterday and she's not answering her phone",
                              from_=STRANGER))
    assert "paged the on-call nurse" in reply and "911" in reply
    [escalation] = escalations(session)
    assert (escalation.reason, escalation.patient_id, escalation.from_number) == ("urgent", None, STRANGER)
    assert len(staff_texts(fake_twilio)) == len(STAFF_PHONES)
    assert all("needs a nurse now" in t and "unknown number" in t for t in staff_texts(fake_twilio))


# ---------------------------------------------------------------- wrong before: urgent at 02:30

URGENT_AT_NIGHT = [
    "can I take my klonopin tonight?",
    "172/104 with a pounding headache",
    "still can't keep water down",
    "😢😢",
]


@pytest.fixture
def tonight(session, twilio, clock):
    """Maya's infusion is this morning at 9:00; it is 02:30 and the office is closed."""
    visit = book(session, starts_at=MORNING_VISIT, email="maya@example.org")
    clock.now = NIGHT
    return visit


@pytest.mark.parametrize("text", URGENT_AT_NIGHT)
def test_an_urgent_text_at_0230_pages_on_call_at_once_and_says_who_will_call_and_when(
        twilio, tonight, session, fake_twilio, text):
    reply = answer(twilio.sms(text))
    assert "paged the on-call nurse, who will call you within about 30 minutes" in reply, reply
    assert "911" in reply and "988" in reply and "tomorrow" not in reply and "today" not in reply
    [escalation] = escalations(session)
    assert escalation.reason == "urgent"
    assert len(staff_texts(fake_twilio)) == len(STAFF_PHONES)  # sent in the same request, at 02:30
    assert last(session).classification == "urgent" and last(session).needs_staff


def test_what_time_do_i_stop_eating_at_0300_is_answered_with_the_patients_own_clock_times(
        twilio, tonight, session, fake_twilio, clock):
    clock.now = NIGHT + timedelta(minutes=30)
    reply = answer(twilio.sms("what time do I stop eating?"))
    assert "9:00 AM" in reply and "3:00 AM" in reply and "7:00 AM" in reply, reply
    assert escalations(session) == [] and staff_texts(fake_twilio) == []
    assert last(session).classification == "answered" and not last(session).needs_staff


def test_can_i_drive_home_is_answered_with_the_ride_rule(twilio, booked, session):
    reply = answer(twilio.sms("can I drive myself home after the infusion?"))
    assert "can't drive until the next morning" in reply and "11:45 AM" in reply, reply


def test_3_kind_of_numb_after_a_check_in_is_a_score_not_911(twilio, session, fake_twilio, two_way, clock):
    book(session, starts_at="2026-12-07T10:00:00-05:00", status="completed", appointment="a1")
    run_pass(two_way, at("2026-12-08T10:00:00-05:00"))
    reply = answer(twilio.sms("3. kind of numb"))
    assert "911 now" not in reply and "medical emergency" not in reply
    assert escalations(session) == []


# ---------------------------------------------------------------- follow-ups keep their context

def test_a_follow_up_to_a_chest_pain_escalation_is_answered_911_first_and_pages_again_at_once(
        twilio, booked, session, fake_twilio, clock):
    first = answer(twilio.sms("my chest really hurts since the infusion"))
    assert first.startswith("This may be a medical emergency")
    assert len(staff_texts(fake_twilio)) == 2
    clock.advance(minutes=2)
    reply = answer(twilio.sms("now it's radiating down my left arm"))
    assert "call 911 now" in reply and "988" not in reply.split("911")[0], reply
    assert "alerted them again" in reply
    assert len(staff_texts(fake_twilio)) == 4  # re-alerted in the same request, not at the next round
    [escalation] = escalations(session)
    assert escalation.reason == "medical_emergency" and "radiating" in escalation.text


@pytest.mark.parametrize("text", ["gracias", "Who is this?", "thanks", "ok"])
def test_thanks_or_who_is_this_during_an_escalation_is_not_answered_with_the_script_again(
        twilio, booked, session, fake_twilio, clock, text):
    answer(twilio.sms("i want to end my life"))
    clock.advance(minutes=1)
    reply = answer(twilio.sms(text))
    assert "988" not in reply and "on-call nurse has your message" in reply or "enfermera de guardia" in reply
    assert len(staff_texts(fake_twilio)) == 2  # no page for thanks
    assert text in escalations(session)[0].text


def test_i_am_not_going_to_call_anyone_pages_again_and_is_answered_in_the_escalations_terms(
        twilio, booked, session, fake_twilio, clock):
    answer(twilio.sms("i want to end my life"))
    clock.advance(minutes=1)
    reply = answer(twilio.sms("I'm not going to call anyone"))
    assert reply.startswith("Thank you for telling us.") and "988" in reply and "alerted them again" in reply
    assert len(staff_texts(fake_twilio)) == 4


def test_a_new_overdose_during_a_suicide_escalation_makes_it_a_medical_emergency(
        twilio, booked, session, fake_twilio, clock):
    answer(twilio.sms("i want to end my life"))
    clock.advance(minutes=1)
    reply = answer(twilio.sms("i just took them all"))
    assert reply.startswith("This may be a medical emergency") and POISON_CONTROL in reply
    assert escalations(session)[0].reason == "medical_emergency"
    assert len(staff_texts(fake_twilio)) == 4


def test_a_question_during_an_escalation_is_its_own_inbox_item_that_outlives_the_claim(
        twilio, booked, session, clock):
    answer(twilio.sms("my chest really hurts since the infusion"))
    clock.advance(minutes=5)
    answer(twilio.sms("what time do I stop eating before thursday? can I have tea?"))
    question = last(session)
    assert question.classification == "question" and question.needs_staff and question.done_at is None
    acknowledge(session, escalations(session)[0].id, "nurse@clinic.test", "", clock.now)
    session.commit()
    session.expire_all()
    assert session.get(InboundMessage, question.id).done_at is None  # still for a person to answer
    assert session.get(InboundMessage, inbound(session)[0].id).done_at is not None


def test_check_ins_and_questionnaires_wait_while_a_crisis_escalation_is_open(
        twilio, session, fake_twilio, two_way, clock):
    book(session, starts_at="2026-12-07T10:00:00-05:00", status="completed", appointment="a1")
    clock.now = at("2026-12-08T09:30:00-05:00")
    answer(twilio.sms("i want to end my life"))
    fake_twilio.messages.clear()
    run_pass(two_way, at("2026-12-08T10:00:00-05:00"))  # the day-after check-in is due
    assert [m for m in fake_twilio.messages if m["to"] not in STAFF_PHONES] == []
    row = session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "checkin"))
    assert row.status == "planned" and "crisis escalation" in row.status_reason
    acknowledge(session, escalations(session)[0].id, "nurse@clinic.test", "spoke with her", clock.now)
    session.commit()
    run_pass(two_way, at("2026-12-08T11:00:00-05:00"))
    assert any("0 (worst) to 10 (best)" in m["body"] for m in fake_twilio.messages)


# ---------------------------------------------------------------- opting out in the patient's words

@pytest.mark.parametrize("text", ["no more texts please", "ya no me manden mensajes", "PARA", "stop texting me"])
def test_opting_out_in_the_patients_own_words(twilio, booked, session, text):
    reply = answer(twilio.sms(text))
    assert "START" in reply and "988" in reply
    session.expire_all()
    assert session.scalar(select(Patient)).sms_opted_out


def test_wait_i_still_want_the_reminders_after_stop_is_told_how_to_come_back(twilio, booked, session):
    answer(twilio.sms("STOP"))
    reply = answer(twilio.sms("wait no... I still want the reminders"))
    assert reply is not None and "START" in reply
    session.expire_all()
    assert session.scalar(select(Patient)).sms_opted_out  # until they send START


def test_an_emergency_answer_rebuilt_from_the_fallback_keeps_poison_control(request, two_way, tmp_path):
    """A clinic's emergency template that dropped 911 is replaced by the built-in answer, which
    still names Poison Control for an overdose."""
    import shutil

    templates = tmp_path / "templates"
    shutil.copytree(two_way.templates_dir, templates)
    (templates / "reply_emergency.sms.j2").write_text("Please call us.\n")
    two_way.templates_dir = templates
    twilio, session = request.getfixturevalue("twilio"), request.getfixturevalue("session")
    book(session, starts_at="2026-12-10T10:00:00-05:00")
    reply = answer(twilio.sms("took a couple extra of my sleeping pills... feel really out of it"))
    assert reply.startswith("This may be a medical emergency") and POISON_CONTROL in reply and "988" in reply
