"""How fast `reminders import` takes a clinic-sized CSV file on PostgreSQL, and how long the
passes after it take to plan what it brought (a script, not a timed test).

    python benchmarks/csv_import.py [--database-url URL] [--rows 50000] [--patients 20000]
                                    [--bad 50] [--batch-size 500] [--no-passes] [--keep]

Writes a realistic file (about --patients patients, some with several visits, a few rows of
every kind of mistake), creates a fresh PostgreSQL schema, migrates it with
`reminders.migrations.upgrade`, and imports the file twice through the same code as the command
line (`import_csv_text`, one transaction per batch): the first run creates everything, the
second is all no-ops. Prints rows, seconds, rows/s and refused rows for each run.

Then the passes (unless --no-passes), each through a channel that returns a receipt at once
(provider latency is not measured) and with quiet hours off (the figures do not depend on the
hour it runs): beat's scheduled pass, which plans for at most its planning budget
(`reminders.pipeline.SCHEDULED_PLANNING_SECONDS`) before it hands out what is due, timed on a copy
of the imported visits' marks; and `reminders tick`'s pass, which plans every imported visit and
sends all that is due. Prints each pass's seconds, the planning part of them, the visits planned
and the planning rate. The schema is dropped at the end unless --keep.

The URL comes from --database-url, else BENCH_DATABASE_URL, else
postgresql+psycopg://postgres@127.0.0.1:5432/test.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, func, select, text  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HEADER = ("external_id,patient_external_id,first_name,last_name,phone,email,timezone,preferred_channel,kind,"
          "starts_at,duration_minutes,location,status")
ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "America/Phoenix")
FIRST = ("Maya", "Sam", "Ana", "Lee", "Kim", "Jo", "Ravi", "Ines", "Tomás", "Noor", "Eli", "Ada")
LAST = ("Lopez", "Okafor", "Diaz", "Park", "Ng", "Smith", "García", "Nguyen", "Khan", "Müller")
AREA_CODES = ("202", "212", "312", "415", "512", "617", "713", "206", "303", "404")
BAD_ROWS = (
    lambda r: r.replace(",induction,", ",booster,", 1).replace(",maintenance,", ",booster,", 1),  # kind
    lambda r: re.sub(r"([+-]\d\d:\d\d),", ",", r, count=1),  # no offset
    lambda r: ",".join(("x" * 200 if i == 2 else c) for i, c in enumerate(r.split(","))),  # a 200-character name
    lambda r: ",".join(("9999-12-31T23:00:00-05:00" if i == 9 else c) for i, c in enumerate(r.split(","))),
    lambda r: ",".join(("Mars/Olympus" if i == 6 else c) for i, c in enumerate(r.split(","))),  # time zone
    lambda r: ",".join(r.split(",")[:10]),  # a short row
)


def make_file(path: Path, rows: int, patients: int, bad: int, now: datetime, seed: int = 7) -> None:
    rng = random.Random(seed)
    people = []
    for n in range(patients):
        zone = rng.choice(ZONES)
        channel = rng.choices(("sms", "email", "both"), weights=(70, 10, 20))[0]
        phone = f"({rng.choice(AREA_CODES)}) 555-{n % 10000:04d}" if n % 3 else f"+1{rng.choice(AREA_CODES)}555{n % 10000:04d}"
        email = f"patient{n}@example.org" if channel != "sms" or n % 2 else ""
        people.append((f"pat-{n:06d}", rng.choice(FIRST), rng.choice(LAST), phone, email, zone, channel))
    bad_at = set(rng.sample(range(rows), bad))
    lines = [HEADER]
    # Every patient gets a first visit; the rest go to a third of them (a series of infusions).
    owners = list(range(patients)) + [rng.randrange(patients // 3) for _ in range(max(rows - patients, 0))]
    for n, owner in enumerate(owners[:rows]):
        pid, first, last, phone, email, zone, channel = people[owner]
        day = now.astimezone(ZoneInfo(zone)).date() + timedelta(days=rng.randrange(1, 300))
        local = datetime(day.year, day.month, day.day, rng.choice((8, 9, 10, 11, 13, 14, 15)), rng.choice((0, 30)),
                         tzinfo=ZoneInfo(zone))
        kind = "induction" if rng.random() < 0.6 else "maintenance"
        status = rng.choices(("", "scheduled", "confirmed", "canceled"), weights=(60, 25, 10, 5))[0]
        row = ",".join((f"visit-{n:07d}", pid, first, last, phone, email, zone,
                        channel, kind, local.isoformat(), str(rng.choice((40, 50, 60))), "Suite 200", status))
        if n in bad_at:
            row = BAD_ROWS[len(lines) % len(BAD_ROWS)](row)
        lines.append(row)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def timed_import(url: str, path: Path, now: datetime, batch_size: int) -> tuple[int, float, int, dict]:
    from reminders.db import session_factory
    from reminders.intake.csv_file import read_text
    from reminders.intake.csv_import import import_csv_text

    with session_factory(url)() as session:
        backend = session.scalar(text("SELECT pg_backend_pid()"))
        session.commit()
        started, cpu, server = time.perf_counter(), time.process_time(), server_cpu(backend)
        report = import_csv_text(session, read_text(path), now, batch_size=batch_size)
        seconds = time.perf_counter() - started
        summary = report.summary()
        summary["cpu"] = time.process_time() - cpu
        after = server_cpu(backend)
        summary["server_cpu"] = after - server if after is not None and server is not None else None
    return summary["rows"], seconds, summary["rejected"], summary


def server_cpu(pid: int) -> float | None:
    """CPU seconds of a PostgreSQL backend, when the server runs on this machine (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class NoopChannel:
    """A provider that answers at once: the passes' own work is measured, not the network's."""

    def __init__(self, name: str):
        self.name = name

    def send(self, message):
        from reminders.channels import Receipt

        return Receipt(provider_id=f"noop-{message.reference}", status="sent")


def timed_pass(url: str, schema: str, now: datetime, **options) -> dict:
    """One pass of `reminders.pipeline.run_pass` at `now`: its seconds, the planner's share, the
    visits it planned and its summary."""
    import reminders.pipeline as pipeline
    from reminders.config import Settings

    settings = Settings(database_url=url, data_dir=Path(tempfile.gettempdir()) / schema,
                        quiet_hours_start="00:00", quiet_hours_end="00:00")
    planning = {"seconds": 0.0}
    real_plan_pending = pipeline.plan_pending

    def timed_plan_pending(*args, **kwargs):
        started = time.perf_counter()
        try:
            return real_plan_pending(*args, **kwargs)
        finally:
            planning["seconds"] += time.perf_counter() - started

    marked_before = marked(url)
    pipeline.plan_pending = timed_plan_pending
    try:
        started = time.perf_counter()
        summary = pipeline.run_pass(settings, now, channels={"sms": NoopChannel("sms"), "email": NoopChannel("email")},
                                    **options)
        seconds = time.perf_counter() - started
    finally:
        pipeline.plan_pending = real_plan_pending
    return {"seconds": seconds, "planning": planning["seconds"], "visits": marked_before - marked(url),
            "left": marked(url), "summary": summary}


def marked(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.scalar(text("SELECT count(*) FROM appointments WHERE needs_planning "
                                          "AND planning_error IS NULL"))
    finally:
        engine.dispose()


def timed_passes(url: str, schema: str, now: datetime) -> list[tuple[str, dict]]:
    """Beat's scheduled pass, then `reminders tick`'s pass at the same instant."""
    import reminders.pipeline as pipeline

    passes = []
    budget = getattr(pipeline, "SCHEDULED_PLANNING_SECONDS", None)  # None: code from before issue 25
    if budget is not None:
        # The scheduled pass is timed in a copy of the schema's marks: the tick after it plans
        # every imported visit as if the scheduled pass had not run.
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE bench_marked AS SELECT id FROM appointments WHERE needs_planning"))
        passes.append((f"scheduled pass ({budget:.0f} s budget)", timed_pass(url, schema, now, scheduled=True)))
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM outbox"))
            connection.execute(text("UPDATE patients SET welcomed_at = NULL"))
            connection.execute(text("UPDATE appointments SET needs_planning = true, planning_error = NULL "
                                    "WHERE id IN (SELECT id FROM bench_marked)"))
            connection.execute(text("DROP TABLE bench_marked"))
        engine.dispose()
    passes.append(("reminders tick", timed_pass(url, schema, now)))
    return passes


def print_passes(passes: list[tuple[str, dict]]) -> None:
    print(f"\nPasses after the import (no-op provider, quiet hours off), load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'pass':<34}{'seconds':>9}{'planning s':>12}{'visits planned':>16}{'visits/s':>10}"
          f"{'rows planned':>14}{'sent':>7}{'left':>8}")
    for name, result in passes:
        rate = result["visits"] / result["planning"] if result["planning"] else 0
        summary = result["summary"]
        print(f"{name:<34}{result['seconds']:>9.1f}{result['planning']:>12.1f}{result['visits']:>16,}{rate:>10,.0f}"
              f"{summary.get('planned', 0):>14,}{summary.get('sent', 0):>7,}{result['left']:>8,}")
    print("(left: visits still marked for planning after the pass, for the next passes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--bad", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--no-passes", dest="passes", action="store_false",
                        help="only the imports, not the passes after them")
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    args = parser.parse_args()

    from reminders.db import dispose_engines
    from reminders.migrations import upgrade
    from reminders.models import Appointment, Patient

    now = datetime.now(timezone.utc)
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    schema = f"bench_csv_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{args.database_url}{'&' if '?' in args.database_url else '?'}options=-csearch_path%3D{schema}"
    try:
        upgrade(url)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "visits.csv"
            started = time.perf_counter()
            make_file(path, args.rows, args.patients, args.bad, now)
            print(f"file: {args.rows:,} rows, {args.patients:,} patients, {args.bad} bad rows, "
                  f"{path.stat().st_size / 1e6:.1f} MB, written in {time.perf_counter() - started:.1f} s")
            runs = [("first run (creates)", *timed_import(url, path, now, args.batch_size)),
                    ("second run (no-ops)", *timed_import(url, path, now, args.batch_size))]
        engine = create_engine(url)
        with engine.connect() as connection:
            patients = connection.scalar(select(func.count()).select_from(Patient))
            visits = connection.scalar(select(func.count()).select_from(Appointment))
            planned = connection.scalar(select(func.count()).select_from(Appointment)
                                        .where(Appointment.needs_planning.is_(True)))
        engine.dispose()
        print(f"\nPostgreSQL, batch size {args.batch_size}, {os.cpu_count()} cores, "
              f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} (others' work slows the figures)")
        print(f"{'run':<22}{'rows':>8}{'seconds':>10}{'rows/s':>10}{'refused':>9}{'CPU s':>8}{'PG CPU s':>10}"
              "  created/updated/unchanged")
        for name, rows, seconds, refused, summary in runs:
            server = f"{summary['server_cpu']:.1f}" if summary["server_cpu"] is not None else "-"
            print(f"{name:<22}{rows:>8,}{seconds:>10.1f}{rows / seconds:>10,.0f}{refused:>9}{summary['cpu']:>8.1f}"
                  f"{server:>10}  {summary['created']}/{summary['updated']}/{summary['unchanged']}")
        print("(CPU s: the importing process's CPU time; PG CPU s: its PostgreSQL backend's, if local.\n"
              " On a busy machine seconds exceed their sum: the rest is waiting for a core.)")
        print(f"\nstored: {patients:,} patients, {visits:,} visits, {planned:,} marked for planning")
        reasons = {}
        for error in runs[0][4]["errors"]:
            reason = error["reasons"][0][:70]
            reasons[reason] = reasons.get(reason, 0) + 1
        print("refused rows by reason (first run):")
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1])[:8]:
            print(f"  {count:>4}  {reason}")
        if args.passes:
            print_passes(timed_passes(url, schema, now))
    finally:
        dispose_engines()
        if not args.keep:
            with admin.connect() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
