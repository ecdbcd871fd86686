"""The clinic's deployment as real separate processes, for tests that check it from outside.

docker-compose.yml (and the README, without Docker) runs `reminders web`, `celery -A worker
worker` and `celery -A worker beat` on PostgreSQL and Redis. `running_service` runs the same
three commands as subprocesses with the environment a clinic sets, against a Redis server of its
own (append-only, as compose runs it), a PostgreSQL schema of its own, the fake Twilio REST server
and an SMTP server. tests/test_processes.py and the fault suite (tests/faults/) use it.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo
from pathlib import Path

import pytest
import redis
import requests
from sqlalchemy import create_engine, text
from twilio.request_validator import RequestValidator

from tests.conftest import POSTGRES_URL, SETTING_NAMES
from tests.fakes.smtp_server import FakeSMTP, free_port
from tests.fakes.twilio_server import FakeTwilio
from tests.fixtures.channels import MAIL_FROM, TWILIO_TEST_FROM
from tests.fixtures.twoway import Twilio as SignedTwilio

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
# The commands docker-compose.yml runs (tests/test_deployment.py holds the two together);
# the values in braces are the ones a host chooses.
WEB_COMMAND = ("reminders", "web", "--host", "{host}", "--port", "{port}")
WORKER_COMMAND = ("celery", "-A", "worker", "worker", "--loglevel", "INFO", "--concurrency", "{concurrency}")
BEAT_COMMAND = ("celery", "-A", "worker", "beat", "--loglevel", "INFO", "--schedule", "{schedule}")
# compose's redis runs with --appendonly yes: queued tasks survive a restart.
REDIS_COMMAND = ("redis-server", "--port", "{port}", "--bind", "{host}", "--save", "", "--appendonly", "yes",
                 "--dir", "{dir}")
CONCURRENCY = 2  # the machine's cores
SEND_TASKS = ("reminders.tasks.send_batch",)

STAFF_PHONE = "+12025550101"
STAFF_EMAIL = "oncall@clinic.test"
VISIT_AHEAD = timedelta(hours=23, minutes=30)  # the 24 h reminder is due now
DUE_RULE = "maintenance_24h"  # (the 7-day one is overdue too: only the latest goes)
LATER_PASS = timedelta(minutes=11)  # past the dispatcher's 10-minute requeue and unknown sweep

START_WAIT = 60.0  # a process is up
# Beat starts a pass every PASS_SECONDS (a minute for clinics): the processes here pass every few
# seconds, so what is due goes within seconds, as a clinic's goes within a minute.
PASS_SECONDS = 2
BEAT_WAIT = 60.0  # generous: beat's next pass is PASS_SECONDS away; the pass and the sends take more
CRISIS_WAIT = 60.0  # the promise to staff
REALERT_WAIT = 20.0  # a follow-up that adds something pages again at once, not at the next 15-minute round
_CLINIC_TODAY = datetime.now(ZoneInfo("America/New_York")).weekday()
CLOSED_TODAY_AND_TOMORROW = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(_CLINIC_TODAY + 3) % 7]
SETTLE_WAIT = 120.0  # the worker empties the queue after a kill or a Redis restart
STOP_WAIT = 20.0
# Requests the fake Twilio refuses in the burst: fewer than PROVIDER_FAILURE_THRESHOLD (5) in a row.
REFUSED = 4


# -- waiting ---------------------------------------------------------------------------------
def wait_for(check, timeout: float, what: str, step: float = 0.25):
    """Poll `check` until it returns something truthy, for at most `timeout` seconds."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        pause.wait(step)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# -- processes -------------------------------------------------------------------------------
