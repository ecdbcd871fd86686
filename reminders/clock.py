"""One clock for every process of the service: the database server's.

Due times are written by one process (the web app queues a crisis alert, a worker's planner a
reminder) and compared by another (a worker claims what is due, a pass sweeps what is stale). On
separate machines their clocks drift apart; a worker whose clock ran 11 minutes behind found no
alert due for all that time. So each process of a deployment on PostgreSQL measures how far its
clock is from the database server's, at most once every FOLLOW_EVERY, and `now()` (which
`reminders.models.utcnow` returns) is its own clock corrected by that much.

The process entry points (`reminders web`, `reminders run`, `reminders tick`, the Celery worker
and beat) call `follow`, which reads the clock again every minute in a thread of its own; a Celery
task reads it again too when due (`keep_in_step`: a prefork child has no such thread). A process
that never called `follow` (tests; SQLite, where the database is a file on this machine) keeps its
own clock.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import text
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

FOLLOW_EVERY = 60.0  # seconds between two readings of the database's clock
NEGLIGIBLE = timedelta(seconds=1)  # closer than this, the two clocks count as one
SAY_AGAIN_AFTER = 3600.0  # a clock that stays off is logged again this often

_lock = threading.Lock()
_state: dict = {"engine": None, "offset": timedelta(0), "checked": None, "said": None, "reader": None}


def system_now() -> datetime:
    return datetime.now(timezone.utc)


def now() -> datetime:
    """The current UTC time on the database's clock (this machine's, until `follow` was called)."""
    return system_now() + _state["offset"]


def offset() -> timedelta:
    return _state["offset"]


def follow(engine: Engine) -> timedelta:
    """From now on this process keeps to `engine`'s server clock (PostgreSQL only). Reads it now."""
    if engine.dialect.name != "postgresql":
        return timedelta(0)
    with _lock:
        _state.update(engine=engine, checked=None)
    measured = keep_in_step()
    _start_reading_every_minute()
    return measured


def _start_reading_every_minute() -> None:
    with _lock:
        reader = _state.get("reader")
        if reader is not None and reader.is_alive():
            return
        reader = threading.Thread(target=_read_every_minute, name="reminders-clock", daemon=True)
        _state["reader"] = reader
    reader.start()


def _read_every_minute() -> None:
    pause = threading.Event()
    while _state["engine"] is not None:
        pause.wait(FOLLOW_EVERY)
        keep_in_step()


def keep_in_step() -> timedelta:
    """Read the database's clock again if the last reading is older than FOLLOW_EVERY. Never
    raises: a database that does not answer leaves the last offset in place."""
    engine, checked = _state["engine"], _state["checked"]
    if engine is None or (checked is not None and time.monotonic() - checked < FOLLOW_EVERY):
        return _state["offset"]
    with _lock:
        if _state["checked"] is not None and time.monotonic() - _state["checked"] < FOLLOW_EVERY:
            return _state["offset"]
        _state["checked"] = time.monotonic()
        try:
            measured = _measure(engine)
        except Exception as exc:  # noqa: BLE001 - the next reading tries again; work goes on meanwhile
            log.warning("could not read the database's clock (%s); keeping an offset of %.1f s",
                        type(exc).__name__, _state["offset"].total_seconds())
            return _state["offset"]
        if abs(measured) < NEGLIGIBLE:
            measured = timedelta(0)
        _say(measured)
        _state["offset"] = measured
        return measured


def _measure(engine: Engine) -> timedelta:
    with engine.connect() as connection:
        before = system_now()
        server = connection.execute(text("SELECT clock_timestamp()")).scalar_one()
        after = system_now()
    return server.astimezone(timezone.utc) - (before + (after - before) / 2)


def _say(measured: timedelta) -> None:
    changed = abs(measured - _state["offset"]) >= NEGLIGIBLE
    said = _state["said"]
    if measured and (changed or said is None or time.monotonic() - said > SAY_AGAIN_AFTER):
        seconds = measured.total_seconds()
        log.warning("this machine's clock is %.1f s %s the database server's; this process keeps to the "
                    "database's clock (fix the machine's time sync)", abs(seconds),
                    "behind" if seconds > 0 else "ahead of")
        _state["said"] = time.monotonic()
    elif changed:
        log.info("this machine's clock agrees with the database server's again")


def forget() -> None:
    """Back to this machine's own clock (tests)."""
    with _lock:
        _state.update(engine=None, offset=timedelta(0), checked=None, said=None)
