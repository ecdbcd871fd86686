"""Issue 9's replies through the signed webhook: what the patient reads back, what staff see.

Each test is a moment in a real conversation: the morning after an infusion (a check-in went at
10:00), the day after a reminder, a Spanish-speaking patient, a pain course. Times are New York;
NOW is Tuesday 15:00, inside office hours (08:00-17:00, Monday to Friday by default).

To read every answer the realistic replies get, as a patient would:
SHOW_REPLIES=1 python -m pytest -s -q tests/test_conversations.py -k realistic
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from reminders.models import Appointment, CheckIn, Course, InboundMessage, Patient
from reminders.pipeline import run_pass
from reminders.rendering import TemplateStore, localized, render, sample_context
from reminders.text_segments import sms_length
from tests.conftest import at
from tests.fixtures.staff import login, make_user
from tests.fixtures.twoway import NOW, answer, escalations, inbound
from tests.helpers import book, outbox

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
INFUSION = "2026-12-07T10:00:00-05:00"  # yesterday's infusion, the one the check-in follows
PROMPT_AT = at("2026-12-08T10:00:00-05:00")  # the check-in went this morning
NEXT_VISIT = "2026-12-10T10:00:00-05:00"  # Thursday


def checkin(session) -> CheckIn:
    session.expire_all()
    return session.scalars(select(CheckIn).order_by(CheckIn.id.desc())).first()


def last(session) -> InboundMessage:
    return inbound(session)[-1]


def visit(session, external_id: str = "a2") -> Appointment:
    session.expire_all()
    return session.scalar(select(Appointment).where(Appointment.external_id == external_id))


def person(session) -> Patient:
    session.expire_all()
    return session.scalar(select(Patient).where(Patient.external_id == "p1"))


def welcomed(session) -> None:
    """The welcome text went long ago (it is its own message; these tests read what follows)."""
    patient = person(session)
    patient.welcomed_at = at("2026-11-01T12:00:00+00:00")
    session.commit()


def speaks(session, language: str) -> None:
    patient = person(session)
    patient.language = language
    session.commit()


@pytest.fixture
def checked_in(session, two_way, fake_twilio):
    """Maya had an infusion yesterday and was asked this morning how she is; Thursday is booked."""
    book(session, starts_at=INFUSION, status="completed", email="maya@example.org", appointment="a1")
    book(session, starts_at=NEXT_VISIT, appointment="a2")
    welcomed(session)
    run_pass(two_way, PROMPT_AT)
    prompt = [m for m in fake_twilio.messages if "0 (worst) to 10 (best)" in m["body"]]
    assert len(prompt) == 1 and checkin(session).status == "awaiting"
    fake_twilio.messages.clear()
    return checkin(session)


@pytest.fixture
def reminded(session, two_way, fake_twilio):
    """Maya's first infusion is Thursday; the 72-hour reminder went on Monday (no check-in open)."""
    booked = book(session, starts_at=NEXT_VISIT, email="maya@example.org", appointment="a2")
    welcomed(session)
    run_pass(two_way, at("2026-12-07T10:00:00-05:00"))
    assert [row.status for row in outbox(session, rule="first_induction_72h", channel="sms")] == ["sent"]
    fake_twilio.messages.clear()
    return booked


def assert_short(reply: str) -> None:
    """Every automatic answer but a crisis answer fits in two SMS segments (or the UCS-2 ones that
    hold as much, when its accents make it UCS-2)."""
    assert sms_length(reply).fits(2), (sms_length(reply), reply)


def assert_routine_inbox(message: InboundMessage) -> None:
    assert message.needs_staff and message.priority == 0 and message.done_at is None


def assert_nurse_today(message: InboundMessage, *why: str) -> None:
    assert message.needs_staff and message.priority == 1, (message.priority, message.flag_reason)
    for words in why:
        assert words in message.flag_reason, message.flag_reason


# ---------------------------------------------------------------- scores with red flags

