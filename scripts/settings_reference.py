"""Write docs/configuration.md, the settings reference, from the settings model.

    python scripts/settings_reference.py           # write the page
    python scripts/settings_reference.py --check   # exit 1 when the page is not what the model says

Each setting's group comes from SETTING_GROUPS and its meaning from the field's `description=`
(reminders/config.py): edit them there, never the page.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reminders.config import SETTING_GROUPS, Settings  # noqa: E402

PAGE = ROOT / "docs" / "configuration.md"

INTRO = """\
# Configuration

<!-- Written by scripts/settings_reference.py from reminders/config.py; edit the descriptions there. -->

All settings are optional environment variables (a `.env` file works with docker compose). No
Twilio settings means SMS goes to the local outbox, and the log says so; likewise for SMTP. A bad
value (an unknown time zone, a non-number) stops the service at start with the reason.

A clinic with several locations sets some of these per location; see [Locations](locations.md).
"""

GROUP_INTROS = {
    "clinic": "Who the clinic is, when it texts, its care pathway and the preparation it asks for.",
    "clinical thresholds": "The numbers at which a reply becomes a nurse's or on-call's business.",
    "channels": "How texts and emails leave: Twilio (SMS and WhatsApp) and SMTP.",
    "integrations": "Appointments from the clinic's other systems: FHIR R4 and HL7 v2.",
    "infrastructure": "Database, broker, secrets, metrics, and how sending copes with failure.",
}


def environment_variable(name: str) -> str:
    field = Settings.model_fields[name]
    return str(field.validation_alias or field.alias or name).upper()


def shown(value) -> str:
    """A default as it would be written in the environment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    if isinstance(value, dict):
        if all(isinstance(item, str) for item in value.values()):
            return ",".join(f"{key}={item}" for key, item in value.items())
        return json.dumps(value)
    return str(value)


def shown_default(name: str) -> str:
    field = Settings.model_fields[name]
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if "shown_default" in extra:  # a default that depends on the machine, written as markdown
        return extra["shown_default"]
    value = field.get_default(call_default_factory=False)
    if value is None or value == "" or value == [] or value == {}:
        return "(none)"
    return f"`{shown(value)}`"


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def group_title(group: str) -> str:
    return group[0].upper() + group[1:]


def reference() -> str:
    parts = [INTRO, "| group | settings |", "|---|---:|"]
    for group, names in SETTING_GROUPS.items():
        anchor = group.replace(" ", "-")
        parts.append(f"| [{group_title(group)}](#{anchor}) | {len(names)} |")
    for group, names in SETTING_GROUPS.items():
        parts += ["", f"## {group_title(group)}", "", GROUP_INTROS.get(group, ""), "",
                  "| variable | default | meaning |", "|---|---|---|"]
        for name in names:
            description = Settings.model_fields[name].description or ""
            parts.append(f"| `{environment_variable(name)}` | {shown_default(name)} | {cell(description)} |")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/configuration.md is stale")
    args = parser.parse_args(argv)
    text = reference()
    if args.check:
        if not PAGE.exists() or PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE.relative_to(ROOT)} is stale: run python scripts/settings_reference.py", file=sys.stderr)
            return 1
        print(f"{PAGE.relative_to(ROOT)} is current")
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
