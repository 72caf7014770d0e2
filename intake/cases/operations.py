"""What a legal team does with its cases: create them, add members, add testimonies and incidents (only those whose
consent permits at least one legal purpose), and remove them. Each change is audited and never committed here."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from consent.records import Recipient as PolicyRecipient
from intake.accounts.models import Account
from intake.cases.models import Case, CaseMember, CaseRecord
from intake.consents.operations import InputRefused, current_consent
from intake.core.audit import AuditAction, record_event
from intake.core.db import db, utcnow
from intake.core.security import Permission
from intake.recipients.models import LEGAL_PURPOSES, Recipient
from intake.testimonies.models import Incident, Testimony, TestimonyStatus

MAX_TITLE = 200
MAX_REFERENCE = 60
# Consent exclusions name organisations and countries; this stands for a recipient none of them names, to ask
# whether a purpose is granted at all.
_UNNAMED = PolicyRecipient(key="")


class NotAMember(Exception):
    """The account is not a member of the case (a 404: a case's existence is not told to outsiders)."""


def legal_use_allowed(testimony_id: int) -> bool:
    """Whether the testimony's consent, as it stands now, permits at least one legal purpose for some recipient."""
    from consent.policy import decide

    consent = current_consent(testimony_id)
    now = utcnow()
    return any(decide(consent, purpose, _UNNAMED, now).allowed for purpose in LEGAL_PURPOSES)


def in_members_case(account: Any, testimony_id: int) -> bool:
    """Whether `account` is a member of a case holding the testimony."""
    return db.session.scalar(
        sa.select(CaseRecord.id).join(CaseMember, CaseMember.case_id == CaseRecord.case_id)
        .where(CaseRecord.testimony_id == testimony_id, CaseMember.account_id == account.id).limit(1)
    ) is not None


def cases_of(account: Any) -> list[Case]:
    return list(db.session.scalars(
        sa.select(Case).join(CaseMember, CaseMember.case_id == Case.id).where(CaseMember.account_id == account.id)
        .order_by(Case.created_at.desc(), Case.id.desc())))


def case_for_member(case_id: int, account: Any) -> Case:
    """The case, if `account` is one of its members (`NotAMember` otherwise)."""
    case = db.session.scalar(
        sa.select(Case).join(CaseMember, CaseMember.case_id == Case.id)
        .where(Case.id == case_id, CaseMember.account_id == account.id))
    if case is None:
        raise NotAMember(case_id)
    return case


def members(case: Case) -> list[Account]:
    return list(db.session.scalars(
        sa.select(Account).join(CaseMember, CaseMember.account_id == Account.id)
        .where(CaseMember.case_id == case.id).order_by(Account.username)))


def case_testimony_ids(case_id: int) -> list[int]:
    """The testimonies in the case, in the order they were first added."""
    rows = db.session.execute(
        sa.select(CaseRecord.testimony_id, sa.func.min(CaseRecord.id).label("first"))
        .where(CaseRecord.case_id == case_id).group_by(CaseRecord.testimony_id).order_by("first"))
    return [testimony_id for testimony_id, _ in rows]


def case_incident_ids(case_id: int) -> dict[int, list[int]]:
    """Per testimony, the incidents added on their own (a testimony added whole has none listed)."""
    found: dict[int, list[int]] = {}
    for testimony_id, incident_id in db.session.execute(
            sa.select(CaseRecord.testimony_id, CaseRecord.incident_id)
            .where(CaseRecord.case_id == case_id, CaseRecord.incident_id.is_not(None)).order_by(CaseRecord.id)):
        if incident_id is not None:
            found.setdefault(testimony_id, []).append(incident_id)
    return found


def _legal_officer(account: Account) -> None:
    if not account.is_active or not account.has_permission(Permission.BUILD_CASE_FILES):
        raise InputRefused.one("account", _l("Choose an active member of a legal team."))


def create_case(reference: str, title: str, *, recipient: Recipient | None, actor: Account) -> Case:
    reference, title = reference.strip(), title.strip()
    problems: dict[str, list[Any]] = {}
    if not reference:
        problems.setdefault("reference", []).append(_l("Give the case a reference."))
    elif len(reference) > MAX_REFERENCE:
        problems.setdefault("reference", []).append(_l("Use at most %(count)s characters.", count=MAX_REFERENCE))
    elif db.session.scalar(sa.select(Case.id).where(Case.reference == reference)) is not None:
        problems.setdefault("reference", []).append(_l("Another case already has this reference."))
    if not title:
        problems.setdefault("title", []).append(_l("Give the case a title."))
    elif len(title) > MAX_TITLE:
        problems.setdefault("title", []).append(_l("Use at most %(count)s characters.", count=MAX_TITLE))
    if recipient is not None and not recipient.active:
        problems.setdefault("recipient", []).append(_l("This recipient is no longer active."))
    if problems:
        raise InputRefused(problems)
    case = Case(reference=reference, title=title, recipient_id=recipient.id if recipient else None,
                created_at=utcnow(), created_by_id=actor.id)
    db.session.add(case)
    db.session.flush()
    db.session.add(CaseMember(case_id=case.id, account_id=actor.id, added_at=utcnow(), added_by_id=actor.id))
    record_event(AuditAction.CASE_CREATED, actor=actor, target_type="case", target_ids=[case.id],
                 details={"recipient": recipient.id if recipient else None})
    return case


def add_member(case: Case, account: Account, *, actor: Account) -> CaseMember:
    _legal_officer(account)
    existing: CaseMember | None = db.session.scalar(sa.select(CaseMember).where(
        CaseMember.case_id == case.id, CaseMember.account_id == account.id))
    if existing is not None:
        return existing
    member = CaseMember(case_id=case.id, account_id=account.id, added_at=utcnow(), added_by_id=actor.id)
    db.session.add(member)
    record_event(AuditAction.CASE_MEMBER_ADDED, actor=actor, target_type="case", target_ids=[case.id],
                 details={"account": account.id})
    return member


def remove_member(case: Case, account_id: int, *, actor: Account) -> None:
    member = db.session.scalar(sa.select(CaseMember).where(CaseMember.case_id == case.id,
                                                           CaseMember.account_id == account_id))
    if member is None:
        raise InputRefused.one("account", _l("This person is not a member of the case."))
    if db.session.scalar(sa.select(sa.func.count()).where(CaseMember.case_id == case.id)) == 1:
        raise InputRefused.one("account", _l("A case needs at least one member."))
    db.session.delete(member)
    record_event(AuditAction.CASE_MEMBER_REMOVED, actor=actor, target_type="case", target_ids=[case.id],
                 details={"account": account_id})


def _eligible(testimony: Testimony | None) -> Testimony:
    """The testimony, if it may go into a case; the refusal says why not without telling more than that."""
    if testimony is None or testimony.status == TestimonyStatus.DRAFT or testimony.data_key.destroyed_at is not None:
        raise InputRefused.one("pseudonym", _l("No submitted record has this code."))
    if not legal_use_allowed(testimony.id):
        raise InputRefused.one("pseudonym", _l(
            "This person's consent does not permit any legal use of their testimony, so it cannot be added."))
    return testimony


def find_testimony(pseudonym: str) -> Testimony | None:
    """The latest submitted testimony given under this pseudonym (a person may have given more than one)."""
    return db.session.scalar(
        sa.select(Testimony).where(Testimony.pseudonym == pseudonym.strip().upper(),
                                   Testimony.status != TestimonyStatus.DRAFT)
        .order_by(Testimony.submitted_at.desc(), Testimony.id.desc()).limit(1))


def add_testimony(case: Case, testimony: Testimony | None, *, actor: Account) -> CaseRecord:
    """Add the whole testimony (nothing changes if it is in the case already)."""
    found = _eligible(testimony)
    existing: CaseRecord | None = db.session.scalar(sa.select(CaseRecord).where(
        CaseRecord.case_id == case.id, CaseRecord.testimony_id == found.id, CaseRecord.incident_id.is_(None)))
    if existing is not None:
        return existing
    row = CaseRecord(case_id=case.id, testimony_id=found.id, added_at=utcnow(), added_by_id=actor.id)
    db.session.add(row)
    record_event(AuditAction.CASE_RECORD_ADDED, actor=actor, target_type="testimony", target_ids=[found.id],
                 details={"case": case.id})
    return row


def add_incident(case: Case, incident: Incident | None, *, actor: Account) -> CaseRecord:
    """Add one incident of a testimony (and so the testimony, for what concerns that incident)."""
    if incident is None:
        raise InputRefused.one("incident", _l("No incident has this number."))
    found = _eligible(incident.testimony)
    existing: CaseRecord | None = db.session.scalar(sa.select(CaseRecord).where(
        CaseRecord.case_id == case.id, CaseRecord.incident_id == incident.id))
    if existing is not None:
        return existing
    row = CaseRecord(case_id=case.id, testimony_id=found.id, incident_id=incident.id, added_at=utcnow(),
                     added_by_id=actor.id)
    db.session.add(row)
    record_event(AuditAction.CASE_RECORD_ADDED, actor=actor, target_type="testimony", target_ids=[found.id],
                 details={"case": case.id, "incident": incident.id})
    return row


def remove_testimony(case: Case, testimony_id: int, *, actor: Account) -> None:
    """Take the testimony (and any of its incidents) out of the case."""
    rows = list(db.session.scalars(sa.select(CaseRecord).where(CaseRecord.case_id == case.id,
                                                               CaseRecord.testimony_id == testimony_id)))
    if not rows:
        raise InputRefused.one("", _l("This record is not in the case."))
    for row in rows:
        db.session.delete(row)
    record_event(AuditAction.CASE_RECORD_REMOVED, actor=actor, target_type="testimony", target_ids=[testimony_id],
                 details={"case": case.id})
