"""A recipient is an organisation that may receive case files: what kind it is (which decides the purposes a case
file may be sent to it for), where it is (which consent exclusions are matched against), the agreement on file,
and the age X25519 public keys the files are encrypted to. None of it is about a survivor, so it is stored clear."""

from __future__ import annotations

import enum
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from consent.records import Purpose
from consent.records import Recipient as PolicyRecipient
from intake.core.db import Base, UTCDateTime, utcnow


class RecipientCategory(enum.StrEnum):
    UN_MECHANISM = "un_mechanism"
    INTERNATIONAL_COURT = "international_court"
    DOMESTIC_PROSECUTOR = "domestic_prosecutor"
    REFERRAL_SERVICE = "referral_service"
    ADVOCACY = "advocacy"
    MEDIA = "media"


# The purposes a case file may be sent to a recipient of each category for.
CATEGORY_PURPOSES: dict[RecipientCategory, tuple[Purpose, ...]] = {
    RecipientCategory.UN_MECHANISM: (Purpose.UN_MECHANISMS,),
    RecipientCategory.INTERNATIONAL_COURT: (Purpose.INTERNATIONAL_JUSTICE,),
    RecipientCategory.DOMESTIC_PROSECUTOR: (Purpose.DOMESTIC_PROSECUTION,),
    RecipientCategory.REFERRAL_SERVICE: (Purpose.REFERRAL,),
    RecipientCategory.ADVOCACY: (Purpose.ADVOCACY,),
    RecipientCategory.MEDIA: (Purpose.MEDIA,),
}

# Purposes that make a record eligible for a legal team's case.
LEGAL_PURPOSES: tuple[Purpose, ...] = (Purpose.UN_MECHANISMS, Purpose.INTERNATIONAL_JUSTICE,
                                       Purpose.DOMESTIC_PROSECUTION)


class Recipient(Base):
    """An organisation registered to receive case files."""

    __tablename__ = "recipients"
    __table_args__ = (
        sa.CheckConstraint("category IN ({})".format(", ".join(f"'{c.value}'" for c in RecipientCategory)),
                           name="known_category"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The short name consent exclusions of the kind "this organisation" name (compared without regard to case).
    key: Mapped[str] = mapped_column(sa.String(80), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    category: Mapped[str] = mapped_column(sa.String(32))
    country: Mapped[str | None] = mapped_column(sa.String(2))  # ISO 3166-1 alpha-2; none for international bodies
    is_authority: Mapped[bool] = mapped_column(default=False)  # a state authority ("authorities of state X")
    agreement_reference: Mapped[str] = mapped_column(sa.String(200))
    agreement_date: Mapped[date] = mapped_column(sa.Date)
    contact: Mapped[str] = mapped_column(sa.String(500))
    age_recipients: Mapped[list[str]] = mapped_column(sa.JSON)  # age X25519 public keys ("age1...")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def purposes(self) -> tuple[Purpose, ...]:
        return CATEGORY_PURPOSES[RecipientCategory(self.category)]

    def for_policy(self) -> PolicyRecipient:
        """This recipient as `consent.policy` matches exclusions against it."""
        return PolicyRecipient(key=self.key, country=self.country, is_authority=self.is_authority)
