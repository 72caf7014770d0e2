"""Export benchmark: ``python -m bench.export [--db sqlite|postgresql] [--records N] [--attachment-bytes TOTAL]
[--quick]`` (``make bench-export``).

One case file of N submitted records (default 10,000) holding TOTAL bytes of attachments (default 1 GiB), built by
the service's own `intake.exports.operations.build` (through `intake.exports.runner.run`, as the worker does), in a
fresh interpreter so that its peak memory is its own, against a control measured in the same run: raw age
encryption (`pyrage.encrypt_io`, X25519, to the same recipient) of as many bytes as the bundle's plaintext tar
stream holds, from memory to a file in the same folder. Targets (DESIGN "Performance targets", stated for
PostgreSQL): the build's throughput at least half the raw encryption's, and its peak memory at most 256 MiB.
The bundle is then checked with `intake.exports.verify.verify_bundle`, as its recipient would.

The database is filled fresh for every run (SQLite in the temporary folder, or the PostgreSQL database of
``--postgres-url``, dropped and recreated, and dropped at the end): records written in bulk as `bench.generate` writes
them (data keys wrapped under the keyring, narrative, details, incidents and consent particulars sealed with
`seal_value`), each consenting to `un_mechanisms` at `pseudonymous` with documents and photos as media, so that
every attachment goes into the case file; the attachments themselves stored through
`intake.testimonies.operations.store_attachment` (sniffed, hashed, encrypted as a chunked stream, in the configured
blob store, audited); one legal officer, one UN-mechanism recipient with a fresh age key, one case holding every
record (its rows inserted in bulk), and the export requested through `request_export`.

The table goes to stdout; Markdown and JSON copies go to bench/results/export-<UTC timestamp>.{md,json}.
Exit status: 0 when every target was met, 1 when a target was missed, 2 when the benchmark could not run or a
check of its results failed (the build did not end ready, the bundle does not verify), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import pyrage
import sqlalchemy as sa

from bench.databases import (
    POSTGRESQL,
    SQLITE,
    DatabaseError,
    drop_postgres_database,
    postgres_server_version,
    recreate_postgres_database,
    sqlite_url,
)
from bench.generate import _HEADS, _NAMES, _Actor, attachment_bytes
from bench.instance import PROJECT_ROOT
from bench.report import RESULTS_DIR, describe_machine, usable_cores, utc_now

EXIT_OK, EXIT_MISSED, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 130
MIB = 1 << 20
RECORDS = 10_000
ATTACHMENT_BYTES = 1 << 30
QUICK_RECORDS = 300
QUICK_ATTACHMENT_BYTES = 30 * MIB
RATIO_TARGET = 0.5
MEMORY_TARGET_MIB = 256.0
RAW_REPEATS = 3
BATCH = 500  # records per transaction while filling
SEED = 7
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_export"
PURPOSE = "un_mechanisms"
MEDIA = ("document", "photo")
LEGAL = "bench-legal"
ADMIN = "bench-admin"
INTERVIEWERS = 6
RECIPIENT_KEY = "bench-un-mechanism"
CASE_REFERENCE = "BENCH-EXPORT"
CHILD_MARKER = "BENCH_EXPORT_CHILD="
PROFILE_ROWS = 25
# age's payload: a 16-byte nonce, then chunks of 64 KiB of plaintext, each followed by a 16-byte tag.
AGE_NONCE = 16
AGE_CHUNK = 64 * 1024
AGE_TAG = 16


class BenchError(RuntimeError):
    """The benchmark could not run, or a check of its results failed."""


def progress(message: str) -> None:
    print(f"[bench.export] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# The attachments' bytes


@dataclass(frozen=True)
class PlannedAttachment:
    record: int  # the record's index, 0-based
    medium: str
    size: int


def plan_attachments(records: int, total: int, rng: random.Random) -> list[PlannedAttachment]:
    """Each record's attachments (a scanned document; 60% also a photo, 15% a second document), with sizes
    that vary around the mean and add up to exactly `total` bytes."""
    media: list[tuple[int, str]] = []
    for n in range(records):
        media.append((n, "document"))
        if rng.random() < 0.6:
            media.append((n, "photo"))
        if rng.random() < 0.15:
            media.append((n, "document"))
    smallest = max(len(h) for h in _HEADS.values()) + 64
    if total < smallest * len(media):
        raise BenchError(f"{total:,} bytes are too few for {len(media):,} attachments")
    weights = [rng.uniform(0.4, 1.6) for _ in media]
    spare = total - smallest * len(media)
    scale = spare / sum(weights)
    sizes = [smallest + int(w * scale) for w in weights]
    sizes[-1] += total - sum(sizes)
    return [PlannedAttachment(n, medium, size) for (n, medium), size in zip(media, sizes, strict=True)]


# ---------------------------------------------------------------------------------------------------------------
# Filling the database


@dataclass
class Filled:
    legal_id: int
    recipient_id: int
    case_id: int
    identity: str  # the recipient's age secret key, kept in memory only
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def populate(records: int, total_bytes: int, *, batch: int = BATCH, seed: int = SEED,
             report: Callable[[str], None] | None = None) -> Filled:
    """Fill the current application's database (see the module docstring); commits as it goes."""
    from flask import current_app

    from bench.generate import (
        LANGUAGES,
        SENTENCES,
        STATUSES,
        _batches,
        _ids_from,
        _incident,
        _pseudonyms,
        _Row,
        _type_weights,
        _weighted,
    )
    from consent import scripts
    from consent.records import Purpose, ScriptItem
    from intake.accounts import operations as accounts
    from intake.cases.models import CaseRecord
    from intake.cases.operations import create_case
    from intake.consents.models import ConsentRecord
    from intake.core import gazetteer
    from intake.core.crypto import keyring_holding
    from intake.core.crypto.datakeys import primary_kek_version
    from intake.core.crypto.envelope import OpenDataKey, new_data_key, wrap_data_key
    from intake.core.crypto.fields import seal_value
    from intake.core.crypto.models import DataKey
    from intake.core.db import db
    from intake.identities.models import Person
    from intake.interviews.operations import _incident_columns, _incident_document, incident_problems
    from intake.recipients.operations import RecipientInput, register
    from intake.testimonies.models import Incident, Testimony
    from intake.testimonies.operations import store_attachment

    say = report or (lambda text: None)
    rng = random.Random(seed)
    config = current_app.config
    started = time.perf_counter()
    admin = accounts.create_account(username=ADMIN, roles=["admin"])
    legal = accounts.create_account(username=LEGAL, roles=["legal"])
    interviewer_ids = []
    for n in range(INTERVIEWERS):
        account = accounts.create_account(username=f"bench-interviewer-{n + 1}", roles=["interviewer"])
        account.team = "bench"
        interviewer_ids.append(account)
    db.session.flush()
    interviewers = [_Actor(a.id, ("interviewer",)) for a in interviewer_ids]
    identity = pyrage.x25519.Identity.generate()
    recipient = register(RecipientInput(
        key=RECIPIENT_KEY, name="Bench UN mechanism", category="un_mechanism", country=None, is_authority=False,
        agreement_reference="BENCH-AGR-1", agreement_date=date(2024, 1, 15), contact="desk@bench.invalid",
        age_recipients=[str(identity.to_public())]), actor=admin)
    legal_actor = _Actor(legal.id, ("legal",))
    case = create_case(CASE_REFERENCE, "Benchmark case file", recipient=recipient, actor=legal)
    filled = Filled(legal_id=legal.id, recipient_id=recipient.id, case_id=case.id, identity=str(identity))
    db.session.commit()

    types = _type_weights()
    places = [p for p in gazetteer.places() if p.kind != "region"]
    version = primary_kek_version(db.session(), lock=False)
    kek = keyring_holding(version).kek(version)
    script_of = {language: scripts.latest(language) for language, _ in LANGUAGES}
    items = sorted(i.value for i in ScriptItem)
    tables: dict[str, sa.Table] = {name: model.__table__ for name, model in (  # type: ignore[misc]
        ("keys", DataKey), ("persons", Person), ("testimonies", Testimony), ("incidents", Incident),
        ("consents", ConsentRecord), ("case_records", CaseRecord))}
    named = {t.name: t for t in tables.values()}
    conn = db.session.connection()
    next_id = {name: _ids_from(conn, tables[name]) for name in ("persons", "testimonies", "incidents", "consents")}
    pseudonyms = _pseudonyms(rng, config["PSEUDONYM_PREFIX"], records)
    planned = plan_attachments(records, total_bytes, rng)
    by_record: dict[int, list[PlannedAttachment]] = {}
    for item in planned:
        by_record.setdefault(item.record, []).append(item)
    today = datetime.now(UTC).date()
    now = datetime.now(UTC).replace(microsecond=0)
    span = timedelta(days=3 * 365)
    used_key_ids: set[int] = set()
    counts = {"records": records, "incidents": 0, "attachments": 0, "documents": 0, "photos": 0,
              "attachment_bytes": 0}
    media = frozenset(MEDIA)
    record_seconds = attachment_seconds = 0.0

    def data_key(owner: str, made: datetime) -> tuple[dict[str, Any], OpenDataKey]:
        key_id = secrets.randbits(63) or 1
        while key_id in used_key_ids:
            key_id = secrets.randbits(63) or 1
        used_key_ids.add(key_id)
        key = new_data_key()
        return ({"id": key_id, "owner": owner, "kek_version": version, "created_at": made,
                 "wrapped": wrap_data_key(kek, version, key, key_id=key_id, owner=owner)}, OpenDataKey(key_id, key))

    def sealed(table: str, row_id: int, column: str, value: Any, key: OpenDataKey) -> bytes:
        row = _Row(named[table], row_id)
        seal_value(row, column, value, key=key)
        return bytes(getattr(row, column))

    for chunk in _batches(records, batch):
        began = time.perf_counter()
        keys, persons, testimonies, incidents, consents, case_rows = [], [], [], [], [], []
        ids: dict[int, int] = {}
        for n in chunk:
            submitted = now - span + span * (n + 1) / (records + 1) - timedelta(minutes=rng.randrange(60))
            started_at = submitted - timedelta(minutes=rng.randrange(40, 180))
            language = _weighted(rng, LANGUAGES)
            interviewer = interviewers[n % len(interviewers)].id
            person_key, _ = data_key("person", started_at)
            person_id = next_id["persons"]
            next_id["persons"] += 1
            keys.append(person_key)
            persons.append({"id": person_id, "pseudonym": pseudonyms[n], "data_key_id": person_key["id"],
                            "identity": None, "name_tag": None, "other_name_tag": None, "created_at": started_at,
                            "created_by_id": interviewer})
            testimony_key, open_key = data_key("testimony", started_at)
            keys.append(testimony_key)
            testimony_id = next_id["testimonies"]
            next_id["testimonies"] += 1
            ids[n] = testimony_id
            told = [_incident(rng, types, places, language)
                    for _ in range(rng.choices((1, 2, 3), weights=(50, 35, 15))[0])]
            for given in told:
                problems = incident_problems(given, today=today)
                if problems:
                    raise BenchError(f"generated incident refused: {problems}")
                month, region = _incident_columns(given)
                incident_id = next_id["incidents"]
                next_id["incidents"] += 1
                incidents.append({"id": incident_id, "testimony_id": testimony_id, "type": given.type,
                                  "month": month, "region": region, "created_at": started_at,
                                  "details": sealed("incidents", incident_id, "details",
                                                    _incident_document(given), open_key)})
            sentences = SENTENCES[language]
            narrative = " ".join(rng.sample(sentences, rng.randrange(3, len(sentences) + 1)))
            details = {"readiness": {"private_place": True, "no_observers": True, "interpreter": "not_needed",
                                     "support_available": True, "risk": "low", "risk_mitigated": False},
                       "declined": [], "pauses": [],
                       "referral": {"outcome": "accepted", "services": ["psychosocial"], "wellbeing": "settled",
                                    "note": ""}}
            testimonies.append({
                "id": testimony_id, "pseudonym": pseudonyms[n], "interviewer_id": interviewer,
                "data_key_id": testimony_key["id"], "status": _weighted(rng, STATUSES), "language": language,
                "region": None, "interviewed_on": started_at.date(), "revision": 4 + len(told),
                "submitted_at": submitted, "idempotency_key": None, "submission_digest": None,
                "submission_key": secrets.token_hex(12), "created_at": started_at, "updated_at": submitted,
                "narrative": sealed("testimonies", testimony_id, "narrative", narrative, open_key),
                "details": sealed("testimonies", testimony_id, "details", details, open_key)})
            script = script_of[language]
            consent_id = next_id["consents"]
            next_id["consents"] += 1
            consents.append({
                "id": consent_id, "testimony_id": testimony_id, "number": 1, "recorded_at": started_at,
                "recorded_by_id": interviewer, "script_language": script.language, "script_hash": script.hash,
                "method": "written", "items": items, "capacity_confirmed": True, "voluntariness_confirmed": True,
                "witness_present": False, "interpreter_present": False, "is_minor": False,
                "guardian_consented": False, "child_assented": False, "best_interests_given": False,
                "grants": {Purpose.DOCUMENTATION.value: "pseudonymous", Purpose.UN_MECHANISMS.value: "pseudonymous"},
                "media": list(MEDIA), "exclusions": [["authorities_of", "AZ"]], "follow_up_permitted": False,
                "review_date": None,
                "particulars": sealed("consent_versions", consent_id, "particulars",
                                      {"witness": "", "interpreter": "", "best_interests_note": "",
                                       "follow_up": None}, open_key)})
            case_rows.append({"case_id": filled.case_id, "testimony_id": testimony_id, "incident_id": None,
                              "added_at": submitted, "added_by_id": legal_actor.id})
            counts["incidents"] += len(told)
        for name, rows in (("keys", keys), ("persons", persons), ("testimonies", testimonies),
                           ("incidents", incidents), ("consents", consents), ("case_records", case_rows)):
            conn.execute(tables[name].insert(), rows)
        middle = time.perf_counter()
        record_seconds += middle - began
        stored = {t.id: t for t in db.session.scalars(sa.select(Testimony).where(Testimony.id.in_(list(ids.values()))))}
        for n in chunk:
            testimony = stored[ids[n]]
            for number, item in enumerate(by_record.get(n, ()), start=1):
                content = attachment_bytes(item.medium, item.size)
                store_attachment(testimony, io.BytesIO(content), filename=_NAMES[item.medium].format(n=number),
                                 actor=interviewers[n % len(interviewers)], config=config, allowed_media=media,
                                 declared_medium=item.medium)
                counts["attachments"] += 1
                counts["documents" if item.medium == "document" else "photos"] += 1
                counts["attachment_bytes"] += item.size
        db.session.commit()
        db.session.expunge_all()
        conn = db.session.connection()
        attachment_seconds += time.perf_counter() - middle
        say(f"{chunk.stop:,} of {records:,} records, {counts['attachment_bytes'] / MIB:,.0f} MiB of attachments")

    if conn.dialect.name == "postgresql":
        for name in ("persons", "testimonies", "incidents", "consents"):
            table = tables[name].name
            conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                 f"(SELECT max(id) FROM {table}))")
        db.session.commit()
        db.session.remove()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as raw:
            raw.exec_driver_sql("VACUUM ANALYZE")
    filled.counts = counts
    filled.seconds = {"records": round(record_seconds, 2), "attachments": round(attachment_seconds, 2),
                      "total": round(time.perf_counter() - started, 2)}
    return filled


