"""Shared fixtures: a clean environment, a database per test (SQLite or a PostgreSQL schema),
the Flask app, an injected clock, and the fake providers from tests/fixtures/channels.py."""
from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, text

from reminders.config import Settings, reset_settings
from reminders.db import dispose_engines, session_factory

pytest_plugins = ["tests.fixtures.channels", "tests.fixtures.twoway", "tests.fixtures.staff"]

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
APP_NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
SETTING_NAMES = [name.upper() for name in Settings.model_fields] + ["REMINDERS_DATA_DIR"]


def pytest_collection_modifyitems(items):
    """The process tests spend real minutes waiting for beat: hand them out first, so that with
    several workers (scripts/test runs two) they overlap the rest of the suite."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("processes") else 1)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """No test sees the developer's own settings; each gets its own data folder."""
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REMINDERS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SECRET_KEY", "test-secret")
    # Tests do not wait on a carrier's pace (1 text a second for the test number); the pacing
    # tests set their own.
    monkeypatch.setenv("SMS_PER_SECOND", "10000")
    # Questionnaires before visits are on for clinics; tests of other messages count only theirs
    # (tests/test_measures_*.py turn them on).
    monkeypatch.setenv("MEASURES_ENABLED", "false")
    reset_settings()
    yield
    reset_settings()
    dispose_engines()


@pytest.fixture
def configure(monkeypatch):
    """configure(NAME=value, ...) sets environment settings and returns fresh Settings."""

    def apply(**values) -> Settings:
        for name, value in values.items():
            monkeypatch.setenv(name.upper(), str(value))
        reset_settings()
        from reminders.config import get_settings

        return get_settings()

    return apply


@pytest.fixture
def settings(configure, tmp_path) -> Settings:
    from reminders.migrations import upgrade

    result = configure(DATABASE_URL=f"sqlite:///{tmp_path / 'reminders.db'}")
    upgrade(result.effective_database_url)
    return result


@pytest.fixture
def postgres_url():
    """A PostgreSQL schema of the test's own, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    dispose_engines()
    with admin.connect() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def pg_settings(configure, postgres_url) -> Settings:
    from reminders.migrations import upgrade

    result = configure(DATABASE_URL=postgres_url)
    upgrade(postgres_url)
    return result


def both_databases():
    """A `settings` fixture that runs every test of a module on SQLite and on PostgreSQL:
    `settings = both_databases()` in the module."""

    @pytest.fixture(name="settings", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
    def settings_on_both(request, configure, tmp_path) -> Settings:
        from reminders.migrations import upgrade

        url = f"sqlite:///{tmp_path / 'reminders.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
        result = configure(DATABASE_URL=url)
        upgrade(url)
        return result

    return settings_on_both


@pytest.fixture
def sessions(settings):
    return session_factory(settings.effective_database_url)


@pytest.fixture
def session(sessions):
    with sessions() as db_session:
        yield db_session


class Clock:
    """The web app's clock (app.config["CLOCK"], read by request_now), set and moved by the test."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, when: datetime | str) -> datetime:
        self.now = at(when) if isinstance(when, str) else when
        return self.now

    def advance(self, **delta) -> datetime:
        self.now += timedelta(**delta)
        return self.now


_test_clocks: list[Clock] = []


def clock_now() -> datetime:
    """Now for the rows tests.fixtures.staff builds and the sign-in codes it types: the test's
    clock when the test has one (the app then runs on it too), else the machine's."""
    from reminders.models import utcnow

    return _test_clocks[-1]() if _test_clocks else utcnow()


@pytest.fixture
def clock(request):
    """The app's clock, fixed at the time the tests' fixed dates are written for (APP_NOW), so that
    the booking window does not move under them as the years pass; a test of the two-way webhook
    (the `two_way` settings) starts at that module's afternoon (tests.fixtures.twoway.NOW)."""
    from tests.fixtures.twoway import NOW

    fixed = Clock(NOW if "two_way" in request.fixturenames else APP_NOW)
    _test_clocks.append(fixed)
    yield fixed
    _test_clocks.remove(fixed)


@pytest.fixture
def app(settings, clock):
    from reminders.web import create_app

    flask_app = create_app(settings, {"TESTING": True, "CLOCK": clock})
    yield flask_app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def api_token(settings, sessions):
    from reminders.accounts import create_token

    with sessions() as db_session:
        return create_token(db_session, "tests")


@pytest.fixture
def api_headers(api_token):
    return {"Authorization": f"Bearer {api_token}"}


def at(text_value: str) -> datetime:
    """An instant from ISO text, as UTC: at('2026-03-03T09:30:00-05:00')."""
    return datetime.fromisoformat(text_value).astimezone(timezone.utc)
