"""The hash chain: how an event's hash is computed, and how appends are numbered and linked.

An event's entry is its columns as stored, joined by U+001F, with U+001E for an absent value: sequence number,
time, actor id, actor roles, action, target type, target ids (canonical JSON), reason, details (canonical JSON),
request id. No stored text may contain either character (`record_event` refuses control characters; JSON escapes
them), so the entry is unambiguous. The event's hash is SHA-256 over the byte 0x00, ``intake-audit-event/1`` and a
newline, the previous event's hash (32 bytes; 32 zero bytes before the first event) and the UTF-8 of the entry.
That is the RFC 9162 leaf hash of the leaf ``intake-audit-event/1\n || prev_hash || entry``: the event hashes are
the leaf hashes of the checkpoints' Merkle tree, so one hash per event serves both the chain and the tree. Anyone
can recompute it from a database dump; the README states the rule too.

Events recorded in a transaction are appended when it commits (`append_pending`, from the session's
``before_commit``): numbered, timed and linked under a lock that serialises appenders (a transaction-scoped advisory
lock on PostgreSQL; on SQLite the write lock that writing transactions take at BEGIN IMMEDIATE), and inserted in
that same transaction. The lock is released by the commit or rollback, so a rolled-back change leaves no event and
no gap, and events recorded in a savepoint that is rolled back are dropped with it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, UOWTransaction

from intake.core.audit.models import AuditEvent, canonical_json, format_time, parse_time
from intake.core.db import innermost_transaction, utcnow, within_transaction

DOMAIN = b"intake-audit-event/1\n"
GENESIS = bytes(32)
SEPARATOR = "\x1f"  # between columns (the unit separator; no stored text may contain it)
ABSENT = "\x1e"  # an absent value (the record separator; likewise refused in stored text)
# pg_advisory_xact_lock key: the ASCII of "auditlog" read as a signed 64-bit integer.
ADVISORY_LOCK_KEY = int.from_bytes(b"auditlog", "big", signed=True)
PENDING = "intake.audit.pending"

_sha256 = hashlib.sha256


def encode_event(
    seq: int, occurred_at: str, actor_id: int | None, actor_roles: str, action: str, target_type: str | None,
    target_ids: str, reason: str | None, details: str, request_id: str | None,
) -> str:
    """What an event's hash covers after the previous hash, from the stored (text) forms of its columns."""
    return SEPARATOR.join((
        str(seq), occurred_at, ABSENT if actor_id is None else str(actor_id), actor_roles, action,
        ABSENT if target_type is None else target_type, target_ids, ABSENT if reason is None else reason,
        details, ABSENT if request_id is None else request_id,
    ))


def encoded_column() -> sa.ColumnElement[str]:
    """`encode_event` computed by the database over the stored columns: the verifier has the database compare it
    with `entry`, which is what it hashes itself."""
    separator = sa.literal(SEPARATOR, sa.Text)
    absent = sa.literal(ABSENT, sa.Text)
    first, *rest = (sa.func.coalesce(sa.cast(column, sa.Text), absent) for column in (
        AuditEvent.seq, AuditEvent.occurred_at, AuditEvent.actor_id, AuditEvent.actor_roles, AuditEvent.action,
        AuditEvent.target_type, AuditEvent.target_ids, AuditEvent.reason, AuditEvent.details, AuditEvent.request_id,
    ))
    expression: sa.ColumnElement[str] = first
    for part in rest:
        expression = expression.concat(separator).concat(part)
    return expression


LEAF_PREFIX = b"\x00" + DOMAIN


def event_hash(prev_hash: bytes, entry: str) -> bytes:
    return _sha256(LEAF_PREFIX + prev_hash + entry.encode()).digest()


def entry_of(event: AuditEvent) -> str:
    """The entry `event`'s attributes make (it is numbered already)."""
    return encode_event(
        event.seq, format_time(event.occurred_at), event.actor_id, event.actor_roles or "", event.action,
        event.target_type, canonical_json(event.target_ids), event.reason, canonical_json(event.details),
        event.request_id,
    )


def hash_of(event: AuditEvent) -> bytes:
    """The hash `event` must carry, computed from its attributes (numbered and linked already)."""
    return event_hash(event.prev_hash, entry_of(event))


