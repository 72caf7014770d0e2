"""Checking a case file as its recipient would: `intake export verify BUNDLE --identity KEYFILE`.

It decrypts the bundle (age), then checks, reporting each finding:
- the minisign signatures of `manifest.json` and `SHA256SUMS`, with the signing key given (`--public-key`), or
  else the service's own key, or else, with a warning, the key that came inside the bundle;
- that every file is listed in both, with the SHA-256 and size they give, and that nothing is missing or extra;
- the audit checkpoint's signature (C2SP signed note) with the audit key the manifest names (or `--audit-key`);
- every custody event: its hash recomputed from its entry, and its RFC 9162 inclusion proof against the
  checkpoint's root.
Nothing is written to disk, and memory stays bounded: attachments are hashed as they are read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intake.core.audit.chain import event_hash
from intake.core.audit.merkle import verify_inclusion
from intake.core.audit.note import Verifier, open_checkpoint
from intake.exports import minisign
from intake.exports.archive import ArchiveError, InvalidIdentity, iter_archive

# Files read whole (small ones the checks need); every other file is only hashed.
_KEPT_SUFFIXES = ("manifest.json", ".minisig", "SHA256SUMS", "custody.json", "shared-events.json",
                  "export-signing.pub")
_SIGNED = ("manifest.json", "manifest.json.minisig", "SHA256SUMS", "SHA256SUMS.minisig")


@dataclass
class Report:
    findings: list[tuple[bool, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.findings) and all(good for good, _ in self.findings)

    def check(self, good: bool, text: str) -> bool:
        self.findings.append((good, text))
        return good


def _hex_list(values: Any) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def verify_bundle(path: Path, identities: Sequence[str], *, public_key: str | None = None,
                  audit_key: str | None = None) -> Report:
    report = Report()
    digests: dict[str, tuple[str, int]] = {}
    kept: dict[str, bytes] = {}
    try:
        with path.open("rb") as encrypted:
            for member in iter_archive(encrypted, list(identities)):
                digest = hashlib.sha256()
                size = 0
                keep = member.name.endswith(_KEPT_SUFFIXES)
                pieces = []
                for chunk in member.chunks():
                    digest.update(chunk)
                    size += len(chunk)
                    if keep:
                        pieces.append(chunk)
                digests[member.name] = (digest.hexdigest(), size)
                if keep:
                    kept[member.name] = b"".join(pieces)
    except (ArchiveError, InvalidIdentity) as exc:
        report.check(False, f"decryption: {exc}")
        return report
    report.check(True, f"decrypted with age: {len(digests)} files")
    missing = [name for name in _SIGNED if name not in kept]
    if not report.check(not missing, "the bundle holds manifest.json, SHA256SUMS and their signatures"
                        if not missing else f"missing: {', '.join(missing)}"):
        return report
    _check_signatures(report, kept, public_key)
    try:
        manifest = json.loads(kept["manifest.json"])
    except ValueError:
        report.check(False, "manifest.json is not JSON")
        return report
    _check_files(report, manifest, kept["SHA256SUMS"], digests)
    _check_custody(report, manifest, kept, audit_key)
    return report


def _check_signatures(report: Report, kept: dict[str, bytes], public_key: str | None) -> None:
    key_text = public_key
    if key_text is None:
        bundled = kept.get("export-signing.pub")
        if bundled is None:
            report.check(False, "no signing key was given and the bundle holds none")
            return
        key_text = bundled.decode("utf-8", "replace")
        report.warnings.append("the signatures were checked with the key inside the bundle: compare it with the "
                               "key the organisation published (--public-key)")
    for name in ("manifest.json", "SHA256SUMS"):
        try:
            comment = minisign.verify(key_text, kept[f"{name}.minisig"].decode("utf-8", "replace"), kept[name])
        except minisign.SignatureError as exc:
            report.check(False, f"signature of {name}: {exc}")
        else:
            report.check(True, f"signature of {name} verified (trusted comment: {comment})")


def _check_files(report: Report, manifest: dict[str, Any], sums: bytes, digests: dict[str, tuple[str, int]]) -> None:
    listed = {entry.get("path"): entry for entry in manifest.get("files") or []}
    bad = [name for name, entry in listed.items()
           if digests.get(str(name)) != (entry.get("sha256"), entry.get("size"))]
    report.check(not bad and bool(listed), f"{len(listed)} files match the manifest's SHA-256 and size" if not bad
                 else f"files that do not match the manifest: {', '.join(map(str, bad[:5]))}")
    summed: dict[str, str] = {}
    for line in sums.decode("utf-8", "replace").splitlines():
        digest, _, name = line.partition("  ")
        summed[name] = digest
    wrong = [name for name, digest in summed.items() if digests.get(name, ("", 0))[0] != digest]
    report.check(not wrong, f"{len(summed)} files match SHA256SUMS" if not wrong
                 else f"files that do not match SHA256SUMS: {', '.join(wrong[:5])}")
    unlisted = sorted(set(digests) - set(summed) - {"SHA256SUMS", "SHA256SUMS.minisig"})
    report.check(not unlisted, "no file is unlisted" if not unlisted
                 else f"files listed nowhere: {', '.join(unlisted[:5])}")
    absent = sorted((set(summed) | set(map(str, listed))) - set(digests))
    report.check(not absent, "no listed file is missing" if not absent
                 else f"listed files missing from the bundle: {', '.join(absent[:5])}")


def _check_custody(report: Report, manifest: dict[str, Any], kept: dict[str, bytes], audit_key: str | None) -> None:
    audit = manifest.get("audit") or {}
    checkpoint = audit.get("checkpoint") or {}
    try:
        verifier = Verifier.from_string(audit_key or str(audit.get("verifier_key") or ""))
        signed, _ = open_checkpoint(str(checkpoint.get("note") or ""), [verifier], origin=audit.get("origin"))
    except ValueError as exc:
        report.check(False, f"audit checkpoint: {exc}")
        return
    if audit_key is None:
        report.warnings.append("the checkpoint was checked with the audit key the manifest names: compare it with "
                               "the key the organisation published (--audit-key)")
    root = signed.root_hash
    size = signed.size
    if not report.check(size == checkpoint.get("tree_size") and root.hex() == checkpoint.get("root_hash"),
                        f"audit checkpoint signed over {size} events"):
        return
    proved = failed = 0
    proofs = {int(seq): _hex_list(proof) for seq, proof in (audit.get("proofs") or {}).items()}
    shared_file = json.loads(kept.get("custody/shared-events.json", b"{}") or b"{}")
    shared = {int(e["seq"]): e for e in shared_file.get("events") or []}
    for label, seqs in (audit.get("custody") or {}).items():
        custody = json.loads(kept.get(f"records/{label}/custody.json", b"{}") or b"{}")
        events = {int(e["seq"]): shared.get(int(e["seq"]), e) if e.get("shared") else e
                  for e in custody.get("events") or []}
        if set(events) != {int(s) for s in seqs} or not set(events) <= set(proofs):
            failed += 1
            continue
        for seq, event in events.items():
            leaf = bytes.fromhex(event["hash"])
            if event.get("entry") is not None and event_hash(bytes.fromhex(event["prev_hash"]), event["entry"]) != leaf:
                failed += 1
                continue
            if event.get("shared") and event.get("entry") is None:
                failed += 1  # a shared event whose entry the bundle does not hold
                continue
            if verify_inclusion(leaf, seq - 1, size, proofs[seq], root):
                proved += 1
            else:
                failed += 1
    report.check(failed == 0, f"{proved} custody events proved included in the checkpoint" if not failed
                 else f"{failed} custody events fail their hash or inclusion proof")
