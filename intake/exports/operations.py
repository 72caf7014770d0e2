"""Case-file exports, from the preview to the deleted file.

- `preview`: for a case, a recipient and a purpose, which records would go, at which disclosure, and why the
  others would not (nothing is decrypted: decisions are taken on the consent's clear columns).
- `request_export`: queues the build and appends the `export_requested` share event naming the recipient and the
  records, in the same transaction (the request needs a fresh two-factor code; the view checks it).
- `build`: run by `intake.exports.runner` outside any request: decides again for every record (consent may have
  changed since the preview), signs an audit checkpoint covering the records' custody so far, streams the bundle
  (`intake.exports.bundle`) to a file, and marks it ready for `EXPORT_KEEP_HOURS` with the `export_built` event.
- `open_download`, `cancel`, `cancel_for_withdrawal`, `expire_due`, `reclaim_stale`: the rest of its life. Every
  build, download and cancellation is audited as a share, with the recipient and the records' ids.

Operations never commit, except `build`, which runs outside a request and commits its own short transactions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from consent.records import Disclosure, Purpose
from intake.cases.models import Case
from intake.cases.operations import case_testimony_ids
from intake.consents.operations import InputRefused, latest_record
from intake.core.access.exports import ExportDecision, decide_for_export
from intake.core.audit import AuditAction, record_event
from intake.core.db import db, utcnow
from intake.exports.models import PENDING, CancelReason, Export, ExportRecord, ExportStatus
from intake.recipients.models import Recipient
from intake.testimonies.models import Attachment, Testimony

log = logging.getLogger("intake.exports")

# A build that has not reported progress for this long is taken for dead (its process was killed).
STALE_AFTER = timedelta(minutes=10)
PROGRESS_EVERY = 25  # records between two progress reports


def export_folder(config: Any) -> Path:
    configured = config.get("EXPORT_PATH") or ""
    return Path(configured) if configured else Path(config["INSTANCE_PATH"]) / "exports"


def bundle_path(config: Any, export: Export) -> Path:
    return export_folder(config) / f"{export.bundle_id}.tar.age"


def download_name(case: Case, export: Export) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in case.reference)[:40].strip("-") or "case"
    return f"{safe}-{export.bundle_id[:8]}.tar.age"


@dataclass(frozen=True)
class PreviewRow:
    testimony_id: int
    pseudonym: str
    included: bool
    disclosure: Disclosure | None
    reason: str
    detail: str
    attachments: int  # that would go
    withheld_attachments: int


def _withheld(testimony: Testimony, decision: ExportDecision) -> tuple[int, int]:
    """How many of the testimony's attachments would go and how many would be withheld (from clear columns)."""
    from intake.core.access.exports import IDENTIFYING_MEDIA

    if not decision.included:
        return 0, 0
    record = latest_record(testimony.id)
    media = set(record.media) if record is not None else set()
    rows = db.session.execute(sa.select(Attachment.medium).where(Attachment.testimony_id == testimony.id)).all()
    going = sum(1 for (medium,) in rows if medium in media and not (
        decision.disclosure is Disclosure.ANONYMOUS and medium in IDENTIFYING_MEDIA))
    return going, len(rows) - going


def check_purpose(recipient: Recipient, purpose: str) -> Purpose:
    if purpose not in {p.value for p in recipient.purposes}:
        raise InputRefused.one("purpose", _l("Case files go to this recipient only for: %(purposes)s.",
                                             purposes=", ".join(p.value for p in recipient.purposes)))
    return Purpose(purpose)


def preview(case: Case, recipient: Recipient, purpose: Purpose) -> list[PreviewRow]:
    """What an export of `case` to `recipient` for `purpose` would hold if it were built now."""
    rows = []
    for testimony_id in case_testimony_ids(case.id):
        testimony = db.session.get(Testimony, testimony_id)
        if testimony is None:
            continue
        decision = decide_for_export(testimony, recipient, purpose)
        going, withheld = _withheld(testimony, decision)
        rows.append(PreviewRow(testimony.id, testimony.pseudonym, decision.included, decision.disclosure,
                               decision.reason, decision.detail, going, withheld))
    return rows


