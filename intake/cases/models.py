"""A case is a legal team's file: who works on it, and which testimonies and incidents are in it. Only records whose
consent permits at least one legal purpose can be added; its members open them through `intake.core.access`."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from intake.core.db import Base, UTCDateTime, utcnow


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(sa.String(60), unique=True)  # the team's own reference, e.g. "LC-2024-07"
    title: Mapped[str] = mapped_column(sa.String(200))
    recipient_id: Mapped[int | None] = mapped_column(sa.ForeignKey("recipients.id"))  # the intended recipient
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"))


class CaseMember(Base):
    __tablename__ = "case_members"
    __table_args__ = (sa.UniqueConstraint("case_id", "account_id", name="uq_case_members_account"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id"), index=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    added_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"))


class CaseRecord(Base):
    """A testimony in a case; `incident_id` names one of its incidents when that incident was what was added (a
    testimony added whole has a row with none)."""

    __tablename__ = "case_records"
    __table_args__ = (
        sa.UniqueConstraint("case_id", "testimony_id", "incident_id", name="uq_case_records_item"),
        sa.Index("ix_case_records_testimony_case", "testimony_id", "case_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id"), index=True)
    testimony_id: Mapped[int] = mapped_column(sa.ForeignKey("testimonies.id"))
    incident_id: Mapped[int | None] = mapped_column(sa.ForeignKey("incidents.id"))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    added_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"))
