"""Which testimonies a reviewer may see, and the queue's filters, as SQL conditions on the clear columns only."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm

from intake.accounts.models import Account
from intake.consents.operations import documentation_allowed_clause
from intake.core.access.models import AccessGrant, Assignment
from intake.core.crypto.models import DataKey
from intake.core.db import db, utcnow
from intake.testimonies.models import Attachment, Incident, Testimony, TestimonyStatus

PAGE_SIZE = 50  # records on a page of the reviewer's queue


def _found(query: sa.Select[Any]) -> sa.ColumnElement[bool]:
    """Whether `query` (correlated to the testimony) finds a row, written as a scalar subquery rather than EXISTS:
    PostgreSQL then probes the index once for each testimony it reads, instead of first hashing every row the
    subquery could return (a reviewer may have tens of thousands of assignments) before a page of 50 is read."""
    return query.limit(1).scalar_subquery().is_not(None)


def reviewable(account: Account, policy: str) -> sa.ColumnElement[bool]:
    """Submitted testimonies `account` may review: assigned, granted and not expired or revoked, or (policy `team`)
    recorded by an interviewer of its team; never an erased one, nor one whose consent to documentation no longer
    stands (`documentation_allowed_clause`, what `open_record` would refuse)."""
    assigned = _found(sa.select(Assignment.id).where(Assignment.testimony_id == Testimony.id,
                                                     Assignment.reviewer_id == account.id))
    granted = _found(sa.select(AccessGrant.id).where(
        AccessGrant.testimony_id == Testimony.id, AccessGrant.account_id == account.id,
        AccessGrant.revoked_at.is_(None), AccessGrant.expires_at > utcnow()))
    ways: list[sa.ColumnElement[bool]] = [assigned, granted]
    if policy == "team" and account.team:
        ways.append(_found(sa.select(Account.id).where(Account.id == Testimony.interviewer_id,
                                                       Account.team == account.team)))
    erased = sa.exists().where(DataKey.id == Testimony.data_key_id, DataKey.destroyed_at.is_not(None))
    return sa.and_(Testimony.status != TestimonyStatus.DRAFT.value, ~erased, sa.or_(*ways),
                   documentation_allowed_clause(Testimony.id))


def _incident_conditions(chosen: dict[str, str | None]) -> list[sa.ColumnElement[bool]]:
    found: list[sa.ColumnElement[bool]] = []
    if chosen.get("incident_type"):
        found.append(Incident.type == chosen["incident_type"])
    if chosen.get("month"):
        found.append(Incident.month == chosen["month"])
    if chosen.get("region"):
        found.append(Incident.region == chosen["region"])
    return found


def filtered(chosen: dict[str, str | None], *, incidents: bool = True) -> list[sa.ColumnElement[bool]]:
    """The conditions of the queue's filters on the testimony; the incident fields must all match one incident
    (left out with `incidents=False`, when `matching_incidents` drives the query instead)."""
    where: list[sa.ColumnElement[bool]] = []
    if chosen.get("status"):
        where.append(Testimony.status == chosen["status"])
    if chosen.get("language"):
        where.append(Testimony.language == chosen["language"])
    if chosen.get("team"):
        where.append(sa.exists().where(Account.id == Testimony.interviewer_id, Account.team == chosen["team"]))
    incident = _incident_conditions(chosen)
    if incident and incidents:
        where.append(sa.exists().where(Incident.testimony_id == Testimony.id, *incident))
    return where


def matching_incidents(chosen: dict[str, str | None]) -> sa.Subquery | None:
    """When an incident type is chosen: the testimony ids with an incident matching the incident fields, each once,
    newest first, as a subquery to join the testimonies to (see `page`). None otherwise.

    Read from the incidents' (type, region, testimony_id) or (type, month, region, testimony_id) index, in id
    order where the filters fix the columns before it, it lets PostgreSQL stop once a page is full instead of
    checking every matching testimony before sorting them: a rare type stays as quick as a common one.
    Without a type the testimonies are read newest first, and the condition of `filtered` checks each."""
    if not chosen.get("incident_type"):
        return None
    return (sa.select(Incident.testimony_id).where(*_incident_conditions(chosen)).distinct()
            .order_by(Incident.testimony_id.desc()).subquery("matching"))


def page(where: list[sa.ColumnElement[bool]], before: int | None, limit: int,
         matching: sa.Subquery | None = None) -> sa.Select[Testimony]:
    """Testimonies matching `where` (and among `matching`, when given), newest first and older than `before`,
    at most `limit` of them; loaded without their sealed columns and data key, which a list of records never
    shows (read on access, if ever)."""
    query = sa.select(Testimony).options(orm.defer(Testimony.narrative), orm.defer(Testimony.details),
                                         orm.lazyload(Testimony.data_key))
    if matching is not None:
        query = query.join(matching, matching.c.testimony_id == Testimony.id)
    query = query.where(*where).order_by(Testimony.id.desc()).limit(limit)
    if before is not None:
        query = query.where(Testimony.id < before)
        if matching is not None:  # said of the subquery's column too, so that its index scan starts there
            query = query.where(matching.c.testimony_id < before)
    return query


def queue_page(account: Account, policy: str, chosen: dict[str, str | None],
               before: int | None) -> tuple[list[Testimony], bool]:
    """One page of the reviewer's queue, for the pages and the API alike: up to PAGE_SIZE testimonies `account`
    may review that match the filters `chosen`, newest first and older than `before`, in one query; and whether
    older ones exist."""
    size = PAGE_SIZE
    matching = matching_incidents(chosen)
    where = [reviewable(account, policy), *filtered(chosen, incidents=matching is None)]
    found = list(db.session.scalars(page(where, before, size + 1, matching)))
    return found[:size], len(found) > size


def listed_classification(ids: list[int]) -> tuple[dict[int, list[str]], dict[int, int]]:
    """For the listed testimonies `ids`: their incident types (codes, each once, in the order told) and how many
    attachments each has."""
    types: dict[int, list[str]] = {i: [] for i in ids}
    counts: dict[int, int] = {}
    if ids:
        for testimony_id, kind in db.session.execute(
                sa.select(Incident.testimony_id, Incident.type).where(Incident.testimony_id.in_(ids))
                .order_by(Incident.id)):
            if kind not in types[testimony_id]:
                types[testimony_id].append(kind)
        counts = {testimony_id: int(n) for testimony_id, n in db.session.execute(
            sa.select(Attachment.testimony_id, sa.func.count(Attachment.id)).where(Attachment.testimony_id.in_(ids))
            .group_by(Attachment.testimony_id))}
    return types, counts
