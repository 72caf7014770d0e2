"""Making backups and checking them by restoring them; no request is needed, only an application context.

A backup is the database file (SQLite, copied online with its backup API) or a `pg_dump --format=custom` archive
(PostgreSQL, dumped from an exported snapshot), a tar of the attachment files when attachments are stored as files,
and a JSON sidecar that says what the backup holds: its SHA-256 and size, the database kind, the schema revision,
the rows in every table, and the audit log's size and latest signed checkpoint. The sidecar's counts are read from
the very snapshot that was copied, so a restored backup must match them exactly.

A backup never holds the keyring (`intake keys backup` copies that, to be kept apart).

Verification restores into a scratch database that nothing else uses (a temporary copy of the SQLite file, or a
new PostgreSQL database dropped afterwards) and checks it through an application of its own: the schema is at
head, the counts are the sidecar's, a random sample of sealed values opens with the running keyring, every
attachment file is there, and the audit log verifies against the checkpoint file kept outside the database.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from intake.core.audit.models import AuditCheckpoint, AuditEvent, format_time
from intake.core.db import db, utcnow
from intake.core.files import fsync_directory
from intake.core.keys import Keyring, KeyringError

__all__ = [
    "BackupError", "Check", "CreatedBackup", "KEYRING_NOTE", "Sample", "SampleFailed", "Verification",
    "blobs_of", "create_backup", "decrypt_sample", "describe", "read_manifest", "sidecar_of", "sign_checkpoint",
    "verify_backup",
]

FORMAT = "intake-backup/1"
SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"
SAMPLE = 20  # narratives and identities opened by a verification
ATTACHMENT_SAMPLE = 3  # attachments streamed through in full by a verification
_CHUNK = 1 << 20
_SHOWN_PROBLEMS = 5
KEYRING_NOTE = ("The backup does not hold the keyring, and without the keyring nothing encrypted in it can be read: "
                "back the keyring up apart with `intake keys backup` (onto other media, its passphrase kept "
                "elsewhere again).")


class BackupError(Exception):
    """A backup cannot be made, or cannot be checked at all; the message says why."""


def sidecar_of(backup: Path) -> Path:
    """The JSON file beside a backup that says what it holds."""
    return backup.with_name(backup.name + ".json")


def blobs_of(backup: Path) -> Path:
    """The tar of attachment files beside a backup."""
    return backup.with_name(backup.name + ".blobs.tar")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _new_file(path: Path, created: list[Path]) -> None:
    """Create `path` empty, owner-only, failing if it exists: a backup never overwrites a file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    except FileExistsError:
        raise BackupError(f"{path} exists already: a backup never overwrites a file.") from None
    except OSError as exc:
        raise BackupError(f"Cannot create {path}: {exc.strerror or exc}.") from None
    os.close(fd)
    created.append(path)


def _prepare_folder(folder: Path) -> None:
    """Create the folder backups go to, owner-only, if it does not exist yet."""
    if folder.is_dir():
        return
    try:
        folder.mkdir(parents=True, mode=0o700)
        folder.chmod(0o700)  # mkdir's mode passes through the umask
    except OSError as exc:
        raise BackupError(f"Cannot create the folder {folder}: {exc.strerror or exc}.") from None


def _default_output(folder: Path, kind: str, now: datetime) -> Path:
    suffix = "sqlite3" if kind == "sqlite" else "pgdump"
    stem = f"intake-{now:%Y%m%dT%H%M%SZ}"
    candidate = folder / f"{stem}.{suffix}"
    number = 1
    while any(p.exists() for p in (candidate, sidecar_of(candidate), blobs_of(candidate))):
        number += 1
        candidate = folder / f"{stem}-{number}.{suffix}"
    return candidate


# ---------------------------------------------------------------------------------------------------------------
# What a database holds


