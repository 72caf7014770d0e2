"""Someone with write access to the database alters the audit log: `intake audit verify` must notice every kind of
alteration, name it and point at the first event concerned.

Each case builds the same log of 40 varied events with signed checkpoints at sizes 7, 16, 29 and 40 (copied to the
checkpoint file too), checks that it verifies, removes the append-only triggers as an attacker with the database
owner's rights would, makes one alteration and verifies again, through `service.verify` and through the CLI. Every
case runs on SQLite and on PostgreSQL. The last tests show that the triggers, left in place, refuse the changes.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, g

from intake.core.audit import AuditAction, record_event, service
from intake.core.audit import checkpoints as cp
from intake.core.audit.chain import GENESIS, encode_event, event_hash
from intake.core.audit.merkle import CompactRange, root_of_leaf_hashes
from intake.core.audit.note import Checkpoint, Signer, Verifier, open_checkpoint, sign_checkpoint
from intake.core.audit.verify import Report
from intake.core.crypto import current_keyring
from intake.core.db import db, write_intent

EVENTS = 40
CHECKPOINT_SIZES = (7, 16, 29, 40)
RUSSIAN_REASON = "Запрос суда № 17/2024: установить личность свидетеля"
ARMENIAN_REASON = "Հայաստանի դատախազության հարցում, գործ 4711"
# The columns an event's entry joins, in order (`chain.encode_event`).
ENTRY_COLUMNS = ("seq", "occurred_at", "actor_id", "actor_roles", "action", "target_type", "target_ids", "reason",
                 "details", "request_id")


@dataclass(frozen=True)
class Actor:
    id: int
    role_names: tuple[str, ...]


ACTORS: tuple[Actor | None, ...] = (
    Actor(3, ("interviewer",)), Actor(5, ("legal", "reviewer")), None, Actor(8, ("admin",)), Actor(13, ("auditor",)),
)

# (action, target type, target ids, reason, details): event n uses entry (n - 1) % len(KINDS).
KINDS: tuple[tuple[AuditAction, str | None, Sequence[int | str], str | None, dict[str, Any]], ...] = (
    (AuditAction.LOGIN, "account", [3], None, {"method": "password+totp"}),
    (AuditAction.RECORD_VIEWED, "testimony", [11], None, {"parts": ["content", "identity"]}),
    (AuditAction.REIDENTIFIED, "person", [42], RUSSIAN_REASON, {"parts": ["identity"]}),
    (AuditAction.ACCESS_GRANTED, "testimony", [11, 12], ARMENIAN_REASON, {"grantee": 9, "until": "2027-01-31"}),
    (AuditAction.RECORDS_SEARCHED, None, [], None, {"filters": ["language", "region"], "results": 3}),
    (AuditAction.TESTIMONY_UPDATED, "testimony", [12], None, {"fields": ["narrative", "region"]}),
    (AuditAction.LOGIN_FAILED, "account", ["unknown"], None, {"failures": 2, "locked": False, "note": None}),
    (AuditAction.EXPORT_BUILT, "export", ["exp-7f3q"], None, {"records": 4, "place": "Ստեփանակերտ"}),
    (AuditAction.RECORD_SHARED, "testimony", [12], "Partage avec l'ONG partenaire — « dossier 12 »\tcopie",
     {"with": "ngo-2"}),
    (AuditAction.ROLES_CHANGED, "account", [5], None, {"added": ["auditor"], "removed": []}),
)


def _record(n: int) -> None:
    action, target_type, target_ids, reason, details = KINDS[(n - 1) % len(KINDS)]
    record_event(action, actor=ACTORS[n % len(ACTORS)], target_type=target_type, target_ids=target_ids,
                 reason=reason, details={**details, "n": n})


# Transactions of the log: (first, last) events; a checkpoint is signed in the same transaction after each event
# in CHECKPOINT_SIZES.
BATCHES = ((1, 3), (4, 7), (8, 10), (11, 13), (14, 16), (17, 19), (20, 22), (23, 25), (26, 29), (30, 32), (33, 35),
           (36, 38), (39, 40))


def _append(app: Flask, first: int, last: int) -> None:
    for n in range(first, last + 1):
        _record(n)
        if n in CHECKPOINT_SIZES:
            db.session.flush()
            made = cp.checkpoint_now(db.session(), keyring=current_keyring(), origin=app.config["AUDIT_ORIGIN"],
                                     path=cp.checkpoint_file(app.config))
            assert made is not None and made.tree_size == n
    db.session.commit()


def build_log(app: Flask) -> None:
    """Append events 1..40 in `BATCHES` (every other one inside a request, whose id the events carry) and sign
    checkpoints on demand at `CHECKPOINT_SIZES`."""
    token = write_intent.set(True)
    try:
        for number, (first, last) in enumerate(BATCHES):
            if number % 2:
                with app.test_request_context("/anything", method="POST"):
                    g.request_id = f"req-{first:04d}"
                    _append(app, first, last)
            else:
                with app.app_context():
                    _append(app, first, last)
    finally:
        write_intent.reset(token)


def verify(app: Flask, **kwargs: Any) -> Report:
    with app.app_context():
        return service.verify(**kwargs)


def codes(report: Report) -> set[str]:
    return {p.code for p in report.problems}


def run_cli(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["audit", *args])


def execute(app: Flask, *statements: tuple[str, dict[str, Any]] | str) -> None:
    """Run raw SQL in one transaction of its own, as someone editing the database directly."""
    token = write_intent.set(True)
    try:
        with app.app_context(), db.engine.begin() as conn:
            for statement in statements:
                sql, params = (statement, {}) if isinstance(statement, str) else statement
                conn.execute(sa.text(sql), params)
    finally:
        write_intent.reset(token)


def rows(app: Flask, sql: str, **params: Any) -> list[Any]:
    with app.app_context(), db.engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).all())


def checkpoint_note(app: Flask, checkpoint_id: int) -> str:
    note: str = rows(app, "SELECT note FROM audit_checkpoints WHERE id = :id", id=checkpoint_id)[0][0]
    return note


def log_signer(app: Flask) -> Signer:
    with app.app_context():
        return cp.signer(current_keyring(), app.config["AUDIT_ORIGIN"])


def file_path(app: Flask) -> Path:
    return cp.checkpoint_file(app.config)


def stored_hashes(app: Flask) -> list[bytes]:
    return [bytes(r[0]) for r in rows(app, "SELECT hash FROM audit_events ORDER BY seq")]


GUARDS = {"audit_events": ("audit_events_refuse_update", "audit_events_refuse_delete",
                           "audit_events_append_in_sequence"),
          "audit_checkpoints": ("audit_checkpoints_refuse_update", "audit_checkpoints_refuse_delete",
                                "audit_checkpoints_append_in_sequence")}


@pytest.fixture
def log(app: Flask) -> Iterator[Flask]:
    """The app over a verified log of 40 events, with the append-only triggers out of the way (put back after)."""
    build_log(app)
    report = verify(app)
    assert report.ok, report.problems
    assert (report.events, report.checkpoints, report.file_checkpoints) == (EVENTS, 4, 4)
    postgres = app.config["DATABASE_URL"].startswith("postgresql")
    if postgres:
        execute(app, *(f"ALTER TABLE {table} DISABLE TRIGGER USER" for table in GUARDS))
    else:
        execute(app, *(f"DROP TRIGGER {name}" for names in GUARDS.values() for name in names))
    yield app
    if postgres:
        # The PostgreSQL database is shared by the whole suite: the guards must be back for the next test.
        execute(app, "SET LOCAL lock_timeout = '10s'",
                *(f"ALTER TABLE {table} ENABLE TRIGGER USER" for table in GUARDS))


# A change to the events under a checkpoint also makes the tree frontier stored with it differ from the log's.
FRONTIER = frozenset({"checkpoint_mismatch"})


def assert_detected(app: Flask, expected: set[str], first_bad_seq: int | None, *,
                    allowed: frozenset[str] = frozenset()) -> Report:
    """Verify fails naming every `expected` code (and nothing but those and the `allowed` consequences) with this
    first bad event; the CLI prints the same and exits 1."""
    report = verify(app)
    assert not report.ok
    assert expected <= codes(report) <= expected | allowed, report.problems
    assert report.first_bad_seq == first_bad_seq, report.problems
    result = run_cli(app, "verify")
    assert result.exit_code == 1, result.output
    for code in codes(report):
        assert f"[{code}]" in result.output
    if first_bad_seq is None:
        assert "the first bad event" not in result.output
    else:
        assert f"the first bad event is {first_bad_seq}." in result.output
    return report


# ---------------------------------------------------------------------------------------------------------------
# Events changed in place


def test_the_untouched_log_verifies_through_the_cli_too(log: Flask) -> None:
    result = run_cli(log, "verify")
    assert result.exit_code == 0, result.output
    assert "Checked 40 events, 4 checkpoints in the database and 4 in the checkpoint file" in result.output
    assert "OK: every hash link" in result.output
    assert rows(log, "SELECT reason FROM audit_events WHERE seq IN (3, 4) ORDER BY seq") == [(RUSSIAN_REASON,),
                                                                                              (ARMENIAN_REASON,)]
    # The verification is itself an event, and the log still verifies after it.
    assert verify(log).ok
    assert rows(log, "SELECT action FROM audit_events WHERE seq = 41")[0][0] == "audit_verified"


@pytest.mark.parametrize(("column", "seq", "value", "entry_too"), [
    ("details", 12, '{"n":12,"parts":["content"]}', False),
    ("actor_id", 23, 99, True),
    ("action", 5, "login", False),
    ("occurred_at", 33, "2020-01-01T00:00:00.000000Z", True),
    ("reason", 13, RUSSIAN_REASON.replace("17/2024", "18/2024"), True),
    ("reason", 4, ARMENIAN_REASON.replace("4711", "4712"), False),
    ("request_id", 18, None, True),
], ids=["details", "actor", "action", "time", "reason-ru", "reason-hy", "request"])
def test_a_changed_column_is_named_at_its_event(log: Flask, column: str, seq: int, value: Any,
                                                entry_too: bool) -> None:
    """`entry_too`: the hashed entry rewritten to match the column, as a careful forger would."""
    before = rows(log, f"SELECT {column} FROM audit_events WHERE seq = :seq", seq=seq)[0][0]  # noqa: S608
    assert before is not None and before != value
    execute(log, (f"UPDATE audit_events SET {column} = :value WHERE seq = :seq",  # noqa: S608
                  {"value": value, "seq": seq}))
    if entry_too:
        values = rows(log, f"SELECT {', '.join(ENTRY_COLUMNS)} FROM audit_events WHERE seq = :s", s=seq)[0]  # noqa: S608
        execute(log, ("UPDATE audit_events SET entry = :e WHERE seq = :s", {"e": encode_event(*values), "s": seq}))
    report = assert_detected(log, {"changed"}, seq)
    assert {p.seq for p in report.problems} == {seq}


# ---------------------------------------------------------------------------------------------------------------
# Events removed or reordered


def test_an_event_deleted_in_the_middle(log: Flask) -> None:
    execute(log, "DELETE FROM audit_events WHERE seq = 20")
    report = assert_detected(log, {"missing", "broken_link", "root_mismatch"}, 20, allowed=FRONTIER)
    assert next(p for p in report.problems if p.code == "missing").seq == 20
    assert next(p for p in report.problems if p.code == "broken_link").seq == 21


def test_the_first_event_deleted(log: Flask) -> None:
    execute(log, "DELETE FROM audit_events WHERE seq = 1")
    report = assert_detected(log, {"missing", "broken_link", "root_mismatch"}, 1, allowed=FRONTIER)
    assert next(p for p in report.problems if p.code == "missing").seq == 1
    assert next(p for p in report.problems if p.code == "broken_link").seq == 2


EVENT_COLUMNS = (*ENTRY_COLUMNS[1:], "entry", "prev_hash", "hash")


def _swap_columns(app: Flask, a: int, b: int) -> None:
    row_a, row_b = (rows(app, f"SELECT {', '.join(EVENT_COLUMNS)} FROM audit_events WHERE seq = :s", s=s)[0]  # noqa: S608
                    for s in (a, b))
    assignments = ", ".join(f"{c} = :{c}" for c in EVENT_COLUMNS)
    execute(app, *((f"UPDATE audit_events SET {assignments} WHERE seq = :seq",  # noqa: S608
                    {**dict(zip(EVENT_COLUMNS, values, strict=True)), "seq": seq})
                   for seq, values in ((a, row_b), (b, row_a))))


def _swap_seqs(app: Flask, a: int, b: int) -> None:
    execute(app, ("UPDATE audit_events SET seq = 1000000 WHERE seq = :a", {"a": a}),
            ("UPDATE audit_events SET seq = :a WHERE seq = :b", {"a": a, "b": b}),
            ("UPDATE audit_events SET seq = :b WHERE seq = 1000000", {"b": b}))


@pytest.mark.parametrize("swap", [_swap_columns, _swap_seqs], ids=["columns", "seq-values"])
def test_two_adjacent_events_swapped(log: Flask, swap: Any) -> None:
    swap(log, 24, 25)
    # Each row's columns now also disagree with the entry it carries ("changed"); the swap must still be named.
    report = assert_detected(log, {"out_of_order", "broken_link", "root_mismatch"}, 24,
                             allowed=FRONTIER | {"changed"})
    assert [p.seq for p in report.problems if p.code == "out_of_order"] == [24, 25]
    assert [p.seq for p in report.problems if p.code == "broken_link"] == [24, 25, 26]


# ---------------------------------------------------------------------------------------------------------------
# The tail removed


def test_a_truncated_tail_is_detected_against_the_last_checkpoint(log: Flask) -> None:
    execute(log, "DELETE FROM audit_events WHERE seq > 35")
    report = assert_detected(log, {"truncated"}, 36)
    (problem,) = report.problems
    assert problem.checkpoint == 4
    assert "40" in problem.message and "35" in problem.message


def test_a_truncated_tail_whose_checkpoints_were_deleted_too_is_detected_by_the_file(log: Flask) -> None:
    execute(log, "DELETE FROM audit_events WHERE seq > 19", "DELETE FROM audit_checkpoints WHERE tree_size > 19")
    # Within the database alone the shorter log is consistent.
    assert verify(log, use_configured_file=False).ok
    report = assert_detected(log, {"checkpoint_missing", "truncated"}, 20)
    assert sorted(p.checkpoint or 0 for p in report.problems if p.code == "checkpoint_missing") == [3, 4]
    assert [p.seq for p in report.problems if p.code == "truncated"] == [20, 20]


def test_a_checkpoint_deleted_from_the_middle_of_the_table(log: Flask) -> None:
    execute(log, "DELETE FROM audit_checkpoints WHERE id = 2")
    report = assert_detected(log, {"checkpoint_missing"}, None)
    # Both the gap in the numbering and the file's copy tell.
    assert [p.checkpoint for p in report.problems] == [2, 2]


# ---------------------------------------------------------------------------------------------------------------
# The chain rewritten consistently


def test_a_rewritten_chain_links_but_does_not_match_the_signed_root(log: Flask) -> None:
    columns = rows(log, f"SELECT {', '.join(ENTRY_COLUMNS)} FROM audit_events ORDER BY seq")  # noqa: S608
    previous = GENESIS
    updates: list[tuple[str, dict[str, Any]]] = []
    for values in columns:
        seq = values[0]
        if seq == 22:
            values = (*values[:8], '{"n":22,"parts":[]}', values[9])
        entry = encode_event(*values)
        digest = event_hash(previous, entry)
        if seq >= 22:
            updates.append(("UPDATE audit_events SET details = :d, entry = :e, prev_hash = :p, hash = :h "
                            "WHERE seq = :s", {"d": values[8], "e": entry, "p": previous, "h": digest, "s": seq}))
        previous = digest
    execute(log, *updates)
    report = assert_detected(log, {"root_mismatch"}, 17, allowed=FRONTIER)
    # Checkpoints 1 and 2 (sizes 7 and 16) still match; 3 and 4 cover the rewritten event.
    assert sorted(p.checkpoint or 0 for p in report.problems if p.code == "root_mismatch") == [3, 4]
    assert "events 17 to 29" in report.problems[0].message


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints forged, replayed, re-signed or contradicted


def _edit_note_line(note: str, index: int, value: str) -> str:
    text, _, signatures = note.partition("\n\n")
    lines = text.split("\n")
    lines[index] = value
    return "\n".join(lines) + "\n\n" + signatures


@pytest.mark.parametrize(("line", "value"), [(1, "17"), (2, base64.b64encode(bytes(32)).decode())],
                         ids=["size", "root"])
def test_a_forged_checkpoint_note_fails_its_signature(log: Flask, line: int, value: str) -> None:
    forged = _edit_note_line(checkpoint_note(log, 2), line, value)
    assert forged.split("\n")[-2] == checkpoint_note(log, 2).split("\n")[-2]  # the same signature line
    execute(log, ("UPDATE audit_checkpoints SET note = :n WHERE id = 2", {"n": forged}))
    report = assert_detected(log, {"bad_signature", "checkpoint_missing"}, None)
    assert next(p for p in report.problems if p.code == "bad_signature").checkpoint == 2


def test_a_replayed_checkpoint(log: Flask) -> None:
    execute(log, "INSERT INTO audit_checkpoints (id, created_at, tree_size, root_hash, frontier, note) "
                 "SELECT 5, created_at, tree_size, root_hash, frontier, note FROM audit_checkpoints WHERE id = 2")
    report = assert_detected(log, {"replayed_checkpoint"}, None)
    assert report.problems[0].checkpoint == 5


def test_a_checkpoint_signed_by_another_key(log: Flask) -> None:
    size, root = rows(log, "SELECT tree_size, root_hash FROM audit_checkpoints WHERE id = 3")[0]
    stranger = Signer(log.config["AUDIT_ORIGIN"], os.urandom(32))
    note = sign_checkpoint(Checkpoint(log.config["AUDIT_ORIGIN"], int(size), bytes(root)), stranger)
    execute(log, ("UPDATE audit_checkpoints SET note = :n WHERE id = 3", {"n": note}))
    report = assert_detected(log, {"unknown_key", "checkpoint_missing"}, None)
    unknown = next(p for p in report.problems if p.code == "unknown_key")
    assert unknown.checkpoint == 3
    assert f"{stranger.key_hash:08x}" in unknown.message


def test_a_checkpoint_of_another_log_signed_with_this_key(log: Flask) -> None:
    size, root = rows(log, "SELECT tree_size, root_hash FROM audit_checkpoints WHERE id = 3")[0]
    note = sign_checkpoint(Checkpoint("elsewhere.invalid/audit", int(size), bytes(root)), log_signer(log))
    execute(log, ("UPDATE audit_checkpoints SET note = :n WHERE id = 3", {"n": note}))
    report = assert_detected(log, {"wrong_origin", "checkpoint_missing"}, None)
    assert next(p for p in report.problems if p.code == "wrong_origin").checkpoint == 3


def test_a_validly_signed_checkpoint_smaller_than_the_previous(log: Flask) -> None:
    tree = CompactRange()
    tree.append_leaf_hashes(stored_hashes(log)[:20])
    note = sign_checkpoint(Checkpoint(log.config["AUDIT_ORIGIN"], 20, tree.root()), log_signer(log))
    execute(log, ("INSERT INTO audit_checkpoints (id, created_at, tree_size, root_hash, frontier, note) "
                  "VALUES (5, '2030-01-01T00:00:00.000000Z', 20, :r, :f, :n)",
                  {"r": tree.root(), "f": tree.to_bytes(), "n": note}))
    report = assert_detected(log, {"size_not_increasing"}, None)
    assert report.problems[0].checkpoint == 5


@pytest.mark.parametrize(("column", "value"), [("tree_size", 28), ("root_hash", bytes(32))])
def test_a_checkpoint_row_that_disagrees_with_its_note(log: Flask, column: str, value: Any) -> None:
    execute(log, (f"UPDATE audit_checkpoints SET {column} = :v WHERE id = 3", {"v": value}))  # noqa: S608
    report = assert_detected(log, {"checkpoint_mismatch"}, None)
    assert report.problems[0].checkpoint == 3


def test_a_checkpoint_whose_stored_frontier_was_altered(log: Flask) -> None:
    execute(log, ("UPDATE audit_checkpoints SET frontier = :f WHERE id = 3", {"f": bytes(32 * 3)}))
    report = verify(log)
    assert codes(report) == {"checkpoint_mismatch"}
    assert "frontier" in report.problems[0].message
    assert run_cli(log, "verify").exit_code == 1


# ---------------------------------------------------------------------------------------------------------------
# The checkpoint file


def test_an_edited_line_of_the_checkpoint_file(log: Flask) -> None:
    path = file_path(log)
    lines = path.read_text(encoding="utf-8").splitlines()
    entry = json.loads(lines[1])
    entry["note"] = _edit_note_line(entry["note"], 1, "15")
    lines[1] = json.dumps(entry, ensure_ascii=False)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # The edited note no longer carries a valid signature: it is a forgery, whatever it claims.
    report = assert_detected(log, {"bad_signature"}, None)
    assert all("line 2 of audit-checkpoints.jsonl" in p.message for p in report.problems)
    assert any("not in audit-checkpoints.jsonl" in w for w in report.warnings)


def test_a_line_of_the_checkpoint_file_made_unreadable(log: Flask) -> None:
    path = file_path(log)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2][: len(lines[2]) // 2]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = assert_detected(log, {"malformed_checkpoint"}, None)
    assert "line 3" in report.problems[0].message


# ---------------------------------------------------------------------------------------------------------------
# Keys


def test_verifying_with_another_key_reports_every_checkpoint_unknown(log: Flask) -> None:
    stranger = Signer(log.config["AUDIT_ORIGIN"], os.urandom(32)).verifier
    report = verify(log, verifiers=[stranger])
    assert codes(report) == {"unknown_key"}
    assert sorted(p.checkpoint or 0 for p in report.problems) == [1, 2, 3, 4]
    result = run_cli(log, "verify", "--vkey", stranger.to_string(), "--no-checkpoint-file")
    assert result.exit_code == 1
    assert result.output.count("[unknown_key]") == 4


def test_the_printed_key_verifies_every_note(log: Flask) -> None:
    result = run_cli(log, "key")
    assert result.exit_code == 0, result.output
    vkey = result.output.strip()
    verifier = Verifier.from_string(vkey)
    assert verifier.name == log.config["AUDIT_ORIGIN"]
    notes = [r[0] for r in rows(log, "SELECT note FROM audit_checkpoints ORDER BY id")]
    notes += [json.loads(line)["note"] for line in file_path(log).read_text(encoding="utf-8").splitlines()]
    hashes = stored_hashes(log)
    for note in notes:
        checkpoint, _ = open_checkpoint(note, [verifier], origin=log.config["AUDIT_ORIGIN"])
        assert checkpoint.size in CHECKPOINT_SIZES
        assert checkpoint.root_hash == root_of_leaf_hashes(hashes[: checkpoint.size])
    assert run_cli(log, "verify", "--vkey", vkey).exit_code == 0
    bad = run_cli(log, "verify", "--vkey", vkey[:-4] + "AAA=")
    assert bad.exit_code != 0 and "--vkey" in bad.output


# ---------------------------------------------------------------------------------------------------------------
# The guards


def _first_event(app: Flask) -> None:
    with app.app_context():
        token = write_intent.set(True)
        try:
            record_event(AuditAction.LOGIN, actor=ACTORS[0])
            db.session.commit()
            cp.checkpoint_now(db.session(), keyring=current_keyring(), origin=app.config["AUDIT_ORIGIN"], path=None)
            db.session.commit()
        finally:
            write_intent.reset(token)


GUARDED = ("UPDATE audit_events SET reason = 'x'", "DELETE FROM audit_events WHERE seq = 1", "TRUNCATE audit_events",
           "UPDATE audit_checkpoints SET tree_size = 2", "DELETE FROM audit_checkpoints", "TRUNCATE audit_checkpoints")


def test_the_triggers_refuse_changes_to_both_tables(app: Flask) -> None:
    postgres = app.config["DATABASE_URL"].startswith("postgresql")
    _first_event(app)
    for statement in GUARDED:
        if statement.startswith("TRUNCATE") and not postgres:
            continue  # SQLite has no TRUNCATE; its DELETE without WHERE is refused like any other
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            execute(app, statement)
    # Rows can only be added at the end, in sequence: not ahead, not with another previous hash, not over a number
    # that exists (SQLite's REPLACE would otherwise slip past the delete trigger), not numbered below 1.
    copy = ("INSERT INTO audit_events (seq, occurred_at, actor_id, actor_roles, action, target_type, target_ids, "
            "reason, details, request_id, entry, prev_hash, hash) SELECT {seq}, occurred_at, actor_id, actor_roles, "
            "action, target_type, target_ids, reason, details, request_id, entry, {prev}, hash FROM audit_events")
    attempts = [copy.format(seq=5, prev="hash"), copy.format(seq=2, prev="prev_hash"), copy.format(seq=0, prev="hash"),
                "INSERT INTO audit_checkpoints (id, created_at, tree_size, root_hash, frontier, note) SELECT 2, "
                "created_at, tree_size, root_hash, frontier, note FROM audit_checkpoints"]
    if not postgres:
        attempts.append(copy.replace("INSERT INTO", "INSERT OR REPLACE INTO").format(seq=1, prev="prev_hash"))
    for statement in attempts:
        with pytest.raises(sa.exc.DatabaseError, match="append-only|seq_from_one"):
            execute(app, statement)
    assert rows(app, "SELECT count(*) FROM audit_events")[0][0] == 1
    assert tuple(rows(app, "SELECT count(*), max(tree_size) FROM audit_checkpoints")[0]) == (1, 1)
    assert verify(app, use_configured_file=False).ok


def test_a_hash_is_what_anyone_recomputes_from_the_dump(log: Flask) -> None:
    """The rule an extract states (`service.HOW_TO_VERIFY`), applied to the stored text by hand."""
    previous = GENESIS
    hashes = []
    for values in rows(log, f"SELECT {', '.join(ENTRY_COLUMNS)}, entry, prev_hash, hash "  # noqa: S608
                            "FROM audit_events ORDER BY seq"):
        entry = "\x1f".join("\x1e" if v is None else str(v) for v in values[:10])
        assert values[10] == entry
        digest = hashlib.sha256(b"\x00intake-audit-event/1\n" + previous + entry.encode()).digest()
        assert (bytes(values[11]), bytes(values[12])) == (previous, digest)
        previous = digest
        hashes.append(digest)
    notes = [r[0] for r in rows(log, "SELECT note FROM audit_checkpoints ORDER BY id")]
    for note, size in zip(notes, CHECKPOINT_SIZES, strict=True):
        root = base64.b64decode(note.split("\n")[2])
        assert root == root_of_leaf_hashes(hashes[:size])


# ---------------------------------------------------------------------------------------------------------------
# Rows numbered below 1


@pytest.fixture
def unchecked(log: Flask) -> Iterator[Flask]:
    """`log` without the CHECK that numbers events from 1, as an owner of the database could drop it (PostgreSQL:
    put back after, the forged rows removed first; SQLite: `_insert_event` ignores the check for its statement)."""
    postgres = log.config["DATABASE_URL"].startswith("postgresql")
    if postgres:
        execute(log, "ALTER TABLE audit_events DROP CONSTRAINT ck_audit_events_seq_from_one")
    yield log
    if postgres:
        execute(log, "SET LOCAL lock_timeout = '10s'", "DELETE FROM audit_events WHERE seq < 1",
                "ALTER TABLE audit_events ADD CONSTRAINT ck_audit_events_seq_from_one CHECK (seq >= 1)")


def _insert_event(app: Flask, seq: int) -> None:
    """A forged event numbered `seq`: event 1's columns, with an entry, links and hash consistent with each other."""
    values = (seq, *rows(app, f"SELECT {', '.join(ENTRY_COLUMNS)} FROM audit_events WHERE seq = 1")[0][1:])  # noqa: S608
    entry = encode_event(*values)
    params = {**dict(zip(ENTRY_COLUMNS, values, strict=True)), "entry": entry, "prev_hash": GENESIS,
              "hash": event_hash(GENESIS, entry)}
    columns = (*ENTRY_COLUMNS, "entry", "prev_hash", "hash")
    insert = (f"INSERT INTO audit_events ({', '.join(columns)}) "  # noqa: S608
              f"VALUES ({', '.join(':' + c for c in columns)})", params)
    if app.config["DATABASE_URL"].startswith("postgresql"):
        execute(app, insert)
    else:
        execute(app, "PRAGMA ignore_check_constraints = ON", insert, "PRAGMA ignore_check_constraints = OFF")


