"""What every command shares: the `reminders` group itself, the database made ready, the clock."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import click

from reminders.config import get_settings


def parse_now(value: str | None) -> datetime:
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


def follow_the_database_clock() -> None:
    """Due times are compared on the database server's clock in every process (reminders.clock)."""
    from reminders import clock
    from reminders.db import get_engine

    clock.follow(get_engine())


def ensure_database() -> None:
    from reminders.migrations import upgrade

    upgrade(get_settings().effective_database_url)


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
def main(verbose: bool) -> None:
    """Clinic reminders: pre-visit instructions, check-ins and two-way texting."""
    from reminders.logs import configure_logging

    configure_logging(logging.DEBUG if verbose else logging.INFO)
