"""Signed checkpoints: the log's size and RFC 9162 Merkle root, signed with the keyring's audit key.

A checkpoint is a C2SP tlog-checkpoint note (origin, tree size, root hash) signed as a C2SP signed note with
Ed25519. The tree's leaf hashes are the events' hashes in sequence order (`chain`). Checkpoints are made on demand
(`intake audit checkpoint`) and, inside the transaction that appends events, whenever `AUDIT_CHECKPOINT_EVERY`
events or `AUDIT_CHECKPOINT_MINUTES` minutes have passed since the previous one. Each note is kept in the
database and, once its transaction has committed, appended to the checkpoint file outside it, so deleting or
rewriting the database's copy cannot hide a truncation.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from intake.core.audit.chain import GENESIS, Head, append_pending, encoded_column, event_hash, lock
from intake.core.audit.merkle import CompactRange, root_of_leaf_hashes
from intake.core.audit.models import AuditCheckpoint, AuditEvent, format_time
from intake.core.audit.note import Checkpoint, Signer, Verifier, open_checkpoint, parse_note, sign_checkpoint
from intake.core.db import innermost_transaction, utcnow, within_transaction
from intake.core.files import fsync_directory
from intake.core.keys import Keyring, KeyringError

log = logging.getLogger("intake.audit")

SIGNING_LABEL = "checkpoint-ed25519"
FILE_NOTES = "intake.audit.file_notes"
_BATCH = 10_000
_TAIL = 64 * 1024  # bytes read from the end of the checkpoint file to find its last line


def signer(keyring: Keyring, origin: str) -> Signer:
    """The Ed25519 signer of checkpoints: a seed derived from the keyring's audit-signing seed."""
    return Signer(origin, keyring.subkey("audit-signing", label=SIGNING_LABEL))


def verifier(keyring: Keyring, origin: str) -> Verifier:
    return signer(keyring, origin).verifier


def checkpoint_file(config: Any) -> Path:
    """Where notes are appended outside the database (`AUDIT_CHECKPOINT_FILE`, else in the instance folder)."""
    configured = config.get("AUDIT_CHECKPOINT_FILE") or ""
    if configured:
        return Path(configured)
    return Path(config["INSTANCE_PATH"]) / "audit-checkpoints.jsonl"


class CheckpointRefused(Exception):
    """The log in the database does not extend what was signed last: signing now would vouch for a forgery."""


@dataclass(frozen=True)
class LastCheckpoint:
    id: int
    tree_size: int
    root_hash: bytes
    frontier: bytes
    note: str


def last_checkpoint(connection: sa.Connection) -> LastCheckpoint | None:
    row = connection.execute(
        sa.select(AuditCheckpoint.id, AuditCheckpoint.tree_size, AuditCheckpoint.root_hash,
                  AuditCheckpoint.frontier, AuditCheckpoint.note).order_by(AuditCheckpoint.id.desc()).limit(1)
    ).first()
    if row is None:
        return None
    return LastCheckpoint(int(row[0]), int(row[1]), bytes(row[2]), bytes(row[3]), str(row[4]))


def _signed_tree(previous: LastCheckpoint, verifier_: Verifier, origin: str) -> CompactRange:
    """The tree the previous checkpoint signed, from its frontier, once its note, columns and frontier agree."""
    try:
        signed, _ = open_checkpoint(previous.note, [verifier_])
        tree = CompactRange.from_bytes(previous.tree_size, previous.frontier)
    except ValueError as exc:
        raise CheckpointRefused(f"checkpoint {previous.id} does not open with this log's key: {exc}") from None
    if (signed.origin, signed.size, signed.root_hash) != (origin, previous.tree_size, previous.root_hash) \
            or tree.root() != signed.root_hash:
        raise CheckpointRefused(f"checkpoint {previous.id}'s columns or frontier differ from what it signed")
    return tree


