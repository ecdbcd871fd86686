"""No pass or request hangs on PostgreSQL: every connection the service opens carries a statement
timeout and an idle-in-transaction timeout (settings), merged with what DATABASE_URL already
passes (the tests' own search_path), and a statement past its time is canceled by the server."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from reminders.db import dispose_engines, get_engine, make_engine, server_options
from reminders.migrations import upgrade

pytestmark = pytest.mark.postgres


def shown(engine, *names: str) -> list[str]:
    with engine.connect() as connection:
        return [connection.execute(text(f"SHOW {name}")).scalar() for name in names]


def test_every_connection_has_a_statement_and_an_idle_in_transaction_timeout_by_default(pg_settings):
    engine = get_engine(pg_settings.effective_database_url)
    assert shown(engine, "statement_timeout", "idle_in_transaction_session_timeout") == ["1min", "2min"]


def test_the_search_path_in_the_database_url_is_kept_beside_the_timeouts(configure, postgres_url):
    schema = postgres_url.rsplit("%3D", 1)[1]
    upgrade(postgres_url)
    engine = get_engine(configure(DATABASE_URL=postgres_url).effective_database_url)
    assert shown(engine, "search_path") == [schema]
    with engine.connect() as connection:  # the migrated tables are the test schema's own
        assert connection.execute(text("SELECT count(*) FROM appointments")).scalar() == 0


def test_the_timeouts_are_settings_and_0_leaves_them_to_the_server(configure, postgres_url):
    configure(DATABASE_URL=postgres_url, DATABASE_STATEMENT_TIMEOUT_SECONDS="1.5",
              DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS="0")
    dispose_engines()
    assert shown(get_engine(postgres_url), "statement_timeout", "idle_in_transaction_session_timeout") == ["1500ms", "0"]


def test_a_timeout_written_in_the_database_url_wins_over_the_setting(configure, postgres_url):
    url = postgres_url.replace("options=", "options=-cstatement_timeout%3D5000%20")
    configure(DATABASE_URL=url)
    dispose_engines()
    assert shown(get_engine(url), "statement_timeout") == ["5s"]


def test_a_statement_running_past_the_timeout_is_canceled_by_the_server(configure, postgres_url):
    configure(DATABASE_URL=postgres_url, DATABASE_STATEMENT_TIMEOUT_SECONDS="0.2")
    dispose_engines()
    started = time.monotonic()
    with get_engine(postgres_url).connect() as connection, pytest.raises(OperationalError, match="statement timeout"):
        connection.execute(text("SELECT pg_sleep(10)"))
    assert time.monotonic() - started < 5


def test_migrations_run_without_the_statement_timeout(postgres_url):
    engine = make_engine(postgres_url, migrating=True)
    try:
        assert shown(engine, "statement_timeout", "idle_in_transaction_session_timeout") == ["0", "2min"]
    finally:
        engine.dispose()


def test_sqlite_and_drivers_without_libpq_options_get_none(settings):
    assert server_options(settings.effective_database_url) is None
    assert server_options("postgresql+pg8000://u@localhost/db") is None
    assert server_options("postgresql+psycopg://u@localhost/db") == (
        "-c statement_timeout=60000 -c idle_in_transaction_session_timeout=120000")
