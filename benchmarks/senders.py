"""Several sending numbers paced side by side: a clinic's locations, each texting from its own number.

    python benchmarks/senders.py [--database-url URL] [--redis-url URL] [--locations 10]
                                 [--due 500] [--rate 10]

Ten locations (`--locations`), each with its own number paced at `--rate` texts a second
(`sms_per_second`), and a backlog of `--due` SMS reminders due at once, spread evenly over them, in
a fresh PostgreSQL schema. Each location's rows are together (its visits came in one import), the
order in which one sending loop would wait out each number's pace in turn. One `reminders tick` pass (reminders.pipeline.run_pass, sending in this
process) hands them to the loopback fake Twilio server (tests/fakes/twilio_server), which answers in
about a millisecond. Each reminder is one text (the shipped templates cut to their first text, as
tests/processes.one_text_templates does). The table shows the rate
of the whole pass (about locations x rate: 100 a second) and each number's rate as the fake
received it (about `--rate` each). 500 texts at 100 a second take about 5 s; the run stops well
inside 30 s.

The bucket is Redis's (`--redis-url`, '' for the one in this process), as in production.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from benchmarks.dispatch import DEFAULT_URL, drop, libpq_url, schema_url  # noqa: E402

# 15:00 UTC = 10:00 in New York in March: outside quiet hours.
NOW = datetime(2026, 3, 3, 15, 0, tzinfo=timezone.utc)
ZONE = "America/New_York"
CLINIC_FROM = "+14155550100"
TIME_LIMIT = 30.0


def location_number(n: int) -> str:
    return f"+1512555{n:04d}"


def load(base_url: str, locations: int, due: int, rate: float) -> str:
    """A fresh schema with `locations` locations and `due` patients, each with a visit tomorrow
    whose 24 h SMS reminder is due now, the first due / locations at the first location, and so
    on. Returns the schema's URL."""
    from reminders.db import session_factory
    from reminders.locations import save_location
    from reminders.migrations import upgrade

    schema = f"bench_senders_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq_url(base_url), autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    url = schema_url(base_url, schema)
    upgrade(url)
    with session_factory(url)() as session:
        ids = [save_location(session, {"code": f"site-{n}", "name": f"Site {n}", "sender": location_number(n),
                                       "sms_per_second": str(rate)}).id for n in range(locations)]
        session.commit()
    params = {"now": NOW, "due": due, "zone": ZONE, "ids": ids, "start": NOW + timedelta(hours=23, minutes=45)}
    with psycopg.connect(libpq_url(base_url), options=f"-csearch_path={schema}") as conn:
        conn.execute("""
            INSERT INTO patients (id, external_id, first_name, last_name, phone, timezone, preferred_channel,
                                  sms_opted_out, welcomed_at, notes, created_at, updated_at)
            SELECT g, 'pat-' || g, 'Alex', 'Example', '+1415' || lpad(g::text, 7, '0'), %(zone)s, 'sms', false,
                   %(now)s - interval '30 days', '', %(now)s - interval '30 days', %(now)s - interval '30 days'
            FROM generate_series(1, %(due)s::int) AS g""", params)
        conn.execute("""
            INSERT INTO appointments (id, external_id, patient_id, kind, number_in_course, starts_at,
                                      duration_minutes, location, location_id, status, needs_planning,
                                      created_at, updated_at)
            SELECT g, 'appt-' || g, g, 'induction', 2, %(start)s, 60, 'Suite 200',
                   (%(ids)s::int[])[1 + (g - 1) * cardinality(%(ids)s::int[]) / %(due)s], 'scheduled', false,
                   %(now)s - interval '10 days', %(now)s - interval '10 days'
            FROM generate_series(1, %(due)s::int) AS g""", params)
        conn.execute("""
            INSERT INTO outbox (dedupe_key, patient_id, appointment_id, location_id, kind, rule, channel,
                                planned_for, due_at, status, attempts, created_at, updated_at)
            SELECT 'appt:' || a.id || ':induction_24h:sms', a.patient_id, a.id, a.location_id, 'reminder',
                   'induction_24h', 'sms', %(now)s - interval '15 minutes', %(now)s - interval '15 minutes',
                   'planned', 0, %(now)s - interval '10 days', %(now)s - interval '10 days'
            FROM appointments a""", params)
        for table in ("patients", "appointments", "outbox"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.commit()
    return url


def send_backlog(url: str, twilio, redis_url: str, data_dir: Path) -> tuple[float, dict]:
    """One pass over the backlog. Returns (seconds, the pass's summary)."""
    from reminders import pipeline
    from reminders.config import Settings
    from reminders.db import session_factory
    from tests.processes import one_text_templates

    settings = Settings(database_url=url, data_dir=data_dir, redis_url=redis_url,
                        templates_dir=one_text_templates(data_dir / "templates"),
                        twilio_account_sid=twilio.account_sid, twilio_auth_token=twilio.auth_token,
                        twilio_from=CLINIC_FROM, twilio_api_base_url=twilio.url)
    started = time.perf_counter()
    summary = pipeline.run_pass(settings, NOW, sessions=session_factory(url))
    return time.perf_counter() - started, summary


def rate_of(moments: list[datetime]) -> float:
    span = (max(moments) - min(moments)).total_seconds()
    return (len(moments) - 1) / span if span > 0 else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"))
    parser.add_argument("--locations", type=int, default=10)
    parser.add_argument("--due", type=int, default=500)
    parser.add_argument("--rate", type=float, default=10.0, help="each number's texts a second")
    args = parser.parse_args()
    if args.due / (args.locations * args.rate) > TIME_LIMIT / 2:
        raise SystemExit(f"{args.due} texts over {args.locations} numbers at {args.rate:g}/s would take longer "
                         f"than {TIME_LIMIT / 2:.0f} s: send fewer")
    with tempfile.TemporaryDirectory(prefix="bench-senders-") as data_dir:
        os.environ["REMINDERS_DATA_DIR"] = data_dir  # the metrics and the local outbox, not the checkout's
        seconds, summary, received = run(args, Path(data_dir))
    report(args, seconds, summary, received)


def run(args, data_dir: Path) -> tuple[float, dict, list[dict]]:
    from reminders.logs import configure_logging
    from tests.fakes.twilio_server import FakeTwilio

    configure_logging(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the fake server's access log
    url = load(args.database_url, args.locations, args.due, args.rate)
    try:
        with FakeTwilio() as twilio:
            seconds, summary = send_backlog(url, twilio, args.redis_url, data_dir)
            return seconds, summary, list(twilio.messages)
    finally:
        drop(args.database_url, url)


def report(args, seconds: float, summary: dict, received: list[dict]) -> None:
    if summary.get("sent") != args.due or len(received) != args.due:
        raise SystemExit(f"the pass sent {summary.get('sent')} ({len(received)} reached the fake), expected "
                         f"{args.due}: {summary}")
    by_number: dict[str, list[datetime]] = {}
    for message in received:
        by_number.setdefault(message["from_"], []).append(message["received_at"])
    rates = {number: rate_of(moments) for number, moments in sorted(by_number.items())}
    load_avg = os.getloadavg()
    bucket = "Redis" if args.redis_url else "in-process"
    print(f"\n{args.due:,} SMS due over {args.locations} locations' numbers at {args.rate:g}/s each "
          f"({bucket} bucket), load average {load_avg[0]:.2f} on {os.cpu_count()} CPU(s)\n")
    print("| sender | texts | rate held |")
    print("|---|---|---|")
    for number, moments in sorted(by_number.items()):
        print(f"| {number} | {len(moments)} | {rates[number]:.2f} msg/s |")
    print(f"| all ({len(by_number)} numbers, median {statistics.median(rates.values()):.2f}/s) | {len(received)} "
          f"| {rate_of([m['received_at'] for m in received]):.1f} msg/s ({args.due / seconds:.1f} msg/s over the "
          f"whole pass, {seconds:.1f} s; target {args.locations * args.rate:g}) |")


if __name__ == "__main__":
    main()