class TestScoresWithRedFlags:
    def test_a_score_with_a_home_blood_pressure_at_the_threshold_goes_to_a_nurse_today(
            self, twilio, checked_in, session):
        reply = answer(twilio.sms("7 but my BP was 160/100 at home"))
        assert "nurse will read this today" in reply and "911" in reply and "988" in reply
        assert "your answer is with your care team" not in reply
        assert_short(reply)
        message = last(session)
        assert_nurse_today(message, "blood pressure 160/100")
        assert (checkin(session).score, checkin(session).status) == (7, "answered")
        assert "blood pressure 160/100" in checkin(session).details
        assert escalations(session) == []  # not an emergency: 180/110 is

    def test_an_emergency_blood_pressure_still_escalates_with_911_first(self, twilio, checked_in, session):
        reply = answer(twilio.sms("6 but bp is 185/115 and pounding headache"))
        assert reply.startswith("This may be a medical emergency") and "911" in reply
        [escalation] = escalations(session)
        assert escalation.reason == "medical_emergency"
        assert last(session).priority == 2 and checkin(session).score == 6

    def test_nightmares_coming_back_page_on_call_and_the_score_is_kept(self, twilio, checked_in, session):
        reply = answer(twilio.sms("4 out of 10 and the nightmares are back"))
        assert "paged the on-call nurse" in reply and "911" in reply and "988" in reply
        [escalation] = escalations(session)
        assert escalation.reason == "urgent" and "trauma symptoms returning" in last(session).flag_reason
        assert checkin(session).score == 4 and "the nightmares are back" in checkin(session).note

    def test_a_good_score_with_side_effects_is_both_recorded_and_flagged(self, twilio, checked_in, session):
        reply = answer(twilio.sms("Pretty good, like a 7. Bit of a headache and nauseous in the car"))
        assert "nurse will read this today" in reply
        assert_nurse_today(last(session), "headache", "nausea")
        assert checkin(session).score == 7
        assert checkin(session).note == "Pretty good. Bit of a headache and nauseous in the car"

    def test_non_stop_vomiting_escalates_and_the_score_after_it_is_still_recorded(self, twilio, checked_in,
                                                                                  session, clock):
        first = answer(twilio.sms("still dizzy and can't stop throwing up"))
        assert "911" in first
        assert last(session).priority == 2 and "dizziness" in last(session).flag_reason
        assert checkin(session).status == "awaiting"  # the text is with staff; the score can still come
        clock.advance(minutes=3)
        answer(twilio.sms("5"))
        assert (checkin(session).score, checkin(session).status) == (5, "answered")
        assert "throwing up" in checkin(session).raw_text and "dizziness" in checkin(session).details
        assert last(session).needs_staff  # a text in an open escalation stays with it

    def test_a_question_in_an_answer_goes_to_a_nurse(self, twilio, checked_in, session):
        reply = answer(twilio.sms("6. is it normal to still feel tired?"))
        assert "nurse will read this today" in reply
        assert_nurse_today(last(session), "a question")

    def test_a_normal_home_blood_pressure_is_just_recorded(self, twilio, checked_in, session):
        reply = answer(twilio.sms("8, bp 128/82"))
        assert reply.startswith("Thank you") and "glad to hear it" in reply
        assert not last(session).needs_staff and checkin(session).score == 8

    def test_the_blood_pressure_threshold_is_a_clinic_setting(self, twilio, checked_in, session, two_way):
        two_way.bp_alert_systolic = 150
        answer(twilio.sms("8, bp 152/88"))
        assert_nurse_today(last(session), "blood pressure 152/88")

    def test_no_side_effects_is_good_news(self, twilio, checked_in, session):
        reply = answer(twilio.sms("8, no side effects, no nausea this time"))
        assert "glad to hear it" in reply and not last(session).needs_staff

    def test_details_after_the_score_are_added_to_the_check_in(self, twilio, checked_in, session, clock):
        assert "glad to hear it" in answer(twilio.sms("7"))
        clock.advance(minutes=10)
        reply = answer(twilio.sms("forgot to say, had a headache since this morning"))
        assert "nurse will read this today" in reply
        assert_nurse_today(last(session), "headache")
        done = checkin(session)
        assert done.score == 7 and "headache since this morning" in done.note and "headache" in done.details
        assert last(session).classification == "checkin_details"

    def test_details_without_symptoms_are_added_and_shown_to_staff(self, twilio, checked_in, session, clock):
        answer(twilio.sms("8"))
        clock.advance(minutes=5)
        reply = answer(twilio.sms("slept really well too"))
        assert reply.startswith("Thank you, Maya, we've added that")
        assert_routine_inbox(last(session))
        assert "slept really well too" in checkin(session).note