@dataclass(frozen=True)
class Head:
    """The log's last event and last checkpoint, read under the append lock."""

    seq: int
    hash: bytes
    checkpoint_size: int | None
    checkpoint_at: datetime | None
    first_at: datetime | None


_HEAD_QUERY = (
    "SELECT (SELECT seq FROM audit_events ORDER BY seq DESC LIMIT 1), "
    "(SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1), "
    "(SELECT tree_size FROM audit_checkpoints ORDER BY id DESC LIMIT 1), "
    "(SELECT created_at FROM audit_checkpoints ORDER BY id DESC LIMIT 1), "
    "(SELECT occurred_at FROM audit_events WHERE seq = 1)"
)


def lock_and_read_head(connection: sa.Connection) -> Head:
    """Take the append lock, then read the head.

    On PostgreSQL both go to the server in one round trip (two statements in one simple query: each statement of
    it takes its own snapshot, so the read sees every append committed before the lock was granted). Appenders
    hold the lock until they commit, so every round trip saved while holding it raises the rate they append at.
    """
    if connection.dialect.name == "postgresql":
        cursor: Any = connection.connection.cursor()
        try:
            cursor.execute(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_KEY}); {_HEAD_QUERY}")
            cursor.nextset()
            row = cursor.fetchone()
        finally:
            cursor.close()
    else:
        row = connection.exec_driver_sql(_HEAD_QUERY).one()
    seq, digest, size, at, first = row
    return Head(0 if seq is None else int(seq), GENESIS if digest is None else bytes(digest),
                None if size is None else int(size), _time_or_none(at), _time_or_none(first))


def _time_or_none(value: Any) -> datetime | None:
    # A stored time that does not read as one (the table was tampered with) must not stop every append: the
    # verifier reports it; here it only means no checkpoint is due by time.
    try:
        return None if value is None else parse_time(value)
    except (TypeError, ValueError):
        return None


def lock(connection: sa.Connection) -> None:
    """Serialise appenders until this transaction ends (PostgreSQL; SQLite writers already hold the write lock)."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})


def add_pending(session: Session, audit_event: AuditEvent) -> None:
    """Hold `audit_event` until the session commits (with the transaction or savepoint it was recorded in)."""
    session.info.setdefault(PENDING, []).append((audit_event, innermost_transaction(session)))


def append_pending(session: Session) -> list[AuditEvent]:
    """Number, link and add the events recorded in this transaction; return them.

    The rest of the transaction is flushed first, so that every row lock it needs is taken before the append
    lock, which is then held only for the events' INSERT and the commit: appenders queue for as short a time as
    possible, and two transactions never wait for each other's locks in opposite orders.
    """
    pending: list[tuple[AuditEvent, Any]] = session.info.pop(PENDING, [])
    if not pending:
        return []
    session.flush()
    connection = session.connection()
    current = lock_and_read_head(connection)
    seq, previous = current.seq, current.hash
    appended = utcnow()
    events = [audit_event for audit_event, _ in pending]
    for audit_event in events:
        seq += 1
        audit_event.seq = seq
        audit_event.occurred_at = appended  # times follow the sequence
        audit_event.prev_hash = previous
        audit_event.entry = entry_of(audit_event)
        audit_event.hash = previous = event_hash(previous, audit_event.entry)
    session.add_all(events)
    from intake.core.audit import checkpoints

    checkpoints.after_append(session, connection, events, current)
    return events


@event.listens_for(Session, "before_commit")
def _append_on_commit(session: Session) -> None:
    if not session.in_nested_transaction():
        append_pending(session)


@event.listens_for(Session, "before_flush")
def _refuse_strays(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    if any(isinstance(o, AuditEvent) and o.seq is None for o in session.new):
        raise RuntimeError("audit events are appended with intake.core.audit.record_event, never added directly")


@event.listens_for(Session, "after_soft_rollback")
def _forget_pending(session: Session, previous_transaction: Any) -> None:
    # Events recorded in the transaction or savepoint rolled back did not happen.
    pending = session.info.get(PENDING)
    if pending:
        session.info[PENDING] = [p for p in pending if not within_transaction(p[1], previous_transaction)]
