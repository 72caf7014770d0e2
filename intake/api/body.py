"""Request bodies of the API are JSON: anything else is refused with 415 before a schema sees it.

A view marked `takes_raw_body` (an upload) takes the file itself instead, as application/octet-stream.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import UnsupportedMediaType

METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
RAW_BODY_ATTRIBUTE = "__intake_raw_body__"
RAW_BODY_TYPE = "application/octet-stream"


def takes_raw_body(view: Any) -> Any:
    """Mark a view whose body is a file sent as it is (application/octet-stream), not JSON."""
    setattr(view, RAW_BODY_ATTRIBUTE, True)
    return view


def require_json_body() -> None:
    """Blueprint hook: after the caller's access was checked, refuse a body that is not declared as JSON (or, for
    a view marked `takes_raw_body`, as application/octet-stream)."""
    if request.method not in METHODS_WITH_BODY:
        return
    if getattr(current_app.view_functions.get(request.endpoint or ""), RAW_BODY_ATTRIBUTE, False):
        if request.mimetype != RAW_BODY_TYPE:
            raise UnsupportedMediaType(description=str(_l(
                "Send the file itself with 'Content-Type: application/octet-stream'.")))
        return
    if not request.is_json:
        raise UnsupportedMediaType(description=str(_l("Send a JSON body with 'Content-Type: application/json'.")))
