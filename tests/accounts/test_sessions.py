"""Server-side sessions: a new id at sign-in, sign-out that really ends the session, idle and absolute timeouts,
every session ended on password change, deactivation and role change, careful cookies, only hashes stored, the
same behaviour with Redis as the store, and no ended session brought back by a request that was still running."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import flask
import pyotp
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from intake.accounts import operations as ops
from intake.accounts.models import Account
from intake.core.audit import AuditAction, AuditEvent
from intake.core.db import db, utcnow
from intake.core.sessions import WebSession
from tests.accounts.conftest import REDIS_URL
from tests.conftest import PASSWORD, Auth, TestUser, TotpClock, post_form

COOKIE = "intake-session"
ANONYMOUS_COOKIE = "intake-visit"  # the signed cookie of a visitor not signed in (see test_anonymous_sessions.py)
ENDED = "Your session has ended. Sign in again."
NEW_PASSWORD = "saffron lantern orchard thimble"


def cookie_of(client: FlaskClient, name: str = COOKIE) -> str | None:
    cookie = client.get_cookie(name)
    return cookie.value if cookie is not None else None


def client_with_cookie(app: Flask, value: str, name: str = COOKIE) -> FlaskClient:
    client = app.test_client()
    client.set_cookie(name, value)
    return client


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def session_rows(app: Flask) -> list[WebSession]:
    with app.app_context():
        rows = db.session.scalars(sa.select(WebSession)).all()
        for row in rows:
            db.session.expunge(row)
        return list(rows)


def edit_session(app: Flask, sid: str, **changes: Any) -> None:
    with app.app_context():
        row = db.session.get(WebSession, sha256(sid))
        assert row is not None, "no stored session for this cookie"
        for key, value in changes.items():
            setattr(row, key, value)
        db.session.commit()


def user_in(app: Flask, username: str = "amira") -> TestUser:
    """An enrolled account in `app` (for apps built with non-default settings, where `create_user` does not reach)."""
    secret = pyotp.random_base32()
    with app.app_context():
        account = ops.create_account(username=username, roles=["interviewer"], password=PASSWORD,
                                     totp_secret=secret)
        db.session.commit()
        return TestUser(account.id, username, PASSWORD, secret, ["interviewer"])


def signed_in_client(app: Flask, clock: TotpClock, user: TestUser) -> FlaskClient:
    client = app.test_client()
    response = Auth(client, clock).sign_in(user)
    assert response.status_code == 303, response.get_data(as_text=True)
    assert client.get("/").status_code == 200
    return client


def assert_sent_to_sign_in(client: FlaskClient, *, message: str | None = ENDED) -> None:
    response = client.get("/account")
    assert response.status_code == 302
    assert "/sign-in" in response.headers["Location"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'name="password"' in page
    if message:
        assert message in page


def set_cookie_headers(response: Any) -> list[str]:
    return [value for key, value in response.headers.items() if key.lower() == "set-cookie"]


def take_cookies(client: FlaskClient, response: Any) -> None:
    """Keep the cookies `response` sets or deletes, as the browser that sent the request would."""
    for header in set_cookie_headers(response):
        name, _, rest = header.partition("=")
        value = rest.split(";", 1)[0]
        if value:
            client.set_cookie(name, value)
        else:
            client.delete_cookie(name)


# ---------------------------------------------------------------------------------------------------------------
# Sign-in and sign-out


def test_signing_in_issues_a_new_session_id(app: Flask, create_user: Callable[..., TestUser],
                                            totp_clock: TotpClock) -> None:
    user = create_user()
    other = create_user("narek")
    client = app.test_client()
    client.get("/sign-in")
    before = cookie_of(client, ANONYMOUS_COOKIE)
    assert before is not None  # the sign-in form's CSRF token lives in a (not signed-in) session
    assert cookie_of(client) is None

    assert Auth(client, totp_clock).sign_in(user).status_code == 303
    after = cookie_of(client)
    assert after is not None and after not in before
    assert cookie_of(client, ANONYMOUS_COOKIE) is None
    assert client.get("/").status_code == 200

    # Whoever held the session from before sign-in is not signed in with it.
    assert client_with_cookie(app, before, ANONYMOUS_COOKIE).get("/").status_code == 302
    assert {row.id_hash for row in session_rows(app)} == {sha256(after)}

    # Signing in again over a signed-in session also issues a new id, and the old one stops working.
    again = post_form(client, "/sign-in", {"username": other.username, "password": other.password,
                                           "code": totp_clock.code(other.totp_secret)}, token_from="/account")
    assert again.status_code == 303
    renewed = cookie_of(client)
    assert renewed is not None and renewed != after
    assert client_with_cookie(app, after).get("/").status_code == 302
    assert {row.id_hash for row in session_rows(app)} == {sha256(renewed)}


def test_sign_out_is_post_only(app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock) -> None:
    client = signed_in_client(app, totp_clock, create_user())
    response = client.get("/sign-out")
    assert response.status_code == 405
    assert "This action is not available here" in response.get_data(as_text=True)
    allowed = {method.strip() for method in response.headers["Allow"].split(",")}
    assert "POST" in allowed and "GET" not in allowed
    assert client.get("/").status_code == 200  # still signed in


def test_sign_out_clears_the_browser_and_the_old_cookie_stops_working(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    user = create_user()
    client = signed_in_client(app, totp_clock, user)
    sid = cookie_of(client)
    assert sid is not None

    response = Auth(client, totp_clock).sign_out()
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/sign-in")
    assert response.headers["Clear-Site-Data"] == '"cache", "cookies", "storage"'
    removed = set_cookie_headers(response)
    assert any(h.startswith(f"{COOKIE}=;") for h in removed)  # the cookies are removed
    assert any(h.startswith(f"{ANONYMOUS_COOKIE}=;") for h in removed)
    assert cookie_of(client) is None

    assert client_with_cookie(app, sid).get("/").status_code == 302
    assert sha256(sid) not in {row.id_hash for row in session_rows(app)}
    with app.app_context():
        assert db.session.scalar(sa.select(AuditEvent.actor_id).where(AuditEvent.action == AuditAction.LOGOUT)) \
            == user.id


def test_sign_out_without_a_csrf_token_does_not_sign_out(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    client = signed_in_client(app, totp_clock, create_user())
    response = client.post("/sign-out", data={})
    assert response.status_code == 400
    assert "nothing was saved" in response.get_data(as_text=True)
    assert client.get("/").status_code == 200


# ---------------------------------------------------------------------------------------------------------------
# Timeouts


def test_an_idle_session_ends(app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock) -> None:
    client = signed_in_client(app, totp_clock, create_user())
    sid = cookie_of(client)
    assert sid is not None
    (row,) = [r for r in session_rows(app) if r.id_hash == sha256(sid)]
    idle = timedelta(minutes=app.config["SESSION_IDLE_MINUTES"])
    assert row.expires_at - row.last_seen_at == idle

    edit_session(app, sid, last_seen_at=utcnow() - idle - timedelta(seconds=5),
                 expires_at=utcnow() - timedelta(seconds=5))
    assert_sent_to_sign_in(client)
    assert client.get("/").status_code == 302  # and it stays ended


def test_activity_keeps_a_session_alive(make_app: Callable[..., Flask], totp_clock: TotpClock) -> None:
    app = make_app(SESSION_IDLE_MINUTES=1)
    client = signed_in_client(app, totp_clock, user_in(app))
    sid = cookie_of(client)
    assert sid is not None
    # Seen 50 seconds ago, ten seconds left: a request now extends the session by the full idle time.
    edit_session(app, sid, last_seen_at=utcnow() - timedelta(seconds=70), expires_at=utcnow() + timedelta(seconds=10))
    assert client.get("/").status_code == 200
    (row,) = session_rows(app)
    assert row.expires_at > utcnow() + timedelta(seconds=50)


def test_a_session_ends_after_the_absolute_timeout_however_active(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    client = signed_in_client(app, totp_clock, create_user())
    sid = cookie_of(client)
    assert sid is not None
    hours = app.config["SESSION_ABSOLUTE_HOURS"]
    edit_session(app, sid, created_at=utcnow() - timedelta(hours=hours, minutes=1), last_seen_at=utcnow(),
                 expires_at=utcnow() + timedelta(minutes=10))
    assert_sent_to_sign_in(client)
    assert sha256(sid) not in {row.id_hash for row in session_rows(app)}


def test_a_session_just_inside_the_absolute_timeout_still_works(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    client = signed_in_client(app, totp_clock, create_user())
    sid = cookie_of(client)
    assert sid is not None
    hours = app.config["SESSION_ABSOLUTE_HOURS"]
    edit_session(app, sid, created_at=utcnow() - timedelta(hours=hours) + timedelta(minutes=1))
    assert client.get("/").status_code == 200


# ---------------------------------------------------------------------------------------------------------------
# Ending every session of an account


def test_a_password_change_ends_every_session_of_the_account(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    user = create_user()
    other = create_user("narek")
    laptop = signed_in_client(app, totp_clock, user)
    phone = signed_in_client(app, totp_clock, user)
    colleague = signed_in_client(app, totp_clock, other)

    changed = post_form(laptop, "/account/password",
                        {"current_password": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert changed.status_code == 303
    assert "signed out everywhere" in laptop.get(changed.headers["Location"]).get_data(as_text=True)
    assert laptop.get("/").status_code == 302
    assert_sent_to_sign_in(phone)
    assert colleague.get("/").status_code == 200  # other people's sessions are untouched
    assert {row.account_id for row in session_rows(app)} - {None} == {other.id}

    old = Auth(app.test_client(), totp_clock).sign_in(user)
    assert old.status_code == 422
    assert "The username, password or code is not correct." in old.get_data(as_text=True)
    renewed = TestUser(user.id, user.username, NEW_PASSWORD, user.totp_secret, user.roles)
    assert Auth(app.test_client(), totp_clock).sign_in(renewed).status_code == 303


def test_deactivation_ends_the_accounts_sessions_at_once(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    admin = create_user("lusine", roles=("admin",))
    user = create_user()
    target = signed_in_client(app, totp_clock, user)
    admin_client = signed_in_client(app, totp_clock, admin)

    response = post_form(admin_client, f"/admin/accounts/{user.id}/deactivate", {}, token_from="/admin/accounts")
    assert response.status_code == 303
    assert "amira is deactivated and signed out." in admin_client.get("/admin/accounts").get_data(as_text=True)
    assert_sent_to_sign_in(target)
    assert user.id not in {row.account_id for row in session_rows(app)}
    assert admin_client.get("/").status_code == 200


def test_a_role_change_needs_step_up_and_ends_the_targets_sessions(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    admin = create_user("lusine", roles=("admin",))
    user = create_user()
    target = signed_in_client(app, totp_clock, user)
    admin_client = signed_in_client(app, totp_clock, admin)
    path = f"/admin/accounts/{user.id}/roles"

    first = admin_client.get(path)
    assert first.status_code == 302
    assert first.headers["Location"].startswith("/step-up?next=")
    assert path in first.headers["Location"].replace("%2F", "/")
    # Without a fresh code the change is refused (sent to step-up) and nothing changes.
    blocked = post_form(admin_client, path, {"roles": ["reviewer"]}, token_from="/account")
    assert blocked.status_code == 302 and "/step-up" in blocked.headers["Location"]
    assert target.get("/").status_code == 200

    stepped = post_form(admin_client, first.headers["Location"], {"code": totp_clock.code(admin.totp_secret)})
    assert stepped.status_code == 303
    assert stepped.headers["Location"] == path
    assert admin_client.get(path).status_code == 200
    changed = post_form(admin_client, path, {"roles": ["reviewer"]})
    assert changed.status_code == 303
    assert_sent_to_sign_in(target)

    again = signed_in_client(app, totp_clock, user)
    assert "reviewer" in again.get("/account").get_data(as_text=True)
    with app.app_context():
        account = db.session.get(Account, user.id)
        assert account is not None and account.role_names == ["reviewer"]
        assert db.session.scalar(sa.select(sa.func.count(AuditEvent.seq)).where(
            AuditEvent.action == AuditAction.ROLES_CHANGED)) == 1


# ---------------------------------------------------------------------------------------------------------------
# Cookies and what is stored


@pytest.mark.parametrize("name", [ANONYMOUS_COOKIE, COOKIE])
def test_the_session_cookies_are_http_only_and_same_site_lax(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock, name: str
) -> None:
    client = app.test_client()
    response = client.get("/sign-in")  # sets the anonymous cookie
    if name == COOKIE:
        response = Auth(client, totp_clock).sign_in(create_user())
    (header,) = [h for h in set_cookie_headers(response) if h.startswith(f"{name}=")]
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert "httponly" in attributes
    assert "samesite=lax" in header.lower().replace(" ", "")
    assert "path" in attributes and "domain" not in attributes
    assert "expires" not in attributes and "max-age" not in attributes  # gone when the browser closes
    assert "secure" not in attributes  # SECURE_COOKIES is false in this configuration


def test_with_secure_cookies_the_cookie_is_host_prefixed_and_secure(
    make_app: Callable[..., Flask], totp_clock: TotpClock
) -> None:
    app = make_app(SECURE_COOKIES="true")
    user = user_in(app)
    client = app.test_client()
    https = {"base_url": "https://localhost"}
    page = client.get("/sign-in", **https)
    (header,) = [h for h in set_cookie_headers(page) if "intake-visit=" in h]
    assert header.startswith("__Host-intake-visit=")
    parts = {part.strip().lower() for part in header.split(";")[1:]}
    assert {"secure", "httponly", "path=/", "samesite=lax"} <= parts
    assert not any(part.startswith("domain") for part in parts)
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")

    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.get_data(as_text=True))
    assert token
    signed_in = client.post("/sign-in", data={"csrf_token": token.group(1), "username": "amira",
                                              "password": PASSWORD, "code": totp_clock.code(user.totp_secret)},
                            headers={"Referer": "https://localhost/sign-in"}, **https)
    assert signed_in.status_code == 303
    (header,) = [h for h in set_cookie_headers(signed_in) if "intake-session=" in h]
    assert header.startswith("__Host-intake-session=") and "Secure" in header
    parts = {part.strip().lower() for part in header.split(";")[1:]}
    assert {"secure", "httponly", "path=/", "samesite=lax"} <= parts
    (removed,) = [h for h in set_cookie_headers(signed_in) if "intake-visit=" in h]
    assert removed.startswith("__Host-intake-visit=;") and "Secure" in removed  # the anonymous cookie goes
    assert client.get("/", **https).status_code == 200


def test_only_the_hash_of_the_session_id_is_stored(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    user = create_user()
    client = signed_in_client(app, totp_clock, user)
    sid = cookie_of(client)
    assert sid is not None
    rows = session_rows(app)
    assert sha256(sid) in {row.id_hash for row in rows}
    with app.app_context():
        everything = "\n".join(repr(tuple(r)) for r in db.session.execute(sa.select(WebSession.__table__)))
    assert sid not in everything
    assert user.password not in everything


# ---------------------------------------------------------------------------------------------------------------
# Redis


def test_sessions_work_the_same_with_redis(
    make_app: Callable[..., Flask], redis_client: Any, totp_clock: TotpClock
) -> None:
    app = make_app(REDIS_URL=REDIS_URL)
    user = user_in(app)

    client = app.test_client()
    client.get("/sign-in")
    before = cookie_of(client, ANONYMOUS_COOKIE)
    assert before is not None
    laptop = client
    assert Auth(laptop, totp_clock).sign_in(user).status_code == 303
    sid = cookie_of(laptop)
    assert sid is not None and sid not in before
    assert laptop.get("/").status_code == 200
    assert client_with_cookie(app, before, ANONYMOUS_COOKIE).get("/").status_code == 302

    keys = {k.decode() for k in redis_client.keys("intake:session:*")}
    assert f"intake:session:{sha256(sid)}" in keys
    assert not any(sid in k for k in keys)
    assert sid.encode() not in b"".join(redis_client.get(k) or b"" for k in keys)
    ttl = redis_client.ttl(f"intake:session:{sha256(sid)}")
    assert 0 < ttl <= app.config["SESSION_IDLE_MINUTES"] * 60
    assert session_rows(app) == []  # nothing in the database

    # A password change elsewhere ends this session too.
    phone = signed_in_client(app, totp_clock, user)
    changed = post_form(phone, "/account/password",
                        {"current_password": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert changed.status_code == 303
    assert_sent_to_sign_in(laptop)

    # Sign-out removes the stored session.
    renewed = TestUser(user.id, user.username, NEW_PASSWORD, user.totp_secret, user.roles)
    tablet = signed_in_client(app, totp_clock, renewed)
    tablet_sid = cookie_of(tablet)
    assert tablet_sid is not None
    Auth(tablet, totp_clock).sign_out()
    assert not redis_client.exists(f"intake:session:{sha256(tablet_sid)}")
    assert client_with_cookie(app, tablet_sid).get("/").status_code == 302


def test_an_expired_redis_session_ends(make_app: Callable[..., Flask], redis_client: Any,
                                       totp_clock: TotpClock) -> None:
    app = make_app(REDIS_URL=REDIS_URL)
    client = signed_in_client(app, totp_clock, user_in(app))
    sid = cookie_of(client)
    assert sid is not None
    redis_client.delete(f"intake:session:{sha256(sid)}")  # what the idle expiry does
    assert_sent_to_sign_in(client)


# ---------------------------------------------------------------------------------------------------------------
# A request still running when its session ends


@pytest.mark.parametrize("store", ["database", "redis"])
@pytest.mark.parametrize("change", ["modified", "touched"])
def test_a_request_that_saves_after_sign_out_does_not_bring_the_session_back(
    make_app: Callable[..., Flask], totp_clock: TotpClock, request: pytest.FixtureRequest, store: str, change: str
) -> None:
    if store == "redis":
        redis_client = request.getfixturevalue("redis_client")
        app = make_app(REDIS_URL=REDIS_URL)
    else:
        app = make_app()
    user = user_in(app)
    client = signed_in_client(app, totp_clock, user)
    sid = cookie_of(client)
    assert sid is not None
    interface = app.session_interface

    # A slow request (say, a large upload) loads the session...
    with app.test_request_context("/account", headers={"Cookie": f"{COOKIE}={sid}"}):
        slow = interface.open_session(app, flask.request)
    assert slow is not None and slow.get("account_id") == user.id
    # ...the person signs out in another tab...
    assert Auth(client, totp_clock).sign_out().status_code == 303
    # ...and the slow request finishes, having changed its session or needing to note the activity.
    if change == "modified":
        slow["stepped_up_at"] = 0.0
    else:
        slow.last_seen_at = utcnow() - timedelta(hours=1)  # type: ignore[attr-defined]
    with app.test_request_context("/account", headers={"Cookie": f"{COOKIE}={sid}"}):
        response = app.response_class()
        interface.save_session(app, slow, response)

    assert client_with_cookie(app, sid).get("/").status_code == 302  # the old id signs nobody in
    if store == "redis":
        assert not redis_client.exists(f"intake:session:{sha256(sid)}")
    else:
        assert sha256(sid) not in {row.id_hash for row in session_rows(app)}
    # Its browser forgets the id, and the next page says the session has ended.
    assert any(h.startswith(f"{COOKIE}=;") for h in set_cookie_headers(response))
    take_cookies(client, response)
    assert cookie_of(client) is None
    assert_sent_to_sign_in(client)
    assert client.get("/").status_code == 302


def test_a_request_that_saves_after_every_session_ended_does_not_bring_the_session_back(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    user = create_user()
    laptop = signed_in_client(app, totp_clock, user)
    sid = cookie_of(laptop)
    assert sid is not None
    interface = app.session_interface
    with app.test_request_context("/account", headers={"Cookie": f"{COOKIE}={sid}"}):
        slow = interface.open_session(app, flask.request)
    assert slow is not None

    phone = signed_in_client(app, totp_clock, user)
    changed = post_form(phone, "/account/password",
                        {"current_password": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert changed.status_code == 303
    slow["stepped_up_at"] = 0.0
    with app.test_request_context("/account", headers={"Cookie": f"{COOKIE}={sid}"}):
        response = app.response_class()
        interface.save_session(app, slow, response)

    assert user.id not in {row.account_id for row in session_rows(app)}
    take_cookies(laptop, response)
    assert cookie_of(laptop) is None
    assert_sent_to_sign_in(laptop)
