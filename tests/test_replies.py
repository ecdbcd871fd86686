"""Mood check-in answers through the webhook, the check-ins API, follow-ups, and the property
that no text escapes: whatever arrives is handled or lands in the staff inbox."""
from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from sqlalchemy import select

from reminders.followup import patients_needing_booking
from reminders.triage import Context, Tier, assess
from reminders.inbound.replies import HANDLED, InboundText, handle_inbound
from reminders.models import CheckIn, Escalation, InboundMessage
from reminders.pipeline import run_pass
from tests.conftest import at
from tests.helpers import book, outbox

from tests.fixtures.twoway import NOW, PHONE, STRANGER, answer, escalations, inbound

VISIT = "2026-12-07T10:00:00-05:00"  # the infusion the check-in follows
PROMPT_AT = at("2026-12-08T10:00:00-05:00")  # the day after, 10:00 local


def checkins(session) -> list[CheckIn]:
    session.expire_all()
    return list(session.scalars(select(CheckIn).order_by(CheckIn.id)))


@pytest.fixture
def prompted(session, two_way, fake_twilio):
    """Maya had her first infusion yesterday; the check-in went out this morning through Twilio."""
    visit = book(session, starts_at=VISIT, status="completed", email="maya@example.org")
    run_pass(two_way, PROMPT_AT)
    [prompt] = [m for m in fake_twilio.messages if "from 0 (worst) to 10 (best)" in m["body"]]
    assert prompt["to"] == PHONE
    [checkin] = checkins(session)
    # The batch clock moves on by the seconds a loaded machine spends sending.
    assert checkin.status == "awaiting" and PROMPT_AT <= checkin.prompted_at < PROMPT_AT + timedelta(minutes=1)
    return visit


ANSWERS = [
    ("7", 7, ""), ("7/10", 7, ""), (" 7 ", 7, ""), ("seven", 7, ""), ("Seven.", 7, ""), ("I'd say a 6", 6, ""),
    ("6, bit of a headache", 6, "bit of a headache"), ("8 out of 10", 8, ""), ("mood 5 today", 5, ""),
    ("about a 4. Felt dizzy for an hour after", 4, "Felt dizzy for an hour after"), ("10!", 10, ""),
    ("3", 3, ""), ("1", 1, ""), ("5/10 nauseous tonight", 5, "nauseous tonight"), ("Feeling ok, 6", 6, ""),
    ("6 - nauseous but ok", 6, "nauseous but ok"),
]