def executable(name: str) -> str:
    """The console script installed beside this Python, else the one on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def command(template: tuple[str, ...], **values) -> list[str]:
    argv = [part.format(**values) for part in template]
    return [executable(argv[0]), *argv[1:]]


class Process:
    """One subprocess in a process group of its own, its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path):
        self.name, self.argv, self.env, self.log_path = name, argv, env, log_path
        self.popen: subprocess.Popen | None = None

    def start(self) -> "Process":
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== {' '.join(self.argv)} ({utcnow():%H:%M:%S}) =====\n".encode())
            log.flush()
            self.popen = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal_group(self, sig: int) -> None:
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> None:
        """SIGKILL to the whole group (a container killed, a machine gone): no cleanup at all."""
        self.signal_group(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(timeout=STOP_WAIT)

    def stop(self) -> None:
        """SIGTERM to the group; SIGKILL after STOP_WAIT; the group is gone afterwards."""
        if self.popen is None:
            return
        if self.running:
            self.signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_WAIT)
            except subprocess.TimeoutExpired:
                pass
        self.signal_group(signal.SIGKILL)  # children left behind, if any
        try:
            self.popen.wait(timeout=STOP_WAIT)
        except subprocess.TimeoutExpired:
            pass

    def wait_for_log(self, needle: str, timeout: float = START_WAIT, since: int = 0) -> None:
        def seen():
            if not self.running:
                raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{self.log()[-3000:]}")
            return needle in self.log()[since:]

        wait_for(seen, timeout, f"{self.name} to log {needle!r}")


class RedisServer(Process):
    """A private redis-server, append-only like compose's, that can be stopped and started again."""

    def __init__(self, base: Path):
        self.port = free_port()
        data = base / "redis"
        data.mkdir()
        argv = command(REDIS_COMMAND, port=self.port, host=HOST, dir=data)
        super().__init__("redis-server", argv, dict(os.environ), base / "redis.log")

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_timeout=5)

    def start(self) -> "RedisServer":
        super().start()
        client = self.client()

        def answers():
            if not self.running:
                raise AssertionError(f"redis-server exited:\n{self.log()[-2000:]}")
            try:
                return client.ping()
            except redis.ConnectionError:
                return False

        try:
            wait_for(answers, START_WAIT, "redis-server to answer PING")
        finally:
            client.close()
        return self

    def stop(self) -> None:
        """A clean stop (SIGTERM): Redis writes its append-only file and exits."""
        if self.running:
            self.signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_WAIT)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.popen.wait(timeout=STOP_WAIT)


# -- the service -----------------------------------------------------------------------------
@dataclass
class Scenario:
    name: str
    phones: dict[str, str] = field(default_factory=dict)  # patient external_id -> phone


