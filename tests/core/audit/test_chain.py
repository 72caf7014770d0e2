"""The hash chain as it is appended to: numbering and links inside and across transactions, rollbacks and
savepoints, what `record_event` refuses, automatic checkpoints (by count and by time) and their copies in the
checkpoint file, many writers at once, and the absence of any content. Every test runs on SQLite and PostgreSQL
(the concurrency tests each on the database they are written for)."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from flask import Flask

from intake.accounts import operations as account_ops
from intake.core.audit import REASON_REQUIRED, AuditAction, AuditCheckpoint, AuditEvent, record_event, service
from intake.core.audit import checkpoints as cp
from intake.core.audit.chain import GENESIS, encode_event, event_hash, hash_of
from intake.core.audit.merkle import CompactRange, root_of_leaf_hashes
from intake.core.audit.note import open_checkpoint
from intake.core.db import db, utcnow, write_intent
from intake.identities import operations as identity_ops
from intake.testimonies import operations as testimony_ops
from tests.conftest import PASSWORD


@dataclass(frozen=True)
class Actor:
    id: int
    role_names: tuple[str, ...]


ALICE = Actor(4, ("interviewer",))
BORIS = Actor(9, ("legal", "reviewer"))


@pytest.fixture(autouse=True)
def _writes(database_url: str) -> Any:
    """Transactions begun outside requests take SQLite's write lock at BEGIN, as the CLI's do (set once the test's
    database exists)."""
    token = write_intent.set(True)
    yield
    write_intent.reset(token)


def append(count: int, *, actor: Actor | None = ALICE, start: int = 0) -> None:
    for n in range(start, start + count):
        record_event(AuditAction.RECORD_VIEWED, actor=actor, target_type="testimony", target_ids=[n],
                     details={"parts": ["content"], "n": n})


def events() -> list[AuditEvent]:
    """Every event as stored, read through a session of its own (nothing cached from the appends)."""
    with db.new_session() as session:
        found = list(session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq)))
        session.expunge_all()
        return found


def checkpoints() -> list[AuditCheckpoint]:
    with db.new_session() as session:
        found = list(session.scalars(sa.select(AuditCheckpoint).order_by(AuditCheckpoint.id)))
        session.expunge_all()
        return found


def assert_chained(found: list[AuditEvent]) -> None:
    assert [e.seq for e in found] == list(range(1, len(found) + 1))
    previous = GENESIS
    for audit_event in found:
        assert audit_event.prev_hash == previous
        assert hash_of(audit_event) == audit_event.hash
        previous = audit_event.hash


def file_lines(app: Flask) -> list[dict[str, Any]]:
    path = cp.checkpoint_file(app.config)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------------------------------------------------------
# Numbering and links


def test_appends_in_one_transaction_are_numbered_in_order_and_linked(app: Flask) -> None:
    with app.app_context():
        append(5)
        record_event(AuditAction.REIDENTIFIED, actor=BORIS, target_type="person", target_ids=[7, "p-7"],
                     reason="Запрос суда: установить личность\nвторая строка\tс табуляцией")
        db.session.commit()
        append(2, actor=None, start=5)
        db.session.commit()
        found = events()
        assert_chained(found)
        assert len(found) == 8
        assert found[5].reason == "Запрос суда: установить личность\nвторая строка\tс табуляцией"
        assert found[5].actor_roles == "legal,reviewer" and found[5].target_ids == [7, "p-7"]
        assert found[6].actor_id is None and found[6].actor_roles == ""
        assert service.verify().ok


def test_an_events_hash_is_recomputed_from_its_stored_text(app: Flask) -> None:
    with app.app_context():
        append(3)
        record_event(AuditAction.ACCESS_GRANTED, actor=BORIS, target_type="testimony", target_ids=[1],
                     reason="Դատախազության հարցում", details={"grantee": 12, "flag": True, "none": None})
        db.session.commit()
        with db.engine.connect() as conn:
            stored = conn.execute(sa.text(
                "SELECT seq, occurred_at, actor_id, actor_roles, action, target_type, target_ids, reason, details, "
                "request_id, entry, prev_hash, hash FROM audit_events ORDER BY seq")).all()
        previous = GENESIS
        for values in stored:
            entry = encode_event(*values[:10])
            assert values[10] == entry
            assert bytes(values[11]) == previous
            assert event_hash(previous, entry) == bytes(values[12])
            previous = bytes(values[12])
        assert stored[3][8] == '{"flag":true,"grantee":12,"none":null}'
        assert stored[3][7] == "Դատախազության հարցում"


def test_a_rolled_back_transaction_leaves_no_event_and_no_gap(app: Flask) -> None:
    with app.app_context():
        append(2)
        db.session.commit()
        append(3, start=2)
        db.session.flush()  # numbered 3, 4 and 5 inside the transaction
        db.session.rollback()
        assert [e.seq for e in events()] == [1, 2]
        append(1, start=10)
        db.session.commit()
        found = events()
        assert_chained(found)
        assert [e.details["n"] for e in found] == [0, 1, 10]


def test_a_rolled_back_savepoint_drops_its_events_without_breaking_the_chain(app: Flask) -> None:
    with app.app_context():
        append(1)
        savepoint = db.session.begin_nested()
        append(2, start=1)
        db.session.flush()
        savepoint.rollback()
        append(1, start=3)
        kept = db.session.begin_nested()
        append(1, start=4)
        kept.commit()
        db.session.commit()
        found = events()
        assert_chained(found)
        assert [e.details["n"] for e in found] == [0, 3, 4]
        assert service.verify().ok


# ---------------------------------------------------------------------------------------------------------------
# What record_event refuses


REFUSED_DETAILS: tuple[dict[str, Any], ...] = (
    {"ratio": 0.5}, {"values": [1, 2.5]}, {"nested": [[1, 2]]}, {"nested": [{"a": 1}]}, {"mapping": {"a": 1}},
    {"text": "x" * 201}, {"texts": ["ok", "y" * 201]}, {"blob": b"bytes"},
    {"password": "x"}, {"Name": "Արմեն"}, {"TOTP": 1}, {"narrative": None}, {"Passphrase": "x"}, {"code": 1},
    {"token": "x"}, {"secret": "x"},
)


def test_details_other_than_short_flat_values_are_refused(app: Flask) -> None:
    with app.app_context():
        for details in REFUSED_DETAILS:
            with pytest.raises(ValueError):
                record_event(AuditAction.RECORDS_SEARCHED, actor=ALICE, details=details)
        db.session.commit()
        assert events() == []


def test_a_detail_key_that_is_not_text_is_refused(app: Flask) -> None:
    details: dict[Any, Any] = {3: "a key that is not text"}
    with app.app_context():
        with pytest.raises(ValueError, match="keys are text"):
            record_event(AuditAction.RECORDS_SEARCHED, actor=ALICE, details=details)
        db.session.commit()
        assert events() == []


def test_details_of_identifiers_counts_flags_and_short_text_are_kept(app: Flask) -> None:
    details = {"text": "ü" * 200, "count": 3, "flag": False, "none": None, "ids": [1, "a", True, None]}
    with app.app_context():
        record_event(AuditAction.RECORDS_SEARCHED, actor=ALICE, details=details)
        db.session.commit()
        assert events()[0].details == details


def test_actions_that_need_a_reason_are_refused_without_one(app: Flask) -> None:
    with app.app_context():
        for action in sorted(REASON_REQUIRED):
            for reason in (None, "", "  \n\t "):
                with pytest.raises(ValueError, match="reason"):
                    record_event(action, actor=BORIS, target_type="testimony", target_ids=[1], reason=reason)
            record_event(action, actor=BORIS, target_type="testimony", target_ids=[1], reason="Court order 17/2024")
        db.session.commit()
        assert [(e.action, e.reason) for e in events()] == [(str(a), "Court order 17/2024")
                                                            for a in sorted(REASON_REQUIRED)]


def test_a_reason_with_control_characters_is_refused(app: Flask) -> None:
    with app.app_context():
        for character in ("\x00", "\x07", "\x1b", "\x1e", "\x1f", "\x7f", "\x0b", "\x0c"):
            with pytest.raises(ValueError, match="control"):
                record_event(AuditAction.REIDENTIFIED, actor=BORIS, reason=f"court{character}order")
        db.session.commit()
        assert events() == []


# ---------------------------------------------------------------------------------------------------------------
# Automatic checkpoints


def test_a_checkpoint_is_signed_every_so_many_events(make_app: Callable[..., Flask]) -> None:
    app = make_app(AUDIT_CHECKPOINT_EVERY=5)
    with app.app_context():
        for n in range(12):
            append(1, start=n)
            db.session.commit()
        hashes = [e.hash for e in events()]
        made = checkpoints()
        assert [(c.id, c.tree_size) for c in made] == [(1, 5), (2, 10)]
        verifier = service.verifier_key()
        for checkpoint in made:
            signed, _ = open_checkpoint(checkpoint.note, [verifier], origin=app.config["AUDIT_ORIGIN"])
            # An event's hash is its leaf hash in the RFC 9162 tree.
            expected = root_of_leaf_hashes(hashes[: checkpoint.tree_size])
            assert signed.size == checkpoint.tree_size
            assert signed.root_hash == checkpoint.root_hash == expected
            tree = CompactRange()
            tree.append_leaf_hashes(hashes[: checkpoint.tree_size])
            assert checkpoint.frontier == tree.to_bytes()
        assert [(line["id"], line["tree_size"], line["note"]) for line in file_lines(app)] == [
            (c.id, c.tree_size, c.note) for c in made]
        assert service.verify().ok


def test_checkpoints_of_one_transaction_with_many_events(make_app: Callable[..., Flask]) -> None:
    app = make_app(AUDIT_CHECKPOINT_EVERY=5)
    with app.app_context():
        append(3)
        db.session.commit()
        append(9, start=3)  # one flush numbers 4..12: one checkpoint over all twelve
        db.session.commit()
        assert [(c.id, c.tree_size) for c in checkpoints()] == [(1, 12)]
        assert [line["tree_size"] for line in file_lines(app)] == [12]
        assert service.verify().ok


def test_the_file_gets_a_line_per_committed_checkpoint_and_none_for_a_rolled_back_one(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(AUDIT_CHECKPOINT_EVERY=5)
    with app.app_context():
        append(4)
        db.session.commit()
        append(1, start=4)
        db.session.flush()  # the fifth event: a checkpoint is signed in this transaction...
        db.session.rollback()  # ...and rolled back with it
        assert checkpoints() == [] and file_lines(app) == []
        savepoint = db.session.begin_nested()
        append(1, start=5)
        db.session.flush()
        savepoint.rollback()
        assert file_lines(app) == []
        append(1, start=6)  # the fifth event of the log after all
        db.session.commit()
        made = checkpoints()
        assert [(c.id, c.tree_size) for c in made] == [(1, 5)]
        assert [(line["id"], line["tree_size"], line["note"]) for line in file_lines(app)] == [(1, 5, made[0].note)]
        assert service.verify().ok


def test_a_checkpoint_is_signed_with_the_first_event_after_the_interval(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_app(AUDIT_CHECKPOINT_EVERY=1000, AUDIT_CHECKPOINT_MINUTES=5)
    later = utcnow()
    monkeypatch.setattr(cp, "utcnow", lambda: later)
    with app.app_context():
        append(2)
        db.session.commit()
        assert checkpoints() == []
        later += timedelta(minutes=6)  # since the first event
        append(1, start=2)
        db.session.commit()
        assert [(c.id, c.tree_size) for c in checkpoints()] == [(1, 3)]
        later += timedelta(minutes=4)  # not yet five minutes since that checkpoint
        append(1, start=3)
        db.session.commit()
        assert len(checkpoints()) == 1
        later += timedelta(minutes=2)
        append(1, start=4)
        db.session.commit()
        made = checkpoints()
        assert [(c.id, c.tree_size) for c in made] == [(1, 3), (2, 5)]
        assert made[1].created_at == later
        assert [line["tree_size"] for line in file_lines(app)] == [3, 5]
        assert service.verify().ok


def test_no_checkpoint_is_signed_for_an_interval_without_new_events(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_app(AUDIT_CHECKPOINT_EVERY=1000, AUDIT_CHECKPOINT_MINUTES=5)
    with app.app_context():
        append(2)
        db.session.commit()
        made = cp.checkpoint_now(db.session(), keyring=app.extensions["intake.keyring"],
                                 origin=app.config["AUDIT_ORIGIN"], path=cp.checkpoint_file(app.config))
        db.session.commit()
        assert made is not None and made.tree_size == 2
        again = cp.checkpoint_now(db.session(), keyring=app.extensions["intake.keyring"],
                                  origin=app.config["AUDIT_ORIGIN"], path=cp.checkpoint_file(app.config))
        db.session.commit()
        assert again is None
        assert len(checkpoints()) == 1 and len(file_lines(app)) == 1


def test_a_later_checkpoint_is_proved_to_extend_an_earlier_one(make_app: Callable[..., Flask]) -> None:
    from intake.core.audit.merkle import verify_consistency

    app = make_app(AUDIT_CHECKPOINT_EVERY=4)
    with app.app_context():
        for start in range(0, 11):
            append(1, start=start)
            db.session.commit()
        made = checkpoints()
        assert [c.tree_size for c in made] == [4, 8]
        older, newer = made
        proof = service.consistency_between(older, newer)
        assert verify_consistency(4, 8, older.root_hash, newer.root_hash, proof)
        assert not verify_consistency(4, 8, newer.root_hash, older.root_hash, proof)
        with pytest.raises(ValueError, match="covers more events"):
            service.consistency_between(newer, older)


def test_doctor_reports_the_log_and_fails_when_the_checkpoint_file_is_gone(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    with app.app_context():
        append(3)
        db.session.commit()
    runner = app.test_cli_runner()
    token = write_intent.set(None)  # as in a shell: the commands choose their own transactions
    try:
        assert runner.invoke(args=["audit", "checkpoint"]).exit_code == 0
        healthy = runner.invoke(args=["doctor"])
        cp.checkpoint_file(app.config).unlink()
        broken = runner.invoke(args=["doctor"])
    finally:
        write_intent.reset(token)
    assert healthy.exit_code == 0, healthy.output
    assert "ok       audit log holds 3 events; the latest checkpoint covers 3" in healthy.output
    assert broken.exit_code == 1
    assert "ERROR    the audit checkpoint file" in broken.output and "is missing" in broken.output


# ---------------------------------------------------------------------------------------------------------------
# Many writers at once


def _concurrent_appends(app: Flask, threads: int, each: int) -> None:
    with app.app_context():
        append(3)  # a log that already has events
        db.session.commit()
    start = threading.Barrier(threads, timeout=60)
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        token = write_intent.set(True)
        try:
            with app.app_context():
                start.wait()
                for k in range(each):
                    record_event(AuditAction.RECORD_VIEWED, actor=Actor(100 + number, ("reviewer",)),
                                 target_type="testimony", target_ids=[number], details={"k": k})
                    db.session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below, with the thread's number
            errors.append(exc)
            start.abort()
        finally:
            write_intent.reset(token)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not any(w.is_alive() for w in workers)
    assert not errors, errors[:3]
    with app.app_context():
        found = events()
        assert len(found) == 3 + threads * each
        assert_chained(found)
        for number in range(threads):  # each writer's events in the order it appended them
            assert [e.details["k"] for e in found if e.actor_id == 100 + number] == list(range(each))
        # One event per transaction: a checkpoint exactly every AUDIT_CHECKPOINT_EVERY events, whoever appended them.
        every = app.config["AUDIT_CHECKPOINT_EVERY"]
        made = checkpoints()
        assert [(c.id, c.tree_size) for c in made] == list(enumerate(range(every, len(found) + 1, every), start=1))
        # Writers append their lines after committing, so the file may hold them out of order, but all of them.
        assert sorted(line["id"] for line in file_lines(app)) == [c.id for c in made]
        report = service.verify()
        assert report.ok, report.problems
        assert report.events == len(found)


def test_concurrent_writers_lose_no_event_and_keep_the_chain_linear(
        make_app: Callable[..., Flask], database_url: str) -> None:
    # PostgreSQL: 32 writers behind the advisory lock. SQLite: 8 writers queueing for the write lock (more only
    # lengthen the queue on one file).
    threads = 32 if database_url.startswith("postgresql") else 8
    _concurrent_appends(make_app(AUDIT_CHECKPOINT_EVERY=40), threads=threads, each=25)


# ---------------------------------------------------------------------------------------------------------------
# No content


SENTINELS = {
    "narrative": "SENTINEL-NARRATIVE-Ստեփանակերտ-7Q2F",
    "narrative2": "SENTINEL-SECOND-NARRATIVE-Карабах-9K1Z",
    "name": "Սենտինել Անունյան",
    "contact": "+374 99 SENTINEL 55",
    "address": "SENTINEL-ADDRESS Թումանյան 12",
    "relative": "Сентинел Родственников",
    "filename": "SENTINEL-FILENAME-Ани.jpg",
}
JPEG_HEADER = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


def _dump(table: str) -> tuple[str, bytes]:
    """Every column of every row of `table`, as text and as the raw bytes of binary columns."""
    texts: list[str] = []
    raw: list[bytes] = []
    with db.engine.connect() as conn:
        for row in conn.execute(sa.text(f"SELECT * FROM {table}")):  # noqa: S608 - a fixed table name
            for value in row:
                if isinstance(value, (bytes, memoryview)):
                    raw.append(bytes(value))
                    texts.append(base64.b64encode(bytes(value)).decode())
                else:
                    texts.append(str(value))
    return "\n".join(texts), b"".join(raw)


def test_no_content_or_identity_reaches_the_audit_tables(make_app: Callable[..., Flask]) -> None:
    app = make_app(AUDIT_CHECKPOINT_EVERY=2)
    with app.app_context():
        interviewer = account_ops.create_account(username="amira", roles=["interviewer"], password=PASSWORD,
                                                 totp_secret=pyotp.random_base32())
        person = identity_ops.register_person(
            {"name": SENTINELS["name"], "birth_year": 1979, "contacts": [SENTINELS["contact"]],
             "addresses": [SENTINELS["address"]], "relatives": [SENTINELS["relative"]]}, actor=interviewer, prefix="KB")
        testimony = testimony_ops.create_testimony(pseudonym=person.pseudonym, interviewer=interviewer, language="hy",
                                                   region="Syunik", narrative=SENTINELS["narrative"])
        testimony_ops.store_attachment(testimony, io.BytesIO(JPEG_HEADER + b"\x00" * 64),
                                       filename=SENTINELS["filename"], actor=interviewer, config=app.config)
        db.session.commit()
        testimony_ops.set_narrative(testimony, SENTINELS["narrative2"], actor=interviewer)
        assert identity_ops.possible_previous_interviews(SENTINELS["name"], 1979, actor=interviewer) == [person]
        db.session.commit()
        assert testimony_ops.read_narrative(testimony) == SENTINELS["narrative2"]
        assert len(events()) >= 5 and checkpoints()
        for table in ("audit_events", "audit_checkpoints"):
            text, raw = _dump(table)
            for label, sentinel in SENTINELS.items():
                assert sentinel not in text, (table, label)
                assert sentinel.encode() not in raw, (table, label)
                for word in sentinel.split():
                    if len(word) >= 6:
                        assert word not in text, (table, label, word)
        file_text = cp.checkpoint_file(app.config).read_text(encoding="utf-8")
        assert not any(sentinel in file_text for sentinel in SENTINELS.values())
        assert service.verify().ok


# ---------------------------------------------------------------------------------------------------------------
# Appended at commit


def _stored_count() -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(AuditEvent)).scalar_one())


def test_an_event_recorded_then_rolled_back_leaves_nothing(app: Flask) -> None:
    with app.app_context():
        recorded = record_event(AuditAction.LOGIN, actor=ALICE)
        db.session.rollback()
        db.session.commit()  # nothing is left to append
        assert events() == [] and recorded.seq is None
        append(1, start=7)
        db.session.commit()
        found = events()
        assert_chained(found)
        assert [(e.seq, e.details["n"]) for e in found] == [(1, 7)]


def test_events_of_rolled_back_savepoints_are_dropped_and_the_rest_numbered_consecutively(app: Flask) -> None:
    with app.app_context():
        append(1, start=0)
        with db.session.begin_nested():  # kept: released into the transaction
            append(1, start=1)
            inner = db.session.begin_nested()
            append(1, start=2)
            inner.rollback()  # dropped, though its savepoint sat inside a kept one
            append(1, start=3)
        append(1, start=4)
        with pytest.raises(LookupError), db.session.begin_nested():
            append(1, start=5)
            with db.session.begin_nested():
                append(1, start=6)  # released into a savepoint that is then rolled back: dropped with it
            raise LookupError
        append(1, start=7)
        db.session.commit()
        found = events()
        assert_chained(found)
        assert [(e.seq, e.details["n"]) for e in found] == [(1, 0), (2, 1), (3, 3), (4, 4), (5, 7)]
        assert service.verify().ok


def test_a_flush_does_not_append_an_event_the_commit_does(app: Flask) -> None:
    with app.app_context():
        recorded = record_event(AuditAction.LOGIN, actor=ALICE)
        db.session.flush()
        assert recorded.seq is None and recorded.hash is None
        # Not in the table, not even as the transaction itself sees it.
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 0
        db.session.commit()
        assert recorded.seq == 1 and _stored_count() == 1
        assert_chained(events())


def test_an_on_demand_checkpoint_covers_the_events_of_its_own_transaction(app: Flask) -> None:
    with app.app_context():
        append(2)
        db.session.commit()
        append(3, start=2)  # recorded, not yet appended
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 2
        made = cp.checkpoint_now(db.session(), keyring=app.extensions["intake.keyring"],
                                 origin=app.config["AUDIT_ORIGIN"], path=cp.checkpoint_file(app.config))
        assert made is not None and made.tree_size == 5
        db.session.commit()
        found = events()
        assert_chained(found)
        assert [e.details["n"] for e in found] == [0, 1, 2, 3, 4]
        assert [(c.id, c.tree_size) for c in checkpoints()] == [(1, 5)]
        assert checkpoints()[0].root_hash == root_of_leaf_hashes([e.hash for e in found])
        assert [(line["id"], line["tree_size"]) for line in file_lines(app)] == [(1, 5)]
        assert service.verify().ok