@pytest.mark.parametrize("seqs", [(0,), (-3,), (-7, 0)], ids=["zero", "negative", "both"])
def test_a_forged_event_numbered_below_one_is_reported_inserted(unchecked: Flask, seqs: tuple[int, ...]) -> None:
    for seq in seqs:
        _insert_event(unchecked, seq)
    assert rows(unchecked, "SELECT count(*) FROM audit_events")[0][0] == EVENTS + len(seqs)
    report = assert_detected(unchecked, {"inserted"}, min(seqs))
    assert [p.seq for p in report.problems] == sorted(seqs)
    assert all(f"numbered {p.seq} was inserted" in p.message for p in report.problems)
    # Events 1 to 40 themselves still verify: nothing else is reported, and the log is counted without the strays.
    assert report.events == EVENTS


# ---------------------------------------------------------------------------------------------------------------
# Signing refuses a log that does not extend the last signed checkpoint


def _append_events(app: Flask, first: int, last: int) -> None:
    """Events `first`..`last` of the same kinds as the log's, in one transaction of their own."""
    token = write_intent.set(True)
    try:
        with app.app_context():
            for n in range(first, last + 1):
                _record(n)
            db.session.commit()
    finally:
        write_intent.reset(token)


def _sign_now(app: Flask, *, with_file: bool = True) -> Any:
    """`checkpoint_now` in a transaction of its own, as `intake audit checkpoint` runs it."""
    token = write_intent.set(True)
    try:
        with app.app_context():
            try:
                made = cp.checkpoint_now(db.session(), keyring=current_keyring(), origin=app.config["AUDIT_ORIGIN"],
                                         path=cp.checkpoint_file(app.config) if with_file else None)
                db.session.commit()
            except BaseException:
                db.session.rollback()
                raise
            return made
    finally:
        write_intent.reset(token)


