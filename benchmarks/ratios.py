"""The project's own cost near the provider call, as ratios measured in one run.

    python benchmarks/ratios.py [--quick] [--database-url URL] [--redis-url URL] [--reminders 1200]
                                [--rounds 2] [--memory-sends 10000] [--requests 1000] [--profile-tick FILE]

Everything talks to one loopback fake Twilio REST API of this script's own: a bare threaded HTTP
server in a process of its own that answers every message with a canned JSON resource (its own
latency is measured and printed first), so what is left is the project's cost. The measures:

  * bare loop: the twilio library's `messages.create` in a plain loop, in this process;
  * `reminders tick`: the real command in a subprocess, on a SQLite file (as a clinic without
    PostgreSQL runs it), over `--reminders` reminders due at once for visits tomorrow, with the
    rows a clinic has beside them: a welcome for every patient not texted before (their first
    infusion) and a questionnaire before infusions 1, 3 and 6 (MEASURES_INFUSIONS' default);
  * the Celery worker: `celery -A worker worker --loglevel INFO --concurrency 2` (docker-compose's
    command, with two children) on PostgreSQL and a Redis database of its own (flushed before and after), the same rows handed
    out by the beat task as beat does;
  * its memory: PSS of the worker's processes (/proc/<pid>/smaps_rollup) after `--memory-sends`;
  * the signed webhook `POST /twilio/sms` against a bare Flask view with the same signature check
    and one INSERT (benchmarks/webhook.py's), both on waitress with 8 threads: requests a second
    for one client, and p50/p99 at a steady 100 a second.

Sending rates count from the first to the last message the fake accepted (process start and the
pass's planning are outside); rounds are interleaved with the bare loop so load hits both alike.
`--profile-tick FILE` runs one more tick under py-spy (pip install py-spy) and prints where the
pass spends its time.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.dispatch import DEFAULT_URL, bare_round  # noqa: E402

TARGETS = {"tick": 70.0, "worker": 70.0, "webhook": 70.0, "p99_ms": 50.0, "pss_mb": 150.0}
# 14:00 UTC is 09:00 in New York in March: outside quiet hours.
TICK_NOW = datetime(2026, 3, 3, 14, 0, tzinfo=timezone.utc)
ZONE = "America/New_York"
SERIES = 6
QUESTIONNAIRE_BEFORE = (1, 3, 6)


# -- the fake provider -----------------------------------------------------------------------
class _Provider(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Twilio's API
    sent: list = []
    lock = threading.Lock()

    def do_POST(self):  # noqa: N802
        form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
        to = form.get("To", [""])[0]
        with self.lock:
            self.sent.append((to, time.time()))
            number = len(self.sent)
        body = json.dumps({
            "sid": f"SM{number:032x}", "account_sid": self.path.split("/")[3], "to": to,
            "from": form.get("From", [None])[0], "body": form.get("Body", [""])[0], "status": "queued",
            "num_segments": "1", "direction": "outbound-api", "api_version": "2010-04-01", "price": None,
            "error_code": None, "error_message": None, "date_created": None, "date_sent": None,
        }).encode()
        self.wfile.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(body), body))

    def do_GET(self):  # noqa: N802
        since = int(parse_qs(urlsplit(self.path).query).get("since", ["0"])[0])
        with self.lock:
            body = json.dumps(self.sent[since:]).encode()
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(body), body))

    def log_message(self, *_args):
        pass


def _serve(pipe) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    server.daemon_threads = True
    pipe.send(server.server_address[1])
    server.serve_forever()


class FastTwilio:
    """The fake in a process of its own (so the bare loop and the fake do not share a GIL)."""

    def __init__(self):
        self.account_sid = "AC" + uuid.uuid4().hex
        self.auth_token = uuid.uuid4().hex
        ours, theirs = multiprocessing.get_context("fork").Pipe()
        self.process = multiprocessing.get_context("fork").Process(target=_serve, args=(theirs,), daemon=True)
        self.process.start()
        self.port = ours.recv()
        self.url = f"http://127.0.0.1:{self.port}"

    def sent_since(self, since: int) -> list[tuple[str, float]]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", f"/sent?since={since}")
            return [tuple(item) for item in json.loads(connection.getresponse().read())]
        finally:
            connection.close()

    def latency(self, count: int = 500) -> tuple[float, float]:
        """p50 and p99 of one POST over a kept-alive connection, in ms."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        path = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        form = b"To=%2B14150000000&From=%2B14155550100&Body=latency+probe"
        times = []
        try:
            for _ in range(count):
                started = time.perf_counter()
                connection.request("POST", path, body=form,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
                connection.getresponse().read()
                times.append(time.perf_counter() - started)
        finally:
            connection.close()
        times.sort()
        return 1000 * times[len(times) // 2], 1000 * times[int(0.99 * (len(times) - 1))]

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(5)


def rate(times: list[float]) -> float:
    return (len(times) - 1) / (max(times) - min(times)) if len(times) > 1 else 0.0


def bare(twilio: FastTwilio, count: int) -> float:
    """benchmarks/dispatch.py's loop of `messages.create`; msg/s from first to last acceptance."""
    before = len(twilio.sent_since(0))
    bare_round(twilio, count)
    return rate([t for _to, t in twilio.sent_since(before)])


# -- a clinic's due rows ---------------------------------------------------------------------
def load_clinic(engine, first: int, reminders: int, now: datetime) -> int:
    """Patients `first`.. with an induction visit 23 h 45 min after `now` whose 24 h reminder is
    due, infusion numbers 1..6 in turn: a first infusion's patient was never texted (their welcome
    row goes a minute earlier), infusions 1, 3 and 6 have their questionnaire due too. Returns the
    number of rows due."""
    from sqlalchemy import insert

    from reminders.models import Appointment, OutboxMessage, Patient
    from reminders.models.patients import Course

    long_ago, due = now - timedelta(days=30), now - timedelta(minutes=15)
    patients, courses, visits, rows = [], [], [], []
    for pid in range(first, first + reminders):
        number = 1 + (pid - first) % SERIES
        phone = f"+1415{pid:07d}"
        patients.append(dict(id=pid, external_id=f"pat-{pid}", first_name=("Alex", "Maria Guadalupe", "Jo")[pid % 3],
                             last_name="Example", phone=phone, timezone=ZONE, preferred_channel="sms",
                             sms_opted_out=False, welcomed_at=None if number == 1 else long_ago, notes="",
                             created_at=long_ago, updated_at=long_ago))
        courses.append(dict(id=pid, patient_id=pid, started_at=long_ago, induction_sessions_planned=SERIES,
                            condition="depression"))
        visits.append(dict(id=pid, external_id=f"appt-{pid}", patient_id=pid, course_id=pid, kind="induction",
                           number_in_course=number, starts_at=now + timedelta(hours=23, minutes=45),
                           duration_minutes=60, location="Suite 200", status="scheduled", needs_planning=False,
                           created_at=long_ago, updated_at=long_ago))
        rule = "first_induction_24h" if number == 1 else "induction_24h"

        def row(kind, rule_name, key, when=due, appointment=pid):
            return dict(dedupe_key=key, patient_id=pid, appointment_id=appointment, kind=kind, rule=rule_name,
                        channel="sms", planned_for=when, due_at=when, status="planned", attempts=0,
                        created_at=long_ago, updated_at=long_ago)

        if number == 1:
            digest = hashlib.sha256(phone.encode()).hexdigest()[:12]
            rows.append(row("welcome", "welcome", f"patient:{pid}:welcome:sms:{digest}",
                            due - timedelta(minutes=1), None))
        rows.append(row("reminder", rule, f"appt:{pid}:{rule}:sms"))
        if number in QUESTIONNAIRE_BEFORE:
            rows.append(row("questionnaire", "measures", f"appt:{pid}:measures:sms"))
    with engine.begin() as conn:
        for model, values in ((Patient, patients), (Course, courses), (Appointment, visits), (OutboxMessage, rows)):
            conn.execute(insert(model.__table__), values)
        if engine.dialect.name == "postgresql":
            for table in ("patients", "courses", "appointments"):
                conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                     f"(SELECT max(id) FROM {table}))")
    return len(rows)


# -- reminders tick --------------------------------------------------------------------------
def executable(name: str) -> str:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def clinic_environment(base: Path, database_url: str, redis_url: str, twilio) -> dict:
    from benchmarks.worker import worker_environment

    env = worker_environment(base, database_url, redis_url, twilio, 10_000)
    if not redis_url:
        env.pop("REDIS_URL")
    return env


def tick_round(base: Path, twilio: FastTwilio, reminders: int, profile_to: Path | None = None) -> dict:
    """`reminders tick` over a fresh SQLite file. Returns msg/s (first to last send) and the rest."""
    from reminders.db import make_engine
    from reminders.migrations import upgrade

    folder = Path(tempfile.mkdtemp(prefix="tick-", dir=base))
    url = f"sqlite:///{folder / 'reminders.db'}"
    upgrade(url)
    engine = make_engine(url)
    due = load_clinic(engine, 1, reminders, TICK_NOW)
    engine.dispose()
    env = clinic_environment(folder, url, "", twilio)
    # `reminders tick`, from this tree's code (the installed script may point at another checkout)
    argv = [sys.executable, "-m", "reminders.cli", "tick", "--now", TICK_NOW.isoformat()]
    if profile_to is not None:
        argv = [executable("py-spy"), "record", "--format", "raw", "--rate", "250", "-o", str(profile_to), "--", *argv]
    before = len(twilio.sent_since(0))
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"reminders tick exited {done.returncode}:\n{done.stderr[-3000:]}")
    summary = json.loads(next(line for line in reversed(done.stdout.splitlines()) if line.startswith("{")))
    times = [t for _to, t in twilio.sent_since(before)]
    shutil.rmtree(folder, ignore_errors=True)
    if summary.get("failed") or summary.get("skipped"):
        raise SystemExit(f"reminders tick did not send everything due: {summary}")
    return {"rate": rate(times), "sent": len(times), "due": due, "wall": wall, "summary": summary}


