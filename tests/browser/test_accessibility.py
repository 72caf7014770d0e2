"""Automated accessibility checks of the pages people meet first, with axe-core in Debian's chromium.

Every page is checked against the WCAG 2.0 and 2.1 level A and AA rules axe-core knows (labels, names, contrast,
landmarks, heading order, language…), in the states that matter: empty, refused with errors, on a desktop and on
a 390×844 phone, in English and in Armenian. Automated rules catch only part of what WCAG asks, so the keyboard
route through the sign-in form and the links of the error summary are checked by hand as well.

axe-core comes inside the `axe-playwright-python` package (nothing is fetched at run time). It is injected with
`page.evaluate`, which DevTools runs outside the page's Content-Security-Policy, so the app's CSP
(`script-src 'self'`) stays exactly as it is served and nothing here needs `bypass_csp`; any CSP violation would
show up in the console, and the tests require the console to stay clean.

Accessibility does not depend on the database, so these tests run on SQLite only.
"""

from __future__ import annotations

import re
from typing import Any

import pyotp
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from intake.accounts import operations as ops
from intake.accounts.models import Account
from intake.core.db import db
from tests.browser.conftest import DESKTOP, PHONE, LiveServer, Person
from tests.browser.test_first_run import armenian, fits_the_screen
from tests.conftest import PASSWORD, TestUser, TotpClock

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# axe's own best practices cover what WCAG leaves to judgement but people rely on: every part of the page inside a
# landmark, one main landmark, one h1, headings without skipped levels.
RULE_TAGS = [*WCAG_TAGS, "best-practice"]
AXE = Axe()
STATUS_NOTE = re.compile(r"Failed to load resource: the server responded with a status of (404|410|422) ")
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": RULE_TAGS}, "resultTypes": ["violations"]}


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']} <{violation['helpUrl']}>")
        for node in violation["nodes"]:
            target = " ".join(str(t) for t in node["target"])
            lines.append(f"    at {target}: {node.get('failureSummary', '').replace(chr(10), ' ')}")
    return "\n".join(lines)


def assert_accessible(person: Person, what: str) -> None:
    """axe finds no WCAG 2.0/2.1 A or AA violation (nor a best-practice one) on the page as it is now, and nothing
    broke the CSP."""
    page = person.page
    results = AXE.run(page, options=AXE_OPTIONS)
    violations = results.response["violations"]
    assert not violations, f"{what} ({page.url}) has accessibility violations:\n{describe(violations)}"
    assert console_errors(person) == [], f"{what}: console errors"
    fits_the_screen(page)  # reflow (WCAG 1.4.10): no sideways scrolling, on a phone too


def console_errors(person: Person) -> list[str]:
    """The console's errors, but for the browser noting the 404, 410 or 422 status of a page that meant it."""
    return [e for e in person.console_errors if not STATUS_NOTE.match(e)]


def assert_error_summary_links_to_fields(page: Any, *field_ids: str) -> None:
    """The summary is shown, and each of its links leads to a form control that exists on the page."""
    summary = page.locator("#error-summary")
    expect(summary).to_be_visible()
    hrefs = [summary.locator("a").nth(i).get_attribute("href") for i in range(summary.locator("a").count())]
    assert [h.removeprefix("#") for h in hrefs] == list(field_ids), hrefs
    for href in hrefs:
        target = page.locator(href)
        expect(target).to_have_count(1)
        tag = target.evaluate("el => el.tagName.toLowerCase()")
        assert tag in ("input", "select", "textarea"), f"{href} leads to a <{tag}>, not a form field"
        # The field says which message describes it.
        described = (target.get_attribute("aria-describedby") or "").split()
        error_id = href.removeprefix("#")
        group = target.locator("xpath=ancestor::fieldset[1]")
        if group.count():
            described += (group.get_attribute("aria-describedby") or "").split()
            error_id = re.sub(r"-\d+$", "", error_id)
        assert f"{error_id}-error" in described, f"{href} is not described by its error message"


def sign_in(person: Person, clock: TotpClock, user: TestUser) -> None:
    page = person.page
    page.get_by_label("Username", exact=True).fill(user.username)
    page.get_by_label("Password", exact=True).fill(user.password)
    page.get_by_label("Two-factor code", exact=True).fill(clock.code(user.totp_secret))
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name=f"Welcome, {user.username}", level=1)).to_be_visible()


# ---------------------------------------------------------------------------------------------------------------
# Sign-in


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize("locale", ["en-GB", "hy"])
def test_the_sign_in_page_is_accessible(live_server: LiveServer, new_person: Any, locale: str,
                                        viewport: dict[str, int]) -> None:
    person = new_person(viewport=viewport, locale=locale)
    person.page.goto(f"{live_server.url}/sign-in")
    expect(person.page.locator("html")).to_have_attribute("lang", locale[:2])
    assert_accessible(person, f"sign-in ({locale})")


