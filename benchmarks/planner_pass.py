"""How long one pass takes as the tables grow: 10,000 versus 1,000,000 appointments (issue 2, item 8).

    python benchmarks/planner_pass.py [--database-url URL] [--sizes 10000,1000000] [--due 1000]
                                      [--repeats 3] [--locations 3] [--explain] [--keep]

For each size: a fresh PostgreSQL schema, migrated with `reminders.migrations.upgrade`, then a
bulk load done in the database (INSERT ... SELECT generate_series) of a clinic's history:

  * N appointments in all, nearly all of them past and completed, each with 3 outbox rows
    already sent (maintenance 7 d and 24 h reminders, the day-after check-in), so the outbox
    holds about 3 N rows, as a clinic's does after years;
  * `--locations` L rows in `locations` (each its own code, name, time zone and sending number
    +1212555010i), every visit and its outbox rows at location 1 + g % L, as a group's clinics
    are, so a pass plans and sends for every location (each number's texts side by side);
    `--locations 0` stores none (the single-location clinic: every location_id NULL);
  * for each timed pass, `--due` upcoming visits whose 24 h reminder is due at that pass's
    instant (plus their later, not yet due check-in and nudge rows);
  * a handful of freshly booked visits marked needs_planning before each pass, so the
    planner has real work.

Then VACUUM ANALYZE (what autovacuum would have done to years of history) and `--repeats`
passes of the real `reminders.pipeline.run_pass`, each at its own instant with its own fresh
`--due` messages, through a channel that returns a Receipt at once (provider latency is not
measured; each location's number gets such a channel too). Phase times come from wrapping the
functions run_pass calls (prepare: plan and sweeps; due_ids: the dispatcher's claim;
InProcessDispatcher.hand_off: claim, re-check, render, record, every sender's rows). The SQL of
the pass is timed per statement, so a statement that grows with the tables stands out;
`--explain` prints EXPLAIN (ANALYZE, BUFFERS) of the slowest ones and of the once-per-pass
planner and dispatcher statements, for every size (each in a rolled-back transaction). The schemas are dropped at the end unless `--keep`.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from sqlalchemy import event  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# 13:00 UTC = 09:00 in New York (EDT): passes an hour apart stay outside quiet hours.
BASE_NOW = datetime(2026, 3, 10, 13, 0, tzinfo=timezone.utc)
ZONE = "America/New_York"  # the patients' (quiet hours are theirs)
# Locations' own zones, in turn: a group's clinics across the country.
LOCATION_ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")
HANDFUL = 10  # freshly booked visits to plan per pass
HISTORY_PER_PATIENT = 6
BODY = ("Hi {name}, a reminder from The Infusion Clinic: your visit is {when}. No food for 6 hours "
        "and no liquids for 2 hours before, and bring your ride home. Reply C to confirm or R to "
        "reschedule.")


# -- the no-op channel -----------------------------------------------------------------------

class NoopChannel:
    def __init__(self, name: str, from_address: str = ""):
        self.name = name
        self.from_address = from_address
        self.sent = 0

    def send(self, message):
        from reminders.channels import Receipt

        self.sent += 1
        return Receipt(provider_id=f"noop-{message.reference}", status="sent")


# -- schema and load -------------------------------------------------------------------------

def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def schema_url(url: str, schema: str) -> str:
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options=-csearch_path%3D{schema}"


def pass_instant(repeat: int) -> datetime:
    return BASE_NOW + timedelta(hours=repeat)


def location_of(column: str) -> str:
    """SQL for the location of the row numbered `column`: 1 + g % L, NULL when L is 0."""
    return f"1 + {column} %% NULLIF(%(locations)s, 0)"


def load(conn: psycopg.Connection, size: int, due: int, repeats: int, locations: int) -> dict[str, float]:
    """Fill the schema on `conn` (search_path set). Returns seconds per step."""
    timings: dict[str, float] = {}
    upcoming = due * repeats
    history = max(size - upcoming - HANDFUL * repeats, 0)
    history_patients = max(history // HISTORY_PER_PATIENT, 1)
    params = {"now": BASE_NOW, "history": history, "hp": history_patients, "upcoming": upcoming,
              "due": due, "zone": ZONE, "locations": locations, "zones": list(LOCATION_ZONES),
              "body": BODY.format(name="Alex", when="Tuesday, March 10 at 9:30 AM")}

    def step(name: str, sql: str) -> None:
        started = time.perf_counter()
        conn.execute(sql, params)
        timings[name] = time.perf_counter() - started

    # Loading is not what is measured: skip the FK triggers while filling (the data is
    # consistent by construction) and do not wait for the WAL on each commit.
    conn.execute("SET session_replication_role = replica")
    conn.execute("SET synchronous_commit = off")
    conn.execute("SET maintenance_work_mem = '512MB'")

    step("locations", """
        INSERT INTO locations (id, code, name, active, timezone, sender, created_at, updated_at)
        SELECT g, 'site-' || g, 'The Infusion Clinic ' || g, true,
               (%(zones)s::text[])[1 + (g - 1) %% cardinality(%(zones)s::text[])], '+1212555010' || g,
               %(now)s - interval '5 years', %(now)s - interval '5 years'
        FROM generate_series(1, %(locations)s) AS g
    """)
    # Patients: history patients 1..hp, then one patient per upcoming visit.
    step("patients", """
        INSERT INTO patients (id, external_id, first_name, last_name, phone, email, timezone,
                              preferred_channel, sms_opted_out, welcomed_at, notes, created_at, updated_at)
        SELECT g, 'pat-' || g, 'Pat' || g, 'Example', '+1415' || lpad((g %% 10000000)::text, 7, '0'),
               NULL, %(zone)s, 'sms', false, %(now)s - interval '5 years', '',
               %(now)s - interval '5 years', %(now)s - interval '5 years'
        FROM generate_series(1, %(hp)s + %(upcoming)s) AS g
    """)
    # History: past, completed maintenance visits spread over five years.
    step("appointments (history)", """
        INSERT INTO appointments (id, external_id, patient_id, kind, number_in_course, starts_at,
                                  duration_minutes, location, location_id, status, needs_planning,
                                  created_at, updated_at)
        SELECT g, 'appt-' || g, 1 + (g - 1) %% %(hp)s, 'maintenance', 1,
               %(now)s - interval '2 days' - make_interval(mins => ((g::bigint * 7919) %% (1800 * 24 * 60))::int),
               60, 'Suite 200', """ + location_of("g") + """, 'completed', false,
               %(now)s - interval '5 years', %(now)s - interval '5 years'
        FROM generate_series(1, %(history)s) AS g
    """)
    # Upcoming: batch r (r = 0..repeats-1) has `due` later-induction visits 23 h 45 min after
    # pass r, so their 24 h reminders fall due 15 minutes before pass r, after pass r - 1.
    step("appointments (upcoming)", """
        INSERT INTO appointments (id, external_id, patient_id, kind, number_in_course, starts_at,
                                  duration_minutes, location, location_id, status, needs_planning,
                                  created_at, updated_at)
        SELECT %(history)s + g, 'appt-' || (%(history)s + g), %(hp)s + g, 'induction', 2,
               %(now)s + make_interval(mins => 23 * 60 + 45 + 60 * ((g - 1) / %(due)s)), 60, 'Suite 200',
               """ + location_of("g") + """, 'scheduled', false,
               %(now)s - interval '10 days', %(now)s - interval '10 days'
        FROM generate_series(1, %(upcoming)s) AS g
    """)
    # Three sent rows per history visit.
    step("outbox (history, sent)", """
        INSERT INTO outbox (dedupe_key, patient_id, appointment_id, location_id, from_address, kind, rule,
                            channel, planned_for, due_at, status, attempts, to_address, body, segments,
                            provider_id, provider_status, queued_at, claimed_at, sent_at, delivered_at,
                            created_at, updated_at)
        SELECT 'appt:' || a.id || ':' || r.rule || ':sms', a.patient_id, a.id, a.location_id,
               '+1212555010' || a.location_id, r.kind, r.rule, 'sms',
               a.starts_at + r.offs, a.starts_at + r.offs, 'sent', 1,
               '+1415' || lpad((a.patient_id %% 10000000)::text, 7, '0'), %(body)s, 2,
               'SM' || md5(a.id::text || r.rule), 'delivered',
               a.starts_at + r.offs, a.starts_at + r.offs, a.starts_at + r.offs,
               a.starts_at + r.offs + interval '5 seconds',
               a.starts_at - interval '30 days', a.starts_at + r.offs
        FROM appointments a
        CROSS JOIN (VALUES ('maintenance_7d', 'reminder', interval '-7 days'),
                           ('maintenance_24h', 'reminder', interval '-24 hours'),
                           ('checkin_day_after', 'checkin', interval '1 day')) AS r(rule, kind, offs)
        WHERE a.id <= %(history)s
    """)
    # Upcoming visits: the 24 h reminder (due 15 minutes before its pass) and the later
    # check-in and rebooking nudge, planned but far from due.
    step("outbox (upcoming, planned)", """
        INSERT INTO outbox (dedupe_key, patient_id, appointment_id, location_id, kind, rule, channel,
                            planned_for, due_at, status, attempts, created_at, updated_at)
        SELECT 'appt:' || a.id || ':' || r.rule || ':sms', a.patient_id, a.id, a.location_id, r.kind, r.rule, 'sms',
               a.starts_at + r.offs, a.starts_at + r.offs, 'planned', 0,
               %(now)s - interval '10 days', %(now)s - interval '10 days'
        FROM appointments a
        CROSS JOIN (VALUES ('induction_24h', 'reminder', interval '-24 hours'),
                           ('checkin_day_after', 'checkin', interval '27 hours'),
                           ('rebook_nudge', 'nudge', interval '4 days 3 hours')) AS r(rule, kind, offs)
        WHERE a.id > %(history)s
    """)
    conn.execute("SET session_replication_role = origin")
    for table in ("locations", "patients", "appointments", "outbox"):
        conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                     f"coalesce((SELECT max(id) FROM {table}), 1), (SELECT count(*) > 0 FROM {table}))")
    conn.commit()
    started = time.perf_counter()
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE locations")
    conn.execute("VACUUM ANALYZE patients")
    conn.execute("VACUUM ANALYZE appointments")
    conn.execute("VACUUM ANALYZE outbox")
    conn.autocommit = False
    timings["vacuum analyze"] = time.perf_counter() - started
    return timings


def book_handful(conn: psycopg.Connection, now: datetime, repeat: int, locations: int) -> None:
    """A few visits booked just now (first infusions in 10 days): the planner must plan them."""
    conn.execute("""
        INSERT INTO appointments (external_id, patient_id, kind, number_in_course, starts_at,
                                  duration_minutes, location, location_id, status, needs_planning,
                                  created_at, updated_at)
        SELECT 'new-' || %(r)s || '-' || g, (SELECT max(id) FROM patients) - g, 'induction', 1,
               %(now)s + interval '10 days' + make_interval(mins => g), 60, 'Suite 200',
               """ + location_of("g") + """, 'scheduled', true, %(now)s, %(now)s
        FROM generate_series(1, %(n)s) AS g
    """, {"r": repeat, "now": now, "n": HANDFUL, "locations": locations})
    conn.commit()


# -- timing ----------------------------------------------------------------------------------

@dataclass
class PassResult:
    seconds: float
    phases: dict[str, float]
    summary: dict[str, int]
    statements: dict[str, list[float]] = field(default_factory=dict)


class StatementTimer:
    """Seconds per SQL statement text on one engine, with the last parameters seen."""

    def __init__(self, engine):
        self.engine = engine
        self.times: dict[str, list[float]] = defaultdict(list)
        self.params: dict[str, object] = {}
        self.active = False
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        started = conn.info["bench_started"].pop()
        if self.active:
            self.times[statement].append(time.perf_counter() - started)
            self.params[statement] = parameters

    def take(self) -> dict[str, list[float]]:
        taken, self.times = dict(self.times), defaultdict(list)
        return taken


def noop_channels(settings) -> dict[str, NoopChannel]:
    """What a sending number's texts go by here: nothing leaves the process."""
    return {"sms": NoopChannel("sms", settings.twilio_from), "email": NoopChannel("email", settings.mail_from)}