def where_the_time_goes(raw: Path, top: int = 30) -> None:
    """py-spy's raw samples of a tick: the share of the pass (run_pass) under each frame, and the
    share each module spends itself."""
    inclusive, own, total = Counter(), Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        start = next((i for i, frame in enumerate(frames) if frame.startswith("run_pass ")), None)
        if start is None:
            continue
        frames, count = frames[start:], int(count)
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        where = frames[-1].rpartition("(")[2].split(":")[0]
        own[where if where.startswith("reminders/") else "/".join(where.split("/")[:2])] += count
    print(f"\nwhere a tick's pass spends its time ({total} samples):")
    for frame, count in inclusive.most_common(top):
        print(f"  {100 * count / total:5.1f} %  {frame}")
    print("own time by module:")
    for module, count in own.most_common(15):
        print(f"  {100 * count / total:5.1f} %  {module}")


# -- the Celery worker -----------------------------------------------------------------------
def worker_round(schema, engine, beat, twilio: FastTwilio, reminders: int, first: int) -> dict:
    from benchmarks.worker import wait_for

    wait_for(beat.idle, 120, "the worker to be idle before the round")
    before = len(twilio.sent_since(0))
    due = load_clinic(engine, first, reminders, datetime.now(timezone.utc))
    beat.run_pass()
    next_pass = time.monotonic() + beat.interval

    def all_sent():
        nonlocal next_pass
        if time.monotonic() >= next_pass:  # beat's next minute: what was handed back goes again
            beat.run_pass()
            next_pass += beat.interval
        return pending(engine) == 0

    wait_for(all_sent, 900, f"{due} rows to be sent", step=0.5)
    wait_for(beat.idle, 120, "the worker to be idle after the round")
    seen = [t for _to, t in twilio.sent_since(before)]
    return {"rate": rate(seen), "sent": len(seen), "due": due}


