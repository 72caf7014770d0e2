"""Sign-ins racing each other: one code signs in once, every failure counts, and nobody gets an error page."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pyotp
import sqlalchemy as sa
from flask import Flask

from intake.accounts import operations as ops
from intake.accounts.models import SignInThrottle
from intake.core.db import db
from tests.conftest import PASSWORD, TotpClock, csrf_token

RACERS = 4


def _race(app: Flask, form: dict[str, str]) -> list[int]:
    """POST the same sign-in form from several browsers at the same moment; return the statuses."""
    clients = [app.test_client() for _ in range(RACERS)]
    tokens = [csrf_token(c) for c in clients]
    start = threading.Barrier(RACERS)
    statuses: list[int] = [0] * RACERS

    def run(i: int) -> None:
        start.wait()
        statuses[i] = clients[i].post("/sign-in", data={"csrf_token": tokens[i], **form}).status_code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return statuses


def test_one_code_signs_in_once_however_many_try_it_at_once(
    make_app: Callable[..., Flask], totp_clock: TotpClock
) -> None:
    app = make_app(SIGN_IN_LIMIT_PER_ACCOUNT="100 per minute")
    secret = pyotp.random_base32()
    with app.app_context():
        ops.create_account(username="amira", roles=["interviewer"], password=PASSWORD, totp_secret=secret)
        db.session.commit()
    code = totp_clock.code(secret)
    statuses = _race(app, {"username": "amira", "password": PASSWORD, "code": code})
    assert sorted(statuses) == [303] + [422] * (RACERS - 1), statuses


def test_failures_racing_each_other_all_count(make_app: Callable[..., Flask]) -> None:
    app = make_app(SIGN_IN_LIMIT_PER_ACCOUNT="100 per minute", LOCKOUT_THRESHOLD=50)
    statuses = _race(app, {"username": "nobody-here", "password": "wrong password 1", "code": "123456"})
    assert statuses == [422] * RACERS
    with app.app_context():
        assert db.session.scalar(sa.select(SignInThrottle.failures)) == RACERS
