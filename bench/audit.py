"""Audit log benchmarks: ``python -m bench.audit [--db sqlite|postgresql|both] [--quick]`` (``make bench-audit``).

Two scenarios, each against a control measured in the same run:

1. Verification: `intake.core.audit.verify.verify_log` over a log of 1,000,000 events (``--quick``: 200,000) with a
   signed checkpoint every 1,000 events, bulk-loaded into a scratch database, in events per second, with one
   process and with one per processor. Control: raw SHA-256 chaining of the same entries in memory
   (``h = SHA-256(prefix || h || entry)``, one hash per event), which is the least any verifier must do. Target:
   ≥ 500,000 events/s.
2. Appends: 32 processes (as gunicorn workers are), each with its own application and connection, appending one
   event per transaction through `record_event` and committing, for a fixed time, in events per second
   (PostgreSQL: the advisory lock serialises them; SQLite: BEGIN IMMEDIATE). Control: the same 32 processes each
   committing one row per transaction into a scratch table of the same width with no chain and no lock.
   Afterwards the log must verify and hold exactly the events the writers counted.
   Target (PostgreSQL): ≥ 1,000 events/s.

The table goes to stdout; Markdown and JSON copies go to bench/results/audit-<UTC timestamp>.{md,json}.
Exit status: 0 when every target was met, 1 when a target was missed, 2 when the benchmark could not run or a
check of its results failed, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.databases import (
    DEFAULT_POSTGRES_URL,
    POSTGRESQL,
    SQLITE,
    DatabaseError,
    drop_postgres_database,
    recreate_postgres_database,
)
from bench.instance import PROJECT_ROOT
from bench.report import RESULTS_DIR, describe_machine, usable_cores, utc_now
from bench.run import choose_databases
from intake.core.audit.chain import GENESIS, LEAF_PREFIX, encode_event, event_hash
from intake.core.audit.merkle import CompactRange
from intake.core.audit.note import Checkpoint, Signer, sign_checkpoint
from intake.core.audit.verify import verify_log
from intake.core.db import make_engine
from intake.core.keys import Keyring
from intake.core.migrate import upgrade

EXIT_OK, EXIT_MISSED, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 130
VERIFY_EVENTS = 1_000_000
QUICK_VERIFY_EVENTS = 200_000
CHECKPOINT_EVERY = 1_000
WRITERS = 32
APPEND_SECONDS = 10.0
QUICK_APPEND_SECONDS = 3.0
REPEATS = 3
VERIFY_TARGET = 500_000
APPEND_TARGET = 1_000
ORIGIN = "bench.invalid/audit"
ACTIONS = ("login", "record_viewed", "testimony_created", "consent_recorded", "record_viewed", "export_built",
           "record_viewed", "testimony_updated")
COLUMNS = ("seq", "occurred_at", "actor_id", "actor_roles", "action", "target_type", "target_ids", "reason",
           "details", "request_id", "entry", "prev_hash", "hash")


@dataclass
class Result:
    scenario: str
    database: str
    value: float
    control: float
    unit: str
    target: str
    met: bool | None
    notes: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.control if self.control else 0.0


@dataclass
class Run:
    started_at: datetime
    machine: dict[str, Any]
    settings: dict[str, Any]
    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def progress(message: str) -> None:
    print(f"[bench.audit] {message}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    """The benchmark could not run, or a check of its results failed."""


# ---------------------------------------------------------------------------------------------------------------
# Scratch databases


def scratch_url(database: str, postgres_url: str, work_dir: Path, name: str) -> str:
    if database == SQLITE:
        return f"sqlite:///{work_dir / (name + '.sqlite3')}"
    url = sa.engine.make_url(postgres_url)
    scratch = url.set(database=f"{url.database}_{name}").render_as_string(hide_password=False)
    recreate_postgres_database(scratch)
    return scratch


def drop_scratch(database: str, url: str) -> None:
    if database == POSTGRESQL:
        drop_postgres_database(url)


# ---------------------------------------------------------------------------------------------------------------
# Scenario 1: verification


def synthetic_log(count: int, signer: Signer) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Events shaped like the service's (views with parts, sign-ins, consent, exports), chained and checkpointed."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows: list[tuple[Any, ...]] = []
    checkpoints: list[tuple[Any, ...]] = []
    tree = CompactRange()
    previous = GENESIS
    for seq in range(1, count + 1):
        occurred = (base + timedelta(milliseconds=seq * 250)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        action = ACTIONS[seq % len(ACTIONS)]
        actor = seq % 211 + 1
        roles = "reviewer" if action == "record_viewed" else "interviewer"
        targets = f"[{(seq * 7919) % 100_000 + 1}]"
        details = '{"parts":["content","attachments"]}' if action == "record_viewed" else '{"fields":["narrative"]}'
        request_id = secrets.token_hex(8)
        entry = encode_event(seq, occurred, actor, roles, action, "testimony", targets, None, details, request_id)
        digest = event_hash(previous, entry)
        rows.append((seq, occurred, actor, roles, action, "testimony", targets, None, details, request_id, entry,
                     previous, digest))
        tree.append_leaf_hash(digest)
        previous = digest
        if seq % CHECKPOINT_EVERY == 0:
            root = tree.root()
            checkpoints.append((len(checkpoints) + 1, occurred, seq, root, tree.to_bytes(),
                                sign_checkpoint(Checkpoint(ORIGIN, seq, root), signer)))
    return rows, checkpoints


def load_log(engine: sa.Engine, rows: list[tuple[Any, ...]], checkpoints: list[tuple[Any, ...]]) -> None:
    """Bulk-load the events and checkpoints (COPY on PostgreSQL, executemany on SQLite); triggers stay on."""
    columns = ", ".join(COLUMNS)
    checkpoint_columns = "id, created_at, tree_size, root_hash, frontier, note"
    raw = engine.raw_connection()
    try:
        driver: Any = raw.driver_connection
        if engine.dialect.name == "postgresql":
            with driver.cursor() as cursor:
                with cursor.copy(f"COPY audit_events ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                with cursor.copy(f"COPY audit_checkpoints ({checkpoint_columns}) FROM STDIN") as copy:
                    for row in checkpoints:
                        copy.write_row(row)
                cursor.execute("ANALYZE audit_events")
        else:
            cursor = driver.cursor()
            cursor.execute("BEGIN")  # intake's connections leave transactions to the caller (isolation_level None)
            cursor.executemany(f"INSERT INTO audit_events ({columns}) VALUES ({', '.join('?' * len(COLUMNS))})", rows)
            cursor.executemany(f"INSERT INTO audit_checkpoints ({checkpoint_columns}) VALUES (?, ?, ?, ?, ?, ?)",
                               checkpoints)
        driver.commit()
    finally:
        raw.close()


def raw_chain_rate(entries: Sequence[bytes]) -> float:
    """The control: SHA-256 chaining of the entries in memory, in events per second."""
    sha256 = hashlib.sha256
    prefix = LEAF_PREFIX
    started = time.perf_counter()
    digest = GENESIS
    for entry in entries:
        digest = sha256(prefix + digest + entry).digest()
    return len(entries) / (time.perf_counter() - started)


def best(runs: int, measure: Callable[[], float]) -> float:
    return max(measure() for _ in range(runs))


def bench_verify(database: str, url: str, count: int, jobs_options: Sequence[int]) -> list[Result]:
    signer = Signer(ORIGIN, secrets.token_bytes(32))
    progress(f"verify/{database}: building a log of {count:,} events")
    rows, checkpoints = synthetic_log(count, signer)
    engine = make_engine(url)
    try:
        upgrade(engine)
        started = time.perf_counter()
        load_log(engine, rows, checkpoints)
        progress(f"verify/{database}: loaded in {time.perf_counter() - started:.1f} s")
        entries = [row[10].encode() for row in rows]
        del rows
        results = []
        for jobs in jobs_options:
            control = best(REPEATS, lambda: raw_chain_rate(entries))
            reports = []
            for _ in range(REPEATS):
                with engine.connect() as connection, connection.begin():
                    reports.append(verify_log(connection, verifiers=[signer.verifier], origin=ORIGIN, jobs=jobs))
            if not all(r.ok and r.events == count for r in reports):
                problems = [p.message for r in reports for p in r.problems][:3]
                raise BenchError(f"verify/{database}: an untouched log did not verify: {problems}")
            rate = max(r.events_per_second for r in reports)
            progress(f"verify/{database} jobs={jobs}: {rate:,.0f} events/s (control {control:,.0f})")
            results.append(Result(
                f"verify, {jobs} process{'es' if jobs > 1 else ''}", database, rate, control, "events/s",
                f"≥ {VERIFY_TARGET:,} events/s", rate >= VERIFY_TARGET,
                f"{count:,} events, {len(checkpoints):,} checkpoints; best of {REPEATS}; control = raw SHA-256 "
                "chaining in memory (one hash per event, no reading)",
            ))
        return results
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------------------------
# Scenario 2: appends


def _writer_process(kind: str, settings: dict[str, Any], passphrase: str, seconds: float,
                    barrier: Any, results: Any) -> None:
    """One writer: its own application and connection, one event (or control row) per transaction until time is up."""
    from intake import create_app
    from intake.core.audit import AuditAction, record_event
    from intake.core.db import db, write_intent

    try:
        keyring = Keyring.open(Path(settings["KEYRING_PATH"]), passphrase)
        app = create_app(settings, keyring=keyring)
        write_intent.set(True)  # transactions take SQLite's write lock at BEGIN, as intake's writing requests do
        done = 0

        class Actor:
            id = 7
            role_names = ("reviewer",)

        insert = sa.text("INSERT INTO bench_control (actor_id, action, target_ids, details, entry, hash) "
                         "VALUES (7, 'record_viewed', '[4242]', '{\"parts\":[\"content\"]}', :entry, :hash)")
        with app.app_context():
            db.session.execute(sa.text("SELECT 1"))
            db.session.rollback()
            barrier.wait()
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                if kind == "audit":
                    record_event(AuditAction.RECORD_VIEWED, actor=Actor, target_type="testimony",
                                 target_ids=[4242], details={"parts": ["content", "attachments"]})
                else:
                    db.session.execute(insert, {"entry": "x" * 120, "hash": bytes(32)})
                db.session.commit()
                done += 1
        results.put((done, None))
    except BaseException as exc:  # noqa: BLE001 - reported by the parent
        results.put((0, repr(exc)))


def _run_writers(kind: str, settings: dict[str, Any], passphrase: str, seconds: float,
                 writers: int) -> tuple[int, float]:
    """`writers` processes (as gunicorn workers would be) writing at once; the operations done and the time taken."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(writers + 1)
    results = context.Queue()
    processes = [context.Process(target=_writer_process, args=(kind, settings, passphrase, seconds, barrier, results))
                 for _ in range(writers)]
    for process in processes:
        process.start()
    barrier.wait(timeout=300)
    started = time.perf_counter()
    outcomes = [results.get(timeout=seconds + 300) for _ in processes]
    elapsed = time.perf_counter() - started
    for process in processes:
        process.join()
    errors = [error for _, error in outcomes if error]
    if errors:
        raise BenchError(f"{len(errors)} writer(s) failed, first: {errors[0]}")
    return sum(done for done, _ in outcomes), elapsed