def pending(engine) -> int:
    """Rows not yet through (a long text's later parts are rows of their own, added as it is sent)."""
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM outbox WHERE status IN ('planned', 'queued', 'sending')"
                                    ).scalar_one()


def worker_measures(args, twilio: FastTwilio, base: Path) -> dict:
    import redis

    from benchmarks.worker import Beat, Schema, Worker, wait_for
    from reminders.db import dispose_engines, get_engine

    client = redis.Redis.from_url(args.redis_url)
    client.flushdb()
    schema = Schema(args.database_url)
    engine = get_engine(schema.url)
    worker = beat = None
    result = {"rounds": [], "bare": []}
    try:
        env = clinic_environment(base, schema.url, args.redis_url, twilio)
        worker = Worker(env, 2, base / "worker.log").start()
        beat = Beat(env)
        wait_for(beat.idle, 120, "the worker's start-up pass")
        result["pss_start"] = pss_kb(worker)
        first, sent = 1, 0
        for number in range(args.rounds):
            done = worker_round(schema, engine, beat, twilio, args.reminders, first)
            first, sent = first + args.reminders, sent + done["sent"]
            result["rounds"].append(done)
            result["bare"].append(bare(twilio, done["sent"]))
            print(f"  worker round {number + 1}: {done['rate']:.0f} msg/s, bare {result['bare'][-1]:.0f} msg/s, "
                  f"load {os.getloadavg()[0]:.2f}", file=sys.stderr)
        texts_per_reminder = result["rounds"][-1]["sent"] / args.reminders if result["rounds"] else 1.0
        while sent < args.memory_sends:
            reminders = min(3600, max(SERIES, round((args.memory_sends - sent) / texts_per_reminder)))
            done = worker_round(schema, engine, beat, twilio, reminders, first)
            first, sent = first + reminders, sent + done["sent"]
            texts_per_reminder = done["sent"] / reminders
        result["sends"], result["pss_end"] = sent, pss_kb(worker)
        each = ", ".join(f"{pid}: RSS {rss // 1024} MB, PSS {pss // 1024} MB" for pid, (rss, pss) in worker.memory().items())
        print(f"  worker processes: {each}", file=sys.stderr)
        print(f"  worker memory: PSS {result['pss_end'] / 1024:.0f} MB after {sent:,} sends", file=sys.stderr)
    finally:
        if worker is not None:
            worker.stop()
        if beat is not None:
            beat.close()
        dispose_engines()
        schema.drop()
        client.flushdb()
        client.close()
    return result


