"""What reviewers record about a testimony: grades, verification, coding corrections, links to other records,
identifying spans and notes. Each is kept apart from what the source said, checked by the access function first
(a reviewer who may not open the record may not analyse it), audited without its text, and never committed here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from intake.consents.operations import InputRefused
from intake.core import gazetteer, vocabulary
from intake.core.access import Part, RecordView, decide, require
from intake.core.audit import AuditAction, record_event
from intake.core.crypto.fields import seal_value
from intake.core.dates import parse_month
from intake.core.db import db, utcnow
from intake.review.models import (
    ASSESSMENT_VALUES,
    AnalystNote,
    Assessment,
    AssessmentKind,
    IdentifyingSpan,
    IncidentCoding,
    LinkKind,
    RecordLink,
    SpanKind,
)
from intake.testimonies.models import Incident, Testimony

PURPOSE = "review"
MAX_REASON = 2000
MAX_NOTE = 10_000
MAX_PHRASE = 200
NEEDS_REASON = _l("Give the reason in a sentence or two.")
_SPACES = re.compile(r"\s+")


def _problem(problems: dict[str, list[Any]], name: str, message: Any) -> None:
    problems.setdefault(name, []).append(message)


def _reason_problems(problems: dict[str, list[Any]], name: str, text: str, *, limit: int = MAX_REASON) -> None:
    if not text.strip():
        _problem(problems, name, NEEDS_REASON)
    elif len(text) > limit:
        _problem(problems, name, _l("Use at most %(count)s characters.", count=limit))


def may_analyse(testimony: Testimony, actor: Any, config: Any) -> None:
    """Refuse (audited, `AccessRefused`) a reviewer who may not open the record, before anything of it is looked
    up."""
    require(actor, testimony, {Part.NOTES}, config=config, purpose=PURPOSE)


def _audit(testimony: Testimony, actor: Any, **details: Any) -> None:
    record_event(AuditAction.RECORD_ANALYSED, actor=actor, target_type="testimony", target_ids=[testimony.id],
                 details=details)


def _stored(row: Any, column: str, text: str) -> None:
    db.session.add(row)
    db.session.flush()
    seal_value(row, column, text.strip())


def assess(testimony: Testimony, kind: str, value: str, reason: str, *, actor: Any, config: Any) -> Assessment:
    """Grade the source's reliability (A-F) or the information's credibility (1-6), or set the verification status,
    each with its reason. The newest assessment of each kind is the current one."""
    may_analyse(testimony, actor, config)
    problems: dict[str, list[Any]] = {}
    try:
        known = AssessmentKind(kind)
    except ValueError:
        raise InputRefused.one("kind", _l("Choose what you are assessing.")) from None
    if value not in ASSESSMENT_VALUES[known]:
        _problem(problems, "value", _l("Choose one of the listed values."))
    _reason_problems(problems, "reason", reason)
    if problems:
        raise InputRefused(problems)
    row = Assessment(testimony=testimony, testimony_id=testimony.id, kind=known.value, value=value,
                     reviewer_id=actor.id, created_at=utcnow())
    _stored(row, "reason", reason)
    _audit(testimony, actor, analysis=known.value, value=value)
    return row


def correct_coding(testimony: Testimony, incident: Incident, *, type: str, month: str, region: str, reason: str,
                   actor: Any, config: Any) -> IncidentCoding:
    """Code an incident as the reviewer reads it; the source's own account of it is left as it was."""
    may_analyse(testimony, actor, config)
    if incident.testimony_id != testimony.id:
        raise InputRefused.one("incident", _l("Choose an incident of this record."))
    problems: dict[str, list[Any]] = {}
    if vocabulary.incident_type(type) is None:
        _problem(problems, "type", _l("Choose a type of incident from the list."))
    if month and parse_month(month) is None:
        _problem(problems, "month", _l("Enter a month as year-month, for example 2023-09."))
    if region and region not in gazetteer.REGIONS:
        _problem(problems, "region", _l("Choose one of the listed values."))
    _reason_problems(problems, "reason", reason)
    if problems:
        raise InputRefused(problems)
    row = IncidentCoding(testimony=testimony, testimony_id=testimony.id, incident_id=incident.id, type=type,
                         month=month or None, region=region or None, reviewer_id=actor.id, created_at=utcnow())
    _stored(row, "reason", reason)
    _audit(testimony, actor, analysis="coding", incident=incident.id, fields=["type", "month", "region"])
    return row


def _findable(account: Any, config: Any, pseudonym: str) -> list[Testimony]:
    """Records with this pseudonym that `account` may review (decided without opening anything)."""
    code = pseudonym.strip().upper()
    found = db.session.scalars(sa.select(Testimony).where(Testimony.pseudonym == code).order_by(Testimony.id))
    return [t for t in found if decide(account, t, {Part.CONTENT}, config=config, purpose=PURPOSE).allowed]


