"""In-process crypto benchmarks: ``python -m bench.crypto [--db sqlite|postgresql] [--quick]`` (``make bench``).

Three scenarios, each measured against a control taken in the same run, so that the ratio (not the absolute
number) can be compared across machines:

1. Sealed fields: `seal_field` / `open_field` of 4 KiB with an `OpenDataKey`, against raw AES-256-GCM
   (`AESGCM(key).encrypt/decrypt` of the same 4 KiB with a random 12-byte nonce), in operations per second.
2. Attachment streams: `StreamSealer` fed 1 GiB (`--quick`: 64 MiB) in 1 MiB pieces and written to a file, and
   `open_stream` reading it back, against raw AES-256-GCM of the same bytes in the same 64 KiB pieces to and
   from a file, in MiB/s; and the peak memory of the sealing in a fresh subprocess, above its baseline.
3. Rewrapping data keys: `rewrap_batch` moving 100,000 data keys from KEK version 1 to 2 in a scratch database
   (SQLite and/or PostgreSQL), committing per batch, in keys per second, against the same unwraps and wraps in
   memory without a database, with a profile of where the time goes. Bench-only variants of the batch (rescan or
   keyset selection; executemany, ``UPDATE ... FROM (VALUES ...)`` or ``FROM unnest(...)``; the UPDATE
   overlapped with the next batch) are measured beside it as proposals; `intake` itself is not changed.

The table goes to stdout; Markdown and JSON copies go to bench/results/crypto-<UTC timestamp>.{md,json}.

Exit status: 0 when every target was met, 1 when a target was missed, 2 when the benchmark could not run or a
check of its results failed (the message says why), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from bench.databases import (
    POSTGRESQL,
    SQLITE,
    DatabaseError,
    drop_postgres_database,
    recreate_postgres_database,
    sqlite_url,
)
from bench.instance import PROJECT_ROOT, random_passphrase
from bench.report import RESULTS_DIR, describe_machine, utc_now
from bench.run import choose_databases
from intake.core.crypto.datakeys import register_keyring_versions, rewrap_batch
from intake.core.crypto.envelope import (
    Binding,
    OpenDataKey,
    new_data_key,
    open_field,
    seal_field,
    unwrap_data_key,
    wrap_data_key,
)
from intake.core.crypto.models import DataKey, KekVersion
from intake.core.crypto.stream import CHUNK_SIZE, StreamSealer, encrypted_chunk_size, open_stream
from intake.core.db import make_engine, utcnow, write_intent
from intake.core.keys import Keyring
from intake.core.migrate import upgrade

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/intake_bench_crypto"

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

FIELD_BYTES = 4 * KIB
PIECE_BYTES = 1 * MIB  # what an upload hands the sealer at a time; one os.urandom piece, reused
STREAM_BYTES = 1 * GIB
QUICK_STREAM_BYTES = 64 * MIB
MEMORY_TARGET_MIB = 64.0

REWRAP_KEYS = 100_000
REWRAP_BATCHES = (1000, 5000)
REWRAP_TARGET_KEYS_PER_S = 20_000.0
KEY_OWNER = "testimony"
INSERT_BATCH = 10_000

REPEATS = 3
MIN_SECONDS = 1.0

FIELD_BINDING = Binding("testimonies", "narrative", 424_242)
STREAM_BINDING = Binding("attachments", "content", 434_343)
NO_DATABASE = "none"

EXIT_OK = 0
EXIT_MISSED = 1
EXIT_FAILED = 2
EXIT_INTERRUPTED = 130


class BenchError(RuntimeError):
    """The benchmark could not run, or a check of what it measured failed."""


def progress(message: str) -> None:
    """Report progress on stderr, keeping stdout for the table."""
    print(f"[bench.crypto] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- results


@dataclass
class Result:
    """One row of the table: a measured value, its control from the same run, and the target if there is one."""

    scenario: str
    database: str
    unit: str
    value: float
    control: float
    control_label: str
    notes: str = ""
    target: str = "—"
    target_met: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """value ÷ control."""
        return self.value / self.control if self.control else 0.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of the row."""
        return {
            "scenario": self.scenario,
            "database": self.database,
            "unit": self.unit,
            "value": round(self.value, 3),
            "control": round(self.control, 3),
            "control_label": self.control_label,
            "ratio": round(self.ratio, 4),
            "target": self.target,
            "target_met": self.target_met,
            "notes": self.notes,
            "details": self.details,
        }


def _number(value: float, unit: str) -> str:
    if unit == "MiB":
        return f"+{value:.1f} MiB"
    if unit == "MiB/s":
        return f"{value:,.0f} MiB/s"
    return f"{value:,.0f} {unit}"


def _target_cell(result: Result) -> str:
    if result.target_met is None:
        return result.target
    return f"{result.target}: {'met' if result.target_met else 'MISSED'}"


COLUMNS = ("scenario", "database", "value", "control", "ratio", "target", "notes")


def render_table(results: Sequence[Result]) -> str:
    """A Markdown table padded so that it also reads well in a terminal."""
    body = [
        [
            r.scenario,
            r.database,
            _number(r.value, r.unit),
            _number(r.control, r.unit),
            f"{r.ratio:.2f}",
            _target_cell(r),
            r.notes,
        ]
        for r in results
    ]
    widths = [max(len(cells[i]) for cells in [list(COLUMNS), *body]) for i in range(len(COLUMNS))]
    numeric = {2, 3, 4}

    def line(cells: list[str]) -> str:
        padded = [c.rjust(widths[i]) if i in numeric else c.ljust(widths[i]) for i, c in enumerate(cells)]
        return "| " + " | ".join(padded) + " |"

    rule = [("-" * (widths[i] - 1) + ":") if i in numeric else "-" * widths[i] for i in range(len(COLUMNS))]
    return "\n".join([line(list(COLUMNS)), line(rule), *(line(cells) for cells in body)])


