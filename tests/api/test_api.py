"""The JSON API as a script author meets it: bearer tokens only, clear problem+json errors, no cookies, no CSRF."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from intake.accounts import operations as ops
from intake.accounts.models import Account, ApiToken
from intake.core.db import db, utcnow
from tests.conftest import PASSWORD, Auth, TestUser, post_form

PROBLEM = "application/problem+json"
TOKEN_ON_PAGE = re.compile(r'id="api-token">([^<]+)<')


def make_token(app: Flask, user: TestUser, *, name: str = "script", days: int | None = None) -> tuple[int, str]:
    with app.app_context():
        account = db.session.get(Account, user.id)
        token, plaintext = ops.create_api_token(account, name=name, expires_in_days=days)
        db.session.commit()
        return token.id, plaintext


def create_user_on(app: Flask, username: str) -> TestUser:
    secret = pyotp.random_base32()
    with app.app_context():
        account = ops.create_account(username=username, roles=["interviewer"], password=PASSWORD,
                                     totp_secret=secret)
        db.session.commit()
        return TestUser(account.id, account.username, PASSWORD, secret, ["interviewer"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_unauthorized(response: Any, detail_fragment: str) -> None:
    assert response.status_code == 401
    assert response.mimetype == PROBLEM
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.get_json()
    assert body["status"] == 401
    assert detail_fragment in body["detail"], body["detail"]


@pytest.fixture
def amira(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("amira", ["interviewer", "coordinator"])


# ---------------------------------------------------------------------------------------------------------------
# Who am I


def test_me_answers_with_the_token_owners_identity_roles_and_permissions(
    app: Flask, client: FlaskClient, amira: TestUser
) -> None:
    _id, token = make_token(app, amira)
    response = client.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["id"] == amira.id
    assert body["username"] == "amira"
    assert sorted(body["roles"]) == ["coordinator", "interviewer"]
    assert body["permissions"] == ["coordinate", "own_account", "record_interviews"]
    assert token not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "Authorization: Bearer"),
        ({"Authorization": "Basic YW1pcmE6cGFzc3dvcmQ="}, "Authorization: Bearer"),
        ({"Authorization": "Bearer"}, "Authorization: Bearer"),
        ({"Authorization": "Bearer    "}, "Authorization: Bearer"),
        ({"Authorization": "Bearer not-one-of-ours"}, "not valid"),
        ({"Authorization": "Bearer intk_" + "x" * 300}, "not valid"),
        ({"Authorization": "Bearer intk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, "not valid"),
    ],
    ids=["missing", "basic-scheme", "bearer-without-token", "bearer-blank", "malformed", "too-long", "unknown"],
)
def test_a_missing_malformed_or_unknown_token_gets_401_problem(
    client: FlaskClient, amira: TestUser, headers: dict[str, str], detail: str
) -> None:
    assert_unauthorized(client.get("/api/v1/me", headers=headers), detail)


def test_a_revoked_token_gets_401_saying_so(app: Flask, client: FlaskClient, amira: TestUser) -> None:
    token_id, token = make_token(app, amira)
    with app.app_context():
        ops.revoke_api_token(db.session.get(ApiToken, token_id), actor=db.session.get(Account, amira.id))
        db.session.commit()
    assert_unauthorized(client.get("/api/v1/me", headers=bearer(token)), "revoked")


def test_an_expired_token_gets_401_saying_so(app: Flask, client: FlaskClient, amira: TestUser) -> None:
    token_id, token = make_token(app, amira, days=1)
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    with app.app_context():
        db.session.get(ApiToken, token_id).expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert_unauthorized(client.get("/api/v1/me", headers=bearer(token)), "expired")


def test_the_token_of_a_deactivated_account_stops_working(
    app: Flask, client: FlaskClient, amira: TestUser, create_user: Callable[..., TestUser]
) -> None:
    admin = create_user("lusine", ["admin"])
    _id, token = make_token(app, amira)
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    with app.app_context():
        ops.deactivate(db.session.get(Account, amira.id), actor=db.session.get(Account, admin.id))
        db.session.commit()
    # Deactivation revokes the account's tokens, so the answer says so.
    assert_unauthorized(client.get("/api/v1/me", headers=bearer(token)), "revoked")


def test_a_signed_in_browser_session_does_not_authenticate_the_api(
    client: FlaskClient, auth: Auth, amira: TestUser
) -> None:
    assert auth.sign_in(amira).status_code == 303
    assert client.get("/account").status_code == 200  # the browser session works for pages
    assert_unauthorized(client.get("/api/v1/me"), "Authorization: Bearer")
    assert_unauthorized(client.get("/api/v1/tokens"), "Authorization: Bearer")


# ---------------------------------------------------------------------------------------------------------------
# Changing the preferred language


def locale_of(app: Flask, user: TestUser) -> str | None:
    with app.app_context():
        return db.session.get(Account, user.id).locale


def account_row(app: Flask, user: TestUser) -> dict[str, Any]:
    with app.app_context():
        row = db.session.execute(sa.select(Account.__table__).where(Account.id == user.id)).one()
        return dict(row._mapping)


def test_patch_me_sets_the_preferred_language_and_later_pages_use_it(
    app: Flask, client: FlaskClient, amira: TestUser, auth: Auth
) -> None:
    _id, token = make_token(app, amira)
    before = account_row(app, amira)
    audit_before = audit_actions(app)
    response = client.patch("/api/v1/me", json={"locale": "hy"}, headers=bearer(token))  # no CSRF token
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["locale"] == "hy" and body["username"] == "amira" and body["id"] == amira.id
    assert client.get("/api/v1/me", headers=bearer(token)).get_json()["locale"] == "hy"
    # Nothing else about the account changed.
    assert {k: v for k, v in account_row(app, amira).items() if k != "locale"} == {
        k: v for k, v in before.items() if k != "locale"
    }
    assert audit_actions(app) == audit_before
    # The next time amira signs in, without choosing a language, the pages are in Armenian.
    browser = app.test_client()
    assert Auth(browser, auth.clock).sign_in(amira).status_code == 303
    assert '<html lang="hy"' in browser.get("/").get_data(as_text=True)


def audit_actions(app: Flask) -> list[str]:
    from intake.core.audit import AuditEvent

    with app.app_context():
        return list(db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.seq)))


def test_patch_me_with_a_malformed_json_body_is_a_400_problem(
    app: Flask, client: FlaskClient, amira: TestUser
) -> None:
    _id, token = make_token(app, amira)
    for body in ("{not json", '{"locale": "hy"', b"\xff\xfe"):
        response = client.patch("/api/v1/me", data=body, content_type="application/json", headers=bearer(token))
        assert response.status_code == 400, body
        assert response.mimetype == PROBLEM
        problem = response.get_json()
        assert problem["status"] == 400
        assert problem["title"]
        assert problem["detail"] == "The request body is not valid JSON."
        assert "not json" not in response.get_data(as_text=True)  # the body is never echoed
    assert locale_of(app, amira) is None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"locale": 5}, "locale"),
        ({"locale": None}, "locale"),
        ({"locale": "fr"}, "locale"),
        ({"locale": "HY"}, "locale"),
        ({}, "locale"),
        ({"locale": "hy", "username": "boss"}, "username"),
        ({"locale": "hy", "roles": ["admin"]}, "roles"),
        (["hy"], "_schema"),
    ],
    ids=["number", "null", "unknown-locale", "wrong-case", "missing", "extra-username", "extra-roles", "list"],
)
def test_patch_me_with_invalid_fields_is_a_422_problem_naming_the_field(
    app: Flask, client: FlaskClient, amira: TestUser, payload: Any, field: str
) -> None:
    _id, token = make_token(app, amira)
    before = account_row(app, amira)
    response = client.patch("/api/v1/me", json=payload, headers=bearer(token))
    assert response.status_code == 422
    assert response.mimetype == PROBLEM
    problem = response.get_json()
    assert problem["status"] == 422
    assert problem["title"] == "Some of what you sent is not valid"
    assert "errors" in problem["detail"]
    assert field in problem["errors"]["json"], problem["errors"]
    assert account_row(app, amira) == before


def test_patch_me_needs_a_token_not_a_browser_session(
    app: Flask, client: FlaskClient, auth: Auth, amira: TestUser
) -> None:
    assert auth.sign_in(amira).status_code == 303
    response = client.patch("/api/v1/me", json={"locale": "ru"})
    assert_unauthorized(response, "Authorization: Bearer")
    assert locale_of(app, amira) is None


# ---------------------------------------------------------------------------------------------------------------
# Tokens


def test_listing_tokens_never_shows_their_values(app: Flask, client: FlaskClient, amira: TestUser) -> None:
    _a, token = make_token(app, amira, name="laptop")
    _b, other = make_token(app, amira, name="server")
    response = client.get("/api/v1/tokens", headers=bearer(token))
    assert response.status_code == 200
    assert [t["name"] for t in response.get_json()] == ["server", "laptop"]  # newest first
    text = response.get_data(as_text=True)
    assert token not in text and other not in text


def test_deleting_a_token_revokes_it_without_any_csrf_token(app: Flask, client: FlaskClient, amira: TestUser) -> None:
    keep_id, keep = make_token(app, amira, name="keep")
    drop_id, drop = make_token(app, amira, name="drop")
    response = client.delete(f"/api/v1/tokens/{drop_id}", headers=bearer(keep))
    assert response.status_code == 204
    assert_unauthorized(client.get("/api/v1/me", headers=bearer(drop)), "revoked")
    assert client.get("/api/v1/me", headers=bearer(keep)).status_code == 200
    # A token may revoke itself; the next call with it fails.
    assert client.delete(f"/api/v1/tokens/{keep_id}", headers=bearer(keep)).status_code == 204
    assert_unauthorized(client.get("/api/v1/me", headers=bearer(keep)), "revoked")


def test_another_persons_token_id_looks_like_no_token_at_all(
    app: Flask, client: FlaskClient, amira: TestUser, create_user: Callable[..., TestUser]
) -> None:
    other = create_user("narine", ["reviewer"])
    other_id, other_token = make_token(app, other)
    _id, token = make_token(app, amira)
    theirs = client.delete(f"/api/v1/tokens/{other_id}", headers=bearer(token))
    nobodys = client.delete("/api/v1/tokens/987654", headers=bearer(token))
    for response in (theirs, nobodys):
        assert response.status_code == 404
        assert response.mimetype == PROBLEM
        assert response.get_json()["status"] == 404
    strip = {"request_id"}
    assert {k: v for k, v in theirs.get_json().items() if k not in strip} == {
        k: v for k, v in nobodys.get_json().items() if k not in strip
    }
    assert client.get("/api/v1/me", headers=bearer(other_token)).status_code == 200  # untouched


def test_the_api_refuses_post_with_405_problem_even_with_a_malformed_json_body(
    app: Flask, client: FlaskClient, amira: TestUser
) -> None:
    # A malformed body to a method the route does not take still gets a machine-readable answer, not a CSRF page.
    _id, token = make_token(app, amira)
    response = client.post("/api/v1/me", data="{not json", content_type="application/json", headers=bearer(token))
    assert response.status_code == 405
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == 405
    assert body["title"] == "This action is not available here"
    assert {m.strip() for m in response.headers["Allow"].split(",")} >= {"GET", "PATCH"}


@pytest.mark.parametrize(
    ("exception", "title"),
    [("Conflict", "Conflict"), ("ImATeapot", "I'm a teapot"), ("PreconditionFailed", "Precondition Failed"),
     ("NotImplemented", "Not Implemented")],
)
def test_a_status_without_a_title_of_our_own_gets_its_standard_name(
    app: Flask, client: FlaskClient, amira: TestUser, exception: str, title: str
) -> None:
    import werkzeug.exceptions

    from intake.core.security import Permission, requires

    @requires(Permission.OWN_ACCOUNT)
    def unusual() -> Any:
        raise getattr(werkzeug.exceptions, exception)()

    app.add_url_rule("/api/v1/unusual", "unusual", unusual)
    _id, token = make_token(app, amira)
    response = client.get("/api/v1/unusual", headers=bearer(token))
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == response.status_code
    assert body["title"] == title


# ---------------------------------------------------------------------------------------------------------------
# Documents and errors


def test_the_openapi_document_needs_a_token_and_describes_me(app: Flask, client: FlaskClient, amira: TestUser) -> None:
    assert_unauthorized(client.get("/api/v1/openapi.json"), "Authorization: Bearer")
    _id, token = make_token(app, amira)
    response = client.get("/api/v1/openapi.json", headers=bearer(token))
    assert response.status_code == 200
    spec = response.get_json()
    assert "/api/v1/me" in spec["paths"]
    assert "get" in spec["paths"]["/api/v1/me"]
    patch = spec["paths"]["/api/v1/me"]["patch"]
    assert "requestBody" in patch and "200" in patch["responses"]
    schemas = spec["components"]["schemas"]
    me_patch = next(schema for name, schema in schemas.items() if name.startswith("MePatch"))
    assert me_patch["required"] == ["locale"]
    assert me_patch["properties"]["locale"]["enum"] == ["en", "hy", "ru", "az"]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_an_unknown_api_route_is_a_404_problem(app: Flask, client: FlaskClient, amira: TestUser) -> None:
    _id, token = make_token(app, amira)
    for headers in ({}, bearer(token)):
        response = client.get("/api/v1/nothing-here", headers=headers)
        assert response.status_code == 404
        assert response.mimetype == PROBLEM
        body = response.get_json()
        assert body["status"] == 404 and body["title"] and body["detail"]
        assert body["request_id"] == response.headers["X-Request-Id"]


def test_an_oversized_body_gets_413_problem_on_the_api(make_app: Callable[..., Flask]) -> None:
    app = make_app(MAX_REQUEST_BYTES=2048)
    client = app.test_client()
    user = create_user_on(app, "amira")
    token_id, token = make_token(app, user)
    response = client.delete(f"/api/v1/tokens/{token_id}", data=b"x" * 4096,
                             content_type="application/json", headers=bearer(token))
    assert response.status_code == 413
    assert response.mimetype == PROBLEM
    assert response.get_json()["status"] == 413
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200  # nothing happened


def test_an_oversized_form_gets_a_readable_413_page(make_app: Callable[..., Flask]) -> None:
    app = make_app(MAX_REQUEST_BYTES=2048)
    client = app.test_client()
    response = client.post("/sign-in", data={"username": "amira", "password": "p" * 4096, "code": "123456"})
    assert response.status_code == 413
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "What you sent is too large" in page
    assert "p" * 100 not in page


# ---------------------------------------------------------------------------------------------------------------
# Creating tokens


def test_creating_a_token_in_the_web_ui_needs_step_up_and_shows_it_once(
    app: Flask, client: FlaskClient, auth: Auth, amira: TestUser
) -> None:
    auth.sign_in(amira)
    first = client.get("/account/tokens/new")
    assert first.status_code == 302
    assert first.headers["Location"].endswith("/step-up?next=/account/tokens/new")
    stepped = auth.step_up(amira)
    assert stepped.status_code == 303  # back to where the person was going
    form = client.get("/account/tokens/new")
    assert form.status_code == 200
    created = post_form(client, "/account/tokens/new", {"name": "field laptop", "expires_in_days": "30"})
    assert created.status_code == 200
    page = created.get_data(as_text=True)
    plaintext = TOKEN_ON_PAGE.search(page).group(1)
    assert plaintext.startswith("intk_")
    assert "not be shown again" in page

    account_page = client.get("/account").get_data(as_text=True)
    assert "field laptop" in account_page
    assert plaintext not in account_page
    me = client.get("/api/v1/me", headers=bearer(plaintext))
    assert me.status_code == 200 and me.get_json()["username"] == "amira"
    with app.app_context():
        stored = db.session.scalar(sa.select(ApiToken).where(ApiToken.account_id == amira.id))
        assert plaintext not in (stored.token_hash, stored.name)
        assert timedelta(days=29) < stored.expires_at - utcnow() <= timedelta(days=30)


def test_the_cli_prints_a_working_token_once(app: Flask, client: FlaskClient, amira: TestUser) -> None:
    result = app.test_cli_runner().invoke(args=["tokens", "create", "--username", "Amira", "--name", "sync"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("intk_")
    assert "shown only this once" in result.stderr
    me = client.get("/api/v1/me", headers=bearer(token))
    assert me.status_code == 200 and me.get_json()["id"] == amira.id


def test_the_cli_refuses_a_token_for_an_unknown_account(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["tokens", "create", "--username", "nobody"])
    assert result.exit_code != 0
    assert "No enrolled, active account" in result.output
    assert "intk_" not in result.output


def test_a_body_that_is_not_json_is_a_415_problem(app: Flask, amira: TestUser) -> None:
    _token, plaintext = make_token(app, amira)
    response = app.test_client().patch("/api/v1/me", data="locale=hy", headers={
        **bearer(plaintext), "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415
    assert response.mimetype == "application/problem+json"
    assert "application/json" in response.get_json()["detail"]


def test_an_unknown_api_address_explains_itself_in_api_terms(app: Flask, amira: TestUser) -> None:
    _token, plaintext = make_token(app, amira)
    response = app.test_client().get("/api/v1/nothing-here", headers=bearer(plaintext))
    assert response.status_code == 404
    assert response.get_json()["detail"] == "There is nothing at this address in the API."
