"""Command line: `intake ...` (also `flask --app app ...`). Commands call the same operations as the web pages and
commit once at the end."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import FlaskGroup, routes_command, shell_command, with_appcontext

from config import ConfigError, load_settings
from intake.core.checks import configuration_warnings
from intake.core.db import db
from intake.core.keys import PASSPHRASE_FILE_ENV, Keyring, KeyringError, read_passphrase
from intake.core.keys import create_passphrase_file as create_passphrase_file_at


def _create_app() -> Flask:
    from intake import StartupError, create_app

    try:
        return create_app()
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None


def main() -> None:
    # Without Flask's development server command: the service is served by gunicorn (`make run`).
    cli = FlaskGroup(create_app=_create_app, add_default_commands=False, add_version_option=False,
                     load_dotenv=False, help="Testimony intake service.")
    cli.add_command(routes_command)
    cli.add_command(shell_command)
    cli.add_command(keys_group)
    cli.main(prog_name="intake")


def register_commands(app: Flask) -> None:
    from intake.backup.cli import backup_group
    from intake.retention.cli import retention_group

    for group in (db_group, users_group, tokens_group, audit_group, export_group, backup_group, retention_group):
        app.cli.add_command(group)
    app.cli.add_command(setup_link)
    app.cli.add_command(doctor)
    app.cli.add_command(keys_group)


def _settings() -> dict[str, Any]:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(f"Configuration error: {exc}") from None


# ---------------------------------------------------------------------------------------------------------------
# Keys


@click.group("keys", help="The sealed keyring.")
def keys_group() -> None:
    pass


@keys_group.command("init", help="Create the keyring if it does not exist yet.")
@click.option("--create-passphrase-file", is_flag=True,
              help="If INTAKE_KEYRING_PASSPHRASE_FILE names a file that does not exist, create it with a random "
                   "passphrase (mode 0600). For development: in production keep the passphrase off the server's "
                   "disk.")
def keys_init(create_passphrase_file: bool) -> None:
    from intake import open_keyring

    settings = _settings()
    path = Path(settings["KEYRING_PATH"])
    if path.exists():
        try:
            open_keyring(settings)
        except KeyringError as exc:
            raise click.ClickException(f"Keyring error: {exc}") from None
        click.echo(f"Keyring {path} exists and opens with the configured passphrase.")
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    passphrase_file = Path(settings["KEYRING_PASSPHRASE_FILE"]) if settings["KEYRING_PASSPHRASE_FILE"] else None
    if settings["KEYRING_PASSPHRASE"]:
        passphrase = settings["KEYRING_PASSPHRASE"]
    elif passphrase_file is not None and passphrase_file.exists():
        passphrase = read_passphrase({PASSPHRASE_FILE_ENV: str(passphrase_file)})
    elif passphrase_file is not None and create_passphrase_file:
        passphrase = create_passphrase_file_at(passphrase_file)
        click.echo(f"Created a random keyring passphrase in {passphrase_file} (mode 0600). This is for "
                   "development: in production supply the passphrase from outside the server's disk.")
    elif passphrase_file is not None:
        raise click.ClickException(f"The keyring passphrase file {passphrase_file} does not exist.")
    else:
        raise click.ClickException("Set INTAKE_KEYRING_PASSPHRASE or INTAKE_KEYRING_PASSPHRASE_FILE.")
    try:
        Keyring.create(path, passphrase)
    except KeyringError as exc:
        raise click.ClickException(f"Keyring error: {exc}") from None
    click.echo(f"Created the sealed keyring {path}. Back it up apart from the database: without it and its "
               "passphrase, nothing encrypted can ever be read again.")


def _passphrase(settings: dict[str, Any], *, prompt: str = "Keyring passphrase") -> str:
    """The configured keyring passphrase, or one typed at a prompt when none is configured and a person is there."""
    from intake import passphrase_source

    source = passphrase_source(settings)
    if not source and sys.stdin.isatty():
        return str(click.prompt(prompt, hide_input=True))
    try:
        return read_passphrase(source)
    except KeyringError as exc:
        raise click.ClickException(f"Keyring error: {exc}") from None


def _new_passphrase(passphrase_file: Path | None, *, what: str) -> str:
    if passphrase_file is not None:
        try:
            return read_passphrase({PASSPHRASE_FILE_ENV: str(passphrase_file)})
        except KeyringError as exc:
            raise click.ClickException(str(exc)) from None
    if not sys.stdin.isatty():
        raise click.ClickException(f"Give the {what} with --passphrase-file (no terminal to type it at).")
    return str(click.prompt(f"The {what}", hide_input=True, confirmation_prompt=True))


class _KeysContext:
    """What a `keys` command works with: settings, the passphrase, the open keyring, and an app for the database."""

    def __init__(self) -> None:
        from intake import StartupError, create_app

        self.settings = _settings()
        self.path = Path(self.settings["KEYRING_PATH"])
        self.passphrase = _passphrase(self.settings)
        self._lock()
        try:
            self.keyring = Keyring.open(self.path, self.passphrase)
        except KeyringError as exc:
            raise click.ClickException(f"Keyring error: {exc}") from None
        try:
            self.app = create_app(keyring=self.keyring)
        except StartupError as exc:
            raise click.ClickException(str(exc)) from None

    def _lock(self) -> None:
        """Hold `<keyring>.lock` until the command ends, so that two `keys` commands never save over each other's
        keyring (a rotation lost that way would take its data keys with it). The keyring is opened under the lock."""
        import fcntl

        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError as exc:
            raise click.ClickException(f"Cannot lock the keyring ({lock_path}): {exc.strerror or exc}.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            click.echo("Another `intake keys` command is working on this keyring; waiting for it to finish…",
                       err=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        click.get_current_context().call_on_close(lambda: os.close(fd))

    def save(self, passphrase: str | None = None) -> None:
        try:
            self.keyring.save(self.path, passphrase or self.passphrase)
        except KeyringError as exc:
            raise click.ClickException(f"Keyring error: {exc}") from None


def _audit_key_event(action: Any, *, details: dict[str, Any]) -> None:
    from intake.core.audit import record_event

    record_event(action, actor=None, target_type="keyring", details=details)


@contextlib.contextmanager
def _writing() -> Iterator[None]:
    """Transactions begun inside take SQLite's write lock from their start (they read, then write)."""
    from intake.core.db import write_intent

    token = write_intent.set(True)
    try:
        yield
    finally:
        write_intent.reset(token)