@dataclass
class Report:
    """Everything one run produced."""

    started_at: datetime
    machine: dict[str, Any]
    settings: dict[str, Any]
    results: list[Result] = field(default_factory=list)
    profiles: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def missed(self) -> list[Result]:
        """Rows whose target was not met."""
        return [r for r in self.results if r.target_met is False]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of the whole report."""
        return {
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "machine": self.machine,
            "settings": self.settings,
            "notes": self.notes,
            "results": [r.as_dict() for r in self.results],
            "rewrap_profiles": self.profiles,
        }


def render_profiles(profiles: Sequence[dict[str, Any]]) -> str:
    """Where the time of each rewrap run went, as a Markdown table."""
    header = (
        "| run | database | keys/s | total s | SELECT s | UPDATE s | COMMIT s | unwrap+wrap s | other Python s "
        "| other SQL s | first SELECT ms | last SELECT ms |"
    )
    rule = "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    lines = [header, rule]
    for p in profiles:
        other = "overlapped" if p["overlapping"] else f"{p['other_python_s']:.2f}"
        lines.append(
            f"| {p['run']} | {p['database']} | {p['keys_per_s']:,.0f} | {p['total_s']:.2f} | {p['select_s']:.2f} "
            f"| {p['update_s']:.2f} | {p['commit_s']:.2f} | {p['crypto_s']:.2f} | {other} "
            f"| {p['other_sql_s']:.2f} | {p['first_select_ms']:.1f} | {p['last_select_ms']:.1f} |"
        )
    return "\n".join(lines)


def render_markdown(report: Report) -> str:
    """The full Markdown report: table, profile of the rewraps, notes, settings and machine."""
    machine = report.machine
    settings = report.settings
    lines = [
        f"# Crypto benchmark {report.started_at.strftime('%Y-%m-%d %H:%M:%S UTC')}",
        "",
        render_table(report.results) if report.results else "(no results)",
        "",
        "ratio = value ÷ control, both measured in this run (for memory: peak above baseline, sealer ÷ raw "
        "AES-GCM). Throughputs are the best of "
        f"{settings['repeats']} runs; field operations run at least {settings['min_seconds']:g} s each.",
    ]
    if report.profiles:
        lines += [
            "",
            "## Where the rewrap time goes",
            "",
            render_profiles(report.profiles),
            "",
            "SELECT/UPDATE s: time inside the driver's execute/executemany of those statements (SQLAlchemy "
            "cursor events); COMMIT s: `session.commit()`; unwrap+wrap s: the keys ÷ the rate of the in-memory "
            "control (median of 3) measured just before the run; other Python s: the rest (SQLAlchemy statement "
            "and row handling, building the parameters); other SQL s: BEGIN and the like. first/last SELECT ms: the "
            "SELECT of data keys of the first batch and of the final, empty one (a SELECT that rescans from the "
            "start grows with what is already done). In an overlapped run the phases overlap, so they add up to "
            "more than the total.",
        ]
    if report.notes:
        lines += ["", "Notes:", *(f"- {note}" for note in report.notes)]
    lines += [
        "",
        "Settings: "
        + ", ".join(
            [
                f"fields of {settings['field_bytes']} bytes",
                f"stream of {settings['stream_bytes'] // MIB} MiB fed in {settings['piece_bytes'] // MIB} MiB "
                f"pieces, {settings['chunk_bytes'] // KIB} KiB chunks",
                f"{settings['rewrap_keys']:,} data keys, batches of {', '.join(map(str, settings['batch_sizes']))}",
                f"databases: {', '.join(settings['databases'])}",
                "quick" if settings["quick"] else "full",
            ]
        ),
        "",
        "Machine:",
        f"- CPU: {machine['cpu_model']}, {machine['usable_cores']} usable of {machine['cores']} cores",
        f"- memory: {machine['memory_gib']} GiB",
        f"- OS: {machine['os']}",
        f"- Python {machine['python']}, cryptography {machine['cryptography']} ({machine['openssl']}), "
        f"SQLAlchemy {machine['sqlalchemy']}, psycopg {machine['psycopg']}",
        f"- PostgreSQL {machine['postgresql']}, SQLite {machine['sqlite']}",
        f"- revision: {machine['git_revision']}"
        + (f" with uncommitted changes to {', '.join(changes)}" if (changes := machine["uncommitted_changes"]) else ""),
    ]
    return "\n".join(lines) + "\n"


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def write_results(report: Report, directory: Path) -> tuple[Path, Path]:
    """Write ``crypto-<timestamp>.md`` and ``.json`` into ``directory``; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = "crypto-" + report.started_at.strftime("%Y%m%dT%H%M%SZ")
    markdown_path, json_path = directory / f"{stem}.md", directory / f"{stem}.json"
    _write_atomically(markdown_path, render_markdown(report))
    _write_atomically(json_path, json.dumps(report.as_dict(), indent=2) + "\n")
    return markdown_path, json_path


def crypto_machine(postgres_version: str | None) -> dict[str, Any]:
    """bench.report's machine description, plus the versions that matter to these scenarios."""
    from cryptography.hazmat.backends.openssl.backend import backend

    machine = describe_machine(wrk_version="not used", postgres_version=postgres_version, project_root=PROJECT_ROOT)
    del machine["wrk"], machine["gunicorn"], machine["flask"]
    from importlib import metadata

    machine["cryptography"] = metadata.version("cryptography")
    machine["openssl"] = backend.openssl_version_text()
    machine["psycopg"] = metadata.version("psycopg")
    completed = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT, capture_output=True, text=True,
        check=False,
    )
    changed = completed.stdout.splitlines() if completed.returncode == 0 else []
    machine["uncommitted_changes"] = [line[3:] for line in changed]
    return machine