def link(testimony: Testimony, pseudonym: str, kind: str, reason: str, *, actor: Any, config: Any) -> RecordLink:
    """Say that another record the reviewer may open corroborates or duplicates this one."""
    may_analyse(testimony, actor, config)
    problems: dict[str, list[Any]] = {}
    if kind not in {k.value for k in LinkKind}:
        _problem(problems, "kind", _l("Choose one of the listed values."))
    others = [t for t in _findable(actor, config, pseudonym) if t.id != testimony.id]
    if not others:
        _problem(problems, "other", _l("No other record with this code is open to you."))
    elif len(others) > 1:
        _problem(problems, "other", _l("More than one record has this code: link from the record of the other "
                                       "interview instead."))
    _reason_problems(problems, "reason", reason)
    if problems:
        raise InputRefused(problems)
    other = others[0]
    existing = db.session.scalar(sa.select(RecordLink).where(
        RecordLink.removed_at.is_(None), RecordLink.kind == kind,
        sa.or_(sa.and_(RecordLink.testimony_id == testimony.id, RecordLink.other_id == other.id),
               sa.and_(RecordLink.testimony_id == other.id, RecordLink.other_id == testimony.id))))
    if existing is not None:
        raise InputRefused.one("other", _l("These records are already linked in this way."))
    row = RecordLink(testimony=testimony, testimony_id=testimony.id, other_id=other.id, kind=kind,
                     created_by_id=actor.id, created_at=utcnow())
    _stored(row, "reason", reason)
    _audit(testimony, actor, analysis=kind, other=other.id)
    return row


def remove_link(testimony: Testimony, row: RecordLink, *, actor: Any, config: Any) -> None:
    may_analyse(testimony, actor, config)
    if testimony.id not in (row.testimony_id, row.other_id) or row.removed_at is not None:
        raise InputRefused.one("", _l("This link is not in force on this record."))
    row.removed_at = utcnow()
    row.removed_by_id = actor.id
    _audit(testimony, actor, analysis=f"{row.kind}_removed", other=row.other_id
           if row.testimony_id == testimony.id else row.testimony_id)


def occurrences(narrative: str, phrase: str) -> list[tuple[int, int]]:
    """Where `phrase` occurs in `narrative` (case-insensitive, any run of spaces matching any other)."""
    words = [re.escape(w) for w in _SPACES.split(phrase.strip()) if w]
    if not words:
        return []
    pattern = re.compile(r"\s+".join(words), re.IGNORECASE)
    return [(m.start(), m.end()) for m in pattern.finditer(narrative)]


def mark_identifying(view: RecordView, testimony: Testimony, phrase: str, kind: str, *, actor: Any,
                     config: Any) -> list[IdentifyingSpan]:
    """Mark every occurrence of `phrase` in the narrative (of `view`, opened by the caller through the access
    function) as identifying, so that exports below `confidential` replace it."""
    may_analyse(testimony, actor, config)
    problems: dict[str, list[Any]] = {}
    if kind not in {k.value for k in SpanKind}:
        _problem(problems, "kind", _l("Choose one of the listed values."))
    found: list[tuple[int, int]] = []
    if not phrase.strip():
        _problem(problems, "phrase", _l("Copy the words that identify someone from the narrative."))
    elif len(phrase) > MAX_PHRASE:
        _problem(problems, "phrase", _l("Use at most %(count)s characters.", count=MAX_PHRASE))
    else:
        found = occurrences(view.narrative or "", phrase)
        if not found:
            _problem(problems, "phrase", _l("These words are not in the narrative. Copy them exactly as written."))
    if problems:
        raise InputRefused(problems)
    marked = {(s.start, s.stop) for s in active_spans(testimony.id)}
    rows = [IdentifyingSpan(testimony_id=testimony.id, start=start, stop=stop, kind=kind,
                            revision=testimony.revision, created_by_id=actor.id, created_at=utcnow())
            for start, stop in found if (start, stop) not in marked]
    db.session.add_all(rows)
    db.session.flush()
    _audit(testimony, actor, analysis="identifying_span", kind=kind, marked=len(rows))
    return rows


def unmark_identifying(testimony: Testimony, span: IdentifyingSpan, *, actor: Any, config: Any) -> None:
    may_analyse(testimony, actor, config)
    if span.testimony_id != testimony.id or span.removed_at is not None:
        raise InputRefused.one("", _l("This mark is not in force on this record."))
    span.removed_at = utcnow()
    span.removed_by_id = actor.id
    _audit(testimony, actor, analysis="identifying_span_removed", kind=span.kind)


def active_spans(testimony_id: int) -> list[IdentifyingSpan]:
    return list(db.session.scalars(sa.select(IdentifyingSpan).where(
        IdentifyingSpan.testimony_id == testimony_id, IdentifyingSpan.removed_at.is_(None))
        .order_by(IdentifyingSpan.start)))


def redacted(text: str, spans: Iterable[tuple[int, int]], replacement: str) -> str:
    """`text` with each (start, stop) span replaced by `replacement`; overlapping spans are merged."""
    merged: list[list[int]] = []
    for start, stop in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    pieces, at = [], 0
    for start, stop in merged:
        pieces += [text[at:start], replacement]
        at = stop
    pieces.append(text[at:])
    return "".join(pieces)


def add_note(testimony: Testimony, text: str, *, actor: Any, config: Any) -> AnalystNote:
    may_analyse(testimony, actor, config)
    problems: dict[str, list[Any]] = {}
    if not text.strip():
        _problem(problems, "text", _l("Write the note."))
    elif len(text) > MAX_NOTE:
        _problem(problems, "text", _l("Use at most %(count)s characters.", count=MAX_NOTE))
    if problems:
        raise InputRefused(problems)
    row = AnalystNote(testimony=testimony, testimony_id=testimony.id, author_id=actor.id, created_at=utcnow())
    _stored(row, "text", text)
    _audit(testimony, actor, analysis="note")
    return row
