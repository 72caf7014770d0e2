"""Setting up what an export needs: a legal officer, a recipient with a fresh age key, a case holding records."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable
from datetime import date
from typing import Any

import pyrage
from flask import Flask

from intake.core.db import db


def age_identity() -> tuple[str, str]:
    """A fresh age X25519 identity: (secret key text, public key)."""
    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def register_recipient(app: Flask, admin_id: int, *, key: str = "un-iiim", category: str = "un_mechanism",
                       country: str | None = None, is_authority: bool = False,
                       public_keys: Iterable[str] = ()) -> int:
    from intake.accounts.models import Account
    from intake.recipients.operations import RecipientInput, register

    with app.app_context():
        recipient = register(RecipientInput(
            key=key, name=f"Recipient {key}", category=category, country=country, is_authority=is_authority,
            agreement_reference="AGR-2024-01", agreement_date=date(2024, 1, 15), contact="desk@example.org",
            age_recipients=list(public_keys)), actor=db.session.get(Account, admin_id))
        db.session.commit()
        return int(recipient.id)


def make_case(app: Flask, legal_id: int, testimony_ids: Iterable[int], *, reference: str = "LC-1") -> int:
    from intake.accounts.models import Account
    from intake.cases import operations as cases
    from intake.testimonies.models import Testimony

    with app.app_context():
        actor = db.session.get(Account, legal_id)
        assert actor is not None
        case = cases.create_case(reference, "Shelling of Stepanakert", recipient=None, actor=actor)
        for testimony_id in testimony_ids:
            cases.add_testimony(case, db.session.get(Testimony, testimony_id), actor=actor)
        db.session.commit()
        return int(case.id)


def build_export(app: Flask, legal_id: int, case_id: int, recipient_id: int, purpose: str) -> tuple[int, Any]:
    """Queue and build an export as the operations do (without the web layer); its id and end state."""
    from intake.accounts.models import Account
    from intake.cases.models import Case
    from intake.exports import operations as exports
    from intake.exports.runner import run
    from intake.recipients.models import Recipient

    with app.app_context():
        export = exports.request_export(db.session.get(Case, case_id), db.session.get(Recipient, recipient_id),
                                        purpose, actor=db.session.get(Account, legal_id))
        db.session.commit()
        export_id = int(export.id)
    return export_id, run(app, export_id)


def bundle_files(app: Flask, export_id: int, secret: str) -> dict[str, bytes]:
    """Every file of the built bundle, decrypted with `secret`."""
    from intake.exports.models import Export
    from intake.exports.operations import bundle_path

    with app.app_context():
        export = db.session.get(Export, export_id)
        assert export is not None
        encrypted = bundle_path(app.config, export).read_bytes()
    plain = pyrage.decrypt(encrypted, [pyrage.x25519.Identity.from_str(secret)])
    files = {}
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                files[member.name] = extracted.read()
    return files
