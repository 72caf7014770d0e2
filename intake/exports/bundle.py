"""Writing a case file: one stream from the database to an age-encrypted tar archive, record after record.

Layout of the archive (the recipient decrypts it with `age`, checks it with `minisign` and `sha256sum`):

    VERIFY.txt                      how to check everything with standard tools
    export-signing.pub              the minisign public key that signed it (compare with the one published)
    fonts/                          the one font the pages use (DejaVu Sans: Latin, Armenian, Cyrillic)
    records/<label>/testimony.json  the record at its disclosure level
    records/<label>/testimony.html  the same, readable and printable, self-contained
    records/<label>/consent.json    the consent version that authorised this case file, and any withdrawals
    records/<label>/custody.json    creation, consent history, access summary, previous exports, custody events
    custody/shared-events.json      the entries of custody events about several records (each written once)
    records/<label>/attachments/<sha256>   the originals the consent and the disclosure allow
    manifest.json                   bundle id, created, recipient, purpose, every file's SHA-256 and size, the
                                    audit checkpoint, each record's custody events by number and the inclusion
                                    proof of each (once)
    manifest.json.minisig           its minisign signature
    SHA256SUMS, SHA256SUMS.minisig  every file's SHA-256 for `sha256sum -c`, signed too

Memory stays bounded whatever the size: records are read, rendered and written one at a time (the session is
emptied after each), attachments go through in pieces, and encryption runs as the archive is written.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app

from consent.records import Disclosure
from intake.cases.models import Case
from intake.cases.operations import case_incident_ids
from intake.core.access.exports import export_attachment_chunks, read_for_export
from intake.core.audit.models import AuditCheckpoint, AuditEvent, format_time
from intake.core.audit.service import proofs_for, verifier_key
from intake.core.db import db, utcnow
from intake.core.keys import Keyring
from intake.exports import minisign, render
from intake.exports.archive import ArchiveWriter
from intake.exports.models import Export, ExportRecord, ExportStatus
from intake.exports.signing import public_key, public_key_text, signing_key
from intake.recipients.models import Recipient
from intake.testimonies.models import Testimony

FONTS = Path(__file__).resolve().parent.parent / "data" / "fonts"
PROGRESS_EVERY = 25
_READ = 1 << 20
_GROUP = 100  # records whose custody events and previous exports are read together


class BuildCancelled(Exception):
    """The export was cancelled while it was built: the partial file is discarded."""


@dataclass(frozen=True)
class BundleResult:
    size: int
    sha256: str
    manifest_sha256: str
    labels: list[str]
    withheld_attachments: int
    checkpoint_size: int


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while piece := source.read(_READ):
            yield piece


def _custody_seqs(testimony_ids: set[int], upto: int) -> dict[int, list[int]]:
    """Per testimony, the sequence numbers of the audit events about it, up to `upto` (one pass over the log's
    testimony events, holding only numbers)."""
    found: dict[int, list[int]] = {i: [] for i in testimony_ids}
    result = db.session.execute(
        sa.select(AuditEvent.seq, AuditEvent.target_ids)
        .where(AuditEvent.target_type == "testimony", AuditEvent.seq <= upto).order_by(AuditEvent.seq),
        execution_options={"yield_per": 10_000})
    for seq, targets in result:
        for target in targets or ():
            try:
                key = int(target)
            except (TypeError, ValueError):
                continue
            if key in found:
                found[key].append(int(seq))
    return found


def _events(seqs: list[int]) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    for start in range(0, len(seqs), 500):
        events += db.session.scalars(sa.select(AuditEvent).where(AuditEvent.seq.in_(seqs[start:start + 500]))
                                     .order_by(AuditEvent.seq))
    return events


def _previous_exports(testimony_ids: list[int], export_id: int) -> dict[int, list[dict[str, Any]]]:
    """For each of `testimony_ids`, the other built exports that included it, oldest first (one query)."""
    found: dict[int, list[dict[str, Any]]] = {}
    rows = db.session.execute(
        sa.select(ExportRecord.testimony_id, Export.bundle_id, Recipient.name, Export.purpose, Export.finished_at,
                  Export.first_downloaded_at, Export.status)
        .join(ExportRecord, ExportRecord.export_id == Export.id).join(Recipient, Recipient.id == Export.recipient_id)
        .where(ExportRecord.testimony_id.in_(testimony_ids), ExportRecord.included.is_(True),
               Export.id != export_id, Export.finished_at.is_not(None),
               Export.status.in_([ExportStatus.READY.value, ExportStatus.DOWNLOADED.value,
                                  ExportStatus.EXPIRED.value, ExportStatus.CANCELLED.value]))
        .order_by(Export.finished_at, Export.id))
    for testimony_id, bundle, name, purpose, built, downloaded, status in rows:
        found.setdefault(testimony_id, []).append({
            "bundle": bundle, "recipient": name, "purpose": purpose, "built_at": format_time(built) if built else None,
            "downloaded_at": format_time(downloaded) if downloaded else None, "status": status})
    return found


def _json_bytes(value: Any) -> bytes:
    """The bytes of ``json.dumps(value, ensure_ascii=False, sort_keys=True, indent=2)`` and a newline, encoded piece
    by piece: with an indent, `json.dumps` first gathers every piece of its output in a list, which for the manifest
    of a large case file takes several times the memory of the text itself."""
    out = io.BytesIO()
    for piece in json.JSONEncoder(ensure_ascii=False, sort_keys=True, indent=2).iterencode(value):
        out.write(piece.encode("utf-8"))
    out.write(b"\n")
    return out.getvalue()


def verify_text(*, bundle_id: str, recipient: str, purpose: str, created: datetime, key_line: str,
                key_id: str) -> str:
    return f"""HOW TO CHECK THIS CASE FILE

