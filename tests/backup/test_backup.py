"""`intake backup create` and `intake backup verify`: a full round trip on both databases, and the backups that
verification must refuse (an audit event changed, the log cut short, another keyring, no sidecar)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from intake import create_app
from intake.backup.cli import backup_group
from intake.backup.operations import blobs_of, conninfo, sha256_of, sidecar_of
from intake.core.db import db
from intake.core.keys import Keyring
from tests.conftest import TEST_SETTINGS, missing
from tests.interviews.factories import full_interview, planted_interview

TOOLS = ("pg_dump", "pg_restore")


@pytest.fixture
def app(make_app: Callable[..., Flask], database_url: str) -> Flask:
    """Attachments stored as files, so that backups carry the tar of them too."""
    if database_url.startswith("postgresql"):
        absent = [tool for tool in TOOLS if shutil.which(tool) is None]
        if absent:
            missing("postgresql", f"{' and '.join(absent)} not on PATH")
    built = make_app(BLOB_STORAGE="files")
    built.cli.add_command(backup_group)
    return built


def run(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["backup", *args])


@pytest.fixture
def planted(app: Flask, create_user: Callable[..., Any]) -> Flask:
    """Three interviews (one with an attachment file), the third shredded."""
    from intake.testimonies import operations as testimony_ops
    from intake.testimonies.models import Testimony as StoredTestimony

    user = create_user("amira", roles=("interviewer",))
    planted_interview(app, user)
    full_interview(app, user, key="f" * 24)
    shredded = full_interview(app, user, key="s" * 24)
    with app.app_context():
        testimony = db.session.get(StoredTestimony, shredded)
        assert testimony is not None
        testimony_ops.shred_testimony(testimony, reason="survivor asked for erasure", actor=None, config=app.config)
        db.session.commit()
    return app


def create(app: Flask, output: Path) -> Path:
    result = run(app, "create", "--output", str(output))
    assert result.exit_code == 0, result.output
    return output


def rewrite_sidecar(backup: Path, **changes: Any) -> None:
    """Make the sidecar describe the backup file as it now is, as someone covering a change would."""
    manifest = json.loads(sidecar_of(backup).read_text(encoding="utf-8"))
    manifest.update(size=backup.stat().st_size, sha256=sha256_of(backup), **changes)
    sidecar_of(backup).write_text(json.dumps(manifest), encoding="utf-8")


def lines(output: str, prefix: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(prefix)]


def scratch_databases(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(
                "SELECT datname FROM pg_database WHERE datname LIKE 'intake_verify_%'")).scalars())
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------------------------
# Round trip


def test_a_backup_restores_and_verifies(planted: Flask, database_url: str) -> None:
    app = planted
    checkpoint_file = Path(app.config["AUDIT_CHECKPOINT_FILE"])
    made = run(app, "create")
    assert made.exit_code == 0, made.output
    assert "does not hold the keyring" in made.output and "intake keys backup" in made.output
    folder = Path(app.config["INSTANCE_PATH"]) / "backups"
    backups = [p for p in folder.iterdir() if p.suffix in (".sqlite3", ".pgdump")]
    assert len(backups) == 1
    backup = backups[0]
    assert backup.suffix == (".pgdump" if database_url.startswith("postgresql") else ".sqlite3")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for written in (backup, sidecar_of(backup), blobs_of(backup)):
        assert stat.S_IMODE(written.stat().st_mode) == 0o600, written
    manifest = json.loads(sidecar_of(backup).read_text(encoding="utf-8"))
    assert manifest["database"] == ("postgresql" if database_url.startswith("postgresql") else "sqlite")
    assert manifest["sha256"] == sha256_of(backup)
    assert manifest["tables"]["testimonies"] == 3 and manifest["tables"]["attachments"] == 1
    assert manifest["blobs"]["files"] == 1
    # A checkpoint was signed just before the copy, so the file outside the database vouches for every event.
    assert manifest["audit"]["checkpoint"]["tree_size"] == manifest["audit"]["events"]
    assert "Signed audit checkpoint" in made.output

    before = checkpoint_file.read_bytes()
    verified = run(app, "verify", str(backup))
    assert verified.exit_code == 0, verified.output
    assert not lines(verified.output, "FAILED")
    for check in ("files", "restore", "revision", "counts", "keys", "attachments", "audit"):
        assert lines(verified.output, f"ok       {check}:"), (check, verified.output)
    keys = lines(verified.output, "ok       keys:")[0]
    assert "2 narrative(s)" in keys and "1 attachment(s)" in keys  # the shredded testimony is not sampled
    assert "OK:" in verified.output
    # Nothing reached the live checkpoint file, and no scratch database is left on the server.
    assert checkpoint_file.read_bytes() == before
    if database_url.startswith("postgresql"):
        assert scratch_databases(database_url) == []


def test_an_older_backup_still_verifies_once_the_log_has_moved_on(planted: Flask, create_user: Callable[..., Any],
                                                                   tmp_path: Path) -> None:
    backup = create(planted, tmp_path / "backups" / "before.db")
    later = create_user("narine", roles=("interviewer",))
    full_interview(planted, later, key="l" * 24)
    assert planted.test_cli_runner().invoke(args=["audit", "checkpoint"]).exit_code == 0

    verified = run(planted, "verify", str(backup))
    assert verified.exit_code == 0, verified.output
    assert "cover events made after the backup" in verified.output


def test_a_backup_never_overwrites_a_file(planted: Flask, tmp_path: Path) -> None:
    target = tmp_path / "taken.db"
    target.write_bytes(b"something else")
    result = run(planted, "create", "--output", str(target))
    assert result.exit_code == 1
    assert "exists already" in result.output
    assert target.read_bytes() == b"something else"


# ---------------------------------------------------------------------------------------------------------------
# Backups that must be refused


def tamper(backup: Path, database_url: str, statements: list[str]) -> None:
    """Edit the backup's audit tables behind the guards, as its holder could: SQLite in place (triggers dropped);
    PostgreSQL restored into a database of its own, edited with triggers off, and dumped over the backup again."""
    if database_url.startswith("postgresql"):
        tamper_postgres(backup, database_url, statements)
        return
    connection = sqlite3.connect(backup)
    try:
        for name in ("audit_events_refuse_update", "audit_events_refuse_delete", "audit_checkpoints_refuse_delete"):
            connection.execute(f"DROP TRIGGER IF EXISTS {name}")
        for statement in statements:
            connection.execute(statement)
        connection.commit()
    finally:
        connection.close()


def tamper_postgres(backup: Path, database_url: str, statements: list[str]) -> None:
    url = sa.engine.make_url(database_url)
    target = url.set(database=f"{url.database}_tamper")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
            connection.exec_driver_sql(f'CREATE DATABASE "{target.database}" TEMPLATE template0')
        try:
            subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={conninfo(target)}",  # noqa: S603, S607
                            str(backup)], check=True, capture_output=True)
            engine = sa.create_engine(target)
            with engine.begin() as connection:
                connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
                for statement in statements:
                    connection.exec_driver_sql(statement)
            engine.dispose()
            backup.unlink()
            subprocess.run(["pg_dump", "--format=custom", f"--file={backup}", f"--dbname={conninfo(target)}"],  # noqa: S603, S607
                           check=True, capture_output=True)
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
    finally:
        admin.dispose()


def test_a_backup_with_a_changed_audit_event_is_refused(planted: Flask, database_url: str, tmp_path: Path) -> None:
    backup = create(planted, tmp_path / "backup.db")
    tamper(backup, database_url, ["UPDATE audit_events SET details = '{\"n\":1}' WHERE seq = 2"])
    rewrite_sidecar(backup)

    result = run(planted, "verify", str(backup))
    assert result.exit_code == 1, result.output
    assert lines(result.output, "ok       files:"), result.output  # the sidecar was made to match: only the log
    audit = lines(result.output, "FAILED   audit:")
    assert audit and "[changed]" in audit[0] and "first bad event 2" in audit[0], result.output
    assert "did not verify (audit)" in result.output


def test_a_backup_whose_log_was_cut_short_is_refused(planted: Flask, database_url: str, tmp_path: Path) -> None:
    backup = create(planted, tmp_path / "backup.db")
    events = json.loads(sidecar_of(backup).read_text(encoding="utf-8"))["audit"]["events"]
    tamper(backup, database_url, [f"DELETE FROM audit_events WHERE seq > {events - 3}",  # noqa: S608 - a number
                                  "DELETE FROM audit_checkpoints WHERE id = (SELECT max(id) FROM audit_checkpoints)"])
    rewrite_sidecar(backup)

    result = run(planted, "verify", str(backup))
    assert result.exit_code == 1, result.output
    audit = lines(result.output, "FAILED   audit:")
    assert audit and "[truncated]" in audit[0] and f"the sidecar recorded {events}" in audit[0], result.output
    assert lines(result.output, "FAILED   counts:") and "audit_events" in lines(result.output, "FAILED   counts:")[0]


@pytest.fixture
def stranger(planted: Flask, database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The same service, started with another keyring (none of the backup's KEKs)."""
    other = Keyring.create(tmp_path / "other.sealed", "another keyring's passphrase", scrypt_n=2**10)
    app = create_app({**TEST_SETTINGS, "INSTANCE_PATH": planted.config["INSTANCE_PATH"],
                      "DATABASE_URL": database_url, "KEYRING_PATH": str(tmp_path / "other.sealed"),
                      "BLOB_STORAGE": "files"}, keyring=other)
    app.cli.add_command(backup_group)
    yield app
    app.extensions["intake.db"].dispose()


