"""The web app has one clock: every "now" of a page, a webhook or the API comes from
`reminders.web.context.request_now` (app.config["CLOCK"] when set), so tests and the browser
clinic run the pages at a time they choose."""
from __future__ import annotations

import re
from pathlib import Path

WEB = Path(__file__).resolve().parents[1] / "reminders" / "web"
THE_CLOCK = WEB / "context.py"
# A clock read directly, or the app's clock looked up by hand instead of through request_clock.
OTHER_CLOCKS = re.compile(r"\b(utcnow|system_now|datetime\.now|datetime\.utcnow|date\.today)\(|[\"']CLOCK[\"']")


def other_clocks() -> list[str]:
    found = []
    for path in sorted(WEB.rglob("*.py")):
        if path == THE_CLOCK:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if OTHER_CLOCKS.search(line.split("#", 1)[0]):
                found.append(f"{path.relative_to(WEB.parent.parent)}:{number}: {line.strip()}")
    return found


def test_the_web_app_reads_the_time_only_through_request_now():
    assert other_clocks() == []


def test_the_check_sees_a_clock_read_directly():
    assert OTHER_CLOCKS.search("    now = utcnow()")
    assert OTHER_CLOCKS.search("day = datetime.now(tz).date()")
    assert OTHER_CLOCKS.search('    clock = current_app.config.get("CLOCK")')
    assert not OTHER_CLOCKS.search("    now = request_now()")
