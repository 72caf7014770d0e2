"""Recording testimony, storing attachments, and shredding a testimony.

Operations change the session and write audit events; they never commit. Attachments are read from a binary
stream piece by piece: hashed (SHA-256 of the original), sniffed from their first bytes, encrypted as a chunked
stream and stored, with memory bounded by a few chunks whatever the file's size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any, BinaryIO

import puremagic
import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from intake.core.audit import AuditAction, record_event
from intake.core.crypto.blobs import blob_store, new_blob_name
from intake.core.crypto.datakeys import KeyDestroyed, create_data_key, destroy_data_key, open_data_key
from intake.core.crypto.envelope import Binding
from intake.core.crypto.fields import Tombstone, open_value, seal_value
from intake.core.crypto.stream import CHUNK_SIZE, StreamSealer, encrypted_chunk_size, open_stream, parse_header
from intake.core.db import db
from intake.testimonies.models import Attachment, Medium, Testimony

DIGEST_ALGORITHM = "sha-256"
SNIFF_BYTES = 8192

# Media types recognised from a file's content, and the medium (what consent is given for) each one is.
ACCEPTED_MEDIA: dict[str, Medium] = {
    "image/jpeg": Medium.PHOTO,
    "image/png": Medium.PHOTO,
    "image/webp": Medium.PHOTO,
    "image/heif": Medium.PHOTO,
    "image/heic": Medium.PHOTO,
    "image/gif": Medium.PHOTO,
    "image/tiff": Medium.PHOTO,
    "audio/mpeg": Medium.AUDIO,
    "audio/wave": Medium.AUDIO,
    "audio/x-wav": Medium.AUDIO,
    "audio/mp4": Medium.AUDIO,
    "audio/flac": Medium.AUDIO,
    "audio/x-flac": Medium.AUDIO,
    "audio/aac": Medium.AUDIO,
    "application/ogg": Medium.AUDIO,
    "audio/ogg": Medium.AUDIO,
    "video/mp4": Medium.VIDEO,
    "video/3gpp": Medium.VIDEO,
    "video/quicktime": Medium.VIDEO,
    "video/webm": Medium.VIDEO,
    "application/x-matroska": Medium.VIDEO,
    "application/pdf": Medium.DOCUMENT,
}


class AttachmentRefused(Exception):
    """The file cannot be stored; `message` says why, in the reader's language. Nothing was kept."""

    def __init__(self, message: Any) -> None:
        super().__init__(str(message))
        self.message = message


def create_testimony(*, pseudonym: str, interviewer: Any, language: str | None = None, region: str | None = None,
                     narrative: str | None = None) -> Testimony:
    """A new draft testimony for the person `pseudonym`, with its own data key."""
    data_key, key = create_data_key("testimony")
    testimony = Testimony(pseudonym=pseudonym, interviewer_id=getattr(interviewer, "id", None), data_key=data_key,
                          language=language, region=region)
    db.session.add(testimony)
    db.session.flush()
    if narrative is not None:
        seal_value(testimony, "narrative", narrative, key=key)
    record_event(AuditAction.TESTIMONY_CREATED, actor=interviewer, target_type="testimony",
                 target_ids=[testimony.id], details={"fields": ["narrative"] if narrative is not None else []})
    return testimony


def set_narrative(testimony: Testimony, narrative: str, *, actor: Any) -> None:
    """Replace the narrative (sealed afresh, with a new nonce)."""
    seal_value(testimony, "narrative", narrative)
    record_event(AuditAction.TESTIMONY_UPDATED, actor=actor, target_type="testimony", target_ids=[testimony.id],
                 details={"fields": ["narrative"]})


def read_narrative(testimony: Testimony) -> str | Tombstone | None:
    """The narrative, None when none was given, or a `Tombstone` once the testimony was shredded."""
    value: str | Tombstone | None = open_value(testimony, "narrative")
    return value


def sniff_media_type(head: bytes) -> str | None:
    """The media type a file's first bytes show, if it is one this service accepts; the file name is never used."""
    try:
        matches = puremagic.magic_string(head)
    except (puremagic.PureError, ValueError):
        return None
    for match in matches:
        if match.mime_type in ACCEPTED_MEDIA:
            return str(match.mime_type)
    return None


def _read_exactly(source: BinaryIO, size: int) -> bytes:
    parts = []
    remaining = size
    while remaining:
        piece = source.read(remaining)
        if not piece:
            break
        parts.append(piece)
        remaining -= len(piece)
    return b"".join(parts)


