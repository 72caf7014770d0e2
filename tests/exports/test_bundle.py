"""Building a case file end to end through the operations: what goes in at which disclosure, signatures and
checksums, custody proofs, and what never goes in."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from intake.core.audit.merkle import verify_inclusion
from intake.exports import minisign
from tests.exports.helpers import age_identity, build_export, bundle_files, make_case, register_recipient
from tests.interviews.factories import (
    CONSENT_SENTINELS,
    IDENTITY_SENTINELS,
    SENTINEL_NARRATIVE,
    consent,
    planted_interview,
)


@pytest.fixture
def export_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(EXPORT_RUNNER="inline")


def _users(app: Flask) -> tuple[int, int, int]:
    import pyotp

    from intake.accounts import operations as ops
    from intake.core.db import db

    with app.app_context():
        made = [ops.create_account(username=name, roles=[role], password="violet kettle harbour sixteen",
                                   totp_secret=pyotp.random_base32())
                for name, role in (("ani", "interviewer"), ("lev", "legal"), ("ada", "admin"))]
        db.session.commit()
        return made[0].id, made[1].id, made[2].id


class _User:
    def __init__(self, account_id: int) -> None:
        self.id = account_id


def test_a_case_file_holds_the_permitted_records_signed_and_checksummed(export_app: Flask) -> None:
    interviewer, legal, admin = _users(export_app)
    secret, public = age_identity()
    # The default consent grants un_mechanisms at `anonymous`; the other record refuses it.
    allowed = planted_interview(export_app, _User(interviewer), key="a" * 24)
    refused = planted_interview(export_app, _User(interviewer), key="b" * 24)
    also = planted_interview(export_app, _User(interviewer), key="c" * 24)
    recipient = register_recipient(export_app, admin, public_keys=[public])
    case = make_case(export_app, legal, [allowed, refused, also])
    from intake.consents.operations import record_consent
    from intake.core.db import db
    from intake.testimonies.models import Testimony

    with export_app.app_context():
        record_consent(db.session.get(Testimony, refused), consent(grants={"documentation": "pseudonymous",
                                                                           "un_mechanisms": "anonymous"},
                                                                   exclusions=(("recipient", "un-iiim"),)),
                       actor=None)
        db.session.commit()
    export_id, state = build_export(export_app, legal, case, recipient, "un_mechanisms")
    assert state == "ready"
    files = bundle_files(export_app, export_id, secret)
    manifest = json.loads(files["manifest.json"])
    assert [r["record"] for r in manifest["records"]] == ["record-00001", "record-00002"]
    assert manifest["recipient"]["key"] == "un-iiim" and manifest["purpose"] == "un_mechanisms"
    key = minisign.PublicKey.parse(files["export-signing.pub"].decode())
    assert "manifest" in minisign.verify(key, files["manifest.json.minisig"].decode(), files["manifest.json"])
    minisign.verify(key, files["SHA256SUMS.minisig"].decode(), files["SHA256SUMS"])
    listed = {e["path"]: e for e in manifest["files"]}
    for path, entry in listed.items():
        assert hashlib.sha256(files[path]).hexdigest() == entry["sha256"] and len(files[path]) == entry["size"]
    for line in files["SHA256SUMS"].decode().splitlines():
        digest, name = line.split("  ", 1)
        assert hashlib.sha256(files[name]).hexdigest() == digest
    record = json.loads(files["records/record-00001/testimony.json"])
    assert record["disclosure"] == "anonymous" and record["pseudonym"] is None and record["identity"] is None
    assert SENTINEL_NARRATIVE in record["narrative"]
    # Anonymous: the photo identifies, so it is withheld and listed.
    assert record["attachments"] == [] and record["withheld_attachments"][0]["why"] == "identifying_medium"
    everything = b"".join(files.values())
    for sentinel in [*IDENTITY_SENTINELS.values(), *CONSENT_SENTINELS.values()]:
        assert sentinel.encode() not in everything
    with export_app.app_context():
        pseudonym = db.session.get_one(Testimony, allowed).pseudonym
    assert pseudonym.encode() not in everything
    # Custody: every listed event is proved included in the signed checkpoint.
    custody = json.loads(files["records/record-00001/custody.json"])
    root = bytes.fromhex(manifest["audit"]["checkpoint"]["root_hash"])
    size = manifest["audit"]["checkpoint"]["tree_size"]
    proofs = {seq: manifest["audit"]["proofs"][str(seq)] for seq in manifest["audit"]["custody"]["record-00001"]}
    assert custody["events"] and {e["seq"] for e in custody["events"]} == set(proofs)
    # The case file's request names both records it reads: its entry is written once, not in every record.
    shared = json.loads(files["custody/shared-events.json"])["events"]
    assert [e["action"] for e in shared] == ["export_requested"] and shared[0]["entry"]
    assert [e["entry"] for e in custody["events"] if e["action"] == "export_requested"] == [None]
    other = json.loads(files["records/record-00002/custody.json"])
    assert [e["seq"] for e in other["events"] if e.get("shared")] == [shared[0]["seq"]]
    for event in custody["events"]:
        assert verify_inclusion(bytes.fromhex(event["hash"]), event["seq"] - 1, size,
                                [bytes.fromhex(h) for h in proofs[event["seq"]]], root)
    assert "export_requested" in custody["access_summary"]
    assert b"<script" not in files["records/record-00001/testimony.html"]


def test_a_withdrawal_after_the_build_cancels_the_download(export_app: Flask) -> None:
    from intake.accounts.models import Account
    from intake.core.db import db
    from intake.exports import operations as exports
    from intake.exports.models import Export
    from intake.testimonies.models import Testimony
    from intake.withdrawals import withdraw

    interviewer, legal, admin = _users(export_app)
    secret, public = age_identity()
    testimony_id = planted_interview(export_app, _User(interviewer))
    recipient = register_recipient(export_app, admin, public_keys=[public])
    case = make_case(export_app, legal, [testimony_id])
    export_id, state = build_export(export_app, legal, case, recipient, "un_mechanisms")
    assert state == "ready"
    with export_app.app_context():
        export = db.session.get(Export, export_id)
        assert export is not None
        path = exports.bundle_path(export_app.config, export)
        assert path.is_file()
        withdraw(db.session.get_one(Testimony, testimony_id), purposes=["un_mechanisms"], received_how="in_person",
                 erasure=False, actor=db.session.get(Account, interviewer), config=export_app.config)
        db.session.commit()
    with export_app.app_context():
        export = db.session.get(Export, export_id)
        assert export is not None and export.status == "cancelled" and export.cancel_reason == "consent_withdrawn"
        assert not path.exists()
        with pytest.raises(exports.NotDownloadable):
            exports.open_download(export, actor=db.session.get(Account, legal), config=export_app.config)


def _rebuilt(files: dict[str, bytes], public: str) -> bytes:
    """The bundle re-encrypted to the recipient's public key, as anyone holding that key could."""
    import io
    import tarfile

    import pyrage

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return pyrage.encrypt(buffer.getvalue(), [pyrage.x25519.Recipient.from_str(public)])


