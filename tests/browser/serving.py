"""The app served on a loopback port in a thread, for Chromium to open."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def serving(app) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 (a free port) until the block ends; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextmanager
def chromium():
    """Debian's Chromium through Playwright (never a downloaded browser), closed when the block ends."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def watched_page(browser, **context_options):
    """A page in a fresh browser context that fails the test, when the block ends, on anything the
    console reports as an error (a script error, a CSP violation). A 401 or 422 answer is part of
    some stories (a wrong password, a refused template), so failed loads are not counted.
    Assertions and actions wait up to a minute: a bound on a hang on a loaded machine; they return
    as soon as the page shows what they expect."""
    from playwright.sync_api import expect

    expect.set_options(timeout=60_000)
    context = browser.new_context(timezone_id="America/New_York", **context_options)
    context.set_default_timeout(60_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    try:
        yield page
    finally:
        context.close()
    assert errors == [], errors


def signed_sms_sender(base_url: str, settings, default_from: str):
    """send(body, from_) posts an SMS to the running app's webhook over HTTP, signed as Twilio signs
    it; it returns the TwiML answer."""
    import urllib.parse
    import urllib.request

    from twilio.request_validator import RequestValidator

    from tests.fixtures.twoway import BASE, Twilio

    def send(body: str, from_: str = default_from) -> str:
        form = {**Twilio.sms_form(body, from_), "AccountSid": settings.twilio_account_sid}
        signature = RequestValidator(settings.twilio_auth_token).compute_signature(BASE + "/twilio/sms", form)
        request = urllib.request.Request(base_url + "/twilio/sms", data=urllib.parse.urlencode(form).encode(),
                                         headers={"X-Twilio-Signature": signature})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            return response.read().decode()

    return send