def describe(connection: sa.Connection) -> dict[str, Any]:
    """Rows per table, schema revision and the audit log's size and latest checkpoint, as `connection` sees them."""
    from alembic.runtime.migration import MigrationContext

    quote = connection.dialect.identifier_preparer.quote
    tables: dict[str, int] = {}
    for name in sorted(sa.inspect(connection).get_table_names()):
        if name == "alembic_version":
            continue
        tables[name] = int(connection.execute(sa.text(f"SELECT count(*) FROM {quote(name)}")).scalar_one())  # noqa: S608 - a name from the catalogue, quoted
    revisions = sorted(MigrationContext.configure(connection).get_current_heads())
    audit: dict[str, Any] = {"events": 0, "last_seq": 0, "checkpoint": None}
    if "audit_events" in tables:
        events, last_seq = connection.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.max(AuditEvent.seq), 0))).one()
        audit.update(events=int(events), last_seq=int(last_seq))
    if "audit_checkpoints" in tables:
        row = connection.execute(
            sa.select(AuditCheckpoint.id, AuditCheckpoint.created_at, AuditCheckpoint.tree_size,
                      AuditCheckpoint.root_hash, AuditCheckpoint.note)
            .order_by(AuditCheckpoint.id.desc()).limit(1)).first()
        if row is not None:
            audit["checkpoint"] = {"id": int(row[0]), "created_at": format_time(row[1]), "tree_size": int(row[2]),
                                   "root_hash": bytes(row[3]).hex(), "note": str(row[4])}
    return {"tables": tables, "revisions": revisions, "audit": audit}


# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL client tools


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} was not found on PATH: install the PostgreSQL client tools (`postgresql-client`, "
                          "of the server's major version or newer).")
    return found


def _conninfo_value(value: Any) -> str:
    text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo(url: URL) -> str:
    """A libpq connection string for `url`'s host, port, user, database and options, never its password."""
    params: dict[str, Any] = {"host": url.host, "port": url.port, "user": url.username, "dbname": url.database}
    for key, value in url.query.items():
        if key == "password":
            continue
        params[key] = value[-1] if isinstance(value, tuple) else value
    return " ".join(f"{key}={_conninfo_value(value)}" for key, value in params.items() if value not in (None, ""))


def _password(url: URL) -> str | None:
    if url.password:
        return str(url.password)
    value = url.query.get("password")
    if isinstance(value, tuple):
        value = value[-1] if value else None
    return str(value) if value else None


