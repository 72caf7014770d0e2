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


# Every field that identifies the person, or that the consent keeps sealed about other people, planted with a
# string found nowhere else: a page or an answer showing one of them has opened that part. ASCII only, without
# characters HTML or JSON would escape, so that a search of a response's text finds them as they were given.
SENTINEL_CONTACT = "SENTINEL-CONTACT-3c9e 099 000 111"
SENTINEL_RELATIVES = "SENTINEL-RELATIVES-7b2d a brother in Goris"
SENTINEL_ADDRESS = "SENTINEL-ADDRESS-4e8a 12 Tumanyan street"
SENTINEL_WITNESS = "SENTINEL-WITNESS-9d1c Lusine"
SENTINEL_INTERPRETER = "SENTINEL-INTERPRETER-2f6b Aram"
SENTINEL_FOLLOW_UP_METHOD = "SENTINEL-FOLLOW-UP-8a3e through the cousin"
SENTINEL_FOLLOW_UP_TIMES = "SENTINEL-FOLLOW-UP-TIMES-5e7c evenings"
SENTINEL_FILENAME = "SENTINEL-FILENAME-6c4d.png"
# The identity vault's document, and the consent's sealed particulars, by field.
IDENTITY_SENTINELS = {"name": SENTINEL_NAME, "contact": SENTINEL_CONTACT, "relatives": SENTINEL_RELATIVES,
                      "address": SENTINEL_ADDRESS}
CONSENT_SENTINELS = {"witness": SENTINEL_WITNESS, "interpreter": SENTINEL_INTERPRETER,
                     "follow_up_method": SENTINEL_FOLLOW_UP_METHOD, "follow_up_times": SENTINEL_FOLLOW_UP_TIMES}
# The smallest PNG: one transparent pixel.
PIXEL_PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                          "1f15c4890000000d4944415478da63f80f00000101000518d84e0000000049454e44ae426082")


def planted_interview(app: Any, user: Any, *, key: str = "p" * 24, submit: bool = True) -> int:
    """An interview through the operations with a sentinel in every identity field (`IDENTITY_SENTINELS`), in the
    consent's particulars (`CONSENT_SENTINELS`), in the narrative and in an attachment's file name, two incidents
    and a referral; submitted unless `submit` is False. Its id."""
    import io

    from intake.core.db import db
    from intake.interviews import operations as ops

    with app.app_context():
        actor = account(user)
        given = consent(witness=SENTINEL_WITNESS, interpreter=SENTINEL_INTERPRETER, follow_up_permitted=True,
                        follow_up_method=SENTINEL_FOLLOW_UP_METHOD, follow_up_times=SENTINEL_FOLLOW_UP_TIMES)
        testimony = ops.start_interview(readiness(), given, actor=actor, config=app.config)
        ops.save_person(testimony, ops.PersonInput(name=SENTINEL_NAME, birth_year=1980, contact=SENTINEL_CONTACT,
                                                   relatives=SENTINEL_RELATIVES, address=SENTINEL_ADDRESS),
                        actor=actor, config=app.config)
        ops.save_narrative(testimony, SENTINEL_NARRATIVE, declined=False, actor=actor, config=app.config)
        ops.add_incident(testimony, incident(), actor=actor, config=app.config)
        ops.add_incident(testimony, incident(type="checkpoint_detention", date_precision="month",
                                             date_start="2023-10", place_id="lachin-corridor"),
                         actor=actor, config=app.config)
        ops.store_interview_attachment(testimony, io.BytesIO(PIXEL_PNG), filename=SENTINEL_FILENAME,
                                       declared_medium="photo", graphic=False, actor=actor, config=app.config)
        ops.save_referral(testimony, referral(), actor=actor, config=app.config)
        if submit:
            assert ops.submit(testimony, idempotency_key=key, actor=actor, config=app.config) is True
        db.session.commit()
        return int(testimony.id)