def test_a_refused_sign_in_is_accessible_and_its_errors_lead_to_the_fields(
    live_server: LiveServer, new_person: Any, create_user: Any, totp_clock: TotpClock
) -> None:
    amira = create_user("amira", ["interviewer"])
    person = new_person(viewport=PHONE)
    page = person.page
    page.goto(f"{live_server.url}/sign-in")

    # Wrong credentials: one message for the whole form (it must not say which part was wrong).
    page.get_by_label("Username", exact=True).fill(amira.username)
    page.get_by_label("Password", exact=True).fill("not the password at all")
    page.get_by_label("Two-factor code", exact=True).fill(totp_clock.code(amira.totp_secret))
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("The username, password or code is not correct.")
    assert_accessible(person, "sign-in refused")

    # Nothing filled in: each field's message in the summary is a link to that field.
    page.get_by_label("Username", exact=True).fill("")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Fill in this field.")
    assert_error_summary_links_to_fields(page, "username", "password", "code")
    for field_id in ("username", "password", "code"):
        expect(page.locator(f"#{field_id}")).to_have_attribute("aria-invalid", "true")
    assert_accessible(person, "sign-in with empty fields")


def test_the_sign_in_form_is_used_with_the_keyboard_in_a_sensible_order(live_server: LiveServer,
                                                                         new_person: Any) -> None:
    person = new_person(viewport=PHONE)
    page = person.page
    page.goto(f"{live_server.url}/sign-in")

    def tab() -> str:
        """Press Tab; the name of the element that has the focus now, which must show a focus ring."""
        page.keyboard.press("Tab")
        name, outline, ring = page.evaluate(
            "() => { const el = document.activeElement, css = getComputedStyle(el);"
            " return [el.id || el.textContent.trim(), css.outlineStyle + ' ' + css.outlineWidth, css.boxShadow]; }"
        )
        assert outline == "solid 3px" and ring != "none", f"{name} shows no two-tone focus ring: {outline}, {ring}"
        return name

    # From the top of the page the first stop is the skip link, and it is visible once focused.
    assert tab() == "Skip to content"
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    expect(page.get_by_role("link", name="Skip to content")).to_be_in_viewport()

    # Tabbing on passes the header (home link, language switch), then the form in reading order.
    order = [tab() for _ in range(7)]
    assert order == ["Testimony intake", "lang", "Change", "username", "password", "code", "Sign in"], order
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_focused()

    # The skip link jumps over the header: the next Tab lands on the first field.
    page.reload()
    assert tab() == "Skip to content"
    page.keyboard.press("Enter")
    assert tab() == "username"
    assert console_errors(person) == []


# ---------------------------------------------------------------------------------------------------------------
# One-time links and enrolment


