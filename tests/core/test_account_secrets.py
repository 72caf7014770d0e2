"""Two-factor secrets are sealed under each account's data key and bound to their account: the database alone gives
nothing, and seeds sealed in the earlier format move onto the envelope with `intake db upgrade`."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner

from intake.accounts.models import Account
from intake.core.crypto import account_secrets, current_keyring
from intake.core.crypto.datakeys import open_data_key
from intake.core.crypto.envelope import Binding, Unreadable, field_data_key_id, open_field
from intake.core.crypto.models import DataKey
from intake.core.db import db
from tests.conftest import Auth, TestUser, TotpClock


def test_the_stored_totp_secret_is_ciphertext_under_the_accounts_data_key(
    app: Flask, create_user: Callable[..., TestUser]
) -> None:
    user = create_user()
    with app.app_context():
        stored, key_id = db.session.execute(
            sa.select(Account.totp_secret, Account.data_key_id).where(Account.id == user.id)
        ).one()
        data_key = db.session.get(DataKey, key_id)
        assert data_key.owner == "account" and data_key.wrapped is not None
    raw_secret = base64.b32decode(user.totp_secret)
    assert user.totp_secret.encode() not in stored
    assert raw_secret not in stored
    assert stored[:1] == b"F" and field_data_key_id(stored) == key_id


def test_a_sealed_secret_copied_to_another_account_does_not_open(
    app: Flask, create_user: Callable[..., TestUser]
) -> None:
    amira = create_user("amira")
    aram = create_user("aram")
    with app.app_context():
        account = db.session.get(Account, amira.id)
        key = open_data_key(account.data_key)
        sealed = account.totp_secret
        assert open_field(key, Binding("accounts", "totp_secret", amira.id), sealed).decode() == amira.totp_secret
        with pytest.raises(Unreadable):
            open_field(key, Binding("accounts", "totp_secret", aram.id), sealed)
        with pytest.raises(Unreadable):
            open_field(key, Binding("accounts", "other_field", amira.id), sealed)
        other_key = open_data_key(db.session.get(Account, aram.id).data_key)
        with pytest.raises(Unreadable):
            open_field(other_key, Binding("accounts", "totp_secret", amira.id), sealed)
        tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
        with pytest.raises(Unreadable):
            open_field(key, Binding("accounts", "totp_secret", amira.id), tampered)


def test_a_secret_moved_to_another_account_refuses_sign_in_instead_of_impersonating(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    amira = create_user("amira")
    aram = create_user("aram")
    with app.app_context():
        db.session.get(Account, aram.id).totp_secret = db.session.get(Account, amira.id).totp_secret
        db.session.commit()
    response = Auth(app.test_client(), totp_clock).sign_in(aram, code=totp_clock.code(amira.totp_secret))
    assert response.status_code == 422
    assert "The username, password or code is not correct." in response.get_data(as_text=True)


def test_seeds_sealed_by_an_earlier_release_still_sign_in_and_move_onto_the_envelope_at_upgrade(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    user = create_user("amira")
    with app.app_context():
        account = db.session.get(Account, user.id)
        account.totp_secret = account_secrets.seal(current_keyring(), user.totp_secret.encode(), table="accounts",
                                                   row_id=user.id, field="totp_secret")
        account.data_key_id = None
        db.session.commit()
    # Before the upgrade: the earlier format is still read, so nobody is locked out.
    assert Auth(app.test_client(), totp_clock).sign_in(user).status_code == 303

    result = FlaskCliRunner(app).invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "Moved 1 two-factor secret(s)" in result.output
    with app.app_context():
        account = db.session.get(Account, user.id)
        assert not account_secrets.is_legacy(account.totp_secret)
        assert account.data_key is not None and account.data_key.owner == "account"
    assert Auth(app.test_client(), totp_clock).sign_in(user).status_code == 303
    # Nothing left to move the second time.
    again = FlaskCliRunner(app).invoke(args=["db", "upgrade"])
    assert again.exit_code == 0 and "Moved" not in again.output
