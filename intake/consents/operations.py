"""Recording consent, deciding a use from it, and recording a withdrawal (with erasure when asked).

Operations change the session and write audit events; they never commit. Every refusal is an `InputRefused`
naming the field and saying why in the reader's language, before anything is written.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.functions import GenericFunction

from consent import scripts
from consent.policy import Decision, decide
from consent.records import (
    ConsentVersion,
    Disclosure,
    ExclusionKind,
    Medium,
    Method,
    Purpose,
    Recipient,
    ScriptItem,
)
from intake.consents.models import ConsentRecord, ConsentWithdrawal
from intake.core.audit import AuditAction, record_event
from intake.core.crypto.fields import seal_value
from intake.core.db import db, transaction_cache, utcnow

COUNTRY = re.compile(r"[A-Z]{2}")
RECIPIENT_KEY = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
MAX_NAME = 200
# Where a transaction keeps the consent decisions it already made (see `forget_decisions`).
DECISIONS_KEY = "intake.consent_decisions"
MAX_NOTE = 2000


# How a withdrawal or another request from the person reached us.
RECEIVED_HOW = ("in_person", "phone", "message", "letter", "through_someone")


class InputRefused(Exception):
    """What was sent cannot be recorded: `problems` maps a field name (or "" for the whole form) to messages."""

    def __init__(self, problems: Mapping[str, list[Any]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(str(m) for m in v)}" for k, v in problems.items()))
        self.problems = {k: list(v) for k, v in problems.items()}

    @classmethod
    def one(cls, field_name: str, message: Any) -> InputRefused:
        return cls({field_name: [message]})


@dataclass(frozen=True)
class ConsentInput:
    """A consent as the interviewer records it, before it is checked and stored."""

    script_language: str
    items_confirmed: frozenset[str]
    method: str
    capacity_confirmed: bool
    voluntariness_confirmed: bool
    grants: Mapping[str, str] = field(default_factory=dict)  # purpose -> disclosure level, for purposes granted
    media: frozenset[str] = frozenset()
    witness: str = ""
    interpreter: str = ""
    is_minor: bool = False
    guardian_consented: bool = False
    child_assented: bool = False
    best_interests_note: str = ""
    follow_up_permitted: bool = False
    follow_up_method: str = ""
    follow_up_times: str = ""
    exclusions: tuple[tuple[str, str], ...] = ()
    review_date: date | None = None


def _add(problems: dict[str, list[Any]], name: str, message: Any) -> None:
    problems.setdefault(name, []).append(message)


def consent_problems(given: ConsentInput, *, today: date) -> dict[str, list[Any]]:
    """Why this consent cannot be recorded, by field; empty when it can."""
    problems: dict[str, list[Any]] = {}
    if given.script_language not in scripts.LANGUAGES:
        _add(problems, "script_language", _l("Choose the language the consent script was read in."))
    if set(given.items_confirmed) != {i.value for i in ScriptItem}:
        _add(problems, "items", _l("Every part of the consent script must be read and confirmed."))
    if given.method not in {m.value for m in Method}:
        _add(problems, "method", _l("Choose how consent was given."))
    if not given.capacity_confirmed:
        _add(problems, "capacity_confirmed",
             _l("Consent needs the person to be well enough to decide and to have understood."))
    if not given.voluntariness_confirmed:
        _add(problems, "voluntariness_confirmed", _l("Consent must be given freely."))
    if given.method == Method.ORAL_WITNESSED and not given.witness.strip():
        _add(problems, "witness", _l("Oral consent needs a witness: give the witness's name."))
    if given.is_minor:
        if not given.guardian_consented:
            _add(problems, "guardian_consented", _l("A child may take part only with a parent's or guardian's "
                                                    "consent."))
        if not given.child_assented:
            _add(problems, "child_assented", _l("A child may take part only if they want to."))
        if not given.best_interests_note.strip():
            _add(problems, "best_interests_note", _l("Say why taking part is in the child's best interests."))
    if given.follow_up_permitted and not given.follow_up_method.strip():
        _add(problems, "follow_up_method", _l("Say which way of contacting the person is safe."))
    for name, text, limit in (("witness", given.witness, MAX_NAME), ("interpreter", given.interpreter, MAX_NAME),
                              ("follow_up_method", given.follow_up_method, MAX_NAME),
                              ("follow_up_times", given.follow_up_times, MAX_NAME),
                              ("best_interests_note", given.best_interests_note, MAX_NOTE)):
        if len(text) > limit:
            _add(problems, name, _l("This is too long: at most %(limit)d characters.", limit=limit))
    purposes = {p.value for p in Purpose}
    levels = {d.value for d in Disclosure}
    for purpose, level in given.grants.items():
        if purpose not in purposes or level not in levels:
            _add(problems, "grants", _l("Choose a known purpose and level of disclosure."))
            break
    if Purpose.DOCUMENTATION.value not in given.grants:
        _add(problems, "grants", _l("Without consent to keep the testimony nothing can be recorded. If the "
                                    "person does not agree to this, record that they do not consent."))
    if not set(given.media) <= {m.value for m in Medium}:
        _add(problems, "media", _l("Choose among audio, photo, video and document."))
    kinds = {k.value for k in ExclusionKind}
    for kind, value in given.exclusions:
        if kind not in kinds:
            _add(problems, "exclusions", _l("Choose what kind of recipient is excluded."))
        elif kind == ExclusionKind.RECIPIENT and not RECIPIENT_KEY.fullmatch(value):
            _add(problems, "exclusions", _l("A recipient is named by its code, in small letters and digits."))
        elif kind != ExclusionKind.RECIPIENT and not COUNTRY.fullmatch(value):
            _add(problems, "exclusions", _l("A country is named by its two-letter code, e.g. AM, AZ or RU."))
    if given.review_date is not None and given.review_date <= today:
        _add(problems, "review_date", _l("The review date must be in the future."))
    return problems


def forget_decisions() -> None:
    """Drop the decisions this transaction remembered: consent changed."""
    transaction_cache(db.session, DECISIONS_KEY).clear()


def record_consent(testimony: Any, given: ConsentInput, *, actor: Any, first: bool = False) -> ConsentRecord:
    """Check and store a new consent version for `testimony`; raises `InputRefused` and stores nothing if invalid.

    `first` says the testimony was created in this transaction, so this is its version 1."""
    problems = consent_problems(given, today=utcnow().date())
    if problems:
        raise InputRefused(problems)
    script = scripts.latest(given.script_language)
    number = 1 if first else (db.session.scalar(sa.select(sa.func.max(ConsentRecord.number))
                                                .where(ConsentRecord.testimony_id == testimony.id)) or 0) + 1
    record = ConsentRecord(
        testimony=testimony, number=number, recorded_at=utcnow(), recorded_by_id=getattr(actor, "id", None),
        script_language=script.language, script_hash=script.hash, method=given.method,
        items=sorted(given.items_confirmed), capacity_confirmed=given.capacity_confirmed,
        voluntariness_confirmed=given.voluntariness_confirmed, witness_present=bool(given.witness.strip()),
        interpreter_present=bool(given.interpreter.strip()), is_minor=given.is_minor,
        guardian_consented=given.is_minor and given.guardian_consented,
        child_assented=given.is_minor and given.child_assented,
        best_interests_given=given.is_minor and bool(given.best_interests_note.strip()),
        grants=dict(sorted(given.grants.items())), media=sorted(given.media),
        exclusions=[[k, v] for k, v in sorted(set(given.exclusions))],
        follow_up_permitted=given.follow_up_permitted, review_date=given.review_date,
    )
    db.session.add(record)
    db.session.flush()
    forget_decisions()
    seal_value(record, "particulars", {
        "witness": given.witness.strip(),
        "interpreter": given.interpreter.strip(),
        "best_interests_note": given.best_interests_note.strip() if given.is_minor else "",
        "follow_up": {"method": given.follow_up_method.strip(), "times": given.follow_up_times.strip()}
        if given.follow_up_permitted else None,
    })
    record_event(AuditAction.CONSENT_RECORDED, actor=actor, target_type="testimony", target_ids=[testimony.id],
                 details={"version": number, "language": script.language, "purposes": sorted(given.grants),
                          "media": sorted(given.media), "method": given.method})
    return record


def latest_record(testimony_id: int) -> ConsentRecord | None:
    found: ConsentRecord | None = db.session.scalar(
        sa.select(ConsentRecord).where(ConsentRecord.testimony_id == testimony_id)
        .order_by(ConsentRecord.number.desc()).limit(1))
    return found


def withdrawals_of(testimony_id: int) -> list[ConsentWithdrawal]:
    return list(db.session.scalars(sa.select(ConsentWithdrawal).where(ConsentWithdrawal.testimony_id == testimony_id)
                                   .order_by(ConsentWithdrawal.at, ConsentWithdrawal.id)))


def current_consent(testimony_id: int) -> ConsentVersion | None:
    """The consent in force for the testimony (its latest version) with every withdrawal recorded since it."""
    record = latest_record(testimony_id)
    if record is None:
        return None
    return record.version(tuple(w.withdrawal() for w in withdrawals_of(testimony_id)))


def decide_use(testimony_id: int, purpose: Purpose, recipient: Recipient | None = None,
               at: datetime | None = None) -> Decision:
    """`consent.policy.decide` for this testimony's consent now (or at `at`)."""
    return decide(current_consent(testimony_id), purpose, recipient, at or utcnow())


