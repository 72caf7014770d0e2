"""Key management: the sealed local keyring holding KEKs and purpose-separated subkey seeds.

Other modules import from here rather than from ``keyring`` so that a production key provider (for example
Vault transit) can later replace the local keyring behind the same names.
"""

from intake.core.keys.keyring import (
    DEFAULT_SCRYPT_N,
    MIN_PASSPHRASE_LENGTH,
    PASSPHRASE_ENV,
    PASSPHRASE_FILE_ENV,
    PURPOSES,
    Keyring,
    KeyringError,
    UnknownKeyError,
    create_passphrase_file,
    read_passphrase,
)

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
