"""Choosing and changing passwords: weak ones are refused with a readable message next to the field, nothing weak
is ever stored, and what is stored is an Argon2id hash, never the password."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from babel.support import Translations
from flask import Flask
from flask.testing import FlaskClient

import intake
from intake.accounts import operations as ops
from intake.accounts import passwords
from intake.accounts.models import Account, Invitation
from intake.core.db import Base, db
from tests.conftest import Auth, TestUser, TotpClock, open_link, post_form

STRONG = "saffron lantern orchard thimble"
TRANSLATIONS = Path(intake.__file__).parent / "translations"
COMMON = "This password is common or too easy to guess. Try a phrase of four or more unrelated words."
TOO_SHORT = "Use at least %(n)d characters."
NOT_THE_SAME = "The two passwords are not the same."


def open_invitation(app: Flask, username: str) -> FlaskClient:
    with app.app_context():
        link = ops.invite_account(username=username, roles=["interviewer"], actor=None)
        db.session.commit()
        path = link.url.removeprefix("http://localhost")
    client = app.test_client()
    assert open_link(client, path).status_code == 303
    return client


def stored_account(app: Flask, username: str) -> Account:
    with app.app_context():
        account = db.session.scalar(sa.select(Account).where(Account.username == username))
        assert account is not None
        db.session.expunge(account)
        return account


def everything_stored(app: Flask) -> str:
    """Every row of every table, as text, to search for things that must never be stored."""
    with app.app_context():
        parts: list[str] = []
        for table in Base.metadata.sorted_tables:
            parts.extend(repr(tuple(row)) for row in db.session.execute(sa.select(table)))
        return "\n".join(parts)


def error_summary(html: str) -> str:
    match = re.search(r'<div class="error-summary".*?</div>', html, re.S)
    assert match, "no error summary on the page"
    return match.group(0)


def assert_field_error(html: str, field_id: str, message: str) -> None:
    """`message` is listed in the error summary as a link to the field, and shown next to the field itself."""
    summary = error_summary(html)
    links = re.findall(rf'<a href="#{field_id}">[^<]*: ([^<]*)</a>', summary)
    assert any(message in link for link in links), summary
    assert f'id="{field_id}-error"' in html
    assert re.search(rf'<input[^>]*aria-invalid="true"[^>]*id="{field_id}"|<input[^>]*id="{field_id}"[^>]*'
                     r'aria-invalid="true"', html), "the field is not marked invalid"


# ---------------------------------------------------------------------------------------------------------------
# Enrolment


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("password1234", COMMON),
        ("qwertyuiopas", COMMON),
        ("elevenchars", TOO_SHORT % {"n": 12}),
        ("karapetyan2024", COMMON),  # strong on its own, but built from the username
    ],
    ids=["common", "keyboard-walk", "eleven-characters", "username-based"],
)
def test_enrolment_refuses_a_weak_password_and_stores_nothing(app: Flask, password: str, message: str) -> None:
    client = open_invitation(app, "karapetyan")
    response = post_form(client, "/enrol/password", {"password": password, "confirm": password})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert_field_error(html, "password", message)
    assert password not in html  # the refused password is not sent back

    account = stored_account(app, "karapetyan")
    assert account.password_hash is None and account.totp_secret is None
    # The person can go on with a better one from the same page.
    assert client.get("/enrol/authenticator").headers["Location"].endswith("/enrol/password")
    accepted = post_form(client, "/enrol/password", {"password": STRONG, "confirm": STRONG})
    assert accepted.status_code == 303


def test_a_username_based_password_is_refused_at_setup_too(app: Flask) -> None:
    with app.app_context():
        path = ops.issue_setup_link().url.removeprefix("http://localhost")
        db.session.commit()
    client = app.test_client()
    open_link(client, path)
    response = post_form(client, "/enrol/password",
                         {"username": "karapetyan", "password": "karapetyan2024", "confirm": "karapetyan2024"})
    assert response.status_code == 422
    assert_field_error(response.get_data(as_text=True), "password", COMMON)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Account.id))) == 0


def test_the_refusal_is_translated_into_the_chosen_language(app: Flask) -> None:
    client = open_invitation(app, "karapetyan")
    post_form(client, "/language", {"lang": "ru", "next": "/enrol/password"}, token_from="/enrol/password")
    response = post_form(client, "/enrol/password", {"password": "password1234", "confirm": "password1234"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert '<html lang="ru"' in html
    expected = Translations.load(str(TRANSLATIONS), ["ru"]).gettext(COMMON)
    assert_field_error(html, "password", expected)
    # The message is in the catalogue translators work from, so it is never left untranslatable.
    assert COMMON.split(". ")[0] in (TRANSLATIONS / "messages.pot").read_text().replace('"\n"', "")


def test_mismatched_confirmation_is_refused(app: Flask) -> None:
    client = open_invitation(app, "amira")
    response = post_form(client, "/enrol/password", {"password": STRONG, "confirm": STRONG + "x"})
    assert response.status_code == 422
    assert_field_error(response.get_data(as_text=True), "confirm", NOT_THE_SAME)
    assert stored_account(app, "amira").password_hash is None


def test_a_strong_passphrase_is_accepted_and_stored_as_argon2id(app: Flask, totp_clock: TotpClock) -> None:
    client = open_invitation(app, "amira")
    response = post_form(client, "/enrol/password", {"password": STRONG, "confirm": STRONG})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/enrol/authenticator")
    account = stored_account(app, "amira")
    assert account.password_hash is not None
    assert account.password_hash.startswith("$argon2id$v=19$m=1024,t=1,p=1$")  # the configured parameters
    assert STRONG not in everything_stored(app)
    with app.app_context():
        assert passwords.verify_password(account.password_hash, STRONG)
        assert not passwords.verify_password(account.password_hash, STRONG.upper())


def test_equal_passwords_get_different_hashes(create_user: Callable[..., TestUser], app: Flask) -> None:
    create_user("amira", password=STRONG)
    create_user("narek", password=STRONG)
    first, second = stored_account(app, "amira"), stored_account(app, "narek")
    assert first.password_hash != second.password_hash  # salted
    assert first.password_hash and first.password_hash.startswith("$argon2id$")
    stored = everything_stored(app)
    assert STRONG not in stored


# ---------------------------------------------------------------------------------------------------------------
# Changing the password


def change(client: FlaskClient, current: str, new: str, confirm: str | None = None) -> Any:
    return post_form(client, "/account/password",
                     {"current_password": current, "password": new, "confirm": new if confirm is None else confirm})


@pytest.fixture
def signed_in(create_user: Callable[..., TestUser], auth: Auth) -> TestUser:
    user = create_user("karapetyan")
    assert auth.sign_in(user).status_code == 303
    return user


@pytest.mark.parametrize(
    ("password", "message"),
    [("password1234", COMMON), ("elevenchars", TOO_SHORT % {"n": 12}), ("karapetyan1985", COMMON)],
    ids=["common", "eleven-characters", "username-based"],
)
def test_changing_to_a_weak_password_is_refused_next_to_the_field(
    app: Flask, client: FlaskClient, signed_in: TestUser, password: str, message: str
) -> None:
    before = stored_account(app, signed_in.username).password_hash
    response = change(client, signed_in.password, password)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert_field_error(html, "password", message)
    assert password not in html and signed_in.password not in html
    assert stored_account(app, signed_in.username).password_hash == before
    assert client.get("/").status_code == 200  # still signed in: nothing changed


def test_changing_the_password_needs_the_current_one(app: Flask, client: FlaskClient, signed_in: TestUser) -> None:
    before = stored_account(app, signed_in.username).password_hash
    response = change(client, "not my password at all", STRONG)
    assert response.status_code == 422
    assert_field_error(response.get_data(as_text=True), "current_password", "That password is not correct.")
    assert stored_account(app, signed_in.username).password_hash == before


def test_changing_the_password_with_a_mismatched_confirmation_is_refused(
    app: Flask, client: FlaskClient, signed_in: TestUser
) -> None:
    before = stored_account(app, signed_in.username).password_hash
    response = change(client, signed_in.password, STRONG, STRONG + "!")
    assert response.status_code == 422
    assert_field_error(response.get_data(as_text=True), "confirm", NOT_THE_SAME)
    assert stored_account(app, signed_in.username).password_hash == before


def test_a_changed_password_is_stored_as_a_new_argon2id_hash(
    app: Flask, client: FlaskClient, signed_in: TestUser
) -> None:
    before = stored_account(app, signed_in.username).password_hash
    response = change(client, signed_in.password, STRONG)
    assert response.status_code == 303
    after = stored_account(app, signed_in.username)
    assert after.password_hash != before
    assert after.password_hash is not None and after.password_hash.startswith("$argon2id$")
    assert after.password_changed_at is not None
    stored = everything_stored(app)
    assert STRONG not in stored and signed_in.password not in stored


def test_no_password_reaches_the_invitation_or_audit_records(app: Flask, totp_clock: TotpClock) -> None:
    client = open_invitation(app, "amira")
    post_form(client, "/enrol/password", {"password": "password1234", "confirm": "password1234"})
    post_form(client, "/enrol/password", {"password": STRONG, "confirm": STRONG})
    stored = everything_stored(app)
    assert "password1234" not in stored and STRONG not in stored
    with app.app_context():
        invitation = db.session.scalar(sa.select(Invitation))
        assert invitation is not None and invitation.completed_at is None
