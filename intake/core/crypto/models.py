"""Wrapped data keys and the state of each key-encryption-key version, as the database knows them.

No key material lives here in clear: a data key is stored only wrapped by a KEK from the keyring, and the KEK
versions table holds numbers and dates. The versions table is what every process consults before wrapping a
new data key, so that a process that opened an older keyring at start can never wrap a key under a version that
has been retired since.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from intake.core.db import Base, UTCDateTime, utcnow

# What a data key protects. Each kind is also part of what its wrapping is bound to.
DATA_KEY_OWNERS = ("testimony", "person", "account")


class DataKey(Base):
    """One record's AES-256 data key, wrapped by a KEK version; destroyed (shredded) by deleting the wrapping."""

    __tablename__ = "data_keys"
    __table_args__ = (
        sa.CheckConstraint("owner IN ({})".format(", ".join(f"'{o}'" for o in DATA_KEY_OWNERS)), name="known_owner"),
        sa.CheckConstraint(
            "(destroyed_at IS NULL AND wrapped IS NOT NULL AND kek_version IS NOT NULL) OR "
            "(destroyed_at IS NOT NULL AND wrapped IS NULL AND kek_version IS NULL)",
            name="wrapped_or_destroyed",
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(16))
    # Not indexed: rewrapping changes it on every row, and without an index PostgreSQL can update rows in place (HOT).
    kek_version: Mapped[int | None] = mapped_column(sa.Integer)
    wrapped: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rewrapped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def destroyed(self) -> bool:
        return self.destroyed_at is not None

    def __repr__(self) -> str:
        return f"<DataKey {self.id} {self.owner} kek={self.kek_version}>"


class KekVersion(Base):
    """A KEK version the keyring holds or held: primary (wraps new keys), active (still unwraps), or retired."""

    __tablename__ = "kek_versions"
    __table_args__ = (sa.CheckConstraint("state IN ('primary', 'active', 'retired')", name="known_state"),)

    version: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    state: Mapped[str] = mapped_column(sa.String(16))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
