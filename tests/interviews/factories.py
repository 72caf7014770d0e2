"""Inputs for a whole interview, valid unless a test changes them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from consent.records import Purpose, ScriptItem
from intake.consents.operations import ConsentInput
from intake.interviews.operations import IncidentInput, Perpetrator, Readiness, ReferralInput, Risk

SENTINEL_NARRATIVE = "SENTINEL-NARRATIVE-5a1f the checkpoint near Kornidzor"
SENTINEL_NAME = "Sentinelyan Anahit"


def readiness(**changes: Any) -> Readiness:
    return replace(Readiness(private_place=True, no_observers=True, interpreter="not_needed",
                             support_available=True, risk=Risk.LOW), **changes)


def consent(**changes: Any) -> ConsentInput:
    base = ConsentInput(
        script_language="hy", items_confirmed=frozenset(i.value for i in ScriptItem), method="written",
        capacity_confirmed=True, voluntariness_confirmed=True,
        grants={Purpose.DOCUMENTATION.value: "pseudonymous", Purpose.UN_MECHANISMS.value: "anonymous"},
        media=frozenset({"photo", "document"}),
    )
    return replace(base, **changes)


def incident(**changes: Any) -> IncidentInput:
    base = IncidentInput(type="shelling", date_precision="day", date_start="2023-09-19", place_id="stepanakert",
                         victims_count=2, victims_description="two neighbours",
                         perpetrators=(Perpetrator(description="artillery", unit="", involvement="carried_out"),),
                         source_relation="saw")
    return replace(base, **changes)


def referral(**changes: Any) -> ReferralInput:
    return replace(ReferralInput(outcome="accepted", services=frozenset({"psychosocial"})), **changes)


def account(user: Any) -> Any:
    """The account row of a test user, in the current app context."""
    from intake.accounts.models import Account
    from intake.core.db import db

    return db.session.get(Account, user.id)


def full_interview(app: Any, user: Any, *, key: str = "w" * 24) -> int:
    """A submitted interview through the operations, with the sentinel narrative and name, two incidents (the
    second with the perpetrators declined) and a referral; its id."""
    from intake.core.db import db
    from intake.interviews import operations as ops

    with app.app_context():
        actor = account(user)
        testimony = ops.start_interview(readiness(), consent(), actor=actor, config=app.config)
        ops.save_person(testimony, ops.PersonInput(name=SENTINEL_NAME, birth_year=1980), actor=actor,
                        config=app.config)
        ops.save_narrative(testimony, SENTINEL_NARRATIVE, declined=False, actor=actor, config=app.config)
        ops.add_incident(testimony, incident(), actor=actor, config=app.config)
        ops.add_incident(testimony, incident(type="checkpoint_detention", date_precision="month",
                                             date_start="2023-10", place_id="lachin-corridor",
                                             declined=frozenset({"perpetrators"})), actor=actor, config=app.config)
        ops.save_referral(testimony, referral(), actor=actor, config=app.config)
        assert ops.submit(testimony, idempotency_key=key, actor=actor, config=app.config) is True
        db.session.commit()
        return int(testimony.id)
