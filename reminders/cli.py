"""The `reminders` console script."""
from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from reminders.config import get_settings


def _now(value: str | None) -> datetime:
    if not value:
        from reminders.models import utcnow

        return utcnow()
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 date and time", param_hint="--now") from None
    if parsed.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no UTC offset (like 2026-03-03T09:30:00-05:00)", param_hint="--now")
    return parsed.astimezone(timezone.utc)


def _follow_the_database_clock() -> None:
    """Due times are compared on the database server's clock in every process (reminders.clock)."""
    from reminders import clock
    from reminders.db import get_engine

    clock.follow(get_engine())


def _ensure_database() -> None:
    from reminders.migrations import upgrade

    upgrade(get_settings().effective_database_url)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
def main(verbose: bool) -> None:
    """Clinic reminders: pre-visit instructions, check-ins and two-way texting."""
    from reminders.logs import configure_logging

    configure_logging(logging.DEBUG if verbose else logging.INFO)


@main.command()
def init() -> None:
    """Create or migrate the database."""
    _ensure_database()
    click.echo(f"database ready: {_safe_url(get_settings().effective_database_url)}")


@main.command()
@click.option("--now", "now_text", help="The instant of the pass (ISO-8601 with offset); default: now.")
def tick(now_text: str | None) -> None:
    """One synchronous pass at an instant: plan, send all that is due, print a JSON summary."""
    from reminders.pipeline import run_pass

    _ensure_database()
    _follow_the_database_clock()
    now = _now(now_text)
    summary = run_pass(get_settings(), now)
    click.echo(json.dumps({"now": now.isoformat(), **summary}, sort_keys=False))


@main.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_file(file: Path, as_json: bool) -> None:
    """Import appointments from a CSV file. Exit 0: all rows taken; 1: some rejected; 2: unusable file.

    Rows are committed in batches: an import that is stopped keeps what it had written, and
    running it again is safe. On a terminal a progress bar shows rows per second."""
    from reminders.db import session_scope
    from reminders.intake.csv_import import UnusableFile, count_lines, import_csv_text, read_text
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
        _ensure_database()
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


@main.command()
def demo() -> None:
    """Load a demo clinic: patients in induction and in maintenance, some messages due now."""
    from reminders.demo import load_demo

    _ensure_database()
    for line in load_demo(get_settings()):
        click.echo(line)


@main.group()
def user() -> None:
    """Staff accounts."""


@user.command("create")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(["admin", "staff"]), default="staff", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_create(email: str, role: str, password_stdin: bool) -> None:
    """Create a staff account. The password is asked for, or read from standard input."""
    from reminders.accounts import AccountError, create_user
    from reminders.db import session_scope

    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    _ensure_database()
    try:
        with session_scope() as session:
            created = create_user(session, email, role, password)
            click.echo(f"created {created.role} {created.email}")
    except AccountError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@user.command("reset-mfa")
@click.option("--email", required=True)
def user_reset_mfa(email: str) -> None:
    """Turn a user's two-step sign-in off (a lost phone, a changed SECRET_KEY); audited, and the user's
    sessions end. Admins (and staff with MFA_REQUIRED) set it up again at their next sign-in."""
    from sqlalchemy import func, select, update

    from reminders import mfa
    from reminders.db import session_scope
    from reminders.models import AuditEntry, StaffSession, StaffUser, utcnow

    _ensure_database()
    with session_scope() as session:
        found = session.scalar(select(StaffUser).where(func.lower(StaffUser.email) == email.strip().lower()))
        if found is None:
            click.echo(f"error: no staff account {email}", err=True)
            sys.exit(1)
        if not mfa.reset(session, found):
            click.echo(f"{found.email} has no two-step sign-in to reset")
            return
        session.execute(update(StaffSession).where(StaffSession.user_id == found.id,
                                                   StaffSession.revoked_at.is_(None)).values(revoked_at=utcnow()))
        session.add(AuditEntry(at=utcnow(), actor="(command line)", action="reset_mfa", target_type="staff_user",
                               target_id=str(found.id), detail={"email": found.email}))
        click.echo(f"two-step sign-in reset for {found.email}")


def _staff_account(session, email: str | None):
    """The account named on the command line (as EMAIL or --email), or exit 1 saying why."""
    from sqlalchemy import func, select

    from reminders.models import StaffUser

    if not email:
        click.echo("error: give the account's email (reminders user ... EMAIL)", err=True)
        sys.exit(1)
    found = session.scalar(select(StaffUser).where(func.lower(StaffUser.email) == email.strip().lower()))
    if found is None:
        click.echo(f"error: no staff account {email}", err=True)
        sys.exit(1)
    return found


def _command_line_audit(session, action: str, user, **detail) -> None:
    from reminders.models import AuditEntry, utcnow

    session.add(AuditEntry(at=utcnow(), actor="(command line)", action=action, target_type="staff_user",
                           target_id=str(user.id), detail={"email": user.email, **detail}))


@user.command("reset-password")
@click.argument("email", required=False)
@click.option("--email", "email_option", help="The account (instead of EMAIL).")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input instead of "
                                                      "generating a temporary one.")
