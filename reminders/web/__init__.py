"""The Flask application: JSON API, Twilio webhooks, health check and the staff UI."""
from __future__ import annotations

import logging

from flask import Flask, g, request
from flask_wtf.csrf import CSRFProtect
from werkzeug.routing import IntegerConverter

from reminders.celery_app import dispatcher_for
from reminders.config import Settings, get_settings
from reminders.db import session_factory
from reminders.dispatch import Dispatcher
from reminders.heartbeats import ServiceWatch
from reminders.mfa import secret_key_of
from reminders.web.api_requests import API_PREFIX, json_error
from reminders.web.rate_limits import Throttle

log = logging.getLogger(__name__)
csrf = CSRFProtect()

# Every answer of the JSON API: patient data that no cache keeps and no browser reads as anything else.
API_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
# Over HTTPS (request.is_secure: the proxy's X-Forwarded-Proto with TRUSTED_PROXY_HOPS), browsers are
# told to use nothing else for a year.
HSTS = "max-age=31536000; includeSubDomains"


class DatabaseId(IntegerConverter):
    """`<int:...>` in a route: a row id the database's INTEGER column can hold.

    A longer number (`/escalations/12345678901234567890`) matches no route, so it is a 404
    instead of an overflow error from the database."""

    def __init__(self, map, fixed_digits=0, min=1, max=2**31 - 1, signed=False):  # noqa: A002
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def server_options(settings: Settings) -> dict:
    """What waitress must be told to serve this app (`reminders web`, `reminders run`):
    `serve(app, host=..., port=..., **server_options(settings))`.

    Waitress (2.0 and later) deletes X-Forwarded-For, -Proto, -Host and the like from every request
    before the app sees them, unless told to trust a proxy (clear_untrusted_proxy_headers). With
    TRUSTED_PROXY_HOPS set, the app's own ProxyFix reads them (the caller's address for the sign-in
    delays and the questionnaire limits, HTTPS for HSTS and Twilio's signature), so waitress must
    leave them be; without it they are dropped as before (the app would not read them anyway)."""
    return {"clear_untrusted_proxy_headers": not settings.trusted_proxy_hops}


def create_app(settings: Settings | None = None, test_config: dict | None = None,
               dispatcher: Dispatcher | None = None) -> Flask:
    """The web app. `dispatcher` hands rows to the senders (crisis alerts); by default it is chosen
    from the settings once, here: the Celery workers when REDIS_URL is set, else this process."""
    settings = settings or get_settings()
    app = Flask(__name__)
    app.url_map.converters["int"] = DatabaseId
    _configure(app, settings, test_config)
    _attach_services(app, settings, dispatcher)
    csrf.init_app(app)
    _register_pages(app, settings)
    _answer_not_found(app)
    _install_request_hooks(app)
    return app


def _configure(app: Flask, settings: Settings, test_config: dict | None) -> None:
    app.config.update(
        SECRET_KEY=secret_key_of(settings),  # kept on disk when unset: sessions survive a restart
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_base_url.startswith("https://"),
        MAX_CONTENT_LENGTH=20 * 1024 * 1024,
        WTF_CSRF_TIME_LIMIT=None,
    )
    if test_config:
        app.config.update(test_config)
    if settings.trusted_proxy_hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # The patient's address (rate limits), and the scheme and host Twilio called (without
        # PUBLIC_BASE_URL its signature is checked against them).
        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=0, x_prefix=0)


def _attach_services(app: Flask, settings: Settings, dispatcher: Dispatcher | None) -> None:
    app.extensions["reminders.settings"] = settings
    app.extensions["reminders.sessions"] = session_factory(settings.effective_database_url)
    app.extensions["reminders.dispatcher"] = dispatcher or dispatcher_for(settings, app.extensions["reminders.sessions"])
    # When the worker and beat were last seen (/healthz, the staff banner): reminders.heartbeats.
    app.extensions["reminders.service_watch"] = ServiceWatch(settings.redis_url)
    # Failed sign-ins and password changes (reminders.web.staff.auth), counted alike by every web process.
    app.extensions["reminders.sign_in_throttle"] = Throttle(settings.redis_url)


def _register_pages(app: Flask, settings: Settings) -> None:
    from reminders.web.api import api
    from reminders.web.api_measures import api_measures
    from reminders.web.api_replies import api_replies
    from reminders.web.health import health, health_api
    from reminders.web import questionnaire_pages
    from reminders.web.staff import register_staff_ui
    from reminders.web.provider_hooks import provider_hooks

    app.register_blueprint(health)
    # Machines call these with a token or a signature, never with a staff form: no CSRF token.
    from reminders.web.openapi import openapi  # GET /api/v1/openapi.json and /api/v1/docs: no token

    for blueprint in (api, api_replies, health_api, provider_hooks, api_measures, openapi):
        app.register_blueprint(blueprint)
        csrf.exempt(blueprint)
    register_staff_ui(app)
    # The patient's questionnaire pages: no staff session and no CSRF form token. The unguessable
    # token in the URL is the credential (no cookie a forged post could ride on); the pages check
    # the Origin header when a browser sends one.
    questionnaire_pages.register(app, settings)
    csrf.exempt(questionnaire_pages.questionnaire_pages)
    # The check-in page of a patient with no text channel: the same terms (/c/<token>).
    from reminders.web import checkin_pages
    checkin_pages.register(app)
    csrf.exempt(checkin_pages.checkin_pages)
    # GET /metrics for Prometheus: a bearer token (METRICS_TOKEN), else loopback callers only.
    from reminders.web import metrics_page
    metrics_page.register(app, settings)


def _answer_not_found(app: Flask) -> None:
    from reminders.web import checkin_pages, questionnaire_pages
    from reminders.web.staff import error_page as staff_error_page

    @app.errorhandler(404)
    @app.errorhandler(405)
    def _api_not_found(error):
        if request.path.startswith("/api/"):
            return json_error(error.code, error.description)
        if request.path.startswith("/q/"):
            return questionnaire_pages.not_found_page()
        if request.path.startswith("/c/"):
            return checkin_pages.not_found_page()
        return staff_error_page(error)  # a page inside the staff app for a person, the bare error for machines


def _install_request_hooks(app: Flask) -> None:
    @app.after_request
    def _transport_headers(response):
        if request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/"):
            for name, value in API_HEADERS.items():
                response.headers[name] = value
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response

    @app.teardown_appcontext
    def _close_session(exc):
        session = g.pop("db", None)
        if session is not None:
            if exc is not None:
                session.rollback()
            session.close()
