"""The operator's `intake keys` commands on a real instance, on SQLite and PostgreSQL: status, rotate, rewrap
(including a rewrap interrupted half-way and one killed outright), retire, change-passphrase and backup; what a
wrong passphrase says; what the audit log records; and what a running service does when the keyring it opened
at start is rotated under it."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from flask import Flask

import intake
from intake import create_app
from intake.cli import keys_group
from intake.core.crypto import KeyringOutdated, current_keyring
from intake.core.crypto import datakeys as datakeys_module
from intake.core.crypto.envelope import Unreadable, unwrap_data_key, wrapped_kek_version
from intake.core.db import db, write_intent
from intake.core.keys import Keyring, KeyringError, UnknownKeyError
from intake.identities.models import Person
from intake.identities.operations import read_identity, register_person
from intake.testimonies import models as testimonies
from intake.testimonies.operations import create_testimony, read_narrative, shred_testimony
from tests.conftest import TEST_SETTINGS

PASSPHRASE = "operator passphrase of the keys tests"
NEW_PASSPHRASE = "the passphrase after the change, 2nd"
BACKUP_PASSPHRASE = "a passphrase kept only with the backup"
WRONG = "not this keyring's passphrase 4711"

NAMES = ["Արմեն Սարգսյան", "Гоар Ованнисян", "Cavad Əliyev", "Lusine Xaçatryan", "Nərgiz Məmmədova",
         "Тигран Петросян"]
STATUS_ROW = re.compile(r"^ *(\d+)  (primary|active|retired|unregistered) +(yes|NO) +(\d+)$", re.MULTILINE)

Content = dict[str, tuple[Any, Any]]



def write_secret(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


@dataclass
class Instance:
    """One installation: a sealed keyring, its passphrase file, a migrated database, and the apps built on it."""

    root: Path
    database_url: str
    keyring_path: Path
    passphrase_file: Path
    apps: list[Flask] = field(default_factory=list)
    engines: list[sa.Engine] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {"INTAKE_INSTANCE_PATH": str(self.root / "instance"), "INTAKE_DATABASE_URL": self.database_url,
                "INTAKE_KEYRING_PATH": str(self.keyring_path),
                "INTAKE_KEYRING_PASSPHRASE_FILE": str(self.passphrase_file),
                "INTAKE_LOG_LEVEL": "WARNING", "INTAKE_SECURE_COOKIES": "false"}

    def keys(self, *args: str, env: dict[str, str] | None = None) -> Result:
        """Run `intake keys ARGS` as the operator would, in this process."""
        return CliRunner(env={**self.env, **(env or {})}).invoke(keys_group, list(args))

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {**TEST_SETTINGS, "INSTANCE_PATH": str(self.root / "instance"), "DATABASE_URL": self.database_url,
                "KEYRING_PATH": str(self.keyring_path), "KEYRING_PASSPHRASE_FILE": str(self.passphrase_file),
                **overrides}

    def open_keyring(self, passphrase: str = PASSPHRASE) -> Keyring:
        return Keyring.open(self.keyring_path, passphrase)

    def app(self, keyring: Keyring | None = None) -> Flask:
        """A service started now: with the keyring as the file holds it now, unless one is given."""
        app = create_app(self.settings(), keyring=keyring or self.open_keyring())
        self.apps.append(app)
        return app

    def rows(self, sql: str, **params: Any) -> list[Any]:
        """Read the database directly, as someone inspecting it would."""
        if not self.engines:
            self.engines.append(sa.create_engine(self.database_url))
        with self.engines[0].connect() as conn:
            return list(conn.execute(sa.text(sql), params).all())

    def data_keys(self) -> dict[int, tuple[int | None, bytes | None]]:
        return {r.id: (r.kek_version, r.wrapped) for r in self.rows("SELECT id, kek_version, wrapped FROM data_keys")}

    def kek_states(self) -> dict[int, str]:
        return {r.version: r.state for r in self.rows("SELECT version, state FROM kek_versions")}

    def sealed_fields(self) -> dict[str, bytes | None]:
        fields = {f"person {r.id}": r.identity for r in self.rows("SELECT id, identity FROM persons")}
        fields.update({f"testimony {r.id}": r.narrative for r in self.rows("SELECT id, narrative FROM testimonies")})
        return fields

    def audit_actions(self) -> list[str]:
        return [r.action for r in self.rows("SELECT action FROM audit_events ORDER BY seq")]


@pytest.fixture
def instance(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Instance]:
    keyring_path = tmp_path / "keys" / "keyring.sealed"
    keyring_path.parent.mkdir()
    Keyring.create(keyring_path, PASSPHRASE, scrypt_n=2**10)
    passphrase_file = write_secret(tmp_path / "secrets" / "keyring.passphrase", PASSPHRASE)
    inst = Instance(tmp_path, database_url, keyring_path, passphrase_file)

    # The commands build their own app each time; keep them so their connections are closed after the test.
    real_create_app = intake.create_app

    def recording_create_app(*args: Any, **kwargs: Any) -> Flask:
        app = real_create_app(*args, **kwargs)
        inst.apps.append(app)
        return app

    monkeypatch.setattr(intake, "create_app", recording_create_app)
    yield inst
    # Every command, refused or not, leaves the "this transaction writes" flag as it found it.
    assert write_intent.get() is None
    for app in inst.apps:
        app.extensions["intake.db"].dispose()
    for engine in inst.engines:
        engine.dispose()


def seed(app: Flask, count: int = 3, *, shred: int = 0) -> Content:
    """Register `count` persons, each with one testimony, and `shred` more testimonies that are then shredded.

    Returns what each pseudonym's identity and narrative read as."""
    with app.app_context():
        for i in range(count):
            person = register_person({"name": NAMES[i % len(NAMES)], "birth_year": 1950 + i,
                                      "contacts": [f"+374 10 {i:06d}"]}, actor=None, prefix="KB")
            create_testimony(pseudonym=person.pseudonym, interviewer=None, language="hy",
                             narrative=f"Testimony {i}: the shelling began before dawn; we hid in the cellar.")
        for _ in range(shred):
            person = register_person(None, actor=None, prefix="KB")
            gone = create_testimony(pseudonym=person.pseudonym, interviewer=None, narrative="to be shredded")
            db.session.flush()
            shred_testimony(gone, reason="consent withdrawn", actor=None, config=app.config)
        db.session.commit()
    return read_content(app)


