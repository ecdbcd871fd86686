"""The app served on a loopback port in a thread, for Chromium to open."""
from __future__ import annotations

import threading
from contextlib import contextmanager
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
