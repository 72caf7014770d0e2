"""Envelope encryption: per-record data keys wrapped by versioned key-encryption keys, and sealed fields.

Only `cryptography`'s AES-256-GCM is used; this module fixes the byte formats and what each ciphertext is bound
to. It knows nothing of Flask or the database, so the formats can be tested (and read years later) on their own.

Wrapped data key, format 1 (66 bytes)::

    b"K" | 0x01 | KEK version (u32, big-endian) | nonce (12) | AES-256-GCM(KEK, data key) with tag (48)

    associated data: frame("intake/data-key", 1, owner, data key id, KEK version)

Sealed field, format 1 (22 bytes + plaintext + 16-byte tag)::

    b"F" | 0x01 | data key id (u64, big-endian) | nonce (12) | AES-256-GCM(data key, plaintext) with tag

    associated data: frame("intake/field", 1, table, field, row id, data key id)

``frame`` length-prefixes every part (2-byte big-endian length, then UTF-8), so no two different bindings
encode alike. A ciphertext copied to another row, another field or another table, or presented with another
data key id, fails to open; a data key relabelled with another KEK version or owner fails to unwrap. Nonces are
96-bit random; a data key seals the few fields of one record and each attachment gets a key of its own (see
`stream`), so no key comes anywhere near 2^32 messages.
"""

from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "DATA_KEY_BYTES",
    "FIELD_FORMAT",
    "WRAP_FORMAT",
    "Binding",
    "OpenDataKey",
    "Unreadable",
    "field_data_key_id",
    "frame",
    "new_data_key",
    "open_field",
    "seal_field",
    "unwrap_data_key",
    "wrap_data_key",
    "wrapped_kek_version",
]

DATA_KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
WRAP_FORMAT = 1
FIELD_FORMAT = 1
_WRAP_MAGIC = b"K"
_FIELD_MAGIC = b"F"
_WRAP_HEADER = struct.Struct(">cBI")  # magic, format, KEK version
_FIELD_HEADER = struct.Struct(">cBQ")  # magic, format, data key id
WRAPPED_BYTES = _WRAP_HEADER.size + NONCE_BYTES + DATA_KEY_BYTES + TAG_BYTES


class Unreadable(Exception):
    """A ciphertext or wrapped key failed to open: wrong key, altered bytes, or moved to another place.

    The message names the place, never the content or key material.
    """


def random_nonce() -> bytes:
    """A fresh 96-bit nonce from the operating system's CSPRNG."""
    return os.urandom(NONCE_BYTES)


def frame(*parts: str | int) -> bytes:
    """Encode binding parts unambiguously: each as a 2-byte big-endian length followed by its UTF-8 text."""
    out = []
    for part in parts:
        data = (part if isinstance(part, str) else str(part)).encode("utf-8")
        if len(data) > 0xFFFF:
            raise ValueError("binding part too long")
        out.append(len(data).to_bytes(2, "big"))
        out.append(data)
    return b"".join(out)


@functools.lru_cache(maxsize=16)
def _kek_cipher(kek: bytes) -> AESGCM:
    # Rewrapping turns over every data key with the same two KEKs; their key schedules are set up once.
    return AESGCM(kek)


@dataclass(frozen=True, slots=True)
class Binding:
    """Where a sealed value lives: its table, field and row. A ciphertext opens only at the place it was made for."""

    table: str
    field: str
    row_id: int


class OpenDataKey:
    """An unwrapped data key, ready to seal and open the fields of one record.

    Holds key material: never log it, never keep it beyond the request or command that opened it.
    """

    __slots__ = ("_aead", "_key", "key_id")

    def __init__(self, key_id: int, key: bytes) -> None:
        if len(key) != DATA_KEY_BYTES:
            raise ValueError("a data key is 32 bytes")
        self.key_id = key_id
        self._key = key
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return f"<OpenDataKey {self.key_id}>"

    def __reduce__(self) -> str:
        raise TypeError("open data keys cannot be pickled")

    @property
    def aead(self) -> AESGCM:
        return self._aead

    def derive(self, *, salt: bytes, info: bytes) -> bytes:
        """A 32-byte subkey of this data key for one use (HKDF-SHA256), e.g. the key of one attachment stream."""
        return HKDF(algorithm=hashes.SHA256(), length=DATA_KEY_BYTES, salt=salt, info=info).derive(self._key)