def _run(command: list[str], url: URL, *, what: str) -> None:
    """Run a PostgreSQL client tool; the password goes in its environment (PGPASSWORD), never on its command line."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("INTAKE_KEYRING_PASSPHRASE")}
    password = _password(url)
    if password:
        env["PGPASSWORD"] = password
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603 - a fixed tool, arguments as a list
    except OSError as exc:
        raise BackupError(f"{what} could not be run: {exc.strerror or exc}.") from None
    if done.returncode != 0:
        said = " ".join(line.strip() for line in done.stderr.strip().splitlines()[-3:])[:600]
        raise BackupError(f"{what} failed (exit status {done.returncode}): {said or 'no message'}")


# ---------------------------------------------------------------------------------------------------------------
# Creating a backup


@dataclass(frozen=True)
class CreatedBackup:
    path: Path
    sidecar: Path
    blobs: Path | None
    manifest: dict[str, Any]
    seconds: float


def sign_checkpoint() -> AuditCheckpoint | None:
    """Sign a checkpoint over the audit log as it is (None if no event is new), so that the checkpoint file outside
    the database vouches for every event the backup is about to copy. The caller commits; `CheckpointRefused` when
    the log does not extend the last signed checkpoint."""
    from intake.core.audit import checkpoints
    from intake.core.crypto import current_keyring

    config = current_app.config
    return checkpoints.checkpoint_now(db.session(), keyring=current_keyring(), origin=config["AUDIT_ORIGIN"],
                                      path=checkpoints.checkpoint_file(config))


def _sqlite_file(url: URL) -> Path:
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError("The configured SQLite database is not a file this command can copy.")
    path = Path(database)
    if not path.is_file():
        raise BackupError(f"The SQLite database {path} does not exist.")
    return path


def _copy_sqlite(source: Path, target: Path) -> None:
    """An online, consistent copy through SQLite's backup API (writers carry on meanwhile, in WAL mode); the copy
    is a single self-contained file (rollback journal, not WAL)."""
    try:
        src = sqlite3.connect(source, timeout=30)
        try:
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)
                dst.execute("PRAGMA journal_mode=DELETE")
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise BackupError(f"Copying the SQLite database failed: {exc}.") from None
    _fsync(target)


def _describe_sqlite_file(path: Path) -> dict[str, Any]:
    location = f"file:{urllib.parse.quote(str(path.absolute()))}?mode=ro"
    engine = sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(location, uri=True), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return describe(connection)
    finally:
        engine.dispose()


def _dump_postgres(url: URL, target: Path) -> dict[str, Any]:
    """`pg_dump --format=custom` of an exported snapshot, described in the same snapshot."""
    pg_dump = _tool("pg_dump")
    with db.engine.connect() as connection:
        connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            snapshot = str(connection.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one())
            facts = describe(connection)
            # The transaction stays open while pg_dump reads: the exported snapshot lives as long as it does.
            _run([pg_dump, "--format=custom", "--no-password", f"--snapshot={snapshot}", f"--file={target}",
                  f"--dbname={conninfo(url)}"], url, what="pg_dump")
    _fsync(target)
    return facts


def _blob_files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(path for path in root.rglob("*") if path.is_file())


def _tar_blobs(root: Path, target: Path, created: list[Path]) -> dict[str, Any] | None:
    """A tar of the attachment files (encrypted, under generated names), or None when there is none."""
    files = _blob_files(root)
    if not files:
        return None
    _new_file(target, created)
    count = 0
    with target.open("r+b") as handle, tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            try:
                with path.open("rb") as source:
                    info = tar.gettarinfo(arcname=path.relative_to(root).as_posix(), fileobj=source)
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    info.mode = 0o600
                    tar.addfile(info, source)
            except FileNotFoundError:  # shredded since the listing: its record is a tombstone now
                continue
            count += 1
    _fsync(target)
    return {"file": target.name, "files": count, "size": target.stat().st_size, "sha256": sha256_of(target)}


def _write_sidecar(path: Path, manifest: dict[str, Any], created: list[Path]) -> None:
    _new_file(path, created)
    with path.open("w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def create_backup(output: Path | None = None) -> CreatedBackup:
    """Back up the configured database (and attachment files, if any) to `output`, by default
    `<instance>/backups/intake-<UTC time>.sqlite3` or `.pgdump`, with its sidecar. Nothing existing is overwritten;
    on failure, nothing is left behind."""
    started = time.perf_counter()
    config = current_app.config
    url = make_url(config["DATABASE_URL"])
    kind = url.get_backend_name()
    if output is None:
        folder = Path(config["INSTANCE_PATH"]) / "backups"
        _prepare_folder(folder)
        path = _default_output(folder, kind, utcnow())
    else:
        path = output.expanduser().absolute()
        _prepare_folder(path.parent)
    for taken in (path, sidecar_of(path), blobs_of(path)):
        if taken.exists():
            raise BackupError(f"{taken} exists already: a backup never overwrites a file.")
    created: list[Path] = []
    try:
        _new_file(path, created)
        if kind == "sqlite":
            _copy_sqlite(_sqlite_file(url), path)
            facts = _describe_sqlite_file(path)
        else:
            facts = _dump_postgres(url, path)
        made_at = utcnow()
        blobs = _tar_blobs(Path(config["BLOB_PATH"]), blobs_of(path), created)
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "created_at": format_time(made_at),
            "database": kind,
            "file": path.name,
            "size": path.stat().st_size,
            "sha256": sha256_of(path),
            "alembic_revision": facts["revisions"],
            "tables": facts["tables"],
            "audit": facts["audit"],
            "blobs": blobs,
            "keyring": "not included: back it up apart with `intake keys backup`",
        }
        _write_sidecar(sidecar_of(path), manifest, created)
        fsync_directory(path.parent)
    except BaseException:
        for leftover in created:
            leftover.unlink(missing_ok=True)
        raise
    return CreatedBackup(path, sidecar_of(path), blobs_of(path) if blobs else None, manifest,
                         time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------------------------
# Verifying a backup


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str


@dataclass
class Verification:
    """What `verify_backup` found: one line per check, notes that are not failures, and how long it took."""

    backup: Path
    database: str
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    @property
    def failed(self) -> list[str]:
        return [check.name for check in self.checks if not check.ok]

    def add(self, name: str, ok: bool, message: str) -> None:
        self.checks.append(Check(name, ok, message))


def read_manifest(backup: Path) -> dict[str, Any]:
    """The sidecar of `backup`, checked for the fields verification needs."""
    path = sidecar_of(backup)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{path} is missing: it is written beside every backup by `intake backup create`, and "
                          "verification compares the restored database with it.") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path} cannot be read as a backup's sidecar: {exc}.") from None
    required = {"format": str, "database": str, "size": int, "sha256": str, "tables": dict, "audit": dict,
                "created_at": str}
    if not isinstance(manifest, dict) or any(not isinstance(manifest.get(k), t) for k, t in required.items()) \
            or manifest["format"] != FORMAT or not isinstance(manifest["audit"].get("events"), int):
        raise BackupError(f"{path} is not the sidecar of a backup this release made ({FORMAT}).")
    return manifest


def _kind_of(backup: Path) -> str:
    with backup.open("rb") as handle:
        head = handle.read(len(SQLITE_MAGIC))
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PGDUMP_MAGIC):
        return "postgresql"
    raise BackupError(f"{backup} is neither a SQLite database nor a pg_dump custom-format archive.")


def _check_files(result: Verification, backup: Path, manifest: dict[str, Any]) -> None:
    size, digest = backup.stat().st_size, sha256_of(backup)
    problems = []
    if (size, digest) != (manifest["size"], manifest["sha256"]):
        problems.append(f"{backup.name} is not the file the sidecar describes (its size or SHA-256 differs): it "
                        "was changed or damaged since it was made")
    blobs = manifest.get("blobs")
    if blobs:
        tar = blobs_of(backup)
        if not tar.is_file():
            problems.append(f"{tar.name}, the attachment files, is missing")
        elif (tar.stat().st_size, sha256_of(tar)) != (blobs.get("size"), blobs.get("sha256")):
            problems.append(f"{tar.name} is not the file the sidecar describes (its size or SHA-256 differs)")
    if problems:
        result.add("files", False, "; ".join(problems) + ".")
    else:
        held = f" and {blobs['files']} attachment file(s)" if blobs else ""
        result.add("files", True, f"{backup.name}{held} match the sidecar's size and SHA-256")


def _extract_blobs(backup: Path, manifest: dict[str, Any], target: Path) -> None:
    if not manifest.get("blobs") or not blobs_of(backup).is_file():
        return
    try:
        with tarfile.open(blobs_of(backup), mode="r:") as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(f"{blobs_of(backup).name} cannot be unpacked: {exc}.") from None


def _restore_sqlite(backup: Path, scratch: Path) -> str:
    copy = scratch / "restored.sqlite3"
    shutil.copyfile(backup, copy)
    copy.chmod(0o600)
    return f"sqlite:///{copy}"


@contextmanager
def _restored_postgres(backup: Path, live: URL) -> Iterator[str]:
    """A new database on the configured server, restored from `backup` with pg_restore, dropped afterwards."""
    pg_restore = _tool("pg_restore")
    name = f"intake_verify_{secrets.token_hex(6)}"
    admin = sa.create_engine(live, isolation_level="AUTOCOMMIT", poolclass=NullPool, hide_parameters=True)
    try:
        try:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0')
        except sa.exc.SQLAlchemyError as exc:
            raise BackupError(f"Cannot create a scratch database on the server to restore into "
                              f"({exc.__class__.__name__}): the database role needs CREATEDB.") from None
        failed = True
        try:
            target = live.set(database=name)
            _run([pg_restore, "--no-owner", "--exit-on-error", "--no-password", f"--dbname={conninfo(target)}",
                  str(backup)], target, what="pg_restore")
            yield target.render_as_string(hide_password=False)
            failed = False
        finally:
            try:
                with admin.connect() as connection:
                    connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except sa.exc.SQLAlchemyError as exc:
                if not failed:  # else the failure that brought us here is the one to report
                    raise BackupError(f"The scratch database {name} could not be dropped "
                                      f"({exc.__class__.__name__}): drop it by hand.") from None
    finally:
        admin.dispose()


def _scratch_app(live: Flask, database_url: str, scratch: Path, blob_path: Path, keyring: Keyring) -> Flask:
    """An application over the restored copy: the running one's settings and keyring, its own database, blob folder
    and checkpoint file, so that nothing it does can reach the live database or the live checkpoint file."""
    from config.settings import SETTINGS
    from intake import StartupError, create_app

    overrides: dict[str, Any] = {setting.name: live.config[setting.name] for setting in SETTINGS}
    overrides["SECURE_COOKIES"] = "true" if live.config["SECURE_COOKIES"] else "false"
    overrides.update(
        DATABASE_URL=database_url, INSTANCE_PATH=str(scratch), BLOB_PATH=str(blob_path), REDIS_URL="",
        EXPORT_PATH=str(scratch / "exports"), AUDIT_CHECKPOINT_FILE=str(scratch / "audit-checkpoints.jsonl"),
        AUDIT_CHECKPOINT_EVERY=1_000_000, AUDIT_CHECKPOINT_MINUTES=10_080, KEYRING_PASSPHRASE="",
    )
    # Its configuration warnings would be about the scratch folders, not about the service: start it quietly.
    overrides["LOG_LEVEL"] = "ERROR"
    log = logging.getLogger("intake")
    level = log.level
    try:
        return create_app(overrides, keyring=keyring)
    except StartupError as exc:
        raise BackupError(f"Cannot open the restored copy: {exc}") from None
    finally:
        log.setLevel(level)


def _check_revision(result: Verification) -> None:
    from intake.core import migrate

    current, heads = migrate.current_revisions(db.engine), migrate.head_revisions()
    if set(current) == set(heads):
        result.add("revision", True, f"the schema is at head ({', '.join(heads)})")
    else:
        result.add("revision", False, f"the schema is at {', '.join(current) or 'no revision'}, this release's at "
                   f"{', '.join(heads)}: a backup of another release (restore it, then run `intake db upgrade`)")


def _check_counts(result: Verification, manifest: dict[str, Any]) -> None:
    with db.engine.connect() as connection:
        found = describe(connection)["tables"]
    recorded: dict[str, int] = manifest["tables"]
    if found == recorded:
        result.add("counts", True, f"{len(found)} tables, {sum(found.values()):,} rows, as the sidecar records")
        return
    differing = [f"{name} {recorded.get(name, 'absent')} → {found.get(name, 'absent')}"
                 for name in sorted(set(found) | set(recorded)) if found.get(name) != recorded.get(name)]
    result.add("counts", False, f"{len(differing)} table(s) differ from the sidecar (recorded → restored): "
               + ", ".join(differing[:10]) + (" …" if len(differing) > 10 else ""))


@dataclass
class Sample:
    narratives: int = 0
    identities: int = 0
    attachments: int = 0
    attachment_bytes: int = 0


class SampleFailed(Exception):
    """A sampled value did not open: `key` is True when its data key did not (the keyring), False when the sealed
    value itself did not (the backup was altered or damaged)."""

    def __init__(self, message: str, *, key: bool) -> None:
        super().__init__(message)
        self.key = key


def decrypt_sample(limit: int = SAMPLE, attachment_limit: int = ATTACHMENT_SAMPLE) -> Sample:
    """Open up to `limit` random narratives and identities, and stream up to `attachment_limit` attachments
    through, of the database in the current application context, with its keyring; count them and drop the
    plaintext at once. This proves that the keyring opens a restored backup's data keys; nothing is shown."""
    from intake.core.crypto.datakeys import open_data_key
    from intake.core.crypto.envelope import Unreadable
    from intake.core.crypto.fields import Tombstone
    from intake.core.crypto.models import DataKey
    from intake.identities.models import Person
    from intake.identities.operations import read_identity
    from intake.testimonies.models import Attachment
    from intake.testimonies.models import Testimony as StoredTestimony
    from intake.testimonies.operations import attachment_content, read_narrative

    def not_shredded(query: Any, key_column: Any) -> Any:
        return (query.join(DataKey, key_column == DataKey.id).where(DataKey.destroyed_at.is_(None))
                .order_by(sa.func.random()))

    testimonies = db.session.scalars(not_shredded(sa.select(StoredTestimony), StoredTestimony.data_key_id)
                                     .where(StoredTestimony.narrative.is_not(None)).limit(limit)).all()
    persons = db.session.scalars(not_shredded(sa.select(Person), Person.data_key_id)
                                 .where(Person.identity.is_not(None)).limit(limit)).all()
    attachments = db.session.scalars(not_shredded(
        sa.select(Attachment).join(StoredTestimony, Attachment.testimony_id == StoredTestimony.id),
        StoredTestimony.data_key_id).limit(attachment_limit)).all()
    items: list[tuple[str, Any, Any]] = (
        [(f"the narrative of testimony {t.id}", t, t.data_key) for t in testimonies]
        + [(f"the identity of person {p.id}", p, p.data_key) for p in persons]
        + [(f"attachment {a.id}", a, a.testimony.data_key) for a in attachments])
    sample = Sample()
    config = current_app.config
    for label, row, data_key in items:
        try:
            open_data_key(data_key)
        except (Unreadable, KeyringError) as exc:
            raise SampleFailed(f"{label}: {exc}", key=True) from None
        try:
            if isinstance(row, StoredTestimony):
                opened = isinstance(read_narrative(row), str)
                sample.narratives += opened
            elif isinstance(row, Person):
                opened = isinstance(read_identity(row), dict)
                sample.identities += opened
            else:
                content = attachment_content(row, config)
                opened = not isinstance(content, Tombstone)
                if not isinstance(content, Tombstone):
                    sample.attachment_bytes += sum(len(piece) for piece in content)
                    sample.attachments += 1
        except (Unreadable, ValueError, TypeError, OSError) as exc:
            raise SampleFailed(f"{label} does not open ({exc.__class__.__name__}): the backup was altered or "
                               "damaged", key=False) from None
        if not opened:
            raise SampleFailed(f"{label} did not open to a value", key=False)
    return sample