def timed_pass(settings, sessions, now: datetime, timer: StatementTimer) -> PassResult:
    import reminders.pipeline as pipeline
    import reminders.sending.numbers as sending_numbers
    from reminders.dispatch import InProcessDispatcher

    phases: dict[str, float] = defaultdict(float)
    real_prepare, real_due_ids, real_send = pipeline.prepare, pipeline.due_ids, InProcessDispatcher.hand_off
    real_channels_for = sending_numbers.channels_for

    def wrap(name, fn):
        def wrapped(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                phases[name] += time.perf_counter() - started
        return wrapped

    pipeline.prepare = wrap("plan", real_prepare)
    pipeline.due_ids = wrap("dispatch", real_due_ids)
    InProcessDispatcher.hand_off = wrap("send", real_send)
    sending_numbers.channels_for = noop_channels  # each location's own number
    channels = noop_channels(settings)
    timer.take()
    timer.active = True
    try:
        started = time.perf_counter()
        summary = pipeline.run_pass(settings, now, sessions=sessions, channels=channels)
        seconds = time.perf_counter() - started
    finally:
        timer.active = False
        pipeline.prepare, pipeline.due_ids, InProcessDispatcher.hand_off = real_prepare, real_due_ids, real_send
        sending_numbers.channels_for = real_channels_for
    return PassResult(seconds, dict(phases), summary, timer.take())


# -- one size --------------------------------------------------------------------------------

@dataclass
class SizeResult:
    size: int
    appointments: int
    outbox_rows: int
    load_seconds: float
    passes: list[PassResult]
    explain: list[tuple[str, str]] = field(default_factory=list)

    def median(self, key=lambda p: p.seconds) -> float:
        return statistics.median(key(p) for p in self.passes)


@dataclass
class Loaded:
    """One size's schema, loaded, with what a pass needs."""

    size: int
    schema: str
    url: str
    conn: psycopg.Connection
    settings: object
    sessions: object
    timer: StatementTimer
    result: SizeResult
    locations: int


def load_size(base_url: str, admin: psycopg.Connection, size: int, due: int, repeats: int, locations: int,
              log) -> Loaded:
    from reminders.config import Settings
    from reminders.db import get_engine, session_factory
    from reminders.migrations import upgrade

    schema = f"bench_{size}_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    url = schema_url(base_url, schema)
    started = time.perf_counter()
    upgrade(url)
    conn = psycopg.connect(libpq_url(base_url), options=f"-csearch_path={schema}")
    steps = load(conn, size, due, repeats, locations)
    appointments = conn.execute("SELECT count(*) FROM appointments").fetchone()[0]
    outbox_rows = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    conn.commit()
    load_seconds = time.perf_counter() - started
    log(f"  {size:,}: loaded {appointments:,} appointments, {outbox_rows:,} outbox rows in {load_seconds:.1f} s ("
        + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items()) + ")")
    settings = Settings(database_url=url, data_dir=Path("/tmp") / schema)
    sessions = session_factory(url)
    timer = StatementTimer(get_engine(url))
    # Warm-up: connections, compiled statement cache, templates. Nothing is due yet.
    timed_pass(settings, sessions, BASE_NOW - timedelta(days=1), timer)
    return Loaded(size, schema, url, conn, settings, sessions, timer,
                  SizeResult(size, appointments, outbox_rows, load_seconds, []), locations)


