"""Signed notes (c2sp.org/signed-note) and transparency-log checkpoints (c2sp.org/tlog-checkpoint).

The wire format is that of Go's golang.org/x/mod/sumdb/note, so a checkpoint signed here opens with
`note.Open` and with the other tools of the transparency-log ecosystem. Only Ed25519 keys (signature type 0x01)
are supported; signatures by other keys or other algorithms are carried through as unknown, as the spec asks.

A note is a text ending in a newline, a blank line, then one signature line per key::

    <text>\\n
    \\n
    — <key name> <base64(4-byte key hash || signature)>\\n

The text of a note must be ignored unless `open_note` (or `open_checkpoint`) has verified it.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "Checkpoint",
    "MalformedNote",
    "Signature",
    "Signer",
    "UnverifiedNote",
    "Verifier",
    "key_hash",
    "open_checkpoint",
    "open_note",
    "parse_note",
    "sign_checkpoint",
    "sign_note",
]

ALG_ED25519 = 0x01
# Go's note.Open refuses more; the spec asks verifiers to accept at least 16.
MAX_SIGNATURES = 100
ROOT_HASH_SIZE = 32
MAX_TREE_SIZE = 2**64 - 1  # RFC 6962 tree sizes are uint64

_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"
_KEY_HASH = re.compile(r"[0-9a-fA-F]{8}")
_TREE_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


class MalformedNote(ValueError):
    """The note does not follow the signed-note format."""


class UnverifiedNote(ValueError):
    """The note carries no valid signature from a known key, or a known key's signature failed.

    `invalid` is True when a signature whose key name and hash match a known verifier does not verify
    (`failed_key` names it); otherwise no signature came from a known key. `unknown_keys` lists the
    (name, key hash) of the signatures from keys that were not known, in note order.
    """

    def __init__(
        self,
        message: str,
        *,
        unknown_keys: list[tuple[str, int]],
        invalid: bool,
        failed_key: tuple[str, int] | None = None,
    ) -> None:
        super().__init__(message)
        self.unknown_keys = unknown_keys
        self.invalid = invalid
        self.failed_key = failed_key


def _check_utf8(text: str, what: str, error: type[ValueError] = ValueError) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise error(f"{what} is not valid UTF-8") from None


def _check_name(name: str) -> None:
    """Raise ValueError unless `name` is a valid key name (non-empty, no Unicode space, no '+')."""
    if not isinstance(name, str) or not name:
        raise ValueError("key name must be a non-empty string")
    _check_utf8(name, "key name")
    if "+" in name:
        raise ValueError(f"key name must not contain '+': {name!r}")
    if any(c.isspace() for c in name) or _CONTROL.search(name):
        raise ValueError(f"key name must not contain spaces or control characters: {name!r}")


def _b64decode(text: str, what: str) -> bytes:
    """Decode standard, padded base64, refusing any other spelling of the same bytes."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except ValueError:
        raise ValueError(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError(f"{what} is not canonical padded base64")
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _parse_key_hash(text: str, what: str) -> int:
    if not _KEY_HASH.fullmatch(text):
        raise ValueError(f"{what} key hash must be 8 hexadecimal digits, got {text!r}")
    return int(text, 16)


def _parse_key(text: str, kind: str, what: str, form: str) -> tuple[str, int, bytes]:
    """Name, key hash and the 32 key bytes of "<name>+<8 hex key hash>+<base64(0x01 || key)>"."""
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise ValueError(f"{kind} key must have the form {form}")
    name, hash_hex, key_b64 = parts
    _check_name(name)
    expected_hash = _parse_key_hash(hash_hex, kind)
    key = _b64decode(key_b64, f"{kind} key data")
    if not key:
        raise ValueError(f"{kind} key data is empty")
    if key[0] != ALG_ED25519:
        raise ValueError(f"unsupported {kind} key type 0x{key[0]:02x} (only Ed25519, 0x01)")
    if len(key) != 1 + 32:
        raise ValueError(f"Ed25519 {what} must be 32 bytes, got {len(key) - 1}")
    return name, expected_hash, key[1:]


def key_hash(name: str, public_key: bytes) -> int:
    """The 32-bit key ID of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || public key)[:4], big-endian."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class Verifier:
    """A named Ed25519 public key that checks note signatures."""

    name: str
    key_hash: int
    public_key: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise ValueError("Ed25519 public key must be 32 bytes")
        if self.key_hash != key_hash(self.name, self.public_key):
            raise ValueError(f"key hash does not match the name and public key of {self.name!r}")

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> Verifier:
        """The verifier for `public_key` under `name`, with its key hash computed."""
        return cls(name, key_hash(name, public_key), public_key)

    @classmethod
    def from_string(cls, vkey: str) -> Verifier:
        """Parse a verifier key "<name>+<8 hex key hash>+<base64(0x01 || public key)>"."""
        if not isinstance(vkey, str):
            raise ValueError("verifier key must be a string")
        name, expected_hash, key = _parse_key(vkey, "verifier", "public key", "<name>+<key hash>+<key>")
        if key_hash(name, key) != expected_hash:
            raise ValueError("verifier key hash does not match its name and key")
        return cls(name, expected_hash, key)

    def to_string(self) -> str:
        """The verifier key string, as `from_string` reads it."""
        return f"{self.name}+{self.key_hash:08x}+{_b64encode(bytes([ALG_ED25519]) + self.public_key)}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Whether `signature` (64 bytes) is this key's Ed25519 signature of `text`."""
        if len(signature) != 64:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text)
        except (InvalidSignature, ValueError):
            return False
        return True


