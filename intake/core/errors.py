"""Error responses: readable translated pages for people, `application/problem+json` (RFC 9457) for the API.

Neither ever carries request content, secrets or exception details.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, jsonify, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.http import HTTP_STATUS_CODES

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

# API answers: what a script author needs to fix their request.
INVALID_JSON = _l("The request body is not valid JSON.")
INVALID_FIELDS = _l("Some fields are missing or not valid; 'errors' names each one and says why.")

# The API has no pages to go back to: its explanations say what is wrong with the request instead.
API_EXPLANATIONS: dict[int, Any] = {
    404: _l("There is nothing at this address in the API."),
    405: _l("This address does not accept this method; the Allow header lists those it does."),
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


def problem(status: int, detail: str, *, errors: Any = None, headers: dict[str, str] | None = None,
            title: str | None = None) -> Response:
    """An `application/problem+json` answer. `title` is for statuses without a translated title of our own
    (default: the status's standard name)."""
    fallback = title or HTTP_STATUS_CODES.get(status, "Error")
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": str(TITLES.get(status, fallback)),
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
    valid_methods = getattr(error, "valid_methods", None)
    if status == 405 and valid_methods:
        headers["Allow"] = ", ".join(valid_methods)  # RFC 9110: a 405 names the methods the route takes
    if isinstance(error, CSRFError):
        detail = str(CSRF_EXPLANATION)
    elif status == 429:
        detail = str(_l("Too many attempts. Try again in %(seconds)d seconds.", seconds=retry or 60))
    elif error.description and error.description != type(error).description:
        detail = str(error.description)  # a message chosen where the error was raised
    elif is_api_request() and status in API_EXPLANATIONS:
        detail = str(API_EXPLANATIONS[status])
    else:
        detail = str(EXPLANATIONS.get(status, ""))
    if is_api_request():
        errors = None
        data = getattr(error, "data", None)
        if isinstance(data, dict) and "messages" in data:
            errors = data["messages"]
            # Set by webargs (under flask-smorest) when it could not read or validate the body.
            if status == 400 and isinstance(getattr(error, "exc", None), ValueError):
                detail = str(INVALID_JSON)  # json.JSONDecodeError and UnicodeDecodeError
            elif status == 422:
                detail = str(INVALID_FIELDS)
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            detail = data["message"]
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return problem(status, detail, errors=errors, headers=headers, title=error.name)
    html = render_template(
        "error.html", status=status, title=TITLES.get(status, _l("Error")), detail=detail,
        request_id=g.get("request_id"),
    )
    return Response(html, status=status, headers=headers, mimetype="text/html")


def handle_unexpected(error: Exception) -> Response:
    context = {"request_id": g.get("request_id"), "endpoint": request.endpoint}
    if isinstance(error, DBAPIError):
        # The database's own message can quote row values (a duplicate key, say): log only what kind of error.
        log.error("database error", extra={**context, "error": type(error.orig).__name__,
                                           "sqlstate": getattr(error.orig, "sqlstate", None)})
    else:
        log.exception("unhandled error", extra=context)
    return handle_http_error(InternalServerError())


def install_error_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