def one_pass(loaded: Loaded, repeat: int, due: int, log) -> None:
    now = pass_instant(repeat)
    book_handful(loaded.conn, now, repeat, loaded.locations)
    result = timed_pass(loaded.settings, loaded.sessions, now, loaded.timer)
    # A due reminder may go as several texts (the parts that follow it go at once), so the pass
    # must have sent every due message and left none of them waiting.
    firsts, waiting = loaded.conn.execute("""
        SELECT count(*) FILTER (WHERE status = 'sent' AND due_at < %(now)s),
               count(*) FILTER (WHERE status IN ('planned', 'queued', 'sending') AND due_at <= %(now)s)
        FROM outbox WHERE due_at > %(now)s - interval '1 hour' AND due_at <= %(now)s
    """, {"now": now}).fetchone()
    loaded.conn.commit()
    if firsts != due or waiting or result.summary.get("sent", 0) < due:
        raise SystemExit(f"{loaded.size:,}: pass {repeat} at {now.isoformat()} sent {firsts} of the {due} due "
                         f"messages, {waiting} left waiting: {result.summary}")
    log(f"  {loaded.size:,} pass {repeat + 1}: {result.seconds:.3f} s  "
        + "  ".join(f"{k} {v:.3f}" for k, v in result.phases.items()) + f"  {result.summary}")
    loaded.result.passes.append(result)


