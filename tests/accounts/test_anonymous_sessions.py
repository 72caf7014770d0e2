"""Visitors who are not signed in: their session (CSRF token, language, messages) lives in a signed cookie, so
looking at pages stores nothing on the server; it moves to the server store at sign-in or when a one-time link is
opened, and the anonymous cookie can never sign anyone in."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from intake.accounts import operations as ops
from intake.accounts.models import Account
from intake.core.db import db
from intake.core.sessions import ANONYMOUS_SALT, WebSession
from tests.accounts.conftest import REDIS_URL
from tests.conftest import CSRF_PATTERN, Auth, TestUser, TotpClock, csrf_token, open_link

SERVER_COOKIE = "intake-session"
VISIT_COOKIE = "intake-visit"
BASE = "http://localhost"


def cookie_of(client: FlaskClient, name: str) -> str | None:
    cookie = client.get_cookie(name)
    return cookie.value if cookie is not None else None


def set_cookie_headers(response: Any) -> list[str]:
    return [value for key, value in response.headers.items() if key.lower() == "set-cookie"]


def stored_sessions(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(WebSession)) or 0


def serializer(app: Flask) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=ANONYMOUS_SALT,
                                  signer_kwargs={"digest_method": hashlib.sha256})


def token_in(html: str) -> str:
    match = CSRF_PATTERN.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1) or match.group(2)


# ---------------------------------------------------------------------------------------------------------------
# Nothing on the server


def test_looking_at_the_sign_in_page_stores_nothing_on_the_server(app: Flask) -> None:
    for _ in range(40):  # new visitors
        assert app.test_client().get("/sign-in").status_code == 200
    returning = app.test_client()
    for _ in range(40):  # one visitor reloading
        assert returning.get("/sign-in").status_code == 200
    assert returning.get("/").status_code == 302
    assert stored_sessions(app) == 0
    assert cookie_of(returning, SERVER_COOKIE) is None
    assert cookie_of(returning, VISIT_COOKIE) is not None


def test_with_redis_looking_at_pages_stores_nothing_either(make_app: Callable[..., Flask],
                                                            redis_client: Any) -> None:
    app = make_app(REDIS_URL=REDIS_URL)
    for _ in range(20):
        assert app.test_client().get("/sign-in").status_code == 200
    assert redis_client.keys("intake:session:*") == []


# ---------------------------------------------------------------------------------------------------------------
# The anonymous cookie


def test_the_anonymous_cookie_is_signed_and_holds_only_the_csrf_token(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/sign-in")
    value = cookie_of(client, VISIT_COOKIE)
    assert value is not None
    assert set(serializer(app).loads(value)) == {"csrf_token"}
    (header,) = [h for h in set_cookie_headers(page) if h.startswith(f"{VISIT_COOKIE}=")]
    parts = {part.strip().lower() for part in header.split(";")[1:]}
    assert {"httponly", "path=/", "samesite=lax"} <= parts
    assert not any(part.startswith(("domain", "expires", "max-age")) for part in parts)  # gone with the browser
    assert "secure" not in parts  # SECURE_COOKIES is false in this configuration


def test_a_tampered_anonymous_cookie_starts_afresh_and_its_form_is_refused(app: Flask) -> None:
    client = app.test_client()
    token = token_in(client.get("/sign-in").get_data(as_text=True))
    value = cookie_of(client, VISIT_COOKIE)
    assert value is not None
    payload, _, rest = value.partition(".")
    forged = serializer(app).loads(value) | {"csrf_token": "0" * 40}
    forged_payload = URLSafeTimedSerializer("another key").dumps(forged).partition(".")[0]
    client.set_cookie(VISIT_COOKIE, f"{forged_payload}.{rest}")

    response = client.post("/sign-in", data={"csrf_token": token, "username": "amira", "password": "x", "code": "1"})
    assert response.status_code == 400
    assert "nothing was saved" in response.get_data(as_text=True)
    fresh = cookie_of(client, VISIT_COOKIE)
    assert fresh is not None and fresh != value
    assert stored_sessions(app) == 0


def test_an_anonymous_cookie_older_than_the_idle_timeout_is_not_accepted(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app.test_client()
    token = token_in(client.get("/sign-in").get_data(as_text=True))
    value = cookie_of(client, VISIT_COOKIE)
    assert value is not None
    idle = timedelta(minutes=app.config["SESSION_IDLE_MINUTES"])
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp",
                        lambda self: real(self) - int(idle.total_seconds()) - 5)
    old = serializer(app).dumps(serializer(app).loads(value))
    monkeypatch.undo()
    client.set_cookie(VISIT_COOKIE, old)
    response = client.post("/sign-in", data={"csrf_token": token, "username": "amira", "password": "x", "code": "1"})
    assert response.status_code == 400


def test_a_validly_signed_anonymous_cookie_never_signs_anyone_in(
    app: Flask, create_user: Callable[..., TestUser]
) -> None:
    user = create_user()
    with app.app_context():
        account = db.session.get(Account, user.id)
        assert account is not None
        epoch = account.auth_epoch
    client = app.test_client()
    client.set_cookie(VISIT_COOKIE, serializer(app).dumps({"account_id": user.id, "epoch": epoch}))
    assert client.get("/account").status_code == 302


def test_the_chosen_language_stays_for_an_anonymous_visitor(app: Flask) -> None:
    client = app.test_client()
    token = csrf_token(client)
    chosen = client.post("/language", data={"csrf_token": token, "lang": "ru", "next": "/sign-in"})
    assert chosen.status_code == 303
    assert '<html lang="ru"' in client.get("/sign-in").get_data(as_text=True)
    assert '<html lang="ru"' in client.get("/sign-in").get_data(as_text=True)
    assert stored_sessions(app) == 0


# ---------------------------------------------------------------------------------------------------------------
# Moving to the server


def test_signing_in_moves_the_session_to_the_server_under_a_new_id(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    user = create_user()
    client = app.test_client()
    token = csrf_token(client)
    client.post("/language", data={"csrf_token": token, "lang": "hy", "next": "/sign-in"})
    anonymous = cookie_of(client, VISIT_COOKIE)
    assert anonymous is not None

    response = Auth(client, totp_clock).sign_in(user)
    assert response.status_code == 303
    headers = set_cookie_headers(response)
    assert any(h.startswith(f"{VISIT_COOKIE}=;") for h in headers)  # the anonymous cookie is removed
    sid = cookie_of(client, SERVER_COOKIE)
    assert sid is not None and sid not in anonymous
    assert cookie_of(client, VISIT_COOKIE) is None
    assert stored_sessions(app) == 1
    page = client.get("/account")
    assert page.status_code == 200 and '<html lang="hy"' in page.get_data(as_text=True)

    # The anonymous cookie from before sign-in signs nobody in.
    before = app.test_client()
    before.set_cookie(VISIT_COOKIE, anonymous)
    assert before.get("/account").status_code == 302


def test_sign_out_removes_both_cookies(app: Flask, create_user: Callable[..., TestUser],
                                       totp_clock: TotpClock) -> None:
    client = app.test_client()
    assert Auth(client, totp_clock).sign_in(create_user()).status_code == 303
    response = Auth(client, totp_clock).sign_out()
    headers = set_cookie_headers(response)
    assert any(h.startswith(f"{SERVER_COOKIE}=;") for h in headers)
    assert any(h.startswith(f"{VISIT_COOKIE}=;") for h in headers)
    assert stored_sessions(app) == 0


def test_opening_a_one_time_link_moves_the_session_to_the_server(app: Flask) -> None:
    with app.app_context():
        link = ops.invite_account(username="amira", roles=["interviewer"], actor=None)
        db.session.commit()
        path = link.url.removeprefix(BASE)
    client = app.test_client()
    assert client.get(path).status_code == 200
    assert cookie_of(client, VISIT_COOKIE) is not None and stored_sessions(app) == 0

    opened = open_link(client, path)
    assert opened.status_code == 303
    assert any(h.startswith(f"{VISIT_COOKIE}=;") for h in set_cookie_headers(opened))
    assert cookie_of(client, SERVER_COOKIE) is not None
    assert stored_sessions(app) == 1
    assert client.get("/enrol/password").status_code == 200
