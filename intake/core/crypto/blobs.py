"""Where attachment ciphertext is stored: in the database (default) or as files under generated names.

Both stores hold only the encrypted chunks of `stream`; the stream header and the generated name live on the
attachment row. Writes and deletions follow the request's transaction: chunk rows commit or roll back with it;
files written during a transaction (or savepoint) that rolls back are removed, and files of shredded attachments are
removed only once the outermost transaction has committed (so a shred that fails or is rolled back loses nothing).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from intake.core.db import db, innermost_transaction, within_transaction
from intake.core.files import fsync_directory

log = logging.getLogger("intake.blobs")

__all__ = ["BlobStore", "DatabaseBlobStore", "FileBlobStore", "blob_store", "new_blob_name"]

_PENDING = "intake.blobs.pending"
_WRITTEN = "written"
_TO_DELETE = "delete"
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
        total = 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        _register(_WRITTEN, path)  # only a file this call created is ever removed on rollback
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                total += len(chunk)
            handle.flush()
            os.fsync(handle.fileno())  # on disk before the transaction that names it can commit
        for directory in (path.parent, path.parent.parent):
            fsync_directory(directory)  # and its name too
        return total

    def read(self, attachment: Any, chunk_bytes: int) -> Iterator[bytes]:
        with open(self.path_of(attachment), "rb") as handle:
            while True:
                chunk = handle.read(chunk_bytes)
                if not chunk:
                    return
                yield chunk

    def delete(self, attachment: Any) -> None:
        _register(_TO_DELETE, self.path_of(attachment))


def _remove(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # the transaction has ended either way: say so, and go on with the others
            log.error("an attachment file could not be removed", extra={"file": path.name, "error": exc.strerror})


def _register(kind: str, path: Path) -> None:
    """Note a file written, or to delete, in the innermost transaction now open (a savepoint or the outer one)."""
    session = db.session()
    session.info.setdefault(_PENDING, []).append((kind, path, innermost_transaction(session)))


def _undo(entries: list[tuple[str, Path, Any]]) -> None:
    # Rolled back: files written are removed, deletions are forgotten.
    _remove([path for kind, path, _ in entries if kind == _WRITTEN])


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    # Fires for a savepoint's release too: only the outermost commit makes deletions final.
    if session.in_nested_transaction():
        return
    entries = session.info.pop(_PENDING, [])
    _remove([path for kind, path, _ in entries if kind == _TO_DELETE])


@event.listens_for(Session, "after_soft_rollback")
def _after_soft_rollback(session: Session, previous_transaction: Any) -> None:
    # A savepoint rolled back: undo what was noted inside it (or inside savepoints it contained).
    if not previous_transaction.nested:
        return
    entries = session.info.get(_PENDING, [])
    undone = [e for e in entries if within_transaction(e[2], previous_transaction)]
    session.info[_PENDING] = [e for e in entries if not within_transaction(e[2], previous_transaction)]
    _undo(undone)


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: Any) -> None:
    # The outermost transaction ended without a commit (rolled back, or the session closed): undo everything.
    if transaction.parent is None and not transaction.nested:
        _undo(session.info.pop(_PENDING, []))


def blob_store(config: Any, storage: str | None = None) -> BlobStore:
    """The store named by `storage` (an attachment's), or the configured one for new attachments."""
    name = storage or config["BLOB_STORAGE"]
    if name == "files":
        return FileBlobStore(Path(config["BLOB_PATH"]))
    if name == "database":
        return DatabaseBlobStore()
    raise ValueError(f"unknown blob storage {name!r}")
