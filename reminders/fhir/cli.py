"""`reminders fhir sync`: the sync and its report, as `reminders import` prints one."""
from __future__ import annotations

import json

import click

from reminders.fhir.client import FhirError


def run_sync(settings, as_json: bool, plan: bool = True) -> int:
    """Run one sync and print its report; the exit code."""
    from reminders.fhir.sync import sync

    if not settings.fhir_base_url:
        click.echo("error: FHIR_BASE_URL is not set (the FHIR server's base, like https://ehr.example/fhir)", err=True)
        return 2
    try:
        report = sync(settings, plan=plan)
    except FhirError as exc:
        click.echo(f"error: {exc}; nothing after the pages already read was taken in, "
                   "and the next sync reads the same changes again", err=True)
        return 2
    if as_json:
        click.echo(json.dumps(report.summary()))
    else:
        for line in report.item_lines():
            click.echo(line, err=True)
        for line in report.total_lines():
            click.echo(line)
    return report.exit_code
