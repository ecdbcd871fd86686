"""Engine and session factory. The database is the schedule: every other part reads it here."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Collection, Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from reminders.config import Settings, get_settings

_engines: dict[str, Engine] = {}

# The PostgreSQL drivers that pass libpq's `options` (server settings at connection start) through.
LIBPQ_DRIVERS = ("psycopg", "psycopg2", "psycopg2cffi")


def server_options(url: str | URL, settings: Settings | None = None, *, migrating: bool = False) -> str | None:
    """libpq `options` for every PostgreSQL connection: DATABASE_STATEMENT_TIMEOUT_SECONDS (a query
    running longer is canceled, so a pass or a request cannot hang on the database) and
    DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS (a session left idle inside a transaction, e.g. by
    a process that hung, is ended and its locks released), then the URL's own `options` (a
    search_path; set there, a timeout wins over the setting). 0 leaves a setting to the server.

    Migrations run without the statement timeout: a schema change on a large table may take long.
    None when there is nothing to pass (or the driver cannot pass it)."""
    url = make_url(url)
    if url.get_backend_name() != "postgresql" or url.get_driver_name() not in LIBPQ_DRIVERS:
        return None
    settings = settings or get_settings()
    parts = []
    if settings.database_statement_timeout_seconds and not migrating:
        parts.append(f"-c statement_timeout={round(settings.database_statement_timeout_seconds * 1000)}")
    if settings.database_idle_in_transaction_timeout_seconds:
        parts.append("-c idle_in_transaction_session_timeout="
                     f"{round(settings.database_idle_in_transaction_timeout_seconds * 1000)}")
    own = url.query.get("options")
    parts += [own] if isinstance(own, str) else list(own or ())
    return " ".join(part for part in parts if part) or None


def make_engine(url: str, *, migrating: bool = False) -> Engine:
    # hide_parameters: a database error's text would otherwise quote the row it failed on (names,
    # numbers, message bodies) into the log.
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    options = server_options(url, migrating=migrating)
    # connect_args replace the URL's own query values: server_options has merged the URL's `options` in.
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, hide_parameters=True,
                         connect_args={"options": options} if options else {})


def get_engine(url: str | None = None) -> Engine:
    url = url or get_settings().effective_database_url
    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]


def dispose_engines(*, keep: Collection[str] = ()) -> None:
    """Close every pooled connection and forget the engines, except those whose URL is in `keep`:
    they stay, with the statements they have compiled (the test suite keeps its one database URL's
    engine from one test to the next)."""
    for url, engine in list(_engines.items()):
        engine.dispose()
        if url not in keep:
            del _engines[url]


def forget_inherited_connections() -> None:
    """In a process forked from one that used the database (a Celery prefork child): drop the
    parent's pooled connections without closing them, so two processes never share a socket."""
    for engine in _engines.values():
        engine.dispose(close=False)


class ClinicSession(Session):
    """The service's sessions: what is done before each commit (the sends recorded in it, written
    together: reminders.outbox.moves) listens on this class alone, not on every Session."""


def session_factory(url: str | None = None) -> sessionmaker[ClinicSession]:
    return sessionmaker(bind=get_engine(url), class_=ClinicSession, expire_on_commit=False)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
