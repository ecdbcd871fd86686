"""The deployment clinics run, as real separate processes, checked from outside.

docker-compose.yml (and the README, without Docker) runs `reminders web`, `celery -A worker
worker` and `celery -A worker beat` on PostgreSQL and Redis. Here the same three commands run
as subprocesses with the environment a clinic sets, against a Redis server of the module's own
(append-only, as compose runs it), a PostgreSQL schema of its own, the fake Twilio REST server
and an SMTP server. Data goes in through the JSON API; what patients and staff got is counted
where it arrives (the fake Twilio server, the SMTP server) and in the database.

Beat runs a pass every PASS_SECONDS of real time (a few seconds here, a minute in a clinic), and
the visits loaded here start 23 h 30 min ahead: their 24 h reminder is due at once. Quiet hours
are set to 00:00-00:00 (none at all).

`pytest -s tests/test_processes.py` prints the counts of each scenario.
"""
from __future__ import annotations

import re
import signal
import subprocess
from collections import Counter

import pytest
import requests
from twilio.request_validator import RequestValidator

from tests.fixtures.twoway import Twilio as SignedTwilio
from tests.processes import (BEAT_WAIT, CONCURRENCY, CRISIS_WAIT, PASS_SECONDS, REALERT_WAIT, REFUSED, SETTLE_WAIT,
                             STAFF_EMAIL, STAFF_PHONE, WORKER_COMMAND, Process, command, one_text_each,
                             running_service, signed_text, utcnow, wait_for)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.processes]

STOP_GRACE = 3.0  # `docker stop -t 3`: SIGKILL comes while the paced batch is still in hand
RETRY_FIRST_SECONDS = 8  # SEND_RETRY_FIRST_SECONDS (30 by default): the 429/500 burst is retried after this


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with running_service(tmp_path_factory.mktemp("processes"),
                         SEND_RETRY_FIRST_SECONDS=str(RETRY_FIRST_SECONDS)) as running:
        yield running


# -- the scenarios ---------------------------------------------------------------------------
def test_a_crisis_text_is_answered_with_988_and_reaches_the_on_call_phone_and_email_within_a_minute(service):
    with service.logs_on_failure():
        phone = "+16175550123"
        service.api("POST", "/api/v1/patients", {"external_id": "crisis-1", "first_name": "Robin",
                                                  "phone": phone, "timezone": "America/New_York"})
        # Twilio names the account it calls for: the clinic's own.
        form = {**SignedTwilio.sms_form("i want to end my life", from_=phone), "AccountSid": service.twilio.account_sid}
        signature = RequestValidator(service.twilio.auth_token).compute_signature(
            service.env["PUBLIC_BASE_URL"] + "/twilio/sms", form)
        posted = utcnow()
        answer = requests.post(service.web_url + "/twilio/sms", data=form, timeout=30,
                               headers={"X-Twilio-Signature": signature})
        assert answer.status_code == 200, answer.text
        assert "988" in answer.text and "<Response>" in answer.text

        def staff_text():
            return [m for m in list(service.twilio.messages) if m["to"] == STAFF_PHONE]

        def staff_mail():
            return [m for m in list(service.smtp.messages) if STAFF_EMAIL in m.rcpt_tos]

        texts = wait_for(staff_text, CRISIS_WAIT, "the crisis alert SMS to the on-call phone")
        sms_after = (texts[0]["received_at"] - posted).total_seconds()
        mails = wait_for(staff_mail, CRISIS_WAIT - sms_after, "the crisis alert email to the on-call address")
        mail_after = (utcnow() - posted).total_seconds()
        assert len(texts) == 1 and "end my life" not in texts[0]["body"]  # nothing private on a lock screen
        assert "end my life" in mails[0].message.get_body(("plain", "html")).get_content()

        # A person takes it: re-alerts stop (and later scenarios count only their own texts).
        escalations = service.api("GET", "/api/v1/escalations?status=open")["escalations"]
        assert len(escalations) == 1
        service.api("POST", f"/api/v1/escalations/{escalations[0]['id']}/ack",
                    {"by": "on-call nurse", "note": "called the patient"})
        service.report(f"crisis: answer with 988 in the same request; staff SMS after {sms_after:.1f} s, "
                       f"staff email after {mail_after:.1f} s (sent 1 + 1, duplicates 0)")