# ---------------------------------------------------------------- an open check-in does not swallow texts

WORDS_NOT_SCORES = [
    ("I need to cancel", "reschedule", "will call you"),
    ("Running late, be there in 15", "free_text", "passed your message"),
    ("can't make it tomorrow, sick kid", "reschedule", "will call you"),
    ("Wrong number", "free_text", "passed your message"),
    ("Feeling great! Best day in years", "free_text", "glad to hear it"),
]


class TestOpenCheckIn:
    @pytest.mark.parametrize("text, classification, says", WORDS_NOT_SCORES)
    def test_words_that_are_not_a_score_reach_staff_at_once_and_are_never_re_asked(
            self, twilio, checked_in, session, text, classification, says):
        reply = answer(twilio.sms(text))
        assert says in reply and "could not read" not in reply and "couldn't quite read" not in reply
        assert_short(reply)
        message = last(session)
        assert (message.classification, message.needs_staff) == (classification, True)
        assert checkin(session).status == "awaiting" and checkin(session).score is None

    def test_a_cancel_request_marks_the_visit_for_a_call(self, twilio, checked_in, session):
        answer(twilio.sms("I need to cancel"))
        assert visit(session).reschedule_requested_at == NOW
        assert not person(session).sms_opted_out  # not a bare keyword: no opt-out

    def test_side_effects_in_words_are_flagged_and_kept_with_the_check_in(self, twilio, checked_in, session):
        reply = answer(twilio.sms("felt really floaty and sick after"))
        assert "nurse will read this today" in reply
        assert_nurse_today(last(session), "dissociation", "nausea")
        assert checkin(session).status == "awaiting" and "floaty" in checkin(session).raw_text

    @pytest.mark.parametrize("text", ["sevn", "idk 5ish?"])
    def test_a_score_we_cannot_read_is_asked_again_once(self, twilio, checked_in, session, text):
        reply = answer(twilio.sms(text))
        assert "couldn't quite read a number" in reply and "0 (worst) to 10 (best)" in reply
        assert not last(session).needs_staff and checkin(session).status == "reasked"

    def test_six_or_seven_is_recorded_as_the_lower_score(self, twilio, checked_in, session):
        answer(twilio.sms("6 or 7"))
        assert (checkin(session).score, checkin(session).note) == (6, "6 or 7")

    def test_a_newer_reminder_closes_the_check_in(self, twilio, session, two_way, fake_twilio, clock):
        book(session, starts_at=INFUSION, status="completed", appointment="a1")
        book(session, starts_at="2026-12-09T14:00:00-05:00", appointment="a2")  # infusion 2, tomorrow 14:00
        run_pass(two_way, PROMPT_AT)
        run_pass(two_way, at("2026-12-08T14:00:00-05:00"))  # its 24-hour reminder, after the check-in
        # (the reminder and its second text, the after-visit cautions)
        assert {row.status for row in outbox(session, appointment_id=visit(session).id, kind="reminder")} == {"sent"}
        reply = answer(twilio.sms("8"))
        assert "couldn't quite read" not in reply and "glad to hear it" not in reply
        assert checkin(session).score is None and checkin(session).status == "awaiting"
        assert last(session).classification == "score" and last(session).needs_staff
        clock.advance(minutes=1)
        answer(twilio.sms("👍"))
        assert visit(session).status == "confirmed"  # the thumbs-up answers the reminder

    def test_a_check_in_stops_taking_a_number_after_the_clinic_setting(self, twilio, checked_in, session, clock,
                                                                       two_way):
        two_way.checkin_answer_hours = 4
        clock.now = PROMPT_AT + timedelta(hours=4, minutes=1)
        answer(twilio.sms("8"))
        assert checkin(session).score is None and last(session).needs_staff

    def test_a_re_ask_nobody_answers_still_goes_to_staff(self, twilio, checked_in, session, two_way):
        answer(twilio.sms("sevn"))
        run_pass(two_way, NOW + timedelta(hours=4))
        assert checkin(session).status == "to_staff" and inbound(session)[0].needs_staff


