"""Signing in: one answer for every wrong part, single-use codes, lockout with back-off, rate limits, CSRF, audit
events without secrets, and recovery codes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, timedelta
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from babel.dates import format_datetime
from flask import Flask
from flask.testing import FlaskClient

from intake.accounts import operations as ops
from intake.accounts.models import Account, RecoveryCode, SignInThrottle
from intake.core.audit import AuditAction, AuditEvent
from intake.core.db import db, utcnow
from tests.conftest import PASSWORD, Auth, TestUser, TotpClock, csrf_token, post_form

GENERIC = "The username, password or code is not correct."
LOCKED = "Too many failed attempts for this account. You may try again after"
DEACTIVATED = "This account has been deactivated. Ask an administrator."
CODE_PATTERN = re.compile(r"<code>([a-z0-9]{5}-[a-z0-9]{5})</code>")


def attempt(client: FlaskClient, username: str, password: str, code: str, *, address: str = "127.0.0.1") -> Any:
    return post_form(client, "/sign-in", {"username": username, "password": password, "code": code},
                     environ_base={"REMOTE_ADDR": address})


def summary(response: Any) -> str:
    """The text of the error summary, whitespace normalised."""
    match = re.search(r'<div class="error-summary".*?</div>', response.get_data(as_text=True), re.S)
    assert match, response.get_data(as_text=True)
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(0)).split())


def wrong_code(clock: TotpClock) -> str:
    return clock.code(pyotp.random_base32())


def throttles(app: Flask) -> list[SignInThrottle]:
    with app.app_context():
        rows = db.session.scalars(sa.select(SignInThrottle)).all()
        for row in rows:
            db.session.expunge(row)
        return list(rows)


def events(app: Flask, *actions: AuditAction) -> list[AuditEvent]:
    with app.app_context():
        query = sa.select(AuditEvent).order_by(AuditEvent.seq)
        if actions:
            query = query.where(AuditEvent.action.in_([str(a) for a in actions]))
        rows = db.session.scalars(query).all()
        for row in rows:
            db.session.expunge(row)
        return list(rows)


def totp_counter(app: Flask, user: TestUser) -> int:
    with app.app_context():
        return db.session.get(Account, user.id).totp_last_counter  # type: ignore[union-attr]


def unlock_now(app: Flask) -> None:
    """Let every lockout run out (as if its time had passed)."""
    with app.app_context():
        for throttle in db.session.scalars(sa.select(SignInThrottle)):
            if throttle.locked_until is not None:
                throttle.locked_until = utcnow() - timedelta(seconds=1)
        db.session.commit()


# ---------------------------------------------------------------------------------------------------------------
# No enumeration


def test_every_wrong_part_gets_the_same_answer(app: Flask, create_user: Callable[..., TestUser],
                                               totp_clock: TotpClock) -> None:
    user = create_user("amira")
    with app.app_context():
        ops.invite_account(username="narek", roles=["reviewer"], actor=None)  # invited, not enrolled yet
        db.session.commit()
    cases = {
        "unknown user": ("nobody", PASSWORD, totp_clock.code(user.totp_secret)),
        "not enrolled": ("narek", PASSWORD, totp_clock.code(user.totp_secret)),
        "wrong password": ("amira", "violet kettle harbour seventeen", totp_clock.code(user.totp_secret)),
        "wrong code": ("amira", PASSWORD, wrong_code(totp_clock)),
        "malformed code": ("amira", PASSWORD, "12ab"),
    }
    answers = {}
    for name, (username, password, code) in cases.items():
        response = attempt(app.test_client(), username, password, code)
        html = response.get_data(as_text=True)
        assert password not in html and f'value="{code}"' not in html, name
        answers[name] = (response.status_code, summary(response))
    assert set(answers.values()) == {(422, f"There is a problem {GENERIC}")}, answers


# ---------------------------------------------------------------------------------------------------------------
# Codes are single use


def test_a_code_works_only_once(app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock) -> None:
    user = create_user()
    client = app.test_client()
    code = totp_clock.code(user.totp_secret)
    assert attempt(client, user.username, user.password, code).status_code == 303
    Auth(client, totp_clock).sign_out()

    again = attempt(app.test_client(), user.username, user.password, code)
    assert again.status_code == 422
    assert GENERIC in summary(again)
    # An older code than the last one used is refused as well.
    older = pyotp.TOTP(user.totp_secret).at(totp_clock.now - 30)
    assert attempt(app.test_client(), user.username, user.password, older).status_code == 422


def test_a_code_used_to_sign_in_does_not_work_for_step_up_and_back(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    user = create_user()
    client = app.test_client()
    sign_in_code = totp_clock.code(user.totp_secret)
    assert attempt(client, user.username, user.password, sign_in_code).status_code == 303

    reused = post_form(client, "/step-up", {"code": sign_in_code})
    assert reused.status_code == 422
    assert "That code is not correct, or it was used already." in reused.get_data(as_text=True)

    step_up_code = totp_clock.code(user.totp_secret)
    assert post_form(client, "/step-up", {"code": step_up_code}).status_code == 303
    Auth(client, totp_clock).sign_out()
    assert attempt(app.test_client(), user.username, user.password, step_up_code).status_code == 422
    assert [e.action for e in events(app, AuditAction.STEP_UP, AuditAction.STEP_UP_FAILED)] == [
        "step_up_failed", "step_up"]


# ---------------------------------------------------------------------------------------------------------------
# Lockout


def lock(app: Flask, username: str, clock: TotpClock, failures: int) -> None:
    """Fail `failures` times; reaching the threshold locks at once and says so."""
    threshold = app.config["LOCKOUT_THRESHOLD"]
    for n in range(1, failures + 1):
        response = attempt(app.test_client(), username, "wrong password, wrong", wrong_code(clock))
        assert response.status_code == 422
        assert (LOCKED in summary(response)) == (n >= threshold), n


def lockout_seconds(app: Flask) -> float:
    (throttle,) = throttles(app)
    assert throttle.locked_until is not None
    return (throttle.locked_until - throttle.updated_at).total_seconds()


def test_after_the_threshold_even_correct_credentials_are_refused_and_the_page_says_until_when(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    user = create_user()
    lock(app, user.username, totp_clock, app.config["LOCKOUT_THRESHOLD"])
    counter_before = totp_counter(app, user)

    locked = Auth(app.test_client(), totp_clock).sign_in(user)
    assert locked.status_code == 422
    (throttle,) = throttles(app)
    assert throttle.locked_until is not None
    when = format_datetime(throttle.locked_until, "short", tzinfo=UTC, locale="en")
    assert summary(locked) == " ".join(f"There is a problem {LOCKED} {when} UTC.".split())
    assert totp_counter(app, user) == counter_before  # the refused attempt did not spend the code
    assert events(app, AuditAction.LOGIN) == []
    assert len(events(app, AuditAction.LOGIN_LOCKED)) == 1
    # The same holds whatever the case of the name typed.
    assert LOCKED in summary(attempt(app.test_client(), "AMIRA", user.password, totp_clock.code(user.totp_secret)))


def test_each_further_failure_doubles_the_lockout(
    make_app: Callable[..., Flask], totp_clock: TotpClock
) -> None:
    app = make_app(SIGN_IN_LIMIT_PER_ACCOUNT="50 per minute")
    threshold, base = app.config["LOCKOUT_THRESHOLD"], app.config["LOCKOUT_BASE_SECONDS"]
    lock(app, "amira", totp_clock, threshold)
    assert lockout_seconds(app) == base
    for expected in (2 * base, 4 * base):
        unlock_now(app)
        response = attempt(app.test_client(), "amira", "still wrong, sadly", wrong_code(totp_clock))
        assert LOCKED in summary(response)
        assert lockout_seconds(app) == expected


def test_the_lockout_never_exceeds_the_maximum(make_app: Callable[..., Flask], totp_clock: TotpClock) -> None:
    app = make_app(LOCKOUT_THRESHOLD=1, LOCKOUT_BASE_SECONDS=60, LOCKOUT_MAX_SECONDS=100,
                   SIGN_IN_LIMIT_PER_ACCOUNT="50 per minute")
    lock(app, "amira", totp_clock, 1)
    assert lockout_seconds(app) == 60
    unlock_now(app)
    attempt(app.test_client(), "amira", "still wrong, sadly", wrong_code(totp_clock))
    assert lockout_seconds(app) == 100


def test_an_unknown_name_is_locked_out_exactly_like_a_real_one(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    user = create_user()
    threshold = app.config["LOCKOUT_THRESHOLD"]
    lock(app, "amira", totp_clock, threshold)
    lock(app, "nobody", totp_clock, threshold)
    real = Auth(app.test_client(), totp_clock).sign_in(user)
    unknown = attempt(app.test_client(), "nobody", PASSWORD, totp_clock.code(user.totp_secret))
    assert real.status_code == unknown.status_code == 422
    strip_time = re.compile(r"after .* UTC\.")
    assert strip_time.sub("", summary(real)) == strip_time.sub("", summary(unknown))
    assert LOCKED in summary(unknown)
    # Both names have a throttle, and neither row says which name it is for.
    stored = throttles(app)
    assert len(stored) == 2
    assert all("amira" not in t.key and "nobody" not in t.key for t in stored)


def test_a_successful_sign_in_clears_the_failures(
    make_app: Callable[..., Flask], totp_clock: TotpClock
) -> None:
    app = make_app(SIGN_IN_LIMIT_PER_ACCOUNT="50 per minute")
    user = TestUser(0, "amira", PASSWORD, pyotp.random_base32(), ["interviewer"])
    with app.app_context():
        ops.create_account(username="amira", roles=["interviewer"], password=PASSWORD, totp_secret=user.totp_secret)
        db.session.commit()
    threshold = app.config["LOCKOUT_THRESHOLD"]
    for _ in range(2):
        lock(app, "amira", totp_clock, threshold - 1)
        client = app.test_client()
        assert Auth(client, totp_clock).sign_in(user).status_code == 303
        assert throttles(app) == []
        Auth(client, totp_clock).sign_out()


# ---------------------------------------------------------------------------------------------------------------
# Rate limits


def assert_too_many(response: Any) -> None:
    assert response.status_code == 429
    html = response.get_data(as_text=True)
    assert "Too many attempts" in html and "Try again in" in html
    retry = int(response.headers["Retry-After"])
    assert 1 <= retry <= 60


def test_sign_in_is_rate_limited_per_account_name_from_any_address(
    make_app: Callable[..., Flask], totp_clock: TotpClock
) -> None:
    app = make_app(SIGN_IN_LIMIT_PER_ACCOUNT="3 per minute")
    user = TestUser(0, "amira", PASSWORD, pyotp.random_base32(), ["interviewer"])
    with app.app_context():
        user.id = ops.create_account(username="amira", roles=["interviewer"], password=PASSWORD,
                                     totp_secret=user.totp_secret).id
        db.session.commit()
    for i in range(3):
        assert attempt(app.test_client(), "amira", "wrong password here", "000000",
                       address=f"10.0.0.{i}").status_code == 422
    limited = attempt(app.test_client(), "amira", PASSWORD, totp_clock.code(user.totp_secret), address="10.9.9.9")
    assert_too_many(limited)
    assert events(app, AuditAction.LOGIN) == []
    # An unknown name is limited the same way, and other names are unaffected.
    for i in range(3):
        attempt(app.test_client(), "nobody", "wrong password here", "000000", address=f"10.1.0.{i}")
    assert_too_many(attempt(app.test_client(), "nobody", "wrong password here", "000000", address="10.1.0.9"))
    assert attempt(app.test_client(), "narek", "wrong password here", "000000").status_code == 422


def test_sign_in_is_rate_limited_per_address(make_app: Callable[..., Flask]) -> None:
    app = make_app(SIGN_IN_LIMIT_PER_ADDRESS="3 per minute")
    for name in ("amira", "narek", "lusine"):
        assert attempt(app.test_client(), name, "wrong password here", "000000", address="10.0.0.7").status_code \
            == 422
    assert_too_many(attempt(app.test_client(), "sona", "wrong password here", "000000", address="10.0.0.7"))
    assert attempt(app.test_client(), "sona", "wrong password here", "000000", address="10.0.0.8").status_code == 422
    # Looking at the page is not limited.
    assert app.test_client().get("/sign-in", environ_base={"REMOTE_ADDR": "10.0.0.7"}).status_code == 200


# ---------------------------------------------------------------------------------------------------------------
# Deactivated accounts


def test_a_deactivated_account_is_told_so_only_with_correct_credentials(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    admin = create_user("lusine", roles=("admin",))
    user = create_user("amira")
    with app.app_context():
        target, actor = db.session.get(Account, user.id), db.session.get(Account, admin.id)
        assert target is not None and actor is not None
        ops.deactivate(target, actor=actor)
        db.session.commit()
    wrong = Auth(app.test_client(), totp_clock).sign_in(user, password="violet kettle harbour seventeen")
    assert wrong.status_code == 422 and GENERIC in summary(wrong)

    client = app.test_client()
    right = Auth(client, totp_clock).sign_in(user)
    assert right.status_code == 422
    assert summary(right) == f"There is a problem {DEACTIVATED}"
    assert client.get("/").status_code == 302  # not signed in
    (event,) = events(app, AuditAction.LOGIN_FAILED)[-1:]
    assert event.details == {"step": "sign_in", "deactivated": True}
    assert events(app, AuditAction.LOGIN) == []


# ---------------------------------------------------------------------------------------------------------------
# CSRF


@pytest.mark.parametrize("token", [None, "forged-token"], ids=["missing", "forged"])
def test_a_sign_in_without_a_valid_csrf_token_is_refused_and_changes_nothing(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock, token: str | None
) -> None:
    user = create_user()
    client = app.test_client()
    csrf_token(client)  # the session has a real token; the form does not carry it
    data = {"username": user.username, "password": user.password, "code": totp_clock.code(user.totp_secret)}
    if token:
        data["csrf_token"] = token
    counter_before = totp_counter(app, user)
    events_before = len(events(app))

    response = client.post("/sign-in", data=data)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "The request could not be understood" in html
    assert "This form has expired or was not sent from this site, so nothing was saved." in html
    assert user.password not in html
    assert len(events(app)) == events_before
    assert throttles(app) == []
    assert totp_counter(app, user) == counter_before
    assert client.get("/").status_code == 302


def test_a_csrf_token_from_another_session_is_refused(app: Flask, create_user: Callable[..., TestUser],
                                                      totp_clock: TotpClock) -> None:
    user = create_user()
    attacker_token = csrf_token(app.test_client())
    victim = app.test_client()
    csrf_token(victim)
    response = victim.post("/sign-in", data={"csrf_token": attacker_token, "username": user.username,
                                             "password": user.password, "code": totp_clock.code(user.totp_secret)})
    assert response.status_code == 400
    assert events(app, AuditAction.LOGIN) == []


# ---------------------------------------------------------------------------------------------------------------
# Audit


def test_sign_ins_are_audited_without_the_password_or_code(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    user = create_user()
    wrong_password = "violet kettle harbour seventeen"
    bad_code = wrong_code(totp_clock)
    good_code = totp_clock.code(user.totp_secret)
    attempt(app.test_client(), user.username, wrong_password, good_code)
    attempt(app.test_client(), user.username, user.password, bad_code)
    attempt(app.test_client(), "nobody", user.password, bad_code)
    good_code = totp_clock.code(user.totp_secret)
    assert attempt(app.test_client(), user.username, user.password, good_code).status_code == 303

    failed = events(app, AuditAction.LOGIN_FAILED)
    assert [e.details["failures"] for e in failed] == [1, 2, 1]
    assert failed[0].target_ids == [user.id] and failed[2].target_ids == []  # unknown names are not recorded
    (login,) = events(app, AuditAction.LOGIN)
    assert login.actor_id == user.id and login.target_ids == [user.id]
    assert login.details == {"second_factor": "totp"}
    for event in [*failed, login]:
        recorded = json.dumps([event.details, event.reason, event.target_ids, event.actor_roles])
        for secret in (user.password, wrong_password, bad_code, good_code, "nobody", user.totp_secret):
            assert secret not in recorded, (event.action, secret)


# ---------------------------------------------------------------------------------------------------------------
# Recovery codes


def recovery_codes_left(client: FlaskClient) -> int:
    match = re.search(r"Unused recovery codes: (\d+)\.", client.get("/account").get_data(as_text=True))
    assert match
    return int(match.group(1))


def test_recovery_codes_need_step_up_and_each_works_once(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    user = create_user()
    client = app.test_client()
    auth = Auth(client, totp_clock)
    signed_in = auth.sign_in(user)
    assert signed_in.status_code == 303, signed_in.get_data(as_text=True)
    assert recovery_codes_left(client) == 0

    not_yet = post_form(client, "/account/recovery-codes", {})
    assert not_yet.status_code == 302
    assert "/step-up" in not_yet.headers["Location"]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(RecoveryCode.id))) == 0

    assert auth.step_up(user).status_code == 303
    created = post_form(client, "/account/recovery-codes", {})
    assert created.status_code == 200
    codes = CODE_PATTERN.findall(created.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    assert recovery_codes_left(client) == 10
    with app.app_context():
        stored = " ".join(db.session.scalars(sa.select(RecoveryCode.code_hash)))
    assert all(code not in stored and code.replace("-", "") not in stored for code in codes)
    auth.sign_out()

    other = app.test_client()
    used = attempt(other, user.username, user.password, codes[0].upper())
    assert used.status_code == 303
    home = other.get("/").get_data(as_text=True)
    assert "You signed in with a recovery code; it cannot be used again. 9 remain." in home
    assert recovery_codes_left(other) == 9
    assert [e.action for e in events(app, AuditAction.RECOVERY_CODE_USED)] == ["recovery_code_used"]
    Auth(other, totp_clock).sign_out()

    reused = attempt(app.test_client(), user.username, user.password, codes[0])
    assert reused.status_code == 422 and GENERIC in summary(reused)
    third = app.test_client()
    assert attempt(third, user.username, user.password, codes[1].replace("-", "")).status_code == 303
    assert recovery_codes_left(third) == 8


def test_new_recovery_codes_replace_the_old_ones(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    user = create_user()
    client = app.test_client()
    auth = Auth(client, totp_clock)
    auth.sign_in(user)
    auth.step_up(user)
    first = CODE_PATTERN.findall(post_form(client, "/account/recovery-codes", {}).get_data(as_text=True))
    second = CODE_PATTERN.findall(post_form(client, "/account/recovery-codes", {}).get_data(as_text=True))
    assert len(first) == len(second) == 10 and not set(first) & set(second)
    auth.sign_out()
    assert attempt(app.test_client(), user.username, user.password, first[0]).status_code == 422
    assert attempt(app.test_client(), user.username, user.password, second[0]).status_code == 303


def test_a_mistyped_password_does_not_use_up_the_code_that_came_with_it(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    user = create_user()
    with app.app_context():
        codes = ops.create_recovery_codes(db.session.get(Account, user.id))
        db.session.commit()
    wrong = attempt(app.test_client(), user.username, "not the password", codes[0])
    assert wrong.status_code == 422
    assert attempt(app.test_client(), user.username, user.password, codes[0]).status_code == 303

    code = totp_clock.code(user.totp_secret)
    assert attempt(app.test_client(), user.username, "not the password", code).status_code == 422
    assert attempt(app.test_client(), user.username, user.password, code).status_code == 303
