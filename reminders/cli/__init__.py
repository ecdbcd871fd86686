"""The `reminders` console script: the group (reminders.cli.common) and its commands, one module
per command group."""
from __future__ import annotations

from reminders.cli import (  # noqa: F401 - each module adds its commands to the group
    feeds, imports, locations, records, service, staff_accounts, tokens, triage_model,
)
from reminders.cli.common import main

__all__ = ["main"]
