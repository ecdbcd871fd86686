"""GET /healthz (no login: the database, each provider's state in a word, and with REDIS_URL the
worker and beat) and GET /api/v1/provider-status (token: the circuit breaker of each channel, with
what waits).

/healthz is the web process's liveness: 200 while it answers and reaches the database, whatever
else is down, so that an orchestrator never restarts the web (which sends crisis alerts itself)
over a stopped worker. With REDIS_URL set it also says whether the worker (seen within 90 s) and
beat (within 150 s) run: `status` "ok", or "degraded" with `missing` naming what is not.
`/healthz?strict=1` answers 503 when degraded, for a monitor that should page someone."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import text

from reminders.provider_health import provider_status
from reminders.web.api_auth import require_token
from reminders.web.api_requests import api_blueprint
from reminders.web.context import db, request_now
from reminders.web.serialize import iso

health = Blueprint("health", __name__)
health_api = api_blueprint("health_api", __name__)


@health.get("/healthz")
def healthz():
    try:
        db().execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - a health check reports, it does not raise
        return jsonify(status="error", database="unreachable"), 503
    try:
        providers = {p["channel"]: p["state"] for p in provider_status(db(), request_now())}
    except Exception:  # noqa: BLE001 - e.g. a database not yet migrated
        db().rollback()
        providers = {}
    # A failing provider is reported, not a 503: the service itself is up and keeps everything.
    body = {"status": "ok", "database": "ok", "providers": providers}
    state = current_app.extensions["reminders.service_watch"].state(fresh=True)
    if state is None:  # no REDIS_URL and no scheduler in this process: nothing more to say
        return jsonify(body)
    body.update(state.as_json())
    if state.missing:
        body.update(status="degraded", missing=state.missing)
        if request.args.get("strict", "").lower() in ("1", "true", "yes"):
            return jsonify(body), 503
    return jsonify(body)


@health_api.get("/provider-status")
@require_token
def provider_status_json():
    """Each channel the service has had an answer from: ok, failing (errors, still trying) or
    paused (the breaker is open: nothing is tried until `paused_until`, then one probe)."""
    providers = [
        {**status, "failing_since": iso(status["failing_since"]), "paused_until": iso(status["paused_until"])}
        for status in provider_status(db(), request_now())
    ]
    return jsonify({"providers": providers, "paused": [p["channel"] for p in providers if p["state"] == "paused"]})