def run_sizes(base_url: str, sizes: list[int], due: int, repeats: int, locations: int, explain: bool,
              keep: bool, log) -> list[SizeResult]:
    """Load every size first, then alternate their passes (small, large, small, large, ...), so
    that whatever else the machine is doing weighs on both sizes alike."""
    from reminders.db import dispose_engines, get_engine

    admin = psycopg.connect(libpq_url(base_url), autocommit=True)
    loaded: list[Loaded] = []
    try:
        log("loading:")
        for size in sizes:
            loaded.append(load_size(base_url, admin, size, due, repeats, locations, log))
        log("passes:")
        for repeat in range(repeats):
            for one in loaded:
                one_pass(one, repeat, due, log)
        for one in loaded:
            one.result.outbox_rows = one.conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
            senders = one.conn.execute("SELECT coalesce(nullif(from_address, ''), 'TWILIO_FROM'), count(*) FROM outbox "
                                       "WHERE sent_at >= %s GROUP BY 1 ORDER BY 1", (BASE_NOW,)).fetchall()
            log(f"  {one.size:,}: sent during the passes, by sender: "
                + ", ".join(f"{sender} {count:,}" for sender, count in senders))
            one.conn.commit()
            if explain:
                one.result.explain = explain_slowest(get_engine(one.url), one.timer, one.result.passes)
        return [one.result for one in loaded]
    finally:
        for one in loaded:
            one.conn.close()
        dispose_engines()
        for schema in [one.schema for one in loaded]:
            if keep:
                log(f"kept schema {schema}")
            else:
                admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