def last_file_checkpoint(path: Path) -> Checkpoint | None:
    """The checkpoint on the checkpoint file's last line (None if there is no file or it is empty)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _TAIL))
            tail = handle.read()
    except FileNotFoundError:
        return None
    lines = [line for line in tail.split(b"\n") if line.strip()]
    if not lines:
        return None
    try:
        entry = json.loads(lines[-1])
        return Checkpoint.from_text(parse_note(entry["note"])[0])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointRefused(f"the last line of {path} is not a checkpoint: {exc}") from None


def _check_against_file(connection: sa.Connection, path: Path | None) -> None:
    """The last checkpoint written outside the database must still be inside it (else the log was cut back)."""
    if path is None:
        return
    outside = last_file_checkpoint(path)
    if outside is None:
        return
    kept = connection.execute(sa.select(sa.func.count()).where(
        AuditCheckpoint.tree_size == outside.size, AuditCheckpoint.root_hash == outside.root_hash)).scalar()
    if not kept:
        raise CheckpointRefused(f"the checkpoint file's last checkpoint (size {outside.size}) is no longer in the "
                                "database")


def _hash_bytes(value: Any) -> bytes | None:
    return bytes(value) if isinstance(value, (bytes, bytearray, memoryview)) and len(value) == 32 else None


def _last_signed_hash(connection: sa.Connection, tree: CompactRange) -> bytes:
    """The hash of the last event the tree covers, checked against the tree.

    The tree's smallest perfect subtree ends with that event: its root is recomputed from the stored hashes of the
    events it spans (as many as the lowest set bit of the size says: a few, usually), so a stored hash that is not
    the one signed is caught here rather than chained onto.
    """
    if tree.size == 0:
        return GENESIS
    span = tree.size & -tree.size
    stored = [_hash_bytes(h) for h in connection.execute(
        sa.select(AuditEvent.hash).where(AuditEvent.seq > tree.size - span, AuditEvent.seq <= tree.size)
        .order_by(AuditEvent.seq)).scalars()]
    if len(stored) != span or any(h is None for h in stored):
        raise CheckpointRefused(f"events {tree.size - span + 1} to {tree.size}, already signed, are missing or damaged")
    leaves = [h for h in stored if h is not None]
    if root_of_leaf_hashes(leaves) != tree.hashes[-1]:
        raise CheckpointRefused(f"events {tree.size - span + 1} to {tree.size} differ from what was signed")
    return leaves[-1]


def _new_hashes(connection: sa.Connection, tree: CompactRange) -> Iterator[bytes]:
    """Hashes of the events after the tree, each checked against its entry, its predecessor and its columns."""
    after = tree.size
    disagreeing = connection.execute(sa.select(AuditEvent.seq).where(
        AuditEvent.seq > after, AuditEvent.entry.is_distinct_from(encoded_column())).limit(1)).scalar()
    if disagreeing is not None:
        raise CheckpointRefused(f"event {disagreeing}'s columns differ from its entry")
    previous = _last_signed_hash(connection, tree)
    expected = after
    result = connection.execute(
        sa.select(AuditEvent.seq, AuditEvent.prev_hash, AuditEvent.hash, AuditEvent.entry)
        .where(AuditEvent.seq > after).order_by(AuditEvent.seq),
        execution_options={"yield_per": _BATCH},
    )
    try:
        for seq, prev, stored, entry in result:
            expected += 1
            prev_b, stored_b = _hash_bytes(prev), _hash_bytes(stored)
            if seq != expected or prev_b != previous or stored_b is None or not isinstance(entry, str) \
                    or event_hash(prev_b, entry) != stored_b:
                raise CheckpointRefused(f"event {expected} does not follow the chain")
            previous = stored_b
            yield previous
    finally:
        result.close()


def make_checkpoint(
    session: Session, *, keyring: Keyring, origin: str, path: Path | None,
    unflushed: Sequence[AuditEvent] = (), now: datetime | None = None,
) -> AuditCheckpoint | None:
    """Sign a checkpoint over every event so far (the caller holds the append lock); None if nothing is new.

    `unflushed` are events numbered just now, not yet in the table. Only a log that extends what was signed last is
    signed: the previous checkpoint must open with this log's key and agree with its columns and frontier, the
    checkpoint file's last checkpoint must still be in the database, and every event since must follow the chain
    and agree with its entry; otherwise `CheckpointRefused` (the verifier will say what is wrong).
    """
    connection = session.connection()
    own = signer(keyring, origin)
    previous = last_checkpoint(connection)
    _check_against_file(connection, path)
    tree = CompactRange() if previous is None else _signed_tree(previous, own.verifier, origin)
    start = tree.size
    tree.append_leaf_hashes(_new_hashes(connection, tree))
    for audit_event in unflushed:
        if audit_event.seq == tree.size + 1:
            tree.append_leaf_hash(audit_event.hash)
    if tree.size == start and previous is not None:
        return None
    root = tree.root()
    note = sign_checkpoint(Checkpoint(origin, tree.size, root), own)
    checkpoint = AuditCheckpoint(
        id=1 if previous is None else previous.id + 1, created_at=now or utcnow(), tree_size=tree.size,
        root_hash=root, frontier=tree.to_bytes(), note=note,
    )
    session.add(checkpoint)
    if path is not None:
        line = json.dumps({"id": checkpoint.id, "created_at": format_time(checkpoint.created_at),
                           "tree_size": checkpoint.tree_size, "note": note}, ensure_ascii=False)
        session.info.setdefault(FILE_NOTES, []).append((path, line, innermost_transaction(session)))
    return checkpoint


def checkpoint_now(session: Session, *, keyring: Keyring, origin: str, path: Path | None) -> AuditCheckpoint | None:
    """An on-demand checkpoint over every event so far, those recorded in this transaction included."""
    if not append_pending(session):
        lock(session.connection())
    session.flush()
    return make_checkpoint(session, keyring=keyring, origin=origin, path=path)


def is_due(size: int, head: Head, *, every: int, minutes: int, now: datetime) -> bool:
    """Whether a checkpoint is due once the log holds `size` events (`head`: as read under the append lock)."""
    covered = head.checkpoint_size or 0
    if size - covered >= every:
        return True
    if size <= covered:
        return False
    since = head.checkpoint_at or head.first_at
    # A time in the future (a wrong clock, or a tampered row) must not put checkpoints off indefinitely.
    return since is not None and (since > now or now - since >= timedelta(minutes=minutes))


def after_append(session: Session, connection: sa.Connection, events: Sequence[AuditEvent], head: Head) -> None:
    """Called under the append lock with the events just numbered: sign a checkpoint if one is due.

    A checkpoint that cannot or must not be made (no keyring in this process; a log that does not extend the last
    signed one) is left for the next append or for `intake audit checkpoint`, and logged as an error: the change
    being recorded is never refused for it.
    """
    if not has_app_context():
        return
    app = current_app
    keyring = app.extensions.get("intake.keyring")
    if keyring is None:
        return
    config = app.config
    now = utcnow()
    if not is_due(events[-1].seq, head, every=config["AUDIT_CHECKPOINT_EVERY"],
                  minutes=config["AUDIT_CHECKPOINT_MINUTES"], now=now):
        return
    try:
        with session.begin_nested():
            make_checkpoint(session, keyring=keyring, origin=config["AUDIT_ORIGIN"], path=checkpoint_file(config),
                            unflushed=events, now=now)
    except CheckpointRefused as exc:
        log.error("audit checkpoint refused: %s; run `intake audit verify`", exc)
    except (KeyringError, sa.exc.SQLAlchemyError, ValueError, TypeError):
        log.exception("audit checkpoint not signed")


def append_to_file(path: Path, lines: Iterable[str]) -> None:
    """Append notes to the checkpoint file and make them durable (the file is created owner-only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        data = memoryview("".join(line + "\n" for line in lines).encode("utf-8"))
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_directory(path.parent)


@event.listens_for(Session, "after_commit")
def _write_file_notes(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released: only the outermost commit counts
        return
    notes: list[tuple[Path, str, Any]] = session.info.pop(FILE_NOTES, [])
    by_path: dict[Path, list[str]] = {}
    for path, line, _ in notes:
        by_path.setdefault(path, []).append(line)
    for path, lines in by_path.items():
        try:
            append_to_file(path, lines)
        except OSError:
            # The checkpoint is committed in the database; verify reports it missing from the file.
            log.exception("audit checkpoint not appended to its file", extra={"path": str(path)})


@event.listens_for(Session, "after_soft_rollback")
def _forget_file_notes(session: Session, previous_transaction: Any) -> None:
    # The checkpoints signed inside the transaction or savepoint rolled back are gone from the database too.
    notes = session.info.get(FILE_NOTES)
    if notes:
        session.info[FILE_NOTES] = [n for n in notes if not within_transaction(n[2], previous_transaction)]


def read_file(path: Path) -> list[dict[str, Any]]:
    """The checkpoint file's entries in order (a missing file has none); malformed lines are returned as such."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    entries: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict) or not isinstance(entry.get("note"), str):
            entries.append({"line": number, "malformed": True})
        else:
            entry["line"] = number
            entries.append(entry)
    return entries
