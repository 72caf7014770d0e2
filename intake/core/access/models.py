"""Who may review what: assignments of testimonies to reviewers, and explicit grants with a reason and an expiry."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from intake.core.db import Base, UTCDateTime, utcnow


class Assignment(Base):
    """A testimony given to a reviewer to work on."""

    __tablename__ = "assignments"
    __table_args__ = (sa.UniqueConstraint("testimony_id", "reviewer_id", name="uq_assignments_reviewer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    testimony_id: Mapped[int] = mapped_column(sa.ForeignKey("testimonies.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    assigned_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"))


class AccessGrant(Base):
    """Access to one testimony for one account beyond its assignments, for a stated reason, until it expires or is
    revoked."""

    __tablename__ = "access_grants"
    __table_args__ = (sa.CheckConstraint("expires_at > granted_at", name="expires_after_granted"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    testimony_id: Mapped[int] = mapped_column(sa.ForeignKey("testimonies.id"), index=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(sa.String(2000))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    granted_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"))
