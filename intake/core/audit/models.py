"""The append-only audit tables: events, hash-chained in sequence, and the signed checkpoints over them.

Columns that take part in an event's hash are stored as text in one fixed form (times in `YYYY-MM-DDTHH:MM:SS.ffffffZ`,
lists and mappings as canonical JSON), so the verifier hashes exactly what the database holds without parsing it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from intake.core.db import Base

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_time(value: datetime) -> str:
    """The stored (and hashed) form of a time: UTC, microseconds, a trailing Z; it sorts as it reads."""
    if value.tzinfo is None:
        raise ValueError("naive datetimes are not stored; use intake.core.db.utcnow()")
    return value.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=UTC)


def canonical_json(value: Any) -> str:
    """One text for one value: sorted keys, no spaces, UTF-8 kept as is (floats are refused upstream)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class AuditTime(TypeDecorator[datetime]):
    """A UTC time stored as fixed-width text, the form that is hashed."""

    impl = sa.String(27)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> str | None:
        return None if value is None else format_time(value)

    def process_result_value(self, value: str | None, dialect: Any) -> datetime | None:
        return None if value is None else parse_time(value)


class CanonicalJSON(TypeDecorator[Any]):
    """JSON kept as canonical text, so the stored bytes are the hashed bytes."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else canonical_json(value)

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else json.loads(value)


class AuditEvent(Base):
    """One thing that happened: who did what to which records, and why. Never content, never secrets.

    `seq` numbers events 1, 2, 3… in the order they were appended. `entry` is the event as hashed: its columns
    in one text (`intake.core.audit.chain.encode_event`); the other columns repeat it for searching, and the
    verifier checks that they agree. `prev_hash` is the hash of event `seq - 1` (32 zero bytes for the first) and
    `hash` covers `prev_hash` and `entry`; it is also the event's leaf hash in the checkpoints' Merkle tree.
    """

    __tablename__ = "audit_events"
    __table_args__ = (sa.CheckConstraint("seq >= 1", name="seq_from_one"),)

    seq: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime] = mapped_column(AuditTime, index=True)
    actor_id: Mapped[int | None] = mapped_column(sa.Integer, index=True)
    actor_roles: Mapped[str] = mapped_column(sa.String(200), default="")
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    target_type: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    target_ids: Mapped[list[Any]] = mapped_column(CanonicalJSON, default=list)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    details: Mapped[dict[str, Any]] = mapped_column(CanonicalJSON, default=dict)
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
    entry: Mapped[str] = mapped_column(sa.Text)
    prev_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32))


class AuditCheckpoint(Base):
    """A signed statement of the log's size and Merkle root at one moment (a C2SP tlog checkpoint note).

    `frontier` holds the roots of the perfect subtrees of the tree at `tree_size` (largest first), so the next
    checkpoint hashes only the events appended since. A copy of every note is also appended to the checkpoint
    file outside the database.
    """

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(AuditTime)
    tree_size: Mapped[int] = mapped_column(sa.BigInteger, index=True)
    root_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    frontier: Mapped[bytes] = mapped_column(sa.LargeBinary)
    note: Mapped[str] = mapped_column(sa.Text)
