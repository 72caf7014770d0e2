"""Building a case file end to end through the operations: what goes in at which disclosure, signatures and
checksums, custody proofs, and what never goes in."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

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
    recipient = register_recipient(export_app, admin, public_keys=[public])
    case = make_case(export_app, legal, [allowed, refused])
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
    assert [r["record"] for r in manifest["records"]] == ["record-00001"]
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
        pseudonym = db.session.get(Testimony, allowed).pseudonym
    assert pseudonym.encode() not in everything
    # Custody: every listed event is proved included in the signed checkpoint.
    custody = json.loads(files["records/record-00001/custody.json"])
    root = bytes.fromhex(manifest["audit"]["checkpoint"]["root_hash"])
    size = manifest["audit"]["checkpoint"]["tree_size"]
    proofs = {p["seq"]: p["proof"] for p in manifest["audit"]["custody"]["record-00001"]}
    assert custody["events"] and {e["seq"] for e in custody["events"]} == set(proofs)
    for event in custody["events"]:
        assert verify_inclusion(bytes.fromhex(event["hash"]), event["seq"] - 1, size,
                                [bytes.fromhex(h) for h in proofs[event["seq"]]], root)
    assert "export_requested" in custody["access_summary"]
    assert b"<script" not in files["records/record-00001/testimony.html"]
