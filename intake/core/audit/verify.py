"""`intake audit verify`: every link, every event hash, the Merkle root at every checkpoint, every signature.

The verifier reads the log the way anyone holding a copy of the database could: each event's hash is recomputed
from its stored entry, and the database compares every row's searchable columns with its entry
(`chain.encoded_column`) while that happens; each `prev_hash` must be the hash of the event before, sequence numbers
must run 1, 2, 3… without gaps, and the RFC 9162 tree over the event hashes must have, at every checkpoint's size,
the root that checkpoint signed. Checkpoints come from the database and from the
checkpoint file outside it; every note must carry a valid signature by the log's key, sizes must grow, and every
checkpoint in the file must also be in the database. Checkpoints agree with each other (each later tree extends
the earlier one) exactly when both roots are recomputed from the same prefix of the log, which this does.

Problems are reported in log order, with the first bad sequence number and a code naming what is wrong.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from intake.core.audit.chain import GENESIS, LEAF_PREFIX, SEPARATOR, encoded_column
from intake.core.audit.merkle import CompactRange
from intake.core.audit.models import AuditCheckpoint, AuditEvent
from intake.core.audit.note import UnverifiedNote, Verifier, open_checkpoint

_FETCH = 20_000
# Events per block: a power of two, so that blocks are perfect subtrees of the log's Merkle tree.
BLOCK = 1 << 16
MAX_PROBLEMS = 50
_COLLECTED = 10_000  # problems kept while verifying; the report keeps the first MAX_PROBLEMS in log order


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the log. `code` names the kind; `seq` is the first event concerned, if any."""

    code: str
    message: str
    seq: int | None = None
    checkpoint: int | None = None


@dataclass
class Report:
    events: int = 0
    checkpoints: int = 0
    file_checkpoints: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    total_problems: int = 0
    warnings: list[str] = field(default_factory=list)
    latest_checkpoint_size: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_seq(self) -> int | None:
        seqs = [p.seq for p in self.problems if p.seq is not None]
        return min(seqs) if seqs else None

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def add(self, problem: Problem) -> None:
        self.total_problems += 1
        if len(self.problems) < _COLLECTED:
            self.problems.append(problem)

    def finish(self) -> None:
        """Problems in log order (those about no event last), the first `MAX_PROBLEMS` of them."""
        self.problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
        del self.problems[MAX_PROBLEMS:]


@dataclass
class _Claim:
    """A signed size and root the log must match: a checkpoint row, or a line of the checkpoint file."""

    label: str
    checkpoint_id: int | None
    size: int
    root: bytes
    in_database: bool = True


def _short(h: bytes) -> str:
    return h.hex()[:16]


def _rows(connection: sa.Connection, lo: int, hi: int) -> Iterator[Sequence[Any]]:
    """(seq, prev_hash, hash, entry) of events lo..hi in order, streamed through the driver's own cursor (reading
    rows is where verification spends its time, and the driver's tuples cost a fraction of SQLAlchemy's rows)."""
    raw: Any = connection.connection.driver_connection
    # The entry as bytes: what is hashed, with no decoding that a damaged row could make fail.
    if connection.dialect.name == "postgresql":
        cursor = raw.cursor(name=f"intake_audit_verify_{lo}_{next(_cursor_numbers)}", binary=True)
        cursor.itersize = _FETCH
        query = ("SELECT seq, prev_hash, hash, convert_to(entry, 'UTF8') FROM audit_events "
                 "WHERE seq BETWEEN %s AND %s ORDER BY seq")
    else:
        cursor = raw.cursor()
        query = ("SELECT seq, prev_hash, hash, CAST(entry AS BLOB) FROM audit_events WHERE seq BETWEEN ? AND ? "
                 "ORDER BY seq")
    try:
        cursor.execute(query, (lo, hi))
        while True:
            batch = cursor.fetchmany(_FETCH)
            if not batch:
                return
            yield from batch
    finally:
        cursor.close()


def _disagreeing_rows(engine: sa.Engine) -> list[Problem]:
    """Events whose searchable columns differ from their hashed entry, compared by the database (first 50).

    An entry numbered for a neighbouring place is an event moved there (two events swapped, rows renumbered).
    """
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(AuditEvent.seq, AuditEvent.entry).where(AuditEvent.entry.is_distinct_from(encoded_column()))
            .order_by(AuditEvent.seq).limit(_COLLECTED)
        ).all()
    problems = []
    for seq, entry in rows:
        written = (entry or "").partition(SEPARATOR)[0]
        if written.isdigit() and abs(int(written) - seq) == 1:
            problems.append(Problem("out_of_order", f"event {seq} holds event {written} (events swapped or "
                                    "renumbered)", seq=seq))
        else:
            problems.append(Problem("changed", f"event {seq} was changed after it was written: its columns differ "
                                    "from the entry its hash covers", seq=seq))
    return problems