# ---------------------------------------------------------------------------------------------- timing


def rate(operation: Callable[[], object], min_seconds: float = MIN_SECONDS) -> float:
    """Operations per second of ``operation``, over a loop that lasts at least ``min_seconds``."""
    count = 256
    while True:
        started = time.perf_counter()
        for _ in range(count):
            operation()
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return count / elapsed
        count = max(count * 2, int(count * min_seconds * 1.1 / max(elapsed, 1e-9)) + 1)


def best_of(repeats: int, *measures: Callable[[], float]) -> list[list[float]]:
    """Run each measure ``repeats`` times, interleaved (control and subject alternate), and return every value."""
    values: list[list[float]] = [[] for _ in measures]
    for _ in range(repeats):
        for i, measure in enumerate(measures):
            values[i].append(measure())
    return values


# ---------------------------------------------------------------------------------------------- 1. fields


def bench_fields(repeats: int, min_seconds: float) -> list[Result]:
    """seal_field/open_field of 4 KiB against raw AES-GCM encrypt/decrypt with a random nonce."""
    key = OpenDataKey(secrets.randbits(63) or 1, new_data_key())
    raw = AESGCM(new_data_key())
    plaintext = os.urandom(FIELD_BYTES)
    sealed = seal_field(key, FIELD_BINDING, plaintext)
    nonce = os.urandom(12)
    raw_sealed = raw.encrypt(nonce, plaintext, None)
    if open_field(key, FIELD_BINDING, sealed) != plaintext or raw.decrypt(nonce, raw_sealed, None) != plaintext:
        raise BenchError("a 4 KiB field did not round-trip")

    def seal() -> bytes:
        return seal_field(key, FIELD_BINDING, plaintext)

    def raw_seal() -> bytes:
        return raw.encrypt(os.urandom(12), plaintext, None)

    def open_() -> bytes:
        return open_field(key, FIELD_BINDING, sealed)

    def raw_open() -> bytes:
        return raw.decrypt(nonce, raw_sealed, None)

    progress(f"fields: seal/open of {FIELD_BYTES} bytes, best of {repeats} × ≥{min_seconds:g} s each")
    raw_seals, seals, raw_opens, opens = best_of(
        repeats, *(lambda op=op: rate(op, min_seconds) for op in (raw_seal, seal, raw_open, open_))
    )
    results = []
    for name, subject, control, label in (
        ("field seal 4 KiB", seals, raw_seals, "AESGCM.encrypt, random nonce"),
        ("field open 4 KiB", opens, raw_opens, "AESGCM.decrypt"),
    ):
        value, base = max(subject), max(control)
        results.append(
            Result(
                scenario=name,
                database=NO_DATABASE,
                unit="ops/s",
                value=value,
                control=base,
                control_label=label,
                notes=f"{1e6 / value:.2f} µs/op vs raw {1e6 / base:.2f} µs/op",
                details={"runs": [round(v) for v in subject], "control_runs": [round(v) for v in control]},
            )
        )
    return results


# ---------------------------------------------------------------------------------------------- 2. streams


def _pieces(total: int, piece: bytes) -> Iterator[bytes]:
    """``piece`` repeated up to ``total`` bytes (the last one cut short)."""
    remaining = total
    while remaining > 0:
        yield piece if remaining >= len(piece) else piece[:remaining]
        remaining -= len(piece)


def seal_stream_to_file(key: OpenDataKey, piece: bytes, total: int, path: Path) -> None:
    """What an upload does: StreamSealer fed piece by piece, header and chunks written to ``path``."""
    sealer = StreamSealer(key, STREAM_BINDING)
    with path.open("wb") as out:
        out.write(sealer.header)
        for data in _pieces(total, piece):
            for chunk in sealer.feed(data):
                out.write(chunk)
        out.write(sealer.finish())


def raw_seal_to_file(aead: AESGCM, piece: bytes, total: int, path: Path) -> None:
    """The control: the same bytes in the same 64 KiB pieces, each AES-GCM with a random nonce, to a file."""
    with path.open("wb") as out:
        for data in _pieces(total, piece):
            view = memoryview(data)
            for start in range(0, len(view), CHUNK_SIZE):
                nonce = os.urandom(12)
                out.write(nonce + aead.encrypt(nonce, view[start : start + CHUNK_SIZE], None))


def open_stream_from_file(key: OpenDataKey, path: Path) -> int:
    """Read a sealed stream back with open_stream; returns the plaintext bytes."""
    size = encrypted_chunk_size(CHUNK_SIZE)
    total = 0
    with path.open("rb") as source:
        header = source.read(22)
        chunks = iter(lambda: source.read(size), b"")
        for plaintext in open_stream(key, STREAM_BINDING, header, chunks):
            total += len(plaintext)
    return total


def raw_open_from_file(aead: AESGCM, path: Path) -> int:
    """The control: read nonce + ciphertext pieces back and decrypt each."""
    size = encrypted_chunk_size(CHUNK_SIZE)
    total = 0
    with path.open("rb") as source:
        while chunk := source.read(size):
            view = memoryview(chunk)
            total += len(aead.decrypt(view[:12], view[12:], None))
    return total


