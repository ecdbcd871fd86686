"""Issue 25's fault suite, the sending part: the deployment's three processes (tests/processes.py)
through worker kills, a provider that hangs past the client's timeout, database sessions ended
mid-pass, and visits of one patient booked at the same instant.

Counted from outside, in the style of tests/test_processes.py: what reached the fake Twilio server
and where each due reminder ended. "Unknown" is a reminder whose provider call had begun
(`handed_at`) when the worker lost track of it: shown to staff, never sent again; a worker killed
between that record and the request leaving it can leave one that did not reach the patient, which
the counts show. "Never sent" is a reminder whose patient got nothing and that nobody is told
about: none may be. Beat still runs its pass every PASS_SECONDS; scenarios that need not wait for it
send beat's task to the broker themselves.

`pytest -s tests/faults/test_sending_faults.py` prints each scenario's counts.
"""
from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import POSTGRES_URL
from tests.processes import (BEAT_WAIT, CONCURRENCY, DUE_RULE, PASS_SECONDS, SETTLE_WAIT, Scenario,
                             one_text_each, running_service, utcnow, wait_for)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.processes]

# libpq names every database session of the service's processes so (PGAPPNAME): the sessions this
# module may end, and none of another test's on the same server.
APP_NAME = f"sending-faults-{uuid.uuid4().hex[:8]}"
RUN_PASS_TASK = "reminders.tasks.run_pass"
# The breaker, set for this service: failures in a row that pause a channel, and the longest pause
# (PROVIDER_FAILURE_THRESHOLD, PROVIDER_PROBE_MAX_SECONDS; 5 and 300 s by default). Each failure
# here is a request held past the Twilio client's timeout, and the first pause would be 30 s.
FAILURE_THRESHOLD = 3
PROBE_MAX_SECONDS = 10
PAUSE_FLOOR = 0.7 * PROBE_MAX_SECONDS  # a batch that went on would end the pause at once
CLIENT_TIMEOUT_SECONDS = 5  # TWILIO_TIMEOUT_SECONDS (10 by default): how long a hung request is waited for
HUNG_DUE = 40  # patients whose reminder is due as Twilio hangs: batches for both pool processes
CUT_SECONDS = 8.0  # how long the database sessions are ended while the batches go (4 s of sends)
PASS_ENDED = re.compile(r"reminders\.tasks\.run_pass\[[^\]]+\] (succeeded|raised)")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with running_service(tmp_path_factory.mktemp("sending-faults"), PGAPPNAME=APP_NAME,
                         PROVIDER_FAILURE_THRESHOLD=str(FAILURE_THRESHOLD),
                         PROVIDER_PROBE_MAX_SECONDS=str(PROBE_MAX_SECONDS),
                         TWILIO_TIMEOUT_SECONDS=str(CLIENT_TIMEOUT_SECONDS)) as running:
        yield running


# -- what each scenario counts ---------------------------------------------------------------
@dataclass
class Outcome:
    due: int
    sent: int
    duplicates: int
    unknown: int
    unknown_reached: int
    never_sent: int  # nothing reached the patient, and the row does not say so (not unknown)
    statuses: Counter

    def line(self) -> str:
        return (f"{self.due} due: sent {self.sent}, duplicates {self.duplicates}, unknown {self.unknown} "
                f"(of which {self.unknown_reached} did reach the patient), never sent {self.never_sent}")


def outcome(service, scenario: Scenario) -> Outcome:
    rows = service.rows(scenario)
    texts = service.texts_to(scenario.phones.values())
    unknown = [row for row in rows if row["status"] == "unknown"]
    return Outcome(
        due=len(rows), sent=sum(1 for row in rows if row["status"] == "sent"), duplicates=one_text_each(texts),
        unknown=len(unknown), unknown_reached=sum(1 for row in unknown if texts[row["phone"]]),
        never_sent=sum(1 for row in rows if texts[row["phone"]] == 0 and row["status"] != "unknown"),
        statuses=Counter(row["status"] for row in rows))


