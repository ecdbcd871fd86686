"""Issue 13's SMS fallback: a questionnaire answered one item at a time through the signed webhook.

Maya's first infusion is Thursday 10:00; 48 hours before, a pass sends the questionnaire's first
question by text. She answers from her phone (the webhook, signed as Twilio signs) on Tuesday
afternoon, inside office hours.

How the questionnaire goes by text here: the passes run with MEASURES_BY_SMS=true (questions by
text although PUBLIC_BASE_URL is set), and one test runs the pass and the webhook without
PUBLIC_BASE_URL (Twilio's signature then checked against the address the text came to) to show
it is the same.

To read the realistic replies and what they get back:
python -m pytest -s -q tests/test_questionnaire_sms.py -k realistic
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from reminders.models import Appointment, CheckIn, Patient, Questionnaire
from reminders.pipeline import run_pass
from reminders.text_segments import sms_length
from tests.conftest import at
from tests.conftest import both_databases
from tests.fixtures.twoway import PHONE, STAFF_PHONES, answer, escalations, inbound
from tests.helpers import book

QUESTION_GOES = at("2026-12-08T10:00:00-05:00")  # 48 hours before Thursday's infusion
settings = both_databases()
OPTIONS = "Reply 0 Not at all, 1 Several days, 2 More than half the days, 3 Nearly every day."


@pytest.fixture
def measured(configure, two_way):
    return configure(MEASURES_ENABLED="true", MEASURES_BY_SMS="true")


def questionnaires(session) -> list[Questionnaire]:
    session.expire_all()
    return list(session.scalars(select(Questionnaire).order_by(Questionnaire.id)))


def maya(session) -> Patient:
    session.expire_all()
    return session.scalar(select(Patient).where(Patient.phone == PHONE))


def texts_to(fake_twilio, number: str) -> list[str]:
    return [m["body"] for m in fake_twilio.messages if m["to"] == number]


def send_questionnaire(session, measured, fake_twilio, *, language: str = "en",
                       condition: str | None = None, when=QUESTION_GOES) -> str:
    patient = maya(session)
    patient.language = language
    appointment = session.scalar(select(Appointment))
    appointment.course.condition = condition
    session.commit()
    run_pass(measured, when)
    [first] = [body for body in texts_to(fake_twilio, PHONE) if "short questions" in body or "preguntas" in body]
    fake_twilio.messages.clear()
    return first


@pytest.fixture
def asked(session, booked, measured, fake_twilio) -> str:
    """The PHQ-9's first question went to Maya by text (her course has no condition: PHQ-9 only)."""
    return send_questionnaire(session, measured, fake_twilio)


def say(twilio, body: str) -> str | None:
    return answer(twilio.sms(body))


def last_inbound(session):
    return inbound(session)[-1]


def assert_fits(reply: str) -> None:
    length = sms_length(reply)
    assert length.fits(2), (reply, length)


# ---------------------------------------------------------------- whole questionnaires

def test_a_negative_phq2_asks_item_9_and_is_stored_screen_negative_not_as_a_total(asked, twilio, session):
    assert "Little interest or pleasure in doing things" in asked and OPTIONS[6:] in asked
    second = say(twilio, "0")
    # Each answer is confirmed as what it was taken for (issue 20: one numeric question at a time).
    assert second == f"0 for question 1, thank you. 2 of 9: Feeling down, depressed, or hopeless. {OPTIONS}"
    ninth = say(twilio, "1")
    assert ninth.startswith("1 for question 2, thank you. 9 of 9: Thoughts that you would be better off dead") and ninth.endswith(OPTIONS)
    done = say(twilio, "0")
    assert done.startswith("Thank you, Maya! That's all the questions") and "988" in done
    [q] = questionnaires(session)
    # Screen negative: no PHQ-9 total (the items not asked were not answered 0).
    assert (q.status, q.answered(), q.score, q.band, q.screened_out) == (
        "completed", {1: 0, 2: 1, 9: 0}, None, "screen_negative", True)
    assert q.asked_item is None and escalations(session) == []
    assert [(m.classification, m.needs_staff) for m in inbound(session)] == [("questionnaire_answer", False)] * 3
    for reply in (second, ninth, done):
        assert_fits(reply)


