"""Data keys in the database: create, open, destroy, rewrap; and the state of the KEK versions.

Every record that holds content or identity owns one data key. The key exists in clear only in memory while a
request or command uses it; the database stores it wrapped by a KEK version from the keyring. Rotation adds a KEK
version and rewraps the data keys in batches (the data they protect is never re-encrypted); shredding deletes the
wrapping, after which nothing the key protected can be read again by anyone, from the live database or from a
backup once the KEK versions that wrapped it there are retired.

These functions change the current database session and never commit; the caller's transaction does.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from intake.core.crypto import KeyringOutdated, current_keyring, keyring_holding
from intake.core.crypto.envelope import (
    OpenDataKey,
    Unreadable,
    new_data_key,
    unwrap_data_key,
    wrap_data_key,
    wrapped_kek_version,
)
from intake.core.crypto.models import DATA_KEY_OWNERS, DataKey, KekVersion
from intake.core.db import db, transaction_cache, utcnow
from intake.core.keys import Keyring, UnknownKeyError

__all__ = [
    "KeyDestroyed",
    "KekStatus",
    "PrimaryChanged",
    "RewrapBatch",
    "create_data_key",
    "destroy_data_key",
    "kek_status",
    "keys_not_under",
    "open_data_key",
    "primary_kek_version",
    "register_keyring_versions",
    "rewrap_batch",
]

log = logging.getLogger("intake.crypto")


class PrimaryChanged(KeyringOutdated):
    """The KEK version a rewrap moves keys to is no longer the primary one: another rotation happened meanwhile."""


class KeyDestroyed(Exception):
    """The data key was destroyed (shredded): what it protected is gone for good."""

    def __init__(self, destroyed_at: datetime | None) -> None:
        super().__init__("the data key was destroyed")
        self.destroyed_at = destroyed_at


def _session(session: Session | None) -> Session:
    return session if session is not None else db.session()


def _insert_ignoring_duplicates(session: Session, rows: list[dict[str, Any]]) -> None:
    dialect = session.get_bind().dialect.name
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(KekVersion).values(rows).on_conflict_do_nothing(index_elements=["version"]))


def register_keyring_versions(keyring: Keyring, session: Session | None = None) -> None:
    """Record in the database every KEK version the keyring holds that the database does not know yet.

    On a new database the keyring's primary becomes the primary; later versions (written to the keyring by a
    rotation that stopped before it reached the database) are added as active.
    """
    session = _session(session)
    known = set(session.scalars(sa.select(KekVersion.version)))
    has_primary = session.scalar(sa.select(KekVersion.version).where(KekVersion.state == "primary")) is not None
    rows = [
        {"version": v, "state": "primary" if (v == keyring.primary_kek_version and not has_primary) else "active",
         "added_at": utcnow()}
        for v in keyring.kek_versions if v not in known
    ]
    if rows:
        _insert_ignoring_duplicates(session, rows)


def primary_kek_version(session: Session | None = None, *, lock: bool = True) -> int:
    """The KEK version new data keys are wrapped under, as the database records it.

    On PostgreSQL the row is locked for share until the transaction ends, so `intake keys retire` (which locks
    it for update) cannot retire a version while a transaction is wrapping a key under it.
    """
    session = _session(session)
    known = transaction_cache(session, "primary_kek_version") if lock else {}
    if "version" in known:  # read (and locked) earlier in this transaction
        return int(known["version"])
    query = sa.select(KekVersion).where(KekVersion.state == "primary")
    if lock and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    row = session.scalar(query)
    if row is None:
        register_keyring_versions(current_keyring(), session)
        row = session.scalar(query)
        if row is None:
            raise KeyringOutdated("The database records no primary KEK version.")
    if lock:
        known["version"] = row.version
    return row.version


def _new_key_id() -> int:
    # Random 63-bit ids: a data key's id is part of what its wrapping and its ciphertexts are bound to, so it is
    # chosen before the row is written; random ids also reveal neither the order nor the number of records.
    return secrets.randbits(63) or 1


def create_data_key(owner: str, *, session: Session | None = None) -> tuple[DataKey, OpenDataKey]:
    """A new random data key for a record of kind `owner`, wrapped under the primary KEK version.

    Returns the row (added to the session) and the key, open, for sealing the record's fields now.
    """
    if owner not in DATA_KEY_OWNERS:
        raise ValueError(f"unknown data key owner {owner!r}")
    session = _session(session)
    version = primary_kek_version(session)
    try:
        kek = keyring_holding(version).kek(version)
    except KeyringOutdated:
        # A process that cannot reload its keyring after a rotation keeps wrapping new keys under its own primary
        # version while the database still counts that version as active (not retired): nothing is lost, and
        # `intake keys retire` refuses until a rewrap has moved these keys too.
        fallback = current_keyring().primary_kek_version
        state_query = sa.select(KekVersion.state).where(KekVersion.version == fallback)
        if session.get_bind().dialect.name == "postgresql":
            state_query = state_query.with_for_update(read=True)
        if session.scalar(state_query) != "active":
            raise
        log.warning("new data key wrapped under the previous KEK version; restart to use the new one",
                    extra={"kek_version": fallback, "primary": version})
        version = fallback
        kek = current_keyring().kek(version)
    key = new_data_key()
    key_id = _new_key_id()
    row = DataKey(id=key_id, owner=owner, kek_version=version,
                  wrapped=wrap_data_key(kek, version, key, key_id=key_id, owner=owner), created_at=utcnow())
    session.add(row)
    return row, OpenDataKey(key_id, key)


def open_data_key(row: DataKey) -> OpenDataKey:
    """Unwrap a stored data key. Raises `KeyDestroyed` after shredding and `Unreadable` if it was tampered with."""
    if row.destroyed_at is not None or row.wrapped is None or row.kek_version is None:
        raise KeyDestroyed(row.destroyed_at)
    if wrapped_kek_version(row.wrapped) != row.kek_version:
        raise Unreadable(f"data key {row.id} names another KEK version than its row")
    kek = keyring_holding(row.kek_version).kek(row.kek_version)
    return OpenDataKey(row.id, unwrap_data_key(kek, row.wrapped, key_id=row.id, owner=row.owner))


def destroy_data_key(row: DataKey) -> None:
    """Shred: delete the wrapped key, so that nothing it protected can ever be opened again."""
    row.wrapped = None
    row.kek_version = None
    row.destroyed_at = utcnow()


@dataclass(frozen=True)
class RewrapBatch:
    """What one call of `rewrap_batch` did: keys examined and rewrapped, and the last id it looked at."""

    examined: int
    rewrapped: int
    last_id: int


# PostgreSQL: one statement per batch, the new wrappings passed as arrays. The batch is a run of consecutive ids, so
# the id range lets the planner read just those rows by primary key instead of scanning the table for each batch.
_REWRAP_POSTGRESQL_SQL = (
    "UPDATE data_keys SET wrapped = b.wrapped, kek_version = %s, rewrapped_at = %s "
    "FROM unnest(%s::bigint[], %s::integer[], %s::bytea[]) AS b (id, old, wrapped) "
    "WHERE data_keys.id = b.id AND data_keys.kek_version = b.old AND data_keys.id BETWEEN %s AND %s"
)


_PENDING_POSTGRESQL_SQL = (
    "SELECT id, owner, kek_version, wrapped FROM data_keys "
    "WHERE id > %s AND kek_version IS NOT NULL AND kek_version <> %s ORDER BY id LIMIT %s"
)


@contextlib.contextmanager
def _driver_cursor(session: Session) -> Iterator[Any]:
    """A psycopg cursor on the session's connection, inside its transaction.

    Rewrapping moves every wrapped key through the client and back; with psycopg's binary format the keys and the
    arrays of new wrappings travel as bytes rather than as hex text that both sides must encode and parse.
    """
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        yield cursor
    finally:
        cursor.close()


def rewrap_batch(session: Session, keyring: Keyring, *, target: int, batch_size: int, after_id: int = 0,
                 unreadable: set[int] | None = None) -> RewrapBatch:
    """Rewrap up to `batch_size` data keys with ids above `after_id` not yet under KEK version `target`.

    Only the wrapping changes, in one statement per batch that also checks each key is still under the version it
    was read with, so a key shredded or rewrapped meanwhile by someone else is left alone. Call it with the
    previous batch's `last_id` until it examines nothing; after an interruption, start again from 0: what is left is
    whatever is not on `target`.

    A data key that does not unwrap (damaged, or under a KEK version the keyring lacks) raises `Unreadable`, unless
    a set is passed as `unreadable`: then its id is added there and it is left as it is.
    """
    # Still the primary version? Checked in this batch's transaction (locked for share on PostgreSQL, so a rotation
    # or a retirement waits for the batch): a rewrap left running across a rotation must not move keys back to a
    # version that is about to be retired.
    postgresql = session.get_bind().dialect.name == "postgresql"
    state_query = sa.select(KekVersion.state).where(KekVersion.version == target)
    if postgresql:
        state_query = state_query.with_for_update(read=True)
    if session.scalar(state_query) != "primary":
        raise PrimaryChanged(f"KEK version {target} is no longer the primary version; run the rewrap again.")
    table = cast(sa.Table, DataKey.__table__)
    if postgresql:
        with _driver_cursor(session) as cursor:
            cursor.execute(_PENDING_POSTGRESQL_SQL, (after_id, target, batch_size), binary=True)
            rows: Sequence[Any] = cursor.fetchall()
    else:
        rows = session.execute(
            sa.select(table.c.id, table.c.owner, table.c.kek_version, table.c.wrapped)
            .where(table.c.id > after_id, table.c.kek_version.is_not(None), table.c.kek_version != target)
            .order_by(table.c.id)
            .limit(batch_size)
        ).all()
    if not rows:
        return RewrapBatch(0, 0, after_id)
    new_kek = keyring.kek(target)
    ids: list[int] = []
    olds: list[int] = []
    wrappings: list[bytes] = []
    for key_id, owner, version, wrapped in rows:
        try:
            if wrapped_kek_version(wrapped) != version:
                raise Unreadable(f"data key {key_id} names another KEK version than its row")
            data_key = unwrap_data_key(keyring.kek(version), wrapped, key_id=key_id, owner=owner)
        except (Unreadable, UnknownKeyError):
            if unreadable is None:
                raise
            unreadable.add(key_id)
            continue
        ids.append(key_id)
        olds.append(version)
        wrappings.append(wrap_data_key(new_kek, target, data_key, key_id=key_id, owner=owner))
    if ids:
        now = utcnow()
        if postgresql:
            with _driver_cursor(session) as cursor:
                cursor.execute(_REWRAP_POSTGRESQL_SQL, (target, now, ids, olds, wrappings, ids[0], ids[-1]),
                               binary=True)
        else:
            session.connection().execute(
                table.update()
                .where(table.c.id == sa.bindparam("b_id"), table.c.kek_version == sa.bindparam("b_old"))
                .values(wrapped=sa.bindparam("b_wrapped"), kek_version=target, rewrapped_at=now),
                [{"b_id": i, "b_old": o, "b_wrapped": w} for i, o, w in zip(ids, olds, wrappings, strict=True)],
            )
    return RewrapBatch(len(rows), len(ids), int(rows[-1][0]))


def keys_not_under(version: int, session: Session | None = None) -> int:
    """How many data keys (shredded ones aside) are wrapped under another KEK version than `version`."""
    session = _session(session)
    return session.scalar(sa.select(sa.func.count()).where(
        DataKey.kek_version.is_not(None), DataKey.kek_version != version)) or 0


@dataclass(frozen=True)
class KekStatus:
    """One KEK version: its state in the database, whether this keyring holds it, and how many keys it wraps."""

    version: int
    state: str
    in_keyring: bool
    data_keys: int


def kek_status(keyring: Keyring, session: Session | None = None) -> tuple[list[KekStatus], int]:
    """Every KEK version the database or the keyring knows, and the number of destroyed data keys."""
    session = _session(session)
    states: dict[int, str] = {v: st for v, st in session.execute(sa.select(KekVersion.version, KekVersion.state))}
    counts: dict[int, int] = {v: n for v, n in session.execute(
        sa.select(sa.func.coalesce(DataKey.kek_version, 0), sa.func.count()).where(DataKey.kek_version.is_not(None))
        .group_by(DataKey.kek_version)
    )}
    destroyed = session.scalar(sa.select(sa.func.count()).where(DataKey.destroyed_at.is_not(None))) or 0
    versions = sorted(set(states) | set(keyring.kek_versions) | set(counts))
    result = [
        KekStatus(v, states.get(v, "unregistered"), v in keyring.kek_versions, int(counts.get(v, 0)))
        for v in versions
    ]
    return result, int(destroyed)