def request_export(case: Case, recipient: Recipient, purpose: str, *, actor: Any) -> Export:
    """Queue a build of `case` for `recipient` and `purpose`; refused if no record would go."""
    if not recipient.active:
        raise InputRefused.one("recipient", _l("This recipient is no longer active."))
    chosen = check_purpose(recipient, purpose)
    included = [row.testimony_id for row in preview(case, recipient, chosen) if row.included]
    if not included:
        raise InputRefused.one("", _l("No record in this case may go to this recipient for this purpose."))
    export = Export(bundle_id=str(uuid.uuid4()), case_id=case.id, recipient_id=recipient.id, purpose=chosen.value,
                    status=ExportStatus.QUEUED.value, requested_at=utcnow(), requested_by_id=actor.id,
                    progress_total=len(included))
    db.session.add(export)
    db.session.flush()
    record_event(AuditAction.EXPORT_REQUESTED, actor=actor, target_type="testimony", target_ids=included,
                 details={"export": export.id, "case": case.id, "recipient": recipient.id, "purpose": chosen.value})
    return export


def exports_of(case: Case) -> list[Export]:
    return list(db.session.scalars(sa.select(Export).where(Export.case_id == case.id)
                                   .order_by(Export.requested_at.desc(), Export.id.desc())))


def export_in_case(case: Case, export_id: int) -> Export | None:
    return db.session.scalar(sa.select(Export).where(Export.id == export_id, Export.case_id == case.id))


def records_of(export: Export) -> list[ExportRecord]:
    return list(db.session.scalars(sa.select(ExportRecord).where(ExportRecord.export_id == export.id)
                                   .order_by(ExportRecord.id)))


def included_ids(export: Export) -> list[int]:
    return list(db.session.scalars(sa.select(ExportRecord.testimony_id).where(
        ExportRecord.export_id == export.id, ExportRecord.included.is_(True)).order_by(ExportRecord.id)))


def _delete_file(config: Any, export: Export) -> None:
    with contextlib.suppress(FileNotFoundError):
        bundle_path(config, export).unlink()
    with contextlib.suppress(FileNotFoundError):
        bundle_path(config, export).with_suffix(".part").unlink()
    export.deleted_at = utcnow()


def _share_targets(export: Export) -> list[int]:
    """The records an event about `export` names: those it holds, or before it was built those it would read."""
    ids = included_ids(export)
    if ids or export.status != ExportStatus.QUEUED:
        return ids
    return case_testimony_ids(export.case_id)


def _cancelled(export: Export, *, why: str, actor: Any, config: Any) -> None:
    targets = _share_targets(export)
    export.status = ExportStatus.CANCELLED.value
    export.cancelled_at = utcnow()
    export.cancelled_by_id = getattr(actor, "id", None)
    export.cancel_reason = why
    _delete_file(config, export)
    record_event(AuditAction.EXPORT_CANCELLED, actor=actor, target_type="testimony", target_ids=targets,
                 details={"export": export.id, "recipient": export.recipient_id, "purpose": export.purpose,
                          "why": why})


def cancel(export: Export, *, actor: Any, config: Any) -> None:
    """A member cancels an export not yet downloaded (a running build stops at its next record)."""
    if export.status not in PENDING:
        raise InputRefused.one("", _l("Only an export that has not been downloaded yet can be cancelled."))
    _cancelled(export, why=CancelReason.BY_MEMBER.value, actor=actor, config=config)


def cancel_for_withdrawal(testimony: Testimony, *, actor: Any, config: Any) -> list[Export]:
    """After a withdrawal: cancel every export not yet downloaded that the record may no longer go into (the
    decision is taken again with the withdrawal in force). Returns those cancelled."""
    from intake.cases.models import CaseRecord

    listed = sa.select(ExportRecord.export_id).where(ExportRecord.testimony_id == testimony.id,
                                                    ExportRecord.included.is_(True))
    queued = sa.select(Export.id).join(CaseRecord, CaseRecord.case_id == Export.case_id).where(
        CaseRecord.testimony_id == testimony.id, Export.status == ExportStatus.QUEUED.value)
    pending = list(db.session.scalars(sa.select(Export).where(
        Export.status.in_([s.value for s in PENDING]), sa.or_(Export.id.in_(listed), Export.id.in_(queued)))
        .order_by(Export.id).with_for_update()))
    cancelled = []
    for export in pending:
        recipient = db.session.get(Recipient, export.recipient_id)
        if recipient is None or not decide_for_export(testimony, recipient, Purpose(export.purpose)).included:
            _cancelled(export, why=CancelReason.CONSENT_WITHDRAWN.value, actor=actor, config=config)
            cancelled.append(export)
    return cancelled


def cancel_for_recipient(recipient: Recipient, *, actor: Any, config: Any) -> list[Export]:
    """Cancel every export for `recipient` not yet downloaded (it was deactivated)."""
    pending = list(db.session.scalars(sa.select(Export).where(
        Export.recipient_id == recipient.id, Export.status.in_([s.value for s in PENDING]))
        .order_by(Export.id).with_for_update()))
    for export in pending:
        _cancelled(export, why=CancelReason.RECIPIENT_DEACTIVATED.value, actor=actor, config=config)
    return pending