Bundle {bundle_id}, built {format_time(created)} for {recipient} ({purpose}).

You need only the standard tools age, minisign and sha256sum (coreutils), and the minisign public key this
organisation gave you. The key that signed this case file is, in one line (key id {key_id}):

    {key_line}

It is also in export-signing.pub beside this file. Compare it with the key you were given separately: a key
that came only inside this bundle proves nothing.

1. Decrypt and unpack (you have done this if you are reading this file):

    age --decrypt -i YOUR-AGE-IDENTITY.txt -o bundle.tar BUNDLE.tar.age
    mkdir bundle && tar -xf bundle.tar -C bundle && cd bundle

   age authenticates every byte: a file changed after it was encrypted for you does not decrypt.

2. Check the signatures of the manifest and of the list of checksums:

    minisign -V -P {key_line} -m manifest.json
    minisign -V -P {key_line} -m SHA256SUMS

   Each must say "Signature and comment signature verified"; the trusted comment names this bundle.

3. Check every file against the signed list:

    sha256sum -c SHA256SUMS

   Every line must end in OK. manifest.json lists the same files with their sizes.

4. Chain of custody. Each record's custody.json lists the service's audit events about it (the entries of those
   about several records at once, such as this case file's request, are in custody/shared-events.json, each
   once). manifest.json holds
   the audit log's signed checkpoint (a C2SP signed note: tree size and RFC 9162 Merkle root, Ed25519) with the
   key that verifies it, and an RFC 9162 inclusion proof for every listed event: with the event's hash as leaf
   hash, the proof of leaf index seq - 1 must give the checkpoint's root. An event's hash is SHA-256 over the
   byte 0x00, the text "intake-audit-event/1" and a newline, prev_hash (32 bytes) and the UTF-8 of its entry.
   `intake export verify BUNDLE.tar.age --identity YOUR-AGE-IDENTITY.txt` checks all of the above at once.

What a record holds depends on the disclosure the person consented to for this purpose:
- confidential or public: their identity is included, to be kept confidential as the agreement says;
- pseudonymous: they are named by their pseudonym code only, and words a reviewer marked as identifying are
  replaced by "[withheld: identifying detail]";
- anonymous: no pseudonym either, the interview's date is cut to its month, descriptions of places and victims
  are replaced, and only documents among the attachments are included.