def assert_each_patient_reached_once(service, scenario: Scenario, result: Outcome) -> None:
    assert result.due == len(scenario.phones)
    assert result.never_sent == 0, f"{result.never_sent} reminders never reached Twilio: {result.statuses}"
    assert result.duplicates == 0, "a patient was texted twice"
    assert set(result.statuses) <= {"sent", "unknown"}, result.statuses
    assert service.others_gone_out(scenario) == []
    unhanded_unknown = [row["id"] for row in service.rows(scenario) if row["status"] == "unknown"
                        and row["handed_at"] is None]
    assert unhanded_unknown == [], "a row whose provider call never began was shown as unknown"


# -- driving the service ---------------------------------------------------------------------
def ask_for_pass(service) -> None:
    """Send beat's task to the broker now, as beat does every minute."""
    from celery import Celery

    app = Celery("faults", broker=service.redis_server.url, set_as_current=False)
    try:
        app.send_task(RUN_PASS_TASK)
    finally:
        app.close()


def sent_count(service, scenario: Scenario) -> int:
    return service.statuses(scenario)["sent"]


def quiet(service, scenario: Scenario) -> bool:
    """Nothing of the scenario is due to be handed out now and the worker holds nothing (asked
    twice). Rows a worker lost track of are left to the sweeps of `service.later_pass()`."""
    now, rows = utcnow(), due_rows(service, scenario)
    if len(rows) < len(scenario.phones):
        return False  # not all planned yet
    if any(row["status"] == "planned" and row["due_at"] <= now for row in rows):
        return False
    return service.worker_idle() and service.worker_idle()


def due_rows(service, scenario: Scenario) -> list[dict]:
    with service.engine.connect() as connection:
        found = connection.execute(text(
            "SELECT o.id, o.status, o.due_at FROM outbox o JOIN patients p ON p.id = o.patient_id "
            "WHERE p.external_id LIKE :prefix AND o.rule = :rule"), {"prefix": f"{scenario.name}-%", "rule": DUE_RULE})
        return [dict(row._mapping) for row in found]


def sms_breaker_open(service) -> bool:
    with service.engine.connect() as connection:
        return connection.execute(text(
            "SELECT open_until IS NOT NULL FROM provider_health WHERE channel = 'sms'")).scalar() or False


class SessionCutter:
    """Ends every database session of this module's service (and no other: they carry its
    application_name) every `every` seconds, in a thread, until the block ends."""

    def __init__(self, every: float):
        self.every, self.rounds, self.ended = every, 0, 0
        self._admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="session-cutter", daemon=True)

    def end_sessions(self) -> int:
        with self._admin.connect() as connection:
            ended = connection.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :name AND pid <> pg_backend_pid()"), {"name": APP_NAME}).all()
        return sum(1 for (done,) in ended if done)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.ended += self.end_sessions()
            self.rounds += 1
            self._stop.wait(self.every)

    def __enter__(self) -> "SessionCutter":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._admin.dispose()


def book_due(service, name: str, count: int, area_code: int) -> Scenario:
    """`count` patients, each with a maintenance visit whose 24 h reminder is due now."""
    return service.book_visits(name, count, area_code)


def book_same_time(service, name: str, count: int, phone: str) -> Scenario:
    """One patient with `count` maintenance visits starting at the same instant (a duplicate
    booking, an import run twice under new ids), each with its 24 h reminder due now."""
    scenario = service.welcomed_patients(name, {f"{name}-0": phone})
    service.book_maintenance([(f"{name}-0", f"{name}-visit-{i}") for i in range(count)])
    return scenario


def still_to_plan(service, name: str) -> int:
    with service.engine.connect() as connection:
        return connection.execute(text(
            "SELECT count(*) FROM appointments WHERE external_id LIKE :prefix AND needs_planning"),
            {"prefix": f"{name}-visit-%"}).scalar()