def _mib_per_s(total: int, action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return total / MIB / (time.perf_counter() - started)


def bench_streams(total: int, repeats: int, work_dir: Path) -> list[Result]:
    """StreamSealer/open_stream against raw AES-GCM, file to file; and the sealer's peak memory."""
    key = OpenDataKey(secrets.randbits(63) or 1, new_data_key())
    aead = AESGCM(new_data_key())
    piece = os.urandom(PIECE_BYTES)
    sealed_path, raw_path = work_dir / "stream.sealed", work_dir / "stream.raw"

    def check_open() -> None:
        if open_stream_from_file(key, sealed_path) != total or raw_open_from_file(aead, raw_path) != total:
            raise BenchError("a stream did not decrypt to its full length")

    progress(f"streams: {total // MIB} MiB, best of {repeats}")
    runs = {"seal": [], "raw_seal": [], "open": [], "raw_open": []}
    try:
        for _ in range(repeats):
            runs["raw_seal"].append(_mib_per_s(total, lambda: raw_seal_to_file(aead, piece, total, raw_path)))
            runs["seal"].append(_mib_per_s(total, lambda: seal_stream_to_file(key, piece, total, sealed_path)))
            runs["raw_open"].append(_mib_per_s(total, lambda: raw_open_from_file(aead, raw_path)))
            runs["open"].append(_mib_per_s(total, lambda: open_stream_from_file(key, sealed_path)))
        check_open()
        sealed_size = sealed_path.stat().st_size
    finally:
        sealed_path.unlink(missing_ok=True)
        raw_path.unlink(missing_ok=True)

    size = f"{total // GIB} GiB" if total >= GIB else f"{total // MIB} MiB"
    fs = filesystem_type(work_dir)
    results = []
    for name, subject, control, label, note in (
        (f"stream seal {size}", "seal", "raw_seal", "AES-GCM per 64 KiB to a file",
         f"1 MiB pieces in, {sealed_size / total - 1:.2%} size overhead; file on {fs}, no fsync"),
        (f"stream open {size}", "open", "raw_open", "AES-GCM per 64 KiB from a file",
         f"reads back the file just written (on {fs})"),
    ):
        results.append(
            Result(
                scenario=name,
                database=NO_DATABASE,
                unit="MiB/s",
                value=max(runs[subject]),
                control=max(runs[control]),
                control_label=label,
                notes=note,
                details={"runs": [round(v, 1) for v in runs[subject]],
                         "control_runs": [round(v, 1) for v in runs[control]]},
            )
        )

    progress(f"streams: peak memory of sealing {size} in fresh subprocesses")
    sealer = measure_memory("sealer", total, work_dir)
    control = measure_memory("raw", total, work_dir)
    delta, control_delta = sealer["peak_mib"] - sealer["baseline_mib"], control["peak_mib"] - control["baseline_mib"]
    results.append(
        Result(
            scenario=f"stream seal {size} peak RSS",
            database=NO_DATABASE,
            unit="MiB",
            value=delta,
            control=control_delta,
            control_label="raw AES-GCM to a file, fresh subprocess",
            notes=f"peak {sealer['peak_mib']:.1f} MiB over a baseline of {sealer['baseline_mib']:.1f} MiB "
            f"(raw: {control['peak_mib']:.1f} over {control['baseline_mib']:.1f}); ru_maxrss, fresh subprocess",
            target=f"< {MEMORY_TARGET_MIB:g} MiB above baseline",
            target_met=delta < MEMORY_TARGET_MIB,
            details={"sealer": sealer, "raw": control},
        )
    )
    return results


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB  # Linux reports KiB


def _current_rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / KIB
    except (OSError, ValueError):
        pass
    return float("nan")


def memory_child(mode: str, total: int, work_dir: Path) -> dict[str, Any]:
    """Run in a fresh interpreter: seal ``total`` bytes to a file and report peak RSS against the baseline."""
    key = OpenDataKey(secrets.randbits(63) or 1, new_data_key())
    aead = AESGCM(new_data_key())
    piece = os.urandom(PIECE_BYTES)
    path = work_dir / f"memory.{mode}"
    try:
        # Reset the high-water mark (Linux >= 4.0) so that the peak is the streaming's, not the imports'.
        Path("/proc/self/clear_refs").write_text("5")
        hiwater_reset = True
    except OSError:
        hiwater_reset = False
    baseline = _max_rss_mib()
    baseline_rss = _current_rss_mib()
    try:
        if mode == "sealer":
            seal_stream_to_file(key, piece, total, path)
        else:
            raw_seal_to_file(aead, piece, total, path)
        written = path.stat().st_size
    finally:
        path.unlink(missing_ok=True)
    return {"mode": mode, "bytes": total, "written": written, "baseline_mib": round(baseline, 2),
            "peak_mib": round(_max_rss_mib(), 2), "baseline_current_rss_mib": round(baseline_rss, 2),
            "hiwater_reset": hiwater_reset}


def measure_memory(mode: str, total: int, work_dir: Path) -> dict[str, Any]:
    """Run `memory_child` in a fresh subprocess and return what it reported."""
    # Through a shell that forks (not execs) the interpreter: on Linux, ru_maxrss of a process carries the RSS of
    # the process image it was exec'd from, so a child forked straight from this (large) process would start
    # with this process's peak as its own; the shell's image is small.
    completed = subprocess.run(
        ["/bin/sh", "-c", '"$@"; exit $?', "sh", sys.executable, "-m", "bench.crypto", "--memory-child", mode,
         "--stream-bytes", str(total), "--work-dir", str(work_dir)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=False,
    )
    if completed.returncode != 0:
        raise BenchError(f"the memory subprocess ({mode}) failed: {completed.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------------------------- 3. rewrap


@dataclass
class KeySet:
    """N data keys wrapped under KEK version 1 of a test keyring, kept in memory to insert and to check."""

    keyring_path: Path
    passphrase: str
    rows: list[dict[str, Any]]
    clear: dict[int, bytes]


def make_keys(count: int, work_dir: Path) -> KeySet:
    """A test keyring (KEK version 1) and ``count`` data keys wrapped under it, with random 63-bit ids."""
    passphrase = random_passphrase()
    keyring_path = work_dir / "keyring.json"
    keyring = Keyring.create(keyring_path, passphrase, scrypt_n=2**10)
    kek = keyring.kek(1)
    clear: dict[int, bytes] = {}
    while len(clear) < count:  # like datakeys._new_key_id
        clear.setdefault(secrets.randbits(63) or 1, new_data_key())
    now = utcnow()
    rows = [
        {"id": key_id, "owner": KEY_OWNER, "kek_version": 1, "created_at": now,
         "wrapped": wrap_data_key(kek, 1, data_key, key_id=key_id, owner=KEY_OWNER)}
        for key_id, data_key in clear.items()
    ]
    return KeySet(keyring_path, passphrase, rows, clear)


def rewrap_control(keys: KeySet, keyring: Keyring, target: int) -> float:
    """Keys per second of rewrap_batch's own per-key work (unwrap, then wrap under ``target``), in memory."""
    new_kek = keyring.kek(target)
    started = time.perf_counter()
    for row in keys.rows:
        key_id, owner, version = row["id"], row["owner"], row["kek_version"]
        data_key = unwrap_data_key(keyring.kek(version), row["wrapped"], key_id=key_id, owner=owner)
        wrap_data_key(new_kek, target, data_key, key_id=key_id, owner=owner)
    return len(keys.rows) / (time.perf_counter() - started)


@contextmanager
def scratch_database(database: str, postgres_url: str, work_dir: Path, label: str) -> Iterator[Engine]:
    """A fresh, migrated database: a SQLite file in its own folder, or the PostgreSQL database (re)created."""
    run_dir = work_dir / label
    if database == POSTGRESQL:
        recreate_postgres_database(postgres_url)
        url = postgres_url
    else:
        run_dir.mkdir()
        url = sqlite_url(run_dir)
    engine = make_engine(url)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        if database == POSTGRESQL:
            drop_postgres_database(postgres_url)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


@contextmanager
def writing() -> Iterator[None]:
    """Transactions begun inside take SQLite's write lock at BEGIN, as the service's commands do."""
    token = write_intent.set(True)
    try:
        yield
    finally:
        write_intent.reset(token)


def insert_keys(engine: Engine, keys: KeySet, keyring: Keyring) -> float:
    """Record KEK version 1 as primary and bulk insert the wrapped keys (Core executemany); returns the seconds."""
    table = DataKey.__table__
    started = time.perf_counter()
    with writing():
        with Session(bind=engine) as session:
            register_keyring_versions(keyring, session)
            session.commit()
        with engine.begin() as connection:
            for start in range(0, len(keys.rows), INSERT_BATCH):
                connection.execute(table.insert(), keys.rows[start : start + INSERT_BATCH])
        if engine.dialect.name == "postgresql":
            with engine.connect() as connection:
                connection.exec_driver_sql("ANALYZE data_keys")
                connection.commit()
    return time.perf_counter() - started


def rotate(engine: Engine, keys: KeySet) -> tuple[Keyring, int]:
    """What `intake keys rotate` does: a new KEK version in the keyring, primary in the database."""
    keyring = Keyring.open(keys.keyring_path, keys.passphrase)
    target = keyring.add_kek_version()
    with writing(), Session(bind=engine) as session:
        register_keyring_versions(keyring, session)
        for row in session.scalars(sa.select(KekVersion)):
            row.state = "primary" if row.version == target else ("active" if row.state == "primary" else row.state)
        session.commit()
    return keyring, target


class StatementTimer:
    """Seconds spent inside the driver's execute/executemany, by the statement's first word (thread-safe)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seconds: dict[str, float] = {}
        self.selects: list[float] = []
        self._lock = threading.Lock()

    def _before(self, conn: Any, *_args: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        elapsed = time.perf_counter() - conn.info.pop("bench_started")
        verb = statement.lstrip().split(None, 1)[0].upper()
        with self._lock:
            self.seconds[verb] = self.seconds.get(verb, 0.0) + elapsed
            if verb == "SELECT" and "data_keys" in statement:
                self.selects.append(elapsed)

    def __enter__(self) -> StatementTimer:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)


# Bench-only variants of rewrap_batch, measured as proposals beside the real one: the same per-key work (the
# envelope functions) and the same guard (a key is updated only if it is still under the version it was read
# with), but none of its checks of the primary version or of damaged keys.

Batch = list[tuple[int, int, bytes]]  # (id, KEK version read, new wrapping)


def _select_batch(session: Session, target: int, batch_size: int, after: int | None) -> Sequence[Any]:
    table = DataKey.__table__
    query = sa.select(table.c.id, table.c.owner, table.c.kek_version, table.c.wrapped).where(
        table.c.kek_version.is_not(None), table.c.kek_version != target
    )
    if after is not None:
        query = query.where(table.c.id > after)
    return session.execute(query.order_by(table.c.id).limit(batch_size)).all()


def _rewrapped(rows: Sequence[Any], keyring: Keyring, target: int) -> Batch:
    """rewrap_batch's per-key work, with the envelope functions as they are."""
    new_kek = keyring.kek(target)
    out = []
    for key_id, owner, version, wrapped in rows:
        data_key = unwrap_data_key(keyring.kek(version), wrapped, key_id=key_id, owner=owner)
        out.append((key_id, version, wrap_data_key(new_kek, target, data_key, key_id=key_id, owner=owner)))
    return out


def _update_executemany(connection: Connection, batch: Batch, target: int) -> None:
    table = DataKey.__table__
    connection.execute(
        table.update()
        .where(table.c.id == sa.bindparam("b_id"), table.c.kek_version == sa.bindparam("b_old"))
        .values(wrapped=sa.bindparam("b_wrapped"), kek_version=target, rewrapped_at=utcnow()),
        [{"b_id": i, "b_old": v, "b_wrapped": w} for i, v, w in batch],
    )


# One statement per batch, as driver-level SQL: built with SQLAlchemy's sa.values, a 1000-row VALUES list costs
# more to compile than the executemany it replaces. ``AND id = ANY(ids)`` is there for the planner: joined to a
# VALUES list or unnest() alone, PostgreSQL 15 hashes the whole table (a sequential scan per batch, so O(N) each)
# instead of looking the batch's rows up by primary key.
_SET = "UPDATE data_keys SET wrapped = b.wrapped, kek_version = %s, rewrapped_at = %s "
_JOIN = "WHERE data_keys.id = b.id AND data_keys.kek_version = b.old"
_BY_ID = " AND data_keys.id = ANY(%s::bigint[])"


@functools.lru_cache(maxsize=16)
def _values_sql(rows: int, by_id: bool) -> str:
    values = ", ".join(["(%s::bigint, %s::integer, %s::bytea)"] * rows)
    return f"{_SET}FROM (VALUES {values}) AS b (id, old, wrapped) {_JOIN}{_BY_ID if by_id else ''}"


def _update_from_values(connection: Connection, batch: Batch, target: int, by_id: bool) -> None:
    params: list[Any] = [target, utcnow()]
    for row in batch:
        params += row
    if by_id:
        params.append([key_id for key_id, _, _ in batch])
    connection.exec_driver_sql(_values_sql(len(batch), by_id), tuple(params))


_UNNEST_SQL = f"{_SET}FROM unnest(%s::bigint[], %s::integer[], %s::bytea[]) AS b (id, old, wrapped) {_JOIN}{_BY_ID}"


def _update_from_unnest(connection: Connection, batch: Batch, target: int) -> None:
    ids, olds, wrapped = (list(column) for column in zip(*batch, strict=True))
    connection.exec_driver_sql(_UNNEST_SQL, (target, utcnow(), ids, olds, wrapped, ids))


UPDATES: dict[str, Callable[[Connection, Batch, int], None]] = {
    "executemany": _update_executemany,
    "values": functools.partial(_update_from_values, by_id=False),
    "values_by_id": functools.partial(_update_from_values, by_id=True),
    "unnest_by_id": _update_from_unnest,
}


@dataclass(frozen=True)
class RewrapVariant:
    """How one rewrap run selects, rewraps and updates its batches; ``real`` runs intake's rewrap_batch itself."""

    name: str
    batch_size: int
    real: bool = False
    keyset: bool = False  # select ``id > last id of the previous batch`` instead of rescanning from the start
    update: str = "executemany"  # or one UPDATE ... FROM (VALUES ...) / FROM unnest(arrays) statement per batch
    overlap: bool = False  # UPDATE + COMMIT of a batch on a second connection while the next one is read and rewrapped
    databases: tuple[str, ...] = (SQLITE, POSTGRESQL)


def rewrap_variants(batch_sizes: Sequence[int], alternatives: bool = True) -> list[RewrapVariant]:
    """intake's rewrap_batch at every batch size, then the bench-only variants at the first one."""
    real = [RewrapVariant(f"rewrap_batch B={size}", size, real=True) for size in batch_sizes]
    if not alternatives:
        return real
    b = batch_sizes[0]
    pg = (POSTGRESQL,)
    return [
        *real,
        RewrapVariant(f"alt: rescan SELECT + executemany, B={b}", b),
        RewrapVariant(f"alt: keyset SELECT + executemany, B={b}", b, keyset=True),
        RewrapVariant(f"alt: rescan + UPDATE FROM (VALUES ...), B={b}", b, update="values", databases=pg),
        RewrapVariant(f"alt: keyset + VALUES + id = ANY, B={b}", b, keyset=True, update="values_by_id", databases=pg),
        RewrapVariant(f"alt: keyset + unnest + id = ANY, B={b}", b, keyset=True, update="unnest_by_id", databases=pg),
        *(RewrapVariant(f"alt: keyset + unnest + id = ANY + overlap, B={size}", size, keyset=True,
                        update="unnest_by_id", overlap=True, databases=pg) for size in batch_sizes),
    ]


@dataclass
class RunStats:
    keys: int = 0
    batches: int = 0
    commit_s: float = 0.0


def _commit(session_or_connection: Session | Connection, stats: RunStats) -> None:
    started = time.perf_counter()
    session_or_connection.commit()
    stats.commit_s += time.perf_counter() - started


def _run_real(engine: Engine, keyring: Keyring, variant: RewrapVariant, target: int, stats: RunStats) -> None:
    """intake's rewrap_batch, called as `intake keys rewrap` calls it: until a batch examines nothing."""
    last_id = 0
    with Session(bind=engine) as session:
        while True:
            batch = rewrap_batch(session, keyring, target=target, batch_size=variant.batch_size, after_id=last_id)
            _commit(session, stats)
            if not batch.examined:
                return
            last_id = batch.last_id
            stats.keys += batch.examined
            stats.batches += 1


def _run_alternative(engine: Engine, keyring: Keyring, variant: RewrapVariant, target: int, stats: RunStats) -> None:
    update = UPDATES[variant.update]
    pending: Future[None] | None = None

    def settle() -> None:
        nonlocal pending
        if pending is not None:
            pending.result()
            pending = None

    with ExitStack() as stack:
        session = stack.enter_context(Session(bind=engine))
        if variant.overlap:
            writer = stack.enter_context(engine.connect())
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))

            def write(batch: Batch) -> None:
                update(writer, batch, target)
                _commit(writer, stats)

        after: int | None = None
        while True:
            rows = _select_batch(session, target, variant.batch_size, after)
            if not rows:
                settle()
                _commit(session, stats)
                return
            batch = _rewrapped(rows, keyring, target)
            if variant.overlap:
                session.commit()  # ends the read transaction; the writer updates and commits the batch
                settle()
                pending = pool.submit(write, batch)
            else:
                update(session.connection(), batch, target)
                _commit(session, stats)
            after = rows[-1][0] if variant.keyset else None
            stats.keys += len(rows)
            stats.batches += 1


def verify_rewrap(engine: Engine, keys: KeySet, keyring: Keyring, target: int) -> None:
    """Every key is on ``target`` and unwraps there to the data key it was created with; raises otherwise."""
    table = DataKey.__table__
    with engine.connect() as connection:
        on_target = connection.scalar(sa.select(sa.func.count()).where(table.c.kek_version == target))
        left = connection.scalar(sa.select(sa.func.count()).where(table.c.kek_version != target))
        stored = connection.execute(
            sa.select(table.c.id, table.c.kek_version, table.c.wrapped, table.c.rewrapped_at)
        ).all()
    expected = len(keys.rows)
    if on_target != expected or left:
        raise BenchError(f"after the rewrap {on_target} keys are on KEK version {target} and {left} on others, "
                         f"expected {expected} and 0")
    kek = keyring.kek(target)
    for key_id, version, wrapped, rewrapped_at in stored:
        clear = keys.clear.get(key_id)
        if clear is None or version != target or rewrapped_at is None:
            raise BenchError(f"data key {key_id} is unknown or was not rewrapped")
        if unwrap_data_key(kek, wrapped, key_id=key_id, owner=KEY_OWNER) != clear:
            raise BenchError(f"data key {key_id} unwraps to another key after the rewrap")


def bench_rewrap(
    databases: Sequence[str], postgres_url: str, count: int, batch_sizes: Sequence[int], work_dir: Path,
    alternatives: bool = True,
) -> tuple[list[Result], list[dict[str, Any]]]:
    """rewrap_batch (and the proposals) on each database, each against in-memory unwrap+wrap measured just before."""
    progress(f"rewrap: wrapping {count:,} data keys under KEK version 1")
    keys = make_keys(count, work_dir)
    results: list[Result] = []
    profiles: list[dict[str, Any]] = []
    for database in databases:
        for variant in rewrap_variants(batch_sizes, alternatives):
            if database not in variant.databases:
                continue
            label = f"{database}/{variant.name}"
            with scratch_database(database, postgres_url, work_dir, f"rewrap-{len(profiles)}") as engine:
                insert_s = insert_keys(engine, keys, Keyring.open(keys.keyring_path, keys.passphrase))
                keyring, target = rotate(engine, keys)
                if target != 2:
                    raise BenchError(f"the test keyring's new KEK version is {target}, not 2")
                progress(f"rewrap: {label}: control, in-memory unwrap+wrap of {count:,} keys, median of {REPEATS}")
                control_runs = [rewrap_control(keys, keyring, target) for _ in range(REPEATS)]
                control = statistics.median(control_runs)
                progress(f"rewrap: {label} (inserted {count:,} keys in {insert_s:.1f} s)")
                stats = RunStats()
                run = _run_real if variant.real else _run_alternative
                with writing(), StatementTimer(engine) as timer:
                    started = time.perf_counter()
                    run(engine, keyring, variant, target, stats)
                    total_s = time.perf_counter() - started
                if stats.keys != count:
                    raise BenchError(f"{label}: rewrapped {stats.keys} keys, expected {count}")
                verify_rewrap(engine, keys, keyring, target)
            profile = _profile(variant, database, count, total_s, stats, timer, control, insert_s)
            profile["control_runs"] = [round(v) for v in control_runs]
            profiles.append(profile)
            keys_per_s = count / total_s
            parts = (f"SELECT {profile['select_s']:.1f} s, UPDATE {profile['update_s']:.1f} s, "
                     f"COMMIT {stats.commit_s:.1f} s of {total_s:.1f} s")
            if variant.overlap:
                parts += " (overlapping)"
            on_postgres = database == POSTGRESQL
            results.append(
                Result(
                    scenario=variant.name,
                    database=database,
                    unit="keys/s",
                    value=keys_per_s,
                    control=control,
                    control_label="unwrap+wrap in memory",
                    notes=parts if variant.real else f"bench-only variant; {parts}",
                    target=f"≥ {REWRAP_TARGET_KEYS_PER_S:,.0f} keys/s" if on_postgres and variant.real else "—",
                    target_met=(keys_per_s >= REWRAP_TARGET_KEYS_PER_S) if on_postgres and variant.real else None,
                    details={"profile": profile},
                )
            )
    return results, profiles


def _profile(variant: RewrapVariant, database: str, count: int, total_s: float, stats: RunStats,
             timer: StatementTimer, control: float, insert_s: float) -> dict[str, Any]:
    select_s = timer.seconds.get("SELECT", 0.0)
    update_s = timer.seconds.get("UPDATE", 0.0)
    other_sql_s = sum(s for verb, s in timer.seconds.items() if verb not in {"SELECT", "UPDATE"})
    crypto_s = count / control
    return {
        "run": variant.name,
        "database": database,
        "keys": count,
        "batch_size": variant.batch_size,
        "batches": stats.batches,
        "keys_per_s": round(count / total_s),
        "total_s": round(total_s, 3),
        "select_s": round(select_s, 3),
        "update_s": round(update_s, 3),
        "commit_s": round(stats.commit_s, 3),
        "other_sql_s": round(other_sql_s, 3),
        "crypto_s": round(crypto_s, 3),
        "other_python_s": round(total_s - select_s - update_s - stats.commit_s - other_sql_s - crypto_s, 3),
        "first_select_ms": round(timer.selects[0] * 1000, 2) if timer.selects else 0.0,
        "last_select_ms": round(timer.selects[-1] * 1000, 2) if timer.selects else 0.0,
        "insert_s": round(insert_s, 3),
        "control_keys_per_s": round(control),
        "overlapping": variant.overlap,
    }


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.crypto",
        description="In-process crypto benchmarks (sealed fields, attachment streams, rewrapping data keys), "
        "each as a ratio against a control measured in the same run.",
    )
    parser.add_argument(
        "--db",
        choices=[SQLITE, POSTGRESQL, "both"],
        help="database(s) for the rewrap scenario (default: both if PostgreSQL is reachable, else sqlite)",
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="SQLAlchemy URL of the scratch PostgreSQL database; created and dropped (default: %(default)s)",
    )
    parser.add_argument("--quick", action="store_true", help="stream 64 MiB instead of 1 GiB")
    parser.add_argument("--keys", type=int, default=REWRAP_KEYS, help="data keys to rewrap (default: %(default)s)")
    parser.add_argument(
        "--batch-size",
        type=int,
        action="append",
        dest="batch_sizes",
        metavar="B",
        help=f"rewrap batch size (repeatable; default: {', '.join(map(str, REWRAP_BATCHES))})",
    )
    parser.add_argument(
        "--stream-dir",
        type=Path,
        help="where the stream scenario writes its files (default: /dev/shm if it is a tmpfs with room, so that "
        "the disk's writeback does not dominate, else the temporary folder)",
    )
    parser.add_argument(
        "--no-alternatives",
        action="store_true",
        help="measure only rewrap_batch itself, not the bench-only variants proposed beside it",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help="where the Markdown and JSON results go (default: bench/results)",
    )
    parser.add_argument("--memory-child", choices=["sealer", "raw"], help=argparse.SUPPRESS)
    parser.add_argument("--stream-bytes", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.keys < 1 or any(b < 1 for b in args.batch_sizes or ()):
        parser.error("--keys and --batch-size must be at least 1")
    return args


def filesystem_type(path: Path) -> str:
    """The type of the filesystem ``path`` is on, from /proc/mounts (``unknown`` elsewhere)."""
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 2 and str(path.resolve()).startswith(fields[1]) and len(fields[1]) > len(best):
                best, kind = fields[1], fields[2]
    except OSError:
        pass
    return kind


def memory_backed_dir(needed: int) -> Path | None:
    """/dev/shm if it is a tmpfs with ``needed`` bytes free, else None."""
    shm = Path("/dev/shm")
    try:
        if filesystem_type(shm) == "tmpfs" and shutil.disk_usage(shm).free >= needed:
            return shm
    except OSError:
        pass
    return None


def _load_average() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table; see the module docstring for the exit status."""
    args = parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.stream_bytes, args.work_dir)))
        return EXIT_OK

    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    started_at = utc_now()
    stream_bytes = QUICK_STREAM_BYTES if args.quick else STREAM_BYTES
    batch_sizes = tuple(args.batch_sizes or REWRAP_BATCHES)
    notes: list[str] = []
    try:
        databases, postgres_version = choose_databases(args.db, args.postgres_url, notes)
        for note in notes:
            progress(note)
        report = Report(
            started_at=started_at,
            machine=crypto_machine(postgres_version),
            settings={
                "quick": args.quick,
                "repeats": REPEATS,
                "min_seconds": MIN_SECONDS,
                "field_bytes": FIELD_BYTES,
                "stream_bytes": stream_bytes,
                "piece_bytes": PIECE_BYTES,
                "chunk_bytes": CHUNK_SIZE,
                "rewrap_keys": args.keys,
                "batch_sizes": list(batch_sizes),
                "alternatives": not args.no_alternatives,
                "databases": list(databases),
                "postgres_url": args.postgres_url if POSTGRESQL in databases else None,
                "load_average_start": _load_average(),
            },
            notes=notes,
        )
        with ExitStack() as stack:
            work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-crypto-")))
            stream_base = args.stream_dir or memory_backed_dir(3 * stream_bytes) or Path(tempfile.gettempdir())
            stream_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-crypto-", dir=stream_base)))
            fs = filesystem_type(stream_dir)
            report.settings["stream_dir"] = f"{stream_base} ({fs})"
            notes.append(
                f"Stream files in {stream_base} ({fs})"
                + (": no disk under them, so the stream rows measure the encryption, not the disk's writeback."
                   if fs == "tmpfs" else ": the disk's writeback can throttle the writes and dominate the stream rows.")
            )
            report.results += bench_fields(REPEATS, MIN_SECONDS)
            report.results += bench_streams(stream_bytes, REPEATS, stream_dir)
            rewrap_results, profiles = bench_rewrap(
                databases, args.postgres_url, args.keys, batch_sizes, work_dir, alternatives=not args.no_alternatives
            )
            report.results += rewrap_results
            report.profiles += profiles
    except KeyboardInterrupt:
        progress("interrupted: scratch databases dropped, temporary files removed")
        return EXIT_INTERRUPTED
    except (BenchError, DatabaseError) as error:
        progress(f"FAILED: {error}")
        return EXIT_FAILED

    load_start, load_end = report.settings["load_average_start"], _load_average()
    report.settings["load_average_end"] = load_end
    notes.append(
        f"1-minute load average {load_start:.2f} at the start and {load_end:.2f} at the end on "
        f"{report.machine['usable_cores']} usable cores: anything else running on the machine lowers both the "
        "values and their controls, but not evenly."
    )
    notes.append(
        "PostgreSQL: ANALYZE data_keys after the bulk insert; every run starts from a freshly created and migrated "
        "database. SQLite: WAL, synchronous=NORMAL (intake's engine settings)."
    )
    if report.missed:
        notes.append("MISSED targets: " + ", ".join(f"{r.scenario} on {r.database}" for r in report.missed))
    markdown_path, json_path = write_results(report, args.results_dir)
    print(render_markdown(report), end="")
    progress(f"results written to {markdown_path} and {json_path}")
    return EXIT_MISSED if report.missed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
