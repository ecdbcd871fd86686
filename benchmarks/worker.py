"""Sending through a real Celery worker: throughput, memory, and a paced backlog (issue 11, point 6).

    python benchmarks/worker.py [--database-url URL] [--redis-url URL] [--concurrency 2]
                                [--due 2000] [--rounds 2] [--memory-sends 10000]
                                [--rate 500] [--paced-due 10000] [--only throughput,memory,paced]

The worker is the command the README and docker-compose give clinics (`celery -A worker worker
--loglevel INFO --concurrency N`), started as a subprocess in a process group of its own, with the
environment a clinic sets pointing at a fresh PostgreSQL schema, a Redis database of its own
(`--redis-url`, db 15 by default; flushed before and after) and the loopback fake Twilio server
(tests/fakes/twilio_server.py) this process runs. Rows are handed out as beat hands them out: this
process sends the beat task (`reminders.tasks.run_pass`) to the broker, and again every beat
interval (60 s) while rows are left, as beat would.

Three measures, each printed as a table with the machine's load:

  1. throughput: `--due` SMS reminders due at once, handed out by the beat task and sent by the
     worker, against the bare twilio `messages.create` loop of benchmarks/dispatch.py in this
     process, same fake server, rounds interleaved (worker, bare, worker, bare, ...). Both are
     timed from the first to the last message the fake server accepted. The pace is set far above
     what the worker reaches (SMS_PER_SECOND=10000), so this measures the worker itself.
  2. memory: the resident memory of the whole worker (main process and its prefork children, from
     /proc: VmRSS, and PSS, which counts pages the children share with the main process once)
     when it starts, and after it has sent `--memory-sends` messages in all.
  3. paced: a worker started again with SMS_PER_SECOND=`--rate`, the fake enforcing the same rate
     per sender (429 beyond it), `--paced-due` SMS due at once: all sent, once each (counted by
     the fake server), in how long against the ideal `--paced-due`/`--rate` seconds.

Everything is cleaned up afterwards: the worker's process group is ended, the schema dropped, the
Redis database flushed.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import redis  # noqa: E402

from benchmarks.dispatch import DEFAULT_URL, FROM, bare_round, insert_due_reminders, libpq_url, schema_url  # noqa: E402

DEFAULT_REDIS = "redis://127.0.0.1:6379/15"  # tests use 11, 13, 14; benchmarks/dispatch.py 12
# The worker command docker-compose.yml runs (tests/test_processes.py runs the same).
WORKER_COMMAND = ("celery", "-A", "worker", "worker", "--loglevel", "INFO", "--concurrency", "{concurrency}")
START_WAIT = 90.0  # the worker is up
SEND_WAIT = 900.0  # a bound on a hang, not a pace
STOP_WAIT = 20.0


# -- helpers ---------------------------------------------------------------------------------
def wait_for(check, timeout: float, what: str, step: float = 0.1):
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise SystemExit(f"gave up after {timeout:.0f} s waiting for {what}")
        pause.wait(step)


def load_avg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} CPU(s)"


def executable(name: str) -> str:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


class Schema:
    """A PostgreSQL schema of the benchmark's own, migrated; due rows are added round by round."""

    def __init__(self, base_url: str):
        from reminders.migrations import upgrade

        self.base_url = base_url
        self.name = f"bench_worker_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(libpq_url(base_url), autocommit=True) as admin:
            admin.execute(f'CREATE SCHEMA "{self.name}"')
        self.url = schema_url(base_url, self.name)
        upgrade(self.url)
        self.next_id = 1

    def connect(self):
        return psycopg.connect(libpq_url(self.base_url), options=f"-csearch_path={self.name}")

    def add_due(self, count: int, now: datetime) -> list[str]:
        """`count` patients, each with a visit 23 h 45 min from now whose 24 h SMS reminder is due
        now (the rows benchmarks/dispatch.py loads, at the real time: the worker's pass runs at
        it). Returns their phone numbers."""
        first, last = self.next_id, self.next_id + count - 1
        self.next_id = last + 1
        with self.connect() as conn:
            insert_due_reminders(conn, first, last, now)
            for table in ("patients", "appointments"):
                conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            conn.commit()
            conn.autocommit = True
            conn.execute("ANALYZE")
        return [f"+1415{g:07d}" for g in range(first, last + 1)]

    def statuses(self, phones: list[str]) -> Counter:
        with self.connect() as conn:
            rows = conn.execute("SELECT o.status, count(*) FROM outbox o JOIN patients p ON p.id = o.patient_id "
                                "WHERE p.phone = ANY(%s) GROUP BY o.status", (phones,)).fetchall()
        return Counter(dict(rows))

    def drop(self) -> None:
        with psycopg.connect(libpq_url(self.base_url), autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{self.name}" CASCADE')


# -- the worker ------------------------------------------------------------------------------
class Worker:
    """`celery -A worker worker` in a process group of its own, its output in a log file."""

    def __init__(self, env: dict[str, str], concurrency: int, log_path: Path):
        self.env, self.log_path = env, log_path
        self.argv = [executable(WORKER_COMMAND[0]),
                     *(part.format(concurrency=concurrency) for part in WORKER_COMMAND[1:])]
        self.popen: subprocess.Popen | None = None

    def start(self) -> "Worker":
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== {' '.join(self.argv)} =====\n".encode())
            log.flush()
            self.popen = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def ready():
            if self.popen.poll() is not None:
                raise SystemExit(f"the worker exited with {self.popen.returncode}:\n{self.log()[-3000:]}")
            return " ready." in self.log()

        wait_for(ready, START_WAIT, "the worker to log ' ready.'")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def pids(self) -> list[int]:
        """The main process and every process of its group (the prefork children)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == self.popen.pid:  # pgrp
                found.append(int(entry.name))
        return sorted(found)

    def cpu_seconds(self) -> float:
        """User and system CPU time of the worker's processes (the prefork children live on)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / tick

    def memory(self) -> dict:
        """{pid: (VmRSS kB, Pss kB)} for every process of the worker."""
        result = {}
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:
                continue
            rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
            pss = next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
            result[pid] = (rss, pss)
        return result

    def stop(self) -> None:
        if self.popen is None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_WAIT), (signal.SIGKILL, STOP_WAIT)):
            try:
                os.killpg(self.popen.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.popen.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)  # children left behind, if any
        except (ProcessLookupError, PermissionError):
            pass


