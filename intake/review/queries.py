"""Which testimonies a reviewer may see, and the queue's filters, as SQL conditions on the clear columns only."""

from __future__ import annotations

import sqlalchemy as sa

from intake.accounts.models import Account
from intake.core.access.models import AccessGrant, Assignment
from intake.core.crypto.models import DataKey
from intake.core.db import utcnow
from intake.testimonies.models import Incident, Testimony, TestimonyStatus


def reviewable(account: Account, policy: str) -> sa.ColumnElement[bool]:
    """Submitted testimonies `account` may review: assigned, granted and not expired or revoked, or (policy `team`)
    recorded by an interviewer of its team; never an erased one."""
    assigned = sa.exists().where(Assignment.testimony_id == Testimony.id, Assignment.reviewer_id == account.id)
    granted = sa.exists().where(AccessGrant.testimony_id == Testimony.id, AccessGrant.account_id == account.id,
                                AccessGrant.revoked_at.is_(None), AccessGrant.expires_at > utcnow())
    ways: list[sa.ColumnElement[bool]] = [assigned, granted]
    if policy == "team" and account.team:
        ways.append(sa.exists().where(Account.id == Testimony.interviewer_id, Account.team == account.team))
    erased = sa.exists().where(DataKey.id == Testimony.data_key_id, DataKey.destroyed_at.is_not(None))
    return sa.and_(Testimony.status != TestimonyStatus.DRAFT.value, ~erased, sa.or_(*ways))


def filtered(chosen: dict[str, str | None]) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if chosen["status"]:
        where.append(Testimony.status == chosen["status"])
    if chosen["language"]:
        where.append(Testimony.language == chosen["language"])
    incident: list[sa.ColumnElement[bool]] = []
    if chosen["incident_type"]:
        incident.append(Incident.type == chosen["incident_type"])
    if chosen["month"]:
        incident.append(Incident.month == chosen["month"])
    if chosen["region"]:
        incident.append(Incident.region == chosen["region"])
    if incident:
        where.append(sa.exists().where(Incident.testimony_id == Testimony.id, *incident))
    return where