def test_after_hours_an_urgent_text_pages_on_call_within_a_minute_and_a_medical_follow_up_pages_again_at_once(
        service):
    with service.logs_on_failure():
        staff_texts = service.staff_texts
        before = len(staff_texts())
        for external_id, phone in (("urgent-1", "+16175550131"), ("chest-1", "+16175550132")):
            service.api("POST", "/api/v1/patients", {"external_id": external_id, "first_name": "Sam",
                                                      "phone": phone, "timezone": "America/New_York"})
        posted = utcnow()
        answer = signed_text(service, "can I take my klonopin tonight?", "+16175550131").text
        assert "paged the on-call nurse, who will call you within about 30 minutes" in answer, answer
        assert "tomorrow" not in answer and "911" in answer
        paged = wait_for(lambda: staff_texts()[before:], CRISIS_WAIT, "the urgent page to the on-call phone")
        urgent_after = (paged[0]["received_at"] - posted).total_seconds()
        assert "needs a nurse now" in paged[0]["body"] and "klonopin" not in paged[0]["body"]

        first = signed_text(service, "my chest really hurts since the infusion", "+16175550132").text
        assert first.index("911") < first.index("988")
        wait_for(lambda: staff_texts()[before + 1:], CRISIS_WAIT, "the emergency page to the on-call phone")
        posted = utcnow()
        follow_up = signed_text(service, "now it's radiating down my left arm", "+16175550132").text
        assert "call 911 now" in follow_up and "alerted them again" in follow_up, follow_up
        again = wait_for(lambda: staff_texts()[before + 2:], REALERT_WAIT, "the re-alert to the on-call phone")
        realert_after = (again[0]["received_at"] - posted).total_seconds()
        assert "medical emergency" in again[0]["body"]
        service.acknowledge_open_escalations()
        service.report(f"after hours: urgent page after {urgent_after:.1f} s; medical follow-up re-alert after "
                       f"{realert_after:.1f} s")


def test_docker_stop_of_the_worker_in_the_middle_of_a_paced_batch_leaves_no_reminder_never_sent(service):
    """`docker stop -t 3`: SIGTERM to the worker's main process, SIGKILL STOP_GRACE later, with sends
    paced at 2 a second so that the batch in hand (10 s) outlasts the grace period. Rows claimed but
    not yet handed to Twilio go back to the schedule; every patient gets the reminder, once."""
    with service.logs_on_failure():
        service.worker.stop()
        mark = len(service.worker.log())
        paced = Process("worker", command(WORKER_COMMAND, concurrency=4), {**service.env, "SMS_PER_SECOND": "2"},
                        service.worker.log_path).start()
        service.worker = paced
        paced.wait_for_log(" ready.", since=mark)
        scenario = service.book_visits("stop", 20, area_code=646)
        wait_for(lambda: service.statuses(scenario)["sent"] >= 2, BEAT_WAIT, "the paced batch to start")
        paced.popen.send_signal(signal.SIGTERM)  # docker stop signals the container's first process only
        try:
            paced.popen.wait(timeout=STOP_GRACE)
            graceful = True
        except subprocess.TimeoutExpired:
            graceful = False
        paced.kill()
        at_stop = service.statuses(scenario)
        mark = len(paced.log())
        service.worker = Process("worker", command(WORKER_COMMAND, concurrency=CONCURRENCY), service.env,
                                 paced.log_path).start()
        # The pass after the sweep's wait (claimed, never handed -> sent now) runs while the new
        # worker starts, as a deploy may have them: a row is claimed by one of them only.
        swept = service.later_pass()
        service.worker.wait_for_log(" ready.", since=mark)
        wait_for(lambda: service.settled(scenario), SETTLE_WAIT, "the reminders to settle")
        rows = service.rows(scenario)
        texts = service.texts_to(scenario.phones.values())
        never = [row for row in rows if texts[row["phone"]] == 0]
        statuses = Counter(row["status"] for row in rows)
        assert never == [], f"{len(never)} reminders never reached Twilio: {statuses}"
        assert one_text_each(texts) == 0
        assert statuses["unknown"] <= 4  # at most a call in hand per process when SIGKILL came
        service.report(f"docker stop (SIGTERM, SIGKILL after {STOP_GRACE:.0f} s, "
                       f"{'exited in time' if graceful else 'killed'}) at {at_stop['sent']} of 20 sent: "
                       f"sent {statuses['sent']}, unknown {statuses['unknown']}, "
                       f"never sent 0, duplicates 0; {swept.get('released_unsent', 0)} released by the sweep")