def worker_environment(base: Path, database_url: str, redis_url: str, twilio, sms_per_second: float) -> dict:
    from reminders.config import Settings

    names = {name.upper() for name in Settings.model_fields} | {"REMINDERS_DATA_DIR"}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env.update({
        "PYTHONPATH": str(ROOT),  # the code in this tree, not an installed copy
        "PYTHONUNBUFFERED": "1",
        "REMINDERS_DATA_DIR": str(base / "data"),
        "SECRET_KEY": "benchmark-secret",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "TWILIO_FROM": FROM,
        "TWILIO_API_BASE_URL": twilio.url,
        "PUBLIC_BASE_URL": "https://clinic.example",
        # Start and end equal: no quiet hours, whatever the time of day the benchmark runs at.
        "QUIET_HOURS_START": "00:00",
        "QUIET_HOURS_END": "00:00",
        "SMS_PER_SECOND": f"{sms_per_second:g}",
    })
    return env


class Beat:
    """What beat does, from this process: the pass task sent to the broker, every minute."""

    def __init__(self, env: dict[str, str]):
        from celery import Celery

        from reminders.celery_app import make_celery
        from reminders.config import Settings
        from reminders.tasks import RUN_PASS_TASK

        settings = Settings(database_url=env["DATABASE_URL"], redis_url=env["REDIS_URL"],
                            data_dir=Path(env["REMINDERS_DATA_DIR"]))
        self.app: Celery = make_celery(settings)
        self.task = RUN_PASS_TASK
        self.interval = float(self.app.conf.beat_schedule["pass-every-minute"]["schedule"])
        self.redis_url = env["REDIS_URL"]

    def run_pass(self) -> None:
        self.app.send_task(self.task)

    def idle(self) -> bool:
        """The queue is empty and the worker runs and holds nothing (asked through the broker)."""
        inspect = self.app.control.inspect(timeout=1.0, limit=1)
        try:
            active, reserved = inspect.active(), inspect.reserved()
        except Exception:  # noqa: BLE001
            return False
        if not active or not reserved:
            return False
        client = redis.Redis.from_url(self.redis_url)
        try:
            queued = sum(client.llen(key) for key in ("celery", *(f"celery\x06\x16{p}" for p in (3, 6, 9))))
        finally:
            client.close()
        return not any(active.values()) and not any(reserved.values()) and queued == 0

    def close(self) -> None:
        self.app.close()