def _check_notes(
    report: Report, rows: Iterable[tuple[str, int | None, str, int | None, bytes | None]],
    verifiers: Sequence[Verifier], origin: str,
) -> list[_Claim]:
    """Open each note; return the claims whose signatures hold. Rows: (label, id, note, row size, row root)."""
    claims: list[_Claim] = []
    seen: dict[tuple[int, bytes], str] = {}
    previous_size = -1
    for label, checkpoint_id, note, row_size, row_root in rows:
        try:
            checkpoint, _ = open_checkpoint(note, verifiers)
        except UnverifiedNote as exc:
            if exc.invalid:
                report.add(Problem("bad_signature", f"{label}: its signature does not verify: the note was "
                                   "altered or forged after signing", checkpoint=checkpoint_id))
            else:
                keys = ", ".join(f"{name}+{key_hash:08x}" for name, key_hash in exc.unknown_keys) or "none"
                report.add(Problem("unknown_key", f"{label}: not signed by this log's key (signed by: {keys})",
                                   checkpoint=checkpoint_id))
            continue
        except ValueError as exc:
            report.add(Problem("malformed_checkpoint", f"{label}: not a checkpoint note ({exc})",
                               checkpoint=checkpoint_id))
            continue
        if checkpoint.origin != origin:
            report.add(Problem("wrong_origin", f"{label}: it is a checkpoint of another log ({checkpoint.origin!r})",
                               checkpoint=checkpoint_id))
            continue
        if row_size is not None and (row_size != checkpoint.size or row_root != checkpoint.root_hash):
            report.add(Problem("checkpoint_mismatch", f"{label}: its size or root column differs from its signed "
                               "note", checkpoint=checkpoint_id))
        signed = (checkpoint.size, checkpoint.root_hash)
        if signed in seen:
            report.add(Problem("replayed_checkpoint", f"{label}: it repeats {seen[signed]} (a replayed checkpoint)",
                               checkpoint=checkpoint_id))
            continue
        seen[signed] = label
        if checkpoint.size <= previous_size:
            report.add(Problem("size_not_increasing", f"{label}: its size {checkpoint.size} does not exceed the "
                               f"previous checkpoint's {previous_size}", checkpoint=checkpoint_id))
        previous_size = max(previous_size, checkpoint.size)
        claims.append(_Claim(label, checkpoint_id, checkpoint.size, checkpoint.root_hash,
                             in_database=row_size is not None))
    return claims


