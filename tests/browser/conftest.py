"""Browser fixtures: Debian's chromium driven by Playwright, and the test app served over real HTTP.

Chromium is never downloaded: the tests use the system browser at ``PYTEST_CHROMIUM`` (default
``/usr/bin/chromium``). When it is missing the browser tests skip, or fail when ``PYTEST_REQUIRE`` names
``chromium`` (CI sets it).

The live server runs in a thread of the test process, so it shares the test's monkeypatches, in particular the
two-factor clock (``totp_clock``): ``totp_clock.code(secret)`` gives a code the server accepts.

Set ``PYTEST_SCREENSHOTS`` to a directory to keep screenshots of a few pages for a human to look at.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from tests.conftest import missing

CHROMIUM = os.environ.get("PYTEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
TIMEOUT_MS = 10_000


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless chromium for the whole session (each test opens its own isolated contexts)."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing("chromium", f"there is no chromium executable at {CHROMIUM} (set PYTEST_CHROMIUM, or install "
                            "Debian's package: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Person:
    """One browser context: its own cookies, as a separate person on a separate device would have."""

    context: Any
    page: Any
    console_errors: list[str] = field(default_factory=list)


@pytest.fixture
def new_person(browser: Any) -> Iterator[Any]:
    """Factory: a fresh browser context and page, recording console errors (CSP violations land there)."""
    people: list[Person] = []

    def open_person(*, viewport: dict[str, int] | None = None, locale: str = "en-GB") -> Person:
        context = browser.new_context(viewport=viewport or DESKTOP, locale=locale)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        person = Person(context, page)
        page.on("console", lambda msg: person.console_errors.append(f"{msg.text} ({msg.location.get('url')})")
                if msg.type == "error" else None)
        page.on("pageerror", lambda exc: person.console_errors.append(f"uncaught: {exc}"))
        people.append(person)
        return person

    yield open_person
    for person in people:
        person.context.close()


class _QuietHandler(WSGIRequestHandler):
    """No access log on the test output; errors are still logged."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@dataclass
class LiveServer:
    app: Flask
    url: str


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    """The test `app` served on a free local port in a background thread; its BASE_URL points there."""
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    url = f"http://127.0.0.1:{server.server_port}"
    app.config["BASE_URL"] = url  # read per request, so the links the app prints open on this server
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(app, url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Any:
    """Save a full-page screenshot as ``$PYTEST_SCREENSHOTS/<name>-<test parameters>.png`` when that variable
    is set."""
    directory = os.environ.get("PYTEST_SCREENSHOTS")
    callspec = getattr(request.node, "callspec", None)
    suffix = f"-{callspec.id}" if callspec else ""

    def take(page: Any, name: str) -> None:
        if directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(directory) / f"{name}{suffix}.png"), full_page=True)

    return take