def statement_totals(passes: list[PassResult]) -> list[tuple[str, float, int]]:
    """(statement, median seconds per pass, executions per pass), slowest first."""
    per_pass: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, int] = {}
    for result in passes:
        for statement, times in result.statements.items():
            per_pass[statement].append(sum(times))
            counts[statement] = len(times)
    rows = [(s, statistics.median(v + [0.0] * (len(passes) - len(v))), counts[s]) for s, v in per_pass.items()]
    return sorted(rows, key=lambda row: -row[1])


def explain_slowest(engine, timer: StatementTimer, passes: list[PassResult], top: int = 5) -> list[tuple[str, str]]:
    """The `top` slowest statements, and every statement run only a few times per pass (the
    planner's and dispatcher's reads: the ones that would scan a table if an index were missing)."""
    plans = []
    totals = statement_totals(passes)
    chosen = totals[:top] + [row for row in totals[top:] if row[2] <= 5]
    for statement, _seconds, _count in chosen:
        if not statement.lstrip().upper().startswith(("SELECT", "UPDATE", "INSERT", "DELETE")):
            continue
        params = timer.params.get(statement)
        if isinstance(params, (list, tuple)) and params and isinstance(params[0], (dict, list, tuple)):
            continue  # an executemany: EXPLAIN takes one set of parameters
        with engine.connect() as connection:
            transaction = connection.begin()
            try:
                result = connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
                plans.append((statement, "\n".join(row[0] for row in result)))
            finally:
                transaction.rollback()
    return plans


