"""What a request works with: its database session, the settings, and its clock.

The app factory (`reminders.web.create_app`) puts the session factory and the settings in
`app.extensions`; every blueprint reads them through these helpers."""
from __future__ import annotations

from datetime import datetime

from flask import current_app, g
from sqlalchemy.orm import Session

from reminders.config import Settings
from reminders.models import utcnow


def db() -> Session:
    """The request's database session (closed when the request ends)."""
    if "db" not in g:
        g.db = current_app.extensions["reminders.sessions"]()
    return g.db


def settings() -> Settings:
    return current_app.extensions["reminders.settings"]


def request_now() -> datetime:
    """The request's clock: app.config["CLOCK"] (a callable returning an aware UTC datetime) or now."""
    clock = current_app.config.get("CLOCK")
    return clock() if clock else utcnow()
