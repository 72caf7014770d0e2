"""Running the retention schedule: every record due is disposed of in a transaction of its own.

Unlike operations, `run` commits (as `intake.exports.operations.build` does): one transaction per record, so a
record that cannot be disposed of costs only its own disposal, and a record is never left half disposed of: its
shredding, its person's and the disposal record commit together, or none of them does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from intake.core.db import db, utcnow, write_intent
from intake.retention.operations import Candidate, Disposal, dispose, expired

log = logging.getLogger(__name__)


@dataclass
class Report:
    """What a run found and did. In a dry run `disposed` stays empty and `due` is what would be disposed of."""

    now: datetime
    dry_run: bool
    due: list[Candidate] = field(default_factory=list)
    held: list[Candidate] = field(default_factory=list)
    disposed: list[Disposal] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # no longer due when their turn came
    failed: list[tuple[int, str]] = field(default_factory=list)  # testimony id, the error's class

    @property
    def ok(self) -> bool:
        return not self.failed


def run(config: Any, now: datetime | None = None, *, actor: Any = None, dry_run: bool = False) -> Report:
    """Dispose of every record the schedule has expired at `now` (default: the present) and no case holds.

    Each record gets its own transaction, committed before the next begins; a failure is rolled back, logged
    (the record's id and the error's class only) and reported, and the run goes on. A dry run changes nothing.
    """
    moment = now or utcnow()
    report = Report(now=moment, dry_run=dry_run)
    token = write_intent.set(False)
    try:
        for candidate in expired(config, moment):
            (report.held if candidate.held else report.due).append(candidate)
    finally:
        db.session.rollback()
        write_intent.reset(token)
    if dry_run:
        return report
    for candidate in report.due:
        token = write_intent.set(True)
        try:
            disposal = dispose(candidate, config=config, now=moment, actor=actor)
            db.session.commit()
        except Exception as exc:
            db.session.rollback()
            log.exception("retention disposal failed", extra={"testimony": candidate.testimony_id})
            report.failed.append((candidate.testimony_id, exc.__class__.__name__))
            continue
        finally:
            write_intent.reset(token)
        if disposal is None:
            report.skipped.append(candidate.testimony_id)
        else:
            report.disposed.append(disposal)
    return report