def dispatch_round(schema: Schema, beat: Beat, twilio, due: int, worker: "Worker | None" = None) -> dict:
    """`due` SMS due now, handed out by the beat task, sent by the worker. Returns what the fake
    server saw: first and last acceptance, duplicates, and the time from hand-out to last send."""
    wait_for(beat.idle, 120, "the worker to be idle before the round")
    phones = set(schema.add_due(due, datetime.now(timezone.utc)))
    seen_before = len(twilio.messages)
    refused_before = twilio.rate_limited
    cpu_before = worker.cpu_seconds() if worker else 0.0
    own_cpu_before = time.process_time()
    handed_out = datetime.now(timezone.utc)
    beat.run_pass()
    next_pass = time.monotonic() + beat.interval

    reached: set[str] = set()
    looked = seen_before

    def all_sent():
        nonlocal next_pass, looked
        if time.monotonic() >= next_pass:  # beat's next minute: what was handed back goes again
            beat.run_pass()
            next_pass += beat.interval
        new = twilio.messages[looked:]
        looked += len(new)
        reached.update(m["to"] for m in new if m["to"] in phones)
        return len(reached) >= due

    wait_for(all_sent, SEND_WAIT, f"{due} messages to reach the fake server", step=0.25)
    own_cpu = time.process_time() - own_cpu_before
    cpu = (worker.cpu_seconds() - cpu_before) if worker else 0.0
    wait_for(beat.idle, 120, "the worker to be idle after the round")
    mine = [m for m in twilio.messages[seen_before:] if m["to"] in phones]
    times = sorted(m["received_at"] for m in mine)
    per_phone = Counter(m["to"] for m in mine)
    return {"first": times[0], "last": times[-1], "span": (times[-1] - times[0]).total_seconds(),
            "from_hand_out": (times[-1] - handed_out).total_seconds(),
            "sent": len(per_phone), "duplicates": sum(n - 1 for n in per_phone.values()),
            "refused": twilio.rate_limited - refused_before, "worker_cpu_ms": 1000 * cpu / due,
            "own_cpu_ms": 1000 * own_cpu / due, "statuses": schema.statuses(sorted(phones))}


def bare(twilio, due: int) -> tuple[float, float]:
    """benchmarks/dispatch.py's peer; msg/s from first to last acceptance, as for the worker, and
    CPU ms per message of this process (the loop and the fake server)."""
    before, cpu = len(twilio.messages), time.process_time()
    bare_round(twilio, due)
    cpu = time.process_time() - cpu
    times = [m["received_at"] for m in twilio.messages[before:]]
    return (len(times) - 1) / (max(times) - min(times)).total_seconds(), 1000 * cpu / due


def mb(kb: int) -> str:
    return f"{kb / 1024:.0f} MB"


def memory_row(label: str, memory: dict) -> str:
    pids = sorted(memory)
    rss = sum(r for r, _ in memory.values())
    pss = sum(p for _, p in memory.values())
    each = ", ".join(mb(memory[pid][0]) for pid in pids)
    return f"| {label} | {len(pids)} | {mb(rss)} ({each}) | {mb(pss)} |"


