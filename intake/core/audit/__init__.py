"""The audit hook: every security-relevant event goes through `record_event`.

Events are added to the current database session, so they commit or roll back together with the change they
describe. When the session flushes them they are numbered and hash-chained under a lock (`chain`); signed
checkpoints over the chain's Merkle tree are made every so many events or minutes (`checkpoints`), and
`intake audit verify` checks all of it (`verify`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from typing import Any

from flask import g, has_request_context

from intake.core.audit import checkpoints as _checkpoints  # noqa: F401  (its commit hooks)
from intake.core.audit.chain import add_pending
from intake.core.audit.models import AuditCheckpoint, AuditEvent
from intake.core.db import db

__all__ = ["REASON_REQUIRED", "AuditAction", "AuditCheckpoint", "AuditEvent", "record_event"]


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
    TEAM_CHANGED = "team_changed"
    ACCOUNT_DEACTIVATED = "account_deactivated"
    ACCOUNT_REACTIVATED = "account_reactivated"
    TOKEN_CREATED = "token_created"  # noqa: S105 - an event name
    TOKEN_REVOKED = "token_revoked"  # noqa: S105 - an event name
    ACCESS_DENIED = "access_denied"
    PERSON_REGISTERED = "person_registered"
    IDENTITY_MATCH_CHECKED = "identity_match_checked"
    TESTIMONY_CREATED = "testimony_created"
    TESTIMONY_UPDATED = "testimony_updated"
    TESTIMONY_SUBMITTED = "testimony_submitted"
    INTERVIEW_NOT_HELD = "interview_not_held"
    RECORD_ACCESS_REFUSED = "record_access_refused"  # details name the parts asked for and why they were refused
    ATTACHMENT_STORED = "attachment_stored"
    RECORD_SHREDDED = "record_shredded"
    KEK_ROTATED = "kek_rotated"
    DATA_KEYS_REWRAPPED = "data_keys_rewrapped"
    KEK_RETIRED = "kek_retired"
    KEYRING_PASSPHRASE_CHANGED = "keyring_passphrase_changed"  # noqa: S105 - an event name
    KEYRING_BACKED_UP = "keyring_backed_up"
    RECORD_VIEWED = "record_viewed"  # details name the parts opened: content, identity, attachment, notes
    RECORDS_SEARCHED = "records_searched"
    RECORD_ANALYSED = "record_analysed"  # a reviewer's grade, status, coding, link, span or note (details: which)
    CONSENT_RECORDED = "consent_recorded"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    RECORD_ASSIGNED = "record_assigned"
    RECORD_UNASSIGNED = "record_unassigned"
    ACCESS_GRANTED = "access_granted"
    ACCESS_REVOKED = "access_revoked"
    RECIPIENT_REGISTERED = "recipient_registered"
    RECIPIENT_CHANGED = "recipient_changed"  # details name the fields changed, never their values
    CASE_CREATED = "case_created"
    CASE_MEMBER_ADDED = "case_member_added"
    CASE_MEMBER_REMOVED = "case_member_removed"
    CASE_RECORD_ADDED = "case_record_added"
    CASE_RECORD_REMOVED = "case_record_removed"
    EXPORT_REQUESTED = "export_requested"  # a share: the recipient and the records the build will read
    EXPORT_BUILT = "export_built"
    EXPORT_DOWNLOADED = "export_downloaded"
    EXPORT_CANCELLED = "export_cancelled"
    RECORD_SHARED = "record_shared"
    REIDENTIFIED = "reidentified"
    RETENTION_DISPOSED = "retention_disposed"
    AUDIT_VERIFIED = "audit_verified"
    AUDIT_SEARCHED = "audit_searched"
    AUDIT_HISTORY_VIEWED = "audit_history_viewed"
    AUDIT_EXTRACT_EXPORTED = "audit_extract_exported"


# Actions that mean nothing without the written reason of the person who took them.
REASON_REQUIRED = frozenset({
    AuditAction.REIDENTIFIED, AuditAction.ACCESS_GRANTED, AuditAction.ACCESS_REVOKED, AuditAction.RECORD_SHARED,
    AuditAction.RETENTION_DISPOSED,
})


# Keys that must never appear in audit details, whatever a caller passes.
_FORBIDDEN_DETAIL_KEYS = {"password", "code", "token", "secret", "totp", "passphrase", "narrative", "name"}
# Details are identifiers, names of fields and parts, and counts: short strings, whole numbers, flags.
_MAX_DETAIL_TEXT = 200
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MAX_REASON = 2000  # a written reason: a paragraph, not a document
_TARGET_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")


def _check_detail(key: str, value: Any) -> None:
    if value is None or isinstance(value, (bool, int)):
        return
    if isinstance(value, str):
        if len(value) > _MAX_DETAIL_TEXT:
            raise ValueError(f"audit detail {key!r} is longer than {_MAX_DETAIL_TEXT} characters")
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, (list, tuple, dict)):
                raise ValueError(f"audit detail {key!r} nests too deeply")
            _check_detail(key, item)
        return
    raise ValueError(f"audit detail {key!r} must be text, a whole number, a flag or a list of those")


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
    holds field names, counts and identifiers only; keys that could carry secrets or content are refused, and so
    are values other than short text, whole numbers, flags and flat lists of those. Actions in `REASON_REQUIRED`
    need a `reason`. The event gets its time, sequence number and hashes when the transaction commits.
    """
    details = dict(details or {})
    if not all(isinstance(key, str) for key in details):
        raise ValueError("audit detail keys are text")
    bad = _FORBIDDEN_DETAIL_KEYS.intersection(k.lower() for k in details)
    if bad:
        raise ValueError(f"audit details must not carry {sorted(bad)}")
    for key, value in details.items():
        _check_detail(key, value)
    if action in REASON_REQUIRED and not (reason and reason.strip()):
        raise ValueError(f"{action} needs the reason it was done for")
    if reason is not None and (_CONTROL.search(reason) or len(reason) > _MAX_REASON):
        raise ValueError(f"an audit reason is at most {_MAX_REASON} characters, without control characters other "
                         "than tabs and line breaks")
    if target_type is not None and not _TARGET_TYPE.fullmatch(target_type):
        raise ValueError("an audit target type is a lower-case name")
    target_ids = list(target_ids)
    if any(isinstance(t, str) and (len(t) > _MAX_DETAIL_TEXT or _CONTROL.search(t)) for t in target_ids):
        raise ValueError("audit target ids are short identifiers")
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
    add_pending(db.session(), event)
    return event
