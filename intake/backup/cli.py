"""`intake backup create` and `intake backup verify`."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from intake.backup import operations as ops

__all__ = ["backup_group"]


def _size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{size} bytes"  # pragma: no cover - the loop always returns


@click.group("backup", help="Database backups: make one, or check one by restoring it into a scratch database.")
def backup_group() -> None:
    pass


@backup_group.command("create", help="Back up the database (an online SQLite copy, or pg_dump's custom format) "
                                     "and any attachment files, with a sidecar describing them. The keyring is "
                                     "not included: back it up apart with `intake keys backup`.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the backup to this file (default: <instance>/backups/intake-<UTC time>.sqlite3 or "
                   ".pgdump). An existing file is never overwritten.")
@with_appcontext
def backup_create(output: Path | None) -> None:
    from intake.cli import _commit_or_fail, _writing
    from intake.core.audit.checkpoints import CheckpointRefused

    try:
        with _writing():
            signed = _commit_or_fail(ops.sign_checkpoint)
    except CheckpointRefused as exc:
        click.echo(f"WARNING: no audit checkpoint could be signed before the backup ({exc}); run "
                   "`intake audit verify`. Backing up all the same.", err=True)
    else:
        if signed is not None:
            click.echo(f"Signed audit checkpoint {signed.id} over {signed.tree_size} events first.")
    try:
        made = ops.create_backup(output)
    except ops.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    manifest = made.manifest
    kind = "SQLite" if manifest["database"] == "sqlite" else "PostgreSQL, pg_dump custom format"
    click.echo(f"Wrote {made.path} ({kind}, {_size(manifest['size'])}, SHA-256 {manifest['sha256']}).")
    audit = manifest["audit"]
    checkpoint = audit["checkpoint"]
    click.echo(f"  {len(manifest['tables'])} tables, {sum(manifest['tables'].values()):,} rows; the audit log holds "
               f"{audit['events']} events"
               + (f", the latest checkpoint covers {checkpoint['tree_size']}." if checkpoint else
                  ", none covered by a checkpoint."))
    if made.blobs is not None:
        click.echo(f"Wrote {made.blobs} ({manifest['blobs']['files']} encrypted attachment file(s), "
                   f"{_size(manifest['blobs']['size'])}).")
    click.echo(f"Wrote {made.sidecar} (what the backup holds; `intake backup verify` checks against it).")
    click.echo(ops.KEYRING_NOTE)
    click.echo(f"Done in {made.seconds:.1f} s. Check the backup with: intake backup verify {made.path}")


@backup_group.command("verify", help="Restore a backup into a scratch database (never the live one) and check it: "
                                     "schema at head, row counts as recorded, a random sample decrypts with the "
                                     "running keyring, attachment files present, and the audit log verifies "
                                     "against the checkpoint file. Exits 1 if anything fails.")
@click.argument("backup", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--checkpoint-file", type=click.Path(dir_okay=False, path_type=Path),
              help="The audit checkpoint file to compare with (default: AUDIT_CHECKPOINT_FILE); give the copy kept "
                   "off the server when verifying elsewhere.")
@click.option("--sample", type=click.IntRange(0, 10_000), default=ops.SAMPLE, show_default=True,
              help="How many random narratives and identities to decrypt.")
@with_appcontext
def backup_verify(backup: Path, checkpoint_file: Path | None, sample: int) -> None:
    if checkpoint_file is not None and not checkpoint_file.is_file():
        raise click.ClickException(f"--checkpoint-file: {checkpoint_file} is not a file.")
    try:
        result = ops.verify_backup(backup, checkpoint_file=checkpoint_file, sample=sample)
    except ops.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    for check in result.checks:
        click.echo(f"{'ok' if check.ok else 'FAILED':8} {check.name}: {check.message}")
    for note in result.notes:
        click.echo(f"note     {note}")
    if not result.ok:
        raise click.ClickException(f"{backup} did not verify ({', '.join(result.failed)}); see above. "
                                   f"Checked in {result.seconds:.1f} s.")
    click.echo(f"OK: {backup} restores and verifies (checked in {result.seconds:.1f} s).")
