"""`reminders token ...`: API tokens."""
from __future__ import annotations

import sys

import click

from reminders.cli.common import ensure_database, main


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--name", required=True, help="Who or what uses the token, e.g. 'ehr-sync'.")
def token_create(name: str) -> None:
    """Create an API token. It is printed once, alone on the last line."""
    from reminders.accounts import create_token
    from reminders.db import session_scope

    ensure_database()
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

    ensure_database()
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

    ensure_database()
    with session_scope() as session:
        rows = session.scalars(select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))).all()
        for row in rows:
            row.revoked_at = utcnow()
    if not rows:
        click.echo(f"error: no active token named {name!r}", err=True)
        sys.exit(1)
    click.echo(f"revoked {len(rows)} token(s) named {name!r}")
