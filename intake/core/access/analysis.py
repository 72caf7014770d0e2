"""The reviewers' analysis of a testimony as `open_record` returns it when the `notes` part is opened: the current
grades and status with their history, coding corrections by incident, links, identifying spans and notes, with
their reasons and texts decrypted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from intake.core.crypto.envelope import OpenDataKey
from intake.core.crypto.fields import Tombstone, open_value
from intake.core.db import db


def _text(value: Any) -> str:
    return "" if value is None or isinstance(value, Tombstone) else str(value)


@dataclass(frozen=True)
class AssessmentEntry:
    id: int
    kind: str
    value: str
    reason: str
    reviewer_id: int | None
    at: datetime


@dataclass(frozen=True)
class CodingEntry:
    id: int
    incident_id: int
    type: str
    month: str | None
    region: str | None
    reason: str
    reviewer_id: int | None
    at: datetime


@dataclass(frozen=True)
class LinkEntry:
    """A link in force. The other record is named only when the reader may open it too: otherwise its id and
    pseudonym are None and the reason (which speaks of it) is left out."""

    id: int
    kind: str
    other_id: int | None
    other_pseudonym: str | None
    outgoing: bool  # recorded on this record (True) or on the other one
    reason: str  # empty when recorded on the other record (sealed under its key), or when it may not be opened
    at: datetime


@dataclass(frozen=True)
class SpanEntry:
    id: int
    start: int
    stop: int
    kind: str
    stale: bool  # marked on an earlier revision of the narrative


@dataclass(frozen=True)
class NoteEntry:
    id: int
    text: str
    author_id: int | None
    at: datetime


@dataclass
class AnalysisView:
    current: dict[str, AssessmentEntry] = field(default_factory=dict)  # by kind
    history: list[AssessmentEntry] = field(default_factory=list)  # newest first
    codings: dict[int, list[CodingEntry]] = field(default_factory=dict)  # by incident, newest first
    links: list[LinkEntry] = field(default_factory=list)
    spans: list[SpanEntry] = field(default_factory=list)
    notes: list[NoteEntry] = field(default_factory=list)  # oldest first


def read_analysis(testimony: Any, key: OpenDataKey | None,
                  may_open: Callable[[Any], bool] = lambda _other: False) -> AnalysisView:
    """The analysis of `testimony`; `may_open(other)` says whether the reader may open a linked record."""
    from intake.review.models import AnalystNote, Assessment, IdentifyingSpan, IncidentCoding, RecordLink
    from intake.testimonies.models import Testimony

    view = AnalysisView()
    for row in db.session.scalars(sa.select(Assessment).where(Assessment.testimony_id == testimony.id)
                                  .order_by(Assessment.id.desc())):
        entry = AssessmentEntry(row.id, row.kind, row.value, _text(open_value(row, "reason", key=key)),
                                row.reviewer_id, row.created_at)
        view.history.append(entry)
        view.current.setdefault(row.kind, entry)
    for coding in db.session.scalars(sa.select(IncidentCoding).where(IncidentCoding.testimony_id == testimony.id)
                                     .order_by(IncidentCoding.id.desc())):
        view.codings.setdefault(coding.incident_id, []).append(CodingEntry(
            coding.id, coding.incident_id, coding.type, coding.month, coding.region,
            _text(open_value(coding, "reason", key=key)), coding.reviewer_id, coding.created_at))
    links = db.session.execute(
        sa.select(RecordLink, Testimony)
        .join(Testimony, Testimony.id == sa.case((RecordLink.testimony_id == testimony.id, RecordLink.other_id),
                                                 else_=RecordLink.testimony_id))
        .where(sa.or_(RecordLink.testimony_id == testimony.id, RecordLink.other_id == testimony.id),
               RecordLink.removed_at.is_(None))
        .order_by(RecordLink.id))
    for found, other in links:
        outgoing = found.testimony_id == testimony.id
        if not may_open(other):
            view.links.append(LinkEntry(found.id, found.kind, None, None, outgoing, "", found.created_at))
            continue
        view.links.append(LinkEntry(
            found.id, found.kind, other.id, other.pseudonym, outgoing,
            _text(open_value(found, "reason", key=key)) if outgoing else "", found.created_at))
    view.spans = [SpanEntry(s.id, s.start, s.stop, s.kind, s.revision != testimony.revision)
                  for s in db.session.scalars(sa.select(IdentifyingSpan).where(
                      IdentifyingSpan.testimony_id == testimony.id, IdentifyingSpan.removed_at.is_(None))
                      .order_by(IdentifyingSpan.start))]
    view.notes = [NoteEntry(n.id, _text(open_value(n, "text", key=key)), n.author_id, n.created_at)
                  for n in db.session.scalars(sa.select(AnalystNote).where(AnalystNote.testimony_id == testimony.id)
                                              .order_by(AnalystNote.id))]
    return view
