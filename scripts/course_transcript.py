"""Every message of a simulated 45-day course, as each patient received it.

    python scripts/course_transcript.py                    # all six patients
    python scripts/course_transcript.py --patient es-sms   # one: en-sms, en-email, en-both, es-sms, es-email, es-both

Runs tests/course_simulation.py (SMS-only, email-only and both, in English and Spanish: an
induction series with a moved first infusion and a missed third, a medications note, then
maintenance) against a fresh SQLite database in a temporary folder, with injected time, and prints
per patient each message in order: local date and time, channel, subject (email), body, and the
patient's replies with the answers they got. Nothing is sent anywhere.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # simulate this checkout, not an installed copy
    sys.path.insert(0, str(ROOT))


def configure_in(folder: Path):
    """The tests' `settings` fixture, outside pytest: a migrated SQLite file and a data folder."""
    from reminders.config import Settings, get_settings, reset_settings
    from reminders.migrations import upgrade

    for name in [n.upper() for n in Settings.model_fields]:
        os.environ.pop(name, None)
    os.environ.update(REMINDERS_DATA_DIR=str(folder / "data"), SECRET_KEY="transcript",
                      DATABASE_URL=f"sqlite:///{folder / 'reminders.db'}")

    def configure(**values):
        os.environ.update({name.upper(): str(value) for name, value in values.items()})
        reset_settings()
        return get_settings()

    settings = configure()
    upgrade(settings.effective_database_url)
    return configure


def show(course, person, out=sys.stdout) -> None:
    from tests.course_simulation import Reply

    zone = ZoneInfo(person.zone)
    out.write(f"\n=== {person.key}: {person.first_name} {person.last_name} "
              f"({', '.join(sorted(person.has))}; {person.language}; {person.zone}) ===\n")
    for item in course.timeline(person.key):
        when = item.at.astimezone(zone).strftime("%a %d %b %H:%M")
        if isinstance(item, Reply):
            out.write(f"\n{when}  << patient ({item.channel}): {item.text}\n")
            if item.channel == "web" and item.answer:
                out.write(textwrap.indent(textwrap.fill(f"(the page then said) {item.answer}", 100), "   ") + "\n")
            continue
        label = item.rule or "?"
        where = (f" [{item.visit_ref}]" if item.visit_ref else "") + (f" (text {item.part})" if item.part > 1 else "")
        out.write(f"\n{when}  >> {item.channel} {label}{where}\n")
        if item.subject:
            out.write(f"   Subject: {item.subject}\n")
        for line in (item.body or "").splitlines() or [""]:
            out.write(textwrap.indent(textwrap.fill(line, 100) if line else "", "   ") + "\n")
    for classification, open_, body in course.staff_tasks.get(person.key, []):
        out.write(f"\n(staff inbox: {classification}, {'open' if open_ else 'closed'}: {body})\n")


def main(argv=None) -> int:
    from tests.course_simulation import PEOPLE, Simulation, course_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patient", choices=[p.key for p in PEOPLE], action="append",
                        help="only this patient (may be repeated)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        configure = configure_in(Path(folder))
        settings = course_settings(configure)
        started = time.monotonic()
        course = Simulation(settings).run()
        wanted = [p for p in PEOPLE if not args.patient or p.key in args.patient]
        for person in wanted:
            show(course, person)
        sys.stderr.write(f"\n{course.passes} passes in {time.monotonic() - started:.1f} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
