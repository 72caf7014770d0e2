"""Two-factor secrets are sealed with a keyring key and bound to their account: the database alone gives nothing."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask

from intake.accounts.models import Account
from intake.core.crypto import current_keyring
from intake.core.crypto.account_secrets import SecretUnreadable, open_sealed
from intake.core.db import db
from tests.conftest import Auth, TestUser, TotpClock


def test_the_stored_totp_secret_is_ciphertext(app: Flask, create_user: Callable[..., TestUser]) -> None:
    user = create_user()
    with app.app_context():
        stored = db.session.scalar(sa.select(Account.totp_secret).where(Account.id == user.id))
    raw_secret = base64.b32decode(user.totp_secret)
    assert user.totp_secret.encode() not in stored
    assert raw_secret not in stored
    assert stored[0] == 1 and len(stored) > len(user.totp_secret)


def test_a_sealed_secret_copied_to_another_account_does_not_open(
    app: Flask, create_user: Callable[..., TestUser]
) -> None:
    amira = create_user("amira")
    aram = create_user("aram")
    with app.app_context():
        sealed = db.session.get(Account, amira.id).totp_secret
        keyring = current_keyring()
        assert open_sealed(keyring, sealed, table="accounts", row_id=amira.id, field="totp_secret").decode() == (
            amira.totp_secret
        )
        with pytest.raises(SecretUnreadable):
            open_sealed(keyring, sealed, table="accounts", row_id=aram.id, field="totp_secret")
        with pytest.raises(SecretUnreadable):
            open_sealed(keyring, sealed, table="accounts", row_id=amira.id, field="other_field")
        tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
        with pytest.raises(SecretUnreadable):
            open_sealed(keyring, tampered, table="accounts", row_id=amira.id, field="totp_secret")


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