class Signer:
    """A named Ed25519 private key that signs notes."""

    __slots__ = ("_private_key", "_verifier")

    def __init__(self, name: str, seed: bytes) -> None:
        _check_name(name)
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise ValueError("Ed25519 seed must be 32 bytes")
        self._private_key = Ed25519PrivateKey.from_private_bytes(seed)
        self._verifier = Verifier.from_public_key(name, self._private_key.public_key().public_bytes_raw())

    @classmethod
    def from_string(cls, skey: str) -> Signer:
        """Parse a signer key "PRIVATE+KEY+<name>+<8 hex key hash>+<base64(0x01 || seed)>"."""
        if not isinstance(skey, str) or not skey.startswith(_PRIVATE_KEY_PREFIX):
            raise ValueError("signer key must start with PRIVATE+KEY+")
        name, expected_hash, seed = _parse_key(skey[len(_PRIVATE_KEY_PREFIX) :], "signer", "seed",
                                               "PRIVATE+KEY+<name>+<key hash>+<key>")
        signer = cls(name, seed)
        if signer.key_hash != expected_hash:
            raise ValueError("signer key hash does not match its name and public key")
        return signer

    @property
    def name(self) -> str:
        """The key name written in signature lines."""
        return self._verifier.name

    @property
    def key_hash(self) -> int:
        """The 32-bit key ID written before each signature."""
        return self._verifier.key_hash

    @property
    def verifier(self) -> Verifier:
        """The matching public verifier."""
        return self._verifier

    def sign(self, text: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `text`."""
        return self._private_key.sign(text)

    def private_key_string(self) -> str:
        """The secret signer key string, as `from_string` reads it. Never log or print it."""
        seed = self._private_key.private_bytes_raw()
        return f"{_PRIVATE_KEY_PREFIX}{self.name}+{self.key_hash:08x}+{_b64encode(bytes([ALG_ED25519]) + seed)}"

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_hash=0x{self.key_hash:08x})"


@dataclass(frozen=True)
class Signature:
    """One signature line of a note: key name, key hash and the signature bytes after the hash."""

    name: str
    key_hash: int
    signature: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if isinstance(self.key_hash, bool) or not isinstance(self.key_hash, int) or not 0 <= self.key_hash < 2**32:
            raise ValueError("signature key hash must be a 32-bit unsigned integer")
        if not isinstance(self.signature, bytes) or not self.signature:
            raise ValueError("signature bytes must not be empty")

    def to_line(self) -> str:
        """The signature line, newline included."""
        raw = self.key_hash.to_bytes(4, "big") + self.signature
        return f"{_SIGNATURE_PREFIX}{self.name} {_b64encode(raw)}\n"


def _check_note_text(text: str, what: str) -> None:
    if not isinstance(text, str):
        raise MalformedNote(f"{what} must be a string")
    _check_utf8(text, what, MalformedNote)
    if _CONTROL.search(text):
        raise MalformedNote(f"{what} contains a control character other than newline")


def sign_note(text: str, *signers: Signer) -> str:
    """Sign `text` with each signer and return the note.

    The text must end in a newline and hold no control character other than newline. It may hold blank lines:
    the signatures start after the last one.
    """
    _check_note_text(text, "note text")
    if not text.endswith("\n"):
        raise MalformedNote("note text must end with a newline")
    if not signers:
        raise ValueError("a note needs at least one signer")
    if len(signers) > MAX_SIGNATURES:
        raise ValueError(f"a note holds at most {MAX_SIGNATURES} signatures")
    keys = [(s.name, s.key_hash) for s in signers]
    if len(set(keys)) != len(keys):
        raise ValueError("the same key is given twice")
    message = text.encode("utf-8")
    lines = [Signature(s.name, s.key_hash, s.sign(message)).to_line() for s in signers]
    return text + "\n" + "".join(lines)


def parse_note(note: str) -> tuple[str, list[Signature]]:
    """Split a note into its text and signatures, verifying nothing.

    Raises MalformedNote (a ValueError) naming the problem. The text must not be trusted until `open_note`
    has verified it.
    """
    _check_note_text(note, "note")
    split = note.rfind("\n\n")
    if split < 0:
        raise MalformedNote("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise MalformedNote("note has no signature")
    if not block.endswith("\n"):
        raise MalformedNote("note does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNote(f"note has more than {MAX_SIGNATURES} signatures")
    signatures = []
    for number, line in enumerate(lines, start=1):
        where = f"signature line {number}"
        if not line.startswith(_SIGNATURE_PREFIX):
            raise MalformedNote(f"{where} does not start with an em dash and a space")
        name, space, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
        if not space or not encoded:
            raise MalformedNote(f"{where} has no signature after the key name")
        try:
            _check_name(name)
        except ValueError as exc:
            raise MalformedNote(f"{where}: {exc}") from None
        try:
            raw = _b64decode(encoded, "signature")
        except ValueError as exc:
            raise MalformedNote(f"{where}: {exc}") from None
        if len(raw) < 5:
            raise MalformedNote(f"{where}: signature is too short ({len(raw)} bytes)")
        signatures.append(Signature(name, int.from_bytes(raw[:4], "big"), raw[4:]))
    return text, signatures


def _key_label(key: tuple[str, int]) -> str:
    return f"{key[0]}+{key[1]:08x}"


def open_note(note: str, verifiers: Iterable[Verifier]) -> tuple[str, list[Signature]]:
    """Verify a note and return its text and the signatures that verified, one per known key.

    Signatures from unknown keys (name and key hash not both matching a verifier) are ignored. Every signature
    from a known key must verify, and at least one must be present; otherwise UnverifiedNote is raised.
    """
    known: dict[tuple[str, int], Verifier] = {}
    for verifier in verifiers:
        key = (verifier.name, verifier.key_hash)
        if known.setdefault(key, verifier) != verifier:
            raise ValueError(f"two different verifiers share the name and key hash {_key_label(key)}")
    text, signatures = parse_note(note)
    message = text.encode("utf-8")

    unknown_keys: list[tuple[str, int]] = []
    for sig in signatures:
        key = (sig.name, sig.key_hash)
        if key not in known and key not in unknown_keys:
            unknown_keys.append(key)

    verified: dict[tuple[str, int], Signature] = {}
    for sig in signatures:
        key = (sig.name, sig.key_hash)
        if key not in known:
            continue
        # Every line from a known key is checked, repeated ones included: one bad line rejects the note.
        if not known[key].verify(message, sig.signature):
            raise UnverifiedNote(
                f"signature by {_key_label(key)} does not verify",
                unknown_keys=unknown_keys,
                invalid=True,
                failed_key=key,
            )
        verified.setdefault(key, sig)

    if not verified:
        signed_by = ", ".join(_key_label(k) for k in unknown_keys)
        raise UnverifiedNote(
            f"note has no signature from a known key (signed by {signed_by})",
            unknown_keys=unknown_keys,
            invalid=False,
        )
    return text, list(verified.values())


def _check_checkpoint_line(line: str, what: str) -> None:
    if not isinstance(line, str) or not line:
        raise ValueError(f"checkpoint {what} must be a non-empty string")
    _check_utf8(line, f"checkpoint {what}")
    if "\n" in line or _CONTROL.search(line):
        raise ValueError(f"checkpoint {what} must be one line without control characters")


@dataclass(frozen=True)
class Checkpoint:
    """A transparency-log checkpoint: the log's origin, its tree size and the Merkle root at that size."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_checkpoint_line(self.origin, "origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise ValueError("checkpoint tree size must be an integer from 0 to 2**64 - 1")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != ROOT_HASH_SIZE:
            raise ValueError(f"checkpoint root hash must be {ROOT_HASH_SIZE} bytes")
        if isinstance(self.extensions, str):
            raise ValueError("checkpoint extensions must be a sequence of lines, not one string")
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for number, line in enumerate(self.extensions, start=1):
            _check_checkpoint_line(line, f"extension line {number}")

    def to_text(self) -> str:
        """The checkpoint as note text, ending in a newline."""
        lines = [self.origin, str(self.size), _b64encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse checkpoint note text strictly; ValueError names what is wrong."""
        if not isinstance(text, str):
            raise ValueError("checkpoint text must be a string")
        if not text.endswith("\n"):
            raise ValueError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise ValueError("checkpoint must have an origin line, a tree size line and a root hash line")
        for number, line in enumerate(lines, start=1):
            if not line:
                raise ValueError(f"checkpoint line {number} is empty")
        origin, size_text, root_text, *extensions = lines
        if not _TREE_SIZE.fullmatch(size_text):
            raise ValueError(f"checkpoint tree size must be a decimal number without leading zeros: {size_text!r}")
        size = int(size_text)
        if size > MAX_TREE_SIZE:
            raise ValueError("checkpoint tree size is larger than 2**64 - 1")
        root_hash = _b64decode(root_text, "checkpoint root hash")
        if len(root_hash) != ROOT_HASH_SIZE:
            raise ValueError(f"checkpoint root hash must be {ROOT_HASH_SIZE} bytes, got {len(root_hash)}")
        return cls(origin, size, root_hash, tuple(extensions))


def sign_checkpoint(cp: Checkpoint, signer: Signer) -> str:
    """Sign a checkpoint and return the signed note."""
    return sign_note(cp.to_text(), signer)


def open_checkpoint(
    note: str, verifiers: Iterable[Verifier], *, origin: str | None = None
) -> tuple[Checkpoint, list[Signature]]:
    """Verify a signed checkpoint, then parse it; `origin`, if given, must match the checkpoint's."""
    text, signatures = open_note(note, verifiers)
    checkpoint = Checkpoint.from_text(text)
    if origin is not None and checkpoint.origin != origin:
        raise ValueError(f"checkpoint origin is {checkpoint.origin!r}, expected {origin!r}")
    return checkpoint, signatures
