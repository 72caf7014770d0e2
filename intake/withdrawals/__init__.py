"""Survivors' requests to withdraw consent, whole or per purpose, and to have their data erased: recorded by a
coordinator for any record, or by the interviewer for their own interviews, on pages and through the API.

Everything here reads only what is stored in clear: a record's pseudonym, status, dates, language, the consent
versions' grants and media, the withdrawals, and the audit events that say who received the record. No testimony
content and no identity is decrypted to record a withdrawal. The state changes are
`intake.consents.operations.record_withdrawal`'s; `withdraw` only checks what the record allows first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from intake.consents.models import ConsentRecord, ConsentWithdrawal
from intake.consents.operations import InputRefused, record_withdrawal, withdrawals_of
from intake.core.audit import AuditAction, AuditEvent, service
from intake.core.db import db
from intake.testimonies.models import Testimony

# Audit actions that mean the record left the service: an export that included it, or a share. Recipients of
# these have to be told of a withdrawal.
EXPORT_ACTIONS = frozenset({AuditAction.RECORD_SHARED, AuditAction.EXPORT_BUILT, AuditAction.EXPORT_DOWNLOADED})

# A pseudonym code as typed: letters and digits in groups joined by hyphens (e.g. KB-7F3Q-2K).
PSEUDONYM = re.compile(r"[A-Za-z0-9]{1,8}(?:-[A-Za-z0-9]{1,8}){0,3}")
MAX_PSEUDONYM = 16


class AlreadyErased(InputRefused):
    """The record was erased at the person's request: there is nothing left to withdraw."""

    def __init__(self) -> None:
        super().__init__({"": [_l("This record was erased at the person's request: there is nothing left to "
                                  "withdraw.")]})


@dataclass(frozen=True)
class ConsentSummary:
    number: int
    recorded_at: datetime
    script_language: str
    grants: dict[str, str]  # purpose -> disclosure level, purposes granted only
    media: list[str]


@dataclass(frozen=True)
class WithdrawalSummary:
    id: int
    at: datetime
    purposes: list[str]  # empty: every purpose
    received_how: str
    erasure: bool
    recorded_by: str | None


@dataclass(frozen=True)
class ExportMention:
    """An audit event saying the record left the service (the export feature records them)."""

    seq: int
    at: datetime
    action: str
    actor: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class RecordSummary:
    """What a withdrawal needs to know about a record, all of it stored in clear."""

    id: int
    pseudonym: str
    status: str
    interviewed_on: date | None
    language: str | None
    interviewer: str | None
    erased_at: datetime | None
    consents: list[ConsentSummary]
    withdrawals: list[WithdrawalSummary]
    exports: list[ExportMention]
    # Recipients who downloaded a case file holding the record: they have to be told of a withdrawal.
    delivered: list[Any] = field(default_factory=list)

    @property
    def erased(self) -> bool:
        return self.erased_at is not None

    @property
    def granted(self) -> list[str]:
        """The purposes the consent in force (the latest version) grants, in its order."""
        return list(self.consents[-1].grants) if self.consents else []

    @property
    def withdrawn_entirely(self) -> bool:
        return any(not w.purposes for w in self.withdrawals)

    @property
    def in_force(self) -> list[str]:
        """Granted purposes not withdrawn so far: what a further withdrawal can still take back."""
        if self.withdrawn_entirely:
            return []
        withdrawn = {p for w in self.withdrawals for p in w.purposes}
        return [p for p in self.granted if p not in withdrawn]


def find_by_pseudonym(code: str) -> list[Testimony]:
    """The testimonies filed under this pseudonym code (compared without regard to case), oldest first."""
    return list(db.session.scalars(
        sa.select(Testimony).where(sa.func.upper(Testimony.pseudonym) == code.strip().upper())
        .order_by(Testimony.id)))


def export_events(testimony_id: int) -> list[AuditEvent]:
    """The audit events saying this testimony was exported or shared, oldest first."""
    return [e for e in service.record_events("testimony", str(testimony_id)) if e.action in EXPORT_ACTIONS]


def summarise(testimony: Testimony, *, with_exports: bool = True) -> RecordSummary:
    from intake.exports.operations import shared_with

    consents = list(db.session.scalars(sa.select(ConsentRecord).where(ConsentRecord.testimony_id == testimony.id)
                                       .order_by(ConsentRecord.number)))
    withdrawals = withdrawals_of(testimony.id)
    exports = export_events(testimony.id) if with_exports else []
    names = service.usernames([testimony.interviewer_id, *(w.recorded_by_id for w in withdrawals),
                               *(e.actor_id for e in exports)])

    def name(account_id: int | None) -> str | None:
        return names.get(account_id) if account_id is not None else None

    return RecordSummary(
        id=testimony.id, pseudonym=testimony.pseudonym, status=testimony.status,
        interviewed_on=testimony.interviewed_on, language=testimony.language,
        interviewer=name(testimony.interviewer_id), erased_at=testimony.data_key.destroyed_at,
        consents=[ConsentSummary(c.number, c.recorded_at, c.script_language, dict(c.grants), list(c.media))
                  for c in consents],
        withdrawals=[WithdrawalSummary(w.id, w.at, list(w.purposes), w.received_how, w.erasure,
                                       name(w.recorded_by_id)) for w in withdrawals],
        exports=[ExportMention(e.seq, e.occurred_at, e.action, name(e.actor_id), dict(e.details or {}))
                 for e in exports],
        delivered=shared_with(testimony.id) if with_exports else [],
    )


def withdraw(testimony: Testimony, *, purposes: Iterable[str], received_how: str, erasure: bool, actor: Any,
             config: Any) -> ConsentWithdrawal:
    """Record the person's withdrawal (and erasure, when asked) from now on.

    Refuses (`InputRefused`, nothing written) purposes the consent in force does not grant, and any request about a
    record already erased (`AlreadyErased`); the rest is checked by `record_withdrawal`.
    """
    if testimony.data_key.destroyed_at is not None:
        raise AlreadyErased()
    chosen = list(purposes)
    latest = db.session.scalar(sa.select(ConsentRecord).where(ConsentRecord.testimony_id == testimony.id)
                               .order_by(ConsentRecord.number.desc()).limit(1))
    granted = set(latest.grants) if latest is not None else set()
    if not set(chosen) <= granted:
        raise InputRefused.one("purposes", _l("Choose among the purposes the consent covers."))
    return record_withdrawal(testimony, purposes=chosen, received_how=received_how, erasure=erasure, actor=actor,
                             config=config)
