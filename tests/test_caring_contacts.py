"""Caring contacts: a short weekly note after the induction series, until a next visit is booked
or CARING_CONTACT_WEEKS have passed; a number sent back is that week's mood."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from reminders.inbound.replies import InboundText, handle_inbound
from reminders.intake.records import AppointmentRecord, PatientRecord
from reminders.intake.upsert import upsert_appointment, upsert_patient
from reminders.models import CheckIn
from reminders.pipeline import run_pass
from reminders.timing.spreading import SPREAD_ORDER, spread_rank
from tests.conftest import at
from tests.helpers import outbox

NY = ZoneInfo("America/New_York")
PHONE = "+12025550143"
# Six infusions, Monday to Friday of the next week, 9:00 in New York; the last on Friday, December 11.
SERIES = ("2026-11-30", "2026-12-02", "2026-12-04", "2026-12-07", "2026-12-09", "2026-12-11")
LAST = datetime(2026, 12, 11, 9, 0, tzinfo=NY)
BOOKED_ON = at("2026-11-20T12:00:00+00:00")


def series(session, *, phone: str | None = PHONE, email: str | None = None, channel: str = "sms",
           language: str = "en", last_status: str = "completed"):
    """A patient's whole induction series, each infusion marked as attended (the last as given)."""
    person = upsert_patient(session, PatientRecord(
        external_id="p1", first_name="Maya", last_name="Lopez", phone=phone, email=email,
        timezone="America/New_York", preferred_channel=channel, language=language), BOOKED_ON).patient
    person.welcomed_at = BOOKED_ON
    for number, day in enumerate(SERIES, start=1):
        upsert_appointment(session, person, AppointmentRecord(
            external_id=f"a{number}", kind="induction", starts_at=at(f"{day}T09:00:00-05:00"),
            status=last_status if number == len(SERIES) else "completed"), BOOKED_ON)
    session.commit()
    return person


def caring(session) -> list:
    """The caring contacts that went, in order."""
    return [row for row in outbox(session) if row.rule.startswith("caring_contact") and row.status == "sent"]


def run_weeks(settings, weeks: int, after=None, early: bool = False) -> None:
    """A pass each morning from the series' end at 10:00 local (and at 9:59, when `early`)."""
    for day in range(1, 7 * weeks + 1):
        morning = (LAST + timedelta(days=day)).replace(hour=10, minute=0)
        if after is not None and morning <= after:
            continue
        if early:
            run_pass(settings, morning - timedelta(minutes=1))
        run_pass(settings, morning)


def local(instant: datetime) -> datetime:
    return instant.astimezone(NY)


def test_after_the_series_a_caring_contact_goes_each_week_at_ten_in_turning_wordings(settings, session):
    series(session)
    run_weeks(settings, 9, early=True)
    went = caring(session)
    assert [row.rule for row in went] == [f"caring_contact_{week}" for week in range(1, 9)]  # CARING_CONTACT_WEEKS
    assert [local(row.sent_at).date().isoformat() for row in went] == [
        "2026-12-18", "2026-12-25", "2027-01-01", "2027-01-08", "2027-01-15", "2027-01-22", "2027-01-29",
        "2027-02-05"]
    assert {local(row.sent_at).strftime("%H:%M") for row in went} == {"10:00"}
    assert {row.channel for row in went} == {"sms"}
    bodies = [row.body for row in went]
    assert len(set(bodies[:4])) == 4 and bodies[4:] == bodies[:4]  # four wordings in turn
    for body in bodies:
        assert body.startswith("Hi Maya,") and ("team" in body or "all of us at" in body)  # signed by people
        words = body.lower().replace(settings.clinic_name.lower(), "")  # the clinic's name is its own
        for word in ("ketamine", "infusion", "depress", "suicid", "treatment"):
            assert word not in words, body
    assert sum("0 (low) to 10 (great)" in body for body in bodies[:4]) == 3  # the mood question, optional
    assert sum("988" in body for body in bodies[:4]) == 1  # the crisis line where it reads naturally


def test_booking_a_maintenance_visit_stops_the_rest(settings, session):
    person = series(session)
    run_weeks(settings, 2)
    assert len(caring(session)) == 2
    booked_at = (LAST + timedelta(days=15)).replace(hour=12)
    upsert_appointment(session, person, AppointmentRecord(
        external_id="m1", kind="maintenance", starts_at=at("2027-01-20T09:00:00-05:00")), booked_at)
    session.commit()
    run_weeks(settings, 5, after=booked_at)
    assert [row.rule for row in caring(session)] == ["caring_contact_1", "caring_contact_2"]
    skipped = [row for row in outbox(session) if row.rule.startswith("caring_contact") and row.status == "skipped"]
    assert skipped and {row.status_reason for row in skipped} == {"next visit already booked"}