def documentation_allowed(testimony_id: int) -> Decision:
    return decide_use(testimony_id, Purpose.DOCUMENTATION)


class _holds_all(GenericFunction[bool]):  # noqa: N801 - named like the SQL function it stands for
    """`json_holds_all(array, wanted)`: whether the JSON array `array` holds every string of the JSON array `wanted`
    (a JSON text). PostgreSQL: jsonb containment (`@>`); SQLite: counting through `json_each`."""

    name = "json_holds_all"
    type = sa.Boolean()
    inherit_cache = True


@compiles(_holds_all, "postgresql")
def _holds_all_postgresql(element: _holds_all, compiler: Any, **kw: Any) -> str:
    array, wanted = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST({array} AS JSONB) @> CAST({wanted} AS JSONB))"


@compiles(_holds_all, "sqlite")
def _holds_all_sqlite(element: _holds_all, compiler: Any, **kw: Any) -> str:
    array, wanted = (compiler.process(c, **kw) for c in element.clauses)
    return (f"((SELECT count(DISTINCT held.value) FROM json_each({array}) AS held WHERE held.value IN "  # noqa: S608
            f"(SELECT asked.value FROM json_each({wanted}) AS asked)) = json_array_length({wanted}))")


def _holds(array: Any, values: Iterable[str]) -> sa.ColumnElement[bool]:
    return _holds_all(array, sa.literal(json.dumps(sorted(values)), sa.String))


