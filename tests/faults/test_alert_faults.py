"""Issue 25, item 1: a crisis alert must reach on-call whatever else is wrong.

The attacks that found the failures, replayed against web, worker and beat as compose runs them
(tests/processes.py): the worker stopped with web, beat and Redis up; a worker whose clock runs 11
minutes behind; a provider answering in 5 s a call while a backlog of reminders is being sent; a
two-hour SMS outage while an escalation stays open. What on-call received is read where it
arrives (the fake Twilio server, the SMTP server).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import timedelta

import pytest

from tests.processes import (BEAT_WAIT, CONCURRENCY, PASS_SECONDS, ROOT, SETTLE_WAIT, WORKER_COMMAND, Process,
                             command, one_text_each, running_service, signed_text, utcnow, wait_for)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.processes]

ALERT_PROMISE = 30.0  # with the worker stopped: on-call SMS and email within 30 s
FIRST_ALERT_PROMISE = 10.0  # with a slow provider and a backlog: the first alert within 10 s
SLOW_PROVIDER = 5.0  # seconds a call
SKEW = "-11m"  # the worker's clock, behind the database's
CRISIS = "i want to end my life"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with running_service(tmp_path_factory.mktemp("alert-faults")) as running:
        yield running


def add_patient(service, external_id: str, phone: str) -> None:
    service.api("POST", "/api/v1/patients", {"external_id": external_id, "first_name": "Robin",
                                              "phone": phone, "timezone": "America/New_York"})


def seconds_after(posted, arrived) -> float:
    return (arrived - posted).total_seconds()


# `reminders tick --now AT` for each instant in turn, as the console script runs it, in one Python
# process: the hours pass without an interpreter starting for each.
TICKS = """import sys
from reminders.cli import main
for at in sys.argv[1:]:
    main(["tick", "--now", at], standalone_mode=False)
