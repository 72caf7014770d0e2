"""Password hashing (Argon2id) and strength checks."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app
from flask_babel import lazy_gettext as _l
from zxcvbn import zxcvbn

MAX_LENGTH = 256
# zxcvbn's cost grows with length; a phrase this long is strong by length alone.
_STRENGTH_CHECK_PREFIX = 100
_CONTEXT_WORDS = ["intake", "testimony", "karabakh", "artsakh", "password", "interview"]


def hasher() -> PasswordHasher:
    config = current_app.config
    return PasswordHasher(
        time_cost=config["ARGON2_TIME_COST"],
        memory_cost=config["ARGON2_MEMORY_KIB"],
        parallelism=config["ARGON2_PARALLELISM"],
    )


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check `password`; with no hash, spend the same time on a dummy so unknown names cannot be timed."""
    ph = hasher()
    target = password_hash or _dummy_hash()
    try:
        ok = ph.verify(target, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return ok and password_hash is not None


def _dummy_hash() -> str:
    cache = current_app.extensions.setdefault("intake.dummy_password_hash", {})
    params = (current_app.config["ARGON2_TIME_COST"], current_app.config["ARGON2_MEMORY_KIB"])
    if params not in cache:
        cache[params] = hash_password("dummy password for timing equality")
    result: str = cache[params]
    return result


def password_problems(password: str, *, username: str = "") -> list[str]:
    """Reasons `password` is not acceptable, translated; empty when it is fine."""
    minimum = current_app.config["PASSWORD_MIN_LENGTH"]
    if len(password) < minimum:
        return [str(_l("Use at least %(n)d characters.", n=minimum))]
    if len(password) > MAX_LENGTH:
        return [str(_l("Use at most %(n)d characters.", n=MAX_LENGTH))]
    inputs = [*_CONTEXT_WORDS, username] if username else _CONTEXT_WORDS
    result = zxcvbn(password[:_STRENGTH_CHECK_PREFIX], user_inputs=inputs)
    if result["score"] < 3:
        return [
            str(
                _l(
                    "This password is common or too easy to guess. "
                    "Try a phrase of four or more unrelated words."
                )
            )
        ]
    return []
