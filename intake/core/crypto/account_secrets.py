"""The earlier format of account secrets (TOTP seeds): AES-256-GCM under a keyring subkey.

Format: one version byte (0x01), 12-byte random nonce, ciphertext with tag. The associated data binds a sealed
value to its table, row and field. Seeds are now sealed under each account's data key (`fields`), so that KEK
rotation covers them like every other secret; this module remains to read seeds written by earlier releases until
`intake db upgrade` has moved them (`intake.accounts.operations.reseal_legacy_secrets`).
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from intake.core.keys import Keyring

FORMAT_VERSION = 1
_NONCE_BYTES = 12


class SecretUnreadable(Exception):
    """A sealed secret failed to open: wrong key, altered bytes, or moved to another row or field."""


def is_legacy(sealed: bytes) -> bool:
    """Whether `sealed` is in this earlier format (envelope fields begin with b"F")."""
    return len(sealed) > 0 and sealed[0] == FORMAT_VERSION


def _key(keyring: Keyring) -> AESGCM:
    return AESGCM(keyring.subkey("account-secrets", label=f"v{FORMAT_VERSION}"))


def _aad(table: str, row_id: int, field: str) -> bytes:
    return f"intake/account-secret/v{FORMAT_VERSION}/{table}/{row_id}/{field}".encode()


def seal(keyring: Keyring, plaintext: bytes, *, table: str, row_id: int, field: str) -> bytes:
    """Encrypt `plaintext` for storage in `table`.`field` of row `row_id`."""
    nonce = os.urandom(_NONCE_BYTES)
    return bytes([FORMAT_VERSION]) + nonce + _key(keyring).encrypt(nonce, plaintext, _aad(table, row_id, field))


def open_sealed(keyring: Keyring, sealed: bytes, *, table: str, row_id: int, field: str) -> bytes:
    """Decrypt a value produced by `seal` for the same table, row and field."""
    if len(sealed) < 1 + _NONCE_BYTES + 16 or sealed[0] != FORMAT_VERSION:
        raise SecretUnreadable("unknown format")
    nonce, body = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
    try:
        return _key(keyring).decrypt(nonce, body, _aad(table, row_id, field))
    except InvalidTag:
        raise SecretUnreadable("authentication failed") from None