def verify_log(
    connection: sa.Connection, *, verifiers: Sequence[Verifier], origin: str,
    file_entries: list[dict[str, Any]] | None = None, file_name: str = "checkpoint file",
    started: float | None = None, jobs: int = 1,
) -> Report:
    """Check the whole log read through `connection`.

    `file_entries` are the checkpoint file's (`checkpoints.read_file`), read before the database: a note reaches
    the file only after its transaction committed, so every note read there must be in the database. The events
    are read in blocks of `BLOCK` sequence numbers up to the last one present when verification began (events are
    never changed, so later appends do not disturb it); with `jobs` > 1, blocks are read and hashed in that many
    processes, each with its own connection.
    """
    started = time.perf_counter() if started is None else started
    report = Report()

    db_rows = connection.execute(sa.select(
        AuditCheckpoint.id, AuditCheckpoint.note, AuditCheckpoint.tree_size, AuditCheckpoint.root_hash,
        AuditCheckpoint.frontier,
    ).order_by(AuditCheckpoint.id)).all()
    report.checkpoints = len(db_rows)
    frontiers = {int(r[2]): bytes(r[4]) for r in db_rows}
    expected_id = 1
    for r in db_rows:
        if r[0] != expected_id:
            report.add(Problem("checkpoint_missing", f"checkpoint {expected_id} is missing from the database "
                               f"(the next is {r[0]})", checkpoint=expected_id))
        expected_id = int(r[0]) + 1
    claims = _check_notes(
        report, ((f"checkpoint {r[0]}", int(r[0]), r[1], int(r[2]), bytes(r[3])) for r in db_rows), verifiers, origin)
    signed_in_db = {(c.size, c.root) for c in claims}
    if file_entries is None:
        report.warnings.append("no checkpoint file was compared: only the database's checkpoints were checked")
    else:
        report.file_checkpoints = len(file_entries)
        if not file_entries and db_rows:
            report.add(Problem("checkpoint_file_missing", f"{file_name} holds no checkpoint although the database "
                               f"holds {len(db_rows)}: the file was deleted, emptied or replaced"))
        file_rows = []
        in_file: set[tuple[int, bytes]] = set()
        checked = {r[1]: (int(r[2]), bytes(r[3])) for r in db_rows}  # notes already opened, as the database holds them
        for entry in file_entries:
            label = f"line {entry['line']} of {file_name}"
            if entry.get("malformed"):
                report.add(Problem("malformed_checkpoint", f"{label}: not a checkpoint entry"))
                continue
            if entry["note"] in checked:
                in_file.add(checked[entry["note"]])
                continue
            checkpoint_id = entry.get("id")
            file_rows.append((label, checkpoint_id if isinstance(checkpoint_id, int) else None, entry["note"], None,
                              None))
        for claim in _check_notes(report, file_rows, verifiers, origin):
            in_file.add((claim.size, claim.root))
            if (claim.size, claim.root) not in signed_in_db:
                report.add(Problem("checkpoint_missing", f"{claim.label}: this checkpoint is not in the database "
                                   "(it was deleted or replaced there)", checkpoint=claim.checkpoint_id))
                claims.append(claim)
        absent = [c for c in claims if c.in_database and (c.size, c.root) not in in_file]
        if absent:
            report.warnings.append(
                f"{len(absent)} checkpoint(s) of the database are not in {file_name} (the first: "
                f"{absent[0].label}): they were signed on another host, or appending to the file failed")

    by_size: dict[int, list[_Claim]] = {}
    for claim in claims:
        by_size.setdefault(claim.size, []).append(claim)
    if claims:
        report.latest_checkpoint_size = max(c.size for c in claims)

    count_rows, first_seq, last_seq = connection.execute(sa.select(
        sa.func.count(), sa.func.coalesce(sa.func.min(AuditEvent.seq), 1),
        sa.func.coalesce(sa.func.max(AuditEvent.seq), 0))).one()
    last_seq = max(int(last_seq), 0)
    if first_seq < 1:
        stray = connection.execute(sa.select(AuditEvent.seq).where(AuditEvent.seq < 1).order_by(AuditEvent.seq)
                                   .limit(_COLLECTED)).scalars().all()
        for seq in stray:
            report.add(Problem("inserted", f"a row numbered {seq} was inserted: events are numbered from 1",
                               seq=seq))
    if count_rows == last_seq and first_seq >= 1:
        starts = list(range(1, last_seq + 1, BLOCK))
    else:  # rows are missing: only blocks that hold some are read (one far-off number costs nothing)
        block_of = sa.cast((AuditEvent.seq - 1) / BLOCK, sa.BigInteger)
        starts = [int(b) * BLOCK + 1 for b in connection.execute(
            sa.select(block_of).where(AuditEvent.seq >= 1).group_by(block_of).order_by(block_of)).scalars()]
    blocks = [(lo, min(lo + BLOCK - 1, last_seq), frozenset(size for size in by_size if lo <= size < lo + BLOCK))
              for lo in starts]
    with ExitStack() as stack:
        if jobs > 1 and len(blocks) >= 2 * jobs:
            # Workers start in a fork server of their own: they carry none of this process's connections.
            url = connection.engine.url.render_as_string(hide_password=False)
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__])
            workers = stack.enter_context(ProcessPoolExecutor(max_workers=jobs, mp_context=context))
            futures = [workers.submit(_scan_block_at, url, lo, hi, sizes) for lo, hi, sizes in blocks]
            scanned: Iterable[_Block] = (future.result() for future in futures)
        else:
            scanned = (_scan_block(functools.partial(_rows, connection, lo, hi), lo, hi, sizes)
                       for lo, hi, sizes in blocks)
        # The database compares each event's columns with its entry while the entries are hashed.
        disagreeing = stack.enter_context(ThreadPoolExecutor(max_workers=1)).submit(
            _disagreeing_rows, connection.engine)
        count, reached = _join_blocks(report, scanned, by_size, frontiers)
        for problem in disagreeing.result():
            report.add(problem)
    report.events = count
    for claim in claims:
        if claim.size > last_seq:
            report.add(Problem("truncated", f"{claim.label} signed {claim.size} events but the log ends at event "
                               f"{last_seq}: events {last_seq + 1} to {claim.size} were removed",
                               seq=last_seq + 1, checkpoint=claim.checkpoint_id))
        elif claim.size not in reached:
            report.add(Problem("root_mismatch", f"{claim.label} signed {claim.size} events, but events it covers "
                               "are missing, so its tree cannot be rebuilt", seq=None, checkpoint=claim.checkpoint_id))
    if last_seq > report.latest_checkpoint_size:
        report.warnings.append(f"events {report.latest_checkpoint_size + 1} to {last_seq} are not covered by a "
                               "checkpoint yet (`intake audit checkpoint` signs one)")
    report.finish()
    report.seconds = time.perf_counter() - started
    return report


