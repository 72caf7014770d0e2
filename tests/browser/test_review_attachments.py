"""A reviewer's record page in a real browser, on a phone: a photo shows at once; a graphic one is neither fetched
nor shown until the reviewer opens its warning, and then it is shown unblurred. No script, nothing the CSP refuses,
nothing wider than the screen."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, LiveServer
from tests.browser.test_accessibility import console_errors, sign_in
from tests.browser.test_first_run import fits_the_screen
from tests.conftest import TestUser, TotpClock
from tests.review.test_attachments import PNG, _assign, _attachments, _interview_with, _url

pytestmark = pytest.mark.browser
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@SQLITE_ONLY
def test_a_graphic_photo_is_fetched_and_shown_only_once_the_reviewer_opens_its_warning(
        live_server: LiveServer, new_person: Any, create_user: Any, totp_clock: TotpClock) -> None:
    app = live_server.app
    people: dict[str, TestUser] = {"amira": create_user("amira", ["interviewer"]),
                                   "rafael": create_user("rafael", ["reviewer"]),
                                   "sona": create_user("sona", ["coordinator"])}
    testimony_id = _interview_with(app, people["amira"], [(PNG, "photo", True), (PNG, "photo", False)], key="a" * 24)
    _assign(app, people, testimony_id)
    graphic, photo = _attachments(app, testimony_id)
    person = new_person(viewport=PHONE)
    fetched: list[str] = []
    person.page.on("request", lambda r: fetched.append(r.url) if "/attachments/" in r.url else None)
    person.page.goto(f"{live_server.url}/sign-in")
    sign_in(person, totp_clock, people["rafael"])
    page = person.page
    page.goto(f"{live_server.url}/review/records/{testimony_id}")

    shown = page.locator(f"img[src='{_url(testimony_id, photo)}']")
    hidden = page.locator(f"img[src='{_url(testimony_id, graphic)}']")
    expect(shown).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth === 1", arg=shown.element_handle())
    expect(hidden).to_be_hidden()
    page.wait_for_timeout(300)  # time enough for an eager fetch to have started
    assert fetched == [f"{live_server.url}{_url(testimony_id, photo)}"]
    fits_the_screen(page)

    page.get_by_text("Warning: graphic content. Show it", exact=True).click()
    expect(hidden).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth === 1", arg=hidden.element_handle())
    assert fetched[-1] == f"{live_server.url}{_url(testimony_id, graphic)}"
    assert hidden.evaluate("img => getComputedStyle(img.closest('.attachment-content')).filter") == "none"
    fits_the_screen(page)
    assert console_errors(person) == []