def new_data_key() -> bytes:
    """A fresh random AES-256 data key."""
    return AESGCM.generate_key(bit_length=256)


def _wrap_aad(owner: str, key_id: int, kek_version: int) -> bytes:
    return frame("intake/data-key", WRAP_FORMAT, owner, key_id, kek_version)


def wrap_data_key(kek: bytes, kek_version: int, data_key: bytes, *, key_id: int, owner: str) -> bytes:
    """Wrap `data_key` under the KEK of `kek_version`, bound to the data key's id and owner kind."""
    if len(data_key) != DATA_KEY_BYTES or len(kek) != DATA_KEY_BYTES:
        raise ValueError("data keys and KEKs are 32 bytes (AES-256)")
    nonce = random_nonce()
    header = _WRAP_HEADER.pack(_WRAP_MAGIC, WRAP_FORMAT, kek_version)
    return header + nonce + _kek_cipher(kek).encrypt(nonce, data_key, _wrap_aad(owner, key_id, kek_version))


def wrapped_kek_version(wrapped: bytes) -> int:
    """The KEK version a wrapped data key names in its header."""
    if len(wrapped) != WRAPPED_BYTES:
        raise Unreadable("a wrapped data key has the wrong length")
    magic, version, kek_version = _WRAP_HEADER.unpack_from(wrapped)
    if magic != _WRAP_MAGIC or version != WRAP_FORMAT:
        raise Unreadable("unknown wrapped data key format")
    return int(kek_version)


def unwrap_data_key(kek: bytes, wrapped: bytes, *, key_id: int, owner: str) -> bytes:
    """Unwrap a data key made by `wrap_data_key`; `kek` must be the KEK of the version its header names."""
    if len(kek) != DATA_KEY_BYTES:
        raise ValueError("KEKs are 32 bytes (AES-256)")
    kek_version = wrapped_kek_version(wrapped)
    nonce = wrapped[_WRAP_HEADER.size : _WRAP_HEADER.size + NONCE_BYTES]
    body = wrapped[_WRAP_HEADER.size + NONCE_BYTES :]
    try:
        return _kek_cipher(kek).decrypt(nonce, body, _wrap_aad(owner, key_id, kek_version))
    except InvalidTag:
        raise Unreadable(f"data key {key_id} does not unwrap under KEK version {kek_version}") from None


def _field_aad(binding: Binding, key_id: int) -> bytes:
    return frame("intake/field", FIELD_FORMAT, binding.table, binding.field, binding.row_id, key_id)


def seal_field(key: OpenDataKey, binding: Binding, plaintext: bytes) -> bytes:
    """Encrypt `plaintext` for the place `binding` names, under the record's data key."""
    nonce = random_nonce()
    header = _FIELD_HEADER.pack(_FIELD_MAGIC, FIELD_FORMAT, key.key_id)
    return header + nonce + key.aead.encrypt(nonce, plaintext, _field_aad(binding, key.key_id))


def field_data_key_id(ciphertext: bytes) -> int:
    """The data key id a sealed field names in its header."""
    if len(ciphertext) < _FIELD_HEADER.size + NONCE_BYTES + TAG_BYTES:
        raise Unreadable("a sealed field is too short")
    magic, version, key_id = _FIELD_HEADER.unpack_from(ciphertext)
    if magic != _FIELD_MAGIC or version != FIELD_FORMAT:
        raise Unreadable("unknown sealed field format")
    return int(key_id)


def open_field(key: OpenDataKey, binding: Binding, ciphertext: bytes) -> bytes:
    """Decrypt a value made by `seal_field` for the same place and data key."""
    key_id = field_data_key_id(ciphertext)
    if key_id != key.key_id:
        raise Unreadable(f"{binding.table}.{binding.field} of row {binding.row_id} is sealed under another data key")
    nonce = ciphertext[_FIELD_HEADER.size : _FIELD_HEADER.size + NONCE_BYTES]
    body = ciphertext[_FIELD_HEADER.size + NONCE_BYTES :]
    try:
        return key.aead.decrypt(nonce, body, _field_aad(binding, key_id))
    except InvalidTag:
        raise Unreadable(f"{binding.table}.{binding.field} of row {binding.row_id} failed to open (altered, or "
                         "moved from elsewhere)") from None