def _check_keys(result: Verification, keyring: Keyring, limit: int) -> None:
    from intake.core.crypto.models import DataKey

    used = db.session.scalars(sa.select(DataKey.kek_version).where(DataKey.kek_version.is_not(None))
                              .distinct()).all()
    lacking = sorted(v for v in used if v is not None and v not in keyring.kek_versions)
    if lacking:
        result.add("keys", False, f"the backup's data keys are wrapped under KEK version(s) "
                   f"{', '.join(map(str, lacking))}, which the running keyring does not hold: verify (and restore) "
                   "with the keyring in use when the backup was made, e.g. its `intake keys backup` copy")
        return
    if not limit:
        result.add("keys", True, "no sample was asked for (--sample 0): the keyring holds every KEK version in use")
        return
    try:
        sample = decrypt_sample(limit, min(limit, ATTACHMENT_SAMPLE))
    except SampleFailed as exc:
        if exc.key:
            result.add("keys", False, f"the running keyring does not open the backup's data keys ({exc}): it is "
                       "not the keyring the backup was made with; verify (and restore) with that one, e.g. its "
                       "`intake keys backup` copy")
        else:
            result.add("keys", False, str(exc))
        return
    opened = sample.narratives + sample.identities + sample.attachments
    if not opened:
        result.add("keys", True, "nothing to decrypt: the backup holds no narrative or identity that is not "
                   "shredded")
        return
    result.add("keys", True, f"the running keyring opened a random sample: {sample.narratives} narrative(s), "
               f"{sample.identities} identity document(s), {sample.attachments} attachment(s) "
               f"({sample.attachment_bytes:,} bytes)")


