"""Logs: one JSON object per line with the request id, the route rule and the status; never a secret."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator

import pytest
from flask import Flask

from intake.accounts import operations as ops
from intake.accounts.models import Account
from intake.core.db import db
from tests.conftest import Auth, TestUser, TotpClock, open_link, post_form

NUMERIC_RECORD_FIELDS = {"created", "msecs", "relativeCreated", "thread", "process", "lineno"}


class Collector(logging.Handler):
    """Keeps every record, to format and search them all afterwards."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def intake_json_formatter() -> logging.Formatter:
    """The formatter the service installs on its `intake` logger (the one writing to standard error)."""
    handlers = [h for h in logging.getLogger("intake").handlers if isinstance(h, logging.StreamHandler)
                and not isinstance(h, logging.FileHandler) and h.formatter is not None
                and type(h.formatter).__name__ == "JsonFormatter"]
    assert handlers, "the intake logger has no JSON handler"
    return handlers[0].formatter  # type: ignore[return-value]


@pytest.fixture
def logs(make_app: Callable[..., Flask]) -> Iterator[tuple[Flask, io.StringIO, Collector]]:
    """An app logging at INFO; its JSON output goes to a buffer as well, and every record anywhere is kept."""
    app = make_app(LOG_LEVEL="INFO")
    buffer = io.StringIO()
    stream = logging.StreamHandler(buffer)
    stream.setFormatter(intake_json_formatter())
    collector = Collector()
    intake_logger, root = logging.getLogger("intake"), logging.getLogger()
    intake_logger.addHandler(stream)
    intake_logger.addHandler(collector)
    root.addHandler(collector)
    old_root_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield app, buffer, collector
    finally:
        root.setLevel(old_root_level)
        root.removeHandler(collector)
        intake_logger.removeHandler(collector)
        intake_logger.removeHandler(stream)


def json_lines(buffer: io.StringIO) -> list[dict[str, object]]:
    lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
    assert lines, "nothing was logged"
    return [json.loads(line) for line in lines]  # every line is one JSON object


def create_user_on(app: Flask, username: str, roles: list[str]) -> TestUser:
    import pyotp

    from tests.conftest import PASSWORD

    secret = pyotp.random_base32()
    with app.app_context():
        account = ops.create_account(username=username, roles=roles, password=PASSWORD, totp_secret=secret)
        db.session.commit()
        return TestUser(account.id, account.username, PASSWORD, secret, roles)


def test_request_lines_are_json_with_request_id_route_and_status(
    logs: tuple[Flask, io.StringIO, Collector], totp_clock: TotpClock
) -> None:
    app, buffer, _ = logs
    user = create_user_on(app, "amira", ["interviewer"])
    client = app.test_client()
    signed_in = Auth(client, totp_clock).sign_in(user)
    missing = client.get("/no/such/page")
    token_path = client.get("/enrol/not-a-real-token-value-1234")

    entries = json_lines(buffer)
    requests = [e for e in entries if e.get("message") == "request"]
    by_id = {e["request_id"]: e for e in requests}

    sign_in = by_id[signed_in.headers["X-Request-Id"]]
    assert sign_in["route"] == "/sign-in" and sign_in["method"] == "POST" and sign_in["status"] == 303
    assert sign_in["account_id"] is None  # the caller was anonymous when the request began
    assert {"asctime", "level", "name", "duration_ms"} <= set(sign_in)
    assert sign_in["level"] == "INFO" and sign_in["name"] == "intake.request"

    not_found = by_id[missing.headers["X-Request-Id"]]
    assert not_found["route"] == "<unmatched>" and not_found["status"] == 404

    link = by_id[token_path.headers["X-Request-Id"]]
    assert link["route"] == "/enrol/<token>" and link["status"] == 410
    assert "not-a-real-token-value-1234" not in buffer.getvalue()