class TestCheckinAnswers:
    @pytest.mark.parametrize("text, score, note", ANSWERS)
    def test_scores_are_read_and_stored_with_the_session_they_follow(self, twilio, prompted, session, api, text,
                                                                     score, note, two_way):
        reply = answer(twilio.sms(text))
        [item] = api("/api/v1/checkins?patient_external_id=p1")["checkins"]
        assert (item["score"], item["note"], item["raw_text"], item["status"]) == (score, note, text, "answered")
        assert item["appointment_external_id"] == "a1" and at(item["appointment_starts_at"]) == at(VISIT)
        assert at(item["answered_at"]) == NOW and item["follows"]["kind"] == "induction"
        message = inbound(session)[0]
        assert item["inbound_message_id"] == message.id
        if score <= two_way.crisis_score_max:
            assert "988" in reply and "911" in reply and message.classification == "low_score"
        elif any(word in text for word in ("headache", "dizzy", "nauseous")):  # side effects: a nurse today
            assert "Maya" in reply and "nurse will read this today" in reply
            assert message.classification == "checkin_answer" and message.needs_staff and message.priority == 1
            assert message.flag_reason.startswith("side effects: ") and escalations(session) == []
        else:
            assert "Maya" in reply and message.classification == "checkin_answer"
            assert not message.needs_staff and escalations(session) == []

    def test_a_bare_3_is_a_score_while_a_check_in_is_open_and_reschedule_after(self, twilio, prompted, session,
                                                                               clock):
        answer(twilio.sms("3"))
        assert checkins(session)[0].score == 3
        book(session, starts_at="2026-12-20T10:00:00-05:00", appointment="a2")
        clock.advance(days=4)
        assert "will call you" in answer(twilio.sms("3"))
        assert inbound(session)[-1].classification == "reschedule"

    def test_a_check_in_older_than_checkin_answer_hours_is_not_answered_by_a_number(self, twilio, prompted,
                                                                                    session, clock, two_way):
        clock.now = PROMPT_AT + timedelta(hours=two_way.checkin_answer_hours, minutes=1)
        answer(twilio.sms("8"))
        assert checkins(session)[0].status == "awaiting"
        assert inbound(session)[0].needs_staff

    def test_an_unreadable_score_is_asked_again_once_then_goes_to_staff(self, twilio, prompted, session, api):
        reask = answer(twilio.sms("sevn"))
        assert "0 (worst) to 10 (best)" in reask and "Sorry" in reask
        [checkin] = checkins(session)
        assert checkin.status == "reasked" and checkin.reasked_at == NOW
        assert not inbound(session)[0].needs_staff
        second = answer(twilio.sms("idk"))
        assert "passed your message" in second
        [checkin] = checkins(session)
        assert checkin.status == "to_staff" and checkin.score is None
        assert checkin.raw_text == "sevn\nidk"
        waiting = api("/api/v1/replies?needs_staff=true")["replies"]
        assert sorted(r["body"] for r in waiting) == ["idk", "sevn"]

    def test_words_that_are_not_a_score_go_to_staff_at_once_and_the_check_in_still_takes_one(
            self, twilio, prompted, session):
        reply = answer(twilio.sms("meh"))
        assert "passed your message" in reply and "Sorry" not in reply
        assert inbound(session)[0].needs_staff and checkins(session)[0].status == "awaiting"
        answer(twilio.sms("5"))
        assert (checkins(session)[0].status, checkins(session)[0].score) == ("answered", 5)

    def test_a_score_after_the_re_ask_keeps_what_was_said_first(self, twilio, prompted, session):
        answer(twilio.sms("headache all evening"))
        answer(twilio.sms("6"))
        [checkin] = checkins(session)
        assert (checkin.status, checkin.score) == ("answered", 6)
        assert checkin.note == "headache all evening" and checkin.raw_text == "headache all evening\n6"

    def test_a_re_ask_nobody_answers_goes_to_staff_after_a_few_hours(self, twilio, prompted, session, two_way):
        answer(twilio.sms("idk 5ish?"))
        run_pass(two_way, NOW + timedelta(hours=3))
        assert checkins(session)[0].status == "reasked"
        run_pass(two_way, NOW + timedelta(hours=4))
        assert checkins(session)[0].status == "to_staff"
        assert inbound(session)[0].needs_staff

    def test_a_question_during_a_check_in_goes_straight_to_staff(self, twilio, prompted, session):
        reply = answer(twilio.sms("is nausea normal after the infusion?"))
        assert "nurse will read this today" in reply and "911" in reply and "988" in reply
        assert inbound(session)[0].needs_staff and checkins(session)[0].status == "awaiting"

    def test_crisis_words_in_a_check_in_answer_escalate_whatever_the_score(self, twilio, prompted, session):
        reply = answer(twilio.sms("7 but honestly i keep thinking i'd be better off dead"))
        assert "988" in reply and "911" in reply
        [escalation] = escalations(session)
        assert escalation.reason == "crisis_language"
        assert checkins(session)[0].score == 7

    def test_crisis_words_instead_of_a_score_escalate_and_do_not_re_ask(self, twilio, prompted, session):
        reply = answer(twilio.sms("i cant do this anymore, i want to die"))
        assert "988" in reply and "Sorry, we could not read" not in reply
        # Staff have it at once (escalation); the check-in keeps the text and still takes a score.
        [checkin] = checkins(session)
        assert checkin.status == "awaiting" and "i want to die" in checkin.raw_text and len(escalations(session)) == 1

    def test_check_ins_are_listed_by_patient_only(self, api, prompted):
        response = api.client.get("/api/v1/checkins", headers=api.headers)
        assert response.status_code == 422
        assert api.client.get("/api/v1/checkins?patient_external_id=nobody", headers=api.headers).status_code == 404
        assert api.client.get("/api/v1/checkins?patient_external_id=p1").status_code == 401


# ---------------------------------------------------------------- follow-ups