# ---------------------------------------------------------------- thanks, thumbs-up, confirmations

ACKS = ["ok", "Ok!", "thanks", "thank you", "ty", "👍", "😊", "🙏", "gracias", "vale", "Thanks so much!"]


class TestAcknowledgements:
    @pytest.mark.parametrize("text", ACKS)
    def test_thanks_and_smiles_get_no_answer_and_no_inbox_item(self, twilio, checked_in, session, text):
        assert answer(twilio.sms(text)) is None
        message = last(session)
        assert (message.classification, message.needs_staff, message.body) == ("ack", False, text)
        assert checkin(session).status == "awaiting"

    @pytest.mark.parametrize("text", ["ok", "thanks", "😊"])
    def test_after_a_reminder_thanks_do_not_confirm(self, twilio, reminded, session, text):
        assert answer(twilio.sms(text)) is None
        assert visit(session).status == "scheduled" and not last(session).needs_staff

    @pytest.mark.parametrize("text", ["👍", "👍🏽", "Yes I'll be there", "see you then", "I'll be there",
                                      "confirmed", "C"])
    def test_after_a_reminder_these_confirm_the_visit(self, twilio, reminded, session, text):
        reply = answer(twilio.sms(text))
        assert reply.startswith("Thank you, Maya! Your visit on Thursday, December 10 at 10:00 AM is confirmed")
        assert visit(session).status == "confirmed" and not last(session).needs_staff

    def test_a_bare_yes_after_a_reminder_confirms_for_a_subscribed_patient(self, twilio, reminded, session):
        assert "is confirmed" in answer(twilio.sms("YES"))
        assert visit(session).status == "confirmed"

    def test_a_bare_yes_from_an_opted_out_number_opts_back_in(self, twilio, reminded, session, clock):
        answer(twilio.sms("STOP"))
        clock.advance(minutes=1)
        assert "subscribed again" in answer(twilio.sms("YES"))
        assert not person(session).sms_opted_out and visit(session).status == "scheduled"

    def test_a_thumbs_up_to_our_answer_after_a_check_in_does_not_confirm(self, twilio, checked_in, session,
                                                                          clock, two_way):
        run_pass(two_way, at("2026-12-07T10:00:00-05:00"))  # Thursday's 72-hour reminder went on Monday
        answer(twilio.sms("8"))
        clock.advance(minutes=2)
        assert answer(twilio.sms("👍")) is None
        assert visit(session).status == "scheduled" and last(session).classification == "ack"

    def test_a_thumbs_up_with_no_reminder_is_only_thanks(self, twilio, session):
        book(session, starts_at=NEXT_VISIT, appointment="a2")
        assert answer(twilio.sms("👍")) is None
        assert visit(session).status == "scheduled" and last(session).classification == "ack"


# ---------------------------------------------------------------- CANCEL

class TestCancel:
    def test_cancel_opts_out_and_is_flagged_to_staff_with_how_to_cancel_a_visit(self, twilio, reminded, session):
        reply = answer(twilio.sms("CANCEL"))
        assert "no more texts" in reply and "call us on" in reply and "reply START and then R" in reply
        assert_short(reply)
        assert person(session).sms_opted_out and visit(session).status == "scheduled"
        message = last(session)
        assert message.needs_staff and "texted CANCEL: may have meant the visit" in message.flag_reason
        assert message.appointment_id == visit(session).id

    def test_a_plain_stop_is_not_shown_to_staff(self, twilio, reminded, session):
        answer(twilio.sms("STOP"))
        assert person(session).sms_opted_out and not last(session).needs_staff


# ---------------------------------------------------------------- Spanish

