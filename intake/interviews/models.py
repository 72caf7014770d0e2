"""An interview that was not held: only that it was not, when, by whom and why, never anything about the person."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from intake.core.db import Base, UTCDateTime, utcnow


class InterviewNotHeld(Base):
    __tablename__ = "interviews_not_held"
    __table_args__ = (sa.CheckConstraint("stage IN ('readiness', 'consent')", name="known_stage"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    interviewer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"), index=True)
    stage: Mapped[str] = mapped_column(sa.String(16))
    reasons: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