def request(filled: Filled) -> int:
    """Queue the export of the case for the recipient (its preview decides every record); the export's id."""
    from intake.accounts.models import Account
    from intake.cases.models import Case
    from intake.core.db import db
    from intake.exports.operations import request_export
    from intake.recipients.models import Recipient

    case = db.session.get(Case, filled.case_id)
    recipient = db.session.get(Recipient, filled.recipient_id)
    if case is None or recipient is None:
        raise BenchError("the bench case or recipient is gone")
    export = request_export(case, recipient, PURPOSE, actor=db.session.get(Account, filled.legal_id))
    db.session.commit()
    return int(export.id)


# ---------------------------------------------------------------------------------------------------------------
# The build, in a fresh interpreter


def _status_kib(field_name: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


def build_child(job: dict[str, Any]) -> dict[str, Any]:
    """Run in a fresh interpreter: open the app, build the export once and report its time and memory."""
    from intake import create_app
    from intake.core.db import db
    from intake.core.keys import Keyring
    from intake.exports import bundle, render  # noqa: F401 - imported before the clock starts, as in a worker
    from intake.exports.runner import run

    keyring = Keyring.open(Path(job["settings"]["KEYRING_PATH"]), job["passphrase"])
    app = create_app(job["settings"], keyring=keyring)
    with app.app_context():
        db.session.execute(sa.text("SELECT 1"))
        db.session.remove()
    before = {"rss_mib": _mib(_status_kib("VmRSS")), "hwm_mib": _mib(_status_kib("VmHWM"))}
    profiler = None
    if job.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    status = run(app, int(job["export_id"]))
    seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(job["profile"])
    app.extensions["intake.db"].dispose()
    return {"status": str(status) if status is not None else None, "seconds": seconds, "before": before,
            "peak_mib": _mib(_status_kib("VmHWM")),
            "ru_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_end_mib": _mib(_status_kib("VmRSS"))}


def run_build(settings: dict[str, Any], passphrase: str, export_id: int, profile: Path | None = None) -> dict[str, Any]:
    """Build the export in a fresh interpreter (`build_child`) and return what it reported."""
    # Through a shell that forks the interpreter: on Linux, ru_maxrss and VmHWM of a process carry the RSS of the
    # process image it was exec'd from, so a child exec'd straight from this (large) process would start with this
    # process's peak as its own; the shell's image is small.
    job = {"settings": settings, "passphrase": passphrase, "export_id": export_id,
           "profile": str(profile) if profile else None}
    completed = subprocess.run(
        ["/bin/sh", "-c", '"$@"; exit $?', "sh", sys.executable, "-m", "bench.export", "--build-child"],
        cwd=PROJECT_ROOT, input=json.dumps(job), capture_output=True, text=True, check=False)
    lines = [line for line in completed.stdout.splitlines() if line.startswith(CHILD_MARKER)]
    if completed.returncode != 0 or not lines:
        raise BenchError(f"the build process failed ({completed.returncode}): {completed.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len(CHILD_MARKER):])
    return result


# ---------------------------------------------------------------------------------------------------------------
# The control: raw age encryption of as many bytes


def age_plaintext_size(path: Path) -> int:
    """How many plaintext bytes the age file at `path` holds (from its size and its header's length)."""
    with path.open("rb") as source:
        head = source.read(64 * 1024)
    end = head.find(b"\n--- ")
    if not head.startswith(b"age-encryption.org/v1\n") or end < 0:
        raise BenchError("the bundle is not an age file")
    header = head.index(b"\n", end + 1) + 1
    body = path.stat().st_size - header - AGE_NONCE
    full, rest = divmod(body, AGE_CHUNK + AGE_TAG)
    return full * AGE_CHUNK + (rest - AGE_TAG if rest else 0)


class _Repeating(io.BufferedIOBase):
    """`size` bytes read from one random MiB over and over, as cheaply as Python can hand them to pyrage."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._piece = os.urandom(MIB)
        self._left = size
        self._offset = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self._left <= 0:
            return b""
        wanted = self._left if size is None or size < 0 else min(size, self._left)
        if self._offset + wanted > len(self._piece):
            self._offset = 0
        start = self._offset
        self._offset += wanted
        self._left -= wanted
        return self._piece[start:start + wanted]


def raw_age(size: int, recipient: str, path: Path) -> float:
    """Seconds to encrypt `size` bytes to `recipient` with `pyrage.encrypt_io` into a new file at `path`."""
    key = pyrage.x25519.Recipient.from_str(recipient)
    reader = _Repeating(size)
    started = time.perf_counter()
    with path.open("wb") as out:
        pyrage.encrypt_io(reader, out, [key])
    seconds = time.perf_counter() - started
    path.unlink()
    return seconds


def _kind(name: str) -> str:
    if "/attachments/" in name:
        return "attachments"
    if name.startswith("records/"):
        return name.rsplit("/", 1)[-1]
    if name.startswith("fonts/"):
        return "fonts"
    return name


def file_kinds(path: Path, identity: str) -> dict[str, dict[str, int]]:
    """The bundle's files by kind (attachments, each per-record file, fonts, manifest...): count and bytes."""
    from intake.exports.archive import iter_archive

    kinds: dict[str, dict[str, int]] = {}
    with path.open("rb") as encrypted:
        for member in iter_archive(encrypted, [identity]):
            kind = kinds.setdefault(_kind(member.name), {"files": 0, "bytes": 0})
            kind["files"] += 1
            kind["bytes"] += member.size
    return dict(sorted(kinds.items(), key=lambda item: -item[1]["bytes"]))


# ---------------------------------------------------------------------------------------------------------------
# Profile of the build


def profile_rows(path: Path, limit: int = PROFILE_ROWS) -> list[dict[str, Any]]:
    """The functions the build spent most time in (own time), with their cumulative time and call counts."""
    import pstats

    stats = pstats.Stats(str(path))
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (calls, total_calls, own, cumulative, _callers) in table.items():
        where = filename
        for prefix in (str(PROJECT_ROOT) + "/", sys.prefix + "/"):
            where = where.removeprefix(prefix)
        if "site-packages/" in where:
            where = where.split("site-packages/", 1)[1]
        rows.append({"function": f"{where}:{line}({name})" if line else name, "calls": total_calls,
                     "primitive_calls": calls, "own_s": round(own, 3), "cumulative_s": round(cumulative, 3)})
    rows.sort(key=lambda r: r["own_s"], reverse=True)
    return rows[:limit]


def profile_by_cumulative(path: Path, names: Sequence[str]) -> list[dict[str, Any]]:
    """Cumulative time of the functions whose qualified name ends with one of `names` (the build's phases)."""
    import pstats

    stats = pstats.Stats(str(path))
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    found = []
    for wanted in names:
        module, _, function = wanted.rpartition(":")
        best = None
        for (filename, _line, name), (_calls, total_calls, _own, cumulative, _callers) in table.items():
            if name == function and filename.endswith(module):
                if best is None or cumulative > best[1]:
                    best = (total_calls, cumulative)
        if best is not None:
            found.append({"function": wanted, "calls": best[0], "cumulative_s": round(best[1], 3)})
    return found


PHASES = (
    "intake/exports/operations.py:_claim",
    "intake/core/audit/checkpoints.py:checkpoint_now",
    "intake/exports/bundle.py:write_bundle",
    "intake/exports/bundle.py:_custody_seqs",
    "intake/core/access/exports.py:read_for_export",
    "intake/exports/render.py:testimony_json",
    "intake/exports/render.py:testimony_html",
    "intake/exports/render.py:consent_json",
    "intake/exports/render.py:custody_json",
    "intake/exports/bundle.py:_events",
    "intake/exports/bundle.py:_previous_exports",
    "intake/core/access/exports.py:export_attachment_chunks",
    "intake/core/crypto/stream.py:open_stream",
    "intake/exports/archive.py:add_file",
    "intake/exports/archive.py:put",
    "intake/core/audit/service.py:proofs_for",
    "intake/exports/operations.py:_progress",
    "sqlalchemy/engine/base.py:_execute_context",
)


# ---------------------------------------------------------------------------------------------------------------
# Report


@dataclass
class Row:
    scenario: str
    value: str
    control: str
    ratio: str
    target: str
    met: bool | None
    notes: str


@dataclass
class Run:
    started_at: datetime
    machine: dict[str, Any]
    settings: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _gib(size: float) -> str:
    return f"{size / (1 << 30):.2f} GiB" if size >= 1 << 30 else f"{size / MIB:.1f} MiB"


def render_markdown(run: Run) -> str:
    figures = run.figures
    machine = run.machine
    lines = [f"# Export benchmark {run.started_at:%Y-%m-%d %H:%M:%S} UTC", "",
             "| scenario | database | value | control | ratio | target | notes |",
             "| --- | --- | ---: | ---: | ---: | --- | --- |"]
    for row in run.rows:
        verdict = "" if row.met is None else (": met" if row.met else ": MISSED")
        lines.append(f"| {row.scenario} | {run.settings['database']} | {row.value} | {row.control} | {row.ratio} | "
                     f"{row.target}{verdict} | {row.notes} |")
    lines += ["", "ratio = the build's MiB/s ÷ raw age encryption's MiB/s of the same number of bytes (the bundle's "
              "plaintext tar stream), both measured in this run. Memory: the build's process high-water mark "
              "(VmHWM), imports and application included.", ""]
    counts = figures.get("counts", {})
    fill = figures.get("fill_seconds", {})
    if counts:
        lines += ["Setup (not measured against a target):",
                  f"- {counts['records']:,} submitted records with {counts['incidents']:,} incidents and "
                  f"{counts['attachments']:,} attachments ({counts['documents']:,} PDF documents, "
                  f"{counts['photos']:,} PNG photos), {counts['attachment_bytes']:,} bytes in all; consent to "
                  f"{PURPOSE} at pseudonymous with documents and photos, so every attachment goes",
                  f"- filled in {fill.get('total', 0):.1f} s: records {fill.get('records', 0):.1f} s (bulk, sealed), "
                  f"attachments {fill.get('attachments', 0):.1f} s (store_attachment, blob storage "
                  f"`{run.settings['blob_storage']}`)",
                  f"- export requested (preview of every record, `request_export`) in "
                  f"{figures.get('request_seconds', 0):.1f} s", ""]
    build = figures.get("build")
    if build:
        lines += ["Build:",
                  f"- {build['records']:,} records, {build['files']:,} files; plaintext tar stream "
                  f"{build['plaintext_bytes']:,} bytes, encrypted bundle {build['bundle_bytes']:,} bytes",
                  f"- build {build['seconds']:.2f} s; raw age runs "
                  f"{', '.join(f'{s:.2f}' for s in build['raw_seconds'])} s "
                  f"(median {statistics.median(build['raw_seconds']):.2f} s)",
                  f"- memory: {build['before']['rss_mib']} MiB resident before the build, peak "
                  f"{build['peak_mib']} MiB (ru_maxrss {build['ru_maxrss_mib']} MiB)",
                  "- the plaintext by kind of file: " + ", ".join(
                      f"{kind} {value['files']:,} files {_gib(value['bytes'])}"
                      for kind, value in figures.get("kinds", {}).items()),
                  f"- verify_bundle: {'ok' if figures['verify']['ok'] else 'FAILED'} in "
                  f"{figures['verify']['seconds']:.2f} s ({len(figures['verify']['findings'])} findings)", ""]
    if run.profile and build:
        lines += ["## Where the build's time goes", "",
                  f"A second export of the same case, built under cProfile in a fresh interpreter "
                  f"({run.profile['seconds']:.1f} s with the profiler, against {build['seconds']:.1f} s without "
                  "it): phases by cumulative time, then the functions with the most time of their own.", "",
                  "| phase | calls | cumulative s |", "| --- | ---: | ---: |"]
        lines += [f"| `{r['function']}` | {r['calls']:,} | {r['cumulative_s']:.2f} |" for r in run.profile["phases"]]
        lines += ["", "| function | calls | own s | cumulative s |", "| --- | ---: | ---: | ---: |"]
        lines += [f"| `{r['function']}` | {r['calls']:,} | {r['own_s']:.2f} | {r['cumulative_s']:.2f} |"
                  for r in run.profile["functions"]]
        lines.append("")
    if run.notes:
        lines += ["Notes:", *(f"- {note}" for note in run.notes), ""]
    settings = run.settings
    lines += [
        f"Settings: {settings['records']:,} records, {settings['attachment_bytes']:,} bytes of attachments, "
        f"database {settings['database']}, blob storage {settings['blob_storage']}, work folder "
        f"{settings['work_dir']}, raw age median of {RAW_REPEATS}, "
        f"{'quick' if settings['quick'] else 'full'} run", "",
        "Machine:",
        f"- CPU: {machine['cpu_model']}, {machine['usable_cores']} usable of {machine['cores']} cores",
        f"- memory: {machine['memory_gib']} GiB",
        f"- load average (1 min): {settings['load_average_start']:.2f} at the start, "
        f"{settings.get('load_average_end', float('nan')):.2f} at the end",
        f"- OS: {machine['os']}",
        f"- Python {machine['python']}, pyrage {machine['pyrage']}, Flask {machine['flask']}, "
        f"SQLAlchemy {machine['sqlalchemy']}",
        f"- PostgreSQL {machine['postgresql']}, SQLite {machine['sqlite']}",
        f"- revision: {machine['git_revision']}",
    ]
    return "\n".join(lines) + "\n"


def write_results(run: Run, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = run.started_at.strftime("%Y%m%dT%H%M%SZ")
    markdown = directory / f"export-{stamp}.md"
    data = directory / f"export-{stamp}.json"
    markdown.write_text(render_markdown(run), encoding="utf-8")
    data.write_text(json.dumps({
        "started_at": run.started_at.isoformat(timespec="seconds"), "machine": run.machine,
        "settings": run.settings, "notes": run.notes, "results": [asdict(r) for r in run.rows],
        "figures": run.figures, "profile": run.profile,
    }, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return markdown, data


# ---------------------------------------------------------------------------------------------------------------
# The run


def _filesystem(path: Path) -> str:
    kind, best = "unknown", ""
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 2 and str(path.resolve()).startswith(fields[1]) and len(fields[1]) >= len(best):
                best, kind = fields[1], fields[2]
    except OSError:
        pass
    return kind


def work_base(needed: int) -> Path:
    """/dev/shm if it is a tmpfs with room for `needed` bytes, else the temporary folder: on a disk, the kernel's
    writeback of a few GiB of dirty pages would throttle both the build and the control."""
    shm = Path("/dev/shm")
    try:
        if _filesystem(shm) == "tmpfs" and shutil.disk_usage(shm).free >= needed:
            return shm
    except OSError:
        pass
    return Path(tempfile.gettempdir())


def _load_average() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def _machine(postgres_version: str | None) -> dict[str, Any]:
    from importlib import metadata

    machine = describe_machine(wrk_version="not used", postgres_version=postgres_version, project_root=PROJECT_ROOT)
    for key in ("wrk", "gunicorn"):
        machine.pop(key, None)
    machine["pyrage"] = metadata.version("pyrage")
    return machine


def bench(args: argparse.Namespace, database: str, work_dir: Path, run: Run) -> None:
    """Fill, request, build (and profile), run the control and verify; rows and figures go into `run`."""
    from intake import create_app
    from intake.core.db import db, make_engine
    from intake.core.keys import Keyring
    from intake.core.migrate import upgrade
    from intake.exports.models import Export, ExportRecord
    from intake.exports.operations import bundle_path
    from intake.exports.signing import public_key
    from intake.exports.verify import verify_bundle

    passphrase = secrets.token_urlsafe(24)
    keyring_path = work_dir / "keyring.sealed"
    keyring = Keyring.create(keyring_path, passphrase, scrypt_n=2**10)
    url = sqlite_url(work_dir) if database == SQLITE else args.postgres_url
    settings: dict[str, Any] = {
        "ENV": "production", "SECURE_COOKIES": "false", "BASE_URL": "http://127.0.0.1",
        "DATABASE_URL": url, "INSTANCE_PATH": str(work_dir / "instance"), "KEYRING_PATH": str(keyring_path),
        "LOG_LEVEL": "ERROR", "AUDIT_ORIGIN": "bench.invalid/export", "EXPORT_RUNNER": "inline",
        "EXPORT_PATH": str(work_dir / "exports"),
        "BLOB_STORAGE": args.blob_storage, "BLOB_PATH": str(work_dir / "blobs"),
        "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024, "ARGON2_PARALLELISM": 1,
    }
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    app = create_app(settings, keyring=keyring)
    try:
        progress(f"filling {args.records:,} records with {args.attachment_bytes:,} bytes of attachments "
                 f"({database})")
        with app.app_context():
            filled = populate(args.records, args.attachment_bytes, report=progress)
            db.session.remove()
        progress(f"filled in {filled.seconds['total']:.1f} s; requesting the export (preview of every record)")
        with app.app_context():
            started = time.perf_counter()
            export_id = request(filled)
            request_seconds = time.perf_counter() - started
            db.session.remove()
        progress(f"requested in {request_seconds:.1f} s; building export {export_id} in a fresh interpreter")
        built = run_build(settings, passphrase, export_id)
        if built["status"] != "ready":
            raise BenchError(f"the build ended {built['status']}, not ready")
        with app.app_context():
            export = db.session.get(Export, export_id)
            if export is None:
                raise BenchError("the export is gone")
            path = bundle_path(app.config, export)
            records = int(db.session.scalar(sa.select(sa.func.count()).where(
                ExportRecord.export_id == export_id, ExportRecord.included.is_(True))) or 0)
            signing = public_key(keyring)
            from intake.core.audit.service import verifier_key

            audit_key = verifier_key().to_string()
            db.session.remove()
        plaintext = age_plaintext_size(path)
        bundle_bytes = path.stat().st_size
        progress(f"built in {built['seconds']:.2f} s ({plaintext / MIB / built['seconds']:.1f} MiB/s), peak "
                 f"{built['peak_mib']} MiB; raw age of {plaintext:,} bytes, {RAW_REPEATS} times")
        recipient = str(pyrage.x25519.Identity.from_str(filled.identity).to_public())
        raw_seconds = [raw_age(plaintext, recipient, path.with_name("raw-control.age")) for _ in range(RAW_REPEATS)]
        progress("verifying the bundle as its recipient would")
        started = time.perf_counter()
        report = verify_bundle(path, [filled.identity], public_key=signing, audit_key=audit_key)
        verify_seconds = time.perf_counter() - started
        files = next((int(text.split(": ")[1].split()[0]) for good, text in report.findings
                      if text.startswith("decrypted with age:")), 0)
        kinds = file_kinds(path, filled.identity)
        path.unlink()
        profile: dict[str, Any] = {}
        if args.profile:
            progress("profiling: a second export of the same case, built under cProfile")
            with app.app_context():
                again_id = request(filled)
                db.session.remove()
            stats = work_dir / "build.prof"
            profiled = run_build(settings, passphrase, again_id, profile=stats)
            profile = {"seconds": profiled["seconds"], "phases": profile_by_cumulative(stats, PHASES),
                       "functions": profile_rows(stats)}
            if args.profile_output:
                shutil.copyfile(stats, args.profile_output)
    finally:
        app.extensions["intake.db"].dispose()

    raw_median = statistics.median(raw_seconds)
    build_rate = plaintext / MIB / built["seconds"]
    raw_rate = plaintext / MIB / raw_median
    ratio = build_rate / raw_rate
    peak = float(built["peak_mib"] or built["ru_maxrss_mib"])
    judged = database == POSTGRESQL or args.judge_sqlite
    run.rows += [
        Row("export build", f"{build_rate:,.1f} MiB/s", f"{raw_rate:,.1f} MiB/s", f"{ratio:.2f}",
            f"≥ {RATIO_TARGET:.2f} of raw age", (ratio >= RATIO_TARGET) if judged else None,
            f"{records:,} records, {files:,} files, {_gib(plaintext)} plaintext in {built['seconds']:.2f} s; control "
            f"= pyrage.encrypt_io of as many bytes from memory to a file in the same folder "
            f"(median of {RAW_REPEATS}: {raw_median:.2f} s)"),
        Row("export build peak memory", f"{peak:,.1f} MiB", "—", "—", f"≤ {MEMORY_TARGET_MIB:g} MiB",
            (peak <= MEMORY_TARGET_MIB) if judged else None,
            f"VmHWM of the build's fresh interpreter; {built['before']['rss_mib']} MiB resident before the build"),
        Row("verify bundle", f"{plaintext / MIB / verify_seconds:,.1f} MiB/s", "—", "—",
            "ok", report.ok, f"verify_bundle in {verify_seconds:.2f} s: "
            + ("every check passed" if report.ok else "; ".join(t for good, t in report.findings if not good))),
    ]
    run.figures.update({
        "counts": filled.counts, "fill_seconds": filled.seconds, "request_seconds": round(request_seconds, 2),
        "build": {**built, "records": records, "files": files, "plaintext_bytes": plaintext,
                  "bundle_bytes": bundle_bytes, "raw_seconds": [round(s, 3) for s in raw_seconds],
                  "build_mib_s": round(build_rate, 2), "raw_mib_s": round(raw_rate, 2), "ratio": round(ratio, 4)},
        "kinds": kinds,
        "verify": {"ok": report.ok, "seconds": round(verify_seconds, 2), "findings": [t for _, t in report.findings],
                   "warnings": report.warnings},
    })
    run.profile = profile
    if not judged:
        run.notes.append("The targets are stated for PostgreSQL: on SQLite the rows are reported, not judged "
                         "(--judge-sqlite judges them).")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=[SQLITE, POSTGRESQL],
                        help="database (default: postgresql if it answers at --postgres-url, else sqlite)")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                        help="SQLAlchemy URL of the scratch database, dropped and recreated (default: %(default)s)")
    parser.add_argument("--records", type=int, help=f"records in the case (default: {RECORDS:,}; quick: "
                        f"{QUICK_RECORDS:,})")
    parser.add_argument("--attachment-bytes", type=int, help=f"bytes of attachments in all (default: "
                        f"{ATTACHMENT_BYTES:,}; quick: {QUICK_ATTACHMENT_BYTES:,})")
    parser.add_argument("--quick", action="store_true", help="a small run: 300 records, 30 MiB of attachments")
    parser.add_argument("--blob-storage", choices=["database", "files"], default="database",
                        help="where the attachments' ciphertext is stored (default: %(default)s, the service's)")
    parser.add_argument("--profile", action="store_true",
                        help="also build a second export of the case under cProfile and report where time goes")
    parser.add_argument("--profile-output", type=Path, help="keep the profile's pstats file here")
    parser.add_argument("--judge-sqlite", action="store_true", help="judge the targets on SQLite too")
    parser.add_argument("--work-dir", type=Path,
                        help="folder for the temporary files (default: /dev/shm if it has room, else the "
                             "temporary folder)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--build-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.records is None:
        args.records = QUICK_RECORDS if args.quick else RECORDS
    if args.attachment_bytes is None:
        args.attachment_bytes = QUICK_ATTACHMENT_BYTES if args.quick else ATTACHMENT_BYTES
    if args.records < 1 or args.attachment_bytes < 1:
        parser.error("--records and --attachment-bytes must be positive")
    return args


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.build_child:
        print(CHILD_MARKER + json.dumps(build_child(json.loads(sys.stdin.read()))), flush=True)
        return EXIT_OK
    previous = signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    notes: list[str] = []
    try:
        version = postgres_server_version(args.postgres_url)
        database = args.db
        if database is None:
            database = POSTGRESQL if version is not None else SQLITE
            if version is None:
                notes.append(f"PostgreSQL is not reachable at {args.postgres_url}: measured on SQLite.")
        if database == POSTGRESQL and version is None:
            raise DatabaseError(f"PostgreSQL is not reachable at {args.postgres_url}")
        # The attachments' ciphertext (in the SQLite file or in blob files), the bundle and the control's output.
        needed = 4 * args.attachment_bytes + 256 * MIB
        base = args.work_dir or work_base(needed)
        run = Run(utc_now(), _machine(version if database == POSTGRESQL else None), {
            "database": database, "records": args.records, "attachment_bytes": args.attachment_bytes,
            "blob_storage": args.blob_storage, "quick": args.quick, "profile": args.profile,
            "load_average_start": _load_average(), "cores": usable_cores(),
        }, notes=notes)
        with tempfile.TemporaryDirectory(prefix="bench-export-", dir=base) as tmp:
            work_dir = Path(tmp)
            run.settings["work_dir"] = f"{base} ({_filesystem(work_dir)})"
            if database == POSTGRESQL:
                recreate_postgres_database(args.postgres_url)
            try:
                bench(args, database, work_dir, run)
            finally:
                if database == POSTGRESQL:
                    drop_postgres_database(args.postgres_url)
    except KeyboardInterrupt:
        progress("interrupted: scratch database dropped, temporary files removed")
        return EXIT_INTERRUPTED
    except (BenchError, DatabaseError) as error:
        progress(f"FAILED: {error}")
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)
    run.settings["load_average_end"] = _load_average()
    if _filesystem(Path(run.settings["work_dir"].split(" ")[0])) != "tmpfs":
        notes.append("The work folder is not a tmpfs: the disk's writeback can throttle the build and the control.")
    missed = [r for r in run.rows if r.met is False]
    if missed:
        notes.append("MISSED: " + ", ".join(r.scenario for r in missed))
    markdown, data = write_results(run, args.results_dir)
    print(render_markdown(run), end="")
    progress(f"results written to {markdown} and {data}")
    failed = any(r.scenario == "verify bundle" and not r.met for r in run.rows)
    if failed:
        return EXIT_FAILED
    return EXIT_MISSED if missed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