class TestSpanish:
    def test_siete_is_a_score_and_the_answer_is_in_spanish(self, twilio, checked_in, session):
        speaks(session, "es")
        reply = answer(twilio.sms("siete"))
        assert reply.startswith("¡Gracias, Maya") and checkin(session).score == 7
        assert_short(reply)

    def test_a_score_with_a_headache_in_spanish_goes_to_a_nurse(self, twilio, checked_in, session):
        speaks(session, "es")
        reply = answer(twilio.sms("un 6, con dolor de cabeza"))
        assert "Una enfermera va a leer esto hoy" in reply and "911" in reply and "988" in reply
        assert_nurse_today(last(session), "headache")
        assert (checkin(session).score, checkin(session).note) == (6, "dolor de cabeza")

    @pytest.mark.parametrize("text, score", [("como un 7", 7), ("7 de 10", 7), ("un 6", 6), ("ocho", 8)])
    def test_spanish_ways_of_giving_a_score(self, twilio, checked_in, session, text, score):
        speaks(session, "es")
        answer(twilio.sms(text))
        assert checkin(session).score == score

    @pytest.mark.parametrize("word", ["PARAR", "ALTO", "parar por favor"])
    def test_spanish_opt_out_words(self, twilio, reminded, session, word):
        speaks(session, "es")
        reply = answer(twilio.sms(word))
        assert reply.startswith("The Infusion Clinic: ya no le enviaremos mensajes") and "START" in reply
        assert person(session).sms_opted_out

    def test_cancelar_opts_out_and_is_flagged(self, twilio, reminded, session):
        speaks(session, "es")
        reply = answer(twilio.sms("CANCELAR"))
        assert "cancelar una cita" in reply and person(session).sms_opted_out
        assert "texted CANCELAR" in last(session).flag_reason

    @pytest.mark.parametrize("word", ["SÍ", "Sí", "si", "CONFIRMO", "ahí estaré"])
    def test_si_confirms_for_a_subscribed_patient(self, twilio, reminded, session, word):
        speaks(session, "es")
        reply = answer(twilio.sms(word))
        assert reply.startswith("¡Gracias, Maya! Su cita del ") and "a las 10:00 a. m. queda confirmada" in reply
        assert visit(session).status == "confirmed" and not person(session).sms_opted_out

    def test_cambiar_asks_for_a_new_time(self, twilio, reminded, session):
        speaks(session, "es")
        reply = answer(twilio.sms("CAMBIAR"))
        assert "le va a llamar para buscar otra hora" in reply
        assert visit(session).reschedule_requested_at == NOW and last(session).needs_staff

    def test_ayuda_gets_help_in_spanish(self, twilio, reminded, session):
        speaks(session, "es")
        reply = answer(twilio.sms("AYUDA"))
        assert "Preguntas o cambios: llame al" in reply and "PARAR" in reply and "988" in reply
        assert not last(session).needs_staff

    @pytest.mark.parametrize("asks, question", [("mood", "¿qué tal se siente hoy?"),
                                                 ("hurt", "¿qué tanto le duele hoy?")])
    def test_the_check_in_reads_in_spanish(self, session, two_way, asks, question):
        store = TemplateStore(two_way.templates_dir, session)
        name = localized(store, "checkin_day_after.sms.j2", "es")
        assert name == "es/checkin_day_after.sms.j2"
        context = sample_context(two_way)
        context["visit"]["checkin_asks"] = asks
        prompt = render(store, name, context)
        assert question in prompt and "Mareo" in prompt and "988" in prompt and sms_length(prompt).fits(2)

    def test_a_spanish_crisis_from_an_english_patient_is_answered_in_spanish(self, twilio, checked_in, session):
        reply = answer(twilio.sms("ya no quiero vivir"))
        assert "marque 2 para español" in reply and "911" in reply


# ---------------------------------------------------------------- pain courses