class TestFollowups:
    def test_induction_patients_without_a_next_infusion_and_maintenance_patients_past_due(self, session, two_way, api,
                                                                                          clock):
        book(session, starts_at="2026-12-01T10:00:00-05:00", patient="stopped", appointment="s1", status="completed")
        book(session, starts_at="2026-12-07T10:00:00-05:00", patient="onway", appointment="o1", status="completed",
             phone="+12025550160")
        book(session, starts_at="2026-12-09T09:00:00-05:00", patient="onway", appointment="o2", phone="+12025550160")
        book(session, starts_at="2026-12-01T10:00:00-05:00", patient="late", appointment="l1", status="completed",
             phone="+12025550161")
        book(session, starts_at="2026-12-20T10:00:00-05:00", patient="late", appointment="l2", phone="+12025550161")
        book(session, starts_at="2026-10-01T10:00:00-04:00", patient="boost", appointment="b1", kind="maintenance",
             status="completed", phone="+12025550162")
        book(session, starts_at="2026-11-20T10:00:00-05:00", patient="recent", appointment="r1", kind="maintenance",
             status="completed", phone="+12025550163")
        rows = api("/api/v1/followups")["followups"]
        by_patient = {row["patient_external_id"]: row for row in rows}
        assert set(by_patient) == {"stopped", "late", "boost"}
        assert by_patient["stopped"]["reason"] == "Infusion 2 of 6 is not booked" and by_patient["stopped"]["overdue"]
        assert "booked more than 2 days after" in by_patient["late"]["reason"]  # INDUCTION_REBOOK_HOURS 48
        assert by_patient["late"]["next_visit"]["external_id"] == "l2"
        assert by_patient["boost"]["kind"] == "maintenance" and "Maintenance due" in by_patient["boost"]["reason"]
        assert [row.patient.external_id for row in patients_needing_booking(session, two_way, NOW)] == \
            [row["patient_external_id"] for row in rows]

    def test_the_nudge_goes_once_and_shows_on_the_list(self, session, two_way, api, fake_twilio, clock):
        book(session, starts_at="2026-12-01T10:00:00-05:00", status="completed")
        run_pass(two_way, at("2026-12-03T10:00:00-05:00"))  # 48 hours after
        run_pass(two_way, at("2026-12-03T10:05:00-05:00"))
        nudges = [m for m in fake_twilio.messages if "not booked yet" in m["body"]]
        assert len(nudges) == 1
        [row] = api("/api/v1/followups")["followups"]
        assert row["nudge"]["status"] == "sent" and row["nudge"]["channel"] == "sms"

    def test_a_patient_booked_in_time_is_not_listed(self, session, two_way, api):
        book(session, starts_at="2026-12-07T10:00:00-05:00", status="completed")
        book(session, starts_at="2026-12-09T09:00:00-05:00", appointment="a2")
        assert api("/api/v1/followups")["followups"] == []
        run_pass(two_way, at("2026-12-09T10:00:00-05:00"))  # the nudge's time for a1 (48 hours)
        nudge = [row for row in outbox(session, rule="rebook_nudge") if row.appointment.external_id == "a1"]
        assert [(row.status, row.status_reason) for row in nudge] == [("skipped", "next visit already booked")]


# ---------------------------------------------------------------- nothing escapes

_sids = itertools.count(1)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.text(max_size=200) | st.sampled_from([
           "STOP", "yes", "help me", "C", "3", "i want to d1e", "k y s", "0", "2/10", "10", "R", "?", "", " ",
           "cancel", "😀", "I took all my pills", "7 but tired", "seven out of ten", "end", "stop i want to die",
       ]),
       sender=st.sampled_from([PHONE, STRANGER]), checkin_open=st.booleans())
def test_every_text_is_handled_or_in_the_staff_inbox_and_every_crisis_escalates(sessions, prompted, two_way, body,
                                                                                  sender, checkin_open):
    with sessions() as session:
        checkin = session.scalars(select(CheckIn)).first()
        checkin.status = "awaiting" if checkin_open else "answered"
        checkin.prompted_at = PROMPT_AT
        session.commit()
        sid = f"SMprop{next(_sids):028x}"
        handled = handle_inbound(session, two_way, InboundText(sid, sender, "+15005550006", body), NOW)
        session.commit()
        message = session.scalar(select(InboundMessage).where(InboundMessage.message_sid == sid))
        assert message is not None and message.id == handled.inbound_id
        assert message.needs_staff or message.classification in HANDLED, (body, message.classification)
        if sender == STRANGER:
            assert message.needs_staff and message.patient_id is None
        assert handled.reply is None or handled.reply.strip()
        if assess(body, Context(use_model=False)).tier in (Tier.EMERGENCY, Tier.SUICIDE_RISK):
            assert message.classification == "crisis" and message.needs_staff
            assert handled.escalation_id is not None and "988" in handled.reply and "911" in handled.reply
            assert session.get(Escalation, handled.escalation_id).status == "open"
        if message.needs_staff is False:
            assert message.classification in HANDLED
        # Keep every example's patient reachable and the escalation queue from growing.
        session.execute(Escalation.__table__.update().values(status="acknowledged"))
        for person in {m.patient for m in [message] if m.patient}:
            person.sms_opted_out = False
        session.commit()