# -- the measures ----------------------------------------------------------------------------
def throughput_and_memory(args, twilio, base: Path, redis_url: str) -> None:
    schema = Schema(args.database_url)
    env = worker_environment(base, schema.url, redis_url, twilio, 10_000)
    worker, beat = Worker(env, args.concurrency, base / "worker.log"), None
    try:
        worker.start()
        beat = Beat(env)
        wait_for(beat.idle, 120, "the worker's start-up pass to finish")
        memory_at_start = worker.memory()
        sent_in_all = 0
        bare_round(twilio, 20)  # warm-up of the peer: imports, connection pool
        rounds, peer_cpus = [], []
        if "throughput" in args.only:
            for number in range(args.rounds):
                result = dispatch_round(schema, beat, twilio, args.due, worker)
                sent_in_all += result["sent"]
                peer, peer_cpu = bare(twilio, args.due)
                rounds.append((result, peer))
                peer_cpus.append(peer_cpu)
                print(f"  round {number + 1}: worker {(args.due - 1) / result['span']:.0f} msg/s "
                      f"({args.due / result['from_hand_out']:.0f} from the hand-out), bare loop {peer:.0f} msg/s, "
                      f"duplicates {result['duplicates']}, load {os.getloadavg()[0]:.2f}", file=sys.stderr)
            load_after = load_avg()
            memory_after_rounds = worker.memory()
            worker_rates = [(args.due - 1) / r["span"] for r, _ in rounds]
            handout_rates = [args.due / r["from_hand_out"] for r, _ in rounds]
            peers = [p for _, p in rounds]
            w, h, b = statistics.median(worker_rates), statistics.median(handout_rates), statistics.median(peers)
            print(f"\n{args.due:,} SMS due, {args.rounds} interleaved round(s), `celery -A worker worker "
                  f"--loglevel INFO --concurrency {args.concurrency}`, load average {load_after}\n")
            print("| measure | worker | bare `messages.create` loop | ratio |")
            print("|---|---|---|---|")
            print(f"| first to last send, {args.due:,} SMS due | {w:.0f} msg/s (rounds: "
                  f"{', '.join(f'{x:.0f}' for x in worker_rates)}) | {b:.0f} msg/s (rounds: "
                  f"{', '.join(f'{x:.0f}' for x in peers)}) | {100 * w / b:.0f} % |")
            print(f"| beat task sent to last send | {h:.0f} msg/s (rounds: "
                  f"{', '.join(f'{x:.0f}' for x in handout_rates)}) | | {100 * h / b:.0f} % |")
            print(f"| CPU per message | worker processes {statistics.median(r['worker_cpu_ms'] for r, _ in rounds):.1f} ms, "
                  f"this process (fake server) {statistics.median(r['own_cpu_ms'] for r, _ in rounds):.1f} ms "
                  f"| this process (loop and fake server) {statistics.median(peer_cpus):.1f} ms | |")
            duplicates = sum(r["duplicates"] for r, _ in rounds)
            print(f"\nduplicates: {duplicates}; outbox statuses of the last round: "
                  f"{dict(rounds[-1][0]['statuses'])}")
        if "memory" in args.only:
            if args.memory_sends > sent_in_all:
                result = dispatch_round(schema, beat, twilio, args.memory_sends - sent_in_all, worker)
                sent_in_all += result["sent"]
                print(f"  memory round: {result['sent']} sent, duplicates {result['duplicates']}", file=sys.stderr)
            memory_end = worker.memory()
            print(f"\nworker memory, `--concurrency {args.concurrency}`, load average {load_avg()}\n")
            print("| when | processes | VmRSS summed (main, children) | PSS summed | goal |")
            print("|---|---:|---|---|---|")
            print(memory_row("started, idle", memory_at_start) + " |")
            if rounds:
                print(memory_row(f"after {len(rounds) * args.due:,} sends", memory_after_rounds) + " |")
            def verdict(kb: int) -> str:
                return "met" if kb < 150 * 1024 else f"missed by {mb(kb - 150 * 1024)}"

            rss, pss = (sum(v[i] for v in memory_end.values()) for i in (0, 1))
            print(memory_row(f"after {sent_in_all:,} sends", memory_end)
                  + f" under 150 MB: RSS summed {verdict(rss)}, PSS {verdict(pss)} |")
    finally:
        worker.stop()
        if beat is not None:
            beat.close()
        from reminders.db import dispose_engines

        dispose_engines()
        schema.drop()