@contextmanager
def _cursors_collected() -> Iterator[None]:
    """Collect garbage right after the block: a cursor a refusal or a damaged row left open would raise its
    ResourceWarning here, in the test that caused it (warnings are errors in this suite)."""
    yield
    gc.collect()


def _rewrite_chain(app: Flask, seq: int, details: str, *, through: int) -> None:
    """Give event `seq` other details, with its entry, and recompute the hashes and links of events `seq` to
    `through` so that they follow each other (a careful forger's rewrite)."""
    previous = GENESIS
    updates: list[tuple[str, dict[str, Any]]] = []
    for values in rows(app, f"SELECT {', '.join(ENTRY_COLUMNS)} FROM audit_events ORDER BY seq"):  # noqa: S608
        if values[0] == seq:
            values = (*values[:8], details, values[9])
        entry = encode_event(*values)
        digest = event_hash(previous, entry)
        if seq <= values[0] <= through:
            updates.append(("UPDATE audit_events SET details = :d, entry = :e, prev_hash = :p, hash = :h "
                            "WHERE seq = :s", {"d": values[8], "e": entry, "p": previous, "h": digest, "s": values[0]}))
        previous = digest
    execute(app, *updates)


def _entry_with_details(app: Flask, seq: int, details: str) -> str:
    values = rows(app, f"SELECT {', '.join(ENTRY_COLUMNS)} FROM audit_events WHERE seq = :s", s=seq)[0]  # noqa: S608
    values = (*values[:8], details, values[9])
    return encode_event(*values)


