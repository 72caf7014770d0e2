"""Where attachment ciphertext is stored: in the database (default) or as files under generated names.

Both stores hold only the encrypted chunks of `stream`; the stream header and the generated name live on the
attachment row. Writes and deletions follow the request's transaction: chunk rows commit or roll back with it;
files written during a transaction that rolls back are removed, and files of shredded attachments are removed only
once the shredding has committed (so a failed shred loses nothing).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from intake.core.db import db

__all__ = ["BlobStore", "DatabaseBlobStore", "FileBlobStore", "blob_store", "new_blob_name"]

_WRITTEN = "intake.blobs.written"
_TO_DELETE = "intake.blobs.to_delete"
_BATCH = 16  # chunks per INSERT: about 1 MiB at the default chunk size


def new_blob_name() -> str:
    """A random storage name: it says nothing about the attachment, its record or its order."""
    return secrets.token_hex(16)


class BlobStore(Protocol):
    name: str

    def write(self, attachment: Any, chunks: Iterable[bytes]) -> int:
        """Store the chunks of `attachment` in order; returns the bytes stored."""
        ...

    def read(self, attachment: Any, chunk_bytes: int) -> Iterator[bytes]:
        """The stored chunks of `attachment`, in order, without holding more than a few in memory."""
        ...

    def delete(self, attachment: Any) -> None:
        """Remove the chunks of `attachment` as part of the current transaction."""
        ...


class DatabaseBlobStore:
    """Chunks as rows of ``attachment_chunks``, written in batches so that memory stays bounded."""

    name = "database"

    def write(self, attachment: Any, chunks: Iterable[bytes]) -> int:
        from intake.testimonies.models import AttachmentChunk

        table = cast(sa.Table, AttachmentChunk.__table__)
        connection = db.session.connection()
        batch: list[dict[str, Any]] = []
        total = 0
        for index, chunk in enumerate(chunks):
            batch.append({"attachment_id": attachment.id, "idx": index, "data": chunk})
            total += len(chunk)
            if len(batch) == _BATCH:
                connection.execute(table.insert(), batch)
                batch = []
        if batch:
            connection.execute(table.insert(), batch)
        return total

    def read(self, attachment: Any, chunk_bytes: int) -> Iterator[bytes]:
        from intake.testimonies.models import AttachmentChunk

        table = cast(sa.Table, AttachmentChunk.__table__)
        result = db.session.connection().execute(
            sa.select(table.c.data).where(table.c.attachment_id == attachment.id).order_by(table.c.idx)
            .execution_options(stream_results=True, max_row_buffer=8)
        )
        try:
            for (data,) in result:
                yield bytes(data)
        finally:
            result.close()

    def delete(self, attachment: Any) -> None:
        from intake.testimonies.models import AttachmentChunk

        table = cast(sa.Table, AttachmentChunk.__table__)
        db.session.connection().execute(table.delete().where(table.c.attachment_id == attachment.id))


class FileBlobStore:
    """Chunks concatenated in one file per attachment, ``<root>/<first two letters>/<name>``, mode 0600."""

    name = "files"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_of(self, attachment: Any) -> Path:
        name = attachment.blob_name
        if not (len(name) == 32 and all(c in "0123456789abcdef" for c in name)):
            raise ValueError("not a generated blob name")
        return self.root / name[:2] / name

    def write(self, attachment: Any, chunks: Iterable[bytes]) -> int:
        path = self.path_of(attachment)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        session = db.session()
        session.info.setdefault(_WRITTEN, []).append(path)
        total = 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                total += len(chunk)
            handle.flush()
            os.fsync(handle.fileno())  # on disk before the transaction that names it can commit
        return total

    def read(self, attachment: Any, chunk_bytes: int) -> Iterator[bytes]:
        with open(self.path_of(attachment), "rb") as handle:
            while True:
                chunk = handle.read(chunk_bytes)
                if not chunk:
                    return
                yield chunk

    def delete(self, attachment: Any) -> None:
        db.session().info.setdefault(_TO_DELETE, []).append(self.path_of(attachment))


def _remove(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    session.info.pop(_WRITTEN, None)
    _remove(session.info.pop(_TO_DELETE, []))


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_TO_DELETE, None)
    _remove(session.info.pop(_WRITTEN, []))


def blob_store(config: Any, storage: str | None = None) -> BlobStore:
    """The store named by `storage` (an attachment's), or the configured one for new attachments."""
    name = storage or config["BLOB_STORAGE"]
    if name == "files":
        return FileBlobStore(Path(config["BLOB_PATH"]))
    if name == "database":
        return DatabaseBlobStore()
    raise ValueError(f"unknown blob storage {name!r}")