@keys_group.command("status", help="KEK versions, their state, and how many data keys each one wraps.")
def keys_status() -> None:
    from intake.core.crypto.datakeys import kek_status

    ctx = _KeysContext()
    with ctx.app.app_context():
        rows, destroyed = kek_status(ctx.keyring)
    click.echo(f"Keyring {ctx.path} (created {ctx.keyring.created}, primary KEK version "
               f"{ctx.keyring.primary_kek_version})")
    click.echo(f"{'version':>7}  {'state':12} {'in keyring':10} {'data keys':>9}")
    for row in rows:
        click.echo(f"{row.version:>7}  {row.state:12} {'yes' if row.in_keyring else 'NO':10} {row.data_keys:>9}")
    click.echo(f"Destroyed (shredded) data keys: {destroyed}")
    pending = sum(r.data_keys for r in rows if r.state != "primary")
    if pending:
        click.echo(f"{pending} data key(s) are not under the primary version yet: run `intake keys rewrap`.")
    if any(r.data_keys and not r.in_keyring for r in rows):
        raise click.ClickException("Data keys are wrapped under a KEK version this keyring does not hold: they "
                                   "cannot be read with it. Restore the keyring that holds that version.")


@keys_group.command("rotate", help="Add a new key-encryption-key version and make it primary (data is not "
                                   "re-encrypted; run `intake keys rewrap` afterwards).")
