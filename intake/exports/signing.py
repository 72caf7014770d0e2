"""The key that signs case-file manifests: an Ed25519 key derived from the keyring's `export-signing` seed (never
the audit key), published as a minisign public key so that recipients verify with the standard `minisign` tool."""

from __future__ import annotations

from intake.core.keys import Keyring
from intake.exports.minisign import SigningKey, public_key_file, public_key_line

LABEL = "manifest-ed25519"


def signing_key(keyring: Keyring) -> SigningKey:
    return SigningKey.from_seed(keyring.subkey("export-signing", label=LABEL))


def public_key_text(keyring: Keyring) -> str:
    """The `minisign.pub` file recipients keep to check case files."""
    return public_key_file(signing_key(keyring))


def public_key(keyring: Keyring) -> str:
    """The public key's one line, as `minisign -P` takes it."""
    return public_key_line(signing_key(keyring))
