"""Helpers of the withdrawal tests: a whole interview recorded through the operations, and accounts to act with."""

from __future__ import annotations

from typing import Any

from flask import Flask

from intake.core.db import db
from intake.interviews import operations as ops
from tests.conftest import TestUser
from tests.interviews import factories as f

KEY = "w" * 24


def account(user: TestUser) -> Any:
    from intake.accounts.models import Account

    return db.session.get(Account, user.id)


def full_interview(app: Flask, user: TestUser, *, key: str = KEY) -> int:
    """A submitted interview with the sentinel narrative and name, two incidents and a referral; its id."""
    with app.app_context():
        actor = account(user)
        testimony = ops.start_interview(f.readiness(), f.consent(), actor=actor, config=app.config)
        ops.save_person(testimony, ops.PersonInput(name=f.SENTINEL_NAME, birth_year=1980), actor=actor,
                        config=app.config)
        ops.save_narrative(testimony, f.SENTINEL_NARRATIVE, declined=False, actor=actor, config=app.config)
        ops.add_incident(testimony, f.incident(), actor=actor, config=app.config)
        ops.add_incident(testimony, f.incident(type="checkpoint_detention", date_precision="month",
                                               date_start="2023-10", place_id="lachin-corridor"),
                         actor=actor, config=app.config)
        ops.save_referral(testimony, f.referral(), actor=actor, config=app.config)
        assert ops.submit(testimony, idempotency_key=key, actor=actor, config=app.config) is True
        db.session.commit()
        return testimony.id
