"""The retention schedule, and the disposal of what it says has been kept long enough.

Each category of survivor data has a rule, a setting in days; 0 keeps the data until someone acts:

=================  ==============================  ===============================================================
category           setting (default)               counted from
=================  ==============================  ===============================================================
``withdrawn``      RETENTION_WITHDRAWN_DAYS (90)   the first withdrawal of consent to documentation (a withdrawal
                                                   of everything, or one naming documentation), without erasure
``draft``          RETENTION_DRAFT_DAYS (30)       the draft's last change (``testimonies.updated_at``, which every
                                                   saved step of the interview moves on)
``review_lapsed``  RETENTION_REVIEW_LAPSED_DAYS    the day after the review date of the latest consent version (the
                   (0)                             first day on which the consent policy refuses every use)
``testimony``      RETENTION_TESTIMONY_DAYS (0)    the submission
=================  ==============================  ===============================================================

Disposal is the erasure's own crypto-shredding: `shred_testimony`, then `shred_identity` for the person once none
of their testimonies is left unshredded. The rows stay as tombstones with their coarse classification, reads
return a `Tombstone`, and the shredding writes its usual `record_shredded` events. Each disposal adds one
`retention_disposed` event naming the testimony, with the rule as its reason ("RETENTION_DRAFT_DAYS=30: …") and
details {category, rule, days, method, expired_at, parts, attachments}: never content.

Decisions:

- A record is disposed of under one rule, the first in the order above that it has expired under.
- A case holds a record against the rules of time (``review_lapsed``, ``testimony``): a legal team may need it for
  as long as proceedings last. Such a record is reported as held and disposed of once no case holds it. A case
  never holds a record against a withdrawal: consent wins. (The withdrawal itself cancelled every case file not
  yet downloaded that the record would have gone into; the recipients of those downloaded are listed on the
  record's page.) A draft is never in a case: only submitted records can be added to one.
- Disposed of by nothing here, because they hold nothing about a survivor or are deleted already: interviews
  recorded as not held (when, by whom, coded reasons), sessions (swept once expired), built case files (deleted
  after EXPORT_KEEP_HOURS by `intake export purge`), and the audit log (append-only, and without content).
- Shredding reaches the live database only. Backups taken before keep the record until they age out or the KEK
  versions that wrapped its key there are retired (README, "Shredding, and what it means for backups").

`expired` lists what the schedule has expired, held or not; `due` what may be disposed of now; `dispose` disposes
of one record in the caller's transaction, after checking again, under the record's lock, that it is still due
(an interviewer may have saved the draft since). `intake.retention.runner.run` gives each record a transaction of
its own. Nothing here decrypts anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from consent.records import Purpose
from intake.cases.models import CaseRecord
from intake.consents.models import ConsentRecord, ConsentWithdrawal
from intake.core.audit import AuditAction, record_event
from intake.core.audit.models import format_time
from intake.core.crypto.models import DataKey
from intake.core.db import db
from intake.identities.models import Person
from intake.identities.operations import shred_identity
from intake.testimonies.models import Testimony, TestimonyStatus
from intake.testimonies.operations import shred_testimony

METHOD = "crypto_shred"
_Query = TypeVar("_Query", bound=sa.Select)


@dataclass(frozen=True)
class Rule:
    """One line of the schedule: a category of records, the setting that says how long they are kept, and what
    the period is counted from."""

    category: str
    setting: str
    counted_from: str
    why: str  # completes "<setting>=<days>: …" in the audit reason; {days} is replaced
    held_by_cases: bool

    def days(self, config: Any) -> int:
        return int(config[self.setting])

    def reason(self, days: int) -> str:
        return f"{self.setting}={days}: {self.why.format(days=days)}"


RULES: tuple[Rule, ...] = (
    Rule("withdrawn", "RETENTION_WITHDRAWN_DAYS", "the withdrawal of consent to documentation",
         "consent to documentation was withdrawn at least {days} days ago", held_by_cases=False),
    Rule("draft", "RETENTION_DRAFT_DAYS", "the draft's last change",
         "an interview never submitted and not changed for {days} days", held_by_cases=False),
    Rule("review_lapsed", "RETENTION_REVIEW_LAPSED_DAYS", "the day after the consent's review date",
         "the consent's review date passed at least {days} days ago", held_by_cases=True),
    Rule("testimony", "RETENTION_TESTIMONY_DAYS", "the submission",
         "submitted at least {days} days ago", held_by_cases=True),
)
RULES_BY_CATEGORY = {rule.category: rule for rule in RULES}


@dataclass(frozen=True)
class Candidate:
    """A record the schedule has expired: under which rule, and when its period ended."""

    testimony_id: int
    rule: Rule
    days: int
    expired_at: datetime
    held: bool = False  # a case holds it against this rule

    @property
    def reason(self) -> str:
        return self.rule.reason(self.days)


@dataclass(frozen=True)
class Disposal:
    """What `dispose` did: the disposal record, as the audit log has it."""

    testimony_id: int
    category: str
    rule: str
    days: int
    expired_at: datetime
    parts: tuple[str, ...]
    attachments: int


def _alive(query: _Query) -> _Query:
    """`query` (on testimonies) restricted to testimonies not shredded yet."""
    return query.join(DataKey, DataKey.id == Testimony.data_key_id).where(DataKey.destroyed_at.is_(None))


def _only(query: _Query, testimony_id: int | None) -> _Query:
    return query if testimony_id is None else query.where(Testimony.id == testimony_id)


def _withdrawn(days: int, now: datetime, testimony_id: int | None) -> dict[int, datetime]:
    """Testimonies whose consent to documentation was withdrawn at least `days` ago, and when that period ended."""
    query = _alive(sa.select(ConsentWithdrawal).join(Testimony, Testimony.id == ConsentWithdrawal.testimony_id))
    query = _only(query, testimony_id).where(ConsentWithdrawal.at <= now - timedelta(days=days))
    found: dict[int, datetime] = {}
    for row in db.session.scalars(query.order_by(ConsentWithdrawal.at, ConsentWithdrawal.id)):
        withdrawal = row.withdrawal()
        if withdrawal.whole or Purpose.DOCUMENTATION in withdrawal.purposes:
            found.setdefault(row.testimony_id, row.at + timedelta(days=days))
    return found


def _drafts(days: int, now: datetime, testimony_id: int | None) -> dict[int, datetime]:
    """Drafts not changed for `days`."""
    query = _alive(sa.select(Testimony.id, Testimony.updated_at)).where(
        Testimony.status == TestimonyStatus.DRAFT.value, Testimony.updated_at <= now - timedelta(days=days))
    return {row.id: row.updated_at + timedelta(days=days) for row in db.session.execute(_only(query, testimony_id))}


def _review_lapsed(days: int, now: datetime, testimony_id: int | None) -> dict[int, datetime]:
    """Testimonies whose latest consent version's review date passed at least `days` ago.

    The policy refuses every use from the day after the review date, so the period starts at that day's midnight
    (UTC)."""
    newer = aliased(ConsentRecord)
    latest_number = (sa.select(sa.func.max(newer.number)).where(newer.testimony_id == ConsentRecord.testimony_id)
                     .scalar_subquery())
    query = _alive(sa.select(Testimony.id, ConsentRecord.review_date)
                   .join(ConsentRecord, ConsentRecord.testimony_id == Testimony.id)).where(
        ConsentRecord.number == latest_number, ConsentRecord.review_date.is_not(None),
        ConsentRecord.review_date <= now.date() - timedelta(days=days + 1))
    return {row.id: datetime.combine(row.review_date + timedelta(days=days + 1), time(), UTC)
            for row in db.session.execute(_only(query, testimony_id))}


def _submitted(days: int, now: datetime, testimony_id: int | None) -> dict[int, datetime]:
    """Submitted testimonies (whatever their review status) submitted at least `days` ago."""
    query = _alive(sa.select(Testimony.id, Testimony.submitted_at)).where(
        Testimony.status != TestimonyStatus.DRAFT.value, Testimony.submitted_at.is_not(None),
        Testimony.submitted_at <= now - timedelta(days=days))
    return {row.id: row.submitted_at + timedelta(days=days) for row in db.session.execute(_only(query, testimony_id))}


_FINDERS = {"withdrawn": _withdrawn, "draft": _drafts, "review_lapsed": _review_lapsed, "testimony": _submitted}


def _in_cases(testimony_id: int | None) -> set[int]:
    query = sa.select(CaseRecord.testimony_id).distinct()
    if testimony_id is not None:
        query = query.where(CaseRecord.testimony_id == testimony_id)
    return set(db.session.scalars(query))


def schedule(config: Any) -> list[tuple[Rule, int]]:
    """The rules with the days configured for each (0: kept until someone acts)."""
    return [(rule, rule.days(config)) for rule in RULES]


def expired(config: Any, now: datetime, *, testimony_id: int | None = None) -> list[Candidate]:
    """Every record (or only `testimony_id`) the schedule has expired at `now`, under the first rule that expired
    it, in the order their periods ended; those a case holds are marked `held`. Reads only clear columns."""
    claimed: dict[int, Candidate] = {}
    cases: set[int] | None = None
    for rule, days in schedule(config):
        if days <= 0:
            continue
        for found_id, expired_at in _FINDERS[rule.category](days, now, testimony_id).items():
            if found_id in claimed:
                continue
            held = False
            if rule.held_by_cases:
                cases = _in_cases(testimony_id) if cases is None else cases
                held = found_id in cases
            claimed[found_id] = Candidate(found_id, rule, days, expired_at, held)
    return sorted(claimed.values(), key=lambda c: (c.expired_at, c.testimony_id))


def due(config: Any, now: datetime) -> list[Candidate]:
    """The records to dispose of at `now`: expired and held by no case."""
    return [candidate for candidate in expired(config, now) if not candidate.held]


def _other_testimony_left(person: Person, testimony_id: int) -> bool:
    """Whether the person has another testimony that is not shredded (their identity then stays)."""
    query = _alive(sa.select(Testimony.id)).where(Testimony.pseudonym == person.pseudonym, Testimony.id != testimony_id)
    return db.session.scalar(query.limit(1)) is not None


def dispose(candidate: Candidate, *, config: Any, now: datetime, actor: Any = None) -> Disposal | None:
    """Dispose of one record in the current transaction (the caller commits): crypto-shred the testimony, and the
    person's identity unless another testimony of theirs is left, and record the disposal.

    The record is locked and the schedule asked again first: if it is no longer due (saved since, shredded
    meanwhile, now held by a case), nothing is changed and None is returned.
    """
    testimony = db.session.scalar(
        sa.select(Testimony).where(Testimony.id == candidate.testimony_id).with_for_update(of=Testimony)
        .execution_options(populate_existing=True))
    if testimony is None:
        return None
    current = expired(config, now, testimony_id=testimony.id)
    if not current or current[0].held:
        return None
    found = current[0]
    reason = found.reason
    attachments = len(testimony.attachments)
    shred_testimony(testimony, reason=reason, actor=actor, config=config)
    parts = ["testimony"]
    person = db.session.scalar(sa.select(Person).where(Person.pseudonym == testimony.pseudonym)
                               .with_for_update(of=Person).execution_options(populate_existing=True))
    if person is not None and person.data_key.destroyed_at is None \
            and not _other_testimony_left(person, testimony.id):
        shred_identity(person, reason=reason, actor=actor)
        parts.append("identity")
    disposal = Disposal(testimony.id, found.rule.category, found.rule.setting, found.days, found.expired_at,
                        tuple(parts), attachments)
    record_event(AuditAction.RETENTION_DISPOSED, actor=actor, target_type="testimony", target_ids=[testimony.id],
                 reason=reason, details={
                     "category": disposal.category, "rule": disposal.rule, "days": disposal.days, "method": METHOD,
                     "expired_at": format_time(disposal.expired_at), "parts": list(disposal.parts),
                     "attachments": attachments})
    return disposal