# -- the scenarios ---------------------------------------------------------------------------
def test_three_sigkills_of_the_worker_mid_batch_lose_no_reminder_and_send_none_twice(service):
    """The worker killed outright three times in a row while 150 reminders go, started again each
    time. Rows it had claimed but not handed to Twilio go back to the schedule; a row becomes
    unknown only when its own provider call had begun."""
    with service.logs_on_failure():
        service.twilio.slow_down(0.15)
        try:
            scenario = book_due(service, "kill3", 150, area_code=213)
            ask_for_pass(service)
            killed_at = []
            for target in (20, 55, 90):
                wait_for(lambda target=target: sent_count(service, scenario) >= target, BEAT_WAIT,
                         f"the batch to reach {target} sent")
                service.worker.kill()
                killed_at.append(sent_count(service, scenario))
                assert killed_at[-1] < 150, f"the kill came after the batch: {killed_at}"
                service.start_worker()
            wait_for(lambda: service.settled(scenario), SETTLE_WAIT, "the worker to empty the queue")
        finally:
            service.twilio.slow_down(0)
        before_sweep = service.rows(scenario)
        cut = {row["id"] for row in before_sweep if row["status"] == "sending" and row["handed_at"] is not None}
        unhanded = {row["id"] for row in before_sweep if row["status"] == "sending" and row["handed_at"] is None}

        swept = service.later_pass()
        result = outcome(service, scenario)
        assert_each_patient_reached_once(service, scenario, result)
        assert {row["id"] for row in service.rows(scenario) if row["status"] == "unknown"} == cut
        assert result.unknown <= 3 * CONCURRENCY  # at most a call in hand per child at each kill
        service.report(f"three worker SIGKILLs (at {', '.join(map(str, killed_at))} sent), started again each "
                       f"time: {result.line()}; {len(unhanded)} claimed but never handed to Twilio went back "
                       f"({swept.get('released_unsent', 0)} released by the sweep's pass)")


def test_twilio_hanging_past_the_client_timeout_opens_the_breaker_stops_the_batch_and_loses_nothing(service):
    """Twilio takes the next requests and answers none of them within the client's timeout (a
    ReadTimeout: the text may have gone). Those rows are unknown, for staff; the failures open the
    breaker, the batches in hand stop and put their rows back, and those go after the probe."""
    hung = FAILURE_THRESHOLD + CONCURRENCY - 1  # enough to open it, with a call in flight in each child
    with service.logs_on_failure():
        service.twilio.hang_next(times=hung, seconds=CLIENT_TIMEOUT_SECONDS + 5, accept=True)
        scenario = book_due(service, "hang", HUNG_DUE, area_code=718)
        phones = set(scenario.phones.values())
        loaded = utcnow()
        ask_for_pass(service)
        wait_for(lambda: sms_breaker_open(service), BEAT_WAIT, "the failures to open the SMS breaker", step=0.1)
        opened = utcnow()
        wait_for(lambda: not sms_breaker_open(service), BEAT_WAIT, "the probe to close the SMS breaker")
        wait_for(lambda: quiet(service, scenario) and sent_count(service, scenario) + service.statuses(
            scenario)["unknown"] == HUNG_DUE, SETTLE_WAIT, "the held reminders to go after the pause")
        took = (utcnow() - loaded).total_seconds()

        tries = [r for r in list(service.twilio.requests) if r["form"].get("To") in phones]
        hung_phones = {r["form"]["To"] for r in tries if r["hung"]}
        # The first request once the breaker was open: the probe, unless a batch went on meanwhile.
        probe = min((r for r in tries if r["received_at"] > opened and not r["hung"]), key=lambda r: r["received_at"])
        quiet_for = (probe["received_at"] - opened).total_seconds()
        after = [r for r in tries if r["received_at"] > probe["received_at"]]
        result = outcome(service, scenario)
        assert_each_patient_reached_once(service, scenario, result)
        assert len(hung_phones) == hung and len(tries) == HUNG_DUE  # each row tried once: no unknown resent
        unknown_phones = {row["phone"] for row in service.rows(scenario) if row["status"] == "unknown"}
        assert unknown_phones <= hung_phones and result.unknown <= hung
        assert quiet_for >= PAUSE_FLOOR, f"Twilio was asked again {quiet_for:.1f} s after the breaker opened"
        assert after, "nothing waited for the provider to answer again"
        service.report(f"Twilio hangs past the client's {CLIENT_TIMEOUT_SECONDS} s timeout for {hung} requests: "
                       f"{result.line()}; once the breaker opened nothing was asked of Twilio for {quiet_for:.0f} s, "
                       f"then the probe went and {len(after)} held reminders after it; all settled {took:.0f} s "
                       f"after loading")