@pytest.mark.parametrize("kind", ["setup", "invite"])
def test_enrolment_is_accessible(live_server: LiveServer, new_person: Any, totp_clock: TotpClock,
                                 kind: str) -> None:
    with live_server.app.app_context():
        if kind == "setup":
            link = ops.issue_setup_link()
        else:
            link = ops.invite_account(username="amira", roles=["interviewer", "coordinator"], actor=None)
        db.session.commit()
        url = link.url
    # The first administrator usually sets up on a laptop; colleagues open their link on a phone.
    person = new_person(viewport=DESKTOP if kind == "setup" else PHONE)
    page = person.page

    page.goto(url)
    expect(page.get_by_role("button", name="Continue", exact=True)).to_be_visible()
    assert_accessible(person, f"{kind} link landing page")
    page.get_by_role("button", name="Continue", exact=True).click()
    expect(page).to_have_url(f"{live_server.url}/enrol/password")
    assert_accessible(person, f"{kind}: password step")

    # Step 1 refused: the passwords differ (and, for the setup, no username).
    page.get_by_label("New password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password", exact=True).fill(PASSWORD + " but different")
    page.get_by_role("button", name="Continue", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("The two passwords are not the same.")
    fields = ["confirm"] if kind == "invite" else ["username", "confirm"]
    assert_error_summary_links_to_fields(page, *fields)
    assert_accessible(person, f"{kind}: password step with errors")

    if kind == "setup":
        page.get_by_label("Username", exact=True).fill("lusine")
    page.get_by_label("New password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Continue", exact=True).click()
    expect(page.get_by_role("heading", name="Add your authenticator", level=1)).to_be_visible()
    assert_accessible(person, f"{kind}: authenticator step")

    # Step 2 refused: a code from another authenticator.
    page.get_by_label("Two-factor code", exact=True).fill(totp_clock.code(pyotp.random_base32()))
    page.get_by_role("button", name="Confirm", exact=True).click()
    expect(page.locator("#error-summary")).to_be_visible()
    assert_error_summary_links_to_fields(page, "code")
    assert_accessible(person, f"{kind}: authenticator step with errors")

    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("Two-factor code", exact=True).fill(totp_clock.code(secret))
    page.get_by_role("button", name="Confirm", exact=True).click()
    expect(page.get_by_role("heading", name="Recovery codes", level=1)).to_be_visible()
    assert_accessible(person, f"{kind}: recovery code offer")

    # The spent link, opened again, explains itself.
    page.goto(url)
    expect(page.get_by_role("heading", name="This link cannot be used", level=1)).to_be_visible()
    assert_accessible(person, f"{kind}: spent link")


# ---------------------------------------------------------------------------------------------------------------
# Signed in


def test_the_signed_in_pages_are_accessible(live_server: LiveServer, new_person: Any, create_user: Any,
                                            totp_clock: TotpClock) -> None:
    lusine = create_user("lusine", ["admin"])
    amira = create_user("amira", ["interviewer", "coordinator"])
    with live_server.app.app_context():
        ops.invite_account(username="narek", roles=["reviewer"], actor=None)  # not enrolled yet
        ops.deactivate(db.session.get(Account, amira.id), actor=db.session.get(Account, lusine.id))
        ops.create_api_token(db.session.get(Account, lusine.id), name="field laptop export")
        db.session.commit()

    person = new_person()
    page = person.page
    page.goto(f"{live_server.url}/sign-in")
    sign_in(person, totp_clock, lusine)
    assert_accessible(person, "start page")

    page.get_by_role("navigation").get_by_role("link", name="My account", exact=True).click()
    expect(page.get_by_role("heading", name="My account", level=1)).to_be_visible()
    assert_accessible(person, "my account")

    page.get_by_role("navigation").get_by_role("link", name="Accounts", exact=True).click()
    expect(page.get_by_role("heading", name="Accounts", level=1)).to_be_visible()
    assert_accessible(person, "accounts list (desktop)")
    page.set_viewport_size(PHONE)  # the table turns into cards on a phone
    assert_accessible(person, "accounts list (phone)")
    page.set_viewport_size(DESKTOP)

    # Inviting needs a fresh code first: the step-up page, then the same page refusing a wrong code.
    page.get_by_role("link", name="Invite a colleague").click()
    expect(page.get_by_role("heading", name="Confirm it is you", level=1)).to_be_visible()
    assert_accessible(person, "step-up")
    page.get_by_label("Two-factor code", exact=True).fill(totp_clock.code(pyotp.random_base32()))
    page.get_by_role("button", name="Confirm", exact=True).click()
    assert_error_summary_links_to_fields(page, "code")
    assert_accessible(person, "step-up with errors")
    page.get_by_label("Two-factor code", exact=True).fill(totp_clock.code(lusine.totp_secret))
    page.get_by_role("button", name="Confirm", exact=True).click()

    expect(page.get_by_role("heading", name="Invite a colleague", level=1)).to_be_visible()
    assert_accessible(person, "invite form")
    page.get_by_role("button", name="Create the enrolment link").click()
    expect(page.get_by_role("alert")).to_contain_text("Fill in this field.")
    assert_error_summary_links_to_fields(page, "username", "roles-0")
    expect(page.locator("input[type=checkbox][required]")).to_have_count(0)  # one role is needed, not each
    assert_accessible(person, "invite form with errors")
    page.get_by_label("Username", exact=True).fill("sona")
    page.get_by_role("group", name="Roles").get_by_role("checkbox", name=re.compile(r"^Auditor\b")).check()
    page.get_by_role("button", name="Create the enrolment link").click()
    expect(page.get_by_role("heading", name="Enrolment link for sona", level=1)).to_be_visible()
    assert_accessible(person, "enrolment link issued")

    # The summary lists the problems in the order of the fields, even where the form declares them otherwise.
    page.goto(f"{live_server.url}/account/password")
    page.get_by_role("button", name="Change password", exact=True).click()
    assert_error_summary_links_to_fields(page, "current_password", "password", "confirm")
    assert_accessible(person, "change password with errors")


# ---------------------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("locale", ["en-GB", "hy"])
def test_the_not_found_page_is_accessible(live_server: LiveServer, new_person: Any, locale: str) -> None:
    person = new_person(viewport=PHONE, locale=locale)
    response = person.page.goto(f"{live_server.url}/no/such/page")
    assert response is not None and response.status == 404
    title = armenian().gettext("Page not found") if locale == "hy" else "Page not found"
    expect(person.page.get_by_role("heading", level=1)).to_have_text(title)
    assert_accessible(person, f"404 ({locale})")
