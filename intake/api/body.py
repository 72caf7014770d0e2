"""Request bodies of the API are JSON: anything else is refused with 415 before a schema sees it."""

from __future__ import annotations

from flask import request
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import UnsupportedMediaType

METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def require_json_body() -> None:
    """Blueprint hook: after the caller's access was checked, refuse a body that is not declared as JSON."""
    if request.method in METHODS_WITH_BODY and not request.is_json:
        raise UnsupportedMediaType(description=str(_l("Send a JSON body with 'Content-Type: application/json'.")))