def test_stop_stops_them(settings, session):
    series(session)
    run_weeks(settings, 1)
    assert len(caring(session)) == 1
    stopped_at = (LAST + timedelta(days=8)).replace(hour=18)
    handle_inbound(session, settings, InboundText("SMstop1", PHONE, "+15005550006", "STOP"), stopped_at)
    session.commit()
    run_weeks(settings, 4, after=stopped_at)
    assert [row.rule for row in caring(session)] == ["caring_contact_1"]


def test_none_when_the_clinic_sets_zero_weeks(configure, settings, session):
    settings = configure(CARING_CONTACT_WEEKS=0)
    series(session)
    run_weeks(settings, 2)
    assert caring(session) == []
    assert not [row for row in outbox(session) if row.rule.startswith("caring_contact")]


@pytest.mark.parametrize("status", ["no_show", "canceled"])
def test_none_when_the_series_did_not_end_with_an_infusion_given(settings, session, status):
    series(session, last_status=status)
    run_weeks(settings, 2)
    assert caring(session) == []


def test_a_spanish_patient_gets_them_in_spanish_with_usted(settings, session):
    series(session, language="es")
    run_weeks(settings, 4)
    bodies = [row.body for row in caring(session)]
    assert len(bodies) == 4 and all(body.startswith("Hola Maya,") for body in bodies)
    assert sum("usted" in body for body in bodies) >= 2 and not any(" tu " in f" {body} " for body in bodies)
    assert sum("del 0 (muy mal) al 10 (muy bien)" in body for body in bodies) == 3


def test_an_email_only_patient_gets_them_by_email_with_a_subject(settings, session):
    series(session, phone=None, email="maya@example.org", channel="email")
    run_weeks(settings, 4)
    went = caring(session)
    assert [row.channel for row in went] == ["email"] * 4
    assert [row.subject for row in went] == ["Thinking of you", "A hello from the Infusion Clinic team",
                                             "Just saying hello", "Wishing you a good week"]
    for row in went:
        assert row.body.startswith("Hi Maya,") and "reply" not in row.body.lower().replace("no need to reply", "")
    prompts = {row.id for row in went}
    # Nothing to answer by text: no check-in waits for a number.
    assert not [checkin for checkin in _checkins(session) if checkin.prompt_outbox_id in prompts]


def test_a_patient_with_text_and_email_gets_one_caring_contact_a_week_by_text(settings, session):
    series(session, email="maya@example.org", channel="both")
    run_weeks(settings, 2)
    assert [(row.rule, row.channel) for row in caring(session)] == [("caring_contact_1", "sms"),
                                                                    ("caring_contact_2", "sms")]


def test_a_number_sent_back_is_that_weeks_mood(settings, session):
    series(session)
    run_weeks(settings, 1)
    [contact] = caring(session)
    handled = handle_inbound(session, settings, InboundText("SMmood1", PHONE, "+15005550006", "6"),
                             contact.sent_at + timedelta(hours=2))
    session.commit()
    assert handled.classification == "checkin_answer" and not handled.needs_staff
    [checkin] = [checkin for checkin in _checkins(session) if checkin.prompt_outbox_id == contact.id]
    assert (checkin.kind, checkin.score, checkin.status) == ("mood", 6, "answered")
    assert checkin.prompt_outbox_id == contact.id and checkin.appointment.external_id == "a6"
    assert handled.reply and "thank you" in handled.reply.lower()
    assert "6 for your mood this week" in handled.reply  # what was asked: the week, not today


def test_a_caring_contact_yields_its_day_to_every_other_text():
    assert SPREAD_ORDER[-1] == "caring_contact"
    assert spread_rank("caring_contact_3") > max(spread_rank(name) for name in SPREAD_ORDER[:-1])
    assert spread_rank("caring_contact_1") > spread_rank("checkin_day_after")


def test_the_day_after_check_in_keeps_its_day(settings, session):
    """A maintenance visit on the eve of week 2's caring contact: its day-after check-in goes on
    that day as always, and the caring contacts stop (a next visit is booked)."""
    person = series(session)
    run_weeks(settings, 1)
    booked_at = (LAST + timedelta(days=8)).replace(hour=12)
    upsert_appointment(session, person, AppointmentRecord(
        external_id="m1", kind="maintenance", starts_at=at("2026-12-24T09:00:00-05:00"), status="completed"),
        booked_at)
    session.commit()
    run_weeks(settings, 3, after=booked_at)
    [checkin] = [row for row in outbox(session) if row.rule == "checkin_day_after" and row.status == "sent"
                 and row.appointment.external_id == "m1"]
    assert local(checkin.sent_at).isoformat() == "2026-12-25T10:00:00-05:00"
    assert [row.rule for row in caring(session)] == ["caring_contact_1"]


def _checkins(session) -> list[CheckIn]:
    session.expire_all()
    return list(session.scalars(select(CheckIn).order_by(CheckIn.id)))
