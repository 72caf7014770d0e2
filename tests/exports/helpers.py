"""Setting up what an export needs: a legal officer, a recipient with a fresh age key, a case holding records."""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
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
        case, recipient = db.session.get(Case, case_id), db.session.get(Recipient, recipient_id)
        assert case is not None and recipient is not None
        export = exports.request_export(case, recipient, purpose, actor=db.session.get(Account, legal_id))
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


def export_users(app: Flask) -> tuple[int, int, int]:
    """An interviewer, a legal officer and an administrator; their account ids."""
    import pyotp

    from intake.accounts import operations as ops

    with app.app_context():
        made = [ops.create_account(username=name, roles=[role], password="violet kettle harbour sixteen",
                                   totp_secret=pyotp.random_base32())
                for name, role in (("ani", "interviewer"), ("lev", "legal"), ("ada", "admin"))]
        db.session.commit()
        return made[0].id, made[1].id, made[2].id


@dataclass(frozen=True)
class Planted:
    """A submitted interview whose every part carries a string of its own, found nowhere else (ASCII, nothing HTML
    or JSON would escape): a search of a case file's bytes then tells which parts of which record went in."""

    testimony_id: int
    pseudonym: str
    narrative: str  # goes at every disclosure (no reviewer marked any of it)
    identity: tuple[str, ...]  # name, contact, address: only at confidential and above
    relatives: str  # the relatives' details are theirs: never
    place: str  # an incident's description of the place: withheld at anonymous
    victims: str  # an incident's description of the victims: withheld at anonymous
    sealed: tuple[str, ...]  # the consent's particulars, the incident's free text, the file names: never
    photo: bytes  # the photo's content: a PNG with `photo_mark` after its end
    document: bytes  # the document's content: a PDF holding `document_mark` in a comment
    photo_mark: str
    document_mark: str


def photo_bytes(marker: str) -> bytes:
    from tests.interviews.factories import PIXEL_PNG

    return PIXEL_PNG + marker.encode("ascii")


def document_bytes(marker: str) -> bytes:
    return (b"%PDF-1.4\n% " + marker.encode("ascii")
            + b"\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")


def planted_record(app: Flask, interviewer_id: int, token: str, *,
                   grants: dict[str, str] | None = None, media: Iterable[str] = ("photo", "document")) -> Planted:
    """An interview through the operations (as `tests.interviews.factories.planted_interview`), every string in it
    marked with `token`: a photo and a document attached, two incidents, a referral; submitted. The first consent
    grants `grants` (by default documentation at pseudonymous and un_mechanisms at anonymous) and `media`."""
    import io

    from intake.accounts.models import Account
    from intake.interviews import operations as ops
    from tests.interviews.factories import consent, incident, readiness, referral

    mark = f"{token}-SENTINEL"
    name, contact, address = f"NAME-{mark} Anahit", f"CONTACT-{mark} 099 000", f"ADDRESS-{mark} Tumanyan 12"
    sealed = (f"WITNESS-{mark}", f"INTERPRETER-{mark}", f"FOLLOW-UP-{mark}", f"FOLLOW-UP-TIMES-{mark}",
              f"INCIDENT-TEXT-{mark}", f"FILENAME-PHOTO-{mark}.png", f"FILENAME-DOC-{mark}.pdf")
    planted = {"narrative": f"NARRATIVE-{mark} the checkpoint near Kornidzor", "relatives": f"RELATIVES-{mark}",
               "place": f"PLACE-{mark} by the school", "victims": f"VICTIMS-{mark} two neighbours"}
    photo_mark, document_mark = f"PHOTO-{mark}", f"DOCUMENT-{mark}"
    photo, document = photo_bytes(photo_mark), document_bytes(document_mark)
    with app.app_context():
        actor = db.session.get(Account, interviewer_id)
        given = consent(witness=sealed[0], interpreter=sealed[1], follow_up_permitted=True,
                        follow_up_method=sealed[2], follow_up_times=sealed[3], media=frozenset(media),
                        **({"grants": grants} if grants is not None else {}))
        testimony = ops.start_interview(readiness(), given, actor=actor, config=app.config)
        ops.save_person(testimony, ops.PersonInput(name=name, birth_year=1980, contact=contact,
                                                   relatives=planted["relatives"], address=address),
                        actor=actor, config=app.config)
        ops.save_narrative(testimony, planted["narrative"], declined=False, actor=actor, config=app.config)
        ops.add_incident(testimony, incident(description=sealed[4], place_description=planted["place"],
                                             victims_description=planted["victims"]), actor=actor, config=app.config)
        ops.add_incident(testimony, incident(type="checkpoint_detention", date_precision="month",
                                             date_start="2023-10", place_id="lachin-corridor"),
                         actor=actor, config=app.config)
        ops.store_interview_attachment(testimony, io.BytesIO(photo), filename=sealed[5], declared_medium="photo",
                                       graphic=False, actor=actor, config=app.config)
        ops.store_interview_attachment(testimony, io.BytesIO(document), filename=sealed[6],
                                       declared_medium="document", graphic=False, actor=actor, config=app.config)
        ops.save_referral(testimony, referral(), actor=actor, config=app.config)
        assert ops.submit(testimony, idempotency_key=uuid.uuid4().hex, actor=actor, config=app.config) is True
        db.session.commit()
        return Planted(testimony_id=int(testimony.id), pseudonym=testimony.pseudonym,
                       narrative=planted["narrative"], identity=(name, contact, address),
                       relatives=planted["relatives"], place=planted["place"], victims=planted["victims"],
                       sealed=sealed, photo=photo, document=document, photo_mark=photo_mark,
                       document_mark=document_mark)
