"""The staff UI: sign-in, Today, escalations, patients, inbox, visits by hand, templates, users.

Every blueprint except sign-in is guarded (see auth.guard): a visitor without a session is sent
to the login page, and a staff user on an admin page gets 403. /live.json (live.py) answers 401
instead, as a poll should.

Errors a person meets in a browser (403, 404, 405, 500, an expired form) are pages inside the
app's layout; the API and the webhooks keep their own answers.
"""
from __future__ import annotations

from datetime import timedelta

from flask import Flask, g, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from reminders.web.staff import display
from reminders.web.staff.headers import SECURITY_HEADERS

STAFF_SESSION_LIFETIME = timedelta(hours=12)
STAFF_BLUEPRINTS = ("auth", "today", "escalations", "patients", "inbox", "visits", "templates_admin", "users",
                    "live", "reports", "outcomes", "saved_replies", "broadcast", "resend", "locations")
# Pages that reload their content by themselves when /live.json says something changed.
LIVE_PAGES = ("today.index", "escalations.index", "inbox.index")
# Paths machines call: their errors stay theirs (JSON for the API, plain for the webhooks).
MACHINE_PREFIXES = ("/api/", "/twilio/", "/health", "/static/")
ERRORS = {
    403: ("Not allowed", "This page is for clinic admins. Ask an admin if you need it."),
    404: ("Page not found", "There is nothing here: the address may be mistyped, or the patient, visit or "
                            "message may have been removed."),
    405: ("Not possible here", "This page cannot be used that way. Go back and use the page's own buttons."),
    500: ("Something went wrong", "The app hit a problem and nothing was changed by this request. Try again in a "
                                  "moment; if it keeps happening, tell the clinic's admin the time it happened."),
}


def register_staff_ui(app: Flask) -> None:
    from reminders.web.staff import (auth, escalations, inbox, live, outcomes, patients, reports, templates_admin, today,
                                     users, visits)
    from reminders.web.staff import broadcast, saved_replies
    from reminders.web.staff import locations, resend
    from reminders.web.staff import account  # noqa: F401 - its pages join auth's blueprint before it is registered

    if app.config["PERMANENT_SESSION_LIFETIME"] == Flask.default_config["PERMANENT_SESSION_LIFETIME"]:
        app.config["PERMANENT_SESSION_LIFETIME"] = STAFF_SESSION_LIFETIME  # a shift, not Flask's 31 days
    for module in (auth, today, escalations, patients, inbox, visits, templates_admin, users, live, reports, outcomes,
                   saved_replies, broadcast, resend, locations):
        app.register_blueprint(module.bp)

    display.install(app)

    @app.context_processor
    def _staff_context():
        if request.blueprint not in STAFF_BLUEPRINTS and not g.get("staff_error_page", False):
            return {}
        context = auth.page_context()
        if context.get("staff") is not None:
            from reminders.web.context import db
            from reminders.web.staff.location_filter import user_scope

            context["live"] = live.snapshot(db(), user_scope())
            context["open_escalations"] = context["live"]["open_escalations"]
            context["live_page"] = request.endpoint in LIVE_PAGES
        return context

    @app.after_request
    def _headers(response):
        if request.blueprint in STAFF_BLUEPRINTS or request.endpoint == "static" \
                or g.get("staff_error_page", False):
            for name, value in SECURITY_HEADERS.items():
                if request.endpoint == "static" and name == "Cache-Control":
                    continue
                response.headers.setdefault(name, value)
        return response

    @app.errorhandler(CSRFError)
    def _csrf_error(error: CSRFError):
        if request.blueprint not in STAFF_BLUEPRINTS:
            return error
        if auth.current_user() is None and request.blueprint != "auth":  # the session ended mid-form
            return auth.form_after_session_ended()
        return render_template("staff/error.html", title="Form expired", code=400,
                               message="The form was missing its security token or it had expired. "
                                       "Go back, reload the page and try again."), 400

    for code in ERRORS:  # 404 and 405 also come here from the app's own handler (reminders.web)
        app.register_error_handler(code, error_page)


def wants_page() -> bool:
    """A person's browser asking for a page (not the API, a webhook, a poll or a script)."""
    if request.path.startswith(MACHINE_PREFIXES) or request.blueprint == "live":
        return False
    if request.blueprint is not None and request.blueprint not in STAFF_BLUEPRINTS:
        return False
    best = request.accept_mimetypes.best_match(("text/html", "application/json"))
    return best != "application/json" and not request.is_json


def error_page(error):
    """The error as a page inside the app (the menu when signed in), or the error itself for machines."""
    code = error.code if isinstance(error, HTTPException) else 500
    if not wants_page():
        return error
    title, message = ERRORS.get(code, ERRORS[500])
    g.staff_error_page = True
    try:
        if code >= 500:
            session = g.get("db")
            if session is not None:
                session.rollback()  # the failed request's transaction must not block the page's reads
        return render_template("staff/error.html", title=title, message=message, code=code), code
    except Exception:  # noqa: BLE001 - the error page must not fail in turn
        if code >= 500:
            return "Something went wrong. Try again in a moment.", 500
        return error
