"""Roles, named permissions and the deny-by-default access declaration every route carries.

A route is reachable only if its view declares what it needs, with `@requires(Permission.X)` or `@public`.
`intake.core.web.check_access` (a ``before_request`` hook) refuses everything else, in the
manner of SecureDrop's journalist interface: a new route that forgets its declaration is closed, not open.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import Flask, current_app, request
from flask_babel import lazy_gettext as _l

F = TypeVar("F", bound=Callable[..., Any])

ACCESS_ATTRIBUTE = "__intake_access__"
STEP_UP_ATTRIBUTE = "__intake_step_up__"


class Role(enum.StrEnum):
    INTERVIEWER = "interviewer"
    REVIEWER = "reviewer"
    LEGAL = "legal"
    COORDINATOR = "coordinator"
    AUDITOR = "auditor"
    ADMIN = "admin"


ROLE_TITLES = {
    Role.INTERVIEWER: _l("interviewer"),
    Role.REVIEWER: _l("reviewer"),
    Role.LEGAL: _l("legal"),
    Role.COORDINATOR: _l("coordinator"),
    Role.AUDITOR: _l("auditor"),
    Role.ADMIN: _l("admin"),
}


def role_titles(roles: Iterable[Role | str]) -> str:
    """The roles' names in the reader's language, comma-separated (for pages)."""
    return ", ".join(str(ROLE_TITLES[Role(r)]) for r in roles)


class Permission(enum.StrEnum):
    """What a route needs. Roles are sets of permissions; routes never name roles."""

    OWN_ACCOUNT = "own_account"  # every signed-in person: their profile, password, tokens, sign-out
    MANAGE_ACCOUNTS = "manage_accounts"  # list, invite, change roles, deactivate, reset two-factor
    MANAGE_RECIPIENTS = "manage_recipients"  # register the organisations case files go to, and their keys
    RECORD_INTERVIEWS = "record_interviews"
    REVIEW_RECORDS = "review_records"
    BUILD_CASE_FILES = "build_case_files"
    COORDINATE = "coordinate"
    READ_AUDIT_LOG = "read_audit_log"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.INTERVIEWER: frozenset({Permission.OWN_ACCOUNT, Permission.RECORD_INTERVIEWS}),
    Role.REVIEWER: frozenset({Permission.OWN_ACCOUNT, Permission.REVIEW_RECORDS}),
    Role.LEGAL: frozenset({Permission.OWN_ACCOUNT, Permission.BUILD_CASE_FILES}),
    Role.COORDINATOR: frozenset({Permission.OWN_ACCOUNT, Permission.COORDINATE}),
    Role.AUDITOR: frozenset({Permission.OWN_ACCOUNT, Permission.READ_AUDIT_LOG}),
    Role.ADMIN: frozenset({Permission.OWN_ACCOUNT, Permission.MANAGE_ACCOUNTS, Permission.MANAGE_RECIPIENTS}),
}

# Combinations an account may hold. Admin and auditor stand alone (they hold no content rights and must not
# gain any through a second role); a reviewer must never see identities or export, so it stands alone too.
# Field coordinators commonly interview, and legal officers commonly coordinate their own cases' survivors.
COMPATIBLE_ROLE_SETS: frozenset[frozenset[Role]] = frozenset(
    {frozenset({Role.INTERVIEWER, Role.COORDINATOR}), frozenset({Role.LEGAL, Role.COORDINATOR})}
)


# The only endpoints reachable without signing in. A view marked `@public` that is not listed here is refused, so
# opening a route to anonymous callers takes two deliberate changes.
PUBLIC_ENDPOINTS: frozenset[str] = frozenset(
    {
        "static",
        "home.healthz",
        "accounts.sign_in",
        "accounts.open_setup_link",
        "accounts.open_enrolment_link",
        "accounts.enrol_password",
        "accounts.enrol_authenticator",
        "accounts.choose_language",
    }
)


class _Public:
    def __repr__(self) -> str:
        return "PUBLIC"


PUBLIC = _Public()


def roles_are_compatible(roles: Iterable[Role | str]) -> bool:
    """True when one account may hold all of `roles` at once (a single role always may)."""
    chosen = frozenset(Role(r) for r in roles)
    if not chosen:
        return False
    return len(chosen) == 1 or chosen in COMPATIBLE_ROLE_SETS


def permissions_for(roles: Iterable[Role | str]) -> frozenset[Permission]:
    """The union of the permissions of `roles`."""
    result: set[Permission] = set()
    for role in roles:
        result |= ROLE_PERMISSIONS[Role(role)]
    return frozenset(result)


def requires(permission: Permission) -> Callable[[F], F]:
    """Declare the permission a view (function or MethodView method) needs."""

    def decorate(view: F) -> F:
        setattr(view, ACCESS_ATTRIBUTE, permission)
        return view

    return decorate


def public(view: F) -> F:
    """Declare a view reachable without signing in. Only the allowlisted flows use this."""
    setattr(view, ACCESS_ATTRIBUTE, PUBLIC)
    return view


def requires_step_up(view: F) -> F:
    """Declare that a view needs a two-factor code entered within the last few minutes."""
    setattr(view, STEP_UP_ATTRIBUTE, True)
    return view


def declared_access(app: Flask, endpoint: str, method: str) -> tuple[Permission | _Public | None, bool]:
    """The (permission, needs step-up) declared for `endpoint` and HTTP `method`.

    None when undeclared, or when declared public but missing from `PUBLIC_ENDPOINTS`.
    """
    if endpoint == "static":
        return PUBLIC, False
    view = app.view_functions.get(endpoint)
    if view is None:
        return None, False
    target: Any = view
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        name = "get" if method.upper() == "HEAD" else method.lower()
        target = getattr(view_class, name, None) or view_class
    access = getattr(target, ACCESS_ATTRIBUTE, None)
    if access is None and view_class is not None:
        access = getattr(view_class, ACCESS_ATTRIBUTE, None)
    step_up = bool(getattr(target, STEP_UP_ATTRIBUTE, False))
    if access is PUBLIC and endpoint not in PUBLIC_ENDPOINTS:
        return None, False
    return access, step_up


def current_declared_access() -> tuple[Permission | _Public | None, bool]:
    """`declared_access` for the request being handled."""
    if request.endpoint is None:
        return None, False
    return declared_access(current_app, request.endpoint, request.method)