def keys_rotate() -> None:
    from intake.core.audit import AuditAction
    from intake.core.crypto.datakeys import keys_not_under, register_keyring_versions
    from intake.core.crypto.models import KekVersion

    ctx = _KeysContext()
    with ctx.app.app_context():
        states = {v: st for v, st in db.session.execute(sa.select(KekVersion.version, KekVersion.state))}
        db.session.rollback()
    lacking = sorted(v for v, state in states.items() if state != "retired" and v not in ctx.keyring.kek_versions)
    if lacking:
        raise click.ClickException(
            f"The database uses KEK version(s) {', '.join(map(str, lacking))}, which {ctx.path} does not hold: this "
            "keyring is older than the one in use. Run the command with the current keyring.")
    primary = ctx.keyring.primary_kek_version
    database_primary = next((v for v, state in states.items() if state == "primary"), None)
    if states.get(primary) == "retired" or (database_primary is not None and primary < database_primary):
        raise click.ClickException(
            f"This keyring's primary KEK version {primary} is older than the database's ({database_primary}); "
            "run the command with the current keyring.")
    if database_primary is None or database_primary == primary:
        primary = ctx.keyring.add_kek_version()
        ctx.save()
        click.echo(f"Added KEK version {primary} to {ctx.path}.")
    else:
        click.echo(f"The keyring's primary KEK version {primary} is not primary in the database yet (an earlier "
                   "rotation stopped half-way); making it so.")
    with ctx.app.app_context(), _writing():
        def finish() -> int:
            register_keyring_versions(ctx.keyring)
            rows = db.session.scalars(sa.select(KekVersion)).all()
            for row in rows:
                if row.version == primary:
                    row.state = "primary"
                elif row.state == "primary":
                    row.state = "active"
            _audit_key_event(AuditAction.KEK_ROTATED, details={"primary": primary})
            return keys_not_under(primary)

        pending = _commit_or_fail(finish)
    click.echo(f"KEK version {primary} is primary: new data keys are wrapped under it.")
    click.echo(f"{pending} data key(s) are still wrapped under older versions: run `intake keys rewrap`.")
    click.echo("Running services reload the keyring when they meet the new version if their passphrase comes from "
               "a file; a service given its passphrase in the environment must be restarted before you rewrap.")