def test_a_positive_phq2_asks_all_nine_and_scores_the_band(asked, twilio, session):
    replies = [say(twilio, body) for body in
               ("2", "two.", "Several days", "1!", " 2 ", "more than half the days", "1", "0", "0")]
    for number, value, reply in zip(range(2, 10), (2, 2, 1, 1, 2, 2, 1, 0), replies):
        assert reply.startswith(f"{value} for question {number - 1}, thank you. {number} of 9: "), reply
        assert reply.endswith(OPTIONS), reply
        assert_fits(reply)
    assert replies[-1].startswith("Thank you, Maya! That's all the questions")
    [q] = questionnaires(session)
    assert q.answered() == {1: 2, 2: 2, 3: 1, 4: 1, 5: 2, 6: 2, 7: 1, 8: 0, 9: 0}
    assert (q.status, q.score, q.band, q.screened_out) == ("completed", 11, "moderate", False)


def test_item_9_above_0_answers_with_the_crisis_lines_and_alerts_staff(asked, twilio, session, fake_twilio,
                                                                      smtp_server):
    say(twilio, "0")
    say(twilio, "0")
    reply = say(twilio, "1")
    assert reply.startswith("Thank you for telling us")
    assert "call or text 988 now" in reply and "call 911" in reply and "not watched around the clock" in reply
    assert reply.index("988") < reply.index("911")
    [escalation] = escalations(session)
    [q] = questionnaires(session)
    assert (escalation.reason, escalation.questionnaire_id, escalation.status) == ("self_harm_answer", q.id, "open")
    assert "item 9" in escalation.text and "Several days" in escalation.text
    assert (q.status, q.safety_raised, q.escalation_id) == ("completed", True, escalation.id)
    message = last_inbound(session)
    assert (message.needs_staff, message.priority, escalation.inbound_message_id) == (True, 2, message.id)
    assert "self-harm answer" in message.flag_reason
    # Sent right after the commit, in the same request, like a crisis text's alerts.
    assert len(texts_to(fake_twilio, STAFF_PHONES[0])) == 1 and len(texts_to(fake_twilio, STAFF_PHONES[1])) == 1
    assert smtp_server.messages


def test_the_visits_next_questionnaire_follows_with_its_own_first_question(session, booked, measured, fake_twilio,
                                                                            twilio):
    send_questionnaire(session, measured, fake_twilio, condition="depression")
    say(twilio, "0")
    say(twilio, "0")
    more = say(twilio, "0")
    assert more.startswith("Thanks. 7 more: Over the last 2 weeks") and "Feeling nervous, anxious, or on edge" in more
    assert more.endswith(OPTIONS)
    assert_fits(more)
    assert say(twilio, "1").startswith("1 for question 1, thank you. 2 of 7: Not being able to stop or control worrying")
    phq9, gad7 = questionnaires(session)
    assert (phq9.status, gad7.status, gad7.answered(), gad7.asked_item) == ("completed", "started", {1: 1}, 2)


def test_a_pain_rating_takes_0_to_10_and_leads_on_to_the_phq9(session, booked, measured, fake_twilio, twilio):
    first = send_questionnaire(session, measured, fake_twilio, condition="pain")
    assert "Reply 0 No pain to 10 Worst pain imaginable." in first
    reask = say(twilio, "11")
    assert reask.startswith("Sorry, please reply with one number, 0 to 10: In the past 7 days")
    more = say(twilio, "7")
    assert more.startswith("Thanks. 9 more: Over the last 2 weeks") and more.endswith(OPTIONS)
    pain, phq9 = questionnaires(session)
    assert (pain.status, pain.score, phq9.asked_item) == ("completed", 7, 1)


def test_a_spanish_patient_is_asked_and_answered_in_spanish(session, booked, measured, fake_twilio, twilio):
    first = send_questionnaire(session, measured, fake_twilio, language="es")
    assert first.startswith("Hola Maya") and "Poco interés o placer en hacer cosas" in first
    second = say(twilio, "dos")
    # Accents stay (the text goes as UCS-2).
    assert second.startswith("Anotamos 2 en la pregunta 1, gracias. 2 de 9: ") and "Responda 0 Ningún día, 1 Varios días" in second
    assert say(twilio, "Varios DÍAS").startswith("Anotamos 1 en la pregunta 2, gracias. 3 de 9: ")
    reask = say(twilio, "no sé")
    assert reask.startswith("Perdone, responda con un solo número, del 0 al 3: ")
    assert say(twilio, "casi todos los dias").startswith("Anotamos 3 en la pregunta 3, gracias. 4 de 9: ")
    [q] = questionnaires(session)
    assert q.answered() == {1: 2, 2: 1, 3: 3}


# ---------------------------------------------------------------- reading one answer (pure)