def test_beat_sends_each_due_patient_one_reminder(service):
    with service.logs_on_failure():
        scenario = service.book_visits("beat", 20, area_code=202)
        loaded = utcnow()
        wait_for(lambda: service.statuses(scenario)["sent"] == 20, BEAT_WAIT,
                 "beat's pass to send the 20 due reminders")
        took = (utcnow() - loaded).total_seconds()
        # The superseded 7-day reminders ride in the same batches: let them finish (as skipped).
        wait_for(lambda: not service.in_flight(scenario), SETTLE_WAIT, "the rest of the batches to finish")
        rows = service.rows(scenario)
        texts = service.texts_to(scenario.phones.values())
        assert len(rows) == 20 and {row["status"] for row in rows} == {"sent"}
        assert service.others_gone_out(scenario) == []
        assert texts == Counter({phone: 1 for phone in scenario.phones.values()})
        service.report(f"beat: 20 due, sent {len(texts)}, duplicates {one_text_each(texts)}, unknown 0, "
                       f"late 0; all within {took:.0f} s of loading (beat's pass is every {PASS_SECONDS} s)")


def test_a_worker_killed_mid_batch_and_started_again_texts_no_patient_twice(service):
    with service.logs_on_failure():
        service.twilio.slow_down(0.15)
        scenario = service.book_visits("kill", 40, area_code=212)
        wait_for(lambda: service.statuses(scenario)["sent"] >= 8, BEAT_WAIT,
                 "beat's pass to start sending the batches of 40")
        service.worker.kill()
        at_kill = service.statuses(scenario)
        held = service.held_outbox_ids()  # what the dead worker had taken and not acknowledged
        assert at_kill["sent"] < 40, f"the kill came after the batches: {at_kill}"

        mark = len(service.worker.log())
        service.start_worker()
        wait_for(lambda: service.settled(scenario), SETTLE_WAIT, "the new worker to empty the queue")
        handed_again = re.findall(r"worker start: handing out (\d+) queued row", service.worker.log()[mark:])
        service.twilio.slow_down(0)
        before_sweep = {row["id"]: row["status"] for row in service.rows(scenario)}
        handed = {row["id"] for row in service.rows(scenario) if row["handed_at"] is not None}
        cut = {i for i, status in before_sweep.items() if status == "sending" and i in handed}
        unhanded = {i for i, status in before_sweep.items() if status == "sending" and i not in handed}
        stranded = {i for i, status in before_sweep.items() if status == "queued"}
        assert set(before_sweep.values()) <= {"sent", "sending", "queued"}, Counter(before_sweep.values())
        assert cut | unhanded | stranded <= held, "only a send the dead worker held may be unfinished"

        service.later_pass()
        rows = service.rows(scenario)
        statuses = Counter(row["status"] for row in rows)
        texts = service.texts_to(scenario.phones.values())
        unknown = [row for row in rows if row["status"] == "unknown"]
        late = [row for row in rows if row["id"] in stranded | unhanded and row["status"] == "sent"]
        assert len(rows) == 40 and service.others_gone_out(scenario) == []
        assert one_text_each(texts) == 0, f"patients texted twice: {[p for p, c in texts.items() if c > 1]}"
        assert {row["id"] for row in unknown} == cut  # a call begun: staff check these; never resent blindly
        assert statuses == Counter({"sent": 40 - len(cut), "unknown": len(cut)}), statuses
        sent_phones = {row["phone"] for row in rows if row["status"] == "sent"}
        assert all(texts[phone] == 1 for phone in sent_phones)
        reached_anyway = sum(texts[row["phone"]] for row in unknown)
        service.report(
            f"worker SIGKILL: 40 due, killed at {at_kill['sent']} sent; sent {statuses['sent']}, duplicates 0, "
            f"unknown {len(cut)} (of which {reached_anyway} did reach the patient), late {len(late)} "
            f"(claimed but never handed to Twilio, or lost in the queue: sent by the sweep's pass); the dead "
            f"worker held {len(held)} rows unacknowledged, "
            f"the new worker handed out {sum(map(int, handed_again))} queued rows (of any rule) again at start")