def bench_append(database: str, url: str, seconds: float, work_dir: Path, writers: int = WRITERS) -> Result:
    from intake import create_app
    from intake.core.audit import service
    from intake.core.db import db

    keyring_path = work_dir / f"keyring-{database}.sealed"
    passphrase = secrets.token_urlsafe(24)
    keyring = Keyring.create(keyring_path, passphrase, scrypt_n=2**10)
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as connection:
        binary = "BLOB" if database == SQLITE else "BYTEA"
        connection.exec_driver_sql(
            "CREATE TABLE bench_control (id BIGINT PRIMARY KEY GENERATED ALWAYS AS IDENTITY, actor_id INTEGER, "
            f"action VARCHAR(64), target_ids TEXT, details TEXT, entry TEXT, hash {binary})"
            if database == POSTGRESQL else
            "CREATE TABLE bench_control (id INTEGER PRIMARY KEY, actor_id INTEGER, action VARCHAR(64), "
            f"target_ids TEXT, details TEXT, entry TEXT, hash {binary})")
    engine.dispose()
    settings = {
        "DATABASE_URL": url, "INSTANCE_PATH": str(work_dir / f"instance-{database}"), "ENV": "production",
        "KEYRING_PATH": str(keyring_path), "LOG_LEVEL": "ERROR", "AUDIT_ORIGIN": ORIGIN,
    }
    progress(f"append/{database}: control, {writers} writer processes for {seconds:.0f} s")
    control_ops, control_s = _run_writers("control", settings, passphrase, seconds, writers)
    progress(f"append/{database}: record_event + commit, {writers} writer processes for {seconds:.0f} s")
    app_ops, app_s = _run_writers("audit", settings, passphrase, seconds, writers)
    app = create_app(settings, keyring=keyring)
    try:
        with app.app_context():
            report = service.verify(use_configured_file=True, jobs=1)
            stored = db.session.scalar(sa.text("SELECT count(*) FROM audit_events"))
            checkpoints = db.session.scalar(sa.text("SELECT count(*) FROM audit_checkpoints"))
    finally:
        app.extensions["intake.db"].dispose()
    if not report.ok:
        raise BenchError(f"append/{database}: the log does not verify: {report.problems[:3]}")
    if stored != app_ops:
        raise BenchError(f"append/{database}: {app_ops} appends counted but {stored} events stored")
    rate, control = app_ops / app_s, control_ops / control_s
    progress(f"append/{database}: {rate:,.0f} events/s (control {control:,.0f} rows/s)")
    target = database == POSTGRESQL
    return Result(
        f"append, {writers} writer{'s' if writers > 1 else ''}", database, rate, control, "events/s",
        f"≥ {APPEND_TARGET:,} events/s" if target else "—", (rate >= APPEND_TARGET) if target else None,
        f"{app_ops:,} events in {app_s:.1f} s (one per transaction), {checkpoints} checkpoints signed on the way; "
        "the chain verifies and the count is exact; control = the same processes committing one unchained row "
        "each into a table of the same width, without the lock",
    )


