"""Someone with write access to the database alters the audit log: `intake audit verify` must notice every kind of
alteration, name it and point at the first event concerned.

Each case builds the same log of 40 varied events with signed checkpoints at sizes 7, 16, 29 and 40 (copied to the
checkpoint file too), checks that it verifies, removes the append-only triggers as an attacker with the database
owner's rights would, makes one alteration and verifies again, through `service.verify` and through the CLI. Every
case runs on SQLite and on PostgreSQL. The last tests show that the triggers, left in place, refuse the changes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
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


GUARDS = {"audit_events": ("audit_events_refuse_update", "audit_events_refuse_delete"),
          "audit_checkpoints": ("audit_checkpoints_refuse_update", "audit_checkpoints_refuse_delete")}


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
    execute(app, ("UPDATE audit_events SET seq = -1 WHERE seq = :a", {"a": a}),
            ("UPDATE audit_events SET seq = :a WHERE seq = :b", {"a": a, "b": b}),
            ("UPDATE audit_events SET seq = :b WHERE seq = -1", {"b": b}))


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