# -- report ----------------------------------------------------------------------------------

def short_sql(statement: str, width: int = 110) -> str:
    text = " ".join(statement.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def report(results: list[SizeResult], due: int, locations: int, out) -> None:
    smallest = results[0]
    where = f"across {locations} locations" if locations else "no locations stored"
    print("", file=out)
    print(f"One pass, {due} due messages, {where}, median (min) of {len(smallest.passes)} passes, "
          "no-op channel", file=out)
    print("", file=out)
    header = ("| appointments | outbox rows | pass s median (min) | plan ms | dispatch ms | send ms "
              "| ms per due message | large/small |")
    print(header, file=out)
    print("|---:|---:|---:|---:|---:|---:|---:|---:|", file=out)
    for result in results:
        ratio = result.median() / smallest.median()
        print(f"| {result.appointments:,} | {result.outbox_rows:,} | {result.median():.3f} "
              f"({min(p.seconds for p in result.passes):.3f}) "
              f"| {1000 * result.median(lambda p: p.phases.get('plan', 0)):.0f} "
              f"| {1000 * result.median(lambda p: p.phases.get('dispatch', 0)):.0f} "
              f"| {1000 * result.median(lambda p: p.phases.get('send', 0)):.0f} "
              f"| {1000 * result.median() / due:.2f} | {ratio:.2f} |", file=out)
    print("", file=out)
    for result in results:
        print(f"Slowest statements of a pass at {result.appointments:,} appointments "
              "(median seconds per pass, executions per pass):", file=out)
        for statement, seconds, count in statement_totals(result.passes)[:6]:
            print(f"  {seconds:8.3f} s  x{count:<5} {short_sql(statement)}", file=out)
        print("", file=out)
    for result in results:
        for statement, plan in result.explain:
            print(f"EXPLAIN (ANALYZE, BUFFERS) at {result.appointments:,} appointments: {short_sql(statement)}", file=out)
            print(plan, file=out)
            print("", file=out)


def machine() -> str:
    cpus = os.cpu_count()
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    try:
        mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
        memory = f"{mem_kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, StopIteration):
        memory = "RAM unknown"
    return f"{cpus} CPU ({model}), {memory}, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--sizes", default="10000,1000000", help="appointment counts, comma-separated")
    parser.add_argument("--due", type=int, default=1000, help="messages due in each timed pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per size (each on fresh due rows)")
    parser.add_argument("--locations", type=int, default=3,
                        help="locations the visits are spread over (0: none stored, a single-location clinic)")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the slowest statements")
    parser.add_argument("--keep", action="store_true", help="keep the schemas (default: drop them)")
    args = parser.parse_args(argv)
    if args.repeats > 10:
        parser.error("--repeats above 10 would put a pass in New York's quiet hours")
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("reminders").setLevel(logging.WARNING)

    with psycopg.connect(libpq_url(args.database_url)) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]
    log(f"machine: {machine()}; PostgreSQL {server}; load average {load_average()}")
    if args.locations < 0:
        parser.error("--locations must be 0 or more")
    results = run_sizes(args.database_url, sizes, args.due, args.repeats, args.locations, args.explain,
                        args.keep, log)
    print(f"machine: {machine()}; PostgreSQL {server}; load average at the end {load_average()}")
    report(results, args.due, args.locations, sys.stdout)
    if len(results) > 1:
        ratio = results[-1].median() / results[0].median()
        best = min(p.seconds for p in results[-1].passes) / min(p.seconds for p in results[0].passes)
        verdict = "meets" if ratio <= 1.5 else "MISSES"
        print(f"ratio largest/smallest: {ratio:.2f} by median, {best:.2f} by fastest pass "
              f"({verdict} the 1.5x target)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
