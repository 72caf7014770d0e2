"""A person in the identity vault: a pseudonym in clear, everything that identifies them sealed."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from intake.core.crypto.fields import sealed_column
from intake.core.crypto.models import DataKey
from intake.core.db import Base, UTCDateTime, utcnow


class Person(Base):
    """Someone who gave testimony. Testimonies name them by `pseudonym` only.

    `identity` is one sealed JSON document (name, date of birth, contacts, relatives, exact addresses) under the
    person's own data key; it is empty for a person who chose to remain anonymous. `name_tag` is the blind index of
    the name and birth year (see `intake.core.crypto.blind_index`).
    """

    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(primary_key=True)
    pseudonym: Mapped[str] = mapped_column(sa.String(16), unique=True)
    data_key_id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), sa.ForeignKey("data_keys.id"), unique=True
    )
    identity: Mapped[bytes | None] = sealed_column("persons", "identity")
    name_tag: Mapped[str | None] = mapped_column(sa.String(8), index=True)
    # The tag of the other reading of a Latin name (see `intake.core.crypto.blind_index`), when it has one.
    other_name_tag: Mapped[str | None] = mapped_column(sa.String(8), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"))

    data_key: Mapped[DataKey] = relationship(lazy="joined")

    @property
    def sealing_key(self) -> DataKey:
        return self.data_key

    def __repr__(self) -> str:
        return f"<Person {self.pseudonym}>"
