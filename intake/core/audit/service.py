"""What the auditor pages, the API and the CLI do with the log: verify it, search it, show one record's history
and export that history with its proofs. Reading the log appends events of its own (who looked at the log)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app

from intake.core.audit import AuditAction, record_event
from intake.core.audit import checkpoints as cp
from intake.core.audit.chain import ABSENT, DOMAIN, SEPARATOR
from intake.core.audit.merkle import consistency_proof, inclusion_proofs
from intake.core.audit.models import AuditCheckpoint, AuditEvent, format_time
from intake.core.audit.note import Verifier
from intake.core.audit.verify import Report, verify_log
from intake.core.crypto import current_keyring
from intake.core.db import db, write_intent

PAGE_SIZE = 50
EXTRACT_FORMAT = "intake-audit-extract/1"


def verifier_key() -> Verifier:
    """The public key that verifies this log's checkpoints."""
    return cp.verifier(current_keyring(), current_app.config["AUDIT_ORIGIN"])


def verify(
    *, verifiers: Sequence[Verifier] | None = None, checkpoint_file: Path | None = None,
    use_configured_file: bool = True, jobs: int = 1,
) -> Report:
    """Verify the whole log in one consistent snapshot, against the checkpoint file too."""
    started = time.perf_counter()
    config = current_app.config
    path = checkpoint_file or (cp.checkpoint_file(config) if use_configured_file else None)
    entries = cp.read_file(path) if path is not None else None
    connection = db.engine.connect()
    # The snapshot only reads. Inside a POST request SQLite would otherwise begin it with BEGIN IMMEDIATE and wait
    # for the write lock the request's own transaction already holds.
    token = write_intent.set(False)
    try:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            return verify_log(connection, verifiers=list(verifiers or [verifier_key()]),
                              origin=config["AUDIT_ORIGIN"], file_entries=entries,
                              file_name=path.name if path is not None else "", started=started, jobs=jobs)
    finally:
        write_intent.reset(token)
        connection.close()


def record_verification(report: Report, *, actor: Any) -> None:
    record_event(AuditAction.AUDIT_VERIFIED, actor=actor, target_type="audit_log", details={
        "ok": report.ok, "events": report.events, "problems": report.total_problems,
        "first_bad_seq": report.first_bad_seq, "codes": sorted({p.code for p in report.problems}),
    })


def last_verification() -> AuditEvent | None:
    return db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == str(AuditAction.AUDIT_VERIFIED))
        .order_by(AuditEvent.seq.desc()).limit(1)
    ).first()


@dataclass(frozen=True)
class EventFilter:
    """What the auditor searches by; every part is optional."""

    actor_id: int | None = None
    target_type: str | None = None
    target_id: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def described(self) -> dict[str, Any]:
        """The filter as audit details (identifiers and times only)."""
        return {k: (format_time(v) if isinstance(v, datetime) else v)
                for k, v in self.__dict__.items() if v not in (None, "")}


def account_id_named(username: str) -> int | None:
    """The id of the account called `username` (compared as sign-in compares it), or None: searches name actors."""
    from intake.accounts.models import Account
    from intake.accounts.operations import normalise_username

    name = normalise_username(username)
    found: int | None = db.session.scalar(sa.select(Account.id).where(Account.username == name))
    return found


def usernames(actor_ids: Iterable[int | None]) -> dict[int, str]:
    """The usernames of the accounts among `actor_ids`; ids no account has are left out."""
    from intake.accounts.models import Account

    wanted = {i for i in actor_ids if i is not None}
    if not wanted:
        return {}
    rows = db.session.execute(sa.select(Account.id, Account.username).where(Account.id.in_(wanted)))
    return {account_id: username for account_id, username in rows}


def whole_days(first: date | None, last: date | None) -> tuple[datetime | None, datetime | None]:
    """`since` and `until` of an `EventFilter` covering the UTC days `first` to `last`, both included."""
    def midnight(day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=UTC)

    return (midnight(first) if first is not None else None,
            midnight(last + timedelta(days=1)) if last is not None else None)


