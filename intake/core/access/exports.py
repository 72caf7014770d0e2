"""What goes into a case file, and the reading of it: the one place an export decrypts testimony.

`decide_for_export` applies `consent.policy` to one testimony for the export's purpose and recipient now: a record is
included only if it is submitted, not erased, and its consent allows that purpose for that recipient, and it goes at
the disclosure the consent granted for the purpose, never more. `read_for_export` then opens what that disclosure
allows and nothing else, already redacted:

- `public` and `confidential`: the person's identity (their name, year and date of birth, contacts and address;
  never their relatives, whose details are theirs) with the pseudonym; the narrative as told.
- `pseudonymous`: the pseudonym code; no identity; every stretch of the narrative a reviewer marked as identifying
  replaced.
- `anonymous`: neither identity nor pseudonym (the bundle names the record by its folder); marked stretches
  replaced; the interview's date cut to its month; incidents' descriptions of places and victims replaced.

Attachments go only if the latest consent version covers their medium; at `anonymous` only documents go, as a
voice, a face or a place in a picture identifies. Those left out are listed as withheld, with why. The consent's
sealed particulars (witness, interpreter, follow-up contact, best-interests note) and the reviewers' analysis never
go into a case file.

Reading happens only for an export that is building: the request that started it appended the `export_requested`
share event naming the recipient and the records, in the transaction that queued it, and the build appends
`export_built` when it ends. Nothing here is recorded per record.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from consent.policy import decide
from consent.records import Disclosure, Purpose
from intake.core.access import IncidentView, _opened
from intake.core.crypto.blobs import blob_store
from intake.core.crypto.datakeys import open_data_key
from intake.core.crypto.envelope import Binding
from intake.core.crypto.fields import open_value
from intake.core.crypto.stream import encrypted_chunk_size, open_stream, parse_header
from intake.core.db import db, utcnow

WITHHELD = "[withheld: identifying detail]"
NOT_SUBMITTED = "not_submitted"
ERASED = "erased"
PURPOSE_NOT_FOR_RECIPIENT = "purpose_not_for_recipient"
MEDIUM_NOT_CONSENTED = "medium_not_consented"
IDENTIFYING_MEDIUM = "identifying_medium"
# Media that identify a person by their voice, face or surroundings: left out of anonymous case files.
IDENTIFYING_MEDIA = frozenset({"audio", "photo", "video"})
IDENTITY_FIELDS = ("name", "birth_year", "date_of_birth", "contacts", "contact", "address")


@dataclass(frozen=True)
class ExportDecision:
    testimony_id: int
    included: bool
    disclosure: Disclosure | None
    reason: str  # `consent.policy.Reason` or one of the reasons above
    detail: str = ""


def decide_for_export(testimony: Any, recipient: Any, purpose: Purpose, *,
                      at: datetime | None = None) -> ExportDecision:
    """Whether `testimony` may go to `recipient` for `purpose` now, and at which disclosure (nothing is read)."""
    from intake.consents.operations import current_consent
    from intake.testimonies.models import TestimonyStatus

    if testimony.data_key.destroyed_at is not None:
        return ExportDecision(testimony.id, False, None, ERASED)
    if testimony.status == TestimonyStatus.DRAFT:
        return ExportDecision(testimony.id, False, None, NOT_SUBMITTED)
    if purpose not in recipient.purposes:
        return ExportDecision(testimony.id, False, None, PURPOSE_NOT_FOR_RECIPIENT)
    decision = decide(current_consent(testimony.id), purpose, recipient.for_policy(), at or utcnow())
    return ExportDecision(testimony.id, decision.allowed, decision.disclosure, decision.reason.value,
                          decision.detail)


@dataclass(frozen=True)
class ExportedAttachment:
    id: int
    medium: str
    graphic: bool
    added_at: datetime
    included: bool
    withheld_why: str | None
    media_type: str | None = None
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class ExportedConsent:
    """The consent version that authorised the export, as stored clear (never its sealed particulars)."""

    number: int
    recorded_at: datetime
    script_language: str
    script_hash: str
    method: str
    grants: dict[str, str]
    media: list[str]
    exclusions: list[list[str]]
    is_minor: bool
    review_date: date | None


@dataclass
class ExportedRecord:
    testimony_id: int
    disclosure: Disclosure
    pseudonym: str | None  # None at `anonymous`
    language: str | None
    region: str | None
    interviewed: str | None  # the day, or at `anonymous` the month (YYYY-MM)
    submitted_at: datetime | None
    revision: int
    narrative: str | None
    narrative_declined: bool
    declined: list[str]
    incidents: list[IncidentView] = field(default_factory=list)
    identity: dict[str, Any] | None = None
    consent: ExportedConsent | None = None
    withdrawals: list[tuple[datetime, list[str]]] = field(default_factory=list)
    attachments: list[ExportedAttachment] = field(default_factory=list)


def _check_building(export: Any, testimony_id: int) -> None:
    from intake.exports.models import ExportRecord, ExportStatus

    if export.status != ExportStatus.BUILDING:
        raise PermissionError("case files are read only while their export is building")
    listed = db.session.scalar(sa.select(ExportRecord.included).where(
        ExportRecord.export_id == export.id, ExportRecord.testimony_id == testimony_id))
    if listed is not True:
        raise PermissionError("the record is not included in this export")


def _identity(identity: Any) -> dict[str, Any] | None:
    if not isinstance(identity, dict):
        return None
    own = {key: identity[key] for key in IDENTITY_FIELDS if identity.get(key)}
    return own or None


def _incident(incident: IncidentView, anonymous: bool) -> IncidentView:
    details = dict(incident.details)
    details.pop("description", None)  # free text no reviewer marks: whose details it holds is unknown
    if anonymous:
        place = details.get("place")
        if isinstance(place, dict) and str(place.get("description") or "").strip():
            details["place"] = {**place, "description": WITHHELD}
        victims = details.get("victims")
        if isinstance(victims, dict) and str(victims.get("description") or "").strip():
            details["victims"] = {**victims, "description": WITHHELD}
    return IncidentView(incident.id, incident.type, incident.month, incident.region, details)


def read_for_export(export: Any, testimony: Any, disclosure: Disclosure) -> ExportedRecord:
    """Open `testimony` for `export` at `disclosure`: only what that level allows, redacted as the module says."""
    from intake.consents.operations import latest_record, withdrawals_of
    from intake.identities.models import Person
    from intake.review.operations import active_spans
    from intake.withdrawals.own_data import redacted_narrative

    _check_building(export, testimony.id)
    key = open_data_key(testimony.data_key)
    shows_identity = disclosure.rank >= Disclosure.CONFIDENTIAL.rank
    anonymous = disclosure is Disclosure.ANONYMOUS
    details = _opened(open_value(testimony, "details", key=key)) or {}
    declined = [d for d in details.get("declined") or [] if isinstance(d, str)]
    narrative = _opened(open_value(testimony, "narrative", key=key))
    narrative_declined = "narrative" in declined
    if narrative_declined or not narrative:
        narrative = None
    elif not shows_identity:
        narrative = redacted_narrative(narrative, [(s.start, s.stop) for s in active_spans(testimony.id)],
                                       WITHHELD)
    interviewed = None
    if testimony.interviewed_on is not None:
        interviewed = testimony.interviewed_on.strftime("%Y-%m") if anonymous else testimony.interviewed_on.isoformat()
    record = ExportedRecord(
        testimony_id=testimony.id, disclosure=disclosure, pseudonym=None if anonymous else testimony.pseudonym,
        language=testimony.language, region=testimony.region, interviewed=interviewed,
        submitted_at=testimony.submitted_at, revision=testimony.revision, narrative=narrative,
        narrative_declined=narrative_declined, declined=declined,
        incidents=[_incident(IncidentView(i.id, i.type, i.month, i.region,
                                          _opened(open_value(i, "details", key=key)) or {}), anonymous)
                   for i in testimony.incidents],
    )
    if shows_identity:
        person = db.session.scalar(sa.select(Person).where(Person.pseudonym == testimony.pseudonym))
        record.identity = _identity(_opened(open_value(person, "identity"))) if person is not None else None
    consent = latest_record(testimony.id)
    media: set[str] = set()
    if consent is not None:
        media = set(consent.media)
        record.consent = ExportedConsent(
            consent.number, consent.recorded_at, consent.script_language, consent.script_hash, consent.method,
            dict(consent.grants), sorted(consent.media), [list(e) for e in consent.exclusions], consent.is_minor,
            consent.review_date)
    record.withdrawals = [(w.at, sorted(w.purposes)) for w in (w.withdrawal() for w in withdrawals_of(testimony.id))]
    for attachment in testimony.attachments:
        why = None
        if attachment.medium not in media:
            why = MEDIUM_NOT_CONSENTED
        elif anonymous and attachment.medium in IDENTIFYING_MEDIA:
            why = IDENTIFYING_MEDIUM
        if why is not None:
            record.attachments.append(ExportedAttachment(attachment.id, attachment.medium, attachment.graphic,
                                                         attachment.created_at, False, why))
            continue
        info = _opened(open_value(attachment, "details", key=key)) or {}
        size = info.get("size")
        record.attachments.append(ExportedAttachment(
            attachment.id, attachment.medium, attachment.graphic, attachment.created_at, True, None,
            media_type=str(info.get("media_type") or "application/octet-stream"),
            size=size if isinstance(size, int) else None,
            sha256=str((info.get("digest") or {}).get("value") or "") or None))
    return record


def export_attachment_chunks(export: Any, testimony: Any, attachment_id: int, *, config: Any) -> Iterator[bytes]:
    """The original of an attachment `read_for_export` included, decrypted piece by piece as it is read."""
    from intake.testimonies.models import Attachment

    _check_building(export, testimony.id)
    attachment = db.session.get(Attachment, attachment_id)
    if attachment is None or attachment.testimony_id != testimony.id:
        raise PermissionError("the attachment is not part of this record")
    key = open_data_key(testimony.data_key)
    chunk_size, _salt = parse_header(attachment.stream_header)
    stored = blob_store(config, attachment.storage).read(attachment, encrypted_chunk_size(chunk_size))
    return open_stream(key, Binding("attachments", "content", attachment.id), attachment.stream_header, stored)