def _columns_only(app: Flask) -> None:
    execute(app, ("UPDATE audit_events SET details = :d WHERE seq = 43", {"d": '{"n":43}'}))


def _entry_without_hash(app: Flask) -> None:
    execute(app, ("UPDATE audit_events SET details = :d, entry = :e WHERE seq = 43",
                  {"d": '{"n":43}', "e": _entry_with_details(app, 43, '{"n":43}')}))


def _hash_without_next_link(app: Flask) -> None:
    # Event 43 rewritten with its hash recomputed; event 44 still links to the old one.
    _rewrite_chain(app, 43, '{"n":43}', through=43)


def _frontier(app: Flask) -> None:
    execute(app, ("UPDATE audit_checkpoints SET frontier = :f WHERE id = 4", {"f": bytes(64)}))


def _root(app: Flask) -> None:
    execute(app, ("UPDATE audit_checkpoints SET root_hash = :r WHERE id = 4", {"r": bytes(32)}))


def _last_checkpoint_deleted(app: Flask) -> None:
    # The checkpoint file's last line still names it.
    execute(app, "DELETE FROM audit_checkpoints WHERE id = 4")


@pytest.mark.parametrize(("forge", "refusal"), [
    (_columns_only, "event 43's columns differ from its entry"),
    (_entry_without_hash, "event 43 does not follow the chain"),
    (_hash_without_next_link, "event 44 does not follow the chain"),
    (_frontier, "checkpoint 4's columns or frontier differ from what it signed"),
    # The file's last checkpoint is looked up by size and root: with the root column changed it is not found.
    (_root, "the checkpoint file's last checkpoint (size 40) is no longer in the database"),
    (_last_checkpoint_deleted, "the checkpoint file's last checkpoint (size 40) is no longer in the database"),
], ids=["columns", "entry", "link", "frontier", "root", "deleted-checkpoint"])
def test_signing_refuses_a_log_that_does_not_extend_the_last_checkpoint(
    log: Flask, forge: Any, refusal: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """Automatically, the refusal is logged and the commit that recorded the events goes through; on demand,
    `checkpoint_now` raises it. Neither signs anything, in the database or in the file."""
    _append_events(log, EVENTS + 1, EVENTS + 5)
    before = rows(log, "SELECT id, tree_size FROM audit_checkpoints ORDER BY id")
    if forge is _last_checkpoint_deleted:
        before = before[:-1]
    lines = file_path(log).read_text(encoding="utf-8")
    forge(log)

    log.config["AUDIT_CHECKPOINT_EVERY"] = 2
    caplog.set_level(logging.ERROR, logger="intake.audit")
    with _cursors_collected():
        _append_events(log, EVENTS + 6, EVENTS + 8)  # a checkpoint is due: the commit must succeed all the same
        logged = [r.getMessage() for r in caplog.records if r.name == "intake.audit" and r.levelno == logging.ERROR]
        for record in caplog.records:  # a logged refusal holds its traceback, and with it the cursor left open
            for arg in record.args if isinstance(record.args, tuple) else ():
                if isinstance(arg, BaseException):
                    arg.__traceback__ = None
    assert [r[0] for r in rows(log, "SELECT seq FROM audit_events WHERE seq > 45 ORDER BY seq")] == [46, 47, 48]
    assert len(logged) == 1, logged
    assert logged[0].startswith("audit checkpoint refused: ") and refusal in logged[0]

    with _cursors_collected():
        with pytest.raises(cp.CheckpointRefused) as refused:
            _sign_now(log)
        message = str(refused.value)
        del refused
    assert refusal in message
    assert rows(log, "SELECT id, tree_size FROM audit_checkpoints ORDER BY id") == before
    assert file_path(log).read_text(encoding="utf-8") == lines


@pytest.mark.parametrize("forge", [_frontier, _root], ids=["frontier", "root"])
def test_signing_without_the_file_refuses_a_last_checkpoint_row_altered(log: Flask, forge: Any) -> None:
    forge(log)
    with pytest.raises(cp.CheckpointRefused, match="checkpoint 4's columns or frontier differ from what it signed"):
        _sign_now(log, with_file=False)
    assert rows(log, "SELECT count(*) FROM audit_checkpoints")[0][0] == 4


def test_signing_refuses_a_consistent_rewrite_of_signed_events(log: Flask) -> None:
    """Events 38 to 45 rewritten so that they follow each other: the chain since checkpoint 4 starts from event
    40's stored hash, which is now the forger's. (What no checkpoint covers yet can be rewritten this way
    unnoticed, by design; what checkpoint 4 signed cannot.) Verify names it afterwards all the same."""
    _append_events(log, EVENTS + 1, EVENTS + 5)
    _rewrite_chain(log, 38, '{"n":38}', through=45)  # event 38 is covered by checkpoint 4 (size 40)
    try:
        made = _sign_now(log)
    except cp.CheckpointRefused:
        return
    raise AssertionError(f"signed checkpoint {made.id} over {made.tree_size} events of a rewritten log")


# Only PostgreSQL streams through a server-side cursor.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_refusal_in_the_middle_of_the_chain_leaves_no_cursor_open(log: Flask) -> None:
    _append_events(log, EVENTS + 1, EVENTS + 5)
    _entry_without_hash(log)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        try:
            _sign_now(log)
        except cp.CheckpointRefused:
            pass
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], [str(w.message) for w in caught]


