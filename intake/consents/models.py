"""Stored consent: append-only versions per testimony, and withdrawals.

What the policy decides from is clear (which items were confirmed, the method, the grants, media, exclusions,
the review date, whether a witness, interpreter or guardian took part), so that decisions need no decryption.
What identifies someone (the witness's and interpreter's names, the best-interests note, how and when the person
may safely be contacted) is sealed under the testimony's data key.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from consent.records import (
    ConsentVersion,
    Disclosure,
    Exclusion,
    ExclusionKind,
    FollowUp,
    Grant,
    Medium,
    Method,
    MinorConsent,
    Purpose,
    ScriptItem,
    Withdrawal,
)
from intake.core.crypto.fields import sealed_column
from intake.core.crypto.models import DataKey
from intake.core.db import Base, UTCDateTime, utcnow

if TYPE_CHECKING:
    from intake.testimonies.models import Testimony

# The policy checks that these were given; their content is sealed, so a decision sees only that they were.
SEALED_MARK = "(sealed)"


class ConsentRecord(Base):
    """One consent version, never changed once written: a change of mind is a new version or a withdrawal."""

    __tablename__ = "consent_versions"
    __table_args__ = (
        sa.UniqueConstraint("testimony_id", "number", name="uq_consent_versions_number"),
        sa.CheckConstraint("method IN ({})".format(", ".join(f"'{m.value}'" for m in Method)), name="known_method"),
        sa.CheckConstraint("number >= 1", name="positive_number"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    testimony_id: Mapped[int] = mapped_column(sa.ForeignKey("testimonies.id"), index=True)
    number: Mapped[int] = mapped_column(default=1)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"))
    script_language: Mapped[str] = mapped_column(sa.String(8))
    script_hash: Mapped[str] = mapped_column(sa.String(64))
    method: Mapped[str] = mapped_column(sa.String(16))
    items: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    capacity_confirmed: Mapped[bool] = mapped_column(default=False)
    voluntariness_confirmed: Mapped[bool] = mapped_column(default=False)
    witness_present: Mapped[bool] = mapped_column(default=False)
    interpreter_present: Mapped[bool] = mapped_column(default=False)
    is_minor: Mapped[bool] = mapped_column(default=False)
    guardian_consented: Mapped[bool] = mapped_column(default=False)
    child_assented: Mapped[bool] = mapped_column(default=False)
    best_interests_given: Mapped[bool] = mapped_column(default=False)
    grants: Mapped[dict[str, str]] = mapped_column(sa.JSON, default=dict)  # purpose -> disclosure, granted only
    media: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    exclusions: Mapped[list[list[str]]] = mapped_column(sa.JSON, default=list)  # [kind, value] pairs
    follow_up_permitted: Mapped[bool] = mapped_column(default=False)
    review_date: Mapped[date | None] = mapped_column(sa.Date)
    particulars: Mapped[bytes | None] = sealed_column("consent_versions", "particulars")

    testimony: Mapped[Testimony] = relationship()

    @property
    def sealing_key(self) -> DataKey:
        return self.testimony.data_key

    def version(self, withdrawals: tuple[Withdrawal, ...] = ()) -> ConsentVersion:
        """This consent as the policy reads it, with the withdrawals recorded since."""
        return ConsentVersion(
            script_language=self.script_language,
            script_hash=self.script_hash,
            items_confirmed=frozenset(ScriptItem(i) for i in self.items if i in ScriptItem.__members__.values()),
            method=Method(self.method),
            interviewer=str(self.recorded_by_id or ""),
            recorded_at=self.recorded_at,
            capacity_confirmed=self.capacity_confirmed,
            voluntariness_confirmed=self.voluntariness_confirmed,
            grants={Purpose(p): Grant(True, Disclosure(d)) for p, d in self.grants.items()},
            media=frozenset(Medium(m) for m in self.media),
            witness=SEALED_MARK if self.witness_present else None,
            interpreter=SEALED_MARK if self.interpreter_present else None,
            minor=MinorConsent(self.guardian_consented, self.child_assented,
                               SEALED_MARK if self.best_interests_given else "") if self.is_minor else None,
            follow_up=FollowUp(self.follow_up_permitted, SEALED_MARK if self.follow_up_permitted else ""),
            excluded=frozenset(Exclusion(ExclusionKind(k), v) for k, v in self.exclusions),
            review_date=self.review_date,
            withdrawals=withdrawals,
        )


class ConsentWithdrawal(Base):
    """Consent taken back, for every purpose or for some, and whether the person asked for erasure."""

    __tablename__ = "consent_withdrawals"

    id: Mapped[int] = mapped_column(primary_key=True)
    testimony_id: Mapped[int] = mapped_column(sa.ForeignKey("testimonies.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    purposes: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    received_how: Mapped[str] = mapped_column(sa.String(16))
    erasure: Mapped[bool] = mapped_column(default=False)
    recorded_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"))

    def withdrawal(self) -> Withdrawal:
        return Withdrawal(self.at, frozenset(Purpose(p) for p in self.purposes), self.received_how)

    def described(self) -> dict[str, Any]:
        return {"purposes": list(self.purposes), "received_how": self.received_how, "erasure": self.erasure}
