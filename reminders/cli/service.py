"""`reminders init`, `tick`, `run`, `web` and `demo`: the database, a pass, the service running."""
from __future__ import annotations

import json

import click

from reminders.cli.common import ensure_database, follow_the_database_clock, main, parse_now, safe_url
from reminders.config import get_settings


@main.command()
def init() -> None:
    """Create or migrate the database."""
    ensure_database()
    click.echo(f"database ready: {safe_url(get_settings().effective_database_url)}")


@main.command()
@click.option("--now", "now_text", help="The instant of the pass (ISO-8601 with offset); default: now.")
def tick(now_text: str | None) -> None:
    """One synchronous pass at an instant: plan, send all that is due, print a JSON summary."""
    from reminders.pipeline import run_pass

    ensure_database()
    follow_the_database_clock()
    now = parse_now(now_text)
    summary = run_pass(get_settings(), now)
    click.echo(json.dumps({"now": now.isoformat(), **summary}, sort_keys=False))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def run(host: str, port: int) -> None:
    """The whole service on one machine: web, worker and scheduler."""
    from reminders.runner import run_service

    ensure_database()
    run_service(get_settings(), host, port)


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
def web(host: str, port: int, threads: int) -> None:
    """Only the web app (API, webhooks, staff UI); workers run apart, as in docker-compose."""
    from waitress import serve

    from reminders.web import create_app, server_options

    ensure_database()
    follow_the_database_clock()
    settings = get_settings()
    serve(create_app(settings), host=host, port=port, threads=threads, ident="clinic-reminders",
          **server_options(settings))


@main.command()
def demo() -> None:
    """Load a demo clinic: patients in induction and in maintenance, some messages due now."""
    from reminders.demo import load_demo

    ensure_database()
    for line in load_demo(get_settings()):
        click.echo(line)
