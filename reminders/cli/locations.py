"""`reminders location ...`: the clinic's locations."""
from __future__ import annotations

import json
import sys

import click

from reminders.cli.common import ensure_database, main


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

    ensure_database()
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

    ensure_database()
    with session_scope() as session:
        book = LocationBook.load(session, get_settings())
        rows = [describe(place) for place in [book.default, *book.choices(active_only=False)]]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['code'] or '(default)'}\t{row['name']}\t{row['timezone']}\t{row['sender'] or '(local outbox)'}"
                   f"\t{row['address']}")
