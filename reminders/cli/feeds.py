"""`reminders fhir sync` and `reminders hl7 listen`: the clinic's scheduling system feeding visits in."""
from __future__ import annotations

import sys

import click

from reminders.cli.common import ensure_database, follow_the_database_clock, main
from reminders.config import get_settings


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

    ensure_database()
    follow_the_database_clock()
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

    ensure_database()
    follow_the_database_clock()
    settings = get_settings()
    run_listener(settings, host or settings.hl7_bind, port or settings.hl7_port)