class TestPainCourse:
    @pytest.fixture
    def pain_checkin(self, session, two_way, fake_twilio):
        first = book(session, starts_at=INFUSION, status="completed", appointment="a1")
        session.get(Course, first.course_id).condition = "pain"
        session.commit()
        welcomed(session)
        run_pass(two_way, PROMPT_AT)
        [prompt] = [m["body"] for m in fake_twilio.messages if "hurt" in m["body"]]
        assert "0 (not at all) to 10 (worst)" in prompt and "mood" not in prompt
        assert sms_length(prompt).segments <= 2
        return checkin(session)

    def test_the_check_in_records_a_pain_score(self, pain_checkin, session):
        assert pain_checkin.kind == "pain"

    def test_a_low_pain_score_is_good_news_not_a_crisis(self, twilio, pain_checkin, session):
        reply = answer(twilio.sms("1"))
        assert "glad to hear it" in reply and "988" not in reply
        assert escalations(session) == [] and not last(session).needs_staff
        assert (checkin(session).kind, checkin(session).score) == ("pain", 1)

    def test_a_high_pain_score_goes_to_a_nurse_but_is_not_a_crisis(self, twilio, pain_checkin, session):
        reply = answer(twilio.sms("9"))
        assert "nurse will read this today" in reply
        assert escalations(session) == []
        assert_nurse_today(last(session), "pain 9/10")

    def test_staff_see_a_pain_score_as_pain_not_on_the_mood_chart(self, twilio, pain_checkin, session, web,
                                                                   sessions):
        answer(twilio.sms("9, and dizzy"))
        make_user(sessions, "nurse@clinic.test")
        client = web.test_client()
        assert login(client, "nurse@clinic.test").status_code == 302
        page = client.get(f"/patients/{person(session).id}").text
        assert "pain 9/10" in page and "side effects: dizziness" in page and "mood 9/10" not in page

    def test_a_middling_pain_score_gets_kind_words(self, twilio, pain_checkin, session):
        reply = answer(twilio.sms("5"))
        assert reply.startswith("Thank you for letting us know, Maya: 5 for how much it hurts today. If it hurts more")


# ---------------------------------------------------------------- office hours

class TestWhatHappensNext:
    def test_after_hours_the_patient_is_told_when_the_office_opens(self, twilio, checked_in, session, clock):
        clock.now = at("2026-12-08T19:30:00-05:00")
        reply = answer(twilio.sms("6, bad headache"))
        assert "a nurse will read this when it opens tomorrow at 8 AM" in reply and "911" in reply
        assert_short(reply)

    def test_on_a_friday_evening_it_is_monday(self, twilio, session, clock, two_way):
        book(session, starts_at="2026-12-10T10:00:00-05:00", status="completed", appointment="a1")
        run_pass(two_way, at("2026-12-11T10:00:00-05:00"))  # Friday's check-in
        clock.now = at("2026-12-11T18:00:00-05:00")
        reply = answer(twilio.sms("5 and dizzy"))
        assert "when it opens Monday at 8 AM" in reply

    def test_office_hours_are_settings(self, twilio, checked_in, session, clock, two_way):
        from datetime import time
        two_way.office_hours_end = time(14, 0)
        reply = answer(twilio.sms("6, bad headache"))  # 15:00
        assert "when it opens tomorrow at 8 AM" in reply

    def test_spanish_after_hours(self, twilio, checked_in, session, clock):
        speaks(session, "es")
        clock.now = at("2026-12-08T19:30:00-05:00")
        reply = answer(twilio.sms("un 6, con mareo"))
        assert "cuando abra, mañana a las 8:00" in reply


# ---------------------------------------------------------------- what staff see

class TestStaffInbox:
    def test_red_flags_come_first_with_the_reason(self, twilio, checked_in, session, clock, web, sessions, api):
        answer(twilio.sms("Wrong number"))
        clock.advance(minutes=1)
        answer(twilio.sms("felt really floaty and sick after"))
        clock.advance(minutes=1)
        answer(twilio.sms("Running late, be there in 15"))
        waiting = api("/api/v1/replies?needs_staff=true")["replies"]
        assert [r["body"] for r in waiting] == ["felt really floaty and sick after", "Running late, be there in 15",
                                                "Wrong number"]
        assert waiting[0]["priority"] == 1 and "dissociation" in waiting[0]["flag_reason"]
        make_user(sessions, "nurse@clinic.test")
        client = web.test_client()
        assert login(client, "nurse@clinic.test").status_code == 302
        page = client.get("/inbox/").text
        assert page.index("felt really floaty") < page.index("Running late") < page.index("Wrong number")
        assert "Nurse today" in page and "side effects: nausea, dissociation" in page

    def test_the_check_in_api_shows_its_kind_and_details(self, twilio, checked_in, api):
        answer(twilio.sms("7 but my BP was 160/100 at home"))
        [item] = api("/api/v1/checkins?patient_external_id=p1")["checkins"]
        assert (item["kind"], item["score"], item["details"]) == ("mood", 7, "blood pressure 160/100")