def test_verify_accepts_the_bundle_and_catches_any_change(export_app: Flask, tmp_path: Path) -> None:
    from intake.core.db import db
    from intake.exports.models import Export
    from intake.exports.operations import bundle_path
    from intake.exports.signing import public_key
    from intake.exports.verify import verify_bundle

    interviewer, legal, admin = _users(export_app)
    secret, public = age_identity()
    testimony_id = planted_interview(export_app, _User(interviewer))
    recipient = register_recipient(export_app, admin, public_keys=[public])
    export_id, state = build_export(export_app, legal, make_case(export_app, legal, [testimony_id]), recipient,
                                    "un_mechanisms")
    assert state == "ready"
    with export_app.app_context():
        export = db.session.get(Export, export_id)
        assert export is not None
        path = bundle_path(export_app.config, export)
        key = public_key(export_app.extensions["intake.keyring"])
    report = verify_bundle(path, [secret], public_key=key)
    assert report.ok, report.findings
    # A byte changed in transit: age refuses it.
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 1
    (tmp_path / "damaged.age").write_bytes(bytes(damaged))
    assert not verify_bundle(tmp_path / "damaged.age", [secret], public_key=key).ok
    # A record changed and re-encrypted to the recipient: the checksums and signatures refuse it.
    files = bundle_files(export_app, export_id, secret)
    changed = dict(files)
    name = "records/record-00001/testimony.json"
    changed[name] = files[name].replace(b'"anonymous"', b'"public"', 1)
    (tmp_path / "changed.age").write_bytes(_rebuilt(changed, public))
    report = verify_bundle(tmp_path / "changed.age", [secret], public_key=key)
    assert not report.ok and any("do not match" in text for good, text in report.findings if not good)
    # The manifest rewritten to match the changed file: its signature no longer verifies.
    manifest = json.loads(files["manifest.json"])
    for entry in manifest["files"]:
        if entry["path"] == name:
            entry["sha256"] = hashlib.sha256(changed[name]).hexdigest()
            entry["size"] = len(changed[name])
    changed["manifest.json"] = json.dumps(manifest).encode()
    (tmp_path / "resigned.age").write_bytes(_rebuilt(changed, public))
    report = verify_bundle(tmp_path / "resigned.age", [secret], public_key=key)
    assert any(not good and text.startswith("signature of manifest.json") for good, text in report.findings)
    # A custody event's entry altered: its hash no longer matches, so its proof fails.
    custody_name = "records/record-00001/custody.json"
    custody = json.loads(files[custody_name])
    custody["events"][0]["entry"] = custody["events"][0]["entry"].replace("testimony", "testimonY", 1)
    forged = dict(files)
    forged[custody_name] = json.dumps(custody).encode()
    (tmp_path / "custody.age").write_bytes(_rebuilt(forged, public))
    report = verify_bundle(tmp_path / "custody.age", [secret], public_key=key)
    assert any(not good and "custody events fail" in text for good, text in report.findings)
    # The wrong identity cannot open it at all.
    other_secret, _ = age_identity()
    assert not verify_bundle(path, [other_secret], public_key=key).ok