def user_reset_password(email: str | None, email_option: str | None, password_stdin: bool) -> None:
    """Reset a user's password: a temporary one is printed once (or the one read from standard
    input is set). Their sessions end and they must choose their own at the next sign-in. Audited."""
    from sqlalchemy import update

    from reminders.accounts import AccountError, reset_password
    from reminders.db import session_scope
    from reminders.models import StaffSession, utcnow

    typed = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    _ensure_database()
    with session_scope() as session:
        found = _staff_account(session, email or email_option)
        try:
            given = reset_password(session, found, typed)
        except AccountError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        session.execute(update(StaffSession).where(StaffSession.user_id == found.id,
                                                   StaffSession.revoked_at.is_(None)).values(revoked_at=utcnow()))
        _command_line_audit(session, "reset_password", found,
                            how="typed on the command line" if typed else "temporary password generated")
        if typed:
            click.echo(f"password reset for {found.email}: they choose their own at the next sign-in")
        else:
            click.echo(f"temporary password for {found.email} (shown once; they choose their own at the next "
                       f"sign-in): {given}")


@user.command("set-role")
@click.argument("email", required=False)
@click.argument("role", required=False, type=click.Choice(["admin", "staff"]))
@click.option("--email", "email_option", help="The account (instead of EMAIL).")
@click.option("--role", "role_option", type=click.Choice(["admin", "staff"]), help="The role (instead of ROLE).")
def user_set_role(email: str | None, role: str | None, email_option: str | None, role_option: str | None) -> None:
    """Give a user another role (admin or staff). The last active admin stays admin. Audited."""
    from reminders.accounts import AccountError, change_role
    from reminders.db import session_scope

    wanted = role or role_option
    if wanted is None:
        click.echo("error: give the role, admin or staff (reminders user set-role EMAIL ROLE)", err=True)
        sys.exit(1)
    _ensure_database()
    with session_scope() as session:
        found = _staff_account(session, email or email_option)
        before = found.role
        try:
            changed = change_role(session, found, wanted)
        except AccountError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        if changed:
            _command_line_audit(session, "change_role", found, role=found.role, from_role=before)
            click.echo(f"{found.email} is now {found.role}")
        else:
            click.echo(f"{found.email} is {found.role} already")


@main.group()
def location() -> None:
    """The clinic's locations (none stored: the settings are the one location)."""


def _location_options(command):
    from reminders.locations import OVERRIDES

    for column in reversed(list(OVERRIDES)):
        command = click.option(f"--{column.replace('_', '-')}", column, default=None,
                               help=f"{OVERRIDES[column][1]} (empty: the setting {OVERRIDES[column][0].upper()})")(command)
    return command


def _save_location(code: str | None, fields: dict) -> None:
    from reminders.db import session_scope
    from reminders.locations import LocationError, save_location

    _ensure_database()
    with session_scope() as session:
        try:
            saved = save_location(session, {k: v for k, v in fields.items() if v is not None}, code=code)
        except LocationError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        click.echo(f"location {saved.code}: {saved.name}")


@location.command("add")
@click.argument("code")
@_location_options
def location_add(code: str, **fields) -> None:
    """Add a location: CODE (for CSV and the API) and --name at least; what is left out is the setting's."""
    _save_location(None, {"code": code, **fields})


@location.command("set")
@click.argument("code")
@click.option("--new-code", default=None, help="Rename the code (visits keep their location).")
@click.option("--active/--inactive", default=None, help="An inactive location takes no new visits.")
@_location_options
def location_set(code: str, new_code: str | None, active: bool | None, **fields) -> None:
    """Change a location's fields; an empty value ("") goes back to the setting's."""
    _save_location(code, {"code": new_code or code, "active": active, **fields})


@location.command("list")
@click.option("--json", "as_json", is_flag=True)
def location_list(as_json: bool) -> None:
    """Every location with the settings it runs on."""
    from reminders.config import get_settings
    from reminders.db import session_scope
    from reminders.locations import LocationBook, describe

    _ensure_database()
    with session_scope() as session:
        book = LocationBook.load(session, get_settings())
        rows = [describe(place) for place in [book.default, *book.choices(active_only=False)]]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['code'] or '(default)'}\t{row['name']}\t{row['timezone']}\t{row['sender'] or '(local outbox)'}"
                   f"\t{row['address']}")


@main.group()
def audit() -> None:
    """The audit log."""


@audit.command("verify")
def audit_verify() -> None:
    """Check the audit log's hash chain; exit 1 naming the first broken row."""
    from reminders.audit_chain import verify
    from reminders.db import session_scope

    _ensure_database()
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
    _ensure_database()
    with session_scope() as session:
        report = run_purge(session, _now(now_text), settings.retention_days, dry_run=dry_run)
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

    _ensure_database()
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

    _ensure_database()
    if not yes:
        click.confirm(f"Erase the personal data of patient {external_id}? This cannot be undone", abort=True)
    try:
        with session_scope() as session:
            report = erase_patient(session, external_id, actor="(command line)")
    except (PatientNotFound, ErasureRefused) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(report, indent=2))


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--name", required=True, help="Who or what uses the token, e.g. 'ehr-sync'.")
def token_create(name: str) -> None:
    """Create an API token. It is printed once, alone on the last line."""
    from reminders.accounts import create_token
    from reminders.db import session_scope

    _ensure_database()
    with session_scope() as session:
        value = create_token(session, name)
    click.echo(f"API token for {name!r} (store it now; it is not shown again):")
    click.echo(value)


