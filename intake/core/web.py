"""The request pipeline, after Indico's request handlers: load the caller → check access → process → one commit.

- `refuse_cross_site_requests` (registered beside Flask-WTF's CSRF check) refuses state changes a browser says
  came from another site, on top of the CSRF token.
- `load_caller` finds who is calling: a bearer token on the API, the server-side session elsewhere.
- `check_access` refuses any route whose view declares no permission (deny by default), sends anonymous callers
  to sign-in (pages) or answers 401 (API), answers 403 to the wrong role, and asks for step-up where declared.
- `transactional` wraps every view: the view's changes and their audit events commit once at the end, or roll
  back together on any exception (a refused record access keeps only its audit event).
- `secure_headers` sets the security headers on every response.
- `end_request_transaction` rolls back what a refused request left open before the session is saved.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Flask, Response, current_app, g, redirect, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import Forbidden, RequestEntityTooLarge, Unauthorized
from werkzeug.wrappers import Response as BaseResponse

from intake.core.audit import AuditAction, record_event
from intake.core.db import db, write_intent
from intake.core.security import PUBLIC, Permission, current_declared_access

log = logging.getLogger("intake.request")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
PERMISSIONS_POLICY = (
    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=(), "
    "browsing-topics=(), display-capture=(), fullscreen=(self)"
)


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# `Sec-Fetch-Site` values of requests a person started on this site ("none": typed, bookmarked, reloaded).
OWN_SITE_FETCHES = frozenset({"same-origin", "none"})


def is_api_request() -> bool:
    return request.path.startswith("/api/")


def refuse_cross_site_requests() -> None:
    """Refuse a state-changing page request that the browser says another site started.

    Flask-WTF's own origin check relies on the Referer header, which browsers never send here
    (`Referrer-Policy: no-referrer`), so it is off. Instead: `Sec-Fetch-Site` must be same-origin or none when
    present, and `Origin` must be this site's scheme://host when present. `Origin: null` carries no information:
    it is exactly what browsers send for a same-origin form under `no-referrer` (Fetch, "append a request
    `Origin` header"), so it is left to `Sec-Fetch-Site` and the CSRF token. The API is exempt: it takes bearer
    tokens, never cookies.
    """
    if request.method not in UNSAFE_METHODS or is_api_request():
        return
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.strip().lower() not in OWN_SITE_FETCHES:
        raise CSRFError("The request came from another site.")
    origin = request.headers.get("Origin")
    if origin is not None and origin.strip().lower() != "null":
        own = f"{request.scheme}://{request.host}".lower()
        if origin.strip().rstrip("/").lower() != own:
            raise CSRFError("The request came from another origin.")


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to go back to; anything pointing elsewhere becomes `default` (no open redirects)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


class ApiUnauthorized(Unauthorized):
    def __init__(self, reason: str) -> None:
        messages = {
            "missing": _l("Send a personal API token as 'Authorization: Bearer <token>'."),
            "invalid": _l("This API token is not valid."),
            "expired": _l("This API token has expired. Create a new one."),
            "revoked": _l("This API token has been revoked."),
            "inactive": _l("The account this token belongs to cannot sign in."),
        }
        super().__init__(description=str(messages.get(reason, messages["invalid"])))
        self.reason = reason


def load_caller() -> None:
    """Set ``g.account`` (or None) and, for pages whose session just ended, ``g.session_ended``."""
    from intake.accounts.models import Account
    from intake.accounts.operations import account_for_api_token

    g.account = None
    g.api_auth_error = None
    if is_api_request():
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            account, reason = account_for_api_token(token.strip())
            g.account, g.api_auth_error = account, reason
        else:
            g.api_auth_error = "missing"
        return
    account_id = session.get("account_id")
    if account_id is None:
        g.session_ended = getattr(session, "ended", False)
        return
    account = db.session.get(Account, account_id)
    if account is None or not account.can_sign_in or account.auth_epoch != session.get("epoch"):
        g.session_ended = True
        session.clear()
        return
    g.account = account


def _deny(status: int, *, permission: Any) -> None:
    """Refuse the request; when a signed-in person is refused, record it in the audit log.

    Only signed-in callers are recorded: a person refused a route is what the audit log is for. Anonymous refusals
    are in the request log (an undeclared route also as an error), and recording them would let anyone on the
    network write audit rows. The event is committed here, before the refusal is raised, because the refused
    request never reaches a view: `transactional` does not run, and the session is discarded at the end of the
    request, which would lose the event.

    Nothing has changed at this point, so the request's transaction (begun read-only in `load_caller` on a GET) is
    rolled back and the event committed in a transaction of its own that takes SQLite's write lock when it begins:
    a read transaction that later writes fails at once with "database is locked" if another writer committed in
    between.
    """
    if g.account is not None:
        db.session.rollback()
        token = write_intent.set(True)
        try:
            record_event(
                AuditAction.ACCESS_DENIED,
                actor=g.account,
                details={"endpoint": request.endpoint or "", "method": request.method, "needs": str(permission)},
            )
            db.session.commit()
        finally:
            write_intent.reset(token)
    raise Forbidden() if status == 403 else Unauthorized()


def step_up_is_fresh() -> bool:
    stepped = session.get("stepped_up_at")
    if not stepped:
        return False
    minutes = current_app.config["STEP_UP_MINUTES"]
    return time.time() - float(stepped) < timedelta(minutes=minutes).total_seconds()


def step_up_return_path() -> str:
    """Where to go back to after step-up: a local path only, and one that can be opened with GET.

    GET comes back to the same address. A form (POST) cannot be replayed, so it comes back to the page its own
    `next` field names, else to its address when that also shows a page, else to the start page.
    """
    if request.method in ("GET", "HEAD"):
        return request.full_path if request.query_string else request.path
    chosen = safe_next(request.form.get("next"), "")
    if chosen:
        return chosen
    rule = request.url_rule
    if rule is not None and rule.methods is not None and "GET" in rule.methods:
        return request.path
    return "/"


def check_access() -> BaseResponse | None:
    """Deny by default: only declared routes are reachable, and only by callers holding the permission.

    OPTIONS passes on routes where Flask answers it itself (with an Allow header, without calling the view).
    """
    if request.endpoint is None:
        return None  # no route matched: the 404/405 handler answers
    if request.method == "OPTIONS" and getattr(request.url_rule, "provide_automatic_options", False):
        return None
    permission, step_up = current_declared_access()
    if permission is None:
        log.error("route without an access declaration refused", extra={"endpoint": request.endpoint})
        _deny(403, permission="undeclared")
    if permission is PUBLIC:
        return None
    account = g.account
    if account is None:
        if is_api_request():
            raise ApiUnauthorized(g.api_auth_error or "missing")
        from flask import flash

        if g.get("session_ended"):
            flash(str(_l("Your session has ended. Sign in again.")), "info")
        shows_a_page = request.method in ("GET", "HEAD")
        return redirect(url_for("accounts.sign_in", next=request.full_path if shows_a_page else None))
    if not isinstance(permission, Permission) or not account.has_permission(permission):
        _deny(403, permission=permission)
    if step_up and not is_api_request() and not step_up_is_fresh():
        return redirect(url_for("accounts.step_up", next=safe_next(step_up_return_path())))
    if step_up and is_api_request():
        raise Forbidden(description=str(_l("This action needs a fresh two-factor code; use the web interface.")))
    return None


def transactional(view: Callable[..., Any]) -> Callable[..., Any]:
    """Run `view` in the request's single transaction: commit once after it, roll back on any exception."""

    from intake.core.access import AccessRefused

    @functools.wraps(view)
    def run_in_transaction(*args: Any, **kwargs: Any) -> Any:
        try:
            response = current_app.make_response(view(*args, **kwargs))
            db.session.commit()
        except AccessRefused as refused:
            # Nothing of the request is kept but the record of the refusal (DESIGN invariant 4).
            db.session.rollback()
            token = write_intent.set(True)
            try:
                refused.record_refusal()
                db.session.commit()
            finally:
                write_intent.reset(token)
            raise
        except BaseException:
            db.session.rollback()
            raise
        return response

    return run_in_transaction


def end_request_transaction(response: Response) -> Response:
    """Roll back whatever the request left open, before the session is saved.

    `transactional` has committed a view's work by now; a transaction still open belongs to a request refused
    before its view ran (sent to step-up, an unknown address), and would be discarded at teardown anyway. Ending
    it here matters on SQLite: the transaction of a POST holds the write lock from its first query, and the
    session store, which saves after this hook in a transaction of its own, would wait for that lock until the
    busy timeout and then fail with "database is locked". After a commit this is a no-op.
    """
    db.session.rollback()
    return response


BODY_LIMIT_ATTRIBUTE = "__intake_body_limit__"


def accepts_bodies_up_to(setting: str) -> Callable[[Any], Any]:
    """Let a view take request bodies of up to the `setting` bytes (plus MAX_CONTENT_LENGTH for the rest of the
    form) instead of MAX_CONTENT_LENGTH: for uploads. `start_request` applies it before anything reads the body."""

    def decorate(view: Any) -> Any:
        setattr(view, BODY_LIMIT_ATTRIBUTE, setting)
        return view

    return decorate


def start_request() -> None:
    g.request_id = request.headers.get("X-Request-Id", "")[:64] or secrets.token_hex(8)
    if not g.request_id.replace("-", "").isalnum():
        g.request_id = secrets.token_hex(8)
    g.request_started = time.perf_counter()
    # A larger limit declared by the view, set here because this hook runs first: the CSRF check after it reads
    # the form, and so would refuse the body at the application's limit.
    setting = getattr(current_app.view_functions.get(request.endpoint or ""), BODY_LIMIT_ATTRIBUTE, None)
    if setting is not None and current_app.config.get("MAX_CONTENT_LENGTH") is not None:
        request.max_content_length = int(current_app.config[setting]) + int(current_app.config["MAX_CONTENT_LENGTH"])
    # Refuse an oversized body up front, also on routes that never read it (werkzeug only checks on reading).
    limit = request.max_content_length
    if limit is not None and (request.content_length or 0) > limit:
        raise RequestEntityTooLarge()


def secure_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"
    headers["Permissions-Policy"] = PERMISSIONS_POLICY
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    if request.endpoint != "static":
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    if request.is_secure:
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    headers["X-Request-Id"] = g.get("request_id", "")
    return response


def log_request(response: Response) -> Response:
    started = g.get("request_started")
    # The caller's id from the identity map: after a rollback the account is expired, and reading `id` would ask the
    # database again, which may be the very thing that failed.
    account = g.get("account")
    state = sa.inspect(account, raiseerr=False) if account is not None else None
    account_id = state.identity[0] if state is not None and state.identity else getattr(account, "id", None)
    rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
    log.info(
        "request",
        extra={
            "request_id": g.get("request_id"),
            "method": request.method,
            "route": rule,  # the rule, never the path: paths of one-time links carry tokens
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
            "account_id": account_id,
        },
    )
    return response


def install_pipeline(app: Flask) -> None:
    """Register the pipeline hooks and wrap every view registered so far in `transactional`.

    `start_request` is registered by the app factory before any extension, so that every response, even one an
    extension refuses early (CSRF, rate limits), carries a request id.
    """
    app.before_request(load_caller)
    app.before_request(check_access)
    app.after_request(end_request_transaction)  # registered first, so it runs after the other two
    app.after_request(secure_headers)
    app.after_request(log_request)
    for endpoint, view in list(app.view_functions.items()):
        if endpoint != "static":
            app.view_functions[endpoint] = transactional(view)

