"""A sealed local keyring: versioned key-encryption keys and subkey seeds, kept outside the database.

The keyring is a small JSON file. Its secret part (the KEKs and one seed per purpose) is encrypted with
AES-256-GCM under a key derived from a passphrase with scrypt, so a copy of the file alone (a backup, a
stolen disk) reveals nothing without the passphrase. Everything in the file's header except the ciphertext
is bound to the encryption as associated data, so weakening the KDF parameters or swapping the nonce makes
the file fail to open instead of silently doing something else.

File format, version 1::

    {"format": "intake-keyring", "version": 1,
     "kdf": {"name": "scrypt", "n": N, "r": 8, "p": 1, "salt": b64(16 bytes)},
     "cipher": "AES-256-GCM", "nonce": b64(12 bytes), "ciphertext": b64}

The plaintext is JSON::

    {"keks": {"1": b64(32 bytes), ...}, "primary_kek": 1,
     "seeds": {"<purpose>": b64(32 bytes), ...}, "created": iso8601}

Only primitives from ``cryptography`` are composed here; nothing is implemented by hand.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as _dt
import errno
import json
import os
import secrets
import tempfile
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from intake.core.files import fsync_directory

__all__ = [
    "DEFAULT_SCRYPT_N",
    "MIN_PASSPHRASE_LENGTH",
    "PASSPHRASE_ENV",
    "PASSPHRASE_FILE_ENV",
    "PURPOSES",
    "Keyring",
    "KeyringError",
    "UnknownKeyError",
    "create_passphrase_file",
    "read_passphrase",
]

PURPOSES: tuple[str, ...] = (
    "account-secrets",
    "session-secret",
    "blind-index",
    "audit-signing",
    "export-signing",
    "sign-in-throttle",
    "recovery-codes",
    "api-tokens",
)

# OWASP's recommended scrypt cost (N=2^17, r=8, p=1): about 128 MiB and a fraction of a second per attempt.
DEFAULT_SCRYPT_N = 2**17
# Bounds accepted when reading or writing a keyring. The lower bound keeps test keyrings usable; the upper
# bound stops a hostile or corrupted header from making the service allocate gigabytes before failing.
MIN_SCRYPT_N = 2**10
MAX_SCRYPT_N = 2**20
SCRYPT_R = 8
SCRYPT_P = 1

MIN_PASSPHRASE_LENGTH = 12
# Names of environment variables, not secrets.
PASSPHRASE_ENV = "INTAKE_KEYRING_PASSPHRASE"  # noqa: S105
PASSPHRASE_FILE_ENV = "INTAKE_KEYRING_PASSPHRASE_FILE"  # noqa: S105

_FORMAT = "intake-keyring"
_FORMAT_VERSION = 1
_CIPHER = "AES-256-GCM"
_KEY_LEN = 32
_SALT_LEN = 16
_NONCE_LEN = 12
_SEED_LEN = 32
_HEADER_FIELDS = frozenset({"format", "version", "kdf", "cipher", "nonce", "ciphertext"})
_KDF_FIELDS = frozenset({"name", "n", "r", "p", "salt"})
_PAYLOAD_FIELDS = frozenset({"keks", "primary_kek", "seeds", "created"})
# A keyring holds a handful of 32-byte keys; anything much larger is not one of ours.
_MAX_FILE_BYTES = 1024 * 1024
_MAX_PASSPHRASE_FILE_BYTES = 64 * 1024
# HKDF-SHA256 can produce at most 255 blocks of 32 bytes.
_MAX_SUBKEY_LEN = 255 * 32


class KeyringError(Exception):
    """A keyring operation failed.

    The message is meant for the person running the service: it says what went wrong and names the file
    involved, and it never contains key material or the passphrase.
    """


class UnknownKeyError(KeyringError, KeyError):
    """A KEK version or subkey purpose that this keyring does not hold was requested.

    It is also a ``KeyError`` so that lookup-style callers can treat it like a missing mapping key.
    """

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message and wrap it in quotes.
        return Exception.__str__(self)


class _NotAKeyring(Exception):
    """Internal: the file's structure is invalid. Turned into a KeyringError naming the file."""


