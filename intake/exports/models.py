"""An export is one case file built for one recipient and purpose: its state, its progress while it builds, the
fingerprints of what was handed over, and per record whether it went in, at which disclosure, and why."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from intake.core.db import Base, UTCDateTime, utcnow


class ExportStatus(enum.StrEnum):
    QUEUED = "queued"
    BUILDING = "building"
    READY = "ready"  # built, stored for download until `expires_at`
    DOWNLOADED = "downloaded"  # downloaded at least once; still stored until `expires_at`
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"


# States in which the file is, or will be, waiting to be downloaded: a withdrawal of consent cancels them.
PENDING = frozenset({ExportStatus.QUEUED, ExportStatus.BUILDING, ExportStatus.READY})


class CancelReason(enum.StrEnum):
    BY_MEMBER = "by_member"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    RECIPIENT_DEACTIVATED = "recipient_deactivated"


class Export(Base):
    __tablename__ = "exports"
    __table_args__ = (
        sa.CheckConstraint("status IN ({})".format(", ".join(f"'{s.value}'" for s in ExportStatus)),
                           name="known_status"),
        sa.Index("ix_exports_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    bundle_id: Mapped[str] = mapped_column(sa.String(36), unique=True)  # a UUID, also the stored file's name
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id"), index=True)
    recipient_id: Mapped[int] = mapped_column(sa.ForeignKey("recipients.id"), index=True)
    purpose: Mapped[str] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(16), default=ExportStatus.QUEUED.value)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    requested_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last progress of a running build
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    size: Mapped[int | None] = mapped_column(sa.BigInteger)  # of the encrypted file
    sha256: Mapped[str | None] = mapped_column(sa.String(64))  # of the encrypted file
    manifest_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    checkpoint_size: Mapped[int | None] = mapped_column(sa.BigInteger)  # audit tree size the proofs are against
    failure: Mapped[str | None] = mapped_column(sa.String(64))  # a short code, never content
    downloads: Mapped[int] = mapped_column(default=0)
    first_downloaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"))
    cancel_reason: Mapped[str | None] = mapped_column(sa.String(32))
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when the stored file was deleted


class ExportRecord(Base):
    """One testimony considered for an export, with the decision taken when the export was built."""

    __tablename__ = "export_records"
    __table_args__ = (
        sa.UniqueConstraint("export_id", "testimony_id", name="uq_export_records_testimony"),
        sa.Index("ix_export_records_testimony", "testimony_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    export_id: Mapped[int] = mapped_column(sa.ForeignKey("exports.id"), index=True)
    testimony_id: Mapped[int] = mapped_column(sa.ForeignKey("testimonies.id"))
    included: Mapped[bool] = mapped_column()
    disclosure: Mapped[str | None] = mapped_column(sa.String(16))
    reason: Mapped[str] = mapped_column(sa.String(32))  # the decision's reason code
    label: Mapped[str | None] = mapped_column(sa.String(32))  # its folder in the bundle
    withheld_attachments: Mapped[int] = mapped_column(default=0)