def test_an_unexpected_error_is_logged_with_its_request_id(
    logs: tuple[Flask, io.StringIO, Collector], totp_clock: TotpClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, buffer, _ = logs
    user = create_user_on(app, "amira", ["interviewer"])
    client = app.test_client()
    Auth(client, totp_clock).sign_in(user)

    import intake.home.controllers as home

    def fail(*args: object, **kwargs: object) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(home, "render_template", fail)
    response = client.get("/")
    assert response.status_code == 500
    request_id = response.headers["X-Request-Id"]
    errors = [e for e in json_lines(buffer) if e.get("level") == "ERROR"]
    assert any(e.get("request_id") == request_id and "exc_info" in e for e in errors)
    request_line = next(e for e in json_lines(buffer) if e.get("message") == "request"
                        and e.get("request_id") == request_id)
    assert request_line["status"] == 500 and request_line["route"] == "/"


def test_passwords_codes_enrolment_tokens_and_api_tokens_never_reach_any_log(
    logs: tuple[Flask, io.StringIO, Collector], totp_clock: TotpClock
) -> None:
    app, buffer, collector = logs
    user = create_user_on(app, "amira", ["interviewer"])
    admin = create_user_on(app, "lusine", ["admin"])
    secrets: list[str] = [user.password, admin.password]

    client = app.test_client()
    auth = Auth(client, totp_clock)
    wrong_password = "sentinel wrong password 7781"
    secrets.append(wrong_password)
    auth.sign_in(user, password=wrong_password)
    code = totp_clock.code(user.totp_secret)
    secrets.append(code)
    assert auth.sign_in(user, code=code).status_code == 303
    step_code = totp_clock.code(user.totp_secret)
    secrets.append(step_code)
    post_form(client, "/step-up?next=/account", {"code": step_code}, token_from="/account")
    created = post_form(client, "/account/tokens/new", {"name": "laptop", "expires_in_days": "7"})
    web_token = re.search(r'id="api-token">([^<]+)<', created.get_data(as_text=True)).group(1)
    secrets.append(web_token)
    secrets.append(user.totp_secret)

    with app.app_context():
        link = ops.invite_account(username="narine", roles=["reviewer"], actor=None)
        _t, api_token = ops.create_api_token(db.session.get(Account, user.id), name="script")
        db.session.commit()
    enrolment_token = link.url.rsplit("/", 1)[1]
    secrets += [enrolment_token, api_token]

    newcomer = app.test_client()
    assert newcomer.get(f"/enrol/{enrolment_token}?again={enrolment_token}").status_code == 200  # the landing page
    assert open_link(newcomer, f"/enrol/{enrolment_token}?again={enrolment_token}").status_code == 303
    assert newcomer.get(f"/enrol/{enrolment_token}").status_code == 410  # spent: logged as a refusal
    new_password = "sentinel newcomer password 5512"
    secrets.append(new_password)
    post_form(newcomer, "/enrol/password", {"password": new_password, "confirm": new_password})

    api = app.test_client()
    assert api.get("/api/v1/me", headers={"Authorization": f"Bearer {api_token}"}).status_code == 200
    assert api.get(f"/api/v1/me?token={api_token}", headers={"Authorization": f"Bearer {web_token}"}).status_code == 200
    unknown = "intk_sentinelUnknownTokenValue00000000000000000"
    secrets.append(unknown)
    assert api.get("/api/v1/me", headers={"Authorization": f"Bearer {unknown}"}).status_code == 401

    assert len(collector.records) > 10
    formatter = intake_json_formatter()
    everything = [buffer.getvalue()]
    for record in collector.records:
        everything.append(formatter.format(record))
        everything.append(record.getMessage())
        # Everything a handler could print, except clock and process numbers (long digit runs that could
        # match a six-digit code by chance).
        everything.append(repr({k: v for k, v in record.__dict__.items() if k not in NUMERIC_RECORD_FIELDS}))
    haystack = "\n".join(everything)
    for secret in secrets:
        assert secret not in haystack, f"a secret ({secret[:4]}…) appears in the logs"


def test_a_database_error_is_logged_without_what_the_database_said(
    logs: tuple[Flask, io.StringIO, Collector], monkeypatch: pytest.MonkeyPatch,
    create_user: Callable[..., TestUser], totp_clock: TotpClock,
) -> None:
    import sqlalchemy as sa

    from intake.home import controllers as home

    app, buffer, _ = logs
    user = create_user()
    client = app.test_client()
    Auth(client, totp_clock).sign_in(user)

    def fail(*_args: object, **_kwargs: object) -> str:
        raise sa.exc.IntegrityError(
            "INSERT INTO accounts ...", {"username": "private-value"},
            Exception("duplicate key value violates unique constraint; Key (username)=(private-value)"),
        )

    monkeypatch.setattr(home, "render_template", fail)
    response = client.get("/")
    assert response.status_code == 500
    output = buffer.getvalue()
    assert "database error" in output
    assert "private-value" not in output


def test_an_error_after_the_view_logs_the_route_pattern_not_the_token(
    logs: tuple[Flask, io.StringIO, Collector], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, buffer, collector = logs
    with app.app_context():
        link = ops.invite_account(username="amira", roles=["interviewer"], actor=None).url
        db.session.commit()
    path = link.removeprefix("http://localhost")
    token = path.rsplit("/", 1)[1]

    def broken_save(*_args: object) -> None:
        raise RuntimeError("the session store is down")

    monkeypatch.setattr(app.session_interface, "save_session", broken_save)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: the error page, not the test runner, gets it
    response = app.test_client().get(path)
    assert response.status_code == 500
    formatter = intake_json_formatter()
    everything = buffer.getvalue() + "\n".join(formatter.format(r) for r in collector.records)
    assert "/enrol/<token>" in everything
    assert token not in everything