@keys_group.command("rewrap", help="Rewrap data keys under the primary KEK version, in batches; safe to interrupt "
                                   "and run again.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=5000, show_default=True)
def keys_rewrap(batch_size: int) -> None:
    from intake.core.audit import AuditAction
    from intake.core.crypto.datakeys import PrimaryChanged, keys_not_under, primary_kek_version, rewrap_batch

    ctx = _KeysContext()
    done = 0
    unreadable: set[int] = set()
    with ctx.app.app_context(), _writing():
        target = primary_kek_version(lock=False)
        if target not in ctx.keyring.kek_versions:
            raise click.ClickException(f"The database's primary KEK version {target} is not in {ctx.path}.")
        total = keys_not_under(target)
        db.session.commit()
        try:
            with click.progressbar(length=total, label=f"Rewrapping under KEK version {target}",
                                   file=sys.stderr) as bar:
                last_id = 0
                while True:
                    batch = rewrap_batch(db.session(), ctx.keyring, target=target, batch_size=batch_size,
                                         after_id=last_id, unreadable=unreadable)
                    db.session.commit()
                    if not batch.examined:
                        break
                    done += batch.rewrapped
                    last_id = batch.last_id
                    bar.update(batch.examined)
        except PrimaryChanged:
            db.session.rollback()
            raise click.ClickException(
                f"Rewrapped {done} data key(s), then KEK version {target} stopped being the primary version (another "
                "rotation happened): run `intake keys rewrap` again.") from None
        except KeyboardInterrupt:
            db.session.rollback()
            click.echo(f"Interrupted after rewrapping {done} data key(s); run `intake keys rewrap` again to go on.",
                       err=True)
            _commit_or_fail(lambda: _audit_key_event(AuditAction.DATA_KEYS_REWRAPPED,
                                                     details={"target": target, "count": done,
                                                              "complete": False}))
            sys.exit(130)
        _commit_or_fail(lambda: _audit_key_event(AuditAction.DATA_KEYS_REWRAPPED,
                                                 details={"target": target, "count": done,
                                                          "complete": not unreadable,
                                                          **({"unreadable": sorted(unreadable)}
                                                             if unreadable else {})}))
        # Keys created meanwhile under an older version (by a process that could not reload the keyring) may sit
        # behind the walk's position: say how many are left rather than claim there are none.
        left = keys_not_under(target)
        db.session.rollback()
    if left > len(unreadable):
        raise click.ClickException(
            f"Rewrapped {done} data key(s); {left - len(unreadable)} more appeared under an older KEK version while "
            "the rewrap ran (a service that has not reloaded the keyring): restart such services, then run "
            "`intake keys rewrap` again.")
    if unreadable:
        raise click.ClickException(
            f"Rewrapped {done} data key(s), but {len(unreadable)} could not be unwrapped and were left as they are "
            f"(damaged, or under a KEK version this keyring lacks): data key id(s) "
            f"{', '.join(map(str, sorted(unreadable)[:20]))}{' …' if len(unreadable) > 20 else ''}. "
            "Do not retire their KEK version; restore them from a backup or investigate.")
    click.echo(f"Rewrapped {done} data key(s); every data key is under KEK version {target}.")


@keys_group.command("retire", help="Remove an old KEK version from the keyring once no data key uses it.")
@click.argument("version", type=int)
def keys_retire(version: int) -> None:
    from intake.core.audit import AuditAction
    from intake.core.crypto.datakeys import register_keyring_versions
    from intake.core.crypto.models import DataKey, KekVersion
    from intake.core.db import utcnow

    ctx = _KeysContext()
    with ctx.app.app_context(), _writing():
        def mark_retired() -> None:
            register_keyring_versions(ctx.keyring)
            query = sa.select(KekVersion).where(KekVersion.version == version)
            if db.engine.dialect.name == "postgresql":
                query = query.with_for_update()
            row = db.session.scalar(query)
            if row is None:
                raise click.ClickException(f"There is no KEK version {version}.")
            if row.state == "primary" or version == ctx.keyring.primary_kek_version:
                raise click.ClickException(f"KEK version {version} is primary: rotate first (`intake keys rotate`).")
            in_use = db.session.scalar(sa.select(sa.func.count()).where(DataKey.kek_version == version)) or 0
            if in_use:
                raise click.ClickException(
                    f"Refusing to retire KEK version {version}: {in_use} data key(s) are still wrapped under it and "
                    "would become unreadable. Run `intake keys rewrap` first.")
            if row.state != "retired":
                row.state = "retired"
                row.retired_at = utcnow()
                _audit_key_event(AuditAction.KEK_RETIRED, details={"version": version})

        try:
            mark_retired()
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
    if version in ctx.keyring.kek_versions:
        ctx.keyring.retire_kek_version(version)
        ctx.save()
    click.echo(f"KEK version {version} is retired and no longer in {ctx.path}. Backups of the database taken while "
               "data keys were wrapped under it can no longer be read with this keyring; keep or destroy older "
               "keyring backups accordingly.")


@keys_group.command("change-passphrase", help="Seal the keyring with a new passphrase.")
@click.option("--passphrase-file", "new_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Read the new passphrase from this file instead of asking for it.")
def keys_change_passphrase(new_file: Path | None) -> None:
    from intake.core.audit import AuditAction

    ctx = _KeysContext()
    new = _new_passphrase(new_file, what="new keyring passphrase")
    if new == ctx.passphrase:
        raise click.ClickException("The new passphrase is the same as the current one.")
    ctx.save(new)
    try:
        Keyring.open(ctx.path, new)
    except KeyringError as exc:  # pragma: no cover - the file was just written
        raise click.ClickException(f"Keyring error after saving: {exc}") from None
    with ctx.app.app_context(), _writing():
        _commit_or_fail(lambda: _audit_key_event(AuditAction.KEYRING_PASSPHRASE_CHANGED, details={}))
    click.echo(f"{ctx.path} is now sealed with the new passphrase. Give the service the new passphrase "
               "(INTAKE_KEYRING_PASSPHRASE_FILE or INTAKE_KEYRING_PASSPHRASE) now: running services read the "
               "passphrase file again when they reload the keyring after a rotation, and need it when they next "
               "start. Re-seal keyring backups if they used the old one.")


@keys_group.command("backup", help="Write a sealed copy of the keyring to a new file, to keep apart from the "
                                   "database backups.")
@click.argument("destination", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--passphrase-file", "backup_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Seal the copy with the passphrase in this file instead of the keyring's own.")
def keys_backup(destination: Path, backup_file: Path | None) -> None:
    from intake.core.audit import AuditAction

    ctx = _KeysContext()
    passphrase = _new_passphrase(backup_file, what="backup passphrase") if backup_file else ctx.passphrase
    try:
        ctx.keyring.write_copy(destination, passphrase)
        copy = Keyring.open(destination, passphrase)
    except KeyringError as exc:
        raise click.ClickException(f"Keyring error: {exc}") from None
    if copy.kek_versions != ctx.keyring.kek_versions or any(
        copy.kek(v) != ctx.keyring.kek(v) for v in copy.kek_versions
    ):
        raise click.ClickException(f"The copy at {destination} does not match the keyring; do not rely on it.")
    with ctx.app.app_context(), _writing():
        _commit_or_fail(lambda: _audit_key_event(
            AuditAction.KEYRING_BACKED_UP, details={"kek_versions": list(copy.kek_versions)}))
    click.echo(f"Wrote a sealed copy of the keyring (KEK versions {', '.join(map(str, copy.kek_versions))}) to "
               f"{destination} and checked that it opens. Store it apart from the database backups: whoever holds "
               "both, and the passphrase, can read everything; whoever loses it cannot read the backups at all.")


# ---------------------------------------------------------------------------------------------------------------
# Database


@click.group("db", help="Database schema migrations.")
def db_group() -> None:
    pass


@db_group.command("upgrade", help="Apply migrations up to REVISION (default: head).")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    from intake.core import migrate

    migrate.upgrade(db.engine, revision)
    click.echo(f"Database at {', '.join(migrate.current_revisions(db.engine)) or 'base'}.")
    if migrate.is_at_head(db.engine):
        from intake.accounts.operations import reseal_legacy_secrets
        from intake.core.crypto import current_keyring
        from intake.core.crypto.datakeys import register_keyring_versions

        def finish() -> int:
            register_keyring_versions(current_keyring())
            return reseal_legacy_secrets()

        moved = _commit_or_fail(finish)
        if moved:
            click.echo(f"Moved {moved} two-factor secret(s) onto their accounts' data keys.")


@db_group.command("downgrade", help="Revert migrations down to REVISION.")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision: str) -> None:
    from intake.core import migrate

    migrate.downgrade(db.engine, revision)
    click.echo(f"Database at {', '.join(migrate.current_revisions(db.engine)) or 'base'}.")


@db_group.command("current", help="Show the revision the database is at.")
@with_appcontext
def db_current() -> None:
    from intake.core import migrate

    click.echo(", ".join(migrate.current_revisions(db.engine)) or "base")


# ---------------------------------------------------------------------------------------------------------------
# Audit log


@click.group("audit", help="The tamper-evident audit log.")
def audit_group() -> None:
    pass


@audit_group.command("checkpoint", help="Sign a checkpoint over the log now (nothing happens if no event is new "
                                        "since the last one). Run it from a timer to cover a quiet log.")
@with_appcontext
def audit_checkpoint() -> None:
    from intake.core.audit import checkpoints
    from intake.core.crypto import current_keyring

    config = current_app.config
    try:
        with _writing():
            made = _commit_or_fail(lambda: checkpoints.checkpoint_now(
                db.session(), keyring=current_keyring(), origin=config["AUDIT_ORIGIN"],
                path=checkpoints.checkpoint_file(config)))
    except checkpoints.CheckpointRefused as exc:
        raise click.ClickException(f"Refusing to sign a checkpoint: {exc}. Run `intake audit verify`.") from None
    if made is None:
        click.echo("No event since the last checkpoint; nothing to sign.")
        return
    click.echo(f"Signed checkpoint {made.id} over {made.tree_size} events (root {made.root_hash.hex()}).")
    click.echo(f"Appended to {checkpoints.checkpoint_file(config)}.")


@audit_group.command("verify", help="Check every hash link, the Merkle tree at every checkpoint and every "
                                    "checkpoint signature. Exits 1 if anything is wrong.")
@click.option("--vkey", "vkeys", multiple=True, metavar="KEY",
              help="Trust this verifier key (name+hash+base64, as `intake audit key` prints) instead of the "
                   "keyring's. Repeat for several.")
@click.option("--checkpoint-file", type=click.Path(dir_okay=False, path_type=Path),
              help="The checkpoint file to compare with (default: AUDIT_CHECKPOINT_FILE).")
@click.option("--no-checkpoint-file", is_flag=True, help="Check only the checkpoints in the database.")
@click.option("--jobs", type=click.IntRange(1, 64), default=lambda: min(os.cpu_count() or 1, 4), show_default="the "
              "number of processors, at most 4", help="Processes hashing blocks of events side by side.")
@with_appcontext
def audit_verify(vkeys: tuple[str, ...], checkpoint_file: Path | None, no_checkpoint_file: bool, jobs: int) -> None:
    from intake.core.audit import service
    from intake.core.audit.note import Verifier

    try:
        verifiers = [Verifier.from_string(v) for v in vkeys] or None
    except ValueError as exc:
        raise click.ClickException(f"--vkey: {exc}") from None
    if checkpoint_file is not None and not checkpoint_file.is_file():
        raise click.ClickException(f"--checkpoint-file: {checkpoint_file} is not a file.")
    path = None if no_checkpoint_file else checkpoint_file
    report = service.verify(verifiers=verifiers, checkpoint_file=path, use_configured_file=not no_checkpoint_file,
                            jobs=jobs)
    click.echo(f"Checked {report.events} events, {report.checkpoints} checkpoints in the database and "
               f"{report.file_checkpoints} in the checkpoint file in {report.seconds:.3f} s "
               f"({report.events_per_second:,.0f} events/s).")
    for warning in report.warnings:
        click.echo(f"Note: {warning}.")
    if report.ok:
        click.echo("OK: every hash link, the tree at every checkpoint and every signature hold.")
    else:
        first = report.first_bad_seq
        click.echo(f"FAILED: {report.total_problems} problem(s)"
                   + (f"; the first bad event is {first}." if first is not None else "."), err=True)
        for problem in report.problems:
            click.echo(f"  [{problem.code}] {problem.message}", err=True)
        if report.total_problems > len(report.problems):
            click.echo(f"  … and {report.total_problems - len(report.problems)} more.", err=True)
    try:
        with _writing():
            _commit_or_fail(lambda: service.record_verification(report, actor=None))
    except sa.exc.SQLAlchemyError as exc:
        click.echo(f"The verification could not be recorded in the audit log ({exc.__class__.__name__}).", err=True)
    if not report.ok:
        sys.exit(1)


@audit_group.command("key", help="Print the public key that verifies this log's checkpoints (C2SP vkey).")
@with_appcontext
def audit_key() -> None:
    from intake.core.audit import service

    click.echo(service.verifier_key().to_string())


# ---------------------------------------------------------------------------------------------------------------
# Case files


@click.group("export", help="Case files for legal teams.")
def export_group() -> None:
    pass


@export_group.command("work", help="Build queued case files one after another (for EXPORT_RUNNER=worker, run as a "
                                   "service of its own); also deletes expired files and marks dead builds failed.")
@click.option("--once", is_flag=True, help="Stop when nothing is left in the queue instead of waiting for more.")
@with_appcontext
def export_work(once: bool) -> None:
    from intake.exports import runner

    built = runner.work(current_app._get_current_object(), once=once)  # type: ignore[attr-defined]
    click.echo(f"Built {built} case file(s).")


@export_group.command("purge", help="Delete the stored case files whose time for download is up, and mark builds "
                                    "whose process died as failed. Run it from a timer.")
@with_appcontext
def export_purge() -> None:
    from intake.exports.operations import expire_due, reclaim_stale

    with _writing():
        expired, failed = _commit_or_fail(lambda: (expire_due(config=current_app.config), reclaim_stale()))
    click.echo(f"Deleted {expired} expired case file(s); marked {failed} interrupted build(s) as failed.")


@export_group.command("public-key", help="Print the minisign public key (minisign.pub) that verifies the "
                                         "manifests of case files, for recipients.")
@with_appcontext
def export_public_key() -> None:
    from intake.core.crypto import current_keyring
    from intake.exports.signing import public_key_text

    click.echo(public_key_text(current_keyring()), nl=False)


@export_group.command("verify", help="Check a case file as its recipient would: decryption with the age identity, "
                                     "both minisign signatures, every file's SHA-256 and size, the audit "
                                     "checkpoint's signature and every custody event's inclusion proof.")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--identity", "identity_file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The recipient's age identity file (AGE-SECRET-KEY-1...), as age-keygen writes it.")
@click.option("--public-key", "public_key_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The minisign public key the organisation published (default: this service's own key).")
@click.option("--audit-key", default=None, help="The audit log's verifier key (default: the one the manifest names).")
@with_appcontext
def export_verify(bundle: Path, identity_file: Path, public_key_file: Path | None, audit_key: str | None) -> None:
    from intake.core.crypto import current_keyring
    from intake.exports.archive import InvalidIdentity, parse_identities
    from intake.exports.signing import public_key_text
    from intake.exports.verify import verify_bundle

    try:
        identities = parse_identities(identity_file.read_text(encoding="utf-8"))
    except (InvalidIdentity, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{identity_file}: {exc}") from None
    key = (public_key_file.read_text(encoding="utf-8") if public_key_file is not None
           else public_key_text(current_keyring()))
    report = verify_bundle(bundle, identities, public_key=key, audit_key=audit_key)
    for good, text in report.findings:
        click.echo(f"{'ok  ' if good else 'FAIL'} {text}")
    for warning in report.warnings:
        click.echo(f"note {warning}")
    if not report.ok:
        raise click.exceptions.Exit(1)
    click.echo("The case file is intact, signed and its custody proved.")


# ---------------------------------------------------------------------------------------------------------------
# Accounts


def _commit_or_fail(action: Any) -> Any:
    from intake.accounts.operations import AccountError

    try:
        result = action()
        db.session.commit()
    except AccountError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    except BaseException:
        db.session.rollback()
        raise
    return result


@click.command("setup-link", help="Print a one-time link that creates the first admin (only while no account "
                                  "exists).")
@click.option("--if-no-accounts", is_flag=True, help="Say nothing and succeed when accounts already exist.")
@with_appcontext
def setup_link(if_no_accounts: bool) -> None:
    from intake.accounts import operations as ops

    if ops.setup_is_complete():
        if if_no_accounts:
            return
        raise click.ClickException("Accounts exist already; an admin invites people from the admin pages or with "
                                   "`intake users invite`.")
    link = _commit_or_fail(ops.issue_setup_link)
    minutes = current_app.config["SETUP_LINK_MINUTES"]
    click.echo("")
    click.echo("No account exists yet. Open this one-time link to create the first admin")
    click.echo(f"(it works once and expires in {minutes} minutes; run `intake setup-link` for a new one):")
    click.echo("")
    click.echo(f"    {link.url}")
    click.echo("")


@click.group("users", help="Accounts.")
def users_group() -> None:
    pass


@users_group.command("invite", help="Create an account and print its one-time enrolment link.")
@click.option("--username", required=True)
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice(["interviewer", "reviewer", "legal", "coordinator", "auditor", "admin"]))
@with_appcontext
def users_invite(username: str, roles: tuple[str, ...]) -> None:
    from intake.accounts import operations as ops

    link = _commit_or_fail(lambda: ops.invite_account(username=username, roles=list(roles), actor=None))
    hours = current_app.config["INVITATION_HOURS"]
    click.echo(f"Enrolment link for {link.invitation.account.username} (works once, expires in {hours} hours):")
    click.echo(link.url)


@users_group.command("list", help="List accounts and their roles.")
@with_appcontext
def users_list() -> None:
    from intake.accounts.models import Account

    for account in db.session.scalars(sa.select(Account).order_by(Account.username)):
        state = "active" if account.can_sign_in else ("deactivated" if not account.is_active else "not enrolled")
        click.echo(f"{account.username:24} {','.join(account.role_names):28} {state}")


@click.group("tokens", help="Personal API tokens.")
def tokens_group() -> None:
    pass


@tokens_group.command("create", help="Create a personal API token for an account and print it once.")
@click.option("--username", required=True)
@click.option("--name", default="command line", show_default=True)
@click.option("--days", type=click.IntRange(1, 365), default=None, help="Lifetime (default from configuration).")
@with_appcontext
def tokens_create(username: str, name: str, days: int | None) -> None:
    from intake.accounts import operations as ops
    from intake.accounts.models import Account

    account = db.session.scalar(sa.select(Account).where(Account.username == ops.normalise_username(username)))
    if account is None or not account.can_sign_in:
        raise click.ClickException(f"No enrolled, active account named {username!r}.")
    _token, plaintext = _commit_or_fail(lambda: ops.create_api_token(account, name=name, expires_in_days=days))
    click.echo("The token is shown only this once; store it in a password manager:", err=True)
    click.echo(plaintext)


# ---------------------------------------------------------------------------------------------------------------
# Doctor


def _doctor_audit(config: Any) -> int:
    """The audit log's last event and checkpoint, and whether the checkpoint file is there: one line each."""
    from intake.core.audit import checkpoints, service
    from intake.core.audit.models import AuditEvent

    last = db.session.scalar(sa.select(sa.func.max(AuditEvent.seq))) or 0
    latest = service.latest_checkpoint()
    covered = latest.tree_size if latest is not None else 0
    click.echo(f"ok       audit log holds {last} events; the latest checkpoint covers {covered}"
               + (f" (signed {latest.created_at:%Y-%m-%d %H:%M} UTC)" if latest is not None else ""))
    path = checkpoints.checkpoint_file(config)
    if latest is not None and not path.is_file():
        click.echo(f"ERROR    the audit checkpoint file {path} is missing although checkpoints exist: restore it "
                   "from its copy")
        return 1
    return 0


@click.command("doctor", help="Check the database, migrations, keyring and configuration.")
@with_appcontext
def doctor() -> None:
    from intake.core import migrate

    config = current_app.config
    problems = 0
    try:
        db.session.execute(sa.text("SELECT 1"))
        click.echo(f"ok       database reachable ({db.engine.dialect.name})")
    except sa.exc.SQLAlchemyError as exc:
        click.echo(f"ERROR    database unreachable: {exc.__class__.__name__}")
        problems += 1
    else:
        current, heads = migrate.current_revisions(db.engine), migrate.head_revisions()
        if set(current) == set(heads):
            click.echo(f"ok       migrations at head ({', '.join(heads)})")
        else:
            click.echo(f"ERROR    migrations not at head: database at {', '.join(current) or 'base'}, code at "
                       f"{', '.join(heads)}; run `intake db upgrade`")
            problems += 1
    keyring = current_app.extensions["intake.keyring"]
    click.echo(f"ok       keyring {config['KEYRING_PATH']} opened (KEK versions "
               f"{', '.join(map(str, keyring.kek_versions))})")
    if not problems:
        from intake.core.crypto.datakeys import kek_status

        versions, _destroyed = kek_status(keyring)
        unreadable = [v for v in versions if v.data_keys and not v.in_keyring]
        if unreadable:
            click.echo("ERROR    data keys are wrapped under KEK version(s) "
                       f"{', '.join(str(v.version) for v in unreadable)}, which this keyring does not hold")
            problems += 1
        pending = sum(v.data_keys for v in versions if v.state != "primary")
        if pending and not unreadable:
            click.echo(f"WARNING  {pending} data key(s) are not under the primary KEK version: run "
                       "`intake keys rewrap`")
        problems += _doctor_audit(config)
    for warning in configuration_warnings(config):
        click.echo(f"WARNING  {warning}")
    sys.exit(1 if problems else 0)
