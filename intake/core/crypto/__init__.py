"""Encryption of data at rest, composed only from `cryptography`'s primitives.

`account_secrets` seals the small secrets of accounts (TOTP seeds) under a key derived from the keyring.
Envelope encryption of testimony and identities builds on the same keyring.
"""

from __future__ import annotations

from flask import current_app

from intake.core.keys import Keyring


def current_keyring() -> Keyring:
    """The keyring unsealed at start-up for the running application."""
    keyring: Keyring = current_app.extensions["intake.keyring"]
    return keyring