@dataclass(frozen=True)
class SharedWith:
    export_id: int
    recipient: str
    purpose: str
    downloaded_at: datetime


def shared_with(testimony_id: int) -> list[SharedWith]:
    """The recipients of downloaded exports that included the record: they have to be told of a withdrawal."""
    rows = db.session.execute(
        sa.select(Export.id, Recipient.name, Export.purpose, Export.first_downloaded_at)
        .join(ExportRecord, ExportRecord.export_id == Export.id).join(Recipient, Recipient.id == Export.recipient_id)
        .where(ExportRecord.testimony_id == testimony_id, ExportRecord.included.is_(True),
               Export.first_downloaded_at.is_not(None))
        .order_by(Export.first_downloaded_at))
    return [SharedWith(i, name, purpose, at) for i, name, purpose, at in rows if at is not None]


class NotDownloadable(Exception):
    """The export cannot be downloaded (not built, cancelled, expired or deleted): `message` says which."""

    def __init__(self, message: Any) -> None:
        super().__init__(str(message))
        self.message = message


_UNAVAILABLE: dict[str, Any] = {
    ExportStatus.QUEUED: _l("This case file cannot be downloaded yet: it is still being built."),
    ExportStatus.BUILDING: _l("This case file cannot be downloaded yet: it is still being built."),
    ExportStatus.CANCELLED: _l("This case file cannot be downloaded: it was cancelled."),
    ExportStatus.EXPIRED: _l("This case file has expired and was deleted. Build it again if it is still needed."),
    ExportStatus.FAILED: _l("This case file cannot be downloaded: it could not be built."),
}


def open_download(export: Export, *, actor: Any, config: Any) -> Path:
    """The built file, for `actor` to download now; audited as a share of the records it holds."""
    now = utcnow()
    if export.status in (ExportStatus.READY, ExportStatus.DOWNLOADED) and export.expires_at is not None \
            and export.expires_at <= now:
        _expire(export, config=config)
        raise NotDownloadable(_l("This case file has expired and was deleted. Build it again if it is still "
                                 "needed."))
    if export.status not in (ExportStatus.READY, ExportStatus.DOWNLOADED):
        raise NotDownloadable(_UNAVAILABLE.get(export.status, _UNAVAILABLE[ExportStatus.FAILED]))
    path = bundle_path(config, export)
    if not path.is_file():
        _expire(export, config=config)
        raise NotDownloadable(_l("The stored case file is gone. Build it again if it is still needed."))
    export.status = ExportStatus.DOWNLOADED.value
    export.downloads += 1
    if export.first_downloaded_at is None:
        export.first_downloaded_at = now
    record_event(AuditAction.EXPORT_DOWNLOADED, actor=actor, target_type="testimony", target_ids=included_ids(export),
                 details={"export": export.id, "recipient": export.recipient_id, "purpose": export.purpose,
                          "download": export.downloads})
    return path


def _expire(export: Export, *, config: Any) -> None:
    export.status = ExportStatus.EXPIRED.value
    _delete_file(config, export)
    record_event(AuditAction.EXPORT_CANCELLED, actor=None, target_type="testimony", target_ids=included_ids(export),
                 details={"export": export.id, "recipient": export.recipient_id, "purpose": export.purpose,
                          "why": "expired"})


def expire_due(*, config: Any, now: datetime | None = None) -> int:
    """Delete every built file whose time is up; returns how many."""
    moment = now or utcnow()
    due = list(db.session.scalars(sa.select(Export).where(
        Export.status.in_([ExportStatus.READY.value, ExportStatus.DOWNLOADED.value]), Export.expires_at <= moment)
        .with_for_update()))
    for export in due:
        _expire(export, config=config)
    return len(due)


def reclaim_stale(*, now: datetime | None = None) -> int:
    """Mark builds whose process died (no progress for `STALE_AFTER`) as failed, so they can be built again."""
    moment = now or utcnow()
    stale = list(db.session.scalars(sa.select(Export).where(
        Export.status == ExportStatus.BUILDING.value, Export.heartbeat_at < moment - STALE_AFTER).with_for_update()))
    for export in stale:
        _failed(export, "interrupted")
    return len(stale)


def _failed(export: Export, code: str) -> None:
    targets = _share_targets(export)
    export.status = ExportStatus.FAILED.value
    export.failure = code
    export.finished_at = utcnow()
    record_event(AuditAction.EXPORT_CANCELLED, actor=None, target_type="testimony", target_ids=targets,
                 details={"export": export.id, "recipient": export.recipient_id, "purpose": export.purpose,
                          "why": "failed", "failure": code})


# --- building ------------------------------------------------------------------------------------------------