def _targets(target_id: str) -> sa.ColumnElement[bool]:
    """Events whose target ids include `target_id` (stored as a number or as text)."""
    if db.engine.dialect.name == "postgresql":
        forms = [json.dumps([target_id])] + ([json.dumps([int(target_id)])] if target_id.isdigit() else [])
        as_jsonb = sa.cast(AuditEvent.target_ids, sa.dialects.postgresql.JSONB)
        return sa.or_(*[as_jsonb.contains(sa.cast(sa.literal(f), sa.dialects.postgresql.JSONB)) for f in forms])
    each = sa.func.json_each(AuditEvent.target_ids).table_valued("value")
    return sa.exists(sa.select(1).select_from(each).where(sa.cast(each.c.value, sa.Text) == target_id))


def search_events(where: EventFilter, *, before: int | None = None, limit: int = PAGE_SIZE) -> list[AuditEvent]:
    """Newest first; `before` continues from the sequence number the previous page ended at (keyset)."""
    query = sa.select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)
    if before is not None:
        query = query.where(AuditEvent.seq < before)
    if where.actor_id is not None:
        query = query.where(AuditEvent.actor_id == where.actor_id)
    if where.target_type:
        query = query.where(AuditEvent.target_type == where.target_type)
    if where.target_id:
        query = query.where(_targets(where.target_id))
    if where.action:
        query = query.where(AuditEvent.action == where.action)
    if where.since is not None:
        query = query.where(AuditEvent.occurred_at >= where.since)
    if where.until is not None:
        query = query.where(AuditEvent.occurred_at < where.until)
    return list(db.session.scalars(query))


def record_events(target_type: str, target_id: str) -> list[AuditEvent]:
    """Every event about one record, oldest first."""
    return list(db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.target_type == target_type, _targets(target_id))
        .order_by(AuditEvent.seq)
    ))


@dataclass(frozen=True)
class Viewer:
    actor_id: int | None
    actor_roles: str
    views: int
    first: datetime
    last: datetime
    parts: tuple[str, ...]


# Actions that show a record's content or identity to someone, or hand it to someone.
SEEING_ACTIONS = frozenset({
    AuditAction.RECORD_VIEWED, AuditAction.REIDENTIFIED, AuditAction.EXPORT_BUILT, AuditAction.EXPORT_DOWNLOADED,
    AuditAction.RECORD_SHARED,
})


def who_has_seen(events: Sequence[AuditEvent]) -> list[Viewer]:
    """Per account, how often and when it saw the record, and which parts, from the record's events."""
    seen: dict[tuple[int | None, str], list[AuditEvent]] = {}
    for audit_event in events:
        if audit_event.action in SEEING_ACTIONS:
            seen.setdefault((audit_event.actor_id, audit_event.actor_roles), []).append(audit_event)
    viewers = []
    for (actor_id, roles), found in seen.items():
        parts = sorted({str(p) for e in found for p in (e.details.get("parts") or [])})
        viewers.append(Viewer(actor_id, roles, len(found), found[0].occurred_at, found[-1].occurred_at,
                              tuple(parts)))
    viewers.sort(key=lambda v: v.last, reverse=True)
    return viewers


def latest_checkpoint() -> AuditCheckpoint | None:
    return db.session.scalars(sa.select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1)).first()


def checkpoint_list(limit: int = 100) -> list[AuditCheckpoint]:
    return list(db.session.scalars(sa.select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(limit)))


def _leaf_hashes(size: int) -> list[bytes]:
    result = db.session.execute(
        sa.select(AuditEvent.hash).where(AuditEvent.seq >= 1, AuditEvent.seq <= size).order_by(AuditEvent.seq),
        execution_options={"yield_per": 20_000},
    )
    return [bytes(h) for (h,) in result]