def test_the_verify_command_reports_each_check_and_fails_on_a_damaged_file(export_app: Flask,
                                                                            tmp_path: Path) -> None:
    from intake.core.db import db
    from intake.exports.models import Export
    from intake.exports.operations import bundle_path

    interviewer, legal, admin = _users(export_app)
    secret, public = age_identity()
    testimony_id = planted_interview(export_app, _User(interviewer))
    recipient = register_recipient(export_app, admin, public_keys=[public])
    export_id, _ = build_export(export_app, legal, make_case(export_app, legal, [testimony_id]), recipient,
                                "un_mechanisms")
    with export_app.app_context():
        path = bundle_path(export_app.config, db.session.get_one(Export, export_id))
    identity = tmp_path / "identity.txt"
    identity.write_text(f"# created: for the test\n# public key: {public}\n{secret}\n")
    runner = export_app.test_cli_runner()
    result = runner.invoke(args=["export", "verify", str(path), "--identity", str(identity)])
    assert result.exit_code == 0, result.output
    assert "signature of manifest.json verified" in result.output
    assert "custody events proved included" in result.output and "FAIL" not in result.output
    damaged = tmp_path / "damaged.tar.age"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x40
    damaged.write_bytes(bytes(data))
    result = runner.invoke(args=["export", "verify", str(damaged), "--identity", str(identity)])
    assert result.exit_code == 1 and "FAIL decryption" in result.output
    identity.write_text("not a key\n")
    result = runner.invoke(args=["export", "verify", str(path), "--identity", str(identity)])
    assert result.exit_code == 1 and "line 1 is not an age X25519 identity" in result.output


def test_deactivating_a_recipient_cancels_its_waiting_case_files(export_app: Flask) -> None:
    from intake.accounts.models import Account
    from intake.core.db import db
    from intake.exports import operations as exports
    from intake.exports.models import Export
    from intake.recipients.models import Recipient
    from intake.recipients.operations import set_active

    interviewer, legal, admin = _users(export_app)
    _, public = age_identity()
    testimony_id = planted_interview(export_app, _User(interviewer))
    recipient_id = register_recipient(export_app, admin, public_keys=[public])
    export_id, state = build_export(export_app, legal, make_case(export_app, legal, [testimony_id]), recipient_id,
                                    "un_mechanisms")
    assert state == "ready"
    with export_app.app_context():
        path = exports.bundle_path(export_app.config, db.session.get_one(Export, export_id))
        set_active(db.session.get_one(Recipient, recipient_id), False, actor=db.session.get(Account, admin),
                   config=export_app.config)
        db.session.commit()
    with export_app.app_context():
        export = db.session.get_one(Export, export_id)
        assert export.status == "cancelled" and export.cancel_reason == "recipient_deactivated"
        assert not path.exists()
