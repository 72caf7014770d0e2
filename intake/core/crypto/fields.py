"""The inventory of every encrypted column, and sealing and opening them on model objects.

After Hush Line's encrypted-field contracts: one declared list says which columns hold ciphertext, what they
protect, and under which record's data key. Models declare such columns with `sealed_column`, which refuses a
column missing from the inventory; the tests check the other direction (every column of a table that holds
content or identity is either in the inventory or declared clear below, with the reason it may be clear), that
stored values are ciphertext, and that a ciphertext moved to another row or field fails to open.

Each sealed value is bound to (table, field, row id, data key id): see `envelope`. A model with sealed columns
names the data key they are sealed under with a ``sealing_key`` attribute (its own, or its testimony's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import MappedColumn, mapped_column

from intake.core.crypto.datakeys import KeyDestroyed, open_data_key
from intake.core.crypto.envelope import Binding, OpenDataKey
from intake.core.crypto.envelope import open_field as _open
from intake.core.crypto.envelope import seal_field as _seal

__all__ = [
    "CLEAR_COLUMNS",
    "CONTENT_TABLES",
    "SEALED_FIELDS",
    "SealedField",
    "Tombstone",
    "open_value",
    "seal_value",
    "sealed_column",
    "sealing_key_of",
]

Classification = Literal["identity", "content", "account-secret"]
Kind = Literal["text", "json", "bytes", "stream"]


@dataclass(frozen=True)
class SealedField:
    """One encrypted column: where the ciphertext lives and what it protects.

    ``binding_table`` and ``binding_field`` are the place the ciphertext is bound to; they differ from the column
    only for attachment streams, whose chunks live in their own table (or in files) but are bound to the attachment.
    """

    table: str
    column: str
    classification: Classification
    kind: Kind
    protects: str
    binding_table: str = ""
    binding_field: str = ""
    pad_to: int = 0  # plaintext padded to a multiple of this many bytes, so its length says little

    @property
    def binding(self) -> tuple[str, str]:
        return (self.binding_table or self.table, self.binding_field or self.column)


SEALED_FIELDS: tuple[SealedField, ...] = (
    SealedField("persons", "identity", "identity", "json",
                "name, date of birth, contacts, relatives, exact addresses", pad_to=256),
    SealedField("testimonies", "narrative", "content", "text", "the testimony in the person's own words",
                pad_to=256),
    SealedField("testimonies", "details", "content", "json",
                "readiness answers, questions declined, pauses, wellbeing and referral", pad_to=256),
    SealedField("incidents", "details", "content", "json",
                "date as told, place, victims, alleged perpetrators, the source's relation to it", pad_to=256),
    SealedField("consent_versions", "particulars", "identity", "json",
                "names of the witness and interpreter, the best-interests note, the safe way and times to "
                "contact the person", pad_to=256),
    SealedField("attachments", "details", "content", "json",
                "original file name, media type, size, SHA-256 of the original, capture metadata", pad_to=256),
    SealedField("attachment_chunks", "data", "content", "stream", "the attachment itself, in chunks",
                binding_table="attachments", binding_field="content"),
    SealedField("assessments", "reason", "content", "text", "why a reviewer gave this grade or status"),
    SealedField("incident_codings", "reason", "content", "text", "why a reviewer coded the incident so"),
    SealedField("record_links", "reason", "content", "text", "why a reviewer linked the two records"),
    SealedField("analyst_notes", "text", "content", "text", "a reviewer's note on the testimony"),
    SealedField("accounts", "totp_secret", "account-secret", "bytes", "the two-factor seed"),
)
_BY_PLACE = {(f.table, f.column): f for f in SEALED_FIELDS}

# Tables that hold content or identity: each of their columns is sealed or listed here with why it may be clear.
CONTENT_TABLES = ("persons", "testimonies", "attachments", "attachment_chunks", "incidents", "consent_versions",
                  "consent_withdrawals", "interviews_not_held", "assessments", "incident_codings", "record_links",
                  "identifying_spans", "analyst_notes")
CLEAR_COLUMNS: dict[tuple[str, str], str] = {
    ("persons", "id"): "row id",
    ("persons", "pseudonym"): "the random code that stands for the person everywhere else",
    ("persons", "data_key_id"): "which data key seals the identity",
    ("persons", "name_tag"): "blind index: a keyed, truncated tag shared by many names (see README)",
    ("persons", "other_name_tag"): "blind index of the other reading of a Latin name, as name_tag",
    ("persons", "created_at"): "when the person was first registered",
    ("persons", "created_by_id"): "the account that registered them",
    ("testimonies", "id"): "row id",
    ("testimonies", "pseudonym"): "the person's pseudonym code",
    ("testimonies", "interviewer_id"): "the account that recorded it",
    ("testimonies", "data_key_id"): "which data key seals the content",
    ("testimonies", "status"): "coarse classification: draft, submitted, in review, reviewed, archived",
    ("testimonies", "language"): "coarse classification: language of the interview",
    ("testimonies", "region"): "coarse classification: region, never an exact place",
    ("testimonies", "created_at"): "when it was recorded",
    ("testimonies", "updated_at"): "when it last changed",
    ("testimonies", "interviewed_on"): "the day of the interview",
    ("testimonies", "revision"): "a counter raised by every saved change",
    ("testimonies", "submitted_at"): "when the interviewer submitted it",
    ("testimonies", "idempotency_key"): "random key the client chose for the request that created it",
    ("testimonies", "submission_digest"): "SHA-256 of the creating request, to refuse its key reused for another",
    ("testimonies", "submission_key"): "random key the client chose for its submission",
    ("incidents", "id"): "row id",
    ("incidents", "testimony_id"): "the testimony it belongs to",
    ("incidents", "type"): "coarse classification: incident type from the controlled vocabulary",
    ("incidents", "month"): "coarse classification: month of the incident",
    ("incidents", "region"): "coarse classification: region, never an exact place",
    ("incidents", "created_at"): "when it was recorded",
    ("consent_versions", "id"): "row id",
    ("consent_versions", "testimony_id"): "the testimony it authorises",
    ("consent_versions", "number"): "1 for the first consent, then 2, 3... (versions are never changed)",
    ("consent_versions", "recorded_at"): "when it was given",
    ("consent_versions", "recorded_by_id"): "the interviewer who recorded it",
    ("consent_versions", "script_language"): "language of the script read",
    ("consent_versions", "script_hash"): "SHA-256 of the script read",
    ("consent_versions", "method"): "written, oral with a witness, or mark",
    ("consent_versions", "items"): "the script items confirmed (their codes)",
    ("consent_versions", "capacity_confirmed"): "consent decision input",
    ("consent_versions", "voluntariness_confirmed"): "consent decision input",
    ("consent_versions", "witness_present"): "consent decision input (the name is sealed)",
    ("consent_versions", "interpreter_present"): "consent decision input (the name is sealed)",
    ("consent_versions", "is_minor"): "consent decision input: the minor flow applies",
    ("consent_versions", "guardian_consented"): "consent decision input",
    ("consent_versions", "child_assented"): "consent decision input",
    ("consent_versions", "best_interests_given"): "consent decision input (the note is sealed)",
    ("consent_versions", "grants"): "consent decision input: purposes granted and their disclosure levels",
    ("consent_versions", "media"): "consent decision input: media consented to",
    ("consent_versions", "exclusions"): "consent decision input: recipients, countries or authorities refused",
    ("consent_versions", "follow_up_permitted"): "whether contact is allowed (how and when is sealed)",
    ("consent_versions", "review_date"): "consent decision input: the date it must be reviewed by",
    ("consent_withdrawals", "id"): "row id",
    ("consent_withdrawals", "testimony_id"): "the testimony whose consent is withdrawn",
    ("consent_withdrawals", "at"): "when it takes effect",
    ("consent_withdrawals", "purposes"): "purposes withdrawn (none listed: all of them)",
    ("consent_withdrawals", "received_how"): "how the request came (in person, phone, message, letter, someone else)",
    ("consent_withdrawals", "erasure"): "whether the person asked for their data to be erased",
    ("consent_withdrawals", "recorded_by_id"): "the account that recorded it",
    ("interviews_not_held", "id"): "row id",
    ("interviews_not_held", "recorded_at"): "when",
    ("interviews_not_held", "interviewer_id"): "who decided not to proceed",
    ("interviews_not_held", "stage"): "readiness check or consent",
    ("interviews_not_held", "reasons"): "codes of the reasons (no personal data)",
    ("attachments", "id"): "row id",
    ("attachments", "testimony_id"): "the testimony it belongs to",
    ("attachments", "medium"): "coarse classification: audio, photo, video or document (consent is per medium)",
    ("attachments", "graphic"): "whether reviewers see it blurred first",
    ("attachments", "storage"): "database or files",
    ("attachments", "blob_name"): "generated storage name, random",
    ("attachments", "stream_header"): "stream format, chunk size and the random salt of its key derivation",
    ("attachments", "stored_bytes"): "ciphertext size, visible to whoever holds the storage anyway (whole chunks)",
    ("attachments", "created_at"): "when it was stored",
    ("attachments", "created_by_id"): "the account that stored it",
    ("attachment_chunks", "attachment_id"): "the attachment the chunk belongs to",
    ("attachment_chunks", "idx"): "the chunk's position (also bound into its ciphertext)",
    ("assessments", "id"): "row id",
    ("assessments", "testimony_id"): "the testimony assessed",
    ("assessments", "kind"): "source reliability, information credibility or verification status",
    ("assessments", "value"): "the grade (A-F, 1-6) or status, for filtering and statistics; the reason is sealed",
    ("assessments", "reviewer_id"): "the reviewer who gave it",
    ("assessments", "created_at"): "when",
    ("incident_codings", "id"): "row id",
    ("incident_codings", "incident_id"): "the incident coded",
    ("incident_codings", "testimony_id"): "its testimony",
    ("incident_codings", "type"): "coarse classification as the reviewer coded it, like incidents.type",
    ("incident_codings", "month"): "coarse classification as the reviewer coded it, like incidents.month",
    ("incident_codings", "region"): "coarse classification as the reviewer coded it, like incidents.region",
    ("incident_codings", "reviewer_id"): "the reviewer who coded it",
    ("incident_codings", "created_at"): "when",
    ("record_links", "id"): "row id",
    ("record_links", "testimony_id"): "the record linked from",
    ("record_links", "other_id"): "the record linked to",
    ("record_links", "kind"): "corroborates or duplicate",
    ("record_links", "created_by_id"): "the reviewer who linked them",
    ("record_links", "created_at"): "when",
    ("record_links", "removed_at"): "when the link was removed",
    ("record_links", "removed_by_id"): "who removed it",
    ("identifying_spans", "id"): "row id",
    ("identifying_spans", "testimony_id"): "the testimony whose narrative it marks",
    ("identifying_spans", "start"): "character offset where it starts (no text)",
    ("identifying_spans", "stop"): "character offset where it ends (no text)",
    ("identifying_spans", "kind"): "name, address, unit or other",
    ("identifying_spans", "revision"): "the testimony's revision it was marked on",
    ("identifying_spans", "created_by_id"): "the reviewer who marked it",
    ("identifying_spans", "created_at"): "when",
    ("identifying_spans", "removed_at"): "when the mark was removed",
    ("identifying_spans", "removed_by_id"): "who removed it",
    ("analyst_notes", "id"): "row id",
    ("analyst_notes", "testimony_id"): "the testimony it is about",
    ("analyst_notes", "author_id"): "the reviewer who wrote it",
    ("analyst_notes", "created_at"): "when",
}


def sealed_column(table: str, column: str) -> MappedColumn[Any]:
    """A nullable binary column for a field the inventory declares; anything else is refused at import."""
    if (table, column) not in _BY_PLACE:
        raise LookupError(f"{table}.{column} is not in the encrypted-field inventory (intake/core/crypto/fields.py)")
    return mapped_column(column, sa.LargeBinary, nullable=True, info={"sealed": True})


@dataclass(frozen=True)
class Tombstone:
    """What a read returns for data whose key was shredded: it is gone, and when that happened."""

    shredded_at: datetime | None

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return ""


def sealing_key_of(obj: Any) -> Any:
    """The `DataKey` row the sealed columns of `obj` are sealed under."""
    key = getattr(obj, "sealing_key", None)
    if key is None:
        raise LookupError(f"{type(obj).__name__} has no data key")
    return key


def _field(obj: Any, column: str) -> SealedField:
    table = obj.__table__.name
    try:
        return _BY_PLACE[(table, column)]
    except KeyError:
        raise LookupError(f"{table}.{column} is not in the encrypted-field inventory") from None


def _pad(spec: SealedField, data: bytes) -> bytes:
    # ISO/IEC 7816-4 padding: one 0x80 byte, then zeros up to the next multiple of `pad_to`.
    if not spec.pad_to:
        return data
    return data + b"\x80" + bytes(-(len(data) + 1) % spec.pad_to)


def _unpad(spec: SealedField, data: bytes) -> bytes:
    if not spec.pad_to:
        return data
    end = data.rstrip(b"\x00")
    if not end.endswith(b"\x80"):
        raise ValueError(f"{spec.table}.{spec.column}: malformed padding")
    return end[:-1]


def _encode(spec: SealedField, value: Any) -> bytes:
    return _pad(spec, _encode_value(spec, value))


def _encode_value(spec: SealedField, value: Any) -> bytes:
    if spec.kind == "text":
        if not isinstance(value, str):
            raise TypeError(f"{spec.table}.{spec.column} holds text")
        return value.encode("utf-8")
    if spec.kind == "json":
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    if spec.kind == "bytes":
        if not isinstance(value, bytes):
            raise TypeError(f"{spec.table}.{spec.column} holds bytes")
        return value
    raise TypeError(f"{spec.table}.{spec.column} is a stream: use intake.core.crypto.blobs")


def _decode(spec: SealedField, data: bytes) -> Any:
    data = _unpad(spec, data)
    if spec.kind == "text":
        return data.decode("utf-8")
    if spec.kind == "json":
        return json.loads(data.decode("utf-8"))
    return data


def binding_of(obj: Any, column: str) -> Binding:
    """The place a sealed value of `obj` is bound to; `obj` must have its row id (flush first)."""
    spec = _field(obj, column)
    if obj.id is None:
        raise ValueError(f"{spec.table} row has no id yet: flush before sealing")
    table, field = spec.binding
    return Binding(table, field, int(obj.id))


def seal_value(obj: Any, column: str, value: Any, *, key: OpenDataKey | None = None) -> None:
    """Encrypt `value` into ``obj.<column>`` (None clears it). `key` saves unwrapping when it is already open."""
    spec = _field(obj, column)
    if value is None:
        setattr(obj, column, None)
        return
    open_key = key or open_data_key(sealing_key_of(obj))
    setattr(obj, column, _seal(open_key, binding_of(obj, column), _encode(spec, value)))


def open_value(obj: Any, column: str, *, key: OpenDataKey | None = None) -> Any:
    """Decrypt ``obj.<column>``: the value, None if nothing was stored, or a `Tombstone` if its key was shredded.

    Raises `envelope.Unreadable` when the ciphertext was altered or moved from elsewhere: that is damage to be
    reported, not a state to render.
    """
    spec = _field(obj, column)
    data_key = sealing_key_of(obj)
    if data_key.destroyed_at is not None:
        return Tombstone(data_key.destroyed_at)
    ciphertext = getattr(obj, column)
    if ciphertext is None:
        return None
    try:
        open_key = key or open_data_key(data_key)
    except KeyDestroyed as exc:
        return Tombstone(exc.destroyed_at)
    return _decode(spec, _open(open_key, binding_of(obj, column), ciphertext))