# ---------------------------------------------------------------- many replies, read as a patient would

# (when, text, what the patient reads (a phrase, or None for no answer), staff inbox rank or None)
REAL_REPLIES = [
    ("checkin", "7", "glad to hear it", None),
    ("checkin", "8/10 feeling good today", "glad to hear it", None),
    ("checkin", "10!! best I've felt in years", "glad to hear it", None),
    ("checkin", "about a 5 today", "Thank you for letting us know", None),
    ("checkin", "3", "We're sorry today is so hard", None),
    ("checkin", "Seven", "glad to hear it", None),
    ("checkin", "6 - tired but ok", "Thank you for letting us know", None),
    ("checkin", "5/10 dizzy when I stand up", "nurse will read this today", 1),
    ("checkin", "8 but a little queasy this morning", "nurse will read this today", 1),
    ("checkin", "4. still feel kinda spacey", "nurse will read this today", 1),
    ("checkin", "6 blurry vision last night", "nurse will read this today", 1),
    ("checkin", "Pretty good, like a 7. Bit of a headache and nauseous in the car", "nurse will read this today", 1),
    ("checkin", "un 6, con dolor de cabeza", "nurse will read this today", 1),
    ("checkin", "7, head hurts a bit", "nurse will read this today", 1),
    ("checkin", "6 cant sleep at all", "nurse will read this today", 1),
    ("checkin", "9 but when can I drive again?", "nurse will read this today", 1),
    ("checkin", "bp 150/95 this am, mood 6", "Thank you for letting us know", None),
    ("checkin", "8, bp was 170/102", "nurse will read this today", 1),
    ("checkin", "i threw up twice after", "nurse will read this today", 1),
    ("checkin", "headache", "nurse will read this today", 1),
    ("checkin", "doing ok", "passed your message", 0),
    ("checkin", "meh", "passed your message", 0),
    ("checkin", "Feeling great! Best day in years", "glad to hear it", 0),
    ("checkin", "not great tbh", "passed your message", 0),
    ("checkin", "sevn", "couldn't quite read", None),
    ("checkin", "thx 👍", None, None),
    ("checkin", "ok thank you", None, None),
    ("checkin", "😊", None, None),
    ("checkin", "Can you send me the address for thursday?", "nurse will read this today and get back to you", 1),
    ("checkin", "i want to die", "988", 2),
    ("checkin", "chest pain and can't breathe", "911", 2),
    ("reminder", "👍", "is confirmed", None),
    ("reminder", "Yes I'll be there", "is confirmed", None),
    ("reminder", "see u then!", "is confirmed", None),
    ("reminder", "Confirmed, thanks", "is confirmed", None),
    ("reminder", "Thank you!", None, None),
    ("reminder", "ok", None, None),
    ("reminder", "need to reschedule, work came up", "will call you", 0),
    ("reminder", "Can I move my appointment to Friday?", "will call you", 0),
    ("reminder", "I won't be able to make it thursday", "will call you", 0),
    ("reminder", "Running 10 min late", "passed your message", 0),
    ("reminder", "Is it ok to take my lamotrigine that morning?", "paged the on-call nurse", 2),
    ("reminder", "can my husband wait in the lobby", "passed your message", 0),
    ("reminder", "Wrong number", "passed your message", 0),
    ("reminder", "been throwing up since last night, should I still come in?", "paged the on-call nurse", 2),
    ("reminder", "CANCEL", "reply START and then R", 0),
    ("reminder", "stop", "unsubscribed", None),
    ("reminder", "HELP", "Questions or changes", None),
    ("checkin_es", "siete", "nos alegra mucho", None),
    ("checkin_es", "un 5, cansada", "Gracias por contarnos", None),
    ("checkin_es", "8 de 10, con un poco de mareo", "Una enfermera va a leer esto hoy", 1),
    ("checkin_es", "me duele mucho la cabeza", "Una enfermera va a leer esto hoy", 1),
    ("checkin_es", "¿puedo manejar mañana?", "Una enfermera va a leer esto hoy y le va a responder", 1),
    ("checkin_es", "muy bien, gracias", "nos alegra mucho", 0),
    ("checkin_es", "gracias 🙏", None, None),
    ("checkin_es", "ya no quiero vivir", "marque 2 para español", 2),
    ("reminder_es", "Sí, ahí estaré", "queda confirmada", None),
    ("reminder_es", "👍", "queda confirmada", None),
    ("reminder_es", "no puedo ir el jueves", "le va a llamar para buscar otra hora", 0),
    ("reminder_es", "voy a llegar 10 minutos tarde", "Pasamos su mensaje", 0),
    ("reminder_es", "CANCELAR", "responda START y luego R", 0),
    ("reminder_es", "AYUDA", "PARAR", None),
]


