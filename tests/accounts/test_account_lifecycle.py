"""What ending an account's access takes with it, and how failed password checks are remembered."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pyotp
import pytest
import sqlalchemy as sa
from flask import Flask

from intake.accounts import operations as ops
from intake.accounts.models import Account, SignInThrottle
from intake.core.db import db, utcnow
from tests.conftest import PASSWORD, Auth, TestUser, TotpClock, post_form


def _token_for(app: Flask, user: TestUser) -> str:
    with app.app_context():
        _, plaintext = ops.create_api_token(db.session.get(Account, user.id), name="laptop")
        db.session.commit()
        return plaintext


def _signed_up(app: Flask) -> TestUser:
    """An enrolled account on `app` (for tests that need an app with their own settings)."""
    secret = pyotp.random_base32()
    with app.app_context():
        account = ops.create_account(username="amira", roles=["interviewer"], password=PASSWORD, totp_secret=secret)
        db.session.commit()
        return TestUser(account.id, "amira", PASSWORD, secret, ["interviewer"])


def _me(app: Flask, token: str) -> int:
    return app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code


@pytest.mark.parametrize("action", ["deactivate", "reset_two_factor"])
def test_ending_access_revokes_api_tokens_for_good(
    app: Flask, create_user: Callable[..., TestUser], action: str
) -> None:
    admin = create_user("lusine", roles=("admin",))
    user = create_user("amira")
    token = _token_for(app, user)
    assert _me(app, token) == 200
    with app.app_context():
        target, actor = db.session.get(Account, user.id), db.session.get(Account, admin.id)
        getattr(ops, action)(target, actor=actor)
        db.session.commit()
        if action == "deactivate":
            ops.reactivate(target, actor=actor)
            db.session.commit()
    assert _me(app, token) == 401


def test_wrong_current_passwords_count_towards_the_lockout(
    make_app: Callable[..., Flask], totp_clock: TotpClock
) -> None:
    app = make_app(LOCKOUT_THRESHOLD=2)
    user = _signed_up(app)
    client = app.test_client()
    Auth(client, totp_clock).sign_in(user)
    new = {"password": "another long pass phrase here", "confirm": "another long pass phrase here"}
    for _ in range(2):
        wrong = post_form(client, "/account/password", {"current_password": "guess number one", **new})
        assert "That password is not correct." in wrong.get_data(as_text=True)
    locked = post_form(client, "/account/password", {"current_password": user.password, **new})
    assert "Too many failed attempts for this account." in locked.get_data(as_text=True)
    signed_out = Auth(app.test_client(), totp_clock).sign_in(user)
    assert "You may try again after" in signed_out.get_data(as_text=True)


def test_failures_older_than_a_day_are_forgotten(app: Flask, create_user: Callable[..., TestUser]) -> None:
    client = app.test_client()
    auth = Auth(client, None)  # type: ignore[arg-type]
    user = create_user()
    for _ in range(3):
        auth.sign_in(user, code="000000", password="wrong")
    with app.app_context():
        throttle = db.session.scalar(sa.select(SignInThrottle))
        assert throttle.failures == 3
        throttle.updated_at = utcnow() - ops.FAILURES_REMEMBERED - timedelta(minutes=1)
        db.session.commit()
    auth.sign_in(user, code="000000", password="wrong")
    with app.app_context():
        assert db.session.scalar(sa.select(SignInThrottle.failures)) == 1


def test_database_errors_never_carry_row_values(app: Flask) -> None:
    with app.app_context():
        db.session.add(Account(username="amira", password_hash="hash-that-must-stay-private"))
        db.session.add(Account(username="amira", password_hash="hash-that-must-stay-private"))
        with pytest.raises(sa.exc.IntegrityError) as caught:
            db.session.flush()
        db.session.rollback()
    assert "hash-that-must-stay-private" not in str(caught.value)


def test_a_password_change_revokes_api_tokens(app: Flask, create_user: Callable[..., TestUser]) -> None:
    user = create_user()
    token = _token_for(app, user)
    with app.app_context():
        ops.change_password(db.session.get(Account, user.id), current_password=user.password,
                            new_password="a brand new passphrase for amira")
        db.session.commit()
    assert _me(app, token) == 401


def test_wrong_step_up_codes_count_towards_the_lockout(
    make_app: Callable[..., Flask], totp_clock: TotpClock
) -> None:
    app = make_app(LOCKOUT_THRESHOLD=2)
    user = _signed_up(app)
    client = app.test_client()
    Auth(client, totp_clock).sign_in(user)
    for _ in range(2):
        assert post_form(client, "/step-up", {"code": "000000"}).status_code == 422
    # Locked now: even the right code is refused, and so is signing in elsewhere.
    assert post_form(client, "/step-up", {"code": totp_clock.code(user.totp_secret)}).status_code == 422
    assert "You may try again after" in Auth(app.test_client(), totp_clock).sign_in(user).get_data(as_text=True)


def test_the_language_chosen_before_signing_in_becomes_the_accounts(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    user = create_user()
    client = app.test_client()
    post_form(client, "/language", {"lang": "ru", "next": "/sign-in"}, token_from="/sign-in")
    Auth(client, totp_clock).sign_in(user)
    with app.app_context():
        assert db.session.get(Account, user.id).locale == "ru"


def test_the_slow_password_hash_runs_outside_the_requests_transaction(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from intake.accounts import passwords

    user = create_user()
    seen: list[bool] = []
    real = passwords.verify_password

    def watching(password_hash: str | None, password: str) -> bool:
        seen.append(db.session().in_transaction())
        return real(password_hash, password)

    monkeypatch.setattr(passwords, "verify_password", watching)
    assert Auth(app.test_client(), totp_clock).sign_in(user).status_code == 303
    assert seen == [False]


def test_a_username_taken_by_a_concurrent_request_is_refused_not_an_error(
    app: Flask, create_user: Callable[..., TestUser], monkeypatch: pytest.MonkeyPatch
) -> None:
    create_user("amira")
    # As if another request inserted the name between this request's check and its insert:
    monkeypatch.setattr(ops, "_validate_new_username", ops.normalise_username)
    with app.app_context():
        with pytest.raises(ops.AccountError, match="That username is taken."):
            ops.invite_account(username="amira", roles=["interviewer"], actor=None)
        db.session.rollback()
