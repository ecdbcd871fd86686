"""`reminders import FILE.csv`: appointments from a CSV file, with a progress bar on a terminal."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from reminders.cli.common import ensure_database, main
from reminders.config import get_settings


@main.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_file(file: Path, as_json: bool) -> None:
    """Import appointments from a CSV file. Exit 0: all rows taken; 1: some rejected; 2: unusable file.

    Rows are committed in batches: an import that is stopped keeps what it had written, and
    running it again is safe. On a terminal a progress bar shows rows per second."""
    from reminders.db import session_scope
    from reminders.intake.csv_file import UnusableFile, count_lines, read_text
    from reminders.intake.csv_import import import_csv_text
    from reminders.intake.records import VisitWindow, visit_window
    from reminders.models import utcnow

    settings = get_settings()
    # on_batch runs before its batch commits: when it runs, the batches before it are in.
    done = {"committed": 0, "pending": 0}

    def track(lines: int) -> None:
        done["committed"], done["pending"] = done["pending"], lines

    def import_with(on_batch):
        now = utcnow()
        with session_scope() as session, visit_window(VisitWindow.from_settings(settings, now)):
            return import_csv_text(session, text, now, phone_region=settings.default_phone_region,
                                   series_length=settings.induction_series_length, on_batch=on_batch)

    try:
        text = read_text(file)
        ensure_database()
        total = count_lines(text)
        if sys.stdout.isatty() and sys.stderr.isatty() and total:
            report = _with_progress_bar(file.name, total, track, import_with)
        else:
            report = import_with(lambda results, lines: track(lines))
    except UnusableFile as exc:
        click.echo(f"error: {file}: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo(f"\nstopped: the rows up to line {done['committed'] + 1} at least are imported; "
                   "run the same command again to finish (rows already in are left unchanged)", err=True)
        sys.exit(130)
    summary = report.summary()
    if as_json:
        click.echo(json.dumps(summary))
    else:
        for row in report.rejected:
            click.echo(f"line {row.line}: rejected{f' ({row.external_id})' if row.external_id else ''}: {'; '.join(row.reasons)}", err=True)
        click.echo(
            f"{summary['rows']} rows: {summary['created']} created, {summary['updated']} updated, "
            f"{summary['unchanged']} unchanged, {summary['rejected']} rejected"
        )
    sys.exit(report.exit_code)


def _with_progress_bar(name: str, total: int, track, import_with):
    """Run the import under a rich progress bar (lines of the file, rows per second, refused rows)."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[rate]} rows/s"), TextColumn("{task.fields[refused]} refused"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(f"importing {name}", total=total, rate="-", refused=0)
        refused = 0

        def on_batch(results, lines: int) -> None:
            nonlocal refused
            track(lines)
            refused += sum(1 for row in results if row.result == "rejected")
            elapsed = progress.tasks[0].elapsed or 0
            rate = f"{lines / elapsed:,.0f}" if elapsed else "-"
            progress.update(task, completed=lines, rate=rate, refused=refused)

        report = import_with(on_batch)
        progress.update(task, completed=total)
    return report
