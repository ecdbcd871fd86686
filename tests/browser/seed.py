"""A small, realistic clinic for the browser tests and the screenshots, placed around the clinic's
clock: CLINIC_NOW, a Wednesday morning in New York (tests/browser/conftest.py sets every browser
test's clock to it, and the served app runs on that clock)."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from reminders.models import Appointment, OutboxMessage
from reminders.pipeline import run_pass
from tests.conftest import clock_now
from tests.fixtures.staff import (
    add_checkin, add_escalation, add_inbound, add_outbox, add_patient, add_visit, make_user,
)

ADMIN, STAFF = "admin@clinic.test", "frontdesk@clinic.test"
CLINIC_ZONE = "America/New_York"
CLINIC_NOW = datetime(2026, 12, 9, 10, 30, tzinfo=ZoneInfo(CLINIC_ZONE)).astimezone(timezone.utc)


@pytest.fixture
def settings(configure, tmp_path, clock):
    """The suite's settings (tests/conftest.py) in the clinic's zone; a module that seeds the
    clinic imports it. It takes the clock first, so that whatever is seeded is on the clinic's."""
    from reminders.migrations import upgrade

    result = configure(DATABASE_URL=f"sqlite:///{tmp_path / 'reminders.db'}", CLINIC_TIMEZONE=CLINIC_ZONE)
    upgrade(result.effective_database_url)
    return result


def clinic_at(zone: ZoneInfo, now: datetime, days: int, hour: int, minute: int = 0) -> datetime:
    day = now.astimezone(zone).date() + timedelta(days=days)
    return datetime.combine(day, time(hour, minute), tzinfo=zone)


def seed_clinic(settings, sessions) -> dict:
    now = clock_now()
    ny = ZoneInfo(settings.clinic_timezone)
    make_user(sessions, ADMIN, "admin")
    make_user(sessions, STAFF, "staff")
    ids: dict = {}
    with sessions() as session:
        maya = add_patient(session, "p-maya", "Maya", "Lopez", "+12025550143", "maya@example.org", channel="both")
        sam = add_patient(session, "p-sam", "Sam", "Okafor", "+12025550178", None, channel="sms")
        priya = add_patient(session, "p-priya", "Priya", "Shah", "+12025550122", "priya@example.org",
                            zone="America/Los_Angeles", channel="email")
        jordan = add_patient(session, "p-jordan", "Jordan", "Kim", "+12025550199", "jordan@example.org", channel="sms")
        lee = add_patient(session, "p-lee", "Lee", "Morgan", "+12025550166", None, channel="sms")
        lee.sms_opted_out, lee.opted_out_at, lee.opt_out_text = True, now - timedelta(days=3), "STOP"

        sam_visits = [add_visit(session, sam, f"sam-{n}", clinic_at(ny, now, days, 9, 30), status="completed")
                      for n, days in ((1, -12), (2, -9), (3, -6), (4, -3))]
        sam_next = add_visit(session, sam, "sam-5", clinic_at(ny, now, 0, 14, 0))  # later today: not yet begun
        maya_first = add_visit(session, maya, "maya-1", clinic_at(ny, now, 1, 10, 0))
        add_visit(session, priya, "priya-1", clinic_at(ny, now, -40, 11, 0), kind="maintenance", status="completed")
        add_visit(session, priya, "priya-2", clinic_at(ny, now, 3, 13, 0), kind="maintenance")
        add_visit(session, jordan, "jordan-1", clinic_at(ny, now, -50, 15, 0), kind="maintenance", status="completed")
        add_visit(session, lee, "lee-1", clinic_at(ny, now, -20, 9, 0), status="completed")
        add_visit(session, lee, "lee-2", clinic_at(ny, now, 2, 9, 0), status="canceled")
        sam_next.confirmed_at = now - timedelta(hours=20)
        sam_next.status = "confirmed"
        session.commit()

        for number, (visit, (score, note)) in enumerate(zip(sam_visits, (
                (3, "tired, a bit of nausea"), (4, ""), (6, "dizzy for an hour"), (7, "sleeping better"))), start=1):
            day = f"{visit.starts_at.astimezone(ny):%A}"
            rule = "first_induction_24h" if number == 1 else "induction_24h"
            add_outbox(session, sam, visit, rule, "sms", "delivered", visit.starts_at - timedelta(hours=24),
                       body=f"Hi Sam, The Infusion Clinic here: infusion {number} of 6 is {day} at 9:30 AM. As before: "
                            "no food for 6 hours and no liquids for 2 hours before, and a ride home. Reply C to "
                            "confirm or R to reschedule.")
            add_inbound(session, sam, "C", needs_staff=False, classification="confirm",
                        minutes_ago=int((now - visit.starts_at).total_seconds() // 60) + 60 * 20,
                        reply_body="Thank you, Sam: your visit is confirmed.")
            answered = visit.starts_at + timedelta(days=1, hours=1)
            add_outbox(session, sam, visit, "checkin_day_after", "sms", "delivered", answered - timedelta(hours=1),
                       kind="checkin", body="Hi Sam, The Infusion Clinic checking in after your visit. How is your "
                                            "mood today, from 0 (worst) to 10 (best)? Any side effects?")
            add_inbound(session, sam, f"{score} {note}".strip(), needs_staff=False, classification="mood_score",
                        minutes_ago=int((now - answered).total_seconds() // 60))
            add_checkin(session, sam, answered, score, note, visit)
        add_checkin(session, sam, sam_visits[-1].starts_at + timedelta(days=2, hours=3), 2, "rough night", sam_visits[-1])

        escalation = add_escalation(session, sam, "i cant do this anymore. i just want it all to stop", minutes_ago=12)
        add_escalation(session, jordan, "feeling low, 1", minutes_ago=60 * 30, status="acknowledged",
                       acknowledged_at=now - timedelta(hours=29), acknowledged_by=STAFF,
                       ack_note="Called Jordan, safe with family; booked a visit.")
        add_inbound(session, maya, "Can my husband drive me? He finishes work at 5", minutes_ago=35)
        add_inbound(session, priya, "R", minutes_ago=90, classification="reschedule",
                    reply_body="Thanks, we will call you to find a new time.")
        add_inbound(session, None, "hi who is this?", minutes_ago=200, classification="unknown_number")
        add_inbound(session, sam, "thanks, see you then", minutes_ago=60 * 26, done_at=now - timedelta(hours=25),
                    done_by=STAFF)
        ids.update(maya=maya.id, sam=sam.id, escalation=escalation.id, maya_visit=maya_first.id)
    run_pass(settings, now)
    with sessions() as session:  # a few outcomes the fake clinic would have seen by now
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.status == "sent")).all()
        for index, row in enumerate(rows):
            row.status = "delivered" if index % 3 else "sent"
            row.delivered_at = now if row.status == "delivered" else None
        failed = session.scalar(select(OutboxMessage).where(OutboxMessage.channel == "email",
                                                            OutboxMessage.status == "planned"))
        if failed is not None:
            failed.status, failed.error_message = "failed", "mailbox unavailable (550)"
        maya_visit = session.get(Appointment, ids["maya_visit"])
        maya_visit.reschedule_requested_at = now - timedelta(hours=1)
        session.commit()
    return ids
