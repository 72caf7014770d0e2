"""`intake retention show` and `intake retention run [--dry-run]`."""

from __future__ import annotations

import sys
from datetime import datetime

import click
from flask import current_app
from flask.cli import with_appcontext

from intake.retention.operations import Candidate, expired, schedule

__all__ = ["retention_group"]


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _describe(candidate: Candidate) -> str:
    return (f"testimony {candidate.testimony_id} ({candidate.rule.category}, {candidate.rule.setting}="
            f"{candidate.days}, expired {_when(candidate.expired_at)})")


@click.group("retention", help="The retention schedule: shred the records kept as long as the configuration "
                               "allows, with a disposal record in the audit log.")
def retention_group() -> None:
    pass


@retention_group.command("show", help="Print the schedule in force, and how many records are due now.")
@with_appcontext
def retention_show() -> None:
    from intake.core.db import db, utcnow

    config = current_app.config
    click.echo("Retention schedule (`intake retention run` shreds what expired; 0 keeps records until someone "
               "acts):")
    for rule, days in schedule(config):
        kept = f"{days} days" if days > 0 else "kept"
        hold = "; a case holds them" if rule.held_by_cases else ""
        click.echo(f"  {rule.setting:30} {kept:>11}  {rule.category}: counted from {rule.counted_from}{hold}")
    found = expired(config, utcnow())
    db.session.rollback()
    held = sum(1 for candidate in found if candidate.held)
    click.echo(f"Due now: {len(found) - held} record(s); held by a case: {held}.")


@retention_group.command("run", help="Crypto-shred every record whose retention period has ended and that no case "
                                     "holds, one transaction per record, each with a `retention_disposed` event "
                                     "naming the rule. Run it daily from a timer. Exits 1 if a record could not "
                                     "be disposed of.")
@click.option("--dry-run", is_flag=True, help="List what would be disposed of, and change nothing.")
@with_appcontext
def retention_run(dry_run: bool) -> None:
    from intake.retention.runner import run

    report = run(current_app.config, dry_run=dry_run)
    if dry_run:
        for candidate in report.due:
            click.echo(f"Would dispose of {_describe(candidate)}.")
    else:
        for disposal in report.disposed:
            click.echo(f"Disposed of testimony {disposal.testimony_id} ({disposal.category}, {disposal.rule}="
                       f"{disposal.days}, expired {_when(disposal.expired_at)}): shredded "
                       f"{' and '.join(disposal.parts)}.")
    for candidate in report.held:
        click.echo(f"Held by a case: {_describe(candidate)}.")
    for testimony_id in report.skipped:
        click.echo(f"Left alone: testimony {testimony_id} was no longer due when its turn came.")
    for testimony_id, error in report.failed:
        click.echo(f"FAILED: testimony {testimony_id} could not be disposed of ({error}); nothing of it was "
                   "changed.", err=True)
    if dry_run:
        click.echo(f"Dry run, nothing changed: {len(report.due)} record(s) would be disposed of; "
                   f"{len(report.held)} held by a case.")
    else:
        click.echo(f"Disposed of {len(report.disposed)} record(s) by crypto-shredding; {len(report.held)} held by "
                   f"a case; {len(report.failed)} failed.")
    if not report.ok:
        sys.exit(1)