@pytest.mark.parametrize("text, value, note", [
    ("2", 2, ""), ("2.", 2, ""), (" 2 ", 2, ""), ("2!", 2, ""), ("two", 2, ""), ("dos", 2, ""), ("cero", 0, ""),
    ("Several days", 1, ""), ("varios días", 1, ""), ("NEARLY EVERY DAY", 3, ""),
    ("Más de la mitad de los días", 2, ""),
    ("1 several days", 1, ""), ("I'd say 1", 1, ""), ("2, and can my husband drive me?", 2, "can my husband drive me?"),
    ("😊", None, ""), ("idk", None, ""), ("what?", None, ""), ("5", None, ""), ("12", None, ""), ("1 2 3", None, ""),
    ("1-2", None, ""), ("1.5", None, ""), ("idk maybe 1 or 2", None, ""), ("2 (several days)", None, ""),
])
def test_reading_an_answer_to_a_phq9_item(text, value, note):
    from reminders.inbound.item_answers import read_item_answer
    from reminders.inbound.parsing import read_reply
    from reminders.scales import get_scale

    found = read_item_answer(text, read_reply(text, expecting_score=True), get_scale("phq9").options_for(1))
    assert (found.value, found.note) == (value, note)


# ---------------------------------------------------------------- what is not an answer

def test_a_garbled_reply_is_asked_again_once_then_goes_to_staff(asked, twilio, session, clock):
    def say(twilio, body):  # a minute between texts
        clock.advance(minutes=1)
        return answer(twilio.sms(body))

    reask = say(twilio, "😊")
    assert reask == ("Sorry, please reply with one number, 0 to 3: Little "
                     "interest or pleasure in doing things. 0 Not at all, 1 Several days, 2 More than half the days, "
                     "3 Nearly every day.")
    assert last_inbound(session).needs_staff is False
    second = say(twilio, "idk")
    assert "passed your message" in second
    message = last_inbound(session)
    assert (message.classification, message.needs_staff) == ("questionnaire_unreadable", True)
    assert "questionnaire answer we could not read" in message.flag_reason
    assert say(twilio, "1").startswith("1 for question 1, thank you. 2 of 9: ")  # a number still answers it
    assert say(twilio, "1 2 3").startswith("Sorry, please reply with one number")  # a new item: asked again once more
    [q] = questionnaires(session)
    assert (q.answered(), q.asked_item) == ({1: 1}, 2)


@pytest.mark.parametrize("body", ["what?", "5", "1 2 3", "1-2", "1.5", "👍", "ok", "2 (several days)"])
def test_not_one_answer_is_asked_again(asked, twilio, session, body):
    assert say(twilio, body).startswith("Sorry, please reply with one number, 0 to 3: Little interest")
    [q] = questionnaires(session)
    assert (q.answered(), q.asked_item) == ({}, 1)


def test_a_question_with_the_number_records_it_and_goes_to_staff(asked, twilio, session):
    reply = say(twilio, "2, and can my husband drive me?")
    assert reply.startswith("2 for question 1, thank you. A nurse will read the rest today. 2 of 9: ")
    message = last_inbound(session)
    assert (message.classification, message.needs_staff, message.flag_reason) == (
        "questionnaire_answer", True, "a question")
    assert questionnaires(session)[0].answered() == {1: 2}


def test_crisis_words_are_a_crisis_first_and_the_questionnaire_waits(asked, twilio, session, fake_twilio):
    reply = say(twilio, "2 and honestly i want to die")
    assert reply.startswith("We're so sorry you're going through this") and "988" in reply
    assert escalations(session)[0].reason == "crisis_language"
    assert len(texts_to(fake_twilio, STAFF_PHONES[0])) == 1
    [q] = questionnaires(session)
    assert (q.answered(), q.asked_item, q.status) == ({}, 1, "sent")


def test_confirm_and_reschedule_still_work_while_a_questionnaire_is_open(asked, twilio, session, booked):
    assert "confirmed" in say(twilio, "C")
    session.expire_all()
    assert session.get(Appointment, booked.id).status == "confirmed"
    assert "find a new time" in say(twilio, "R")
    assert say(twilio, "1").startswith("1 for question 1, thank you. 2 of 9: ")
    assert questionnaires(session)[0].answered() == {1: 1}


def test_stop_mid_way_opts_out_and_leaves_the_questionnaire(asked, twilio, session):
    say(twilio, "1")
    assert "unsubscribed" in say(twilio, "STOP")
    assert maya(session).sms_opted_out
    assert say(twilio, "2") is None  # nothing goes to a number that opted out
    [q] = questionnaires(session)
    assert (q.answered(), q.asked_item, q.status) == ({1: 1}, 2, "started")
    say(twilio, "START")
    assert say(twilio, "2").startswith("2 for question 2, thank you. 3 of 9: ")  # back in: the same question still takes its number


