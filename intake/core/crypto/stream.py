"""Attachments encrypted as a stream of fixed-size chunks (the STREAM construction of Hoang, Reyhanitabar,
Rogaway and Vizár, as used by age and Tink), composed from `cryptography`'s AES-256-GCM and HKDF.

Each stream gets a key of its own, derived with HKDF-SHA256 from the record's data key, a random 16-byte salt
and the stream's place (table, field, row, data key id, chunk size), so no data key encrypts the thousands of
chunks of a large file itself. Every chunk carries its index and whether it is the last one in its associated
data: a reordered, dropped, duplicated or appended chunk, a truncated tail and a chunk spliced in from another
stream all fail to open.

The last chunk is padded (one 0x80 byte, then zeros) to the full chunk size, so every chunk on disk has the same
length and the stored size reveals a file's length only to the nearest chunk. A stream of n bytes has
``n // chunk_size + 1`` chunks.

Stream header, format 1 (22 bytes, stored beside the chunks)::

    b"S" | 0x01 | chunk size (u32, big-endian) | salt (16)

Chunk (chunk size + 28 bytes)::

    nonce (12) | AES-256-GCM(stream key, chunk plaintext) with tag (16)
    associated data: frame("intake/stream-chunk", 1, index, final)
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from intake.core.crypto.envelope import NONCE_BYTES, TAG_BYTES, Binding, OpenDataKey, Unreadable, frame, random_nonce

__all__ = [
    "CHUNK_SIZE",
    "STREAM_FORMAT",
    "StreamSealer",
    "chunk_count",
    "encrypted_chunk_size",
    "open_stream",
]

STREAM_FORMAT = 1
CHUNK_SIZE = 64 * 1024
SALT_BYTES = 16
_HEADER = struct.Struct(">cBI16s")
_MAGIC = b"S"
_PAD = b"\x80"
_MIN_CHUNK = 1024
_MAX_CHUNK = 4 * 1024 * 1024
_MAX_CHUNKS = 2**32  # a stream key encrypts at most 2^32 chunks


def encrypted_chunk_size(chunk_size: int) -> int:
    """Bytes one stored chunk takes."""
    return NONCE_BYTES + chunk_size + TAG_BYTES


def chunk_count(plaintext_bytes: int, chunk_size: int = CHUNK_SIZE) -> int:
    """How many chunks a stream of `plaintext_bytes` bytes is stored as."""
    return plaintext_bytes // chunk_size + 1


def _stream_key(key: OpenDataKey, binding: Binding, chunk_size: int, salt: bytes) -> AESGCM:
    info = frame("intake/stream", STREAM_FORMAT, binding.table, binding.field, binding.row_id, key.key_id, chunk_size)
    return AESGCM(key.derive(salt=salt, info=info))


def _chunk_aad(index: int, final: bool) -> bytes:
    return frame("intake/stream-chunk", STREAM_FORMAT, index, int(final))


def parse_header(header: bytes) -> tuple[int, bytes]:
    """(chunk size, salt) from a stream header; `Unreadable` if it is not one."""
    if len(header) != _HEADER.size:
        raise Unreadable("a stream header has the wrong length")
    magic, version, chunk_size, salt = _HEADER.unpack(header)
    if magic != _MAGIC or version != STREAM_FORMAT or not _MIN_CHUNK <= chunk_size <= _MAX_CHUNK:
        raise Unreadable("unknown stream format")
    return int(chunk_size), bytes(salt)


class StreamSealer:
    """Encrypts a stream pushed to it piece by piece; memory stays at about one chunk whatever the stream's size.

    ``feed`` returns the chunks completed so far, ``finish`` the padded last chunk; store them in order after
    ``header``.
    """

    def __init__(self, key: OpenDataKey, binding: Binding, *, chunk_size: int = CHUNK_SIZE) -> None:
        if not _MIN_CHUNK <= chunk_size <= _MAX_CHUNK:
            raise ValueError("unsupported chunk size")
        salt = os.urandom(SALT_BYTES)
        self.header = _HEADER.pack(_MAGIC, STREAM_FORMAT, chunk_size, salt)
        self.chunk_size = chunk_size
        self._aead = _stream_key(key, binding, chunk_size, salt)
        self._buffer = bytearray()
        self._index = 0
        self._finished = False

    def _seal(self, plaintext: bytes | bytearray, final: bool) -> bytes:
        if self._index >= _MAX_CHUNKS:
            raise ValueError("stream too long for one key")
        nonce = random_nonce()
        sealed = nonce + self._aead.encrypt(nonce, bytes(plaintext), _chunk_aad(self._index, final))
        self._index += 1
        return sealed

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add plaintext; returns the full chunks it completed (never the last one: only `finish` knows that)."""
        if self._finished:
            raise ValueError("stream already finished")
        out = []
        view = memoryview(data)
        while view:
            room = self.chunk_size - len(self._buffer)
            if not self._buffer and len(view) >= self.chunk_size:
                out.append(self._seal(view[: self.chunk_size].tobytes(), False))
                view = view[self.chunk_size :]
                continue
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) == self.chunk_size:
                out.append(self._seal(self._buffer, False))
                self._buffer = bytearray()
        return out

    def finish(self) -> bytes:
        """The last chunk: the remaining bytes (fewer than a chunk) padded to a full chunk."""
        if self._finished:
            raise ValueError("stream already finished")
        self._finished = True
        padded = bytes(self._buffer) + _PAD + bytes(self.chunk_size - len(self._buffer) - 1)
        self._buffer = bytearray()
        return self._seal(padded, True)

    @property
    def chunks_written(self) -> int:
        return self._index


def _unpad(chunk: bytes) -> bytes:
    end = chunk.rstrip(b"\x00")
    if not end.endswith(_PAD):
        raise Unreadable("the last chunk of a stream is malformed")
    return end[:-1]


def open_stream(key: OpenDataKey, binding: Binding, header: bytes, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decrypt a stored stream chunk by chunk, yielding plaintext in order.

    Raises `Unreadable` at the first chunk that fails: altered, out of place, from another stream, or a stream that
    ends without its last chunk (or goes on after it). Plaintext already yielded is authentic, but only a stream read
    to the end without an error is complete.
    """
    chunk_size, salt = parse_header(header)
    aead = _stream_key(key, binding, chunk_size, salt)
    expected = encrypted_chunk_size(chunk_size)
    where = f"{binding.table}.{binding.field} of row {binding.row_id}"
    iterator = iter(chunks)
    current = next(iterator, None)
    if current is None:
        raise Unreadable(f"{where}: the stream is empty (truncated)")
    index = 0
    while current is not None:
        following = next(iterator, None)
        final = following is None
        if len(current) != expected:
            raise Unreadable(f"{where}: chunk {index} has the wrong length")
        try:
            plaintext = aead.decrypt(current[:NONCE_BYTES], current[NONCE_BYTES:], _chunk_aad(index, final))
        except InvalidTag:
            raise Unreadable(
                f"{where}: chunk {index} failed to open (altered, reordered, from another stream, or the stream "
                "was truncated or extended)"
            ) from None
        yield _unpad(plaintext) if final else plaintext
        current = following
        index += 1