def test_redis_stopped_and_started_again_mid_run_loses_and_duplicates_nothing(service):
    with service.logs_on_failure():
        service.twilio.slow_down(0.1)
        scenario = service.book_visits("redis", 80, area_code=312)
        wait_for(lambda: service.statuses(scenario)["sent"] >= 15, BEAT_WAIT,
                 "beat's pass to start sending the batch of 80")
        mark = len(service.worker.log())
        service.redis_server.stop()
        at_stop = service.statuses(scenario)
        assert at_stop["sent"] < 80, f"Redis stopped after the batch: {at_stop}"
        # The worker saw it go, and tried to reconnect while it was away.
        service.worker.wait_for_log("Connection to broker lost", timeout=30, since=mark)
        service.worker.wait_for_log("Cannot connect to redis", timeout=30, since=mark)
        service.redis_server.start()

        wait_for(lambda: service.settled(scenario), SETTLE_WAIT + 30, "the worker to empty the queue again")
        service.twilio.slow_down(0)
        before = {row["id"]: row["status"] for row in service.rows(scenario)}
        stranded = {i for i, status in before.items() if status == "queued"}
        on_time = sum(1 for status in before.values() if status == "sent")
        if set(before.values()) != {"sent"}:
            service.later_pass()
        rows = service.rows(scenario)
        statuses = Counter(row["status"] for row in rows)
        texts = service.texts_to(scenario.phones.values())
        assert len(rows) == 80 and service.others_gone_out(scenario) == []
        assert one_text_each(texts) == 0, f"patients texted twice: {[p for p, c in texts.items() if c > 1]}"
        assert statuses == Counter({"sent": 80}), statuses
        assert texts == Counter({phone: 1 for phone in scenario.phones.values()})
        service.report(
            f"Redis restart: 80 due, stopped at {at_stop['sent']} sent; sent 80 ({on_time} on time), "
            f"duplicates 0, unknown {statuses['unknown']}, late {len(stranded)} (went with the 10-minute requeue)")


def test_a_burst_of_429_and_500_from_twilio_is_retried_with_backoff_and_sends_each_text_once(service):
    """A short burst, below the circuit breaker's threshold: each refused text is retried on its own
    after its backoff. (A longer outage pauses the channel instead; tests/test_provider_outage.py
    drives that with injected time.)"""
    with service.logs_on_failure():
        service.twilio.fail_next(status=429, code=20429, message="Too Many Requests", times=REFUSED // 2)
        service.twilio.fail_next(status=500, code=20500, message="Internal server error", times=REFUSED // 2)
        scenario = service.book_visits("burst", 20, area_code=415)
        phones = set(scenario.phones.values())
        wait_for(lambda: service.statuses(scenario)["sent"] == 20, BEAT_WAIT + 60,
                 "the 20 reminders to go after the retries")
        rows = service.rows(scenario)
        texts = service.texts_to(phones)
        tries = [r for r in service.twilio.requests if r["form"].get("To") in phones]
        assert len(tries) == 20 + REFUSED  # each refused one tried again, once
        assert texts == Counter({phone: 1 for phone in phones})
        assert len(rows) == 20 and all(row["status"] == "sent" for row in rows)
        assert sorted(row["attempts"] for row in rows) == [1] * (20 - REFUSED) + [2] * REFUSED
        assert service.others_gone_out(scenario) == []
        gaps = []
        for phone in phones:
            times = [r["received_at"] for r in tries if r["form"]["To"] == phone]
            if len(times) == 2:
                gaps.append((times[1] - times[0]).total_seconds())
        # Backoff: the first retry is due RETRY_FIRST_SECONDS (plus jitter) after the failure, on the
        # clock of the send that failed, which read it a moment before its request reached Twilio.
        assert min(gaps) >= RETRY_FIRST_SECONDS - 1

        # Nothing an earlier scenario sent went again in the passes since.
        for earlier in service.scenarios.values():
            again = service.texts_to(earlier.phones.values())
            assert one_text_each(again) == 0, f"{earlier.name}: a patient was texted twice"
        service.report(f"429/500 burst: 20 due, first {REFUSED} requests refused (429 and 500); sent 20, "
                       f"duplicates 0, unknown 0, late 0; each retried once after {min(gaps):.0f}-{max(gaps):.0f} s")