@token.command("list")
def token_list() -> None:
    """The API tokens: name, when created and last used, and whether revoked."""
    from sqlalchemy import select

    from reminders.db import session_scope
    from reminders.models import ApiToken

    _ensure_database()
    with session_scope() as session:
        for row in session.scalars(select(ApiToken).order_by(ApiToken.id)):
            used = row.last_used_at.isoformat(timespec="minutes") if row.last_used_at else "never used"
            state = f"revoked {row.revoked_at.isoformat(timespec='minutes')}" if row.revoked_at else "active"
            click.echo(f"{row.id}\t{row.name}\tcreated {row.created_at.isoformat(timespec='minutes')}\t{used}\t{state}")


@token.command("revoke")
@click.option("--name", required=True, help="Revoke every active token with this name.")
def token_revoke(name: str) -> None:
    """Revoke API tokens by name; requests with them get 401 from then on."""
    from sqlalchemy import select

    from reminders.db import session_scope
    from reminders.models import ApiToken, utcnow

    _ensure_database()
    with session_scope() as session:
        rows = session.scalars(select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))).all()
        for row in rows:
            row.revoked_at = utcnow()
    if not rows:
        click.echo(f"error: no active token named {name!r}", err=True)
        sys.exit(1)
    click.echo(f"revoked {len(rows)} token(s) named {name!r}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def run(host: str, port: int) -> None:
    """The whole service on one machine: web, worker and scheduler."""
    from reminders.runner import run_service

    _ensure_database()
    run_service(get_settings(), host, port)


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
def web(host: str, port: int, threads: int) -> None:
    """Only the web app (API, webhooks, staff UI); workers run apart, as in docker-compose."""
    from waitress import serve

    from reminders.web import create_app, server_options

    _ensure_database()
    _follow_the_database_clock()
    settings = get_settings()
    serve(create_app(settings), host=host, port=port, threads=threads, ident="clinic-reminders",
          **server_options(settings))


@main.group()
def fhir() -> None:
    """FHIR R4 appointments (FHIR_BASE_URL)."""


@fhir.command("sync")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-plan", is_flag=True, help="Leave planning the visits' reminders to the next pass.")
def fhir_sync(as_json: bool, no_plan: bool) -> None:
    """Take in the appointments changed since the last sync, cancel those the server no longer has,
    and plan their reminders. Exit 0: all taken; 1: some rejected; 2: the server could not be read."""
    from reminders.fhir.cli import run_sync

    _ensure_database()
    _follow_the_database_clock()
    sys.exit(run_sync(get_settings(), as_json, plan=not no_plan))


@main.group(name="hl7")
def hl7_group() -> None:
    """HL7 v2 scheduling messages (SIU) from the clinic's scheduling system."""


@hl7_group.command("listen")
@click.option("--host", default=None, help="Address to listen on; default HL7_BIND (127.0.0.1).")
@click.option("--port", default=None, type=int, help="TCP port; default HL7_PORT (2575).")
def hl7_listen(host: str | None, port: int | None) -> None:
    """MLLP listener: SIU^S12/S13/S14/S15/S26 applied as bookings, each answered with an ACK."""
    from reminders.hl7.listener import run_listener

    _ensure_database()
    _follow_the_database_clock()
    settings = get_settings()
    run_listener(settings, host or settings.hl7_bind, port or settings.hl7_port)


@main.group()
def triage() -> None:
    """The triage model, the statistical second opinion beside the phrase rules."""


@triage.command("train")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the folds and the model.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the model; default: reminders/triage/model.json, the one shipped.")
def triage_train(seed: int, out: Path | None) -> None:
    """Train on tests/data/triage_eval/main/*.jsonl, print the cross-validated figures, write model.json.

    Needs scikit-learn (pip install -e ".[train]"); the service itself scores model.json without it."""
    try:
        from reminders.triage import training
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in ("sklearn", "numpy", "scipy"):
            raise
        click.echo(f'error: training needs scikit-learn ({exc.name} is missing): pip install -e ".[train]"', err=True)
        sys.exit(2)
    from reminders.triage.model import MODEL_PATH

    rows = training.read_rows()
    if not rows:
        click.echo(f"error: no rows in {training.MAIN_DIR}/*.jsonl", err=True)
        sys.exit(2)
    trained = training.train(rows, seed=seed)
    for line in training.report_lines(trained.figures):
        click.echo(line)
    path = out or MODEL_PATH
    size = training.write_model(trained.model, path)
    click.echo(f"wrote {path} ({size:,} bytes; {len(rows)} rows, seed {seed})")


if __name__ == "__main__":
    main()
