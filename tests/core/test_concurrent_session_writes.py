"""Requests whose session is written while other requests write: nobody gets an error page or waits.

On SQLite a transaction begun with a plain (deferred) BEGIN that reads and then writes fails at once with
"database is locked" when another writer committed in between; the busy timeout does not help. The session store
(noting a signed-in person's activity) and the audit event of a refused request write on GET, so their
transactions must take the write lock from the start. And a request refused before its view ran must not keep its
own transaction (and, for a POST, the write lock) open while its session is saved. The tests run on PostgreSQL
too, where they must pass as well.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from intake.accounts import operations as ops
from intake.core import sessions
from intake.core.db import db
from tests.conftest import PASSWORD, Auth, TestUser, TotpClock, csrf_token

THREADS = 8
REQUESTS = 25


def _signed_in(app: Flask, clock: TotpClock, count: int) -> list[FlaskClient]:
    users = []
    with app.app_context():
        for i in range(count):
            secret = pyotp.random_base32()
            account = ops.create_account(username=f"person{i}", roles=["interviewer"], password=PASSWORD,
                                         totp_secret=secret)
            users.append(TestUser(account.id, account.username, PASSWORD, secret, ["interviewer"]))
        db.session.commit()
    clients = []
    for user in users:
        client = app.test_client()
        assert Auth(client, clock).sign_in(user).status_code == 303
        clients.append(client)
    return clients


def test_signed_in_pages_under_concurrent_writes_never_fail(
    make_app: Callable[..., Flask], totp_clock: TotpClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app()
    clients = _signed_in(app, totp_clock, THREADS)
    tokens = [csrf_token(c, "/account") for c in clients]
    # Every request notes the activity, so every GET of a signed-in page writes its session.
    monkeypatch.setattr(sessions, "TOUCH_INTERVAL", timedelta(0))

    start = threading.Barrier(THREADS)
    outcomes: list[list[str]] = [[] for _ in range(THREADS)]

    def browse(i: int) -> None:
        client, token = clients[i], tokens[i]
        start.wait()
        for j in range(REQUESTS):
            try:
                if j % 5 == 0:  # a writer: choosing a language changes the account and the session
                    response = client.post("/language", data={"csrf_token": token, "lang": "en", "next": "/"})
                    expected = 303
                elif j % 5 == 1:  # refused: the audit log records it
                    response = client.get("/admin/accounts")
                    expected = 403
                else:
                    response = client.get("/account")
                    expected = 200
                outcome = "ok" if response.status_code == expected else f"{response.status_code} (not {expected})"
            except Exception as exc:  # noqa: BLE001 - with TESTING on, a failure arrives as the exception itself
                outcome = f"{exc.__class__.__name__}: {exc}"
            outcomes[i].append(outcome)

    threads = [threading.Thread(target=browse, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    failures = [o for per_thread in outcomes for o in per_thread if o != "ok"]
    assert sum(len(o) for o in outcomes) == THREADS * REQUESTS
    assert failures == [], f"{len(failures)} of {THREADS * REQUESTS} failed, e.g. {failures[:3]}"


@pytest.mark.parametrize("path", ["/account/recovery-codes", "/no-such-page"])
def test_a_post_refused_before_its_view_does_not_hold_up_saving_the_session(
    make_app: Callable[..., Flask], totp_clock: TotpClock, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """Sent to step-up, or to the not-found page: the request's transaction (which, for a POST, took SQLite's
    write lock when the caller was loaded) must not be left open while the session store writes."""
    app = make_app()
    (client,) = _signed_in(app, totp_clock, 1)
    token = csrf_token(client, "/account")
    monkeypatch.setattr(sessions, "TOUCH_INTERVAL", timedelta(0))

    # Left open, that transaction would make the session save wait out the busy timeout and then fail.
    response = client.post(path, data={"csrf_token": token})
    assert response.status_code in (302, 404)
    assert client.get("/account").status_code == 200