def pss_kb(worker) -> int:
    """PSS of every process of the worker (main and prefork children: shared pages counted once)."""
    return sum(pss for _rss, pss in worker.memory().values())


# -- the webhook -----------------------------------------------------------------------------
def webhook_measures(args) -> dict:
    from benchmarks import webhook

    urls = {name: webhook.fresh_schema(args.database_url) for name in ("project", "bare")}
    makers = {"project": webhook.project_app, "bare": webhook.bare_app}
    rounds = 2
    chunk = max(1, args.requests // rounds)
    done = {name: [0, 0.0, []] for name in urls}
    servers = {}
    try:
        servers = {name: webhook.Server(makers[name](url), 8).__enter__() for name, url in urls.items()}
        for _ in range(rounds):
            for name, server in servers.items():
                per_second = webhook.sequential(server.url, chunk)
                done[name][0] += chunk
                done[name][1] += chunk / per_second
        for _ in range(rounds):
            for name, server in servers.items():
                done[name][2].extend(webhook.steady(server.url, chunk, 100.0))
    finally:
        for server in servers.values():
            server.__exit__(None, None, None)
        for url in urls.values():
            webhook.drop(args.database_url, url)
    result = {}
    for name, (count, seconds, latencies) in done.items():
        latencies.sort()
        result[name] = {"rate": count / seconds, "p50": 1000 * webhook.percentile(latencies, 50),
                        "p99": 1000 * webhook.percentile(latencies, 99)}
        print(f"  webhook {name}: {result[name]['rate']:.0f} req/s, p50 {result[name]['p50']:.0f} ms, "
              f"p99 {result[name]['p99']:.0f} ms", file=sys.stderr)
    return result


# -- the table -------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "pass" if ok else "miss"


def rounds(results: list[dict]) -> str:
    return ", ".join(f"{r['rate']:.0f}" for r in results)


def table(fake, ticks, tick_bare, work, hook) -> None:
    med = statistics.median
    t, tb = med(r["rate"] for r in ticks), med(tick_bare)
    w, wb = med(r["rate"] for r in work["rounds"]), med(work["bare"])
    hp, hb = hook["project"], hook["bare"]
    pss = work["pss_end"] / 1024
    one, five, fifteen = os.getloadavg()
    print(f"\nfake Twilio: p50 {fake[0]:.2f} ms, p99 {fake[1]:.2f} ms a message (kept-alive POST); "
          f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} CPU(s)\n")
    print("| measure | project | peer in the same run | ratio | target | |")
    print("|---|---|---|---|---|---|")
    print(f"| `reminders tick` (SQLite), {ticks[0]['due']:,} rows due (reminders, welcomes, questionnaires), "
          f"{ticks[0]['sent']:,} texts | {t:.0f} msg/s "
          f"(rounds {rounds(ticks)}) | bare loop {tb:.0f} msg/s | "
          f"{100 * t / tb:.0f} % | ≥ {TARGETS['tick']:.0f} % | {verdict(100 * t / tb >= TARGETS['tick'])} |")
    print(f"| Celery worker (PostgreSQL, 2 children), {work['rounds'][0]['due']:,} rows due, "
          f"{work['rounds'][0]['sent']:,} texts | {w:.0f} msg/s "
          f"(rounds {rounds(work['rounds'])}) | bare loop {wb:.0f} msg/s | "
          f"{100 * w / wb:.0f} % | ≥ {TARGETS['worker']:.0f} % | {verdict(100 * w / wb >= TARGETS['worker'])} |")
    print(f"| signed `/twilio/sms`, one client | {hp['rate']:.0f} req/s | bare Flask + INSERT {hb['rate']:.0f} req/s "
          f"| {100 * hp['rate'] / hb['rate']:.0f} % | ≥ {TARGETS['webhook']:.0f} % "
          f"| {verdict(100 * hp['rate'] / hb['rate'] >= TARGETS['webhook'])} |")
    print(f"| `/twilio/sms` at a steady 100 req/s | p50 {hp['p50']:.0f} ms, p99 {hp['p99']:.0f} ms "
          f"| p50 {hb['p50']:.0f} ms, p99 {hb['p99']:.0f} ms | | p99 < {TARGETS['p99_ms']:.0f} ms "
          f"| {verdict(hp['p99'] < TARGETS['p99_ms'])} |")
    print(f"| worker PSS after {work['sends']:,} sends | {pss:.0f} MB (at start {work['pss_start'] / 1024:.0f} MB) "
          f"| | | < {TARGETS['pss_mb']:.0f} MB | {verdict(pss < TARGETS['pss_mb'])} |")
    print("\ntick summaries: " + "; ".join(json.dumps({k: v for k, v in r["summary"].items() if k != "now"})
                                          for r in ticks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller counts (about a minute)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_RATIOS_REDIS_URL", "redis://127.0.0.1:6379/10"),
                        help="a Redis database of the benchmark's own: flushed before and after")
    parser.add_argument("--reminders", type=int, default=None, help="reminders due per round (1200)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds for tick and worker (2)")
    parser.add_argument("--memory-sends", type=int, default=None, help="worker sends before PSS is read (10000)")
    parser.add_argument("--requests", type=int, default=None, help="signed texts per webhook measure (1000)")
    parser.add_argument("--only", default="tick,worker,webhook")
    parser.add_argument("--profile-tick", type=Path, default=None, help="py-spy raw output of one more tick here")
    args = parser.parse_args()
    quick = args.quick
    args.reminders = args.reminders or (300 if quick else 1200)
    args.rounds = args.rounds or (1 if quick else 2)
    args.memory_sends = args.memory_sends if args.memory_sends is not None else (2000 if quick else 10_000)
    args.requests = args.requests or (300 if quick else 1000)
    only = set(args.only.split(","))

    twilio = FastTwilio()  # forked before this process has threads or connections
    import logging

    from reminders.logs import configure_logging
    configure_logging(logging.WARNING)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    base = Path(tempfile.mkdtemp(prefix="bench-ratios-"))
    print(f"logs in {base}", file=sys.stderr)
    try:
        bare(twilio, 50)  # warm-up: imports, the connection pool
        fake = twilio.latency()
        print(f"  fake Twilio: p50 {fake[0]:.2f} ms, p99 {fake[1]:.2f} ms", file=sys.stderr)
        ticks, tick_bare = [], []
        if "tick" in only:
            for number in range(args.rounds):
                ticks.append(tick_round(base, twilio, args.reminders))
                tick_bare.append(bare(twilio, ticks[-1]["sent"]))
                print(f"  tick round {number + 1}: {ticks[-1]['rate']:.0f} msg/s ({ticks[-1]['sent']} sent of "
                      f"{ticks[-1]['due']} due, {ticks[-1]['wall']:.1f} s with start-up), bare {tick_bare[-1]:.0f} "
                      f"msg/s, load {os.getloadavg()[0]:.2f}", file=sys.stderr)
            if args.profile_tick:
                tick_round(base, twilio, args.reminders, args.profile_tick)
                where_the_time_goes(args.profile_tick)
        work = worker_measures(args, twilio, base) if "worker" in only else None
        hook = webhook_measures(args) if "webhook" in only else None
        if ticks and work and hook:
            table(fake, ticks, tick_bare, work, hook)
    finally:
        twilio.stop()


if __name__ == "__main__":
    main()
