"""`reminders user ...`: staff accounts, their passwords, roles and two-step sign-in."""
from __future__ import annotations

import sys

import click

from reminders.cli.common import ensure_database, main


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
    ensure_database()
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

    ensure_database()
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
    ensure_database()
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
    ensure_database()
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