def _canonical_json(value: Any) -> bytes:
    """Serialise deterministically, so the associated data is the same on every machine."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: Any, what: str, length: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise _NotAKeyring(f"{what} is not a base64 string")
    try:
        data = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise _NotAKeyring(f"{what} is not valid base64") from None
    if length is not None and len(data) != length:
        raise _NotAKeyring(f"{what} has the wrong length")
    return data


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON object hook: duplicate keys would make "what the header says" ambiguous, so refuse them."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _NotAKeyring(f"duplicate field {key!r}")
        result[key] = value
    return result


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _normalise_passphrase(passphrase: str) -> bytes:
    """Encode the passphrase for the KDF.

    Unicode normalisation (NFC) makes a passphrase typed on another keyboard or operating system, which may
    produce a differently composed but identical-looking string, still open the keyring.
    """
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def _check_new_passphrase(passphrase: str, path: Path) -> None:
    if not isinstance(passphrase, str) or not passphrase:
        raise KeyringError(f"Refusing to seal keyring {path}: the passphrase is empty.")
    if len(unicodedata.normalize("NFC", passphrase)) < MIN_PASSPHRASE_LENGTH:
        raise KeyringError(
            f"Refusing to seal keyring {path}: the passphrase is shorter than {MIN_PASSPHRASE_LENGTH} "
            "characters. Use a long random passphrase (for example one made by create_passphrase_file)."
        )


def _check_scrypt_n(n: Any) -> int:
    if not _is_int(n) or n < MIN_SCRYPT_N or n > MAX_SCRYPT_N or n & (n - 1):
        raise ValueError(f"scrypt N must be a power of two between 2**10 and 2**20, not {n!r}")
    return int(n)


def _derive_sealing_key(passphrase: str, salt: bytes, n: int) -> bytes:
    kdf = Scrypt(salt=salt, length=_KEY_LEN, n=n, r=SCRYPT_R, p=SCRYPT_P)
    return kdf.derive(_normalise_passphrase(passphrase))


def _write_atomically(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write ``data`` to ``path`` with mode 0600 so that readers see either the old file or the new one.

    A keyring that is half-written when the machine loses power would lock everyone out of every testimony,
    so the data goes to a temporary file in the same directory, is flushed to disk, and is then renamed over
    the target. When ``overwrite`` is false the final step is a hard link, which fails if the target appeared
    in the meantime, instead of a rename, which would silently replace it.
    """
    directory = path.parent
    try:
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise KeyringError(f"Cannot write keyring {path}: {exc.strerror or exc}.") from None
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise KeyringError(f"Cannot write keyring {path}: {exc.strerror or exc}.") from None
        if overwrite:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise KeyringError(f"Cannot write keyring {path}: {exc.strerror or exc}.") from None
        else:
            _link_new(tmp, path)
        fsync_directory(directory)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _exists_error(path: Path) -> KeyringError:
    return KeyringError(
        f"Refusing to create keyring {path}: the file already exists. Move it away first if you really "
        "mean to replace it; without it, data sealed with its keys cannot be read."
    )


