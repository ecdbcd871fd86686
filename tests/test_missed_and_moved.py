"""A missed visit: the same-day text and the staff task; a moved visit: the notice and its reminder again.

Visits are booked and marked the way intake does; passes run at chosen instants; the tests read
what went to the patient (which text, when, in what words) and what the staff inbox holds.
"""
from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy import select

from reminders.config import Settings
from reminders.intake.records import AppointmentRecord
from reminders.intake.upsert import upsert_appointment
from reminders.missed_visits import WITHDRAWN_BY
from reminders.models import Appointment, InboundMessage
from reminders.pipeline import run_pass
from reminders.rendering import TemplateStore, render, sample_context
from tests.conftest import at, both_databases
from tests.helpers import book, outbox, sent

settings = both_databases()

NY = ZoneInfo("America/New_York")


def tick(settings, when: str):
    return run_pass(settings, at(when))


def mark(session, visit: Appointment, status: str, when: str, starts_at: str | None = None):
    """Staff (or a feed) set the visit's status, or move it, at `when`."""
    session.expire_all()
    visit = session.get(Appointment, visit.id)
    upsert_appointment(session, visit.patient, AppointmentRecord(
        external_id=visit.external_id, kind=visit.kind, starts_at=at(starts_at) if starts_at else visit.starts_at,
        location=visit.location, status=status,
    ), at(when))
    session.commit()


def move(session, visit: Appointment, starts_at: str, when: str):
    mark(session, visit, None, when, starts_at=starts_at)


def went(session, **where) -> list[tuple[str, str, str]]:
    """(visit, rule, local send time) of every text that went, in order."""
    rows = [row for row in outbox(session, channel="sms", part=1, **where) if row.status in ("sent", "delivered")]
    return [(row.appointment.external_id, row.rule, row.sent_at.astimezone(NY).strftime("%m-%d %H:%M"))
            for row in sorted(rows, key=lambda row: (row.sent_at, row.id))]


def tasks(session) -> list[InboundMessage]:
    session.expire_all()
    return list(session.scalars(select(InboundMessage).where(InboundMessage.classification == "missed_visit")
                                .order_by(InboundMessage.id)))


def missed_text(session) -> str:
    [row] = [row for row in outbox(session, rule="missed_visit", part=1) if row.status == "sent"]
    return row.body


class TestMissedVisit:
    def test_with_a_later_visit_booked_the_text_names_it_and_staff_get_a_task(self, settings, session):
        first = book(session, starts_at="2026-12-10T10:00:00-05:00", appointment="a1", first_name="Jo")
        book(session, starts_at="2026-12-14T09:00:00-05:00", appointment="a2", first_name="Jo")
        mark(session, first, "no_show", "2026-12-10T11:30:00-05:00")
        tick(settings, "2026-12-10T11:30:00-05:00")
        assert ("a1", "missed_visit", "12-10 11:30") in went(session)
        text = missed_text(session)
        assert text.startswith("Hi Jo, we missed you at The Infusion Clinic and hope you're OK.")
        assert "Your next visit is Monday, December 14 at 9:00 AM; reply R if that needs to change" in text
        assert "find a new time" not in text
        [task] = tasks(session)
        assert task.needs_staff and task.done_at is None and task.patient_id == first.patient_id
        assert task.appointment_id == first.id
        assert task.body == "Missed infusion 1 of 6 on Thursday, December 10 at 10:00 AM: call the patient."

    def test_with_nothing_booked_the_text_asks_them_to_rebook_and_staff_get_a_task(self, settings, session):
        first = book(session, starts_at="2026-12-10T10:00:00-05:00", kind="maintenance", first_name="Jo")
        mark(session, first, "no_show", "2026-12-10T12:00:00-05:00")
        tick(settings, "2026-12-10T12:00:00-05:00")
        text = missed_text(session)
        assert "Reply R and we'll call you to find a new time" in text and "next visit" not in text
        [task] = tasks(session)
        assert task.body == "Missed maintenance visit on Thursday, December 10 at 10:00 AM: call the patient."
        assert task.done_at is None

    def test_marking_it_again_adds_no_second_task_or_text(self, settings, session):
        first = book(session, starts_at="2026-12-10T10:00:00-05:00")
        mark(session, first, "no_show", "2026-12-10T12:00:00-05:00")
        tick(settings, "2026-12-10T12:00:00-05:00")
        mark(session, first, "completed", "2026-12-10T12:05:00-05:00")
        tick(settings, "2026-12-10T12:05:00-05:00")
        mark(session, first, "no_show", "2026-12-10T12:10:00-05:00")
        tick(settings, "2026-12-10T12:10:00-05:00")
        [task] = tasks(session)
        assert task.done_at is None and task.done_note == ""  # open again, once
        assert [row.status for row in outbox(session, rule="missed_visit")] == ["sent"]

    def test_correcting_it_to_completed_withdraws_the_task_with_a_note(self, settings, session):
        first = book(session, starts_at="2026-12-10T10:00:00-05:00")
        mark(session, first, "no_show", "2026-12-10T12:00:00-05:00")
        tick(settings, "2026-12-10T12:00:00-05:00")
        mark(session, first, "completed", "2026-12-10T13:00:00-05:00")
        tick(settings, "2026-12-10T13:00:00-05:00")
        [task] = tasks(session)
        assert task.done_at == at("2026-12-10T13:00:00-05:00") and task.done_by == WITHDRAWN_BY
        assert task.done_note == "Withdrawn: the visit is now marked completed."

    def test_a_task_a_person_closed_stays_closed(self, settings, session):
        first = book(session, starts_at="2026-12-10T10:00:00-05:00")
        mark(session, first, "no_show", "2026-12-10T12:00:00-05:00")
        tick(settings, "2026-12-10T12:00:00-05:00")
        [task] = tasks(session)
        task.done_at, task.done_by, task.done_note = at("2026-12-10T12:30:00-05:00"), "nurse@clinic.example", "Called"
        session.commit()
        mark(session, first, "completed", "2026-12-10T13:00:00-05:00")
        tick(settings, "2026-12-10T13:00:00-05:00")
        [task] = tasks(session)
        assert (task.done_by, task.done_note) == ("nurse@clinic.example", "Called")

    def test_a_no_show_loaded_as_history_makes_no_task(self, settings, session):
        first = book(session, starts_at="2026-11-10T10:00:00-05:00", status="completed")
        mark(session, first, "no_show", "2026-12-10T12:00:00-05:00")
        tick(settings, "2026-12-10T12:00:00-05:00")
        assert tasks(session) == [] and outbox(session, rule="missed_visit") == []


