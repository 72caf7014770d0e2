"""The first-run story end to end through the web pages: setup link → first admin → invite → enrolment → sign-in."""

from __future__ import annotations

import re
from collections.abc import Callable

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from intake.accounts import operations as ops
from intake.core.db import db
from tests.conftest import PASSWORD, TotpClock, open_link, post_form

SECRET_PATTERN = re.compile(r'id="totp-secret">([A-Z2-7 ]+)<')
LINK_PATTERN = re.compile(r'id="one-time-link">([^<]+)<')


def issue_setup_link(app: Flask) -> str:
    with app.app_context():
        link = ops.issue_setup_link()
        db.session.commit()
        return link.url.removeprefix("http://localhost")


def enrol(client: FlaskClient, clock: TotpClock, link_path: str, *, username: str | None = None,
          password: str = PASSWORD) -> str:
    """Follow a one-time link through both enrolment steps; return the TOTP secret shown on the page."""
    opened = open_link(client, link_path)
    assert opened.status_code == 303 and opened.headers["Location"].endswith("/enrol/password")
    data = {"password": password, "confirm": password}
    if username:
        data["username"] = username
    step1 = post_form(client, "/enrol/password", data)
    assert step1.status_code == 303, step1.get_data(as_text=True)
    page = client.get("/enrol/authenticator").get_data(as_text=True)
    assert "<svg" in page  # the QR code is rendered on the server
    secret = SECRET_PATTERN.search(page).group(1).replace(" ", "")
    step2 = post_form(client, "/enrol/authenticator", {"code": clock.code(secret)},
                      token_from="/enrol/password")
    assert step2.status_code == 303, step2.get_data(as_text=True)
    return secret


def test_first_admin_invites_a_colleague_who_then_signs_in(app: Flask, totp_clock: TotpClock) -> None:
    admin = app.test_client()
    admin_secret = enrol(admin, totp_clock, issue_setup_link(app), username="lusine")
    home = admin.get("/")
    assert home.status_code == 200 and "lusine" in home.get_data(as_text=True)

    assert post_form(admin, "/step-up", {"code": totp_clock.code(admin_secret)}).status_code == 303
    invite = post_form(admin, "/admin/accounts/invite", {"username": "amira", "roles": ["interviewer"]})
    assert invite.status_code == 200
    link = LINK_PATTERN.search(invite.get_data(as_text=True)).group(1).removeprefix("http://localhost")
    assert link.startswith("/enrol/")

    colleague = app.test_client()
    secret = enrol(colleague, totp_clock, link)
    assert colleague.get("/").status_code == 200
    post_form(colleague, "/sign-out", {}, token_from="/")
    assert colleague.get("/").status_code == 302

    signed_in = post_form(colleague, "/sign-in", {"username": "amira", "password": PASSWORD,
                                                  "code": totp_clock.code(secret)})
    assert signed_in.status_code == 303
    me = colleague.get("/")
    assert "amira" in me.get_data(as_text=True)
    assert admin_secret != secret
    assert pyotp.TOTP(secret).now()


def test_the_authenticator_entry_carries_the_configured_neutral_name(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    from intake.accounts import totp

    app = make_app(TOTP_ISSUER="Notes")
    encoded: list[str] = []
    real_make = totp.segno.make
    monkeypatch.setattr(totp.segno, "make", lambda uri, **kw: encoded.append(uri) or real_make(uri, **kw))
    with app.app_context():
        link = ops.invite_account(username="amira", roles=["interviewer"], actor=None).url
        db.session.commit()
    client = app.test_client()
    open_link(client, link.removeprefix("http://localhost"))
    post_form(client, "/enrol/password", {"password": PASSWORD, "confirm": PASSWORD})
    page = client.get("/enrol/authenticator").get_data(as_text=True)
    assert encoded and "issuer=Notes" in encoded[-1] and "Testimony" not in encoded[-1]
    assert 'role="img"' in page and "QR code to scan with your authenticator app" in page