# ---------------------------------------------------------------------------------------------------------------
# Report


def render_markdown(run: Run) -> str:
    header = ("scenario", "database", "value", "control", "ratio", "target", "notes")
    lines = [f"# Audit log benchmark {run.started_at:%Y-%m-%d %H:%M:%S} UTC", "",
             "| " + " | ".join(header) + " |", "| --- | --- | ---: | ---: | ---: | --- | --- |"]
    for r in run.results:
        verdict = "" if r.met is None else (": met" if r.met else ": MISSED")
        lines.append(f"| {r.scenario} | {r.database} | {r.value:,.0f} {r.unit} | {r.control:,.0f} {r.unit} | "
                     f"{r.ratio:.2f} | {r.target}{verdict} | {r.notes} |")
    lines += ["", "ratio = value ÷ control, both measured in this run.", "", "Machine:", ""]
    lines += [f"- {key}: {value}" for key, value in run.machine.items()]
    if run.notes:
        lines += ["", "Notes:"] + [f"- {note}" for note in run.notes]
    return "\n".join(lines) + "\n"


def write_results(run: Run, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = run.started_at.strftime("%Y%m%dT%H%M%SZ")
    markdown = directory / f"audit-{stamp}.md"
    data = directory / f"audit-{stamp}.json"
    markdown.write_text(render_markdown(run), encoding="utf-8")
    data.write_text(json.dumps({
        "started_at": run.started_at.isoformat(timespec="seconds"), "machine": run.machine,
        "settings": run.settings, "notes": run.notes,
        "results": [{**asdict(r), "ratio": round(r.ratio, 4)} for r in run.results],
    }, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return markdown, data


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=[SQLITE, POSTGRESQL, "both"],
                        help="database(s) (default: both if PostgreSQL is reachable, else sqlite)")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                        help="SQLAlchemy URL whose database name prefixes the scratch databases (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_VERIFY_EVENTS:,} events to verify and {QUICK_APPEND_SECONDS:.0f} s of appends")
    parser.add_argument("--events", type=int, help=f"events to verify (default: {VERIFY_EVENTS:,})")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    count = args.events or (QUICK_VERIFY_EVENTS if args.quick else VERIFY_EVENTS)
    seconds = QUICK_APPEND_SECONDS if args.quick else APPEND_SECONDS
    cores = usable_cores()
    jobs_options = sorted({1, min(cores, 4)})
    notes: list[str] = []
    try:
        databases, postgres_version = choose_databases(args.db, args.postgres_url, notes)
        machine = describe_machine(wrk_version="not used", postgres_version=postgres_version,
                                   project_root=PROJECT_ROOT)
        for key in ("wrk", "gunicorn"):
            machine.pop(key, None)
        run = Run(utc_now(), machine, {"events": count, "checkpoint_every": CHECKPOINT_EVERY, "writers": WRITERS,
                                       "append_seconds": seconds, "repeats": REPEATS, "databases": databases,
                                       "load_average_start": os.getloadavg()[0]}, notes=notes)
        with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
            work_dir = Path(tmp)
            for database in databases:
                url = scratch_url(database, args.postgres_url, work_dir, "audit_verify")
                try:
                    run.results += bench_verify(database, url, count, jobs_options)
                finally:
                    drop_scratch(database, url)
            for database in databases:
                url = scratch_url(database, args.postgres_url, work_dir, "audit_append")
                try:
                    run.results.append(bench_append(database, url, seconds, work_dir))
                finally:
                    drop_scratch(database, url)
    except KeyboardInterrupt:
        progress("interrupted: scratch databases dropped, temporary files removed")
        return EXIT_INTERRUPTED
    except (BenchError, DatabaseError) as error:
        progress(f"FAILED: {error}")
        return EXIT_FAILED
    notes.append(f"1-minute load average {run.settings['load_average_start']:.2f} at the start and "
                 f"{os.getloadavg()[0]:.2f} at the end on {cores} usable cores.")
    missed = [r for r in run.results if r.met is False]
    if missed:
        notes.append("MISSED targets: " + ", ".join(f"{r.scenario} on {r.database}" for r in missed))
    markdown, data = write_results(run, args.results_dir)
    print(render_markdown(run), end="")
    progress(f"results written to {markdown} and {data}")
    return EXIT_MISSED if missed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
