"""What a patient in crisis reads back, through the signed webhook: a suicidal crisis leads with
the crisis line, a medical emergency with 911, a Spanish text is answered in Spanish with 988's
Spanish option, and the clinic's name reads right ("the Infusion Clinic team", never "the The")."""
from __future__ import annotations

import pytest

from tests.fixtures.twoway import STAFF_PHONES, answer, escalations

EMERGENCIES = [
    "chest pain since the infusion and my left arm is numb",
    "i cant breathe right",
    "my bp is 185/115 and my head is pounding",
    "i passed out in the bathroom",
    "my husband says i had a seizure",
]


def staff_texts(fake_twilio) -> list[str]:
    return [m["body"] for m in fake_twilio.messages if m["to"] in STAFF_PHONES]


@pytest.mark.parametrize("text", EMERGENCIES)
def test_a_medical_emergency_is_answered_with_911_first_and_alerted_as_one(twilio, booked, session, text,
                                                                           fake_twilio, smtp_server):
    reply = answer(twilio.sms(text))
    assert reply.startswith("This may be a medical emergency: please call 911 now.")
    assert "988" in reply  # the crisis line is still there
    [escalation] = escalations(session)
    assert escalation.reason == "medical_emergency"
    texts = staff_texts(fake_twilio)
    assert len(texts) == len(STAFF_PHONES) and all("possible medical emergency" in t for t in texts)
    assert all("medical emergency" in m.message["Subject"] for m in smtp_server.messages)


def test_a_suicidal_crisis_is_answered_with_the_crisis_line_before_911(twilio, booked, session):
    reply = answer(twilio.sms("i want to end my life"))
    assert reply.index("988") < reply.index("911")
    assert escalations(session)[0].reason == "crisis_language"


def test_suicidal_words_with_a_medical_emergency_lead_with_the_emergency_number_and_keep_the_crisis_line(
        twilio, booked, session):
    reply = answer(twilio.sms("chest pain and honestly i want to die"))
    assert reply.index("911") < reply.index("988")
    assert escalations(session)[0].reason == "medical_emergency"


def test_a_spanish_crisis_text_is_answered_in_spanish_with_988s_spanish_option(twilio, booked, session):
    reply = answer(twilio.sms("ya no puedo mas, quiero suicidarme"))
    # *Usted*, with every accent (the text goes as UCS-2), see README "Preparation and language".
    assert "Llame o mande un texto al 988 ahora" in reply and "marque 2 para español" in reply and "911" in reply
    assert "AYUDA" in reply and "no se revisa las 24 horas" in reply
    assert escalations(session)[0].status == "open"


def test_an_english_crisis_text_is_not_answered_in_spanish(twilio, booked):
    reply = answer(twilio.sms("i want to kill myself"))
    assert "Llama" not in reply and "Please call or text 988" in reply


def test_a_clinic_named_the_something_reads_right_in_every_answer(twilio, booked, two_way):
    assert two_way.clinic_name == "The Infusion Clinic"
    crisis = answer(twilio.sms("i want to end my life"))
    question = answer(twilio.sms("can my husband drive me home?", from_="+12025550177"))
    for reply in (crisis,):
        assert "the Infusion Clinic team" in reply
    for reply in (crisis, question):
        assert "the The" not in reply
