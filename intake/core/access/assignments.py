"""Assigning testimonies to reviewers and granting access beyond assignments, with a reason and an expiry.

These operations change the session and write audit events; they never commit. `may_review` is what the access
decision asks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from intake.accounts.models import Account
from intake.consents.operations import InputRefused
from intake.core.access.models import AccessGrant, Assignment
from intake.core.audit import AuditAction, record_event
from intake.core.db import db, utcnow
from intake.core.security import Permission

POLICIES = ("assigned", "team")
MAX_REASON = 2000


def may_review(account: Any, testimony: Any, *, policy: str) -> bool:
    """Whether `account` has this testimony to review: assigned, granted and not expired or revoked, or (policy
    `team`) recorded by someone of the reviewer's team."""
    assigned = db.session.scalar(sa.select(Assignment.id).where(Assignment.testimony_id == testimony.id,
                                                                Assignment.reviewer_id == account.id))
    if assigned is not None:
        return True
    now = utcnow()
    granted = db.session.scalar(sa.select(AccessGrant.id).where(
        AccessGrant.testimony_id == testimony.id, AccessGrant.account_id == account.id,
        AccessGrant.revoked_at.is_(None), AccessGrant.expires_at > now))
    if granted is not None:
        return True
    if policy == "team" and account.team:
        team = db.session.scalar(sa.select(Account.team).where(Account.id == testimony.interviewer_id))
        return team is not None and team == account.team
    return False


def _reviewer(account: Account) -> None:
    if not account.is_active or not account.has_permission(Permission.REVIEW_RECORDS):
        raise InputRefused.one("reviewer", _l("Choose an active reviewer."))


def assign(testimony: Any, reviewer: Account, *, actor: Any) -> Assignment:
    """Give the testimony to `reviewer` (nothing changes if it already is)."""
    _reviewer(reviewer)
    existing: Assignment | None = db.session.scalar(sa.select(Assignment).where(
        Assignment.testimony_id == testimony.id, Assignment.reviewer_id == reviewer.id))
    if existing is not None:
        return existing
    assignment = Assignment(testimony_id=testimony.id, reviewer_id=reviewer.id, assigned_at=utcnow(),
                            assigned_by_id=getattr(actor, "id", None))
    db.session.add(assignment)
    db.session.flush()
    record_event(AuditAction.RECORD_ASSIGNED, actor=actor, target_type="testimony", target_ids=[testimony.id],
                 details={"reviewer": reviewer.id})
    return assignment


def unassign(testimony: Any, reviewer: Account, *, actor: Any) -> None:
    found = db.session.scalar(sa.select(Assignment).where(Assignment.testimony_id == testimony.id,
                                                          Assignment.reviewer_id == reviewer.id))
    if found is None:
        return
    db.session.delete(found)
    record_event(AuditAction.RECORD_UNASSIGNED, actor=actor, target_type="testimony", target_ids=[testimony.id],
                 details={"reviewer": reviewer.id})


def _reason(reason: str) -> str:
    text = " ".join(reason.split())
    if not text:
        raise InputRefused.one("reason", _l("Give the reason for this access. Do not put names or other "
                                            "identifying details in it: it is kept in the audit log."))
    if len(text) > MAX_REASON:
        raise InputRefused.one("reason", _l("This is too long: at most %(limit)d characters.", limit=MAX_REASON))
    return text


def grant_access(testimony: Any, account: Account, *, reason: str, expires_at: datetime, actor: Any) -> AccessGrant:
    """Let `account` review this testimony until `expires_at`, for `reason` (audited with it)."""
    _reviewer(account)
    text = _reason(reason)
    now = utcnow()
    if expires_at <= now:
        raise InputRefused.one("expires_at", _l("The access must end in the future."))
    grant = AccessGrant(testimony_id=testimony.id, account_id=account.id, reason=text, granted_at=now,
                        expires_at=expires_at, granted_by_id=getattr(actor, "id", None))
    db.session.add(grant)
    db.session.flush()
    record_event(AuditAction.ACCESS_GRANTED, actor=actor, target_type="testimony", target_ids=[testimony.id],
                 reason=text, details={"account": account.id, "grant": grant.id,
                                       "expires_at": expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")})
    return grant


def revoke_access(grant: AccessGrant, *, reason: str, actor: Any) -> None:
    """End a grant now (nothing changes if it already ended)."""
    text = _reason(reason)
    if grant.revoked_at is not None:
        return
    grant.revoked_at = utcnow()
    grant.revoked_by_id = getattr(actor, "id", None)
    record_event(AuditAction.ACCESS_REVOKED, actor=actor, target_type="testimony", target_ids=[grant.testimony_id],
                 reason=text, details={"account": grant.account_id, "grant": grant.id})