class TestMissedFirstInfusion:
    def book_two(self, session, first_at="2026-12-10T10:00:00-05:00"):
        first = book(session, starts_at=first_at, appointment="a1")
        book(session, starts_at="2026-12-12T10:00:00-05:00", appointment="a2")
        return first

    def test_the_outreach_goes_first_then_the_new_first_infusion_preparation(self, settings, session):
        first = self.book_two(session)
        tick(settings, "2026-12-07T10:00:00-05:00")
        tick(settings, "2026-12-09T10:00:00-05:00")
        mark(session, first, "no_show", "2026-12-10T11:30:00-05:00")
        tick(settings, "2026-12-10T11:30:00-05:00")
        assert went(session)[-1] == ("a1", "missed_visit", "12-10 11:30")  # alone in its pass
        assert "Your next visit is Saturday, December 12 at 10:00 AM" in missed_text(session)
        for when in ("2026-12-10T11:31:00-05:00", "2026-12-11T10:00:00-05:00"):
            tick(settings, when)
        a2 = [(rule, when) for visit, rule, when in went(session) if visit == "a2"]
        assert a2 == [("first_induction_72h", "12-10 11:31"), ("first_induction_24h", "12-11 10:00")]
        [reminder] = [row for row in outbox(session, rule="first_induction_24h", part=1)
                      if row.status == "sent" and row.appointment.external_id == "a2"]
        assert "your first infusion is Saturday, December 12" in reminder.body
        assert len(tasks(session)) == 1

    def test_marked_in_the_evening_the_outreach_leads_in_the_morning(self, settings, session):
        first = self.book_two(session, first_at="2026-12-10T17:00:00-05:00")
        mark(session, first, "no_show", "2026-12-10T21:30:00-05:00")
        assert tick(settings, "2026-12-10T21:30:00-05:00")["sent"] == 0
        tick(settings, "2026-12-11T08:00:00-05:00")
        assert [(v, r) for v, r, _ in went(session)] == [("a1", "missed_visit")]
        tick(settings, "2026-12-11T08:01:00-05:00")
        assert [(v, r, w) for v, r, w in went(session)][1] == ("a2", "first_induction_72h", "12-11 08:01")


