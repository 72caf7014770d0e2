"""Encrypted temporary files for request bodies, so an upload never touches the disk in clear.

Werkzeug writes the file parts of a multipart form to a temporary file while it parses the request. The request
class of this application hands it an `EncryptedSpool` instead: an unnamed temporary file whose contents are
encrypted in chunks with AES-256-GCM under a random key that exists only in this process's memory for the life of
the spool. When the process dies, the bytes left on disk (or in a swap of the temporary directory) are unreadable.
Small bodies stay in memory and never reach the disk at all.

Write first, then read: the spool accepts writes until the first `seek` or `read`, and is read-only from then on.
"""

from __future__ import annotations

import io
import tempfile
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from intake.core.crypto.envelope import TAG_BYTES

__all__ = ["EncryptedSpool"]

_CHUNK = 64 * 1024


class EncryptedSpool(io.RawIOBase):
    """A write-once, then seekable read-only temporary file, encrypted under a one-time key held in memory."""

    def __init__(self, *, directory: str | None = None, chunk_size: int = _CHUNK) -> None:
        super().__init__()
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self._chunk = chunk_size
        self._directory = directory
        self._file: Any = None  # created when the first full chunk is written
        self._buffer = bytearray()
        self._chunks = 0
        self._size = 0
        self._sealed = False
        self._tail = b""  # the last, partial chunk, kept in memory in the clear only while it is not full
        self._position = 0
        self._cache: tuple[int, bytes] | None = None

    # -- io protocol ----------------------------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return not self._sealed

    def seekable(self) -> bool:
        return True

    def _nonce(self, index: int) -> bytes:
        # A key used by this spool alone, one nonce per chunk index: counter nonces never repeat under it.
        return index.to_bytes(12, "big")

    def _write_chunk(self, data: bytes) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(dir=self._directory)  # noqa: SIM115 - closed in close()
        self._file.seek(self._chunks * (self._chunk + TAG_BYTES))
        self._file.write(self._aead.encrypt(self._nonce(self._chunks), data, None))
        self._chunks += 1

    def write(self, data: Any) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        if self._sealed:
            raise io.UnsupportedOperation("the spool is read-only once reading started")
        view = memoryview(data).cast("B")
        self._buffer += view
        while len(self._buffer) >= self._chunk:
            self._write_chunk(bytes(self._buffer[: self._chunk]))
            del self._buffer[: self._chunk]
        self._size += len(view)
        self._position = self._size
        return len(view)

    def _seal(self) -> None:
        if not self._sealed:
            self._sealed = True
            self._tail = bytes(self._buffer)
            self._buffer = bytearray()
            if self._file is not None:
                self._file.flush()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._seal()
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self._size + offset
        else:
            raise ValueError("invalid whence")
        if position < 0:
            raise ValueError("negative seek position")
        self._position = position
        return position

    def tell(self) -> int:
        return self._position

    def _plain_chunk(self, index: int) -> bytes:
        if index == self._chunks:
            return self._tail
        if self._cache is not None and self._cache[0] == index:
            return self._cache[1]
        self._file.seek(index * (self._chunk + TAG_BYTES))
        sealed = self._file.read(self._chunk + TAG_BYTES)
        plain = self._aead.decrypt(self._nonce(index), sealed, None)
        self._cache = (index, plain)
        return plain

    def readinto(self, buffer: Any) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        self._seal()
        target = memoryview(buffer).cast("B")
        written = 0
        while written < len(target) and self._position < self._size:
            index, offset = divmod(self._position, self._chunk)
            piece = self._plain_chunk(index)[offset : offset + len(target) - written]
            target[written : written + len(piece)] = piece
            written += len(piece)
            self._position += len(piece)
        return written

    def close(self) -> None:
        if not self.closed and self._file is not None:
            self._file.close()
        self._cache = None
        self._tail = b""
        self._buffer = bytearray()
        super().close()
