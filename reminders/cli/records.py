"""`reminders audit`, `purge` and `patient`: the audit log's chain, retention, a patient's rights."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from reminders.cli.common import ensure_database, main, parse_now
from reminders.config import get_settings


@main.group()
def audit() -> None:
    """The audit log."""


@audit.command("verify")
def audit_verify() -> None:
    """Check the audit log's hash chain; exit 1 naming the first broken row."""
    from reminders.audit_chain import verify
    from reminders.db import session_scope

    ensure_database()
    with session_scope() as session:
        verdict = verify(session)
    click.echo(verdict.describe())
    if not verdict.ok:
        sys.exit(1)


@main.command()
@click.option("--dry-run", is_flag=True, help="Count what would be blanked; change nothing.")
@click.option("--now", "now_text", help="The instant to count RETENTION_DAYS back from (ISO-8601); default: now.")
def purge(dry_run: bool, now_text: str | None) -> None:
    """Blank message bodies and inbound texts older than RETENTION_DAYS (the rows stay as metadata)."""
    from reminders.db import session_scope
    from reminders.retention import purge as run_purge

    settings = get_settings()
    if not settings.retention_days:
        click.echo("RETENTION_DAYS is not set (0): everything is kept, nothing to purge")
        return
    ensure_database()
    with session_scope() as session:
        report = run_purge(session, parse_now(now_text), settings.retention_days, dry_run=dry_run)
    click.echo(json.dumps(report.as_dict(), indent=2))


@main.group()
def patient() -> None:
    """A patient's rights: everything stored about them, and erasure. ID is the patient's external_id
    (the clinic system's id, as in the CSV and the API)."""


@patient.command("export")
@click.argument("external_id")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the JSON to this file; default: standard output.")
def patient_export(external_id: str, out: Path | None) -> None:
    """Everything stored about the patient, as JSON (audited)."""
    from reminders.db import session_scope
    from reminders.retention import PatientNotFound, export_patient

    ensure_database()
    try:
        with session_scope() as session:
            data = export_patient(session, external_id, actor="(command line)")
    except PatientNotFound as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if out is None:
        click.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        click.echo(f"wrote {out}", err=True)


@patient.command("erase")
@click.argument("external_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def patient_erase(external_id: str, yes: bool) -> None:
    """Erase the patient's personal data (name, phone, email, message words); nothing more is sent to them.
    The rows stay as anonymous metadata, and an audit row records the erasure."""
    from reminders.db import session_scope
    from reminders.retention import ErasureRefused, PatientNotFound, erase_patient

    ensure_database()
    if not yes:
        click.confirm(f"Erase the personal data of patient {external_id}? This cannot be undone", abort=True)
    try:
        with session_scope() as session:
            report = erase_patient(session, external_id, actor="(command line)")
    except (PatientNotFound, ErasureRefused) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(report, indent=2))