def _claim(export_id: int) -> Export | None:
    """Take a queued export for building: decide every record again and list the decisions (one transaction)."""
    export = db.session.scalar(sa.select(Export).where(Export.id == export_id).with_for_update())
    if export is None or export.status != ExportStatus.QUEUED:
        return None
    recipient = db.session.get(Recipient, export.recipient_id)
    if recipient is None:
        return None
    now = utcnow()
    export.status = ExportStatus.BUILDING.value
    export.started_at = export.heartbeat_at = now
    included = 0
    for testimony_id in case_testimony_ids(export.case_id):
        testimony = db.session.get(Testimony, testimony_id)
        if testimony is None:
            continue
        decision = decide_for_export(testimony, recipient, Purpose(export.purpose), at=now)
        included += decision.included
        db.session.add(ExportRecord(
            export_id=export.id, testimony_id=testimony.id, included=decision.included,
            disclosure=decision.disclosure.value if decision.disclosure else None, reason=decision.reason,
            label=f"record-{included:05d}" if decision.included else None))
    export.progress_total = included
    export.progress_done = 0
    return export


def build(export_id: int, *, config: Any) -> ExportStatus | None:
    """Build a queued export to its file; returns the state it ended in (None if it was not queued).

    Runs in an application context of its own (never inside a request's transaction), committing short
    transactions: the claim, progress reports, and the end.
    """
    from intake.core.audit import checkpoints
    from intake.core.crypto import current_keyring
    from intake.exports.bundle import BuildCancelled, write_bundle

    keyring = current_keyring()
    with _writing():
        export = _claim(export_id)
        if export is None:
            db.session.rollback()
            return None
        if export.progress_total == 0:
            _failed(export, "nothing_permitted")
            db.session.commit()
            return ExportStatus.FAILED
        checkpoint = checkpoints.checkpoint_now(db.session(), keyring=keyring, origin=config["AUDIT_ORIGIN"],
                                                path=checkpoints.checkpoint_file(config))
        db.session.commit()
    folder = export_folder(config)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    final = bundle_path(config, export)
    partial = final.with_suffix(".part")
    try:
        result = write_bundle(export, partial, config=config, keyring=keyring, checkpoint=checkpoint,
                              progress=lambda done: _progress(export_id, done))
    except BuildCancelled:
        db.session.rollback()
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        return ExportStatus.CANCELLED
    except Exception:
        log.exception("export build failed", extra={"export": export_id})
        db.session.rollback()
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        with _writing():
            failed = db.session.scalar(sa.select(Export).where(Export.id == export_id).with_for_update())
            if failed is not None and failed.status == ExportStatus.BUILDING:
                _failed(failed, "error")
            db.session.commit()
        return ExportStatus.FAILED
    db.session.rollback()  # the long read of the build ends here
    with _writing():
        done = db.session.scalar(sa.select(Export).where(Export.id == export_id).with_for_update())
        if done is None or done.status != ExportStatus.BUILDING:
            # Cancelled while it was built (by a member, or by a withdrawal of consent): the file never goes out.
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            db.session.commit()
            return ExportStatus(done.status) if done is not None else None
        os.replace(partial, final)
        now = utcnow()
        done.status = ExportStatus.READY.value
        done.finished_at = now
        done.expires_at = now + timedelta(hours=int(config["EXPORT_KEEP_HOURS"]))
        done.progress_done = done.progress_total
        done.size = result.size
        done.sha256 = result.sha256
        done.manifest_sha256 = result.manifest_sha256
        done.checkpoint_size = checkpoint.tree_size if checkpoint is not None else result.checkpoint_size
        record_event(AuditAction.EXPORT_BUILT, actor=None, target_type="testimony", target_ids=included_ids(done),
                     details={"export": done.id, "recipient": done.recipient_id, "purpose": done.purpose,
                              "records": len(result.labels), "withheld_attachments": result.withheld_attachments,
                              "manifest_sha256": result.manifest_sha256})
        db.session.commit()
    return ExportStatus.READY


@contextlib.contextmanager
def _writing() -> Any:
    from intake.core.db import write_intent

    token = write_intent.set(True)
    try:
        yield
    finally:
        write_intent.reset(token)


def _progress(export_id: int, done: int) -> None:
    """Report progress in a transaction of its own; raises `BuildCancelled` if the export was cancelled."""
    from intake.exports.bundle import BuildCancelled

    with db.separate_transaction(writes=True) as session:
        export = session.scalar(sa.select(Export).where(Export.id == export_id).with_for_update())
        if export is None or export.status != ExportStatus.BUILDING:
            raise BuildCancelled()
        export.progress_done = done
        export.heartbeat_at = utcnow()
