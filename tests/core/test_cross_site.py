"""Cross-site request refusal on top of the CSRF token.

Pages are sent with `Referrer-Policy: no-referrer`, so browsers send no Referer; Flask-WTF's HTTPS Referer check
would refuse every form. The pipeline checks `Sec-Fetch-Site` and `Origin` instead, which browsers always send.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from intake.accounts import operations as ops
from intake.accounts.models import Account
from intake.core.audit import AuditEvent
from intake.core.db import db
from tests.conftest import PASSWORD, Auth, TestUser, TotpClock, csrf_token

HTTPS = {"base_url": "https://localhost"}


def https_sign_in(client: FlaskClient, user: TestUser, clock: TotpClock, headers: dict[str, str]) -> Any:
    page = client.get("/sign-in", **HTTPS)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.get_data(as_text=True))
    assert token
    return client.post("/sign-in", data={"csrf_token": token.group(1), "username": user.username,
                                         "password": PASSWORD, "code": clock.code(user.totp_secret)},
                       headers=headers, **HTTPS)


def events(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)))


def is_active(app: Flask, account_id: int) -> bool:
    with app.app_context():
        return db.session.get(Account, account_id).is_active


@pytest.fixture
def https_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(SECURE_COOKIES="true")


@pytest.fixture
def https_user(https_app: Flask) -> TestUser:
    import pyotp

    secret = pyotp.random_base32()
    with https_app.app_context():
        account = ops.create_account(username="amira", roles=["interviewer"], password=PASSWORD,
                                     totp_secret=secret)
        db.session.commit()
        return TestUser(account.id, account.username, PASSWORD, secret, ["interviewer"])


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no Referer, as every browser does under no-referrer
        {"Sec-Fetch-Site": "same-origin", "Origin": "null"},  # what Chromium sends for the sign-in form
        {"Sec-Fetch-Site": "same-origin", "Origin": "https://localhost"},
        {"Sec-Fetch-Site": "none"},
    ],
    ids=["nothing", "chromium-no-referrer", "same-origin", "typed"],
)
def test_a_form_over_https_works_without_a_referer(
    https_app: Flask, https_user: TestUser, totp_clock: TotpClock, headers: dict[str, str]
) -> None:
    client = https_app.test_client()
    signed_in = https_sign_in(client, https_user, totp_clock, headers)
    assert signed_in.status_code == 303, signed_in.get_data(as_text=True)
    assert client.get("/", **HTTPS).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another site's page all the same
        {"Sec-Fetch-Site": "cross-site", "Origin": "null"},
        {"Origin": "https://evil.example"},
        {"Origin": "http://localhost"},  # same host, other scheme
        {"Origin": "https://localhost:8443"},  # same host, other port
        {"Sec-Fetch-Site": "same-origin", "Origin": "https://evil.example"},
    ],
    ids=["cross-site", "same-site", "cross-site-null-origin", "foreign-origin", "other-scheme", "other-port",
         "foreign-origin-claiming-same-site"],
)
def test_a_form_from_another_site_is_refused_and_signs_nobody_in(
    https_app: Flask, https_user: TestUser, totp_clock: TotpClock, headers: dict[str, str]
) -> None:
    client = https_app.test_client()
    refused = https_sign_in(client, https_user, totp_clock, headers)
    assert refused.status_code == 400
    assert refused.mimetype == "text/html"
    assert "This form has expired or was not sent from this site" in refused.get_data(as_text=True)
    assert client.get("/", **HTTPS).status_code == 302  # not signed in
    assert events(https_app, "login") == []


@pytest.mark.parametrize(
    "headers",
    [{"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}, {"Origin": "https://localhost"}],
    ids=["cross-site", "foreign-origin", "other-scheme"],
)
def test_a_signed_in_persons_action_from_another_site_changes_nothing(
    app: Flask, client: FlaskClient, auth: Auth, create_user: Callable[..., TestUser], headers: dict[str, str]
) -> None:
    admin = create_user("lusine", ["admin"])
    amira = create_user("amira", ["interviewer"])
    assert auth.sign_in(admin).status_code == 303
    token = csrf_token(client, "/admin/accounts")
    response = client.post(f"/admin/accounts/{amira.id}/deactivate", data={"csrf_token": token}, headers=headers)
    assert response.status_code == 400
    assert "This form has expired" in response.get_data(as_text=True)
    assert is_active(app, amira.id)
    assert events(app, "account_deactivated") == []
    # The same form from this site works.
    same = client.post(f"/admin/accounts/{amira.id}/deactivate", data={"csrf_token": token},
                       headers={"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"})
    assert same.status_code == 303
    assert not is_active(app, amira.id)


def test_following_a_link_from_another_site_still_opens_the_page(client: FlaskClient) -> None:
    assert client.get("/sign-in", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200


def test_the_api_takes_bearer_tokens_and_is_not_subject_to_the_browser_checks(
    app: Flask, client: FlaskClient, create_user: Callable[..., TestUser]
) -> None:
    amira = create_user("amira", ["interviewer"])
    with app.app_context():
        _token, plaintext = ops.create_api_token(db.session.get(Account, amira.id), name="script")
        db.session.commit()
    response = client.patch("/api/v1/me", json={"locale": "ru"},
                            headers={"Authorization": f"Bearer {plaintext}", "Origin": "https://elsewhere.example",
                                     "Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 200
