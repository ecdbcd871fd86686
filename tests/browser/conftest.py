"""The browser tests run on one clock: the test's (tests/conftest.py `clock`), at the seeded
clinic's Wednesday morning (tests/browser/seed.py CLINIC_NOW). The served app gets it as CLOCK.
The service's own code (sending and its pacing, provider health: reminders.clock.now) reads the
same clock, running on from it as the machine's does, so that a send paced a second later waits a
second and not for ever."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest

from tests.browser.seed import CLINIC_NOW
from tests.browser.serving import chromium

@pytest.fixture(scope="package")
def browser():
    """Debian's Chromium, started once for the browser tests a test process runs in a row (not for
    the whole session: Playwright's event loop would stay in the thread for the tests after them);
    each test opens its own context (tests/browser/serving.py watched_page)."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def clock(clock, monkeypatch):
    clock.set(CLINIC_NOW)
    started = time.monotonic()
    monkeypatch.setattr("reminders.clock.now", lambda: clock() + timedelta(seconds=time.monotonic() - started))
    return clock
