"""Rate limits (Flask-Limiter): in memory by default, in Redis when `INTAKE_REDIS_URL` is set.

The limiter is module-level so that routes can name their limits where they are declared; it serves the one
application each process runs (each gunicorn worker builds its own). In memory, every worker counts apart, so
several workers or hosts need Redis for the limits to hold as configured.
"""

from __future__ import annotations

from flask import Flask, current_app, request, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

limiter = Limiter(get_remote_address, headers_enabled=True)


def per_address() -> str:
    return str(current_app.config["SIGN_IN_LIMIT_PER_ADDRESS"])


def per_account() -> str:
    return str(current_app.config["SIGN_IN_LIMIT_PER_ACCOUNT"])


def api_limit() -> str:
    return str(current_app.config["API_LIMIT"])


def account_name_key() -> str:
    """The account name being signed in to, known or not, so guessing one account is slowed from any address."""
    from intake.accounts.operations import normalise_username

    return "account:" + normalise_username(request.form.get("username", ""))[:64]


def session_account_key() -> str:
    """The signed-in account or the enrolment in progress."""
    return "session:" + str(session.get("account_id") or session.get("enrolment") or get_remote_address())


def init_limits(app: Flask) -> None:
    app.config["RATELIMIT_STORAGE_URI"] = app.config["REDIS_URL"] or "memory://"
    app.config["RATELIMIT_KEY_PREFIX"] = "intake"
    app.config["RATELIMIT_HEADERS_ENABLED"] = True
    limiter.init_app(app)
