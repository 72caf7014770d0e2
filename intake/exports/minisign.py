"""Minisign-compatible Ed25519 signatures, so a recipient checks a bundle with the standard `minisign` tool.

Only the file format lives here; the cryptography is `cryptography`'s Ed25519 and `hashlib`'s BLAKE2b. Signatures
are made with minisign's prehashed algorithm ("ED": Ed25519 over the BLAKE2b-512 digest of the data), which
minisign 0.11 makes and checks by default and which lets data of any size be signed as a stream. Verification also
accepts the legacy algorithm ("Ed": Ed25519 over the data itself), which needs the whole data in memory.

Public key (``minisign.pub``)::

    untrusted comment: minisign public key <KEY ID>
    base64("Ed" | key id (8) | Ed25519 public key (32))

Signature (``<file>.minisig``)::

    untrusted comment: <free text, not signed>
    base64("ED" | key id (8) | Ed25519(secret key, BLAKE2b-512(data)) (64))
    trusted comment: <text, signed>
    base64(Ed25519(secret key, signature (64) | trusted comment))

The key id is how minisign tells which key a signature claims to be from. Minisign itself picks it at random; here
it is derived from the public key (the first 8 bytes of its BLAKE2b-512 digest), so the same seed always gives the
same public key file. Minisign shows a key id as the hexadecimal form of those 8 bytes read as a little-endian
64-bit number, in upper case, and so does `SigningKey.key_id_hex`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "PublicKey",
    "Signature",
    "SignatureError",
    "SigningKey",
    "public_key_file",
    "public_key_line",
    "sign",
    "verify",
]

KEY_ALGORITHM = b"Ed"
HASHED = b"ED"
LEGACY = b"Ed"
KEY_ID_BYTES = 8
SEED_BYTES = 32
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
UNTRUSTED_PREFIX = "untrusted comment: "
TRUSTED_PREFIX = "trusted comment: "
DEFAULT_UNTRUSTED_COMMENT = "signature from minisign secret key"
# Minisign reads each comment line into a fixed buffer (1024 bytes for the untrusted comment, 8192 for the
# trusted one, both counting the prefix, the newline and a terminating NUL): longer lines would not verify there.
MAX_UNTRUSTED_COMMENT = 1024 - len(UNTRUSTED_PREFIX) - 2
MAX_TRUSTED_COMMENT = 8192 - len(TRUSTED_PREFIX) - 2

Data = bytes | bytearray | memoryview | Iterable[bytes | bytearray | memoryview]


class SignatureError(ValueError):
    """A signature or public key is malformed, is from another key, or does not match the data or its comment."""


def _key_id_hex(key_id: bytes) -> str:
    return format(int.from_bytes(key_id, "little"), "X")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, length: int, what: str) -> bytes:
    """Strict base64: the canonical encoding of exactly `length` bytes, nothing else."""
    try:
        decoded = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise SignatureError(f"the {what} is not valid base64") from None
    if len(decoded) != length or _b64(decoded) != text:
        raise SignatureError(f"the {what} has the wrong length or is not canonically encoded")
    return decoded


def _comment(text: str, limit: int, what: str) -> bytes:
    if any(c in text for c in "\r\n\0"):
        raise ValueError(f"the {what} must be a single line without NUL characters")
    encoded = text.encode("utf-8")
    if len(encoded) > limit:
        raise ValueError(f"the {what} is longer than minisign accepts ({limit} bytes)")
    return encoded


def _prehash(data: Data) -> bytes:
    digest = hashlib.blake2b(digest_size=64)
    if isinstance(data, bytes | bytearray | memoryview):
        digest.update(data)
    else:
        for chunk in data:
            digest.update(chunk)
    return digest.digest()


def _whole(data: Data) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    return b"".join(bytes(chunk) for chunk in data)


@dataclass(frozen=True)
class PublicKey:
    """A minisign public key: its key id and the Ed25519 public key."""

    key_id: bytes
    public_bytes: bytes

    @property
    def key_id_hex(self) -> str:
        return _key_id_hex(self.key_id)

    def line(self) -> str:
        """The base64 line, as given to ``minisign -P``."""
        return _b64(KEY_ALGORITHM + self.key_id + self.public_bytes)

    def file_text(self) -> str:
        """The contents of a ``minisign.pub`` file."""
        return f"{UNTRUSTED_PREFIX}minisign public key {self.key_id_hex}\n{self.line()}\n"

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        """A public key from a ``minisign.pub`` file's text or from its base64 line alone."""
        lines = [line.strip() for line in text.strip().splitlines()]
        if len(lines) == 2 and lines[0].startswith(UNTRUSTED_PREFIX):
            lines = lines[1:]
        if len(lines) != 1:
            raise SignatureError("a minisign public key is one base64 line, optionally after an untrusted comment")
        blob = _unb64(lines[0], 2 + KEY_ID_BYTES + PUBLIC_KEY_BYTES, "public key")
        if blob[:2] != KEY_ALGORITHM:
            raise SignatureError("the public key is not a minisign Ed25519 key")
        return cls(key_id=blob[2:2 + KEY_ID_BYTES], public_bytes=blob[2 + KEY_ID_BYTES:])