@dataclass
class Service:
    base: Path
    env: dict[str, str]
    web_url: str
    token: str
    database_url: str
    twilio: FakeTwilio
    smtp: FakeSMTP
    redis_server: RedisServer
    web: Process
    worker: Process
    beat: Process
    engine: object = None
    scenarios: dict[str, Scenario] = field(default_factory=dict)
    results: list[str] = field(default_factory=list)

    # what a clinic's other systems do -----------------------------------------------------
    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        response = requests.request(method, self.web_url + path, json=body, timeout=30,
                                    headers={"Authorization": f"Bearer {self.token}"})
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else {}

    def book_visits(self, name: str, count: int, area_code: int) -> Scenario:
        """`count` patients, each with a maintenance visit whose 24 h reminder is due now."""
        scenario = self.welcomed_patients(name, {f"{name}-{i}": f"+1{area_code}555{i:04d}" for i in range(count)})
        self.book_maintenance([(patient, f"{name}-visit-{i}") for i, patient in enumerate(scenario.phones)])
        return scenario

    def welcomed_patients(self, name: str, phones: dict[str, str]) -> Scenario:
        """Patients (external id -> phone) who had their welcome text already: these scenarios count
        reminders. They are marked welcomed before any visit is booked, so that a pass coming
        meanwhile (beat's minute, a worker's start) plans no welcome for them."""
        scenario = self.scenarios[name] = Scenario(name, dict(phones))
        with requests.Session() as http:
            http.headers["Authorization"] = f"Bearer {self.token}"
            for i, (external_id, phone) in enumerate(phones.items()):
                response = http.post(self.web_url + "/api/v1/patients", timeout=30, json={
                    "external_id": external_id, "first_name": f"Pat{i}", "last_name": name.title(), "phone": phone,
                    "timezone": "America/New_York", "preferred_channel": "sms"})
                assert response.status_code == 201, response.text
        with self.engine.begin() as connection:
            connection.execute(text("UPDATE patients SET welcomed_at = :now WHERE external_id LIKE :prefix"),
                               {"now": utcnow(), "prefix": f"{name}-%"})
        return scenario

    def book_maintenance(self, visits: list[tuple[str, str]]) -> None:
        """(patient, visit) external ids: maintenance visits starting VISIT_AHEAD from now."""
        starts = (utcnow() + VISIT_AHEAD).replace(microsecond=0).isoformat()
        with requests.Session() as http:
            http.headers["Authorization"] = f"Bearer {self.token}"
            for patient, visit in visits:
                response = http.post(self.web_url + "/api/v1/appointments", timeout=30, json={
                    "external_id": visit, "patient_external_id": patient, "kind": "maintenance",
                    "starts_at": starts, "location": "Suite 200"})
                assert response.status_code == 201, response.text

    def later_pass(self) -> dict:
        """`reminders tick` eleven minutes from now: the pass that requeues a hand-off lost over
        ten minutes ago and marks sends cut off mid-way as unknown (the dispatcher's sweeps)."""
        at = (utcnow() + LATER_PASS).isoformat()
        done = subprocess.run([executable("reminders"), "tick", "--now", at], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    # what is seen from outside -------------------------------------------------------------
    def texts_to(self, phones) -> Counter[str]:
        wanted = set(phones)
        return Counter(m["to"] for m in list(self.twilio.messages) if m["to"] in wanted)

    def rows(self, scenario: Scenario, due: bool = True) -> list[dict]:
        """The scenario's due reminders (one per patient); with due=False, every other row
        (the superseded 7-day reminder, follow-ups planned for later)."""
        with self.engine.connect() as connection:
            found = connection.execute(text(
                "SELECT o.id, o.status, o.rule, o.channel, o.attempts, o.sent_at, o.handed_at, p.external_id, p.phone "
                "FROM outbox o JOIN patients p ON p.id = o.patient_id "
                "WHERE p.external_id LIKE :prefix AND (o.rule = :rule) = :due ORDER BY o.id"),
                {"prefix": f"{scenario.name}-%", "rule": DUE_RULE, "due": due})
            return [dict(row._mapping) for row in found]

    def in_flight(self, scenario: Scenario) -> list[dict]:
        """The scenario's rows still on their way through a worker (queued or being sent)."""
        return [row for row in self.rows(scenario) + self.rows(scenario, due=False)
                if row["status"] in ("queued", "sending")]

    def others_gone_out(self, scenario: Scenario) -> list[dict]:
        """Rows other than the due reminder that went (or started to go) out: none should."""
        return [row for row in self.rows(scenario, due=False)
                if row["status"] in ("queued", "sending", "sent", "unknown")]

    def statuses(self, scenario: Scenario) -> Counter[str]:
        return Counter(row["status"] for row in self.rows(scenario))

    def queue_length(self) -> int:
        client = self.redis_server.client()
        try:
            return sum(client.llen(key) for key in ("celery", *(f"celery\x06\x16{p}" for p in (3, 6, 9))))
        finally:
            client.close()

    def held_outbox_ids(self) -> set[int]:
        """Outbox ids of send tasks delivered to a worker and never acknowledged (Redis `unacked`)."""
        client = self.redis_server.client()
        try:
            held = set()
            for raw in client.hvals("unacked"):
                message = json.loads(raw)[0]
                if message.get("headers", {}).get("task") not in SEND_TASKS:
                    continue
                body = message["body"]
                if message.get("properties", {}).get("body_encoding") == "base64":
                    body = base64.b64decode(body)
                ids = json.loads(body)[0][0]  # args[0]: one id, or a batch of ids
                held.update(int(i) for i in (ids if isinstance(ids, list) else [ids]))
            return held
        finally:
            client.close()

    def worker_idle(self) -> bool:
        """The queue is empty and the worker answers that it runs and holds nothing."""
        from celery import Celery

        app = Celery("probe", broker=self.redis_server.url, set_as_current=False)
        try:
            inspect = app.control.inspect(timeout=2.0, limit=1)  # one worker: no need to wait longer
            active, reserved = inspect.active(), inspect.reserved()
        except Exception:  # Redis restarting
            return False
        finally:
            app.close()
        if not active or not reserved:  # no answer yet
            return False
        return not any(active.values()) and not any(reserved.values()) and self.queue_length() == 0

    def settled(self, scenario: Scenario) -> bool:
        """Every due row was handed to a worker, and nothing is in flight any more (asked twice)."""
        if any(row["status"] == "planned" for row in self.rows(scenario)):
            return False
        return self.worker_idle() and self.worker_idle()

    def staff_texts(self) -> list[dict]:
        return [m for m in list(self.twilio.messages) if m["to"] == STAFF_PHONE]

    def staff_mails(self) -> list:
        return [m for m in list(self.smtp.messages) if STAFF_EMAIL in m.rcpt_tos]

    def acknowledge_open_escalations(self) -> None:
        """A person takes every open escalation: re-alerts stop, and later scenarios count only their own texts."""
        for escalation in self.api("GET", "/api/v1/escalations?status=open")["escalations"]:
            self.api("POST", f"/api/v1/escalations/{escalation['id']}/ack", {"by": "on-call nurse", "note": "called"})

    def start_worker(self) -> Process:
        mark = len(self.worker.log())
        self.worker = Process("worker", self.worker.argv, self.env, self.worker.log_path).start()
        self.worker.wait_for_log(" ready.", since=mark)
        return self.worker

    def logs(self) -> str:
        parts = []
        for process in (self.web, self.worker, self.beat, self.redis_server):
            parts.append(f"----- {process.name} ({process.log_path.name}) -----\n{process.log()[-20000:]}")
        return "\n".join(parts)

    def report(self, line: str) -> None:
        self.results.append(line)
        print(f"\n[processes] {line}", flush=True)

    @contextmanager
    def logs_on_failure(self):
        try:
            yield
        except BaseException:
            print(self.logs())
            raise


@contextmanager
def postgres_schema():
    """A PostgreSQL schema of the module's own, dropped afterwards (as conftest's postgres_url)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def one_text_templates(copy: Path) -> Path:
    """The shipped templates with each text cut to its first text (what comes after a `---` line
    goes as a following text: reminders.rendering.text_parts), for tests that count texts."""
    if not copy.exists():
        shutil.copytree(ROOT / "templates", copy)
        for template in copy.rglob("*.sms.j2"):
            template.write_text(template.read_text().split("\n---\n")[0] + "\n")
    return copy


def clinic_environment(base: Path, database_url: str, redis_url: str, web_url: str,
                       twilio: FakeTwilio, smtp: FakeSMTP) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTING_NAMES}
    env.update({
        "PYTHONPATH": str(ROOT),  # the code under test, not an installed copy
        "PYTHONUNBUFFERED": "1",
        "REMINDERS_DATA_DIR": str(base / "data"),
        "SECRET_KEY": "process-test-secret",
        "PASS_SECONDS": str(PASS_SECONDS),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "TWILIO_FROM": TWILIO_TEST_FROM,
        "TWILIO_API_BASE_URL": twilio.url,
        "SMTP_HOST": smtp.host,
        "SMTP_PORT": str(smtp.port),
        "SMTP_STARTTLS": "false",
        "MAIL_FROM": MAIL_FROM,
        "PUBLIC_BASE_URL": web_url,
        "STAFF_ALERT_PHONES": STAFF_PHONE,
        "STAFF_ALERT_EMAILS": STAFF_EMAIL,
        # Start and end equal: quiet hours never contain an instant (timing/quiet_hours.py).
        "QUIET_HOURS_START": "00:00",
        "QUIET_HOURS_END": "00:00",
        "SMS_PER_SECOND": "1000",  # the test number's 1 a second would only slow the test down
        # These scenarios count each patient's reminders; questionnaires in this same shape are
        # checked by tests/test_questionnaire_processes.py.
        "MEASURES_ENABLED": "false",
        # And they count one text per reminder: its following text (the cautions) is left out here
        # and checked in this shape by tests/test_out_of_the_box.py and tests/test_text_parts.py.
        "TEMPLATES_DIR": str(one_text_templates(base / "templates")),
        # The office is open on one day only, never today or tomorrow in the clinic's zone: every
        # text of these scenarios arrives after hours, whatever the hour the suite runs.
        "OFFICE_DAYS": CLOSED_TODAY_AND_TOMORROW,
    })
    return env


def run_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([executable("reminders"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"reminders {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


@contextmanager
def running_service(base: Path, **env_overrides: str):
    """web, worker and beat running as compose runs them; yields the Service. Everything is ended
    afterwards, Redis last. `env_overrides` change the clinic's environment for all three."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed: this test runs a Redis server of its own")
    with _teardown_on_sigterm(), postgres_schema() as database_url, FakeTwilio() as twilio, FakeSMTP() as smtp:
        redis_server = RedisServer(base)
        engine = create_engine(database_url)
        web_port = free_port()
        web_url = f"http://{HOST}:{web_port}"
        env = clinic_environment(base, database_url, redis_server.url, web_url, twilio, smtp)
        env.update(env_overrides)
        web = Process("web", command(WEB_COMMAND, host=HOST, port=web_port), env, base / "web.log")
        worker = Process("worker", command(WORKER_COMMAND, concurrency=CONCURRENCY), env, base / "worker.log")
        beat = Process("beat", command(BEAT_COMMAND, schedule=base / "celerybeat-schedule"), env,
                       base / "beat.log")
        running = Service(base, env, web_url, "", database_url, twilio, smtp, redis_server,
                          web, worker, beat, engine)
        try:
            redis_server.start()
            run_cli(env, "init")
            for process in (web, worker, beat):
                process.start()
            running.token = run_cli(env, "token", "create", "--name", "process-test").strip().splitlines()[-1]
            with running.logs_on_failure():
                wait_for(lambda: _healthy(web, web_url), START_WAIT, "the web process to answer /healthz")
                worker.wait_for_log(" ready.")
                beat.wait_for_log("beat: Starting")
            yield running
            if running.results:
                print("\n[processes] summary:\n  " + "\n  ".join(running.results), flush=True)
        finally:
            # running.worker may be a restarted one; every group is ended, Redis last.
            for process in (running.beat, running.worker, running.web, redis_server):
                process.stop()
            engine.dispose()


@contextmanager
def _teardown_on_sigterm():
    """A run stopped with SIGTERM (a CI timeout) still ends the processes: pytest tears fixtures
    down on KeyboardInterrupt, not on a bare SIGTERM."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _healthy(web: Process, web_url: str) -> bool:
    if not web.running:
        raise AssertionError(f"the web process exited:\n{web.log()[-3000:]}")
    try:
        return requests.get(web_url + "/healthz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def one_text_each(texts: Counter[str]) -> int:
    """How many texts went beyond the first to the same patient."""
    return sum(count - 1 for count in texts.values() if count > 1)


def signed_text(service, body: str, phone: str) -> requests.Response:
    form = {**SignedTwilio.sms_form(body, from_=phone), "AccountSid": service.twilio.account_sid}
    signature = RequestValidator(service.twilio.auth_token).compute_signature(
        service.env["PUBLIC_BASE_URL"] + "/twilio/sms", form)
    answer = requests.post(service.web_url + "/twilio/sms", data=form, timeout=30,
                           headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200, answer.text
    return answer


def cli_result(env: dict[str, str], *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """`reminders ARGS` as an operator runs it, whatever its exit code (an import with rejected rows
    exits 1), with `input` on its standard input (a password for `reminders user create`)."""
    return subprocess.run([executable("reminders"), *args], cwd=ROOT, env=env, input=input if input is not None else "",
                          capture_output=True, text=True, timeout=120)
