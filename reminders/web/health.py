from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from reminders.web import db

health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz():
    try:
        db().execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - a health check reports, it does not raise
        return jsonify(status="error", database="unreachable"), 503
    return jsonify(status="ok", database="ok")