def test_a_backup_verified_with_another_keyring_fails_the_key_check(planted: Flask, stranger: Flask,
                                                                    tmp_path: Path) -> None:
    backup = create(planted, tmp_path / "backup.db")
    result = run(stranger, "verify", str(backup))
    assert result.exit_code == 1, result.output
    keys = lines(result.output, "FAILED   keys:")
    assert keys, result.output
    assert "the running keyring does not open the backup's data keys" in keys[0]
    assert "does not unwrap under KEK version 1" in keys[0]
    assert "intake keys backup" in keys[0]


def test_a_backup_without_its_sidecar_is_refused(planted: Flask, tmp_path: Path) -> None:
    backup = create(planted, tmp_path / "backup.db")
    sidecar_of(backup).unlink()
    result = run(planted, "verify", str(backup))
    assert result.exit_code == 1
    assert "backup.db.json is missing" in result.output


def test_without_pg_dump_the_backup_says_so_and_leaves_nothing(planted: Flask, database_url: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL backups need `pg_dump`; SQLite ones need no external tool and are made all the same."""
    empty = tmp_path / "no-tools"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    if not database_url.startswith("postgresql"):
        result = run(planted, "create", "--output", str(tmp_path / "out" / "backup.db"))
        assert result.exit_code == 0, result.output
        assert (tmp_path / "out" / "backup.db").is_file()
        return
    result = run(planted, "create", "--output", str(tmp_path / "out" / "backup.pgdump"))
    assert result.exit_code == 1
    assert "pg_dump was not found on PATH" in result.output
    assert list((tmp_path / "out").iterdir()) == []
