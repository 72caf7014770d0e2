"""The one way testimony is read: decide who may open which parts of a record, decrypt only those, and append the
audit event in the same transaction (DESIGN invariant 4).

`open_record` is what pages, the API and the CLI call to read a testimony, its incidents, its person's identity,
its consent particulars or its attachments' details. It applies `decide`, raises `AccessRefused` (after recording
the refusal) when nothing may be opened, and returns a `RecordView` holding only the parts allowed.

Who may open what:
- the interviewer who recorded a testimony, everything but the reviewers' analysis, while it is a draft and during
  its correction window afterwards;
- a reviewer, the content, attachments and analysis (never the identity nor the consent's particulars) of a
  submitted testimony assigned or granted to them, or recorded by their team when `REVIEW_ASSIGNMENT_POLICY` is
  `team`;
- a member of a legal team's case, the content and attachments (never the identity, the consent's particulars nor
  the analysis) of the submitted testimonies in that case whose consent permits at least one legal purpose;
- a coordinator, with a written reason, the identity alone to re-identify the person, or everything the person
  gave (not the analysis) to answer their request for a copy of their own data.
Each only as long as the consent to documentation stands, except the survivor's copy; never after erasure.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NoReturn

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import Forbidden

from intake.core.access.analysis import AnalysisView, read_analysis
from intake.core.audit import AuditAction, record_event
from intake.core.crypto.datakeys import open_data_key
from intake.core.crypto.fields import Tombstone, open_value
from intake.core.db import db, utcnow
from intake.core.security import Permission


class Part(enum.StrEnum):
    CONTENT = "content"  # narrative, interview details, incidents
    IDENTITY = "identity"  # the person's identity document
    CONSENT = "consent"  # the sealed particulars of the consent (witness, interpreter, follow-up, note)
    ATTACHMENTS = "attachments"  # attachments' details (file name, type, size, SHA-256)
    NOTES = "notes"  # the reviewers' analysis: coding, grades, verification, links, spans and analyst notes


ALL_PARTS = frozenset(Part)
# What the interviewer who recorded a testimony may open: everything they were told, never the analysis of it.
INTERVIEWER_PARTS = ALL_PARTS - {Part.NOTES}


class Reason(enum.StrEnum):
    ALLOWED = "allowed"
    NO_PERMISSION = "no_permission"
    NOT_OWN = "not_own"
    ERASED = "erased"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    WINDOW_CLOSED = "correction_window_closed"
    NOT_SUBMITTED = "not_submitted"
    NOT_ASSIGNED = "not_assigned"
    NO_REASON = "no_reason"
    MEDIUM_NOT_CONSENTED = "medium_not_consented"
    NOT_IN_CASE = "not_in_case"
    NO_LEGAL_PURPOSE = "no_legal_purpose"


@dataclass(frozen=True)
class AccessDecision:
    allowed: bool
    parts: frozenset[Part]
    reason: Reason


REFUSALS: dict[Reason, Any] = {
    Reason.NO_PERMISSION: _l("Your role does not give access to testimony."),
    Reason.NOT_OWN: _l("Only the interviewer who recorded this interview can open it."),
    Reason.ERASED: _l("This record was erased at the person's request."),
    Reason.CONSENT_WITHDRAWN: _l("The person withdrew their consent, so this record can no longer be opened."),
    Reason.WINDOW_CLOSED: _l("The time for corrections has ended, so this interview is locked. Ask a coordinator "
                             "if something must be corrected."),
    Reason.NOT_SUBMITTED: _l("This interview has not been submitted yet."),
    Reason.NOT_ASSIGNED: _l("This record is not assigned to you. Ask a coordinator if you need it for your work."),
    Reason.NOT_IN_CASE: _l("This record is not in any case you are a member of."),
    Reason.NO_LEGAL_PURPOSE: _l("The person's consent no longer permits any legal use of this record."),
    Reason.NO_REASON: _l("Write down why you need to open this record."),
    Reason.MEDIUM_NOT_CONSENTED: _l("The person's consent no longer covers this kind of file."),
}
# What a reviewer may ever open: never who the person is, nor the consent's particulars.
REVIEWER_PARTS = frozenset({Part.CONTENT, Part.ATTACHMENTS, Part.NOTES})
# What a member of a case may open of its records in the service: who the person is goes only into an export, at
# the disclosure their consent gave the recipient.
LEGAL_PARTS = frozenset({Part.CONTENT, Part.ATTACHMENTS})


class CoordinatorPurpose(enum.StrEnum):
    """Why a coordinator opens a record; each needs a written reason and a fresh two-factor code."""

    REIDENTIFICATION = "reidentification"  # who the person is, when there is a written reason to contact them
    SURVIVOR_COPY = "survivor_copy"  # the person's own data, for their request to see it


COORDINATOR_PARTS: dict[str, frozenset[Part]] = {
    CoordinatorPurpose.REIDENTIFICATION: frozenset({Part.IDENTITY}),
    CoordinatorPurpose.SURVIVOR_COPY: frozenset({Part.CONTENT, Part.IDENTITY, Part.CONSENT, Part.ATTACHMENTS}),
}


class AccessRefused(Forbidden):
    """The record may not be opened (a 403 saying why).

    The refusal is audited: `open_record` records it, and since raising rolls the request's transaction back,
    `intake.core.web.transactional` records it again (`record_refusal`) in a transaction of its own and commits it.
    """

    def __init__(self, decision: AccessDecision, *, actor: Any, testimony_id: int, asked: frozenset[Part],
                 purpose: str) -> None:
        super().__init__(description=str(REFUSALS.get(decision.reason, REFUSALS[Reason.NO_PERMISSION])))
        self.decision = decision
        self.actor = actor
        self.testimony_id = testimony_id
        self.asked = asked
        self.purpose = purpose

    def record_refusal(self) -> None:
        _record_refusal(self.actor, self.testimony_id, self.asked, self.decision.reason, self.purpose)


def _record_refusal(actor: Any, testimony_id: int, asked: frozenset[Part], reason: Reason, purpose: str) -> None:
    record_event(AuditAction.RECORD_ACCESS_REFUSED, actor=actor, target_type="testimony", target_ids=[testimony_id],
                 details={"parts": sorted(asked), "why": reason.value, "purpose": purpose})


@dataclass(frozen=True)
class IncidentView:
    id: int
    type: str
    month: str | None
    region: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class AttachmentView:
    id: int
    medium: str
    graphic: bool
    created_at: datetime
    details: dict[str, Any]


@dataclass(frozen=True)
class ConsentView:
    number: int
    recorded_at: datetime
    script_language: str
    script_hash: str
    method: str
    grants: dict[str, str]
    media: list[str]
    exclusions: list[list[str]]
    is_minor: bool
    follow_up_permitted: bool
    review_date: date | None
    particulars: dict[str, Any] | None  # None unless the consent part was opened


@dataclass
class RecordView:
    """What one account may see of one testimony; parts not opened are None or empty."""

    id: int
    pseudonym: str
    status: str
    language: str | None
    interviewed_on: date | None
    submitted_at: datetime | None
    revision: int
    parts: frozenset[Part]
    narrative: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    incidents: list[IncidentView] = field(default_factory=list)
    identity: dict[str, Any] | None = None
    consent: ConsentView | None = None
    attachments: list[AttachmentView] = field(default_factory=list)
    analysis: AnalysisView | None = None


def _deadline(testimony: Any, config: Any) -> datetime | None:
    from intake.interviews.operations import correction_deadline

    return correction_deadline(testimony, config)


def decide(account: Any, testimony: Any, wanted: Iterable[Part], *, config: Any,
           purpose: str = "interview") -> AccessDecision:
    """Which of `wanted` `account` may open in `testimony` for `purpose`, and why (nothing is read or recorded)."""
    from intake.consents.operations import documentation_allowed
    from intake.testimonies.models import TestimonyStatus

    asked = frozenset(wanted)
    if purpose in COORDINATOR_PARTS:
        return _decide_for_coordinator(account, testimony, asked, purpose)
    if account is not None and account.has_permission(Permission.REVIEW_RECORDS):
        return _decide_for_reviewer(account, testimony, asked, config=config)
    if account is not None and account.has_permission(Permission.BUILD_CASE_FILES):
        return _decide_for_legal(account, testimony, asked)
    if account is None or not account.has_permission(Permission.RECORD_INTERVIEWS):
        return AccessDecision(False, frozenset(), Reason.NO_PERMISSION)
    if testimony.interviewer_id != account.id:
        return AccessDecision(False, frozenset(), Reason.NOT_OWN)
    if testimony.data_key.destroyed_at is not None:
        return AccessDecision(False, frozenset(), Reason.ERASED)
    if not documentation_allowed(testimony.id).allowed:
        return AccessDecision(False, frozenset(), Reason.CONSENT_WITHDRAWN)
    if testimony.status != TestimonyStatus.DRAFT:
        deadline = _deadline(testimony, config)
        if testimony.status != TestimonyStatus.SUBMITTED or deadline is None or utcnow() >= deadline:
            return AccessDecision(False, frozenset(), Reason.WINDOW_CLOSED)
    parts = asked & INTERVIEWER_PARTS
    if not parts:
        return AccessDecision(False, frozenset(), Reason.NO_PERMISSION)
    return AccessDecision(True, parts, Reason.ALLOWED)


def _decide_for_coordinator(account: Any, testimony: Any, asked: frozenset[Part], purpose: str) -> AccessDecision:
    """A coordinator re-identifies a person, or gathers a survivor's own data for them: only for those purposes
    (with a written reason, which `open_record` requires) and while the record is not erased. Re-identification also
    needs the consent to documentation to stand; a survivor may ask for their copy after withdrawing it."""
    from intake.consents.operations import documentation_allowed

    if account is None or not account.has_permission(Permission.COORDINATE):
        return AccessDecision(False, frozenset(), Reason.NO_PERMISSION)
    if testimony.data_key.destroyed_at is not None:
        return AccessDecision(False, frozenset(), Reason.ERASED)
    if purpose == CoordinatorPurpose.REIDENTIFICATION and not documentation_allowed(testimony.id).allowed:
        return AccessDecision(False, frozenset(), Reason.CONSENT_WITHDRAWN)
    parts = asked & COORDINATOR_PARTS[purpose]
    if not parts:
        return AccessDecision(False, frozenset(), Reason.NO_PERMISSION)
    return AccessDecision(True, parts, Reason.ALLOWED)


def _decide_for_reviewer(account: Any, testimony: Any, asked: frozenset[Part], *, config: Any) -> AccessDecision:
    """A reviewer opens content and attachments of submitted testimony assigned to them, granted to them, or (when
    `REVIEW_ASSIGNMENT_POLICY` is `team`) recorded by their team; never an identity."""
    from intake.consents.operations import documentation_allowed
    from intake.core.access.assignments import may_review
    from intake.testimonies.models import TestimonyStatus

    # Whether the record is theirs to review comes first: a reviewer learns nothing of the state of others' records.
    if not may_review(account, testimony, policy=config["REVIEW_ASSIGNMENT_POLICY"]):
        return AccessDecision(False, frozenset(), Reason.NOT_ASSIGNED)
    if testimony.data_key.destroyed_at is not None:
        return AccessDecision(False, frozenset(), Reason.ERASED)
    if testimony.status == TestimonyStatus.DRAFT:
        return AccessDecision(False, frozenset(), Reason.NOT_SUBMITTED)
    if not documentation_allowed(testimony.id).allowed:
        return AccessDecision(False, frozenset(), Reason.CONSENT_WITHDRAWN)
    parts = asked & REVIEWER_PARTS
    if not parts:
        return AccessDecision(False, frozenset(), Reason.NO_PERMISSION)
    return AccessDecision(True, parts, Reason.ALLOWED)


def _decide_for_legal(account: Any, testimony: Any, asked: frozenset[Part]) -> AccessDecision:
    """A legal team's member opens the content and attachments of submitted testimonies in one of their cases, as
    long as the consent permits documentation and at least one legal purpose; never an identity."""
    from intake.cases.operations import in_members_case, legal_use_allowed
    from intake.testimonies.models import TestimonyStatus

    # As for reviewers, membership comes first: a legal officer learns nothing of records outside their cases.
    if not in_members_case(account, testimony.id):
        return AccessDecision(False, frozenset(), Reason.NOT_IN_CASE)
    if testimony.data_key.destroyed_at is not None:
        return AccessDecision(False, frozenset(), Reason.ERASED)
    if testimony.status == TestimonyStatus.DRAFT:
        return AccessDecision(False, frozenset(), Reason.NOT_SUBMITTED)
    if not legal_use_allowed(testimony.id):
        return AccessDecision(False, frozenset(), Reason.NO_LEGAL_PURPOSE)
    parts = asked & LEGAL_PARTS
    if not parts:
        return AccessDecision(False, frozenset(), Reason.NO_PERMISSION)
    return AccessDecision(True, parts, Reason.ALLOWED)


def refuse(account: Any, testimony: Any, reason: Reason, *, asked: Iterable[Part], purpose: str) -> NoReturn:
    """Record that `account` was refused `testimony` for `reason`, and raise `AccessRefused`."""
    wanted = frozenset(asked)
    _record_refusal(account, testimony.id, wanted, reason, purpose)
    raise AccessRefused(AccessDecision(False, frozenset(), reason), actor=account, testimony_id=testimony.id,
                        asked=wanted, purpose=purpose)


def require(account: Any, testimony: Any, wanted: Iterable[Part], *, config: Any, purpose: str) -> AccessDecision:
    """`decide`, refusing (`AccessRefused`, audited) when nothing may be opened: what a change to a record checks
    before anything runs, and what `open_record` checks before it decrypts."""
    asked = frozenset(wanted)
    decision = decide(account, testimony, asked, config=config, purpose=purpose)
    if not decision.allowed:
        refuse(account, testimony, decision.reason, asked=asked, purpose=purpose)
    return decision


def latest_consent(testimony: Any) -> Any:
    """The latest consent version of `testimony` (None if it has none)."""
    from intake.consents.models import ConsentRecord

    return db.session.scalar(sa.select(ConsentRecord).where(ConsentRecord.testimony_id == testimony.id)
                             .order_by(ConsentRecord.number.desc()).limit(1))


def medium_consented(record: Any, medium: str, *, purpose: str) -> bool:
    """Whether the latest consent version (`record`) still covers attachments of `medium`. A survivor's copy of
    their own data lists every attachment they gave."""
    return purpose == CoordinatorPurpose.SURVIVOR_COPY or (record is not None and medium in record.media)


def _opened(value: Any) -> Any:
    return None if isinstance(value, Tombstone) else value


def open_record(account: Any, testimony: Any, wanted: Iterable[Part], *, config: Any,
                purpose: str = "interview", reason: str | None = None) -> RecordView:
    """Decide, decrypt the allowed parts, and record which parts were opened (or the refusal) in one event.

    A coordinator's purposes need the written `reason`, which the event keeps; re-identification is recorded as
    such.
    """
    from intake.identities.models import Person

    if purpose in COORDINATOR_PARTS and not (reason or "").strip():
        refuse(account, testimony, Reason.NO_REASON, asked=wanted, purpose=purpose)
    parts = require(account, testimony, wanted, config=config, purpose=purpose).parts
    view = RecordView(id=testimony.id, pseudonym=testimony.pseudonym, status=testimony.status,
                      language=testimony.language, interviewed_on=testimony.interviewed_on,
                      submitted_at=testimony.submitted_at, revision=testimony.revision, parts=parts)
    key = open_data_key(testimony.data_key) if parts - {Part.IDENTITY} else None
    if Part.CONTENT in parts:
        view.narrative = _opened(open_value(testimony, "narrative", key=key))
        view.details = _opened(open_value(testimony, "details", key=key)) or {}
        view.incidents = [IncidentView(i.id, i.type, i.month, i.region,
                                       _opened(open_value(i, "details", key=key)) or {})
                          for i in testimony.incidents]
    record = latest_consent(testimony)
    if record is not None:
        view.consent = ConsentView(
            record.number, record.recorded_at, record.script_language, record.script_hash, record.method,
            dict(record.grants), list(record.media), [list(e) for e in record.exclusions], record.is_minor,
            record.follow_up_permitted, record.review_date,
            _opened(open_value(record, "particulars", key=key)) if Part.CONSENT in parts else None)
    if Part.ATTACHMENTS in parts:
        view.attachments = [AttachmentView(a.id, a.medium, a.graphic, a.created_at,
                                           _opened(open_value(a, "details", key=key)) or {})
                            for a in testimony.attachments
                            if medium_consented(record, a.medium, purpose=purpose)]
    if Part.NOTES in parts:
        view.analysis = read_analysis(testimony, key, lambda other: decide(
            account, other, {Part.CONTENT}, config=config, purpose=purpose).allowed)
    if Part.IDENTITY in parts:
        person = db.session.scalar(sa.select(Person).where(Person.pseudonym == testimony.pseudonym))
        view.identity = _opened(open_value(person, "identity")) if person is not None else None
    action = AuditAction.REIDENTIFIED if purpose == CoordinatorPurpose.REIDENTIFICATION else AuditAction.RECORD_VIEWED
    record_event(action, actor=account, target_type="testimony", target_ids=[testimony.id],
                 reason=reason.strip() if reason else None, details={"parts": sorted(parts), "purpose": purpose})
    return view


# Opening one attachment's original, after the same decision; imported last, as it uses what is defined above.
from intake.core.access.attachments import AttachmentNotInRecord as AttachmentNotInRecord  # noqa: E402
from intake.core.access.attachments import OpenedAttachment as OpenedAttachment  # noqa: E402
from intake.core.access.attachments import open_attachment as open_attachment  # noqa: E402