@functools.cache
def _latest_version() -> Any:
    """One alias of the versions for every query: SQLAlchemy remembers how its columns map, which it would work
    out anew for each new alias (milliseconds a request)."""
    return aliased(ConsentRecord, name="consent_latest")


def documentation_allowed_clause(testimony_id: Any, at: datetime | None = None) -> sa.ColumnElement[bool]:
    """`documentation_allowed` as a SQL condition on `testimony_id` (a column, or a value): true exactly when
    `consent.policy.decide` would allow documentation at `at` (default now) from the testimony's latest consent
    version and every withdrawal recorded for it. A query filters on it instead of deciding record by record.

    What `decide` checks for documentation, from the stored columns `ConsentRecord.version` reads: the latest
    version exists and was recorded by `at`; it is valid (every script item confirmed, capacity and voluntariness
    confirmed, a witness to oral consent, and for a child the guardian's consent, the child's assent and a
    best-interests note; follow-up never fails, since its method is sealed and so always given); no withdrawal in
    force at `at` is whole or names documentation; its review date, if any, has not passed; and it grants
    documentation. Recipients and exclusions do not apply: documentation goes to no one.

    The whole decision is one scalar subquery on the latest version (by number, newest first, limit 1: a probe of
    the (testimony_id, number) index, then one of the withdrawals' testimony index), which PostgreSQL keeps as a
    check of each testimony it reads instead of joining every version and withdrawal in: a page of the queue then
    reads the testimonies newest first and stops at the page's end.
    """
    now = at or utcnow()
    latest = _latest_version()
    stands = sa.and_(
        latest.recorded_at <= now,
        _holds(latest.items, (i.value for i in ScriptItem)),
        latest.capacity_confirmed.is_(True),
        latest.voluntariness_confirmed.is_(True),
        sa.or_(latest.method != Method.ORAL_WITNESSED.value, latest.witness_present.is_(True)),
        sa.or_(latest.is_minor.is_(False), sa.and_(latest.guardian_consented.is_(True),
                                                   latest.child_assented.is_(True),
                                                   latest.best_interests_given.is_(True))),
        sa.or_(latest.review_date.is_(None), latest.review_date >= now.date()),
        latest.grants[Purpose.DOCUMENTATION.value].as_string().is_not(None),
    )
    withdrawn = sa.exists().where(
        ConsentWithdrawal.testimony_id == latest.testimony_id,
        ConsentWithdrawal.at <= now,
        sa.or_(sa.func.json_array_length(ConsentWithdrawal.purposes) == 0,
               _holds(ConsentWithdrawal.purposes, [Purpose.DOCUMENTATION.value])),
    )
    standing = (sa.select(sa.and_(stands, ~withdrawn)).where(latest.testimony_id == testimony_id)
                .order_by(latest.number.desc()).limit(1).scalar_subquery())
    return standing.is_(True)