@pytest.mark.parametrize("when, text, reads, rank", REAL_REPLIES)
def test_realistic_replies_get_a_sensible_answer_and_reach_the_right_place(request, twilio, session, when, text,
                                                                          reads, rank):
    request.getfixturevalue("checked_in" if when.startswith("checkin") else "reminded")
    if when.endswith("_es"):
        speaks(session, "es")
    reply = answer(twilio.sms(text))
    import os
    if os.environ.get("SHOW_REPLIES"):
        m = last(session)
        print(f"\n[{when}] {text!r}\n  -> {reply!r}\n  staff: {m.classification} needs={m.needs_staff} "
              f"p={m.priority} why={m.flag_reason!r}")
    if reads is None:
        assert reply is None, reply
    else:
        assert reply is not None and reads in reply, reply
        if rank != 2:
            assert_short(reply)
        for robot in ("your answer is with your care team", "could not read a number in that"):
            assert robot not in reply
    message = last(session)
    if rank is None:
        assert not message.needs_staff, (message.classification, message.flag_reason)
    else:
        assert message.needs_staff and message.priority == rank, (message.priority, message.flag_reason)


# ---------------------------------------------------------------- every answer fits

REPLY_TEMPLATES = sorted(
    str(path.relative_to(TEMPLATES))
    for path in [*TEMPLATES.glob("reply_*.sms.j2"), *TEMPLATES.glob("es/reply_*.sms.j2")]
    if "crisis" not in path.name and "emergency" not in path.name
)


@pytest.mark.parametrize("name", REPLY_TEMPLATES)
def test_every_answer_fits_in_two_segments_for_long_names_and_any_hour(name, two_way):
    store = TemplateStore(two_way.templates_dir, None)
    base = sample_context(two_way)
    when = "el miércoles a las 8:00" if name.startswith("es/") else "Wednesday at 8 AM"
    for first in ("Al", "Maria Fernanda Alejandra"):
        for open_now in (True, False):
            for symptoms in (True, False):
                for asks, period in (("mood", "day"), ("hurt", "day"), ("mood", "week"), ("hurt", "week")):
                    context = {**base, "patient": {"first_name": first, "last_name": "de los Santos"},
                               "answer": {"read_when": "today" if open_now else when, "in_office_hours": open_now,
                                          "score": 5, "asks": asks, "period": period, "symptoms": symptoms,
                                          "poison_control": True, "callback_minutes": 30}}
                    assert_short(render(store, name, context))


def test_spanish_templates_exist_for_every_reply():
    english = {path.name for path in TEMPLATES.glob("reply_*.sms.j2")} | {"checkin_day_after.sms.j2"}
    assert english <= {path.name for path in (TEMPLATES / "es").glob("*.sms.j2")}


@pytest.mark.parametrize("text, language, says", [
    ("who is this?", "en", "visit reminders and check-ins"),
    ("sorry, who's texting me", "en", "Reply STOP to opt out"),
    ("¿quién es?", "es", "recordatorios de citas"),
])
def test_who_is_this_is_told_who_we_are(twilio, session, reminded, text, language, says):
    """Outside an escalation, "who is this?" gets the HELP text (the clinic, its number, how to stop),
    not "we've passed your message on"."""
    speaks(session, language)
    reply = answer(twilio.sms(text))
    assert says in reply and "988" in reply
    assert not last(session).needs_staff