def test_database_sessions_ended_mid_pass_lose_no_reminder_and_send_none_twice(service):
    """Every database session of the service's processes ended (pg_terminate_backend) four times a
    second, first while beat's pass plans and hands out 40 reminders, then while they are sent:
    pools find their connections dead, statements fail in the pass and mid-batch."""
    with service.logs_on_failure():
        mark = len(service.worker.log())
        service.twilio.slow_down(0.2)
        try:
            scenario = book_due(service, "pgcut", 40, area_code=305)
            with SessionCutter(every=0.25) as in_the_pass:
                ask_for_pass(service)
                wait_for(lambda: PASS_ENDED.search(service.worker.log()[mark:]), BEAT_WAIT, "the pass to end")
            ask_for_pass(service)  # rather than wait for beat's next minute
            wait_for(lambda: sent_count(service, scenario) >= 5, BEAT_WAIT, "the batches to start")
            with SessionCutter(every=0.25) as in_the_batches:
                deadline = time.monotonic() + CUT_SECONDS
                wait_for(lambda: time.monotonic() >= deadline or sent_count(service, scenario) >= 35,
                         CUT_SECONDS + 30, "the sessions to be cut while the batches go")
            wait_for(lambda: quiet(service, scenario), SETTLE_WAIT, "the worker to go quiet")
        finally:
            service.twilio.slow_down(0)
        on_their_own = sent_count(service, scenario)
        log = service.worker.log()[mark:]
        failed = sum(1 for line in log.splitlines()
                     if "OperationalError" in line and (" ERROR " in line or " WARNING " in line))
        passes_ended = sum(1 for ended in PASS_ENDED.finditer(log) if ended.group(1) == "raised")
        swept = service.later_pass()
        result = outcome(service, scenario)
        assert in_the_batches.ended > 0, "no session of the service was found to end"
        assert_each_patient_reached_once(service, scenario, result)
        service.report(f"database sessions ended ({in_the_pass.ended} in the pass, {in_the_batches.ended} while "
                       f"sending; {failed} database errors logged by the worker, {passes_ended} pass(es) ended by "
                       f"one): {result.line()}; {on_their_own} sent before the sweep's pass, "
                       f"{swept.get('released_unsent', 0)} released by it")


def test_same_time_visits_of_one_patient_do_not_hold_up_everyone_elses_reminders(service):
    """Eight visits of one patient and twelve of another at the same instant, and 20 other patients
    due now: beat's own pass (not one asked for) returns and the others' reminders go within its
    window."""
    with service.logs_on_failure():
        mark = len(service.worker.log())
        eight = book_same_time(service, "same8", 8, "+14045550108")
        twelve = book_same_time(service, "same12", 12, "+14045550112")
        others = book_due(service, "others", 20, area_code=404)
        loaded = utcnow()
        wait_for(lambda: sent_count(service, others) == 20, BEAT_WAIT, "the other patients' 20 reminders")
        took = (utcnow() - loaded).total_seconds()
        wait_for(lambda: still_to_plan(service, "same8") + still_to_plan(service, "same12") == 0, BEAT_WAIT,
                 "the same-time visits to be planned")
        wait_for(lambda: quiet(service, others), SETTLE_WAIT, "the worker to go quiet")
        passes = [float(s) for s in re.findall(r"reminders\.tasks\.run_pass\[[^\]]+\] succeeded in ([\d.]+)s",
                                               service.worker.log()[mark:])]
        result = outcome(service, others)
        assert_each_patient_reached_once(service, others, result)
        assert passes and max(passes) < 60, f"a pass did not return within beat's minute: {passes}"
        same_time_texts = service.texts_to([*eight.phones.values(), *twelve.phones.values()])
        service.report(f"8 and 12 visits of two patients at one instant, 20 others due: the others' {result.line()}, "
                       f"all within {took:.0f} s of loading (beat's pass is every {PASS_SECONDS} s); {len(passes)} "
                       f"passes returned, the longest in {max(passes):.1f} s; the two patients got "
                       f"{same_time_texts['+14045550108']} and {same_time_texts['+14045550112']} texts")
