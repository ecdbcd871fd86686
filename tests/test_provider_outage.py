"""An outage at the SMS provider loses no reminder: retries until too late, Retry-After, and a
circuit breaker shared through the database. Time is injected; the fake Twilio server is told
when to fail."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from reminders.channels.twilio.client import retry_after_seconds
from reminders.models import Appointment, OutboxMessage, Patient, ProviderHealth
from reminders.pipeline import run_pass
from reminders.timing.quiet_hours import QuietHours
from reminders.timing.retries import (
    BACKOFF_CAP, backoff, delivery_deadline, gave_up_reason, retry_delay, retry_time,
)
from reminders.web import create_app
from tests.conftest import at
from tests.fixtures.staff import login, make_user
from tests.fixtures.twoway import Clock

NY = "America/New_York"
YANGON = "Asia/Yangon"  # UTC+6:30: 09:30 in New York is 21:00 there, when quiet hours begin
DAY = "2026-12-08"  # a Tuesday; the visits are on Wednesday the 9th


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reminders.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def sms(configure, db_url, twilio_settings, tmp_path):
    """Settings that text through the fake Twilio, on SQLite and on PostgreSQL; each reminder one
    text (these tests count texts per number; a reminder's second text: tests/test_text_parts.py)."""
    from reminders.config import Settings
    from reminders.migrations import upgrade
    from tests.test_batched_sending import one_text_reminders

    upgrade(db_url)
    return configure(DATABASE_URL=db_url, TEMPLATES_DIR=one_text_reminders(tmp_path), **twilio_settings)


@pytest.fixture
def settings(sms):
    return sms


@pytest.fixture
def sessions(sms):
    from reminders.db import session_factory

    return session_factory(sms.effective_database_url)


def load_patients(sessions, visits: list[tuple[datetime, str]]) -> dict[str, str]:
    """One later-induction visit per patient (its only message: a 24 h text). Returns phone -> zone."""
    phones = {}
    with sessions() as session:
        for i, (starts_at, zone) in enumerate(visits):
            phone = f"+1415555{i:04d}"
            patient = Patient(external_id=f"p{i}", first_name=f"Pat{i}", last_name="Example", phone=phone,
                              timezone=zone, preferred_channel="sms", welcomed_at=at("2026-11-01T12:00:00+00:00"))
            session.add(patient)
            session.add(Appointment(external_id=f"a{i}", patient=patient, kind="induction", number_in_course=2,
                                    starts_at=starts_at, duration_minutes=60, location="Suite 200",
                                    status="scheduled", needs_planning=True))
            phones[phone] = zone
        session.commit()
    return phones


def reminders(sessions) -> list[OutboxMessage]:
    with sessions() as session:
        return list(session.scalars(select(OutboxMessage).where(OutboxMessage.rule == "induction_24h")
                                    .order_by(OutboxMessage.id)))


def health(sessions, channel: str = "sms") -> ProviderHealth | None:
    with sessions() as session:
        return session.get(ProviderHealth, channel)


def minutes(start: datetime, end: datetime, step: timedelta = timedelta(minutes=1)):
    while start < end:
        yield start
        start += step


# ---------------------------------------------------------------- (a) a morning through an outage

def test_a_morning_of_reminders_survives_a_20_minute_twilio_outage_each_sent_once(sms, sessions, fake_twilio):
    # 36 patients in New York with visits tomorrow from 09:00, one every 100 s (24 h texts due
    # across an hour), and 4 in Yangon whose texts fall due just before their quiet hours.
    start = at(f"{DAY}T09:00:00-05:00") + timedelta(days=1)
    visits = [(start + timedelta(seconds=100 * i), NY) for i in range(36)]
    visits += [(at(f"{DAY}T20:45:00+06:30") + timedelta(days=1, minutes=3 * i), YANGON) for i in range(4)]
    phones = load_patients(sessions, visits)
    outage_from, outage_to = at(f"{DAY}T09:10:00-05:00"), at(f"{DAY}T09:30:00-05:00")

    requests_before = None
    for now in minutes(at(f"{DAY}T08:58:00-05:00"), at(f"{DAY}T10:30:00-05:00")):
        if now == outage_from:
            fake_twilio.outage(status=503, code=20503)
            requests_before = len(fake_twilio.requests)
        if now == outage_to:
            fake_twilio.recover()
            requests_during = len(fake_twilio.requests) - requests_before
        run_pass(sms, now)
    # The night and the next morning, every half hour (Yangon's morning is New York's evening).
    for now in minutes(at(f"{DAY}T10:30:00-05:00"), at(f"{DAY}T09:00:00-05:00") + timedelta(days=1),
                       timedelta(minutes=30)):
        run_pass(sms, now)

    # Every patient got their reminder, exactly once.
    per_phone = Counter(message["to"] for message in fake_twilio.messages)
    assert per_phone == Counter({phone: 1 for phone in phones})
    rows = reminders(sessions)
    assert len(rows) == 40 and {row.status for row in rows} == {"sent"}
    quiet = QuietHours()
    for row in rows:
        assert not quiet.contains(row.sent_at, phones[row.to_address]), row.to_address
        assert row.sent_at < visits[int(row.to_address[-4:])][0]
    # Those due in the outage went soon after it ended (New York) or at 08:00 (Yangon).
    held = [row for row in rows if outage_from <= row.planned_for < outage_to]
    assert len(held) >= 15
    for row in held:
        if phones[row.to_address] == NY:
            assert outage_to <= row.sent_at <= outage_to + timedelta(minutes=6)
        else:
            assert row.sent_at == at(f"{DAY}T08:00:00+06:30") + timedelta(days=1)
    # The breaker kept Twilio from being hammered: a handful of requests in 20 minutes, not one
    # per due text per retry; and held texts were not tried at all.
    assert requests_during <= 12
    assert sum(1 for row in held if row.attempts == 1) >= len(held) - requests_during
    assert health(sessions).open_until is None and health(sessions).consecutive_failures == 0


# ---------------------------------------------------------------- (b) Retry-After

def test_a_429_with_retry_after_120_stops_all_requests_for_120_seconds(sms, sessions, fake_twilio):
    start = at(f"{DAY}T10:00:00-05:00") + timedelta(days=1)
    phones = load_patients(sessions, [(start, NY), (start + timedelta(seconds=20), NY), (start + timedelta(seconds=40), NY)])
    fake_twilio.fail_next(status=429, code=20429, message="Too Many Requests", headers={"Retry-After": "120"})
    first = at(f"{DAY}T10:00:40-05:00")
    summary = run_pass(sms, first)
    assert summary["retrying"] == 1 and summary["sent"] == 0 and len(fake_twilio.requests) == 1
    assert health(sessions).open_until == first + timedelta(seconds=120)
    [busy] = [row for row in reminders(sessions) if row.error_code == "20429"]
    assert busy.due_at >= first + timedelta(seconds=120)

    for now in minutes(first + timedelta(seconds=5), first + timedelta(seconds=120), timedelta(seconds=5)):
        run_pass(sms, now)
    assert len(fake_twilio.requests) == 1  # nothing asked of Twilio for 120 s
    assert {row.status for row in reminders(sessions)} == {"planned"}
    assert all(row.attempts <= 1 for row in reminders(sessions))

    run_pass(sms, first + timedelta(seconds=120))
    assert Counter(m["to"] for m in fake_twilio.messages) == Counter({phone: 1 for phone in phones})
    assert len(fake_twilio.requests) == 4


def test_retry_after_is_read_as_seconds_or_as_a_date():
    now = datetime(2026, 12, 8, 15, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Tue, 08 Dec 2026 15:02:00 GMT", now) == 120.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


# ---------------------------------------------------------------- (c) credentials

def test_wrong_credentials_for_15_minutes_then_fixed_send_everything_once(sms, sessions, fake_twilio, configure):
    start = at(f"{DAY}T09:00:00-05:00") + timedelta(days=1)
    phones = load_patients(sessions, [(start + timedelta(minutes=2 * i), NY) for i in range(10)])
    real_token = fake_twilio.auth_token
    fake_twilio.auth_token = "rotated-at-twilio"  # our TWILIO_AUTH_TOKEN is now refused (401, 20003)
    for now in minutes(at(f"{DAY}T09:00:00-05:00"), at(f"{DAY}T09:15:00-05:00")):
        run_pass(sms, now)
    assert fake_twilio.messages == [] and len(fake_twilio.requests) <= 12
    rows = reminders(sessions)
    assert {row.status for row in rows} == {"planned"} and "20003" in health(sessions).last_error

    fake_twilio.auth_token = real_token  # someone fixed it (here: Twilio and the settings agree again)
    fixed = configure(TWILIO_AUTH_TOKEN=real_token)
    for now in minutes(at(f"{DAY}T09:15:00-05:00"), at(f"{DAY}T09:40:00-05:00")):
        run_pass(fixed, now)
    assert Counter(m["to"] for m in fake_twilio.messages) == Counter({phone: 1 for phone in phones})
    assert {row.status for row in reminders(sessions)} == {"sent"}


# ---------------------------------------------------------------- (d) an outage past the visit

def test_a_reminder_whose_visit_starts_during_an_endless_outage_is_failed_for_staff_not_sent_late(
        sms, sessions, fake_twilio, api_headers):
    visit = at(f"{DAY}T09:00:00-05:00") + timedelta(days=1)
    load_patients(sessions, [(visit, NY)])
    fake_twilio.outage(status=500, code=20500)
    for now in minutes(at(f"{DAY}T08:55:00-05:00"), visit + timedelta(minutes=30), timedelta(minutes=10)):
        run_pass(sms, now)
    [row] = reminders(sessions)
    assert (row.status, row.status_reason) == ("failed", "provider unavailable until the visit")
    assert fake_twilio.messages == []

    fake_twilio.recover()
    for now in minutes(visit + timedelta(minutes=30), visit + timedelta(hours=3), timedelta(minutes=10)):
        run_pass(sms, now)
    assert fake_twilio.messages == []  # never after the visit
    client = create_app(sms, {"TESTING": True}).test_client()
    problems = client.get("/api/v1/delivery-problems", headers=api_headers).json["messages"]
    assert [(p["rule"], p["status"], p["status_reason"]) for p in problems] == [
        ("induction_24h", "failed", "provider unavailable until the visit")]


def test_a_staff_crisis_alert_is_retried_through_a_long_outage_and_goes_once_after(sms, sessions, fake_twilio):
    now = at(f"{DAY}T09:00:00-05:00")
    with sessions() as session:
        session.add(OutboxMessage(dedupe_key="esc:1:round:1:sms:+12025550100", kind="alert", rule="escalation_alert",
                                  channel="sms", to_address="+12025550100", body="URGENT: possible crisis text",
                                  planned_for=now, due_at=now))
        session.commit()
    fake_twilio.outage(status=503, code=20503)
    for when in minutes(now, now + timedelta(hours=48), timedelta(hours=1)):
        run_pass(sms, when)
    with sessions() as session:
        alert = session.scalar(select(OutboxMessage))
        assert alert.status == "planned" and alert.attempts >= 40  # tried every hour, never given up
    app = create_app(sms, {"TESTING": True, "CLOCK": Clock(now + timedelta(hours=48))})
    make_user(sessions, "staff@clinic.test", "staff")
    staff = app.test_client()
    assert login(staff, "staff@clinic.test").status_code == 302
    page = staff.get("/").get_data(as_text=True)
    assert "Text messages have not gone out since Dec 8, 9:00 AM." in page
    assert "Crisis alerts to staff are also waiting: keep the Escalations page open." in page
    fake_twilio.recover()
    run_pass(sms, now + timedelta(hours=49))
    run_pass(sms, now + timedelta(hours=50))
    assert [m["body"] for m in fake_twilio.messages] == ["URGENT: possible crisis text"]


# ---------------------------------------------------------------- (e) what staff see

def test_staff_see_a_banner_and_the_api_a_paused_channel_until_the_provider_is_back(
        sms, sessions, fake_twilio, api_headers):
    start = at(f"{DAY}T09:00:00-05:00") + timedelta(days=1)
    load_patients(sessions, [(start + timedelta(minutes=i), NY) for i in range(10)])
    clock = Clock(at(f"{DAY}T09:12:00-05:00"))
    app = create_app(sms, {"TESTING": True, "CLOCK": clock})
    make_user(sessions, "staff@clinic.test", "staff")
    staff = app.test_client()
    assert login(staff, "staff@clinic.test").status_code == 302
    api = app.test_client()

    run_pass(sms, at(f"{DAY}T09:04:00-05:00"))  # five go; five more fall due in the outage
    assert "have not gone out" not in staff.get("/").get_data(as_text=True)
    fake_twilio.outage(status=503, code=20503)
    run_pass(sms, at(f"{DAY}T09:12:00-05:00"))
    assert health(sessions).open_until is not None

    for path in ("/", "/patients", "/escalations", "/inbox"):
        page = staff.get(path, follow_redirects=True).get_data(as_text=True)
        assert "Text messages have not gone out since 9:12 AM." in page, path
        assert "5 are waiting and will go automatically when Twilio answers again" in page, path
        assert "Service unavailable" not in page, path  # the raw error is for admins only
    status = api.get("/api/v1/provider-status", headers=api_headers).json
    assert status["paused"] == ["sms"]
    [sms_status] = status["providers"]
    assert sms_status["state"] == "paused" and sms_status["waiting"] == 5
    assert sms_status["failing_since"] == at(f"{DAY}T09:12:00-05:00").isoformat()
    assert api.get("/healthz").json == {"status": "ok", "database": "ok", "providers": {"sms": "paused"}}
    assert api.get("/api/v1/provider-status").status_code == 401

    fake_twilio.recover()
    for now in minutes(at(f"{DAY}T09:13:00-05:00"), at(f"{DAY}T09:20:00-05:00")):
        run_pass(sms, now)
    clock.now = at(f"{DAY}T09:20:00-05:00")
    assert "have not gone out" not in staff.get("/").get_data(as_text=True)
    assert api.get("/healthz").json["providers"] == {"sms": "ok"}
    assert len(fake_twilio.messages) == 10


# ---------------------------------------------------------------- the pure rules

def test_backoff_doubles_from_30_seconds_to_a_cap_and_jitter_adds_at_most_a_fifth():
    assert [backoff(n).total_seconds() for n in range(1, 8)] == [30, 60, 120, 240, 480, 960, 1800]
    assert backoff(50) == BACKOFF_CAP
    delays = {retry_delay(3, row_id) for row_id in range(200)}
    assert all(backoff(3) <= d <= backoff(3) * 1.2 for d in delays) and len(delays) > 10
    assert retry_delay(3, 7) == retry_delay(3, 7)


def test_deadlines_a_reminder_until_its_visit_a_checkin_36_hours_an_alert_never():
    planned, visit = at("2026-12-08T09:00:00-05:00"), at("2026-12-09T09:00:00-05:00")
    assert delivery_deadline("reminder", planned, visit) == visit
    assert delivery_deadline("checkin", planned, None) == planned + timedelta(hours=36)
    assert delivery_deadline("nudge", planned, visit) == planned + timedelta(hours=36)
    assert delivery_deadline("alert", planned, None) is None
    assert gave_up_reason("reminder") == "provider unavailable until the visit"


def test_a_retry_never_lands_past_the_deadline_and_none_is_left_when_it_has_come():
    now, deadline = at("2026-12-09T08:40:00-05:00"), at("2026-12-09T09:00:00-05:00")
    assert retry_time(now, timedelta(minutes=5), deadline) == now + timedelta(minutes=5)
    assert retry_time(now, timedelta(minutes=30), deadline) == deadline - timedelta(minutes=1)
    assert retry_time(deadline - timedelta(minutes=1), timedelta(minutes=1), deadline) is None
    assert retry_time(now, timedelta(hours=5), None) == now + timedelta(hours=5)


def test_an_smtp_login_refused_for_15_minutes_pauses_email_then_each_goes_once(
        sms, sessions, smtp_server, smtp_settings, configure):
    wrong = configure(**{**smtp_settings, "SMTP_USERNAME": "clinic", "SMTP_PASSWORD": "wrong"})
    start = at(f"{DAY}T09:00:00-05:00") + timedelta(days=1)
    with sessions() as session:
        for i in range(6):
            patient = Patient(external_id=f"e{i}", first_name=f"Em{i}", last_name="Example", phone=None,
                              email=f"em{i}@example.org", timezone=NY, preferred_channel="email")
            session.add(patient)
            session.add(Appointment(external_id=f"e{i}", patient=patient, kind="induction", number_in_course=2,
                                    starts_at=start + timedelta(minutes=i), duration_minutes=60,
                                    location="Suite 200", status="scheduled", needs_planning=True))
        session.commit()
    for now in minutes(at(f"{DAY}T09:00:00-05:00"), at(f"{DAY}T09:15:00-05:00")):
        run_pass(wrong, now)
    assert smtp_server.messages == []
    assert health(sessions, "email").open_until is not None and "login refused" in health(sessions, "email").last_error

    fixed = configure(SMTP_PASSWORD="secret")
    for now in minutes(at(f"{DAY}T09:15:00-05:00"), at(f"{DAY}T09:30:00-05:00")):
        run_pass(fixed, now)
    assert Counter(tuple(m.rcpt_tos) for m in smtp_server.messages) == Counter({(f"em{i}@example.org",): 1 for i in range(6)})
    assert health(sessions, "email").open_until is None


@pytest.mark.postgres
def test_passes_racing_on_postgresql_let_one_probe_through_and_hold_the_rest(configure, postgres_url):
    import threading

    from reminders.db import session_factory
    from reminders.migrations import upgrade
    from reminders.provider_health import claim_due
    from reminders.planning.planner import plan_pending
    from reminders.timing.rules import RuleSettings

    upgrade(postgres_url)
    configure(DATABASE_URL=postgres_url)
    pg = session_factory(postgres_url)
    now = at(f"{DAY}T09:30:00-05:00")
    load_patients(pg, [(at(f"{DAY}T09:00:00-05:00") + timedelta(days=1, minutes=i), NY) for i in range(20)])
    with pg() as session:
        plan_pending(session, RuleSettings(), now)
        session.add(ProviderHealth(channel="sms", consecutive_failures=5, failing_since=now - timedelta(minutes=20),
                                   open_until=now - timedelta(seconds=1), last_error="Twilio error 20503"))
        session.commit()

    claimed: list[list[int]] = []
    barrier = threading.Barrier(4)

    def one_pass():
        with pg() as session:
            barrier.wait(30)
            claimed.append(claim_due(session, now))

    threads = [threading.Thread(target=one_pass, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(claimed) == 4
    assert sorted(len(ids) for ids in claimed) == [0, 0, 0, 1]  # one probe, whoever won
    with pg() as session:
        statuses = Counter(session.scalars(select(OutboxMessage.status).where(OutboxMessage.rule == "induction_24h")))
        assert statuses == Counter({"planned": 19, "queued": 1})
        assert session.get(ProviderHealth, "sms").probe_outbox_id == next(ids for ids in claimed if ids)[0]


def test_the_send_that_ends_a_pause_says_so_for_the_workers_to_ask_for_a_pass(sms, sessions, fake_twilio):
    """A Celery worker asks for a pass at once when its send ends a provider's pause (the probe
    went): the rows held meanwhile must not wait for beat's next minute."""
    from reminders.dispatch import in_process

    start = at(f"{DAY}T10:00:00-05:00") + timedelta(days=1)
    load_patients(sessions, [(start, NY), (start + timedelta(seconds=20), NY)])
    dispatcher = in_process(sms, sessions)
    fake_twilio.fail_next(status=429, code=20429, message="Too Many Requests", headers={"Retry-After": "5"})
    first = at(f"{DAY}T10:00:40-05:00")
    run_pass(sms, first, dispatcher=dispatcher)
    assert health(sessions).open_until is not None and not dispatcher.sender.provider_recovered
    run_pass(sms, first + timedelta(seconds=5), dispatcher=dispatcher)
    assert dispatcher.sender.provider_recovered
    assert health(sessions).open_until is None
