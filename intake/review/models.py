"""The reviewers' analysis of a testimony, kept apart from what the source said.

Grades, verification and coding corrections are append-only: the newest row of each kind is the current one, and
the older rows are its history. Links between records, identifying spans and analyst notes are rows of their own;
links and spans can be removed (the row stays, with who removed it and when). Every written reason and every note
is sealed under the testimony's data key, so erasing the testimony erases the analysis of it too; the values that
reviewers filter and count on (grades, verification status, corrected type, month and region) are clear.
"""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from intake.core.crypto.fields import sealed_column
from intake.core.crypto.models import DataKey
from intake.core.db import Base, UTCDateTime, utcnow
from intake.testimonies.models import Testimony


class AssessmentKind(enum.StrEnum):
    RELIABILITY = "reliability"  # of the source: A (reliable) to F (cannot be judged)
    CREDIBILITY = "credibility"  # of the information: 1 (confirmed) to 6 (cannot be judged)
    VERIFICATION = "verification"


class Verification(enum.StrEnum):
    UNVERIFIED = "unverified"
    CORROBORATED = "corroborated"
    VERIFIED = "verified"
    DISPUTED = "disputed"


ASSESSMENT_VALUES: dict[AssessmentKind, tuple[str, ...]] = {
    AssessmentKind.RELIABILITY: ("A", "B", "C", "D", "E", "F"),
    AssessmentKind.CREDIBILITY: ("1", "2", "3", "4", "5", "6"),
    AssessmentKind.VERIFICATION: tuple(v.value for v in Verification),
}


class LinkKind(enum.StrEnum):
    CORROBORATES = "corroborates"  # the other record tells of the same events
    DUPLICATE = "duplicate"  # the other record is the same testimony recorded twice


class SpanKind(enum.StrEnum):
    NAME = "name"
    ADDRESS = "address"  # an exact address or location
    UNIT = "unit"  # a unit number or designation
    OTHER = "other"


def _listed(column: str, values: tuple[str, ...] | list[str]) -> str:
    return "{} IN ({})".format(column, ", ".join(f"'{v}'" for v in values))


class _OfTestimony:
    """Rows sealed under their testimony's data key."""

    @property
    def sealing_key(self) -> DataKey:
        testimony: Testimony = getattr(self, "testimony")  # noqa: B009 - declared by each model
        return testimony.data_key


class Assessment(_OfTestimony, Base):
    """One grade or verification status given to a testimony, with its reason."""

    __tablename__ = "assessments"
    __table_args__ = (
        sa.CheckConstraint(_listed("kind", [k.value for k in AssessmentKind]), name="known_kind"),
        sa.Index("ix_assessments_testimony_kind", "testimony_id", "kind", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    testimony_id: Mapped[int] = mapped_column(sa.ForeignKey("testimonies.id"))
    kind: Mapped[str] = mapped_column(sa.String(16))
    value: Mapped[str] = mapped_column(sa.String(16))
    reason: Mapped[bytes | None] = sealed_column("assessments", "reason")
    reviewer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    testimony: Mapped[Testimony] = relationship()


class IncidentCoding(_OfTestimony, Base):
    """A reviewer's coding of an incident (type, month, region), which the source's own account stays beside."""

    __tablename__ = "incident_codings"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(sa.ForeignKey("incidents.id"), index=True)
    testimony_id: Mapped[int] = mapped_column(sa.ForeignKey("testimonies.id"), index=True)
    type: Mapped[str] = mapped_column(sa.String(48))
    month: Mapped[str | None] = mapped_column(sa.String(7))
    region: Mapped[str | None] = mapped_column(sa.String(64))
    reason: Mapped[bytes | None] = sealed_column("incident_codings", "reason")
    reviewer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    testimony: Mapped[Testimony] = relationship()


class RecordLink(_OfTestimony, Base):
    """This testimony corroborates, or duplicates, another one."""

    __tablename__ = "record_links"
    __table_args__ = (
        sa.CheckConstraint(_listed("kind", [k.value for k in LinkKind]), name="known_kind"),
        sa.CheckConstraint("testimony_id <> other_id", name="not_itself"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    testimony_id: Mapped[int] = mapped_column(sa.ForeignKey("testimonies.id"), index=True)
    other_id: Mapped[int] = mapped_column(sa.ForeignKey("testimonies.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    reason: Mapped[bytes | None] = sealed_column("record_links", "reason")
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"))

    testimony: Mapped[Testimony] = relationship(foreign_keys=[testimony_id])
    other: Mapped[Testimony] = relationship(foreign_keys=[other_id])


class IdentifyingSpan(Base):
    """A stretch of the narrative (character offsets, end excluded) that identifies someone, so that exports below
    `confidential` replace it. `revision` is the testimony's revision it was marked on: a later correction of the
    narrative makes it stale."""

    __tablename__ = "identifying_spans"
    __table_args__ = (
        sa.CheckConstraint(_listed("kind", [k.value for k in SpanKind]), name="known_kind"),
        sa.CheckConstraint("start >= 0 AND stop > start", name="ordered"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    testimony_id: Mapped[int] = mapped_column(sa.ForeignKey("testimonies.id"), index=True)
    start: Mapped[int] = mapped_column()
    stop: Mapped[int] = mapped_column()
    kind: Mapped[str] = mapped_column(sa.String(16))
    revision: Mapped[int] = mapped_column()
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"))


class AnalystNote(_OfTestimony, Base):
    """A reviewer's note on a testimony, sealed."""

    __tablename__ = "analyst_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    testimony_id: Mapped[int] = mapped_column(sa.ForeignKey("testimonies.id"), index=True)
    text: Mapped[bytes | None] = sealed_column("analyst_notes", "text")
    author_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    testimony: Mapped[Testimony] = relationship()