def paced(args, twilio, base: Path, redis_url: str) -> None:
    schema = Schema(args.database_url)
    env = worker_environment(base, schema.url, redis_url, twilio, args.rate)
    worker, beat = Worker(env, args.concurrency, base / "worker-paced.log"), None
    try:
        worker.start()
        beat = Beat(env)
        wait_for(beat.idle, 120, "the worker's start-up pass to finish")
        twilio.enforce_rate(args.rate)
        result = dispatch_round(schema, beat, twilio, args.paced_due, worker)
        twilio.enforce_rate(None)
        ideal = args.paced_due / args.rate
        window = 1.0  # the fake's bucket refills `rate` a second: one second of the rate
        held = (result["sent"] - 1) / result["span"] if result["span"] else float("inf")
        within = result["from_hand_out"] <= ideal + window
        print(f"\n{args.paced_due:,} SMS due at once, pace SMS_PER_SECOND={args.rate:g} (Redis bucket), "
              f"the fake enforcing {args.rate:g}/s per sender, `--concurrency {args.concurrency}`, "
              f"load average {load_avg()}\n")
        print("| measure | sent | duplicates | 429 answers | first to last send | beat task sent to last send "
              "| ideal | rate held | within ideal + 1 s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        print(f"| {args.paced_due:,} due at once | {result['sent']:,} | {result['duplicates']} | {result['refused']} "
              f"| {result['span']:.1f} s | {result['from_hand_out']:.1f} s | {ideal:.1f} s | {held:.0f} msg/s "
              f"| {'yes' if within else 'no, ' + format(result['from_hand_out'] - ideal, '.1f') + ' s over'} |")
        print(f"\noutbox statuses: {dict(result['statuses'])}")
    finally:
        twilio.enforce_rate(None)
        worker.stop()
        if beat is not None:
            beat.close()
        from reminders.db import dispose_engines

        dispose_engines()
        schema.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_WORKER_REDIS_URL", DEFAULT_REDIS),
                        help="a Redis database of the benchmark's own: it is flushed before and after")
    parser.add_argument("--concurrency", type=int, default=2, help="the worker's prefork children")
    parser.add_argument("--due", type=int, default=2000, help="SMS due at once per throughput round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--memory-sends", type=int, default=10_000, help="sends before the memory is read")
    parser.add_argument("--rate", type=float, default=500.0, help="the pace for the paced measure, msg/s")
    parser.add_argument("--paced-due", type=int, default=10_000, help="SMS due at once for the paced measure")
    parser.add_argument("--only", default="throughput,memory,paced",
                        help="a comma-separated subset of throughput, memory, paced")
    args = parser.parse_args()
    args.only = {part.strip() for part in args.only.split(",") if part.strip()}

    from reminders.logs import configure_logging
    configure_logging(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the fake server's access log
    from tests.fakes.twilio_server import FakeTwilio

    client = redis.Redis.from_url(args.redis_url)
    client.flushdb()
    base = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    print(f"worker logs in {base}", file=sys.stderr)
    try:
        with FakeTwilio() as twilio:
            if args.only & {"throughput", "memory"}:
                throughput_and_memory(args, twilio, base, args.redis_url)
                client.flushdb()
            if "paced" in args.only:
                paced(args, twilio, base, args.redis_url)
    finally:
        client.flushdb()
        client.close()


if __name__ == "__main__":
    main()
