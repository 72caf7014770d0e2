"""Registering people in the identity vault, the "already interviewed?" check, and shredding an identity.

Operations change the session and write audit events; they never commit.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from intake.core.audit import AuditAction, record_event
from intake.core.crypto import current_keyring
from intake.core.crypto.blind_index import name_tags, same_person, search_tags
from intake.core.crypto.datakeys import create_data_key, destroy_data_key
from intake.core.crypto.fields import Tombstone, open_value, seal_value
from intake.core.crypto.models import DataKey
from intake.core.db import db
from intake.identities.models import Person

# Crockford's base32: no I, L, O or U, so a code read aloud or copied by hand is not mistaken.
PSEUDONYM_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_pseudonym(prefix: str) -> str:
    """A random pseudonym code such as ``KB-7F3Q-2K`` (30 random bits)."""
    chars = "".join(secrets.choice(PSEUDONYM_ALPHABET) for _ in range(6))
    return f"{prefix}-{chars[:4]}-{chars[4:]}"


def _unused_pseudonym(prefix: str) -> str:
    for _ in range(20):
        code = new_pseudonym(prefix)
        if db.session.scalar(sa.select(Person.id).where(Person.pseudonym == code)) is None:
            return code
    raise RuntimeError("no free pseudonym found; use a longer prefix")


def _tags_of(identity: Mapping[str, Any] | None) -> list[str | None]:
    """The person's blind-index tags, as (name_tag, other_name_tag)."""
    if not identity or not identity.get("name"):
        return [None, None]
    tags: list[str | None] = list(name_tags(current_keyring(), str(identity["name"]), identity.get("birth_year")))
    return (tags + [None, None])[:2]


def register_person(identity: Mapping[str, Any] | None, *, actor: Any, prefix: str) -> Person:
    """Add a person to the vault. `identity` is None for someone who remains anonymous.

    `identity` may hold ``name``, ``birth_year`` (int), ``date_of_birth``, ``contacts``, ``relatives`` and
    ``addresses``; it is sealed as one document under the person's own data key and never stored in clear.
    """
    data_key, key = create_data_key("person")
    tag, other_tag = _tags_of(identity)
    person = Person(pseudonym=_unused_pseudonym(prefix), data_key=data_key,
                    created_by_id=getattr(actor, "id", None), name_tag=tag, other_name_tag=other_tag)
    db.session.add(person)
    db.session.flush()
    if identity:
        seal_value(person, "identity", dict(identity), key=key)
    record_event(AuditAction.PERSON_REGISTERED, actor=actor, target_type="person", target_ids=[person.id],
                 details={"anonymous": not identity})
    return person


def read_identity(person: Person) -> dict[str, Any] | Tombstone | None:
    """The person's identity document, None for an anonymous person, or a `Tombstone` once shredded."""
    value: dict[str, Any] | Tombstone | None = open_value(person, "identity")
    return value


def possible_previous_interviews(name: str, birth_year: int | None, *, actor: Any,
                                 usable: Callable[[Person], bool] | None = None) -> list[Person]:
    """Persons already registered whose name and birth year match these (in any of the spellings that fold alike).

    Candidates are found by the blind index and confirmed by comparing decrypted identities, so collisions of the
    truncated tag never reach the caller. `usable` leaves out, before anything is decrypted, candidates whose data
    may no longer be used (consent withdrawn). Returns persons, never their identities.
    """
    tags = search_tags(current_keyring(), name, birth_year)
    if not tags:
        return []
    candidates = db.session.scalars(
        sa.select(Person).join(DataKey, Person.data_key_id == DataKey.id)
        .where(sa.or_(Person.name_tag.in_(tags), Person.other_name_tag.in_(tags)), DataKey.destroyed_at.is_(None))
        .order_by(Person.id)
    ).all()
    if usable is not None:
        candidates = [person for person in candidates if usable(person)]
    matches = []
    for person in candidates:
        identity = read_identity(person)
        if isinstance(identity, dict) and identity.get("name") and \
                same_person(name, birth_year, str(identity["name"]), identity.get("birth_year")):
            matches.append(person)
    record_event(AuditAction.IDENTITY_MATCH_CHECKED, actor=actor, target_type="person",
                 target_ids=[p.id for p in matches], details={"candidates": len(candidates), "matches": len(matches)})
    return matches


def shred_identity(person: Person, *, reason: str, actor: Any) -> None:
    """Crypto-shred the person's identity: the data key, the sealed document and the blind-index tag go.

    The pseudonym stays, so testimonies keep their reference and the audit trail its meaning.
    """
    destroy_data_key(person.data_key)
    person.identity = None
    person.name_tag = None
    person.other_name_tag = None
    record_event(AuditAction.RECORD_SHREDDED, actor=actor, target_type="person", target_ids=[person.id],
                 reason=reason, details={"parts": ["identity"]})
