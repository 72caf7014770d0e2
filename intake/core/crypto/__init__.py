"""Encryption of data at rest, composed only from `cryptography`'s primitives.

- `envelope`: the byte formats of wrapped data keys and sealed fields, and what each is bound to.
- `stream`: attachments as chunked STREAM ciphertexts.
- `spool`: encrypted temporary files for request bodies.
- `datakeys`: data keys in the database (create, open, rewrap, destroy) and the KEK versions' state.
- `fields`: the inventory of every encrypted column, and sealing and opening them on model objects.
- `blobs`: where attachment ciphertext is stored (the database or `instance/blobs/`).
- `blind_index`: keyed, truncated name tags for "this person may already have been interviewed".
"""

from __future__ import annotations

import logging
import threading
import time

from flask import current_app

from intake.core.keys import Keyring, KeyringError

log = logging.getLogger("intake.crypto")
_reload_lock = threading.Lock()
_RETRY_SECONDS = 60


class KeyringOutdated(KeyringError):
    """The database uses a KEK version this process's keyring lacks, and the keyring could not be reloaded."""


def current_keyring() -> Keyring:
    """The keyring unsealed at start-up (or reloaded since) for the running application."""
    keyring: Keyring = current_app.extensions["intake.keyring"]
    return keyring


def keyring_holding(version: int) -> Keyring:
    """The keyring, reloaded from its file if it lacks KEK `version` (added by `intake keys rotate` elsewhere).

    Reloading needs the passphrase, which is only available again when it comes from a file
    (`INTAKE_KEYRING_PASSPHRASE_FILE`); a passphrase given in the environment was forgotten after start-up, and
    then the service must be restarted to learn the new version.
    """
    keyring = current_keyring()
    if version in keyring.kek_versions:
        return keyring
    with _reload_lock:
        keyring = current_keyring()
        if version in keyring.kek_versions:
            return keyring
        # A reload costs a full scrypt: after one that did not help, wait a while before the next attempt.
        failures: dict[int, float] = current_app.extensions.setdefault("intake.keyring_reload_failures", {})
        if time.monotonic() - failures.get(version, -_RETRY_SECONDS) < _RETRY_SECONDS:
            raise KeyringOutdated(f"KEK version {version} is not in this process's keyring (reloading it did not "
                                  "help a moment ago): restart the service with the current keyring.")
        failures[version] = time.monotonic()
        config = current_app.config
        if not config.get("KEYRING_PASSPHRASE_FILE"):
            raise KeyringOutdated(
                f"KEK version {version} is not in the keyring this process opened at start, and the passphrase "
                "came from the environment, so the keyring cannot be reloaded: restart the service."
            )
        from intake import open_keyring

        try:
            reloaded = open_keyring(config)
        except KeyringError as exc:
            raise KeyringOutdated(f"KEK version {version} is not in this process's keyring, and reloading the "
                                  f"keyring failed: {exc}") from None
        if version not in reloaded.kek_versions:
            raise KeyringOutdated(f"The keyring {config['KEYRING_PATH']} holds no KEK version {version}.")
        current_app.extensions["intake.keyring"] = reloaded
        failures.pop(version, None)
        log.warning("keyring reloaded", extra={"kek_versions": list(reloaded.kek_versions)})
        return reloaded
