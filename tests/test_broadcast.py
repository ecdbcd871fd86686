"""A short broadcast to a day's patients: the preview names who gets it and who is skipped
and why, the confirm names the count, each recipient is texted once through the outbox (quiet
hours held), and it is audited."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from reminders.models import AuditEntry, OutboxMessage
from reminders.models.outbox import Kind
from tests.fixtures.staff import add_patient, add_visit, csrf_token
from tests.test_saved_replies import LATE_NY, NOON_NY, clock  # noqa: F401 - the same clinic clock

TUESDAY = "2026-11-03"
SNOW = "The clinic is closed tomorrow because of snow; we will call you to rebook."


@pytest.fixture
def tuesday(session):
    """Tuesday's visits: two patients who get texts (one with two visits), three who do not, and a
    canceled visit and another day's visit that are not part of it."""
    def at(hour: int, minute: int = 0) -> datetime:
        return datetime(2026, 11, 3, hour + 5, minute, tzinfo=timezone.utc)  # New York (EST) clock

    maya = add_patient(session, "p-maya", "Maya", "Lopez", "+12025550143", None, channel="sms")
    sam = add_patient(session, "p-sam", "Sam", "Okafor", "+12025550178", None, channel="sms")
    lee = add_patient(session, "p-lee", "Lee", "Morgan", "+12025550166", None, channel="sms")
    lee.sms_opted_out, lee.opt_out_text = True, "STOP"
    noor = add_patient(session, "p-noor", "Noor", "Haddad", None, "noor@example.org", channel="email")
    priya = add_patient(session, "p-priya", "Priya", "Shah", "+12025550122", "priya@example.org", channel="email")
    jo = add_patient(session, "p-jo", "Jo", "Park", "+12025550133", None, channel="sms")
    session.commit()
    add_visit(session, maya, "maya-1", at(9))
    add_visit(session, maya, "maya-2", at(15))
    add_visit(session, sam, "sam-1", at(10, 30))
    add_visit(session, lee, "lee-1", at(11))
    add_visit(session, noor, "noor-1", at(12))
    add_visit(session, priya, "priya-1", at(13), kind="maintenance")
    add_visit(session, jo, "jo-1", at(14), status="canceled")
    add_visit(session, jo, "jo-2", datetime(2026, 11, 4, 15, 0, tzinfo=timezone.utc))
    return {"maya": maya.id, "sam": sam.id}


def preview(client, day: str = TUESDAY, text: str = SNOW):
    return client.post("/broadcast/preview", data={"day": day, "text": text, "csrf_token": csrf_token(client, "/broadcast/")})


def confirm(client, page_text: str, day: str = TUESDAY, text: str = SNOW):
    patients = re.search(r'name="patients" value="([0-9,]*)"', page_text).group(1)
    return client.post("/broadcast/send", data={"day": day, "text": text, "patients": patients,
                                                "csrf_token": csrf_token(client, "/broadcast/")})


def rows(session) -> list[OutboxMessage]:
    session.expire_all()
    return session.scalars(select(OutboxMessage).where(OutboxMessage.rule == "staff_broadcast")
                           .order_by(OutboxMessage.id)).all()


def test_the_page_is_for_every_staff_member_and_starts_on_today(nurse):
    page = nurse.get("/broadcast/")
    assert page.status_code == 200
    assert "Text a day's patients" in page.text and 'value="2026-11-02"' in page.text


def test_the_preview_names_who_gets_it_and_who_is_skipped_and_why(nurse, tuesday, session):
    page = preview(nurse)
    assert page.status_code == 200
    going = page.text[page.text.index('id="broadcast-recipients"'):page.text.index("Not texted")]
    assert going.index("Maya Lopez") < going.index("Sam Okafor") and going.count("Maya Lopez") == 1
    assert "Text to (202) 555-0143" in going
    skipped = page.text[page.text.index("Not texted (3)"):]
    assert "Lee Morgan" in skipped and "opted out of texts (texted STOP)" in skipped
    assert "Noor Haddad" in skipped and "no mobile number on file" in skipped
    assert "Priya Shah" in skipped and "email only" in skipped
    assert "Jo Park" not in page.text  # canceled that day; the visit the day after is not Tuesday's
    assert "Send to 2 patients" in page.text
    assert rows(session) == []  # a preview sends nothing


def test_confirming_texts_each_patient_once_even_when_pressed_twice(nurse, tuesday, session):
    page = preview(nurse)
    first = confirm(nurse, page.text)
    assert first.status_code == 302
    sent = rows(session)
    assert sorted(r.patient_id for r in sent) == sorted(tuesday.values())
    assert all((r.kind, r.channel, r.body, r.due_at) == (Kind.REPLY, "sms", SNOW, NOON_NY) for r in sent)
    shown = nurse.get(first.headers["Location"])
    assert "Text planned for 2 patients: 2 going now." in shown.text
    again = confirm(nurse, page.text)
    assert len(rows(session)) == 2
    assert "2 patients already had this text: nobody was texted twice." in nurse.get(again.headers["Location"]).text
    [entry, repeat] = session.scalars(select(AuditEntry).where(AuditEntry.action == "send_broadcast")
                                      .order_by(AuditEntry.id)).all()
    assert entry.target_id == TUESDAY and entry.detail["recipients"] == 2 and entry.detail["skipped"] == 3
    assert repeat.detail["recipients"] == 0 and repeat.detail["already_sent"] == 2


def test_in_quiet_hours_the_texts_wait_for_their_end(nurse, tuesday, session, clock):
    clock.set(LATE_NY)
    page = preview(nurse)
    assert "after their quiet hours" in page.text
    shown = nurse.get(confirm(nurse, page.text).headers["Location"])
    assert all(r.due_at == datetime(2026, 11, 3, 13, 0, tzinfo=timezone.utc) for r in rows(session))
    assert "0 going now, 2 after their quiet hours end." in shown.text


def test_a_list_that_changed_since_the_preview_is_shown_again_not_sent(nurse, tuesday, session):
    from reminders.models import Patient

    page = preview(nurse)
    session.get(Patient, tuesday["sam"]).sms_opted_out = True
    session.commit()
    answer = confirm(nurse, page.text)
    assert answer.status_code == 409 and "The list changed since the preview" in answer.text
    assert "Send to 1 patient<" in answer.text and rows(session) == []


def test_a_text_too_long_or_a_past_day_is_refused(nurse, tuesday, session):
    long = preview(nurse, text="Snow. " * 80)
    assert long.status_code == 422 and "keep it to 2" in long.text
    past = preview(nurse, day="2026-11-01")
    assert past.status_code == 422 and "That day has passed" in past.text
    empty = preview(nurse, text="  ")
    assert empty.status_code == 422 and "Write the text first." in empty.text
    assert rows(session) == []


def test_a_day_with_nobody_to_text_says_so(nurse):
    page = preview(nurse, day="2026-11-05")
    assert "Nobody with a visit that day can be texted." in page.text and "Send to" not in page.text
