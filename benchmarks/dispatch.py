"""Sending throughput: the project's pass against a bare loop of the same twilio calls (issue 11).

    python benchmarks/dispatch.py [--database-url URL] [--due 2000] [--rounds 2] [--profile]
                                  [--rate N] [--seconds S]

Both run in this process against the same loopback fake Twilio server (tests/fakes/twilio_server):

  * project: `reminders.pipeline.run_pass` (what `reminders tick` runs) over `--due` SMS reminders
    due at once, each a patient with a visit tomorrow, through the real Twilio channel;
  * peer: the twilio library's `messages.create` in a plain loop, same server, same count.

Rounds are interleaved (project, peer, project, peer, ...) and each gets fresh rows in a fresh
PostgreSQL schema, so load on the machine hits both alike; the table shows msg/s, the ratio of
the medians and the load average. `--profile` runs one more project round under cProfile and
prints where the time went.

`--rate N` instead measures pacing: the fake enforces N messages a second per sender (answering
429 beyond it), the project's pace is set to N, and the table shows the rate held over the run
and the number of 429 answers.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# 14:00 UTC = 09:00 in New York in March (EST): outside quiet hours.
NOW = datetime(2026, 3, 3, 14, 0, tzinfo=timezone.utc)
ZONE = "America/New_York"
FROM = "+14155550100"


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def schema_url(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def load(base_url: str, due: int) -> str:
    """A fresh schema with `due` patients, each with a second induction visit tomorrow whose
    24 h reminder is due now. Returns the schema's URL."""
    from reminders.migrations import upgrade

    schema = f"bench_dispatch_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq_url(base_url), autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    url = schema_url(base_url, schema)
    upgrade(url)
    with psycopg.connect(libpq_url(base_url), options=f"-csearch_path={schema}") as conn:
        insert_due_reminders(conn, 1, due, NOW)
        for table in ("patients", "appointments", "outbox"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return url


def insert_due_reminders(conn, first: int, last: int, now: datetime) -> None:
    """Patients `first`..`last` (ids), each with a second induction visit 23 h 45 min after `now`
    whose 24 h SMS reminder is due now (an uncommitted insert on `conn`)."""
    params = {"now": now, "first": first, "last": last, "zone": ZONE, "start": now + timedelta(hours=23, minutes=45)}
    conn.execute("""
        INSERT INTO patients (id, external_id, first_name, last_name, phone, timezone, preferred_channel,
                              sms_opted_out, welcomed_at, notes, created_at, updated_at)
        SELECT g, 'pat-' || g, (ARRAY['Alex','Maria Guadalupe','Jo','Christopher'])[1 + g %% 4], 'Example',
               '+1415' || lpad(g::text, 7, '0'), %(zone)s, 'sms', false, %(now)s - interval '30 days', '',
               %(now)s - interval '30 days', %(now)s - interval '30 days'
        FROM generate_series(%(first)s::int, %(last)s::int) AS g""", params)
    conn.execute("""
        INSERT INTO appointments (id, external_id, patient_id, kind, number_in_course, starts_at,
                                  duration_minutes, location, status, needs_planning, created_at, updated_at)
        SELECT g, 'appt-' || g, g, 'induction', 2, %(start)s, 60, 'Suite 200', 'scheduled', false,
               %(now)s - interval '10 days', %(now)s - interval '10 days'
        FROM generate_series(%(first)s::int, %(last)s::int) AS g""", params)
    conn.execute("""
        INSERT INTO outbox (dedupe_key, patient_id, appointment_id, kind, rule, channel, planned_for,
                            due_at, status, attempts, created_at, updated_at)
        SELECT 'appt:' || g || ':induction_24h:sms', g, g, 'reminder', 'induction_24h', 'sms',
               %(now)s - interval '15 minutes', %(now)s - interval '15 minutes', 'planned', 0,
               %(now)s - interval '10 days', %(now)s - interval '10 days'
        FROM generate_series(%(first)s::int, %(last)s::int) AS g""", params)


def drop(base_url: str, url: str) -> None:
    from reminders.db import dispose_engines

    dispose_engines()
    schema = url.rsplit("%3D", 1)[1]
    with psycopg.connect(libpq_url(base_url), autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def settings_for(url: str, twilio, **extra):
    from reminders.config import Settings

    return Settings(database_url=url, data_dir=Path("/tmp") / "bench-dispatch",
                    twilio_account_sid=twilio.account_sid, twilio_auth_token=twilio.auth_token,
                    twilio_from=FROM, twilio_api_base_url=twilio.url, **extra)


def project_round(base_url: str, twilio, due: int, profile: cProfile.Profile | None = None,
                  **extra) -> tuple[float, dict]:
    """One `reminders tick` pass over `due` SMS. Returns (seconds, the pass's summary)."""
    from reminders import pipeline
    from reminders.channels.twilio.client import TwilioMessaging
    from reminders.db import session_factory

    url = load(base_url, due)
    try:
        settings = settings_for(url, twilio, **extra)
        sessions = session_factory(url)
        channels = {"sms": TwilioMessaging(settings)}
        before = len(twilio.messages)
        started = time.perf_counter()
        if profile is not None:
            profile.enable()
        summary = pipeline.run_pass(settings, NOW, sessions=sessions, channels=channels)
        if profile is not None:
            profile.disable()
        seconds = time.perf_counter() - started
        if len(twilio.messages) - before != due or summary.get("sent") != due:
            raise SystemExit(f"the pass sent {summary.get('sent')} ({len(twilio.messages) - before} reached "
                             f"the fake), expected {due}: {summary}")
        return seconds, summary
    finally:
        drop(base_url, url)


def bare_round(twilio, due: int) -> float:
    """The same number of messages.create calls in a plain loop, with the twilio library alone."""
    from twilio.rest import Client

    client = Client(twilio.account_sid, twilio.auth_token)
    client.api.base_url = twilio.url
    client.edge = client.region = None
    messages = client.api.v2010.account.messages
    body = ("Hi Alex, a reminder from The Infusion Clinic: your visit is tomorrow, Tuesday, March 3 at "
            "9:30 AM, at Suite 200. Reply C to confirm or R to reschedule.")
    started = time.perf_counter()
    for n in range(due):
        messages.create(to=f"+1415{n:07d}", from_=FROM, body=body,
                        status_callback="https://clinic.example/twilio/status?outbox_id=1")
    return time.perf_counter() - started


def throughput(args) -> None:
    from tests.fakes.twilio_server import FakeTwilio

    project, bare = [], []
    with FakeTwilio() as twilio:
        bare_round(twilio, 20)  # warm-up: imports, connection pool
        for round_number in range(args.rounds):
            # The pace set far above what one process reaches: this measures the sender itself.
            seconds, _summary = project_round(args.database_url, twilio, args.due, sms_per_second=10_000)
            project.append(args.due / seconds)
            bare.append(args.due / bare_round(twilio, args.due))
            print(f"  round {round_number + 1}: project {project[-1]:.0f} msg/s, bare loop {bare[-1]:.0f} msg/s, "
                  f"load {os.getloadavg()[0]:.2f}", file=sys.stderr)
        load_avg = os.getloadavg()
        if args.profile:
            profile = cProfile.Profile()
            project_round(args.database_url, twilio, args.due, profile, sms_per_second=10_000)
            stats = pstats.Stats(profile, stream=sys.stderr)
            stats.sort_stats("cumulative").print_stats(45)
            stats.sort_stats("tottime").print_stats(25)
    p, b = statistics.median(project), statistics.median(bare)
    print(f"\n{args.due:,} SMS due, {args.rounds} interleaved round(s), load average "
          f"{load_avg[0]:.2f} / {load_avg[1]:.2f} / {load_avg[2]:.2f} on {os.cpu_count()} CPU(s)\n")
    print("| measure | project | bare `messages.create` loop | ratio |")
    print("|---|---|---|---|")
    print(f"| `reminders tick`, {args.due:,} SMS due | {p:.0f} msg/s (rounds: {', '.join(f'{x:.0f}' for x in project)}) "
          f"| {b:.0f} msg/s (rounds: {', '.join(f'{x:.0f}' for x in bare)}) | {100 * p / b:.0f} % |")


def paced(args) -> None:
    """The fake enforces `--rate` per sender; the project is paced at the same rate."""
    from tests.fakes.twilio_server import FakeTwilio

    due = args.due if args.due_given else int(args.rate * args.seconds)
    with FakeTwilio() as twilio:
        twilio.enforce_rate(args.rate)
        seconds, summary = project_round(args.database_url, twilio, due, sms_per_second=args.rate,
                                         redis_url=args.redis_url)
        accepted = [m["received_at"] for m in twilio.messages]
        refused = twilio.rate_limited
    span = (max(accepted) - min(accepted)).total_seconds()
    held = (len(accepted) - 1) / span if span > 0 else float("inf")
    load_avg = os.getloadavg()
    bucket = "Redis" if args.redis_url else "in-process"
    print(f"\n{due:,} SMS due, pace set to {args.rate:g}/s ({bucket} bucket), load average {load_avg[0]:.2f} on {os.cpu_count()} CPU(s)\n")
    print("| measure | configured | held over the run | off by | 429 answers |")
    print("|---|---|---|---|---|")
    print(f"| paced pass, {due:,} SMS | {args.rate:g} msg/s | {held:.2f} msg/s ({seconds:.1f} s in all) "
          f"| {100 * (held - args.rate) / args.rate:+.1f} % | {refused} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--due", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--rate", type=float, default=None, help="measure pacing at this many msg/s")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
                        help="with --rate: the shared bucket ('' for the in-process one)")
    parser.add_argument("--seconds", type=float, default=20.0, help="with --rate: about how long to send")
    args = parser.parse_args()
    args.due_given = args.due is not None
    args.due = args.due or 2000
    # The twilio library's request dumps and per-message info lines would be measured too.
    from reminders.logs import configure_logging
    import logging
    configure_logging(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the fake server's access log
    (paced if args.rate else throughput)(args)


if __name__ == "__main__":
    main()