def test_an_answer_after_the_questions_closed_is_not_saved_and_staff_read_it(asked, twilio, session, clock,
                                                                             fake_twilio):
    say(twilio, "1")
    clock.advance(days=7)  # the questionnaire expired; item 2 was the last thing we asked
    reply = say(twilio, "2")
    assert reply.startswith("Thank you, Maya. Those questions have closed, so this answer was not saved")
    assert "988" in reply and "of 9" not in reply
    assert_fits(reply)
    message = last_inbound(session)
    assert (message.classification, message.needs_staff, message.priority) == ("questionnaire_closed", True, 0)
    assert message.flag_reason.startswith("an answer after the questions closed: PHQ-9 item 2 (Feeling down")
    assert message.flag_reason.endswith(": 2 More than half the days")
    # Not a mood of 2 out of 10: no crisis answer, no escalation, nobody paged.
    assert escalations(session) == [] and texts_to(fake_twilio, STAFF_PHONES[0]) == []
    [q] = questionnaires(session)
    assert (q.answered(), q.status) == ({1: 1}, "started")


def test_a_late_answer_above_0_to_item_9_is_still_a_crisis(asked, twilio, session, clock, fake_twilio):
    say(twilio, "0")
    say(twilio, "0")  # a negative PHQ-2: item 9 is asked next
    clock.advance(days=8)
    reply = say(twilio, "1")
    assert "call or text 988 now" in reply and "call 911" in reply
    [escalation] = escalations(session)
    assert escalation.status == "open"
    message = last_inbound(session)
    assert (message.classification, message.priority) == ("crisis", 2)
    assert "a late answer to a self-harm question: PHQ-9 item 9" in message.flag_reason
    assert "1 Several days" in message.flag_reason
    assert len(texts_to(fake_twilio, STAFF_PHONES[0])) == 1
    assert questionnaires(session)[0].answered() == {1: 0, 2: 0}


def test_a_late_0_to_item_9_is_no_crisis(asked, twilio, session, clock):
    say(twilio, "0")
    say(twilio, "0")
    clock.advance(days=8)
    assert "have closed" in say(twilio, "cero")
    assert escalations(session) == [] and last_inbound(session).classification == "questionnaire_closed"


def test_long_after_the_questions_closed_a_bare_number_is_read_as_before(asked, twilio, session, clock):
    say(twilio, "1")
    clock.advance(days=7 + 8)  # past the week a late answer is still read as one
    reply = say(twilio, "2")
    # The usual handling of a number nobody asked for: a bare 2 reads as a very low mood score.
    assert (last_inbound(session).classification, last_inbound(session).needs_staff) == ("low_score", True)
    assert reply.startswith("We're so sorry you're going through this")


def test_a_check_in_waits_while_the_question_is_open(session, measured, configure, twilio):
    """An infusion on Monday (its check-in goes Tuesday 10:00) and a measured second infusion
    Thursday at 9:00 (the questionnaire goes Tuesday 9:00): never two numeric questions open at
    once (issue 20), so the check-in waits while the questionnaire's question is open, and a
    number is the questionnaire's (tests/test_open_question.py follows both through)."""
    measured = configure(MEASURES_INFUSIONS="2")
    book(session, starts_at="2026-12-07T10:00:00-05:00", status="completed", appointment="a1")
    book(session, starts_at="2026-12-10T09:00:00-05:00", appointment="a2")
    run_pass(measured, at("2026-12-08T09:00:00-05:00"))
    [q] = questionnaires(session)
    assert (q.channel, q.asked_item) == ("sms", 1)
    run_pass(measured, at("2026-12-08T10:00:00-05:00"))
    assert session.scalar(select(CheckIn)) is None
    reply = say(twilio, "2")
    assert reply.startswith("2 for question 1, thank you. 2 of 9: "), reply
    assert questionnaires(session)[0].answered() == {1: 2}


