"""Error responses: readable translated pages for people, `application/problem+json` (RFC 9457) for the API.

Neither ever carries request content, secrets or exception details.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, jsonify, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from intake.core.web import is_api_request

log = logging.getLogger("intake.errors")

TITLES: dict[int, Any] = {
    400: _l("The request could not be understood"),
    401: _l("Sign-in needed"),
    403: _l("You do not have access to this page"),
    404: _l("Page not found"),
    405: _l("This action is not available here"),
    413: _l("What you sent is too large"),
    415: _l("Unsupported content type"),
    422: _l("Some of what you sent is not valid"),
    429: _l("Too many attempts"),
    500: _l("Something went wrong on our side"),
    503: _l("The service is not available right now"),
}

EXPLANATIONS: dict[int, Any] = {
    400: _l("Go back, reload the page and try again."),
    401: _l("Sign in and try again."),
    403: _l("If you need it for your work, ask a coordinator or an administrator."),
    404: _l("Check the address, or go back to the start page."),
    405: _l("Go back to the start page."),
    413: _l("Send less at a time."),
    429: _l("Wait a little before trying again."),
    500: _l("Nothing you entered has been saved. Try again; if it keeps happening, tell an administrator and "
            "give them the reference below."),
    503: _l("Try again in a few minutes."),
}

CSRF_EXPLANATION = _l(
    "This form has expired or was not sent from this site, so nothing was saved. Go back, reload the page and "
    "submit it again."
)


def _retry_after() -> int:
    """Seconds until the limit that refused this request lets the caller try again."""
    import time

    from intake.core.limits import limiter

    current = limiter.current_limit
    if current is None:
        return 60
    return max(1, int(current.reset_at - time.time()))


def problem(status: int, detail: str, *, errors: Any = None, headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": str(TITLES.get(status, HTTPException.description)),
        "status": status,
        "detail": detail,
        "request_id": g.get("request_id"),
    }
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def handle_http_error(error: HTTPException) -> Response:
    status = error.code or 500
    headers: dict[str, str] = {}
    retry = _retry_after() if status == 429 else None
    if retry:
        headers["Retry-After"] = str(retry)
    if isinstance(error, CSRFError):
        detail = str(CSRF_EXPLANATION)
    elif status == 429:
        detail = str(_l("Too many attempts. Try again in %(seconds)d seconds.", seconds=retry or 60))
    elif error.description and error.description != type(error).description:
        detail = str(error.description)  # a message chosen where the error was raised
    else:
        detail = str(EXPLANATIONS.get(status, ""))
    if is_api_request():
        errors = None
        data = getattr(error, "data", None)
        if isinstance(data, dict) and "messages" in data:
            errors = data["messages"]
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            detail = data["message"]
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return problem(status, detail, errors=errors, headers=headers)
    html = render_template(
        "error.html", status=status, title=TITLES.get(status, _l("Error")), detail=detail,
        request_id=g.get("request_id"),
    )
    response = Response(html, status=status, headers=headers, mimetype="text/html")
    if status == 405 and hasattr(error, "valid_methods") and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


def handle_unexpected(error: Exception) -> Response:
    log.exception("unhandled error", extra={"request_id": g.get("request_id"), "endpoint": request.endpoint})
    return handle_http_error(InternalServerError())


def install_error_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
