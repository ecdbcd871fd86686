"""What a request works with: its database session, the settings, its clock, and the senders.

The app factory (`reminders.web.create_app`) puts the session factory, the settings and the
dispatcher in `app.extensions`; every blueprint reads them through these helpers."""
from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Callable

from flask import abort, current_app, g
from sqlalchemy.orm import Session

from reminders.config import Settings
from reminders.dispatch import send_soon
from reminders.models import utcnow

log = logging.getLogger(__name__)

# How long a request waits for staff alerts to go before it answers the patient (Twilio gives a
# webhook 15 seconds; a hung mail server must not cost the patient their answer).
ALERT_WAIT_SECONDS = 5.0


def db() -> Session:
    """The request's database session (closed when the request ends)."""
    if "db" not in g:
        g.db = current_app.extensions["reminders.sessions"]()
    return g.db


def found(model, row_id: int):
    """The row with this id, or the request ends in a 404 page."""
    row = db().get(model, row_id)
    if row is None:
        abort(404)
    return row


def settings() -> Settings:
    return current_app.extensions["reminders.settings"]


def request_clock() -> Callable[[], datetime]:
    """The app's clock: app.config["CLOCK"] (a callable returning an aware UTC datetime) or utcnow.
    Work the request starts in a thread of its own keeps reading this clock."""
    return current_app.config.get("CLOCK") or utcnow


def request_now() -> datetime:
    """The request's time, on the app's clock."""
    return request_clock()()


def send_alerts_now(ids: list[int], now: datetime, what: str = "crisis alerts") -> None:
    """Hand staff alert rows to the senders right after the commit, waiting at most
    ALERT_WAIT_SECONDS; the rows are in the outbox, so a send that fails here goes on the next pass."""
    dispatcher, sessions = current_app.extensions["reminders.dispatcher"], current_app.extensions["reminders.sessions"]

    def send() -> None:
        try:
            send_soon(dispatcher, sessions, ids, now)
        except Exception:  # noqa: BLE001 - the rows are in the outbox: the next pass sends them
            log.exception("%s %s: the immediate send failed; the next pass sends them", what, ids)

    worker = threading.Thread(target=send, name="staff-alerts", daemon=True)
    worker.start()
    worker.join(ALERT_WAIT_SECONDS)
    if worker.is_alive():
        log.warning("%s %s still sending after %ss; answering the patient first", what, ids, ALERT_WAIT_SECONDS)