def size_text(size: int) -> str:
    """A size for people: 200 MiB, 1.5 MiB, 2 KiB."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            value = size / factor
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} B"


MEDIUM_NAMES = {
    Medium.AUDIO: _l("an audio recording"),
    Medium.PHOTO: _l("a photo"),
    Medium.VIDEO: _l("a video"),
    Medium.DOCUMENT: _l("a document"),
}


def store_attachment(testimony: Testimony, source: BinaryIO, *, filename: str, actor: Any, config: Any,
                     graphic: bool = False, capture: dict[str, Any] | None = None,
                     allowed_media: frozenset[str] | None = None, declared_medium: str | None = None) -> Attachment:
    """Encrypt and store the file read from `source` as an attachment of `testimony`.

    Raises `AttachmentRefused` for a file whose type is not recognised, that is larger than
    `ATTACHMENT_MAX_BYTES`, whose content is another medium than `declared_medium` (what the interviewer said it
    is), or whose medium is not in `allowed_media` (what the consent covers); the caller's transaction then rolls
    back and nothing of the file remains.
    """
    limit = int(config["ATTACHMENT_MAX_BYTES"])
    head = _read_exactly(source, CHUNK_SIZE)
    media_type = sniff_media_type(head[:SNIFF_BYTES])
    if media_type is None:
        raise AttachmentRefused(_l("This kind of file is not accepted. Photos (JPEG, PNG, WebP, HEIC), audio "
                                   "(MP3, M4A, OGG, WAV, FLAC), video (MP4, 3GP, MOV, WebM) and PDF documents are."))
    medium = ACCEPTED_MEDIA[media_type]
    if declared_medium is not None and declared_medium != medium.value:
        raise AttachmentRefused(_l("This file is %(actual)s, not %(declared)s. Choose what it really is.",
                                   actual=MEDIUM_NAMES[medium], declared=MEDIUM_NAMES[Medium(declared_medium)]))
    if allowed_media is not None and medium.value not in allowed_media:
        raise AttachmentRefused(_l("The person did not consent to %(medium)s being kept, so this file cannot be "
                                   "added.", medium=MEDIUM_NAMES[medium]))
    key = open_data_key(testimony.data_key)
    store = blob_store(config)
    attachment = Attachment(testimony=testimony, medium=medium.value, graphic=graphic,
                            storage=store.name, blob_name=new_blob_name(), stream_header=b"",
                            created_by_id=getattr(actor, "id", None))
    db.session.add(attachment)
    db.session.flush()
    sealer = StreamSealer(key, Binding("attachments", "content", attachment.id))
    attachment.stream_header = sealer.header
    digest = hashlib.sha256()
    size = 0

    def chunks() -> Iterator[bytes]:
        nonlocal size
        piece = head
        while piece:
            size += len(piece)
            if size > limit:
                raise AttachmentRefused(_l("This file is larger than the limit of %(size)s.",
                                           size=size_text(limit)))
            digest.update(piece)
            yield from sealer.feed(piece)
            piece = source.read(CHUNK_SIZE)
        yield sealer.finish()

    attachment.stored_bytes = store.write(attachment, chunks())
    seal_value(attachment, "details", {
        "filename": filename,
        "media_type": media_type,
        "size": size,
        "digest": {"algorithm": DIGEST_ALGORITHM, "value": digest.hexdigest()},
        "capture": capture or {},
    }, key=key)
    record_event(AuditAction.ATTACHMENT_STORED, actor=actor, target_type="testimony", target_ids=[testimony.id],
                 details={"attachment": attachment.id, "medium": attachment.medium})
    return attachment


def read_attachment_details(attachment: Attachment) -> dict[str, Any] | Tombstone | None:
    """File name, media type, size and digest of the original, or a `Tombstone` once shredded."""
    value: dict[str, Any] | Tombstone | None = open_value(attachment, "details")
    return value


def attachment_content(attachment: Attachment, config: Any) -> Iterator[bytes] | Tombstone:
    """The original file as a stream of plaintext pieces (verified chunk by chunk), or a `Tombstone`.

    Raises `envelope.Unreadable` while iterating if the stored stream was altered, truncated or spliced.
    """
    try:
        key = open_data_key(attachment.testimony.data_key)
    except KeyDestroyed as exc:
        return Tombstone(exc.destroyed_at)
    chunk_size, _salt = parse_header(attachment.stream_header)
    stored = blob_store(config, attachment.storage).read(attachment, encrypted_chunk_size(chunk_size))
    return open_stream(key, Binding("attachments", "content", attachment.id), attachment.stream_header, stored)


def shred_testimony(testimony: Testimony, *, reason: str, actor: Any, config: Any) -> None:
    """Crypto-shred a testimony: its data key goes, and with it every sealed field and attachment.

    The sealed values and chunks are deleted as well (files once the transaction has committed); the row stays as
    a tombstone with its coarse classification, so the audit trail keeps its meaning.
    """
    from intake.consents.models import ConsentRecord

    destroy_data_key(testimony.data_key)
    testimony.narrative = None
    testimony.details = None
    # The request that created it, and its digest, could link the tombstone to a copy of that request.
    testimony.idempotency_key = testimony.submission_digest = testimony.submission_key = None
    for incident in testimony.incidents:
        incident.details = None
    for consent in db.session.scalars(sa.select(ConsentRecord).where(ConsentRecord.testimony_id == testimony.id)):
        consent.particulars = None
    for attachment in testimony.attachments:
        attachment.details = None
        blob_store(config, attachment.storage).delete(attachment)
    record_event(AuditAction.RECORD_SHREDDED, actor=actor, target_type="testimony", target_ids=[testimony.id],
                 reason=reason, details={"parts": ["content", "attachments", "consent"],
                                         "attachments": len(testimony.attachments)})