def _check_attachment_files(result: Verification, blob_path: Path) -> None:
    """Every attachment stored as a file, of a testimony not shredded, must be in the backup's tar, whole."""
    from intake.core.crypto.blobs import FileBlobStore
    from intake.core.crypto.models import DataKey
    from intake.testimonies.models import Attachment
    from intake.testimonies.models import Testimony as StoredTestimony

    rows = db.session.scalars(
        sa.select(Attachment).join(StoredTestimony, Attachment.testimony_id == StoredTestimony.id)
        .join(DataKey, StoredTestimony.data_key_id == DataKey.id)
        .where(Attachment.storage == "files", DataKey.destroyed_at.is_(None))).all()
    if not rows:
        return
    store = FileBlobStore(blob_path)
    missing = []
    for attachment in rows:
        try:
            size = store.path_of(attachment).stat().st_size
        except (OSError, ValueError):
            size = None
        if size != attachment.stored_bytes:
            missing.append(attachment.id)
    if missing:
        result.add("attachments", False, f"{len(missing)} of {len(rows)} attachment file(s) are missing from the "
                   f"backup or incomplete (attachment id(s) {', '.join(map(str, missing[:10]))}"
                   f"{' …' if len(missing) > 10 else ''})")
    else:
        result.add("attachments", True, f"all {len(rows)} attachment file(s) are in the backup, whole")