class TestMovedVisit:
    def test_the_notice_carries_the_preparation_and_the_24h_reminder_goes_again(self, settings, session):
        visit = book(session, starts_at="2026-12-10T10:00:00-05:00", kind="maintenance")
        tick(settings, "2026-12-03T10:00:00-05:00")
        tick(settings, "2026-12-09T10:00:00-05:00")  # the 24 h reminder for the old time
        move(session, visit, "2026-12-14T15:00:00-05:00", "2026-12-09T12:00:00-05:00")
        tick(settings, "2026-12-09T12:00:00-05:00")
        [notice] = outbox(session, rule="visit_moved", status="sent", part=1)
        assert "your visit has moved to Monday, December 14 at 3:00 PM. Arrive by 2:45 PM." in notice.body
        assert "Nothing to eat after" in notice.body and "An adult must drive you home." in notice.body
        # Nothing at or after the old time: no reminder, no check-in.
        for when in ("2026-12-10T09:00:00-05:00", "2026-12-11T10:00:00-05:00", "2026-12-13T14:59:00-05:00"):
            assert tick(settings, when)["sent"] == 0
        assert tick(settings, "2026-12-13T15:00:00-05:00")["sent"] >= 1
        again = [row for row in outbox(session, rule="maintenance_24h", part=1) if row.status == "sent"]
        assert len(again) == 2 and "Monday, December 14 at 3:00 PM" in again[-1].body
        assert tick(settings, "2026-12-14T09:00:00-05:00")["sent"] == 0
        assert sent(session, part=1) == [("maintenance_7d", "sms"), ("maintenance_24h", "sms"), ("visit_moved", "sms"),
                                 ("maintenance_24h", "sms")]

    def test_moved_to_within_a_day_the_notice_is_its_reminder(self, settings, session):
        visit = book(session, starts_at="2026-12-10T10:00:00-05:00", kind="maintenance")
        tick(settings, "2026-12-09T10:00:00-05:00")
        move(session, visit, "2026-12-10T11:00:00-05:00", "2026-12-09T12:00:00-05:00")  # 23 h after the notice
        tick(settings, "2026-12-09T12:00:00-05:00")
        tick(settings, "2026-12-10T10:00:00-05:00")
        assert [rule for rule, _ in sent(session, part=1)] == ["maintenance_24h", "visit_moved"]

    def test_a_moved_first_infusion_says_so_with_the_ride_home(self, settings, session):
        visit = book(session, starts_at="2026-12-10T10:00:00-05:00")
        tick(settings, "2026-12-09T10:00:00-05:00")
        move(session, visit, "2026-12-15T09:00:00-05:00", "2026-12-09T12:00:00-05:00")
        tick(settings, "2026-12-09T12:00:00-05:00")
        [notice] = outbox(session, rule="visit_moved", status="sent", part=1)
        assert "your first infusion has moved to Tuesday, December 15 at 9:00 AM" in notice.body
        assert "An adult must drive you home." in notice.body
        tick(settings, "2026-12-14T09:00:00-05:00")
        assert [rule for rule, _ in sent(session, part=1)][-1] == "first_induction_24h"


def test_the_spanish_texts_say_usted_and_name_the_next_visit():
    settings = Settings()
    context = sample_context(settings, "es")
    text = render(TemplateStore(settings.templates_dir), "es/missed_visit.sms.j2", context)
    assert "Su próxima cita es el jueves 5 de marzo a las 9:30 a. m.; si necesita cambiarla, responda R" in text
    rebook = render(TemplateStore(settings.templates_dir), "es/missed_visit.sms.j2", {**context, "next_visit": None})
    assert "Responda R y le llamaremos" in rebook


def test_the_staff_editor_accepts_the_shipped_texts():
    from reminders.web.staff.template_checks import check

    settings = Settings()
    store = TemplateStore(settings.templates_dir)
    for name in ("missed_visit.sms.j2", "es/missed_visit.sms.j2", "missed_visit.email.txt.j2",
                 "visit_moved.sms.j2", "es/visit_moved.sms.j2"):
        assert check(store, settings, name, store.default_source(name)) is None, name


def test_staff_see_the_task_in_the_inbox_and_close_it(settings, session, sessions):
    from reminders.web import create_app
    from tests.fixtures.staff import login, make_user, post_form

    first = book(session, starts_at="2026-12-10T10:00:00-05:00", first_name="Jo")
    mark(session, first, "no_show", "2026-12-10T12:00:00-05:00")
    tick(settings, "2026-12-10T12:00:00-05:00")
    app = create_app(settings, {"TESTING": True, "CLOCK": lambda: at("2026-12-10T12:30:00-05:00")})
    make_user(sessions, "staff@clinic.test", "staff")
    client = app.test_client()
    assert login(client, "staff@clinic.test").status_code == 302
    page = client.get("/inbox/").text
    assert "Missed visit: call the patient" in page
    assert "Missed infusion 1 of 6 on Thursday, December 10 at 10:00 AM: call the patient." in page
    [task] = tasks(session)
    post_form(client, f"/inbox/{task.id}/done", token_from="/inbox/")
    [task] = tasks(session)
    assert task.done_at is not None and task.done_by == "staff@clinic.test"