@dataclass
class _Block:
    """What one block of sequence numbers (lo..hi) holds, hashed without knowledge of the blocks before it."""

    lo: int
    hi: int
    count: int = 0
    first_prev: bytes | None = None
    first_seq: int | None = None
    last_hash: bytes | None = None
    problems: list[Problem] = field(default_factory=list)
    frontier: bytes = b""
    sizes: frozenset[int] = frozenset()
    # For each claimed size inside the block: the block's own tree frontier after that many of its leaves.
    partial: dict[int, tuple[int, bytes]] = field(default_factory=dict)


def _scan_block(
    fetch: Callable[[], Iterable[Sequence[Any]]], lo: int, hi: int, sizes: frozenset[int],
) -> _Block:
    """Numbering, hashes and links inside one block, and its Merkle subtrees.

    This loop is where verification spends its time, so the tree is built inline (as in
    `merkle.CompactRange.append_leaf_hashes`) and values are not checked for type or length: a row that breaks the
    loop (a hash of the wrong length, a value of the wrong type) makes it read the block again with
    `_scan_block_carefully`, which names that row.
    """
    rows = fetch()
    try:
        return _scan_block_fast(rows, lo, hi, sizes)
    except (TypeError, ValueError, AttributeError):
        close = getattr(rows, "close", None)
        if close is not None:
            close()  # the first read's cursor, before the second one opens
        return _scan_block_carefully(fetch(), lo, hi, sizes)


def _scan_block_fast(rows: Iterable[Sequence[Any]], lo: int, hi: int, sizes: frozenset[int]) -> _Block:
    block = _Block(lo, hi, sizes=sizes)
    sha256 = hashlib.sha256
    prefix = LEAF_PREFIX
    stack: list[bytes] = []
    pop, push = stack.pop, stack.append
    problems = block.problems
    last_hash: bytes | None = None
    expected = lo - 1
    count = 0
    base = lo - 1
    for seq, prev, stored, entry in rows:
        expected += 1
        if seq != expected:
            problems.append(_missing(expected, seq - 1))
            expected = seq
        if sha256(prefix + prev + entry).digest() != stored:
            if len(stored) != 32 or len(prev) != 32:
                raise ValueError("a hash of the wrong length")
            problems.append(_content_problem(seq, prev, stored, entry))
        if last_hash is None:
            block.first_prev, block.first_seq = prev, seq
        elif prev != last_hash:
            problems.append(_broken_link(seq, prev, last_hash))
        last_hash = carried = stored
        pending = count
        while pending & 1:
            carried = sha256(b"\x01" + pop() + carried).digest()
            pending >>= 1
        push(carried)
        count += 1
        if base + count in sizes:
            block.partial[base + count] = (count, b"".join(stack))
    if expected < hi:
        problems.append(_missing(expected + 1, hi))
    block.count, block.last_hash, block.frontier = count, last_hash, b"".join(stack)
    return block


def _as_bytes(value: Any) -> bytes | None:
    return bytes(value) if isinstance(value, (bytes, bytearray, memoryview)) else None


def _scan_block_carefully(rows: Iterable[Sequence[Any]], lo: int, hi: int, sizes: frozenset[int]) -> _Block:
    """`_scan_block_fast` for a block with damaged rows: each value is checked, and a damaged row is named and
    stands in the tree as a hash no event has, so every checkpoint over it fails."""
    clean: list[tuple[int, bytes, bytes, bytes]] = []
    damaged: list[Problem] = []
    for seq, prev, stored, entry in rows:
        prev_b, stored_b = _as_bytes(prev), _as_bytes(stored)
        entry_b = _as_bytes(entry) if not isinstance(entry, str) else entry.encode("utf-8", "surrogateescape")
        if prev_b is None or stored_b is None or entry_b is None or len(prev_b) != 32 or len(stored_b) != 32:
            damaged.append(Problem("malformed", f"event {seq} is damaged: its hashes or entry are not of the form "
                                   "the log writes (wrong type or length)", seq=int(seq)))
            prev_b = (prev_b or b"")[:32].ljust(32, b"\x00")
            stored_b = bytes(32)
            entry_b = entry_b or b""
        clean.append((int(seq), prev_b, stored_b, entry_b))
    block = _scan_block_fast(clean, lo, hi, sizes)
    block.problems += damaged
    return block