class SigningKey:
    """An Ed25519 private key with its minisign key id (derived from the public key, see the module)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private = private_key
        public_bytes = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key = PublicKey(key_id=hashlib.blake2b(public_bytes).digest()[:KEY_ID_BYTES],
                                    public_bytes=public_bytes)

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """The key whose 32-byte Ed25519 seed (RFC 8032 private key) is `seed`."""
        if len(seed) != SEED_BYTES:
            raise ValueError(f"an Ed25519 seed is {SEED_BYTES} bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(bytes(seed)))

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @property
    def key_id(self) -> bytes:
        return self.public_key.key_id

    @property
    def key_id_hex(self) -> str:
        return self.public_key.key_id_hex

    def _sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey(key id {self.key_id_hex})"


def public_key_file(key: SigningKey | PublicKey) -> str:
    """The ``minisign.pub`` text for `key`."""
    public = key.public_key if isinstance(key, SigningKey) else key
    return public.file_text()


def public_key_line(key: SigningKey | PublicKey) -> str:
    """The base64 public key line for ``minisign -V -P <line>``."""
    public = key.public_key if isinstance(key, SigningKey) else key
    return public.line()


def sign(key: SigningKey, data: Data, *, trusted_comment: str,
         untrusted_comment: str = DEFAULT_UNTRUSTED_COMMENT) -> str:
    """The ``.minisig`` text signing `data` (bytes, or an iterable of byte chunks hashed as they come).

    The trusted comment is signed too (minisign prints it after a successful check); the untrusted one is not.
    Each must be one line; `ValueError` if not, or if longer than minisign reads.
    """
    trusted = _comment(trusted_comment, MAX_TRUSTED_COMMENT, "trusted comment")
    _comment(untrusted_comment, MAX_UNTRUSTED_COMMENT, "untrusted comment")
    signature = key._sign(_prehash(data))
    global_signature = key._sign(signature + trusted)
    return (f"{UNTRUSTED_PREFIX}{untrusted_comment}\n"
            f"{_b64(HASHED + key.key_id + signature)}\n"
            f"{TRUSTED_PREFIX}{trusted_comment}\n"
            f"{_b64(global_signature)}\n")


@dataclass(frozen=True)
class Signature:
    """The parts of a ``.minisig`` file."""

    algorithm: bytes  # HASHED or LEGACY
    key_id: bytes
    signature: bytes
    trusted_comment: str
    global_signature: bytes
    untrusted_comment: str

    @property
    def key_id_hex(self) -> str:
        return _key_id_hex(self.key_id)

    @classmethod
    def parse(cls, text: str) -> Signature:
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        lines = [line.removesuffix("\r") for line in lines]
        if len(lines) != 4:
            raise SignatureError("a minisign signature has four lines")
        untrusted, blob_line, trusted, global_line = lines
        if not untrusted.startswith(UNTRUSTED_PREFIX):
            raise SignatureError(f"the first line of a minisign signature starts with {UNTRUSTED_PREFIX!r}")
        if not trusted.startswith(TRUSTED_PREFIX):
            raise SignatureError(f"the third line of a minisign signature starts with {TRUSTED_PREFIX!r}")
        blob = _unb64(blob_line, 2 + KEY_ID_BYTES + SIGNATURE_BYTES, "signature")
        if blob[:2] not in (HASHED, LEGACY):
            raise SignatureError("the signature uses an algorithm other than minisign's Ed25519")
        return cls(algorithm=blob[:2], key_id=blob[2:2 + KEY_ID_BYTES], signature=blob[2 + KEY_ID_BYTES:],
                   trusted_comment=trusted.removeprefix(TRUSTED_PREFIX),
                   global_signature=_unb64(global_line, SIGNATURE_BYTES, "trusted comment signature"),
                   untrusted_comment=untrusted.removeprefix(UNTRUSTED_PREFIX))


def verify(public_key: str | PublicKey, signature_text: str, data: Data) -> str:
    """Check `signature_text` over `data` (bytes or an iterable of chunks) and return its trusted comment.

    `public_key` is a ``minisign.pub`` file's text, its base64 line, or a `PublicKey`. Raises `SignatureError` if
    either is malformed, if the signature is from another key, if it does not match the data, or if its trusted
    comment was altered.
    """
    key = public_key if isinstance(public_key, PublicKey) else PublicKey.parse(public_key)
    parsed = Signature.parse(signature_text)
    if parsed.key_id != key.key_id:
        raise SignatureError(f"the signature was made with key {parsed.key_id_hex}, "
                             f"not with the given public key {key.key_id_hex}")
    verifier = Ed25519PublicKey.from_public_bytes(key.public_bytes)
    message = _prehash(data) if parsed.algorithm == HASHED else _whole(data)
    try:
        verifier.verify(parsed.signature, message)
    except InvalidSignature:
        raise SignatureError("the signature does not match the data") from None
    try:
        verifier.verify(parsed.global_signature, parsed.signature + parsed.trusted_comment.encode("utf-8"))
    except InvalidSignature:
        raise SignatureError("the trusted comment does not match its signature: it was altered") from None
    return parsed.trusted_comment