def proofs_for(seqs: Sequence[int], checkpoint: AuditCheckpoint) -> dict[int, list[bytes]]:
    """RFC 9162 inclusion proofs of events `seqs` (those the checkpoint covers) in its tree."""
    covered = [s for s in seqs if 1 <= s <= checkpoint.tree_size]
    if not covered:
        return {}
    proofs = inclusion_proofs(_leaf_hashes(checkpoint.tree_size), [s - 1 for s in covered], checkpoint.tree_size)
    return {index + 1: proof for index, proof in proofs.items()}


def consistency_between(older: AuditCheckpoint, newer: AuditCheckpoint) -> list[bytes]:
    """The RFC 9162 consistency proof that `newer`'s tree extends `older`'s (for a recipient holding `older`)."""
    if older.tree_size > newer.tree_size:
        raise ValueError("the older checkpoint covers more events than the newer one")
    return consistency_proof(_leaf_hashes(newer.tree_size), older.tree_size, newer.tree_size)


def event_json(audit_event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": audit_event.seq, "occurred_at": format_time(audit_event.occurred_at),
        "actor_id": audit_event.actor_id, "actor_roles": audit_event.actor_roles, "action": audit_event.action,
        "target_type": audit_event.target_type, "target_ids": audit_event.target_ids, "reason": audit_event.reason,
        "details": audit_event.details, "request_id": audit_event.request_id,
        "entry": audit_event.entry, "prev_hash": audit_event.prev_hash.hex(), "hash": audit_event.hash.hex(),
    }


HOW_TO_VERIFY = (
    "An event's entry is its values joined by U+001F, with U+001E for an absent value: seq, occurred_at, actor_id, "
    "actor_roles, action, target_type, target_ids (canonical JSON: sorted keys, no spaces, UTF-8 unescaped), "
    "reason, details (canonical JSON), request_id. Its hash is SHA-256 over the byte 0x00, the text "
    "'intake-audit-event/1' and a newline, prev_hash (32 bytes) and the UTF-8 of the entry; that is also its RFC "
    "9162 leaf hash. prev_hash is the hash of the event numbered seq - 1. The checkpoint note is a C2SP signed note "
    "(tlog-checkpoint) verifiable with verifier_key. Each inclusion proof is the RFC 9162 audit path of leaf index "
    "seq - 1 in the tree of the checkpoint's size; with the event's hash as leaf hash it must give the "
    "checkpoint's root hash. Check that each event's other fields say what its entry says (the hash covers the "
    "entry), and take the verifier key from a source other than this file, e.g. as the organisation publishes it."
)


def record_extract(target_type: str, target_id: str) -> dict[str, Any]:
    """One record's audit history with the latest checkpoint and an inclusion proof for every event it covers."""
    events = record_events(target_type, target_id)
    checkpoint = latest_checkpoint()
    proofs = proofs_for([e.seq for e in events], checkpoint) if checkpoint is not None else {}
    entries = []
    for audit_event in events:
        entry = event_json(audit_event)
        proof = proofs.get(audit_event.seq)
        entry["inclusion_proof"] = None if proof is None else [h.hex() for h in proof]
        entries.append(entry)
    return {
        "format": EXTRACT_FORMAT,
        "log": {"origin": current_app.config["AUDIT_ORIGIN"], "verifier_key": verifier_key().to_string()},
        "record": {"type": target_type, "id": target_id},
        "checkpoint": None if checkpoint is None else {
            "id": checkpoint.id, "created_at": format_time(checkpoint.created_at), "tree_size": checkpoint.tree_size,
            "root_hash": checkpoint.root_hash.hex(), "note": checkpoint.note,
        },
        "events": entries,
        "how_to_verify": HOW_TO_VERIFY,
        "hash_rule": {"domain": DOMAIN.decode(), "separator": SEPARATOR, "absent": ABSENT},
    }