def record_withdrawal(testimony: Any, *, purposes: Iterable[str], received_how: str, erasure: bool, actor: Any,
                      config: Any) -> ConsentWithdrawal:
    """Record that consent is withdrawn for `purposes` (none: for everything), from now on.

    With `erasure`, the person's identity and the testimony's key are shredded in the same transaction: the
    testimony remains a tombstone with its coarse classification, and the audit trail stays. Exports not yet
    downloaded that the record may no longer go into are cancelled in the same transaction.
    """
    from intake.identities.models import Person
    from intake.identities.operations import shred_identity
    from intake.testimonies.operations import shred_testimony

    chosen = sorted(set(purposes))
    problems: dict[str, list[Any]] = {}
    if not set(chosen) <= {p.value for p in Purpose}:
        _add(problems, "purposes", _l("Choose among the purposes the consent covers."))
    if received_how not in RECEIVED_HOW:
        _add(problems, "received_how", _l("Say how the request reached you."))
    if erasure and chosen:
        _add(problems, "erasure", _l("Erasure withdraws consent for everything: leave the purposes unticked."))
    if problems:
        raise InputRefused(problems)
    withdrawal = ConsentWithdrawal(testimony_id=testimony.id, at=utcnow(), purposes=chosen, received_how=received_how,
                                   erasure=erasure, recorded_by_id=getattr(actor, "id", None))
    db.session.add(withdrawal)
    db.session.flush()
    forget_decisions()
    record_event(AuditAction.CONSENT_WITHDRAWN, actor=actor, target_type="testimony", target_ids=[testimony.id],
                 details=withdrawal.described())
    # Case files not yet downloaded that the record may no longer go into are cancelled at once.
    from intake.exports.operations import cancel_for_withdrawal

    cancel_for_withdrawal(testimony, actor=actor, config=config)
    if erasure:
        if testimony.data_key.destroyed_at is None:  # erased before: the first shredding stands as it was
            shred_testimony(testimony, reason="the person asked for their data to be erased", actor=actor,
                            config=config)
        person = db.session.scalar(sa.select(Person).where(Person.pseudonym == testimony.pseudonym))
        if person is not None and person.data_key.destroyed_at is None:
            shred_identity(person, reason="the person asked for their data to be erased", actor=actor)
    return withdrawal