def _link_new(tmp: Path, path: Path) -> None:
    """Publish ``tmp`` as ``path`` only if ``path`` does not exist yet."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise _exists_error(path) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise KeyringError(f"Cannot write keyring {path}: {exc.strerror or exc}.") from None
        # The filesystem has no hard links: fall back to check-then-rename, which is racy but still atomic.
        if os.path.lexists(path):
            raise _exists_error(path) from None
        try:
            os.replace(tmp, path)
        except OSError as exc2:
            raise KeyringError(f"Cannot write keyring {path}: {exc2.strerror or exc2}.") from None


class Keyring:
    """Versioned KEKs and per-purpose subkey seeds, unsealed in memory.

    KEKs wrap the per-record data keys; they are versioned so that rotation can add a new primary version,
    rewrap data keys in batches, and only then retire the old version. Seeds never protect data directly:
    each feeds HKDF to derive subkeys, so every use (blind indexes, signing, sessions, ...) gets its own key
    and compromise or misuse of one never exposes another.

    Instances hold key material; never log them. ``repr()`` shows only versions and purposes.
    """

    __slots__ = ("_created", "_keks", "_primary", "_scrypt_n", "_seeds")

    def __init__(
        self,
        *,
        keks: Mapping[int, bytes],
        primary_kek: int,
        seeds: Mapping[str, bytes],
        created: str,
        scrypt_n: int = DEFAULT_SCRYPT_N,
    ) -> None:
        """Build a keyring from already-validated parts; use ``create`` or ``open`` instead."""
        if primary_kek not in keks:
            raise KeyringError("The primary KEK version is not among the keyring's KEK versions.")
        self._keks: dict[int, bytes] = dict(keks)
        self._primary = primary_kek
        self._seeds: dict[str, bytes] = dict(seeds)
        self._created = created
        self._scrypt_n = _check_scrypt_n(scrypt_n)

    # ------------------------------------------------------------------ creation and sealing

    @classmethod
    def create(cls, path: Path, passphrase: str, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> Keyring:
        """Generate a new keyring (KEK version 1 and one seed per purpose), seal it and write it to ``path``.

        Refuses to overwrite an existing file: replacing a keyring would make every record sealed with the
        old one unreadable. Refuses passphrases shorter than 12 characters, because the passphrase is the
        only thing standing between a copied keyring file and all survivors' data.
        """
        path = Path(path)
        _check_new_passphrase(passphrase, path)
        try:
            n = _check_scrypt_n(scrypt_n)
        except ValueError as exc:
            raise KeyringError(f"Cannot create keyring {path}: {exc}.") from None
        if os.path.lexists(path):
            # Checked early to fail before the slow KDF; _write_atomically checks again without a race.
            raise _exists_error(path)
        keyring = cls(
            keks={1: secrets.token_bytes(_KEY_LEN)},
            primary_kek=1,
            seeds={purpose: secrets.token_bytes(_SEED_LEN) for purpose in PURPOSES},
            created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            scrypt_n=n,
        )
        _write_atomically(path, keyring._seal(passphrase, n), overwrite=False)
        return keyring

    def save(self, path: Path, passphrase: str, *, scrypt_n: int | None = None) -> None:
        """Re-seal the keyring with a fresh salt and nonce and atomically replace ``path`` (mode 0600).

        Used after changing the passphrase and after KEK rotation. ``scrypt_n`` defaults to the cost the
        keyring was created or opened with, so a later save never silently weakens the KDF.
        """
        path = Path(path)
        _check_new_passphrase(passphrase, path)
        try:
            n = self._scrypt_n if scrypt_n is None else _check_scrypt_n(scrypt_n)
        except ValueError as exc:
            raise KeyringError(f"Cannot save keyring {path}: {exc}.") from None
        _write_atomically(path, self._seal(passphrase, n), overwrite=True)
        self._scrypt_n = n

    def write_copy(self, path: Path, passphrase: str) -> None:
        """Write a sealed copy of this keyring to a new file `path` (a backup); refuses to replace a file.

        The copy may be sealed with another passphrase than the working keyring, so that the backup and its
        passphrase can be kept by other people, in other places.
        """
        path = Path(path)
        _check_new_passphrase(passphrase, path)
        if os.path.lexists(path):
            raise _exists_error(path)
        _write_atomically(path, self._seal(passphrase, self._scrypt_n), overwrite=False)

    def _seal(self, passphrase: str, n: int) -> bytes:
        payload = {
            "keks": {str(v): _b64encode(k) for v, k in sorted(self._keks.items())},
            "primary_kek": self._primary,
            "seeds": {p: _b64encode(s) for p, s in sorted(self._seeds.items())},
            "created": self._created,
        }
        salt = secrets.token_bytes(_SALT_LEN)
        nonce = secrets.token_bytes(_NONCE_LEN)
        header: dict[str, Any] = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "kdf": {"name": "scrypt", "n": n, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64encode(salt)},
            "cipher": _CIPHER,
            "nonce": _b64encode(nonce),
        }
        key = _derive_sealing_key(passphrase, salt, n)
        ciphertext = AESGCM(key).encrypt(nonce, _canonical_json(payload), _canonical_json(header))
        header["ciphertext"] = _b64encode(ciphertext)
        return (json.dumps(header, indent=2) + "\n").encode("utf-8")

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: Path, passphrase: str) -> Keyring:
        """Read and unseal the keyring at ``path``.

        Failures are told apart so the operator knows what to fix: a missing file, a file that is not a
        keyring or is damaged, and a wrong passphrase. GCM cannot distinguish a wrong passphrase from an
        altered file, so that message names both possibilities.
        """
        path = Path(path)
        raw = _read_keyring_file(path)
        if not isinstance(passphrase, str) or not passphrase:
            raise KeyringError(f"Cannot open keyring {path}: no passphrase was given.")
        try:
            header = _parse_header(raw)
            kdf = header["kdf"]
            salt = _b64decode(kdf["salt"], "kdf.salt", _SALT_LEN)
            nonce = _b64decode(header["nonce"], "nonce", _NONCE_LEN)
            ciphertext = _b64decode(header["ciphertext"], "ciphertext")
        except _NotAKeyring as exc:
            raise KeyringError(f"{path} is not an intake keyring or is damaged ({exc}).") from None
        aad = _canonical_json({k: v for k, v in header.items() if k != "ciphertext"})
        key = _derive_sealing_key(passphrase, salt, kdf["n"])
        try:
            plaintext = AESGCM(key).decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise KeyringError(
                f"Cannot open keyring {path}: wrong passphrase, or the keyring file was damaged or altered."
            ) from None
        try:
            keks, primary, seeds, created = _parse_payload(plaintext)
        except _NotAKeyring as exc:
            # Authenticated but malformed: written by incompatible software, not by an attacker.
            raise KeyringError(f"Keyring {path} opened, but its contents are not valid ({exc}).") from None
        return cls(keks=keks, primary_kek=primary, seeds=seeds, created=created, scrypt_n=kdf["n"])

    # ------------------------------------------------------------------ KEKs

    @property
    def primary_kek_version(self) -> int:
        """The KEK version that wraps new data keys."""
        return self._primary

    @property
    def kek_versions(self) -> tuple[int, ...]:
        """All KEK versions held, ascending; older ones are kept until every data key has been rewrapped."""
        return tuple(sorted(self._keks))

    @property
    def created(self) -> str:
        """When the keyring was first created (ISO 8601, UTC)."""
        return self._created

    @property
    def scrypt_n(self) -> int:
        """The scrypt cost the keyring was last sealed or opened with; ``save`` reuses it by default."""
        return self._scrypt_n

    def kek(self, version: int) -> bytes:
        """Return the 32-byte KEK of ``version``; raises UnknownKeyError if the keyring does not hold it.

        A missing version usually means data wrapped under a KEK that has already been retired, or a
        keyring restored from an older backup.
        """
        try:
            return self._keks[version]
        except (KeyError, TypeError):
            raise UnknownKeyError(
                f"The keyring has no KEK version {version!r} (it holds versions "
                f"{', '.join(map(str, self.kek_versions))})."
            ) from None

    def add_kek_version(self) -> int:
        """Add a new random KEK, make it primary and return its version.

        Only changes memory: the caller must ``save`` the keyring before using the new version, or data
        wrapped with it would be lost when the process ends.
        """
        version = max(self._keks) + 1
        self._keks[version] = secrets.token_bytes(_KEY_LEN)
        self._primary = version
        return version

    def retire_kek_version(self, version: int) -> None:
        """Remove a non-primary KEK version (in memory; the caller saves).

        Only do this once no data key is wrapped by ``version`` any more: after the saved keyring no longer
        holds it, such data keys can never be unwrapped.
        """
        if version not in self._keks:
            self.kek(version)  # raises UnknownKeyError with the usual message
        if version == self._primary:
            raise KeyringError(
                f"Cannot retire KEK version {version}: it is the primary version. Add a new version first."
            )
        del self._keks[version]

    # ------------------------------------------------------------------ subkeys

    @property
    def purposes(self) -> tuple[str, ...]:
        """The purposes this keyring holds seeds for."""
        return tuple(sorted(self._seeds))

    def add_missing_seeds(self) -> tuple[str, ...]:
        """Generate seeds for purposes in PURPOSES that this keyring lacks; return those purposes.

        A keyring made by an older release may lack a purpose added later. The seed is not generated on
        demand in ``subkey`` because an unsaved seed would change on every restart; call this explicitly
        and then ``save``.
        """
        added = tuple(p for p in PURPOSES if p not in self._seeds)
        for purpose in added:
            self._seeds[purpose] = secrets.token_bytes(_SEED_LEN)
        return added

    def subkey(self, purpose: str, *, label: str = "", length: int = 32) -> bytes:
        """Derive a key for one use with HKDF-SHA256 over the purpose's seed.

        ``info`` is ``b"intake/" + purpose + b"/" + label``, so keys differ per purpose and per label and
        the same keyring always yields the same key (blind indexes and signatures must stay verifiable
        across restarts). Outputs of different ``length`` for the same purpose and label share a prefix;
        use distinct labels if one use needs keys of several lengths.
        """
        if purpose not in PURPOSES:
            raise UnknownKeyError(
                f"Unknown subkey purpose {purpose!r}; known purposes: {', '.join(PURPOSES)}."
            )
        seed = self._seeds.get(purpose)
        if seed is None:
            raise UnknownKeyError(
                f"The keyring has no seed for purpose {purpose!r}; it was probably created by an older "
                "release. Add the missing seeds (Keyring.add_missing_seeds) and save the keyring."
            )
        if not _is_int(length) or not 1 <= length <= _MAX_SUBKEY_LEN:
            raise ValueError(f"subkey length must be between 1 and {_MAX_SUBKEY_LEN} bytes")
        info = b"intake/" + purpose.encode("ascii") + b"/" + label.encode("utf-8")
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(seed)

    def __repr__(self) -> str:
        return (
            f"<Keyring kek_versions={self.kek_versions} primary_kek={self._primary} "
            f"purposes={len(self._seeds)}>"
        )

    def __reduce__(self) -> Any:
        # Pickling would copy key material into caches, queues or crash dumps; refuse outright.
        raise TypeError("Keyring objects cannot be pickled")


def _read_keyring_file(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise KeyringError(
            f"Keyring file {path} does not exist. Create one first, or check the configured path."
        ) from None
    except IsADirectoryError:
        raise KeyringError(f"Keyring path {path} is a directory, not a keyring file.") from None
    except PermissionError:
        raise KeyringError(f"Cannot read keyring file {path}: permission denied.") from None
    except OSError as exc:
        raise KeyringError(f"Cannot read keyring file {path}: {exc.strerror or exc}.") from None
    if len(raw) > _MAX_FILE_BYTES:
        raise KeyringError(f"{path} is not an intake keyring or is damaged (the file is far too large).")
    return raw


def _parse_header(raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicate_keys)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise _NotAKeyring("not valid JSON") from None
    if not isinstance(header, dict):
        raise _NotAKeyring("not a JSON object")
    if header.get("format") != _FORMAT:
        raise _NotAKeyring(f"the format field is not {_FORMAT!r}")
    if header.get("version") != _FORMAT_VERSION or not _is_int(header.get("version")):
        raise _NotAKeyring(f"unsupported keyring version {header.get('version')!r}")
    missing = _HEADER_FIELDS - header.keys()
    if missing:
        raise _NotAKeyring(f"missing field(s) {', '.join(sorted(missing))}")
    extra = header.keys() - _HEADER_FIELDS
    if extra:
        raise _NotAKeyring(f"unexpected field(s) {', '.join(sorted(extra))}")
    if header["cipher"] != _CIPHER:
        raise _NotAKeyring(f"unsupported cipher {header['cipher']!r}")
    kdf = header["kdf"]
    if not isinstance(kdf, dict) or kdf.keys() != _KDF_FIELDS:
        raise _NotAKeyring("the kdf field is malformed")
    if kdf["name"] != "scrypt" or kdf["r"] != SCRYPT_R or kdf["p"] != SCRYPT_P:
        raise _NotAKeyring("unsupported key derivation parameters")
    if not _is_int(kdf["r"]) or not _is_int(kdf["p"]):
        raise _NotAKeyring("unsupported key derivation parameters")
    try:
        _check_scrypt_n(kdf["n"])
    except ValueError:
        raise _NotAKeyring("unsupported scrypt cost") from None
    return header


def _parse_payload(plaintext: bytes) -> tuple[dict[int, bytes], int, dict[str, bytes], str]:
    try:
        payload = json.loads(plaintext.decode("utf-8"), object_pairs_hook=_reject_duplicate_keys)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise _NotAKeyring("not valid JSON") from None
    if not isinstance(payload, dict) or payload.keys() != _PAYLOAD_FIELDS:
        raise _NotAKeyring("unexpected structure")
    raw_keks, primary, raw_seeds, created = (
        payload["keks"],
        payload["primary_kek"],
        payload["seeds"],
        payload["created"],
    )
    if not isinstance(raw_keks, dict) or not raw_keks:
        raise _NotAKeyring("no KEKs")
    keks: dict[int, bytes] = {}
    for name, value in raw_keks.items():
        if not (name.isascii() and name.isdigit()) or name != str(int(name)) or int(name) < 1:
            raise _NotAKeyring(f"invalid KEK version {name!r}")
        keks[int(name)] = _b64decode(value, f"KEK version {name}", _KEY_LEN)
    if not _is_int(primary) or primary not in keks:
        raise _NotAKeyring("the primary KEK version is missing")
    if not isinstance(raw_seeds, dict):
        raise _NotAKeyring("seeds are malformed")
    seeds = {str(p): _b64decode(v, f"seed {p!r}", _SEED_LEN) for p, v in raw_seeds.items()}
    if not isinstance(created, str):
        raise _NotAKeyring("created is malformed")
    return keks, primary, seeds, created


def read_passphrase(environ: Mapping[str, str]) -> str:
    """Return the keyring passphrase from the environment.

    ``INTAKE_KEYRING_PASSPHRASE`` holds it directly; ``INTAKE_KEYRING_PASSPHRASE_FILE`` names a file holding
    it (better: the secret stays out of ``/proc/*/environ`` and child processes). One trailing newline is
    removed from the file, since editors add one. Setting both is refused rather than picking one, because
    the operator would not know which passphrase was used.
    """
    direct = environ.get(PASSPHRASE_ENV)
    file_name = environ.get(PASSPHRASE_FILE_ENV)
    if direct is not None and file_name is not None:
        raise KeyringError(f"Both {PASSPHRASE_ENV} and {PASSPHRASE_FILE_ENV} are set; set only one of them.")
    if direct is not None:
        if not direct:
            raise KeyringError(f"{PASSPHRASE_ENV} is set but empty.")
        return direct
    if file_name is None:
        raise KeyringError(
            f"No keyring passphrase given: set {PASSPHRASE_FILE_ENV} to the path of a file holding the "
            f"passphrase (preferred), or set {PASSPHRASE_ENV}."
        )
    if not file_name:
        raise KeyringError(f"{PASSPHRASE_FILE_ENV} is set but empty.")
    path = Path(file_name)
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_PASSPHRASE_FILE_BYTES + 1)
    except FileNotFoundError:
        raise KeyringError(f"Cannot read passphrase file {path}: it does not exist.") from None
    except PermissionError:
        raise KeyringError(f"Cannot read passphrase file {path}: permission denied.") from None
    except OSError as exc:
        raise KeyringError(f"Cannot read passphrase file {path}: {exc.strerror or exc}.") from None
    if len(data) > _MAX_PASSPHRASE_FILE_BYTES:
        raise KeyringError(f"Passphrase file {path} is too large to be a passphrase file.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyringError(f"Passphrase file {path} is not valid UTF-8 text.") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise KeyringError(f"Passphrase file {path} is empty.")
    return text


def create_passphrase_file(path: Path) -> str:
    """Write a new random passphrase (``secrets.token_urlsafe(32)``, 256 bits) to ``path`` and return it.

    A generated passphrase is far stronger than one a person would choose. The file is created exclusively
    with mode 0600, so an existing passphrase is never overwritten (that would lock the keyring) and no other
    user can ever read it, not even briefly.
    """
    path = Path(path)
    passphrase = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    except FileExistsError:
        raise KeyringError(f"Refusing to create passphrase file {path}: the file already exists.") from None
    except OSError as exc:
        raise KeyringError(f"Cannot create passphrase file {path}: {exc.strerror or exc}.") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            # The umask can only remove bits from 0600; set it exactly in case it removed the owner's.
            os.fchmod(handle.fileno(), 0o600)
            handle.write(passphrase + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        raise KeyringError(f"Cannot write passphrase file {path}: {exc.strerror or exc}.") from None
    return passphrase