def test_without_a_public_address_the_pass_asks_by_text_and_answers_come_back(configure, two_way, session, booked,
                                                                              clock, fake_twilio):
    """Without PUBLIC_BASE_URL from end to end: the pass asks by text, and the replies come back
    through the webhook, signed for the address Twilio called."""
    from reminders.web import create_app
    from tests.fixtures.twoway import Twilio

    no_url = configure(MEASURES_ENABLED="true", PUBLIC_BASE_URL="")
    run_pass(no_url, QUESTION_GOES)
    [q] = questionnaires(session)
    assert (q.channel, q.asked_item) == ("sms", 1)
    [first] = [body for body in texts_to(fake_twilio, PHONE) if "short questions" in body]
    assert "/q/" not in first and OPTIONS in first
    twilio = Twilio(create_app(no_url, {"TESTING": True, "CLOCK": clock}).test_client(), no_url.twilio_auth_token,
                    base="http://localhost")
    assert say(twilio, "3").startswith("3 for question 1, thank you. 2 of 9: ")
    assert say(twilio, "several days").startswith("1 for question 2, thank you. 3 of 9: ")
    assert questionnaires(session)[0].answered() == {1: 3, 2: 1}


# ---------------------------------------------------------------- a realistic conversation

# Maya's replies in order, through her PHQ-9 and GAD-7 (a depression course), and what each does:
# "answer" records the value for the item asked (+staff: the text is in the staff inbox too), "again"
# asks the same item again, "staff" is a second unreadable reply (to staff), and the visit's own C
# and R, and a thanks after the end (no answer).
REALISTIC = [
    ("Hi! 😊", "again", None),
    ("2", "answer", 2),
    ("what does this even mean?", "again+staff", None),
    ("Two", "answer", 2),
    ("sevral days", "again", None),
    ("several days", "answer", 1),
    ("3!!", "answer", 3),
    ("1 2 3", "again", None),
    ("idk maybe 1 or 2", "staff", None),
    ("1", "answer", 1),
    ("C", "confirm", None),
    ("More than half the days", "answer", 2),
    ("2, and can my husband drive me home after?", "answer+staff", 2),
    ("👍", "again", None),
    ("0 not at all", "answer", 0),
    ("cero", "answer", 0),
    ("Nearly every day", "answer", 3),
    ("2 - been dizzy since the last infusion", "answer+staff", 2),
    ("5", "again", None),
    ("3", "answer", 3),
    ("Varios días", "answer", 1),
    ("1.5", "again", None),
    ("dos", "answer", 2),
    ("not at all lol", "answer", 0),
    ("R", "reschedule", None),
    ("uno", "answer", 1),
    ("thanks!", "thanks", None),
]


def asked_now(session) -> tuple[int, int] | None:
    waiting = [q for q in questionnaires(session) if q.asked_item is not None]
    return (waiting[0].id, waiting[0].asked_item) if waiting else None


def test_realistic_replies_get_the_right_answers(session, booked, measured, fake_twilio, twilio, clock):
    assert len(REALISTIC) >= 25
    send_questionnaire(session, measured, fake_twilio, condition="depression")
    shown = []
    for body, what, value in REALISTIC:
        before = asked_now(session)
        clock.advance(minutes=1)
        reply = say(twilio, body)
        message = last_inbound(session)
        shown.append((body, reply, message))
        recorded = {q.id: q.answered() for q in questionnaires(session)}
        if what.startswith("answer"):
            questionnaire_id, item = before
            assert recorded[questionnaire_id][item] == value, body
            assert message.needs_staff == what.endswith("+staff"), (body, message.flag_reason)
            assert not reply.startswith("Sorry"), (body, reply)
            continue
        assert asked_now(session) == before, body  # nothing recorded, the same item waits
        if what.startswith("again"):
            assert "lease reply with one number, 0 to 3: " in reply, (body, reply)
            assert message.needs_staff == what.endswith("+staff"), body
        elif what == "staff":
            assert "passed your message" in reply and message.needs_staff, body
        elif what == "confirm":
            assert "confirmed" in reply
        elif what == "reschedule":
            assert "find a new time" in reply and message.needs_staff
        else:
            assert reply is None and not message.needs_staff
    phq9, gad7 = questionnaires(session)
    assert (phq9.status, phq9.score, phq9.band) == ("completed", 13, "moderate")
    assert (gad7.status, gad7.score, gad7.band) == ("completed", 12, "moderate")
    staff = [(m.body, m.flag_reason) for m in inbound(session) if m.needs_staff]
    assert staff == [
        ("what does this even mean?", "a question"),
        ("idk maybe 1 or 2", "questionnaire answer we could not read"),
        ("2, and can my husband drive me home after?", "a question"),
        ("2 - been dizzy since the last infusion", "side effects: dizziness"),
        ("R", ""),
    ]
    print("\n\nMaya's replies to her questionnaires by text, and what came back (* = in the staff inbox):")
    for body, reply, message in shown:
        mark = "*" if message.needs_staff else " "
        print(f"{mark} {body!r:48} [{message.classification}]\n      -> {reply}")