# ---------------------------------------------------------------------------------------------------------------
# The checkpoint file gone, or missing some of the database's checkpoints


@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_a_checkpoint_file_gone_while_the_database_holds_checkpoints(log: Flask, how: str) -> None:
    path = file_path(log)
    if how == "deleted":
        path.unlink()
    else:
        path.write_bytes(b"")
    report = assert_detected(log, {"checkpoint_file_missing"}, None)
    (problem,) = report.problems
    assert "audit-checkpoints.jsonl holds no checkpoint although the database holds 4" in problem.message
    assert report.file_checkpoints == 0
    # Without the file, the database's own checkpoints still verify.
    assert verify(log, use_configured_file=False).ok


def test_verify_refuses_a_checkpoint_file_option_naming_no_file(log: Flask, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "audit-checkpoints.jsonl"
    for path, message in ((missing, f"--checkpoint-file: {missing} is not a file."),
                          (tmp_path, f"File '{tmp_path}' is a directory.")):
        result = run_cli(log, "verify", "--checkpoint-file", str(path))
        assert result.exit_code not in (0, None), result.output
        assert isinstance(result.exception, SystemExit), result.exception  # a message, not a traceback
        assert "Traceback" not in result.output
        assert message in result.output
    # Refused before anything was read: no verification was recorded.
    assert rows(log, "SELECT count(*) FROM audit_events")[0][0] == EVENTS


def test_a_database_checkpoint_missing_from_the_file_is_a_warning(log: Flask) -> None:
    path = file_path(log)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == [1, 2, 3, 4]
    path.write_text("\n".join(lines[:1] + lines[2:]) + "\n", encoding="utf-8")
    report = verify(log)
    assert report.ok, report.problems
    assert report.file_checkpoints == 3
    (warning,) = [w for w in report.warnings if "not in audit-checkpoints.jsonl" in w]
    assert "1 checkpoint(s) of the database" in warning and "(the first: checkpoint 2)" in warning
    result = run_cli(log, "verify")
    assert result.exit_code == 0, result.output
    assert "Note: 1 checkpoint(s) of the database are not in audit-checkpoints.jsonl (the first: checkpoint 2)" \
        in result.output
    assert "OK: every hash link" in result.output


# ---------------------------------------------------------------------------------------------------------------
# Damaged rows


def test_a_hash_of_the_wrong_length_is_reported_malformed(log: Flask) -> None:
    execute(log, ("UPDATE audit_events SET hash = :h WHERE seq = 25", {"h": stored_hashes(log)[24][:31]}))
    crash = None
    with _cursors_collected():
        try:
            report = assert_detected(log, {"malformed"}, 25,
                                     allowed=FRONTIER | {"changed", "broken_link", "root_mismatch"})
        except AssertionError:
            raise
        except Exception as exc:  # noqa: BLE001 - the crash is reported below, without its traceback's cursor
            crash = f"verification crashed: {exc!r}"
    assert crash is None, crash
    assert [p.seq for p in report.problems if p.code == "malformed"] == [25]
    # The damaged row stands in the tree as a hash no event has: the checkpoints over it fail, those before hold.
    assert sorted(p.checkpoint or 0 for p in report.problems if p.code == "root_mismatch") == [3, 4]
    assert report.events == EVENTS


# A bytea column holds no text: only SQLite's dynamic typing lets a value of another type in.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_previous_hash_stored_as_text_is_reported_malformed(log: Flask) -> None:
    execute(log, ("UPDATE audit_events SET prev_hash = :p WHERE seq = 25", {"p": stored_hashes(log)[23].hex()}))
    assert rows(log, "SELECT typeof(prev_hash) FROM audit_events WHERE seq = 25") == [("text",)]
    report = assert_detected(log, {"malformed"}, 25,
                             allowed=FRONTIER | {"changed", "broken_link", "root_mismatch"})
    assert [p.seq for p in report.problems if p.code == "malformed"] == [25]
    assert sorted(p.checkpoint or 0 for p in report.problems if p.code == "root_mismatch") == [3, 4]


# ---------------------------------------------------------------------------------------------------------------
# Gaps and many problems


def test_a_gap_below_a_checkpoint_fails_every_checkpoint_above_it_without_claiming_truncation(log: Flask) -> None:
    # Event 40, the last checkpoint's size, is still there; only event 20 is gone.
    execute(log, "DELETE FROM audit_events WHERE seq = 20")
    report = assert_detected(log, {"missing", "broken_link", "root_mismatch"}, 20, allowed=FRONTIER)
    assert "truncated" not in codes(report)
    assert sorted(p.checkpoint or 0 for p in report.problems if p.code == "root_mismatch") == [3, 4]
    assert report.events == EVENTS - 1


def _rewrite_details(app: Flask, seqs: Sequence[int], *, entry_too: bool) -> None:
    updates: list[tuple[str, dict[str, Any]]] = []
    for values in rows(app, f"SELECT {', '.join(ENTRY_COLUMNS)} FROM audit_events ORDER BY seq"):  # noqa: S608
        if values[0] in seqs:
            details = json.dumps({"n": -values[0]}, separators=(",", ":"))
            values = (*values[:8], details, values[9])
            params = {"d": details, "s": values[0], "e": encode_event(*values)}
            sql = ("UPDATE audit_events SET details = :d, entry = :e WHERE seq = :s" if entry_too
                   else "UPDATE audit_events SET details = :d WHERE seq = :s")
            updates.append((sql, params))
    execute(app, *updates)


def test_more_problems_than_are_listed_are_all_counted(log: Flask) -> None:
    _append_events(log, EVENTS + 1, EVENTS + 30)
    changed = range(5, 65)  # 60 events, their entries rewritten too: the hashes no longer match
    _rewrite_details(log, changed, entry_too=True)
    report = verify(log)
    # The tree is over the stored hashes, which are untouched: only the 60 events are wrong, each once.
    assert report.total_problems == 60
    assert [(p.code, p.seq) for p in report.problems] == [("changed", seq) for seq in range(5, 55)]  # log order
    assert report.first_bad_seq == 5
    result = run_cli(log, "verify")
    assert result.exit_code == 1
    assert "FAILED: 60 problem(s); the first bad event is 5." in result.output
    assert "… and 10 more." in result.output
    assert result.output.count("  [changed]") == 50


def test_more_than_fifty_events_whose_columns_differ_from_their_entries_are_all_counted(log: Flask) -> None:
    _append_events(log, EVENTS + 1, EVENTS + 30)
    _rewrite_details(log, range(5, 65), entry_too=False)  # the hashes still match the entries
    report = verify(log)
    assert codes(report) == {"changed"}
    assert len(report.problems) == 50 and report.first_bad_seq == 5
    assert report.total_problems == 60


# ---------------------------------------------------------------------------------------------------------------
# Blocks and worker processes


def _problems(report: Report) -> list[tuple[str, int | None, int | None]]:
    return [(p.code, p.seq, p.checkpoint) for p in report.problems]


def test_small_blocks_in_worker_processes_report_what_one_block_does(
    log: Flask, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Eight events a block: the deletion at 20 and the change at 33 fall in different blocks, and five blocks
    are enough for two worker processes (they are handed their blocks' bounds, so the patched size reaches them)."""
    from intake.core.audit import verify as verify_module

    execute(log, "DELETE FROM audit_events WHERE seq = 20")
    _rewrite_details(log, [33], entry_too=True)
    whole = verify(log)
    monkeypatch.setattr(verify_module, "BLOCK", 8)
    pools: list[Any] = []
    pool = verify_module.ProcessPoolExecutor

    def started(**kwargs: Any) -> Any:
        pools.append(pool(**kwargs))
        return pools[-1]

    monkeypatch.setattr(verify_module, "ProcessPoolExecutor", started)
    in_blocks = verify(log, jobs=1)
    assert pools == []
    in_workers = verify(log, jobs=2)
    assert len(pools) == 1  # the blocks were hashed in worker processes
    assert in_workers.problems == in_blocks.problems
    assert in_workers.total_problems == in_blocks.total_problems
    assert in_blocks.events == in_workers.events == whole.events == EVENTS - 1
    # The same events are named, and the same checkpoints fail, whatever the block size.
    events_named = {(code, seq) for code, seq, _ in _problems(whole) if code in ("missing", "broken_link", "changed")}
    assert events_named == {("missing", 20), ("broken_link", 21), ("changed", 33)}
    assert {(c, s) for c, s, _ in _problems(in_blocks) if c in ("missing", "broken_link", "changed")} == events_named
    for report in (whole, in_blocks):
        assert sorted(p.checkpoint or 0 for p in report.problems if p.code == "root_mismatch") == [3, 4]
        assert report.first_bad_seq == 20
        assert "truncated" not in codes(report)


def test_the_checkpoint_command_refuses_a_forged_log_with_a_message(log: Flask) -> None:
    _append_events(log, EVENTS + 1, EVENTS + 5)
    _entry_without_hash(log)
    with _cursors_collected():
        result = run_cli(log, "checkpoint")
        exited, exception, output = isinstance(result.exception, SystemExit), repr(result.exception), result.output
        del result
    assert exited, exception
    assert "event 43 does not follow the chain" in output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # a bytea column holds no text
def test_signing_refuses_an_event_with_a_previous_hash_stored_as_text(log: Flask) -> None:
    _append_events(log, EVENTS + 1, EVENTS + 5)
    execute(log, ("UPDATE audit_events SET prev_hash = :p WHERE seq = 43", {"p": stored_hashes(log)[41].hex()}))
    with pytest.raises(cp.CheckpointRefused):
        _sign_now(log)