def read_content(app: Flask) -> Content:
    """Every person's identity and their testimony's narrative, decrypted by `app` (as its pages would show)."""
    with app.app_context():
        content: Content = {}
        for person in db.session.scalars(sa.select(Person).order_by(Person.id)):
            testimony = db.session.scalar(
                sa.select(testimonies.Testimony).where(testimonies.Testimony.pseudonym == person.pseudonym))
            narrative = read_narrative(testimony) if testimony is not None else None
            content[person.pseudonym] = (read_identity(person), narrative if narrative else None)
        db.session.rollback()
        return content


def status_table(output: str) -> dict[int, tuple[str, str, int]]:
    return {int(v): (state, held, int(n)) for v, state, held, n in STATUS_ROW.findall(output)}


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def refused(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return result.output


# ---------------------------------------------------------------------------------------------------------------
# status and rotate


def test_status_lists_each_version_its_state_and_the_data_keys_it_wraps(instance: Instance) -> None:
    seed(instance.app(), 3, shred=1)  # 3 persons and 3 testimonies, 1 anonymous person, 1 shredded testimony

    output = ok(instance.keys("status"))
    assert f"Keyring {instance.keyring_path} (created " in output
    assert "primary KEK version 1)" in output
    assert status_table(output) == {1: ("primary", "yes", 7)}
    assert "Destroyed (shredded) data keys: 1" in output
    assert "rewrap" not in output

    ok(instance.keys("rotate"))
    output = ok(instance.keys("status"))
    assert "primary KEK version 2)" in output
    assert status_table(output) == {1: ("active", "yes", 7), 2: ("primary", "yes", 0)}
    assert "7 data key(s) are not under the primary version yet: run `intake keys rewrap`." in output


def test_rotate_adds_a_primary_version_to_the_keyring_file_and_the_database_and_old_data_still_reads(
    instance: Instance,
) -> None:
    before = seed(instance.app(), 3)
    kek_1 = instance.open_keyring().kek(1)

    output = ok(instance.keys("rotate"))
    assert f"Added KEK version 2 to {instance.keyring_path}." in output
    assert "KEK version 2 is primary: new data keys are wrapped under it." in output
    assert "6 data key(s) are still wrapped under older versions: run `intake keys rewrap`." in output

    keyring = instance.open_keyring()
    assert keyring.kek_versions == (1, 2) and keyring.primary_kek_version == 2
    assert keyring.kek(1) == kek_1 and keyring.kek(2) != kek_1
    assert instance.kek_states() == {1: "active", 2: "primary"}
    assert set(v for v, _ in instance.data_keys().values()) == {1}  # rotation alone moves no data key

    app = instance.app()
    assert read_content(app) == before
    with app.app_context():
        person = register_person({"name": "Anahit Grigoryan"}, actor=None, prefix="KB")
        db.session.commit()
        new_key_id = person.data_key_id
    assert instance.data_keys()[new_key_id][0] == 2

    output = ok(instance.keys("rotate"))
    assert "Added KEK version 3" in output
    assert "7 data key(s) are still wrapped under older versions" in output
    assert instance.open_keyring().kek_versions == (1, 2, 3)
    assert instance.kek_states() == {1: "active", 2: "active", 3: "primary"}


# ---------------------------------------------------------------------------------------------------------------
# rewrap


def test_rewrap_moves_every_data_key_to_the_new_version_and_never_re_encrypts_the_data(instance: Instance) -> None:
    before = seed(instance.app(), 3, shred=1)
    keys_before = instance.data_keys()
    fields_before = instance.sealed_fields()
    ok(instance.keys("rotate"))

    output = ok(instance.keys("rewrap"))
    assert "Rewrapped 7 data key(s); every data key is under KEK version 2." in output

    keys_after = instance.data_keys()
    assert keys_after.keys() == keys_before.keys()
    live = {k for k, (version, _) in keys_before.items() if version is not None}
    assert len(live) == 7
    for key_id in live:
        version, wrapped = keys_after[key_id]
        assert version == 2 and wrapped is not None
        assert wrapped != keys_before[key_id][1]
        assert wrapped_kek_version(wrapped) == 2
    shredded = keys_before.keys() - live
    assert shredded and all(keys_after[k] == (None, None) for k in shredded)  # shredded keys stay gone
    assert instance.sealed_fields() == fields_before  # byte for byte: only the wrapping changed
    assert read_content(instance.app()) == before  # a keyring opened afresh from the file reads everything

    assert "Rewrapped 0 data key(s)" in ok(instance.keys("rewrap"))
    assert status_table(ok(instance.keys("status"))) == {1: ("active", "yes", 0), 2: ("primary", "yes", 7)}


def test_a_rewrap_interrupted_half_way_resumes_and_a_batch_that_fails_changes_nothing(
    instance: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = seed(instance.app(), 6)  # 12 data keys
    ok(instance.keys("rotate"))
    app = instance.app()

    with app.app_context():
        keyring = current_keyring()
        for _ in range(2):
            assert datakeys_module.rewrap_batch(db.session(), keyring, target=2, batch_size=3).rewrapped == 3
            db.session.commit()
    keys = instance.data_keys()
    assert sorted(v for v, _ in keys.values()) == [1] * 6 + [2] * 6
    next_batch = sorted(k for k, (v, _) in keys.items() if v == 1)[:3]

    real_wrap = datakeys_module.wrap_data_key
    calls = 0

    def wrap_then_crash(*args: Any, **kwargs: Any) -> bytes:
        nonlocal calls
        calls += 1
        if calls > 2:
            raise RuntimeError("simulated crash in the middle of a batch")
        return real_wrap(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(datakeys_module, "wrap_data_key", wrap_then_crash)
        with app.app_context():
            with pytest.raises(RuntimeError, match="simulated crash"):
                datakeys_module.rewrap_batch(db.session(), current_keyring(), target=2, batch_size=3)
            db.session.rollback()
    assert calls == 3
    after_crash = instance.data_keys()
    assert after_crash == keys  # the failed batch left every key as it was; the committed batches stayed
    assert all(after_crash[k][0] == 1 for k in next_batch)

    output = ok(instance.keys("rewrap", "--batch-size", "4"))
    assert "Rewrapped 6 data key(s); every data key is under KEK version 2." in output
    final = instance.data_keys()
    assert {v for v, _ in final.values()} == {2}
    assert all(final[k] == keys[k] for k, (v, _) in keys.items() if v == 2)  # moved ones were not moved again
    assert read_content(instance.app()) == before


def test_a_rewrap_killed_mid_way_resumes_where_it_stopped(instance: Instance, tmp_path: Path) -> None:
    before = seed(instance.app(), 60)  # 120 data keys
    fields_before = instance.sealed_fields()
    ok(instance.keys("rotate"))

    base = {k: v for k, v in os.environ.items() if not k.startswith(("INTAKE_", "FLASK_"))}
    log = (tmp_path / "rewrap.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - our own console script
        [str(Path(sys.prefix) / "bin" / "intake"), "keys", "rewrap", "--batch-size", "1"],
        env={**base, **instance.env}, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    count_sql = "SELECT count(*) AS n FROM data_keys WHERE kek_version = 2"
    try:
        deadline = time.monotonic() + 60
        while instance.rows(count_sql)[0].n == 0:
            assert process.poll() is None, (tmp_path / "rewrap.log").read_text()
            assert time.monotonic() < deadline, "the rewrap moved no key within a minute"
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()

    moved = instance.rows(count_sql)[0].n
    assert 0 < moved < 120, f"the kill came too late to interrupt the rewrap ({moved} moved)"
    keyring = instance.open_keyring()
    for row in instance.rows("SELECT id, owner, kek_version, wrapped FROM data_keys"):
        # Every key is whole, under the version its row names, and opens: the data stays readable half-way.
        assert row.kek_version in (1, 2) and wrapped_kek_version(row.wrapped) == row.kek_version
        assert unwrap_data_key(keyring.kek(row.kek_version), row.wrapped, key_id=row.id, owner=row.owner)

    output = ok(instance.keys("rewrap"))
    assert f"Rewrapped {120 - moved} data key(s); every data key is under KEK version 2." in output
    assert {v for v, _ in instance.data_keys().values()} == {2}
    assert instance.sealed_fields() == fields_before
    assert read_content(instance.app()) == before


# ---------------------------------------------------------------------------------------------------------------
# retire


def test_retire_refuses_the_primary_and_a_version_still_in_use_and_afterwards_old_copies_are_unreadable(
    instance: Instance, tmp_path: Path
) -> None:
    before = seed(instance.app(), 3)
    person_key = instance.rows("SELECT data_key_id FROM persons ORDER BY id")[0].data_key_id
    old_row = instance.rows("SELECT id, owner, wrapped FROM data_keys WHERE id = :id", id=person_key)[0]
    old_keyring_backup = tmp_path / "keyring-before-rotation.sealed"
    ok(instance.keys("backup", str(old_keyring_backup)))
    ok(instance.keys("rotate"))

    output = refused(instance.keys("retire", "2"))
    assert "KEK version 2 is primary: rotate first (`intake keys rotate`)." in output
    output = refused(instance.keys("retire", "1"))
    assert "Refusing to retire KEK version 1: 6 data key(s) are still wrapped under it" in output
    assert "Run `intake keys rewrap` first." in output
    assert "There is no KEK version 9." in refused(instance.keys("retire", "9"))
    assert instance.open_keyring().kek_versions == (1, 2)
    assert instance.kek_states() == {1: "active", 2: "primary"}

    ok(instance.keys("rewrap"))
    output = ok(instance.keys("retire", "1"))
    assert f"KEK version 1 is retired and no longer in {instance.keyring_path}." in output
    keyring = instance.open_keyring()
    assert keyring.kek_versions == (2,) and keyring.primary_kek_version == 2
    retired = instance.rows("SELECT version, state, retired_at FROM kek_versions ORDER BY version")
    assert [(r.version, r.state, r.retired_at is not None) for r in retired] == [(1, "retired", True),
                                                                                  (2, "primary", False)]
    assert read_content(instance.app()) == before
    assert status_table(ok(instance.keys("status"))) == {1: ("retired", "NO", 0), 2: ("primary", "yes", 6)}

    # A copy of a data key wrapped before the rewrap (say, in a database backup) no longer opens ...
    with pytest.raises(UnknownKeyError, match="no KEK version 1"):
        unwrap_data_key(keyring.kek(1), old_row.wrapped, key_id=old_row.id, owner=old_row.owner)
    # ... and a service given that backup says which version it misses, as does `keys status`.
    with instance.engines[0].begin() as conn:
        conn.execute(sa.text("UPDATE data_keys SET kek_version = 1, wrapped = :w WHERE id = :id"),
                     {"w": old_row.wrapped, "id": old_row.id})
    with instance.app().app_context(), pytest.raises(KeyringOutdated, match="holds no KEK version 1"):
        read_identity(db.session.scalar(sa.select(Person).where(Person.data_key_id == person_key)))
    output = refused(instance.keys("status"))
    assert status_table(output)[1] == ("retired", "NO", 1)
    assert "Data keys are wrapped under a KEK version this keyring does not hold" in output
    # Only a keyring backup from before the retirement still opens it.
    old_keyring = Keyring.open(old_keyring_backup, PASSPHRASE)
    assert unwrap_data_key(old_keyring.kek(1), old_row.wrapped, key_id=old_row.id, owner=old_row.owner)
    with instance.app(keyring=old_keyring).app_context():
        restored = db.session.scalar(sa.select(Person).where(Person.data_key_id == person_key))
        assert read_identity(restored) == before[restored.pseudonym][0]


# ---------------------------------------------------------------------------------------------------------------
# change-passphrase and backup


def test_change_passphrase_seals_the_keyring_with_the_new_passphrase_only(instance: Instance) -> None:
    before = seed(instance.app(), 2)
    old = instance.open_keyring()
    new_file = write_secret(instance.root / "secrets" / "new.passphrase", NEW_PASSPHRASE)

    output = ok(instance.keys("change-passphrase", "--passphrase-file", str(new_file)))
    assert f"{instance.keyring_path} is now sealed with the new passphrase." in output
    assert NEW_PASSPHRASE not in output and PASSPHRASE not in output

    with pytest.raises(KeyringError, match="wrong passphrase"):
        instance.open_keyring(PASSPHRASE)
    assert "wrong passphrase" in refused(instance.keys("status"))  # the old passphrase file no longer opens it
    reopened = instance.open_keyring(NEW_PASSPHRASE)
    assert reopened.kek_versions == old.kek_versions and reopened.kek(1) == old.kek(1)
    assert reopened.subkey("blind-index") == old.subkey("blind-index")
    new_env = {"INTAKE_KEYRING_PASSPHRASE_FILE": str(new_file)}
    assert status_table(ok(instance.keys("status", env=new_env))) == {1: ("primary", "yes", 4)}
    assert read_content(instance.app(keyring=reopened)) == before

    sealed = instance.keyring_path.read_bytes()
    output = refused(instance.keys("change-passphrase", "--passphrase-file", str(new_file), env=new_env))
    assert "The new passphrase is the same as the current one." in output
    short_file = write_secret(instance.root / "secrets" / "short.passphrase", "too short")
    output = refused(instance.keys("change-passphrase", "--passphrase-file", str(short_file), env=new_env))
    assert "shorter than 12 characters" in output
    assert instance.keyring_path.read_bytes() == sealed
    assert instance.audit_actions().count("keyring_passphrase_changed") == 1


def test_backup_writes_a_private_copy_that_opens_with_the_chosen_passphrase_and_never_overwrites(
    instance: Instance,
) -> None:
    before = seed(instance.app(), 2)
    ok(instance.keys("rotate"))
    keyring = instance.open_keyring()
    sealed = instance.keyring_path.read_bytes()
    destination = instance.root / "offsite" / "keyring-backup.sealed"
    destination.parent.mkdir()

    output = ok(instance.keys("backup", str(destination)))
    assert f"Wrote a sealed copy of the keyring (KEK versions 1, 2) to {destination}" in output
    assert stat.S_IMODE(destination.stat().st_mode) == 0o600
    copy = Keyring.open(destination, PASSPHRASE)
    assert copy.kek_versions == (1, 2) and copy.primary_kek_version == 2
    assert all(copy.kek(v) == keyring.kek(v) for v in (1, 2))
    assert copy.subkey("blind-index") == keyring.subkey("blind-index")
    assert read_content(instance.app(keyring=copy)) == before
    assert instance.keyring_path.read_bytes() == sealed

    copied = destination.read_bytes()
    output = refused(instance.keys("backup", str(destination)))
    assert "already exists" in output
    assert destination.read_bytes() == copied

    other = instance.root / "offsite" / "keyring-backup-2.sealed"
    backup_file = write_secret(instance.root / "secrets" / "backup.passphrase", BACKUP_PASSPHRASE)
    ok(instance.keys("backup", str(other), "--passphrase-file", str(backup_file)))
    assert stat.S_IMODE(other.stat().st_mode) == 0o600
    with pytest.raises(KeyringError, match="wrong passphrase"):
        Keyring.open(other, PASSPHRASE)
    second = Keyring.open(other, BACKUP_PASSPHRASE)
    assert second.kek_versions == (1, 2) and all(second.kek(v) == keyring.kek(v) for v in (1, 2))
    assert instance.audit_actions().count("keyring_backed_up") == 2


# ---------------------------------------------------------------------------------------------------------------
# A wrong passphrase


@pytest.mark.parametrize("command", ["init", "status", "rotate", "rewrap", "retire", "change-passphrase", "backup"])
def test_every_keys_command_says_clearly_when_the_passphrase_is_wrong(instance: Instance, command: str) -> None:
    new_file = write_secret(instance.root / "secrets" / "new.passphrase", NEW_PASSPHRASE)
    destination = instance.root / "offsite" / "backup.sealed"
    args = {"retire": ["retire", "1"], "change-passphrase": ["change-passphrase", "--passphrase-file", str(new_file)],
            "backup": ["backup", str(destination)]}.get(command, [command])
    wrong_file = write_secret(instance.root / "secrets" / "wrong.passphrase", WRONG)
    sealed = instance.keyring_path.read_bytes()
    keys, states, actions = instance.data_keys(), instance.kek_states(), instance.audit_actions()

    output = refused(instance.keys(*args, env={"INTAKE_KEYRING_PASSPHRASE_FILE": str(wrong_file)}))
    assert f"Keyring error: Cannot open keyring {instance.keyring_path}: wrong passphrase" in output
    assert WRONG not in output
    assert instance.keyring_path.read_bytes() == sealed
    assert not destination.exists()
    assert (instance.data_keys(), instance.kek_states(), instance.audit_actions()) == (keys, states, actions)


# ---------------------------------------------------------------------------------------------------------------
# The audit log


def test_the_audit_log_records_every_change_to_the_keys_and_never_a_passphrase(instance: Instance) -> None:
    seed(instance.app(), 2)
    first = instance.rows("SELECT max(seq) AS id FROM audit_events")[0].id
    new_file = write_secret(instance.root / "secrets" / "new.passphrase", NEW_PASSPHRASE)

    ok(instance.keys("status"))
    ok(instance.keys("rotate"))
    ok(instance.keys("rewrap"))
    ok(instance.keys("retire", "1"))
    ok(instance.keys("change-passphrase", "--passphrase-file", str(new_file)))
    ok(instance.keys("backup", str(instance.root / "backup.sealed"),
                     env={"INTAKE_KEYRING_PASSPHRASE_FILE": str(new_file)}))

    events = instance.rows("SELECT actor_id, action, target_type, details FROM audit_events WHERE seq > :first "
                           "ORDER BY seq", first=first)
    details = [json.loads(e.details) if isinstance(e.details, str) else e.details for e in events]
    assert [(e.action, d) for e, d in zip(events, details, strict=True)] == [
        ("kek_rotated", {"primary": 2}),
        ("data_keys_rewrapped", {"target": 2, "count": 4, "complete": True}),
        ("kek_retired", {"version": 1}),
        ("keyring_passphrase_changed", {}),
        ("keyring_backed_up", {"kek_versions": [2]}),
    ]
    assert all(e.actor_id is None and e.target_type == "keyring" for e in events)
    everything = json.dumps([list(map(str, r)) for r in instance.rows("SELECT * FROM audit_events")])
    assert PASSPHRASE not in everything and NEW_PASSPHRASE not in everything


# ---------------------------------------------------------------------------------------------------------------
# A service running while the keys change


def running_service(instance: Instance, **settings: Any) -> Flask:
    app = create_app(instance.settings(**settings))  # unseals the keyring itself, as at start-up
    instance.apps.append(app)
    return app


def test_a_running_service_with_a_passphrase_file_reloads_the_keyring_after_rotation(instance: Instance) -> None:
    app = running_service(instance)
    before = seed(app, 3)
    assert app.extensions["intake.keyring"].kek_versions == (1,)

    ok(instance.keys("rotate"))
    ok(instance.keys("rewrap"))
    assert {v for v, _ in instance.data_keys().values()} == {2}
    assert app.extensions["intake.keyring"].kek_versions == (1,)  # nothing needed version 2 yet
    assert read_content(app) == before  # the service meets version 2, reloads the keyring, and reads on
    assert app.extensions["intake.keyring"].kek_versions == (1, 2)

    ok(instance.keys("retire", "1"))
    with app.app_context():  # and records written now are wrapped under the new version
        person = register_person({"name": "Anahit Grigoryan", "birth_year": 1990}, actor=None, prefix="KB")
        db.session.commit()
        key_id = person.data_key_id
    assert instance.data_keys()[key_id][0] == 2
    assert {k: v for k, v in read_content(app).items() if k in before} == before


def test_a_running_service_given_its_passphrase_in_the_environment_must_be_restarted(
    instance: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTAKE_KEYRING_PASSPHRASE", PASSPHRASE)
    app = running_service(instance, KEYRING_PASSPHRASE_FILE="")
    assert "INTAKE_KEYRING_PASSPHRASE" not in os.environ  # forgotten once the keyring was unsealed
    before = seed(app, 2)

    ok(instance.keys("rotate"))
    ok(instance.keys("rewrap"))
    with app.app_context():
        person = db.session.scalars(sa.select(Person).order_by(Person.id)).first()
        with pytest.raises(KeyringOutdated, match="restart the service") as caught:
            read_identity(person)
        assert "KEK version 2" in str(caught.value) and PASSPHRASE not in str(caught.value)
        # New records still work, under the version this process holds, which the database still counts active.
        newcomer = register_person({"name": "Anahit Grigoryan"}, actor=None, prefix="KB")
        db.session.commit()
        assert newcomer.data_key.kek_version == 1 and read_identity(newcomer)["name"] == "Anahit Grigoryan"
    # So version 1 cannot be retired until that key too has been rewrapped.
    assert "1 data key(s) are still wrapped under it" in refused(instance.keys("retire", "1"))

    monkeypatch.setenv("INTAKE_KEYRING_PASSPHRASE", PASSPHRASE)
    restarted = running_service(instance, KEYRING_PASSPHRASE_FILE="")
    ok(instance.keys("rewrap"))
    ok(instance.keys("retire", "1"))
    content = read_content(restarted)
    assert {p: c for p, c in content.items() if p in before} == before
    assert len(content) == len(before) + 1


def test_a_damaged_data_key_is_reported_and_left_alone_while_the_others_are_rewrapped(instance: Instance) -> None:
    before = seed(instance.app(), 3)
    ok(instance.keys("rotate"))
    damaged = sorted(instance.data_keys())[2]
    engine = sa.create_engine(instance.database_url)
    with engine.begin() as conn:  # one flipped bit in the wrapped key, as a failing disk or an attacker would leave
        wrapped = conn.execute(sa.text("SELECT wrapped FROM data_keys WHERE id = :id"), {"id": damaged}).scalar_one()
        flipped = bytes(wrapped[:-1]) + bytes([wrapped[-1] ^ 1])
        conn.execute(sa.text("UPDATE data_keys SET wrapped = :w WHERE id = :id"), {"w": flipped, "id": damaged})
    engine.dispose()

    output = refused(instance.keys("rewrap", "--batch-size", "2"))
    assert "Rewrapped 5 data key(s), but 1 could not be unwrapped" in output and str(damaged) in output
    keys = instance.data_keys()
    assert keys[damaged] == (1, flipped)
    assert all(version == 2 for key_id, (version, _) in keys.items() if key_id != damaged)
    assert "1 data key(s) are still wrapped under it" in refused(instance.keys("retire", "1"))
    app = instance.app()
    unreadable = []
    with app.app_context():  # only the record of the damaged key is affected
        for person in db.session.scalars(sa.select(Person).order_by(Person.id)):
            testimony = db.session.scalar(
                sa.select(testimonies.Testimony).where(testimonies.Testimony.pseudonym == person.pseudonym))
            try:
                assert (read_identity(person), read_narrative(testimony)) == before[person.pseudonym]
            except Unreadable:
                unreadable.append(person.pseudonym)
    assert len(unreadable) == 1


def test_rotate_refuses_a_keyring_older_than_the_one_in_use(instance: Instance, tmp_path: Path) -> None:
    seed(instance.app(), 1)
    old_copy = instance.keyring_path.read_bytes()
    ok(instance.keys("rotate"))
    states = instance.kek_states()
    instance.keyring_path.write_bytes(old_copy)  # a restored or another host's keyring, from before the rotation

    output = refused(instance.keys("rotate"))
    assert "The database uses KEK version(s) 2, which" in output and "older than the one in use" in output
    assert instance.kek_states() == states == {1: "active", 2: "primary"}
    assert instance.open_keyring().kek_versions == (1,)


def test_a_rewrap_left_running_across_a_rotation_stops_instead_of_moving_keys_back(instance: Instance) -> None:
    seed(instance.app(), 2)
    ok(instance.keys("rotate"))
    ok(instance.keys("rotate"))  # version 3 is primary now; a rewrap started for version 2 must not go on
    app = instance.app()
    with app.app_context():
        with pytest.raises(datakeys_module.PrimaryChanged):
            datakeys_module.rewrap_batch(db.session(), current_keyring(), target=2, batch_size=10)
        db.session.rollback()
    assert {v for v, _ in instance.data_keys().values()} == {1}


def test_two_keys_commands_never_save_over_each_other(instance: Instance) -> None:
    import fcntl
    import threading

    seed(instance.app(), 1)
    lock = os.open(instance.keyring_path.with_name(instance.keyring_path.name + ".lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)  # another `intake keys` command is at work
    results: list[Result] = []
    worker = threading.Thread(target=lambda: results.append(instance.keys("rotate")))
    worker.start()
    worker.join(timeout=3)
    assert worker.is_alive() and not results, "rotate went ahead while another keys command held the keyring"
    assert instance.open_keyring().kek_versions == (1,)
    fcntl.flock(lock, fcntl.LOCK_UN)
    os.close(lock)
    worker.join(timeout=60)
    assert "waiting for it to finish" in ok(results[0])
    assert instance.open_keyring().kek_versions == (1, 2)
