"""The first-run story in a real browser, as people would do it: the setup link printed by `make run` → the first
administrator → an invitation → a colleague enrols on a phone (switching to Armenian half-way) → signs out →
signs in again, in English and in Armenian.

Fields are found by their labels and buttons by their accessible names, so the test also proves the forms can be
used with a screen reader. Every page must load without console errors (CSP violations are reported there), and
the colleague's pages must fit a 390×844 phone screen without horizontal scrolling.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from babel.support import Translations
from playwright.sync_api import expect

from intake.accounts import operations as ops
from intake.core.db import db
from tests.browser.conftest import PHONE, LiveServer
from tests.conftest import PASSWORD, TotpClock

pytestmark = pytest.mark.browser

TRANSLATIONS = Path(__file__).resolve().parents[2] / "intake" / "translations"


def armenian() -> Translations:
    catalogue = Translations.load(str(TRANSLATIONS), ["hy"])
    assert isinstance(catalogue, Translations), (
        f"no compiled Armenian catalogue under {TRANSLATIONS}; run `pybabel compile -d intake/translations` "
        "(`make test` does)"
    )
    return catalogue


def issue_setup_link(server: LiveServer) -> str:
    """The link `make run` prints (`intake setup-link --if-no-accounts`)."""
    with server.app.app_context():
        link = ops.issue_setup_link()
        db.session.commit()
        return link.url


def fits_the_screen(page: Any) -> None:
    """Nothing on the page is wider than the viewport (no horizontal scrolling)."""
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{page.url} scrolls sideways: content {widths[0]}px, screen {widths[1]}px"


def enrol_authenticator(page: Any, clock: TotpClock, *, username: str, screenshot: Any, shot: str,
                        _: Any = lambda s: s) -> str:
    """Step 2 of enrolment: read the key shown under the QR code and confirm a code from it."""
    expect(page.get_by_role("heading", name=_("Add your authenticator"), level=1, exact=True)).to_be_visible()
    expect(page.locator(".qr svg")).to_be_visible()
    step_3 = _("Enter the 6-digit code the app now shows for %(username)s.") % {"username": username}
    expect(page.get_by_text(step_3, exact=True)).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret), secret
    screenshot(page, shot)
    page.get_by_label(_("Two-factor code"), exact=True).fill(clock.code(secret))
    page.get_by_role("button", name=_("Confirm"), exact=True).click()
    expect(page.get_by_role("heading", name=_("Recovery codes"), level=1, exact=True)).to_be_visible()
    ready = _("Your account is ready. Keep your authenticator app safe: you need it every time you sign in.")
    expect(page.get_by_role("status")).to_have_text(ready)
    return secret


def sign_in(page: Any, clock: TotpClock, secret: str, *, username: str, _: Any = lambda s: s,
            then: Any = None) -> None:
    """Fill in the sign-in form in the page's language (`_` translates the English texts) and send it; the start
    page greets the person in the language `then` translates to (by default the same)."""
    expect(page.get_by_role("heading", name=_("Sign in"), level=1, exact=True)).to_be_visible()
    page.get_by_label(_("Username"), exact=True).fill(username)
    page.get_by_label(_("Password"), exact=True).fill(PASSWORD)
    page.get_by_label(_("Two-factor code"), exact=True).fill(clock.code(secret))
    page.get_by_role("button", name=_("Sign in"), exact=True).click()
    welcome = (then or _)("Welcome, %(username)s") % {"username": username}
    expect(page.get_by_role("heading", name=welcome, level=1, exact=True)).to_be_visible()


def sign_out(page: Any, _: Any = lambda s: s) -> None:
    page.get_by_role("button", name=_("Sign out"), exact=True).click()
    expect(page).to_have_url(re.compile(r"/sign-in$"))


def choose_language(page: Any, name: str) -> None:
    """Use the language form in the header, labelled in the language currently shown."""
    lang = page.locator("html").get_attribute("lang")
    _ = armenian().gettext if lang == "hy" else (lambda s: s)
    page.get_by_label(_("Language"), exact=True).select_option(label=name)
    page.get_by_role("button", name=_("Change"), exact=True).click()


def test_first_run_setup_invite_enrol_and_sign_in(live_server: LiveServer, new_person: Any, totp_clock: TotpClock,
                                                  screenshot: Any) -> None:
    hy = armenian()

    # The first administrator opens the printed setup link on a desktop.
    lusine = new_person()
    page = lusine.page
    page.goto(issue_setup_link(live_server))
    expect(page.get_by_role("heading", name="Create the first administrator", level=1)).to_be_visible()
    page.get_by_role("button", name="Continue", exact=True).click()  # only pressing it spends the link
    expect(page).to_have_url(f"{live_server.url}/enrol/password")  # the token left the address bar
    expect(page.get_by_role("heading", name="Create the first administrator", level=1)).to_be_visible()
    page.get_by_label("Username", exact=True).fill("lusine")
    page.get_by_label("New password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Continue", exact=True).click()
    lusine_secret = enrol_authenticator(page, totp_clock, username="lusine", screenshot=screenshot,
                                        shot="enrol-authenticator")

    # … and invites a colleague as an interviewer.
    page.get_by_role("navigation").get_by_role("link", name="Accounts", exact=True).click()
    expect(page.get_by_role("heading", name="Accounts", level=1)).to_be_visible()
    page.get_by_role("link", name="Invite a colleague").click()
    # Inviting is sensitive: a fresh code first, then back to the form.
    expect(page.get_by_role("heading", name="Confirm it is you", level=1)).to_be_visible()
    page.get_by_label("Two-factor code", exact=True).fill(totp_clock.code(lusine_secret))
    page.get_by_role("button", name="Confirm", exact=True).click()
    expect(page.get_by_role("heading", name="Invite a colleague", level=1)).to_be_visible()
    page.get_by_label("Username", exact=True).fill("amira")
    page.get_by_role("group", name="Roles").get_by_role("checkbox", name=re.compile(r"^Interviewer\b")).check()
    page.get_by_role("button", name="Create the enrolment link").click()
    expect(page.get_by_role("heading", name="Enrolment link for amira", level=1)).to_be_visible()
    link = page.locator("#one-time-link").inner_text().strip()
    assert link.startswith(f"{live_server.url}/enrol/"), link

    # The colleague opens the link on her phone: another browser, another session.
    amira = new_person(viewport=PHONE)
    phone = amira.page
    phone.goto(link)
    expect(phone.get_by_text("You have been invited as amira.", exact=False)).to_be_visible()
    phone.get_by_role("button", name="Continue", exact=True).click()
    expect(phone).to_have_url(f"{live_server.url}/enrol/password")
    expect(phone.get_by_role("heading", name="Set up your account", level=1)).to_be_visible()
    expect(phone.get_by_text("Choose a password for amira")).to_be_visible()
    fits_the_screen(phone)
    phone.get_by_label("New password", exact=True).fill(PASSWORD)
    phone.get_by_label("Repeat the password", exact=True).fill(PASSWORD)
    phone.get_by_role("button", name="Continue", exact=True).click()
    expect(phone.get_by_role("heading", name="Add your authenticator", level=1)).to_be_visible()
    fits_the_screen(phone)
    # Half-way through she switches to Armenian, with the language switch in the header; the enrolment goes on.
    choose_language(phone, "Հայերեն")
    expect(phone.locator("html")).to_have_attribute("lang", "hy")
    secret = enrol_authenticator(phone, totp_clock, username="amira", screenshot=screenshot,
                                 shot="enrol-authenticator-hy-phone", _=hy.gettext)
    fits_the_screen(phone)
    sign_out(phone, hy.gettext)

    # Signed out, the sign-in page follows the browser (English) …
    expect(phone.locator("html")).to_have_attribute("lang", "en")
    fits_the_screen(phone)
    sign_in(phone, totp_clock, secret, username="amira", then=hy.gettext)
    # … and once she is signed in, the pages speak the Armenian she chose, remembered with her account.
    expect(phone.locator("html")).to_have_attribute("lang", "hy")
    fits_the_screen(phone)
    sign_out(phone, hy.gettext)

    # … and in Armenian, chosen with the language switch in the header.
    choose_language(phone, "Հայերեն")
    expect(phone.locator("html")).to_have_attribute("lang", "hy")
    armenian_sign_in = hy.gettext("Sign in")
    expect(phone.get_by_role("heading", level=1)).to_have_text(armenian_sign_in)
    fits_the_screen(phone)
    screenshot(phone, "sign-in-hy-phone")
    assert armenian_sign_in != "Sign in", "the Armenian catalogue has no translation of 'Sign in'"
    sign_in(phone, totp_clock, secret, username="amira", _=hy.gettext)
    expect(phone.locator("html")).to_have_attribute("lang", "hy")
    fits_the_screen(phone)
    screenshot(phone, "start-hy-phone")

    assert lusine.console_errors == []
    assert amira.console_errors == []
