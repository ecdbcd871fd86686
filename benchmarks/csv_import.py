"""How fast `reminders import` takes a clinic-sized CSV file on PostgreSQL (a script, not a timed test).

    python benchmarks/csv_import.py [--database-url URL] [--rows 50000] [--patients 20000]
                                    [--bad 50] [--batch-size 500] [--keep]

Writes a realistic file (about --patients patients, some with several visits, a few rows of
every kind of mistake), creates a fresh PostgreSQL schema, migrates it with
`reminders.migrations.upgrade`, and imports the file twice through the same code as the command
line (`import_csv_text`, one transaction per batch): the first run creates everything, the
second is all no-ops. Prints rows, seconds, rows/s and refused rows for each run. The schema is
dropped at the end unless --keep.

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
    from reminders.intake.csv_import import import_csv_text, read_text

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--bad", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=500)
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
    finally:
        dispose_engines()
        if not args.keep:
            with admin.connect() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