Attachments left out are listed in testimony.json under "withheld_attachments", with why.
"""


def write_bundle(export: Export, path: Path, *, config: Any, keyring: Keyring, checkpoint: AuditCheckpoint | None,
                 progress: Callable[[int], None]) -> BundleResult:
    """Write the case file of `export` (claimed and BUILDING) to `path`; see the module for what it holds."""
    from intake.core.audit.service import latest_checkpoint

    checkpoint = checkpoint or latest_checkpoint()
    if checkpoint is None:
        raise RuntimeError("no audit checkpoint to prove the records' custody against")
    case = db.session.get(Case, export.case_id)
    recipient = db.session.get(Recipient, export.recipient_id)
    if case is None or recipient is None:
        raise RuntimeError("the export's case or recipient is gone")
    created = utcnow()
    key = signing_key(keyring)
    recipient_info = {"key": recipient.key, "name": recipient.name, "category": recipient.category,
                      "country": recipient.country, "agreement": recipient.agreement_reference}
    rows = [(r.testimony_id, r.label or "", Disclosure(r.disclosure or Disclosure.ANONYMOUS.value))
            for r in db.session.scalars(sa.select(ExportRecord).where(
                ExportRecord.export_id == export.id, ExportRecord.included.is_(True)).order_by(ExportRecord.id))]
    in_case = case_incident_ids(case.id)
    custody = _custody_seqs({t for t, _, _ in rows}, checkpoint.tree_size)
    bundle_info = {"id": export.bundle_id, "case": case.reference, "recipient": recipient.name,
                   "purpose": export.purpose}
    export_id, bundle_id, purpose = export.id, export.bundle_id, export.purpose
    checkpoint_info = {"id": checkpoint.id, "created_at": format_time(checkpoint.created_at),
                       "tree_size": checkpoint.tree_size, "root_hash": checkpoint.root_hash.hex(),
                       "note": checkpoint.note}
    checkpoint_size = checkpoint.tree_size
    withheld = 0
    shared: set[int] = set()
    records: list[dict[str, Any]] = []
    with path.open("wb") as out:
        with ArchiveWriter(out, recipient.age_recipients, mtime=int(created.timestamp())) as archive:
            archive.add_bytes("VERIFY.txt", verify_text(
                bundle_id=bundle_id, recipient=recipient.name, purpose=purpose, created=created,
                key_line=public_key(keyring), key_id=key.key_id_hex).encode("utf-8"))
            archive.add_bytes("export-signing.pub", public_key_text(keyring).encode("utf-8"))
            for name in render.FONT_FILES:
                font = FONTS / name
                archive.add_file(f"fonts/{name}", font.stat().st_size, _file_chunks(font))
            group_events: dict[int, AuditEvent] = {}
            previous: dict[int, list[dict[str, Any]]] = {}
            for done, (testimony_id, label, disclosure) in enumerate(rows, start=1):
                if (done - 1) % _GROUP == 0:
                    # Read once for the next records: an event about many of them (such as this case file's
                    # request) is in every one's custody.
                    group = [t for t, _, _ in rows[done - 1:done - 1 + _GROUP]]
                    group_events = {e.seq: e for e in _events(sorted({s for t in group for s in custody[t]}))}
                    previous = _previous_exports(group, export_id)
                testimony = db.session.get(Testimony, testimony_id)
                if testimony is None:
                    raise RuntimeError("a record of the export is gone")
                record = read_for_export(export, testimony, disclosure)
                chosen = in_case.get(testimony_id, [])
                base = f"records/{label}"
                archive.add_bytes(f"{base}/testimony.json",
                                  render.testimony_json(record, label=label, incidents_in_case=chosen))
                archive.add_bytes(f"{base}/testimony.html", render.testimony_html(
                    record, label=label, incidents_in_case=chosen, bundle=bundle_info))
                archive.add_bytes(f"{base}/consent.json",
                                  render.consent_json(record, purpose=purpose, recipient=recipient_info))
                events = [group_events[s] for s in custody[testimony_id] if s in group_events]
                shared.update(e.seq for e in events if render.is_shared(e))
                archive.add_bytes(f"{base}/custody.json", render.custody_json(
                    label=label, events=events, previous_exports=previous.get(testimony_id, []),
                    checkpoint_size=checkpoint_size))
                for attachment in record.attachments:
                    if not attachment.included:
                        withheld += 1
                        continue
                    archive.add_file(render.attachment_path(label, attachment), attachment.size or 0,
                                     export_attachment_chunks(export, testimony, attachment.id, config=config))
                records.append({"record": label, "disclosure": disclosure.value,
                                "attachments": sum(1 for a in record.attachments if a.included),
                                "withheld_attachments": sum(1 for a in record.attachments if not a.included)})
                db.session.expunge_all()  # what was read for this record is not kept (the group's events stay loaded)
                if done % PROGRESS_EVERY == 0:
                    progress(done)
            group_events, previous = {}, {}
            archive.add_bytes(render.SHARED_EVENTS, render.shared_events_json(_events(sorted(shared))))
            all_seqs = sorted({s for seqs in custody.values() for s in seqs})
            proofs = proofs_for(all_seqs, checkpoint) if all_seqs else {}
            manifest = {
                "format": render.FORMAT,
                "bundle": bundle_id,
                "created_at": format_time(created),
                "case": {"reference": case.reference, "title": case.title},
                "recipient": recipient_info,
                "purpose": purpose,
                "records": records,
                "files": [{"path": e.name, "sha256": e.sha256, "size": e.size} for e in archive.entries],
                "signing_key": public_key(keyring),
                "audit": {
                    "origin": config["AUDIT_ORIGIN"], "verifier_key": verifier_key().to_string(),
                    "checkpoint": checkpoint_info,
                    "custody": {label: custody[testimony_id] for testimony_id, label, _ in rows},
                    "proofs": {str(s): [h.hex() for h in proofs.get(s, [])] for s in all_seqs},
                },
            }
            manifest_bytes = _json_bytes(manifest)
            del manifest, proofs
            entry = archive.add_bytes("manifest.json", manifest_bytes)
            comment = f"intake case file {bundle_id} manifest"
            archive.add_bytes("manifest.json.minisig", minisign.sign(
                key, manifest_bytes, trusted_comment=comment).encode("ascii"))
            sums = "".join(f"{e.sha256}  {e.name}\n" for e in archive.entries).encode("utf-8")
            archive.add_bytes("SHA256SUMS", sums)
            archive.add_bytes("SHA256SUMS.minisig", minisign.sign(
                key, sums, trusted_comment=f"intake case file {bundle_id} SHA256SUMS").encode("ascii"))
            result = archive.close()
    current_app.logger.info("case file built", extra={"export": export_id, "records": len(rows)})
    return BundleResult(size=result.size, sha256=result.sha256, manifest_sha256=entry.sha256,
                        labels=[label for _, label, _ in rows], withheld_attachments=withheld,
                        checkpoint_size=checkpoint_size)
