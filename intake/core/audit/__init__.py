"""The audit hook: every security-relevant event goes through `record_event`.

Events are added to the current database session, so they commit or roll back together with the change they
describe. The audit issue makes the table tamper-evident (hash chain, signed checkpoints) behind this same
function, so callers do not change.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any

from flask import g, has_request_context

from intake.core.audit.models import AuditEvent
from intake.core.db import db

__all__ = ["AuditAction", "AuditEvent", "record_event"]


class AuditAction(enum.StrEnum):
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGIN_LOCKED = "login_locked"
    LOGOUT = "logout"
    MFA_ENROLLED = "mfa_enrolled"
    MFA_RESET = "mfa_reset"
    STEP_UP = "step_up"
    STEP_UP_FAILED = "step_up_failed"
    RECOVERY_CODES_CREATED = "recovery_codes_created"
    RECOVERY_CODE_USED = "recovery_code_used"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - an event name
    SETUP_LINK_ISSUED = "setup_link_issued"
    INVITATION_ISSUED = "invitation_issued"
    ACCOUNT_CREATED = "account_created"
    ROLES_CHANGED = "roles_changed"
    ACCOUNT_DEACTIVATED = "account_deactivated"
    ACCOUNT_REACTIVATED = "account_reactivated"
    TOKEN_CREATED = "token_created"  # noqa: S105 - an event name
    TOKEN_REVOKED = "token_revoked"  # noqa: S105 - an event name
    ACCESS_DENIED = "access_denied"
    PERSON_REGISTERED = "person_registered"
    IDENTITY_MATCH_CHECKED = "identity_match_checked"
    TESTIMONY_CREATED = "testimony_created"
    TESTIMONY_UPDATED = "testimony_updated"
    ATTACHMENT_STORED = "attachment_stored"
    RECORD_SHREDDED = "record_shredded"
    KEK_ROTATED = "kek_rotated"
    DATA_KEYS_REWRAPPED = "data_keys_rewrapped"
    KEK_RETIRED = "kek_retired"
    KEYRING_PASSPHRASE_CHANGED = "keyring_passphrase_changed"  # noqa: S105 - an event name
    KEYRING_BACKED_UP = "keyring_backed_up"


# Keys that must never appear in audit details, whatever a caller passes.
_FORBIDDEN_DETAIL_KEYS = {"password", "code", "token", "secret", "totp", "passphrase", "narrative", "name"}


def record_event(
    action: AuditAction,
    *,
    actor: Any | None = None,
    target_type: str | None = None,
    target_ids: Iterable[int | str] = (),
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append an audit event to the current transaction and return it.

    `actor` is an account (anything with ``id`` and ``role_names``) or None for anonymous attempts. `details`
    holds field names, counts and identifiers only; keys that could carry secrets or content are refused.
    """
    details = dict(details or {})
    bad = _FORBIDDEN_DETAIL_KEYS.intersection(k.lower() for k in details)
    if bad:
        raise ValueError(f"audit details must not carry {sorted(bad)}")
    event = AuditEvent(
        action=str(action),
        actor_id=getattr(actor, "id", None),
        actor_roles=",".join(sorted(getattr(actor, "role_names", ()) or ())),
        target_type=target_type,
        target_ids=[str(t) if not isinstance(t, int) else t for t in target_ids],
        reason=reason,
        details=details,
        request_id=g.get("request_id") if has_request_context() else None,
    )
    db.session.add(event)
    return event
