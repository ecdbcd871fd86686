"""Shared fixtures: a clean environment, a database per test (SQLite or a PostgreSQL schema),
the Flask app, an injected clock, and the fake providers from tests/fixtures/channels.py."""
from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, text
from werkzeug.routing.rules import Rule

from reminders.config import Settings, reset_settings
from reminders.db import dispose_engines, session_factory
from reminders.rendering.store import forget_shared_templates

pytest_plugins = ["tests.fixtures.channels", "tests.fixtures.twoway", "tests.fixtures.staff"]

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
APP_NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
SETTING_NAMES = [name.upper() for name in Settings.model_fields] + ["REMINDERS_DATA_DIR"]


def _remember_url_builders() -> None:
    """The suite builds a Flask app per test (about 2,500), and werkzeug compiles two URL builders
    for each of its ~100 rules every time: most of an app's build. A builder's code depends only on
    the rule's parsed trace and its defaults (converters are looked up on the rule when it runs),
    so within a test process it is compiled once per distinct rule."""
    compile_builder = Rule._compile_builder
    builders: dict = {}

    def remembered(self, append_unknown: bool = True):
        try:
            key = (append_unknown, tuple(self._trace), tuple(sorted((self.defaults or {}).items())))
            hash(key)
        except TypeError:
            return compile_builder(self, append_unknown)
        if key not in builders:
            builders[key] = compile_builder(self, append_unknown)
        return builders[key]

    Rule._compile_builder = remembered


_remember_url_builders()


def _compile_staff_pages_once() -> None:
    """Each app has its own Jinja environment, so each test compiled the staff pages it rendered
    anew. Within a test process, compiled pages are shared through Jinja's bytecode cache, which
    compiles a page again whenever its source changes."""
    from flask import Flask

    from reminders.rendering.engine import CompiledOnce

    # An instance of its own: the staff pages' environment is not the messages' sandbox.
    shared, create = CompiledOnce(), Flask.create_jinja_environment

    def with_shared_cache(self):
        environment = create(self)
        environment.bytecode_cache = shared
        return environment

    Flask.create_jinja_environment = with_shared_cache


_compile_staff_pages_once()


def _hash_passwords_cheaply() -> None:
    """Argon2 at the service's cost takes about a fifth of a second a hash or a check on a loaded
    two-core machine, and the suite creates and signs in staff thousands of times. Tests hash at
    argon2's lowest cost, as test settings usually do; it is still argon2 (tests/test_staff_users.py),
    and a check reads the cost from the hash itself."""
    from argon2 import PasswordHasher

    import reminders.accounts

    reminders.accounts.hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


_hash_passwords_cheaply()


def pytest_collection_modifyitems(items):
    """The process tests spend real minutes waiting for beat: hand them out first, so that with
    several workers (scripts/test runs three) they overlap the rest of the suite."""
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
    stop_alert_watches()
    reset_settings()
    dispose_engines(keep=KEPT_DATABASE_URLS)
    forget_shared_templates()


# The database URLs of this test process: one SQLite path (each test gets a fresh copy of the
# migrated database there) and one PostgreSQL database (emptied for each test). Their engines are
# kept from test to test, their pools closed, so each statement is compiled once per process
# (SQLAlchemy's compiled cache is the engine's): compiling had been a fifth of the suite's time.
KEPT_DATABASE_URLS: set[str] = set()


def stop_alert_watches() -> None:
    """A web app's watch on its crisis alerts (reminders.dispatch: sent from the web process when no
    worker claims them in a few seconds) must not fire into the next test's database."""
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer) and thread.name == "reminders-alert-watch":
            thread.cancel()


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


# -- migrated databases ------------------------------------------------------------------------
# Every test gets a database at the migrations' head with nothing of another test's in it. Running
# the migrations takes a third of a second, so each test process runs them once: SQLite tests get
# a copy of a migrated file, PostgreSQL tests the process's migrated database emptied
# (tests/test_migrations.py runs the migrations for real, on empty databases).
@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    from reminders.migrations import upgrade

    path = tmp_path_factory.mktemp("template") / "migrated.db"
    upgrade(f"sqlite:///{path}")
    dispose_engines()
    return path


def migrated_sqlite_url(template, path) -> str:
    """A copy of the migrated template at `path` (SQLite's backup: whole even in WAL mode)."""
    with sqlite3.connect(template) as source, sqlite3.connect(path) as copy:
        source.backup(copy)
    source.close()
    copy.close()
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def postgres_database():
    """A PostgreSQL database of this test process's own, migrated once, with what the migrations
    store (the clinic's first saved replies) kept aside to put back after each test."""
    from reminders.migrations import upgrade

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    KEPT_DATABASE_URLS.add(url)
    engine = create_engine(url)
    with engine.connect() as connection:
        tables = connection.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")).scalars().all()
        sequences = connection.execute(text(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")).scalars().all()
        seeded = {table: connection.execute(text(f'SELECT * FROM "{table}"')).mappings().all() for table in tables}
    yield MigratedPostgres(url, engine, tables, sequences, {table: rows for table, rows in seeded.items() if rows})
    engine.dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class MigratedPostgres:
    def __init__(self, url, engine, tables, sequences, seeded):
        self.url, self.engine, self.seeded = url, engine, seeded
        # Rows are deleted with the foreign keys' triggers off (the tables are small: far quicker
        # than TRUNCATE, which makes new files for every table and index).
        self.delete_all = text("; ".join(f'DELETE FROM "{table}"' for table in tables))
        self.restart_ids = text("; ".join(f'ALTER SEQUENCE "{sequence}" RESTART' for sequence in sequences))

    def empty(self) -> None:
        """Back to just after the migrations: every row gone, ids from 1, the seeded rows back."""
        with self.engine.connect() as connection:
            connection.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
            connection.execute(text("SET LOCAL session_replication_role = replica"))
            connection.execute(self.delete_all)
            connection.execute(self.restart_ids)
            for table, rows in self.seeded.items():
                columns = list(rows[0].keys())
                connection.execute(
                    text(f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({", ".join(":" + c for c in columns)})'),
                    [dict(row) for row in rows])
                if "id" in columns:
                    connection.execute(text(f"SELECT setval(pg_get_serial_sequence(:table, 'id'), :last)"),
                                       {"table": f'"{table}"', "last": max(row["id"] for row in rows)})
            connection.commit()


@pytest.fixture
def migrated_postgres_url(postgres_database):
    """The test process's migrated PostgreSQL database, emptied for this test."""
    postgres_database.empty()
    yield postgres_database.url


@pytest.fixture(scope="session")
def process_database_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("database") / "reminders.db"
    KEPT_DATABASE_URLS.add(f"sqlite:///{path}")
    return path


@pytest.fixture
def settings(configure, process_database_path, sqlite_template) -> Settings:
    return configure(DATABASE_URL=migrated_sqlite_url(sqlite_template, process_database_path))


@pytest.fixture
def postgres_url():
    """An empty PostgreSQL schema of the test's own, dropped afterwards."""
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
def pg_settings(configure, migrated_postgres_url) -> Settings:
    return configure(DATABASE_URL=migrated_postgres_url)


def both_databases():
    """A `settings` fixture that runs every test of a module on SQLite and on PostgreSQL:
    `settings = both_databases()` in the module."""

    @pytest.fixture(name="settings", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
    def settings_on_both(request, configure, process_database_path, sqlite_template) -> Settings:
        if request.param == "sqlite":
            return configure(DATABASE_URL=migrated_sqlite_url(sqlite_template, process_database_path))
        return configure(DATABASE_URL=request.getfixturevalue("migrated_postgres_url"))

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
