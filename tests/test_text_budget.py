"""Issue 20: a budget of texts per visit (TEXTS_PER_VISIT) that the welcome quotes truthfully.

The pure decision (reminders.timing.budget) first, then a maintenance patient's six weeks as
the passes send them, then the welcome's promise.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from reminders.config import Settings
from reminders.models.outbox import Kind
from reminders.pipeline import run_pass
from reminders.rendering import TemplateStore, render, sample_context
from reminders.timing.budget import OVER_BUDGET, VisitText, spread_weeks, texts_to_keep
from tests.conftest import at
from tests.helpers import book, outbox

SAFETY_RULES = ("maintenance_7d", "maintenance_24h")


def text(rule: str, kind: str, channel: str = "sms", went: bool = False) -> VisitText:
    return VisitText(f"{rule}:{channel}", rule, kind, channel, went)


def maintenance_texts(weeks: int = 6) -> list[VisitText]:
    """What the rules want for one maintenance visit of a 42-day interval, questionnaires on."""
    return [
        text("maintenance_7d", Kind.REMINDER), text("maintenance_7d", Kind.REMINDER, "email"),
        text("maintenance_24h", Kind.REMINDER), text("measures", Kind.QUESTIONNAIRE),
        text("measures", Kind.QUESTIONNAIRE, "email"), text("measures_reminder", Kind.QUESTIONNAIRE),
        text("checkin_day_after", Kind.CHECKIN), text("rebook_nudge", Kind.NUDGE),
        *(text(f"checkin_weekly_{week}", Kind.CHECKIN) for week in range(1, weeks + 1)),
    ]


def kept_rules(texts, budget) -> list[str]:
    keys = texts_to_keep(texts, budget)
    return sorted(t.key for t in texts if t.key in keys)


# ---------------------------------------------------------------- the decision

def test_a_maintenance_visit_keeps_its_reminders_checkin_questionnaire_and_one_weekly_checkin():
    texts = maintenance_texts()
    assert kept_rules(texts, 6) == sorted([
        "maintenance_7d:sms", "maintenance_7d:email", "maintenance_24h:sms", "measures:sms", "measures:email",
        "checkin_day_after:sms", "rebook_nudge:sms", "checkin_weekly_3:sms"])
    # Emails are not texts: they neither count nor give way.
    assert len([k for k in kept_rules(texts, 6) if k.endswith(":sms")]) == 6


def test_more_room_spreads_the_weekly_checkins_then_the_questionnaire_reminder():
    texts = maintenance_texts()
    assert {k for k in kept_rules(texts, 7) if "weekly" in k} == {"checkin_weekly_3:sms", "checkin_weekly_5:sms"}
    assert "measures_reminder:sms" not in kept_rules(texts, 11)
    assert "measures_reminder:sms" in kept_rules(texts, 12)
    assert spread_weeks({1, 2, 3, 4, 5, 6}) == [3, 5, 1, 2, 4, 6]


def test_no_budget_keeps_everything():
    texts = maintenance_texts()
    assert kept_rules(texts, None) == sorted(t.key for t in texts)


def test_safety_texts_always_go_even_over_the_budget():
    texts = [text("first_induction_72h", Kind.REMINDER), text("first_induction_72h_2", Kind.REMINDER),
             text("first_induction_24h", Kind.REMINDER), text("first_induction_24h_2", Kind.REMINDER),
             text("visit_moved", Kind.REMINDER), text("missed_visit", Kind.NUDGE),
             text("checkin_day_after", Kind.CHECKIN), text("measures", Kind.QUESTIONNAIRE)]
    kept = kept_rules(texts, 3)
    # The day-after check-in is clinical (side effects, mood): it goes; the questionnaire gives way.
    assert kept == sorted(t.key for t in texts if t.rule != "measures")


def test_a_moved_visits_notice_is_not_counted():
    texts = [text("induction_24h", Kind.REMINDER, went=True), text("visit_moved", Kind.REMINDER, went=True),
             text("checkin_day_after", Kind.CHECKIN), text("measures", Kind.QUESTIONNAIRE)]
    assert kept_rules(texts, 3) == ["checkin_day_after:sms", "measures:sms"]


def test_texts_that_went_count_and_are_never_taken_back():
    went = [text("maintenance_7d", Kind.REMINDER, went=True), text("maintenance_24h", Kind.REMINDER, went=True),
            text("checkin_day_after", Kind.CHECKIN, went=True), text("checkin_weekly_1", Kind.CHECKIN, went=True),
            text("measures", Kind.QUESTIONNAIRE, went=True)]
    wanted = [text("rebook_nudge", Kind.NUDGE), text("checkin_weekly_3", Kind.CHECKIN),
              text("checkin_weekly_4", Kind.CHECKIN)]
    assert kept_rules(went + wanted, 6) == ["rebook_nudge:sms"]
    # A week already sent spaces the others: the one farthest from it and from both visits.
    assert kept_rules(went + wanted[1:], 6) == ["checkin_weekly_3:sms"]


def test_caring_contacts_and_replies_are_not_the_visits_texts():
    texts = [text("induction_24h", Kind.REMINDER), text("checkin_day_after", Kind.CHECKIN),
             *(text(f"caring_contact_{week}", Kind.NUDGE) for week in range(1, 9)),
             text("reply", Kind.REPLY), text("alert", Kind.ALERT)]
    assert kept_rules(texts, 3) == sorted(t.key for t in texts)


# ---------------------------------------------------------------- a maintenance visit, as sent

VISIT = "2026-12-10T10:00:00-05:00"
NEXT_VISIT = "2027-01-21T10:00:00-05:00"  # six weeks later


def test_a_maintenance_visit_stays_within_the_budget_with_every_safety_text(configure, settings, session):
    measured = configure(MEASURES_ENABLED="true")
    assert measured.texts_per_visit == 7
    first = book(session, starts_at=VISIT, kind="maintenance", appointment="a1")
    now = at("2026-12-01T08:00:00-05:00")
    end = at(NEXT_VISIT) - timedelta(days=2)  # the next visit not booked: the booking nudge goes too
    while now <= end:
        run_pass(measured, now)
        now += timedelta(hours=3)
    rows = [row for row in outbox(session, appointment_id=first.id) if row.channel == "sms"]
    went = [row.rule for row in rows if row.status in ("sent", "delivered")]
    assert len(went) <= measured.texts_per_visit, went
    for rule in (*SAFETY_RULES, "checkin_day_after", "measures", "rebook_nudge"):
        assert rule in went, (rule, went)
    assert [rule for rule in went if rule.startswith("checkin_weekly")] == ["checkin_weekly_3"]
    # What gave way is not planned, or is withdrawn with the reason for staff.
    assert all(row.status_reason == OVER_BUDGET for row in rows if row.status == "canceled")


def test_a_moved_visits_notice_goes_whatever_the_count(configure, settings, session):
    measured = configure(MEASURES_ENABLED="true", TEXTS_PER_VISIT="3")
    visit = book(session, starts_at=VISIT, kind="maintenance", appointment="a1")
    run_pass(measured, at("2026-12-03T10:00:00-05:00"))
    book(session, starts_at="2026-12-11T15:00:00-05:00", kind="maintenance", appointment="a1")
    run_pass(measured, at("2026-12-03T11:00:00-05:00"))
    run_pass(measured, at("2026-12-10T16:00:00-05:00"))
    went = [row.rule for row in outbox(session, appointment_id=visit.id, channel="sms")
            if row.status in ("sent", "delivered")]
    assert {"maintenance_7d", "visit_moved", "maintenance_24h"} <= set(went), went


# ---------------------------------------------------------------- the welcome's promise

@pytest.mark.parametrize("budget", [6, 4, 9])
def test_the_welcome_quotes_the_budget_in_both_languages(budget):
    settings = Settings(clinic_name="Blue Ridge Infusion & Wellness", texts_per_visit=budget)
    store = TemplateStore(settings.templates_dir)
    for name, promise in (("welcome.sms.j2", f"up to {budget} texts per visit"),
                          ("es/welcome.sms.j2", f"hasta {budget} mensajes por cita"),
                          ("welcome.whatsapp.j2", f"up to {budget} messages per visit"),
                          ("es/welcome.whatsapp.j2", f"hasta {budget} mensajes por cita")):
        text = render(store, name, sample_context(settings, "es" if name.startswith("es/") else "en"))
        assert promise in text, text