def _entry_size(entry: dict[str, Any]) -> int | None:
    """The tree size a checkpoint file entry's note states (not yet verified), or None if it states none."""
    from intake.core.audit.note import Checkpoint, parse_note

    if entry.get("malformed"):
        return None
    try:
        return Checkpoint.from_text(parse_note(entry["note"])[0]).size
    except (ValueError, KeyError, TypeError):
        return None


def _check_audit(result: Verification, manifest: dict[str, Any], checkpoint_file: Path, keyring: Keyring) -> None:
    """The restored log verifies against every checkpoint of the file that it should hold: those over no more
    events than the backup recorded. Later checkpoints were signed after the backup was made and are only noted."""
    from intake.core.audit import checkpoints as cp
    from intake.core.audit.verify import verify_log
    from intake.core.db import write_intent

    recorded = manifest["audit"]
    origin = current_app.config["AUDIT_ORIGIN"]
    if not checkpoint_file.is_file():
        result.notes.append(f"the checkpoint file {checkpoint_file} does not exist (give a copy with "
                            "--checkpoint-file)")
    entries = cp.read_file(checkpoint_file)
    compared, newer = [], 0
    for entry in entries:
        size = _entry_size(entry)
        if size is not None and size > recorded["events"]:
            newer += 1
        else:
            compared.append(entry)
    token = write_intent.set(False)
    connection = db.engine.connect()
    try:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            report = verify_log(connection, verifiers=[cp.verifier(keyring, origin)], origin=origin,
                                file_entries=compared, file_name=checkpoint_file.name)
            events = int(connection.execute(sa.select(sa.func.count()).select_from(AuditEvent)).scalar_one())
            signed = recorded.get("checkpoint")
            kept = True
            if signed:
                kept = bool(connection.execute(sa.select(sa.func.count()).select_from(AuditCheckpoint).where(
                    AuditCheckpoint.id == signed["id"], AuditCheckpoint.tree_size == signed["tree_size"],
                    AuditCheckpoint.root_hash == bytes.fromhex(signed["root_hash"]))).scalar_one())
    finally:
        write_intent.reset(token)
        connection.close()
    problems = [f"[{p.code}] {p.message}" for p in report.problems[:_SHOWN_PROBLEMS]]
    if report.total_problems > _SHOWN_PROBLEMS:
        problems.append(f"… and {report.total_problems - _SHOWN_PROBLEMS} more")
    if events != recorded["events"]:
        problems.insert(0, f"the log holds {events} events, the sidecar recorded {recorded['events']}")
    if signed and not kept:
        problems.insert(0, f"the backup lacks checkpoint {signed['id']}, the latest when it was made")
    result.notes.extend(report.warnings)
    if newer:
        result.notes.append(f"{newer} checkpoint(s) of {checkpoint_file.name} cover events made after the backup; "
                            "they were not compared")
    if problems:
        first = report.first_bad_seq
        result.add("audit", False, "the audit log does not verify"
                   + (f" (first bad event {first})" if first is not None else "") + ": " + "; ".join(problems))
    else:
        result.add("audit", True, f"{report.events} events and {report.checkpoints} checkpoint(s) verify, against "
                   f"{len(compared)} checkpoint(s) of {checkpoint_file.name}")


