"""Opening one attachment's original for a person to see or hear it: the same decision as `open_record` (the
`attachments` part), one audit event naming the attachment, and the file as a stream of decrypted pieces.

The pieces are read and decrypted lazily, one stored chunk at a time, so memory stays bounded whatever the file's
size. A web view returns them after the request's transaction has committed (the audit event with it): reading
them then runs in a read-only transaction of its own, which never takes SQLite's write lock, however long a slow
client takes to receive the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from werkzeug.exceptions import NotFound

from intake.core.access import Part, Reason, latest_consent, medium_consented, refuse, require
from intake.core.audit import AuditAction, record_event
from intake.core.crypto.blobs import blob_store
from intake.core.crypto.datakeys import open_data_key
from intake.core.crypto.envelope import Binding
from intake.core.crypto.fields import Tombstone, open_value
from intake.core.crypto.stream import encrypted_chunk_size, open_stream, parse_header
from intake.core.db import write_intent

__all__ = ["AttachmentNotInRecord", "OpenedAttachment", "open_attachment"]


class AttachmentNotInRecord(NotFound):
    """The attachment asked for is not one of this testimony's (a 404: nothing was opened)."""


@dataclass(frozen=True)
class OpenedAttachment:
    """What is needed to send one attachment: its medium, the media type sniffed from its content at intake, its
    size in bytes (None if unknown), and its content as an iterator of decrypted pieces, read as it is consumed.

    Iterating raises `envelope.Unreadable` at the first stored chunk that was altered, reordered, truncated or
    spliced in from another file; the pieces yielded before it are authentic.
    """

    id: int
    medium: str
    media_type: str
    size: int | None
    chunks: Iterator[bytes]


def _read_only(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """`pieces`, each pulled with the write intent off: a transaction the first pull begins (after the request's
    commit) only reads. The intent is set and reset within each pull, so the generator may be resumed from any
    context."""
    while True:
        token = write_intent.set(False)
        try:
            piece = next(pieces, None)
        finally:
            write_intent.reset(token)
        if piece is None:
            return
        yield piece


def open_attachment(account: Any, testimony: Any, attachment: Any, *, config: Any, purpose: str) -> OpenedAttachment:
    """Decide whether `account` may open the attachments of `testimony` (refusing as `open_record` does: audited,
    `AccessRefused`), check that `attachment` is one of them (else `AttachmentNotInRecord`), record one
    ``record_viewed`` event for it, and return its media type and its content as a lazy stream of pieces."""
    require(account, testimony, {Part.ATTACHMENTS}, config=config, purpose=purpose)
    if attachment.testimony_id != testimony.id:
        raise AttachmentNotInRecord()
    if not medium_consented(latest_consent(testimony), attachment.medium, purpose=purpose):
        refuse(account, testimony, Reason.MEDIUM_NOT_CONSENTED, asked={Part.ATTACHMENTS}, purpose=purpose)
    key = open_data_key(testimony.data_key)
    details = open_value(attachment, "details", key=key)
    if details is None or isinstance(details, Tombstone):
        refuse(account, testimony, Reason.ERASED, asked={Part.ATTACHMENTS}, purpose=purpose)
    record_event(AuditAction.RECORD_VIEWED, actor=account, target_type="testimony", target_ids=[testimony.id],
                 details={"parts": [Part.ATTACHMENTS.value], "purpose": purpose, "attachment": attachment.id})
    chunk_size, _salt = parse_header(attachment.stream_header)
    stored = blob_store(config, attachment.storage).read(attachment, encrypted_chunk_size(chunk_size))
    pieces = open_stream(key, Binding("attachments", "content", attachment.id), attachment.stream_header, stored)
    size = details.get("size")
    return OpenedAttachment(id=attachment.id, medium=attachment.medium, media_type=str(details["media_type"]),
                            size=size if isinstance(size, int) else None, chunks=_read_only(pieces))
