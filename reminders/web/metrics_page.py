"""GET /metrics: Prometheus's text format (reminders.metrics), for a Prometheus server to scrape.

Who may read it:
- METRICS_TOKEN set: a caller that sends `Authorization: Bearer <METRICS_TOKEN>` (compared in
  constant time); anyone else gets 401.
- METRICS_TOKEN not set: only a caller on this machine (a loopback address, and no sign of a
  proxy in between: X-Forwarded-For, Forwarded, X-Real-IP); anyone else gets 403 saying to set
  the token. The numbers hold no patient data, but they tell how busy the clinic is and whether
  anyone is in crisis right now, so they are not open to the internet by default.
"""
from __future__ import annotations

import hmac
import ipaddress

from flask import Blueprint, Flask, Response, current_app, request

from reminders import metrics
from reminders.config import Settings
from reminders.web.context import request_now, settings

metrics_page = Blueprint("metrics_page", __name__)
PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def register(app: Flask, app_settings: Settings) -> None:
    """Add /metrics, and switch the web process to multiprocess counting now (before any request)."""
    metrics.setup(app_settings)
    app.register_blueprint(metrics_page)


def _from_this_machine() -> bool:
    if any(request.headers.get(name) for name in PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address((request.remote_addr or "").split("%")[0]).is_loopback
    except ValueError:
        return False


def _refusal() -> Response | None:
    token = settings().metrics_token
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return None
        return Response("Unauthorized: send Authorization: Bearer <METRICS_TOKEN>\n", status=401,
                        mimetype="text/plain", headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    if _from_this_machine():
        return None
    return Response("Forbidden: /metrics answers other machines only with METRICS_TOKEN set "
                    "(then send it as a bearer token)\n", status=403, mimetype="text/plain")


@metrics_page.get("/metrics")
def scrape():
    refused = _refusal()
    if refused is not None:
        return refused
    body, content_type = metrics.exposition(
        settings(), current_app.extensions["reminders.sessions"], request_now,
        current_app.extensions.get("reminders.service_watch"))
    return Response(body, status=200, content_type=content_type, headers={"Cache-Control": "no-store"})