def verify_backup(backup: Path, *, checkpoint_file: Path | None = None, sample: int = SAMPLE) -> Verification:
    """Restore `backup` into a scratch database and check it (see the module's description). The live database
    is never used: the restored copy is opened by an application of its own, with the running keyring.
    `checkpoint_file` defaults to the configured one."""
    from intake.core.audit import checkpoints as cp
    from intake.core.crypto import current_keyring

    started = time.perf_counter()
    live: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    keyring = current_keyring()
    manifest = read_manifest(backup)
    kind = _kind_of(backup)
    if kind != manifest["database"]:
        raise BackupError(f"{backup.name} is a {kind} backup but its sidecar says {manifest['database']}.")
    live_url = make_url(live.config["DATABASE_URL"])
    if kind == "postgresql" and live_url.get_backend_name() != "postgresql":
        raise BackupError("A PostgreSQL backup is restored on a PostgreSQL server to be checked: run this with "
                          "INTAKE_DATABASE_URL naming the server (a scratch database is created there and dropped).")
    path = checkpoint_file or cp.checkpoint_file(live.config)
    result = Verification(backup, kind)
    _check_files(result, backup, manifest)
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="intake-verify-")))
        blob_path = scratch / "blobs"
        blob_path.mkdir(mode=0o700)
        try:
            _extract_blobs(backup, manifest, blob_path)
            if kind == "sqlite":
                url = _restore_sqlite(backup, scratch)
            else:
                url = stack.enter_context(_restored_postgres(backup, live_url))
            app = _scratch_app(live, url, scratch, blob_path, keyring)
        except BackupError as exc:
            result.add("restore", False, str(exc))
            result.seconds = time.perf_counter() - started
            return result
        stack.callback(app.extensions["intake.db"].dispose)
        result.add("restore", True, "restored into a temporary copy" if kind == "sqlite"
                   else "restored into a scratch database on the server (dropped afterwards)")
        with app.app_context():
            try:
                _check_revision(result)
                _check_counts(result, manifest)
                _check_keys(result, keyring, sample)
                _check_attachment_files(result, blob_path)
                _check_audit(result, manifest, path, keyring)
            except sa.exc.SQLAlchemyError as exc:
                result.add("database", False, f"the restored copy cannot be read as this release's schema "
                           f"({exc.__class__.__name__})")
    result.seconds = time.perf_counter() - started
    return result