"""


def ticks(service, start, *minutes: int) -> None:
    """A pass at each of these minutes after `start`, one after the other."""
    instants = [(start + timedelta(minutes=m)).isoformat() for m in minutes]
    done = subprocess.run([sys.executable, "-c", TICKS, *instants], cwd=ROOT, env=service.env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_with_the_worker_stopped_a_crisis_text_reaches_on_call_by_sms_and_email_within_30_s(service):
    with service.logs_on_failure():
        service.worker.stop()  # web, beat and Redis stay up: the broker takes the task, nobody runs it
        try:
            phone = "+16175550201"
            add_patient(service, "no-worker-1", phone)
            texts_before, mails_before = len(service.staff_texts()), len(service.staff_mails())
            posted = utcnow()
            assert "988" in signed_text(service, CRISIS, phone).text
            texts = wait_for(lambda: service.staff_texts()[texts_before:], ALERT_PROMISE, "the alert SMS")
            wait_for(lambda: service.staff_mails()[mails_before:], ALERT_PROMISE, "the alert email")
            sms_after, mail_after = seconds_after(posted, texts[0]["received_at"]), seconds_after(posted, utcnow())
            assert sms_after <= ALERT_PROMISE and mail_after <= ALERT_PROMISE
            assert "not claimed by any worker" in service.web.log()
        finally:
            service.start_worker()
        assert len(service.staff_texts()[texts_before:]) == 1 and len(service.staff_mails()[mails_before:]) == 1
        service.acknowledge_open_escalations()
        service.report(f"worker stopped: crisis SMS after {sms_after:.1f} s, email after {mail_after:.1f} s "
                       f"(sent by the web process; sent 1 + 1, duplicates 0)")


@pytest.mark.skipif(shutil.which("faketime") is None, reason="faketime is not installed (scripts/test installs it)")
def test_a_worker_whose_clock_runs_11_minutes_behind_sends_alerts_and_reminders_on_time(service):
    """The worker (and its pass) keep to the database's clock: a row the web queued "now" is due
    for it now, and a reminder due now goes at beat's next pass, not eleven minutes late."""
    with service.logs_on_failure():
        service.worker.stop()
        mark, web_mark = len(service.worker.log()), len(service.web.log())
        skewed = [shutil.which("faketime"), "-f", SKEW, *command(WORKER_COMMAND, concurrency=CONCURRENCY)]
        env = {**service.env, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
        service.worker = Process("worker", skewed, env, service.worker.log_path).start()
        try:
            service.worker.wait_for_log(" ready.", since=mark)
            assert "behind the database server's" in service.worker.log()[mark:]

            phone = "+16175550202"
            add_patient(service, "clock-crisis-1", phone)
            texts_before, mails_before = len(service.staff_texts()), len(service.staff_mails())
            posted = utcnow()
            assert "988" in signed_text(service, CRISIS, phone).text
            texts = wait_for(lambda: service.staff_texts()[texts_before:], ALERT_PROMISE, "the alert SMS")
            wait_for(lambda: service.staff_mails()[mails_before:], ALERT_PROMISE, "the alert email")
            sms_after = seconds_after(posted, texts[0]["received_at"])
            assert "not claimed by any worker" not in service.web.log()[web_mark:], "the worker left the alert"
            service.acknowledge_open_escalations()

            scenario = service.book_visits("skew", 5, area_code=718)
            loaded = utcnow()
            wait_for(lambda: service.statuses(scenario)["sent"] == 5, BEAT_WAIT, "the 5 due reminders")
            took = seconds_after(loaded, utcnow())
            texts = service.texts_to(scenario.phones.values())
            assert one_text_each(texts) == 0 and len(texts) == 5
        finally:
            service.worker.stop()
            service.worker = Process("worker", command(WORKER_COMMAND, concurrency=CONCURRENCY), service.env,
                                     service.worker.log_path)
            service.start_worker()
        service.report(f"worker clock 11 min behind: crisis SMS after {sms_after:.1f} s, sent by the worker; "
                       f"5 due reminders sent 5 within {took:.0f} s (beat's pass is every {PASS_SECONDS} s), "
                       f"duplicates 0")


def test_with_a_provider_at_5_s_a_call_and_a_backlog_the_first_alert_arrives_within_10_s(service):
    """Both of the worker's pool processes are busy with batches of 20 reminders at 5 s a call
    (100 s a batch); ten patients text a crisis at once. The alerts have a queue and a consumer of
    their own: no alert waits for a batch."""
    with service.logs_on_failure():
        service.twilio.slow_down(SLOW_PROVIDER)
        try:
            backlog = service.book_visits("backlog", 40, area_code=917)
            wait_for(lambda: service.statuses(backlog)["sending"] >= CONCURRENCY, BEAT_WAIT,
                     "both pool processes to be sending the backlog")
            phones = [f"+1617555{300 + i:04d}" for i in range(10)]
            for i, phone in enumerate(phones):
                add_patient(service, f"slow-{i}", phone)
            texts_before, mails_before = len(service.staff_texts()), len(service.staff_mails())
            posted = utcnow()
            for phone in phones:
                assert "988" in signed_text(service, CRISIS, phone).text
            texts = wait_for(lambda: service.staff_texts()[texts_before:], FIRST_ALERT_PROMISE + 20, "the first SMS")
            mails = wait_for(lambda: service.staff_mails()[mails_before:], FIRST_ALERT_PROMISE + 20,
                             "the first email")
            first_sms = seconds_after(posted, texts[0]["received_at"])
            first_mail = seconds_after(posted, utcnow()) if not mails else None
            all_sms = wait_for(lambda: len(service.staff_texts()[texts_before:]) >= 10 and service.staff_texts(),
                               ALERT_PROMISE * 3, "all ten alert SMS")
            last_sms = seconds_after(posted, all_sms[-1]["received_at"])
            wait_for(lambda: len(service.staff_mails()[mails_before:]) >= 10, ALERT_PROMISE, "all ten alert emails")
            last_mail = seconds_after(posted, utcnow())
            backlog_sent = service.statuses(backlog)["sent"]
            assert first_sms <= FIRST_ALERT_PROMISE, f"first alert SMS after {first_sms:.1f} s"
            assert backlog_sent < 40, "the backlog was gone before the alerts: no backlog was measured"
        finally:
            service.twilio.slow_down(0)
        service.acknowledge_open_escalations()
        assert len(service.staff_texts()[texts_before:]) == 10 and len(service.staff_mails()[mails_before:]) == 10
        wait_for(lambda: service.settled(backlog), SETTLE_WAIT + 120, "the backlog to finish")
        texts = service.texts_to(backlog.phones.values())
        assert one_text_each(texts) == 0 and len(texts) == 40
        service.report(f"provider at {SLOW_PROVIDER:.0f} s a call, 40 reminders in the pool: 10 crisis texts; first "
                       f"alert SMS after {first_sms:.1f} s, all 10 SMS within {last_sms:.0f} s, all 10 emails within "
                       f"{last_mail:.0f} s (first email: {'with the first SMS' if first_mail is None else first_mail}); "
                       f"backlog 40 sent 40, duplicates 0")


def test_after_a_two_hour_sms_outage_on_call_gets_one_alert_a_phone_not_every_round_at_once(service):
    """Twilio refuses every text for two hours while an escalation stays open: a round of
    re-alerts is planned every 15 minutes (`reminders tick --now` stands in for the hours). When
    Twilio is back, the on-call phone gets the latest round's alert, once."""
    with service.logs_on_failure():
        phone = "+16175550299"
        add_patient(service, "outage-1", phone)
        texts_before = len(service.staff_texts())
        service.twilio.outage()
        try:
            assert "988" in signed_text(service, CRISIS, phone).text
            start = utcnow()
            ticks(service, start, *range(15, 121, 15))
            assert service.staff_texts()[texts_before:] == []
        finally:
            service.twilio.recover()
        ticks(service, start, 125, 126)
        after = service.staff_texts()[texts_before:]
        service.acknowledge_open_escalations()
        assert len(after) == 1, f"{len(after)} alert SMS reached the on-call phone after the outage"
        service.report(f"two-hour SMS outage, escalation open: 9 rounds planned; after recovery on-call got "
                       f"{len(after)} SMS (the latest round), duplicates 0")
