"""Registering recipients of case files and keeping their details current. Each change is audited (which fields
changed, never their values) and never committed here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from intake.consents.operations import InputRefused
from intake.core.audit import AuditAction, record_event
from intake.core.db import db, utcnow
from intake.recipients.models import Recipient, RecipientCategory

KEY = re.compile(r"[a-z0-9][a-z0-9._-]{1,79}")
COUNTRY = re.compile(r"[A-Z]{2}")
MAX_KEYS = 10


@dataclass(frozen=True)
class RecipientInput:
    key: str
    name: str
    category: str
    country: str | None
    is_authority: bool
    agreement_reference: str
    agreement_date: date | None
    contact: str
    age_recipients: list[str] = field(default_factory=list)


def parse_age_recipients(text: str) -> list[str]:
    """One age X25519 public key per line (blank lines and `#` comments ignored), each checked."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def _check_age_key(value: str) -> bool:
    from pyrage import RecipientError, x25519

    if not value.startswith("age1"):
        return False
    try:
        x25519.Recipient.from_str(value)
    except (RecipientError, ValueError):
        return False
    return True


def _problems(data: RecipientInput, *, existing: Recipient | None) -> dict[str, list[Any]]:
    problems: dict[str, list[Any]] = {}

    def add(name: str, message: Any) -> None:
        problems.setdefault(name, []).append(message)

    if not KEY.fullmatch(data.key):
        add("key", _l("Use 2 to 80 lower-case letters, digits, dots, dashes or underscores, e.g. \"icc-otp\"."))
    else:
        clash = db.session.scalar(sa.select(Recipient.id).where(sa.func.lower(Recipient.key) == data.key.lower()))
        if clash is not None and (existing is None or clash != existing.id):
            add("key", _l("Another recipient already has this short name."))
    if not data.name.strip():
        add("name", _l("Give the organisation's name."))
    elif len(data.name) > 200:
        add("name", _l("Use at most %(count)s characters.", count=200))
    if data.category not in {c.value for c in RecipientCategory}:
        add("category", _l("Choose what kind of organisation this is."))
    if data.country is not None and not COUNTRY.fullmatch(data.country):
        add("country", _l("Use the two-letter country code (ISO 3166-1), e.g. NL, or leave it empty for an "
                          "international body."))
    if data.is_authority and data.country is None:
        add("country", _l("A state authority needs the country whose authority it is."))
    if not data.agreement_reference.strip():
        add("agreement_reference", _l("Give the reference of the agreement on file."))
    elif len(data.agreement_reference) > 200:
        add("agreement_reference", _l("Use at most %(count)s characters.", count=200))
    if data.agreement_date is None:
        add("agreement_date", _l("Give the date the agreement was signed."))
    elif data.agreement_date > utcnow().date():
        add("agreement_date", _l("The agreement's date cannot be in the future."))
    if not data.contact.strip():
        add("contact", _l("Give a contact at the organisation."))
    elif len(data.contact) > 500:
        add("contact", _l("Use at most %(count)s characters.", count=500))
    if not data.age_recipients:
        add("age_recipients", _l("Give at least one age public key: case files are encrypted to it."))
    elif len(data.age_recipients) > MAX_KEYS:
        add("age_recipients", _l("Give at most %(count)s keys.", count=MAX_KEYS))
    else:
        bad = [k for k in data.age_recipients if not _check_age_key(k)]
        if bad:
            add("age_recipients", _l("This is not an age public key (an age public key starts with age1): %(key)s",
                                     key=bad[0][:24] + ("…" if len(bad[0]) > 24 else "")))
    return problems


def _values(data: RecipientInput) -> dict[str, Any]:
    return {
        "key": data.key, "name": data.name.strip(), "category": data.category, "country": data.country,
        "is_authority": data.is_authority, "agreement_reference": data.agreement_reference.strip(),
        "agreement_date": data.agreement_date, "contact": data.contact.strip(),
        "age_recipients": list(dict.fromkeys(data.age_recipients)),
    }


def register(data: RecipientInput, *, actor: Any) -> Recipient:
    problems = _problems(data, existing=None)
    if problems:
        raise InputRefused(problems)
    recipient = Recipient(**_values(data), active=True, created_at=utcnow(), created_by_id=actor.id)
    db.session.add(recipient)
    db.session.flush()
    record_event(AuditAction.RECIPIENT_REGISTERED, actor=actor, target_type="recipient", target_ids=[recipient.id],
                 details={"category": recipient.category, "keys": len(recipient.age_recipients)})
    return recipient


def update(recipient: Recipient, data: RecipientInput, *, actor: Any) -> list[str]:
    """Change the recipient's details; returns the names of the fields that changed."""
    problems = _problems(data, existing=recipient)
    if problems:
        raise InputRefused(problems)
    changed = []
    for name, value in _values(data).items():
        if getattr(recipient, name) != value:
            setattr(recipient, name, value)
            changed.append(name)
    if changed:
        record_event(AuditAction.RECIPIENT_CHANGED, actor=actor, target_type="recipient",
                     target_ids=[recipient.id], details={"fields": changed})
    return changed


def set_active(recipient: Recipient, active: bool, *, actor: Any, config: Any) -> None:
    """Deactivate or reactivate a recipient. A deactivated one gets no new case file, and those waiting for it
    (queued, building or not yet downloaded) are cancelled: deactivation is what to do when its key is lost."""
    from intake.exports.operations import cancel_for_recipient

    if recipient.active == active:
        return
    recipient.active = active
    record_event(AuditAction.RECIPIENT_CHANGED, actor=actor, target_type="recipient", target_ids=[recipient.id],
                 details={"fields": ["active"], "active": active})
    if not active:
        cancel_for_recipient(recipient, actor=actor, config=config)


def active_recipients() -> list[Recipient]:
    return list(db.session.scalars(sa.select(Recipient).where(Recipient.active.is_(True)).order_by(Recipient.name)))


def all_recipients() -> list[Recipient]:
    return list(db.session.scalars(sa.select(Recipient).order_by(Recipient.active.desc(), Recipient.name)))