def _missing(first: int, last: int) -> Problem:
    what = f"event {first} is" if first == last else f"events {first} to {last} are"
    return Problem("missing", f"{what} missing (deleted)", seq=first)


_worker_engines: dict[str, sa.Engine] = {}
_cursor_numbers = itertools.count()


def _scan_block_at(url: str, lo: int, hi: int, sizes: frozenset[int]) -> _Block:
    """`_scan_block` in a worker process, over its own connection."""
    from intake.core.db import make_engine

    engine = _worker_engines.get(url)
    if engine is None:
        engine = _worker_engines[url] = make_engine(url)
    with engine.connect() as connection, connection.begin():
        return _scan_block(functools.partial(_rows, connection, lo, hi), lo, hi, sizes)


def _broken_link(seq: int, prev: bytes, last_hash: bytes) -> Problem:
    return Problem("broken_link", f"event {seq} does not follow event {seq - 1}: its previous hash {_short(prev)}… "
                   f"is not {_short(last_hash)}… (events removed, inserted or reordered)", seq=seq)


def _join_blocks(
    report: Report, blocks: Iterable[_Block], by_size: dict[int, list[_Claim]], frontiers: dict[int, bytes],
) -> tuple[int, set[int]]:
    """Link the blocks, join their subtrees into the log's tree and compare its root at every claimed size that
    the events reach; return the number of events read and the sizes compared."""
    tree = CompactRange()
    reached: set[int] = set()
    last_hash = GENESIS
    matched_size = 0
    count = 0
    chain_problems: list[int] = []
    for block in blocks:
        for problem in block.problems:
            report.add(problem)
            if problem.seq is not None:
                chain_problems.append(problem.seq)
        if block.first_prev is not None and block.first_seq is not None and block.first_prev != last_hash:
            report.add(_broken_link(block.first_seq, block.first_prev, last_hash))
            chain_problems.append(block.first_seq)
        if block.last_hash is not None:
            last_hash = block.last_hash
        aligned = tree.size == block.lo - 1
        reached.update(block.partial)
        for size in sorted(block.partial):
            leaves, frontier = block.partial[size]
            joined = CompactRange.combine(tree, CompactRange.from_bytes(leaves, frontier)) if aligned else None
            root = None if joined is None else joined.root()
            stored = frontiers.get(size)
            if joined is not None and stored is not None and stored != joined.to_bytes():
                report.add(Problem("checkpoint_mismatch", f"the stored tree frontier at size {size} differs from "
                                   "the log's"))
            matching = True
            for claim in by_size[size]:
                if claim.root != root:
                    matching = False
                    # Name the first event the chain itself found wrong in the range, else the range's start.
                    first = min((s for s in chain_problems if matched_size < s <= size), default=matched_size + 1)
                    report.add(Problem("root_mismatch", f"{claim.label} signed {claim.size} events with root "
                                       f"{_short(claim.root)}…, but the log now gives another root: events "
                                       f"{matched_size + 1} to {claim.size} were rewritten, removed or reordered",
                                       seq=first, checkpoint=claim.checkpoint_id))
            if matching:
                matched_size = size
        if aligned:
            tree.extend(CompactRange.from_bytes(block.count, block.frontier))
        count += block.count
    return count, reached


def _content_problem(seq: int, prev: bytes, stored: bytes, entry: bytes) -> Problem:
    """Name a hash mismatch: the event's contents changed, or it sits at another event's place (swapped)."""
    sep = entry.find(SEPARATOR.encode())
    rest = entry[sep:] if sep >= 0 else b""
    for other in (seq - 1, seq + 1):
        if other > 0 and hashlib.sha256(LEAF_PREFIX + prev + str(other).encode() + rest).digest() == stored:
            return Problem("out_of_order", f"event {seq} holds event {other}'s contents (events swapped)", seq=seq)
    return Problem("changed", f"event {seq} was changed after it was written: its contents no longer match its "
                   "hash", seq=seq)
