"""The staff UI: sign-in, Today, escalations, patients, inbox, visits by hand, templates, users.

Every blueprint except sign-in is guarded (see auth.guard): a visitor without a session is sent
to the login page, and a staff user on an admin page gets 403.
"""
from __future__ import annotations

from datetime import timedelta

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError

from reminders.web.staff import display
from reminders.web.staff.headers import SECURITY_HEADERS

STAFF_SESSION_LIFETIME = timedelta(hours=12)
STAFF_BLUEPRINTS = ("auth", "today", "escalations", "patients", "inbox", "visits", "templates_admin", "users")


def register_staff_ui(app: Flask) -> None:
    from reminders.web.staff import (auth, escalations, inbox, patients, templates_admin, today, users,
                                     visits)

    if app.config["PERMANENT_SESSION_LIFETIME"] == Flask.default_config["PERMANENT_SESSION_LIFETIME"]:
        app.config["PERMANENT_SESSION_LIFETIME"] = STAFF_SESSION_LIFETIME  # a shift, not Flask's 31 days
    for module in (auth, today, escalations, patients, inbox, visits, templates_admin, users):
        app.register_blueprint(module.bp)

    display.install(app)

    @app.context_processor
    def _staff_context():
        if request.blueprint not in STAFF_BLUEPRINTS:
            return {}
        return auth.page_context()

    @app.after_request
    def _headers(response):
        if request.blueprint in STAFF_BLUEPRINTS or request.endpoint == "static":
            for name, value in SECURITY_HEADERS.items():
                if request.endpoint == "static" and name == "Cache-Control":
                    continue
                response.headers.setdefault(name, value)
        return response

    @app.errorhandler(CSRFError)
    def _csrf_error(error: CSRFError):
        if request.blueprint not in STAFF_BLUEPRINTS:
            return error
        return render_template("staff/error.html", title="Form expired",
                               message="The form was missing its security token or it had expired. "
                                       "Go back, reload the page and try again."), 400

    for code, title, message in (
        (403, "Not allowed", "This page is for clinic admins."),
        (404, "Not found", "There is nothing here. It may have been removed."),
    ):
        app.register_error_handler(code, _error_page(code, title, message))


def _error_page(code: int, title: str, message: str):
    def handler(error):
        if request.blueprint not in STAFF_BLUEPRINTS or request.accept_mimetypes.best == "application/json":
            return error
        return render_template("staff/error.html", title=title, message=message), code

    return handler
