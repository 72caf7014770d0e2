"""Testimonies and attachments: coarse classification in clear, content sealed under the testimony's data key."""

from __future__ import annotations

import enum
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from intake.core.crypto.fields import sealed_column
from intake.core.crypto.models import DataKey
from intake.core.db import Base, UTCDateTime, utcnow


class TestimonyStatus(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    REVIEWED = "reviewed"
    ARCHIVED = "archived"


class Medium(enum.StrEnum):
    AUDIO = "audio"
    PHOTO = "photo"
    VIDEO = "video"
    DOCUMENT = "document"


class Testimony(Base):
    """One interview's testimony. The narrative and everything else a person said is sealed."""

    __tablename__ = "testimonies"
    __table_args__ = (
        sa.CheckConstraint("status IN ({})".format(", ".join(f"'{s.value}'" for s in TestimonyStatus)),
                           name="known_status"),
        sa.UniqueConstraint("interviewer_id", "idempotency_key", name="uq_testimonies_idempotency_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pseudonym: Mapped[str] = mapped_column(sa.ForeignKey("persons.pseudonym"), index=True)
    interviewer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"),
                                                       index=True)
    data_key_id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), sa.ForeignKey("data_keys.id"), unique=True
    )
    status: Mapped[str] = mapped_column(sa.String(16), default=TestimonyStatus.DRAFT.value)
    language: Mapped[str | None] = mapped_column(sa.String(8))
    region: Mapped[str | None] = mapped_column(sa.String(64))
    narrative: Mapped[bytes | None] = sealed_column("testimonies", "narrative")
    # What the interview itself was like: readiness answers, questions declined, pauses, wellbeing and referral.
    details: Mapped[bytes | None] = sealed_column("testimonies", "details")
    interviewed_on: Mapped[date | None] = mapped_column(sa.Date)
    # Raised by every saved change, so that a form sent from a page showing an older state is refused.
    revision: Mapped[int] = mapped_column(default=1)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(64))  # of the request that created it
    submission_digest: Mapped[str | None] = mapped_column(sa.String(64))
    submission_key: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    data_key: Mapped[DataKey] = relationship(lazy="joined")
    attachments: Mapped[list[Attachment]] = relationship(back_populates="testimony", order_by="Attachment.id")
    incidents: Mapped[list[Incident]] = relationship(back_populates="testimony", order_by="Incident.id",
                                                     cascade="all, delete-orphan")

    @property
    def sealing_key(self) -> DataKey:
        return self.data_key

    def __repr__(self) -> str:
        return f"<Testimony {self.id} {self.pseudonym}>"


class Attachment(Base):
    """An encrypted original, immutable once stored. Its chunks are in `attachment_chunks` or in a file."""

    __tablename__ = "attachments"
    __table_args__ = (
        sa.CheckConstraint("medium IN ({})".format(", ".join(f"'{m.value}'" for m in Medium)), name="known_medium"),
        sa.CheckConstraint("storage IN ('database', 'files')", name="known_storage"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    testimony_id: Mapped[int] = mapped_column(sa.ForeignKey("testimonies.id"), index=True)
    medium: Mapped[str] = mapped_column(sa.String(16))
    graphic: Mapped[bool] = mapped_column(default=False)
    storage: Mapped[str] = mapped_column(sa.String(16))
    blob_name: Mapped[str] = mapped_column(sa.String(32), unique=True)
    stream_header: Mapped[bytes] = mapped_column(sa.LargeBinary)
    stored_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    details: Mapped[bytes | None] = sealed_column("attachments", "details")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"))

    testimony: Mapped[Testimony] = relationship(back_populates="attachments")

    @property
    def sealing_key(self) -> DataKey:
        return self.testimony.data_key


class AttachmentChunk(Base):
    """One encrypted chunk of an attachment stored in the database."""

    __tablename__ = "attachment_chunks"

    attachment_id: Mapped[int] = mapped_column(sa.ForeignKey("attachments.id", ondelete="CASCADE"),
                                               primary_key=True)
    idx: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes | None] = sealed_column("attachment_chunks", "data")


class Incident(Base):
    """One thing that happened, as the source told it. Its type, month and region are clear for filtering;
    the date as given, the place, victims, alleged perpetrators and the source's relation to it are sealed."""

    __tablename__ = "incidents"
    # The reviewer's queue filtered on an incident type reads matching testimony ids from these, in id order.
    __table_args__ = (
        sa.Index("ix_incidents_type_region", "type", "region", "testimony_id"),
        sa.Index("ix_incidents_type_month", "type", "month", "region", "testimony_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    testimony_id: Mapped[int] = mapped_column(sa.ForeignKey("testimonies.id"), index=True)
    type: Mapped[str] = mapped_column(sa.String(48))
    month: Mapped[str | None] = mapped_column(sa.String(7))  # YYYY-MM of the (first) date, when known
    region: Mapped[str | None] = mapped_column(sa.String(64))
    details: Mapped[bytes | None] = sealed_column("incidents", "details")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    testimony: Mapped[Testimony] = relationship(back_populates="incidents")

    @property
    def sealing_key(self) -> DataKey:
        return self.testimony.data_key
