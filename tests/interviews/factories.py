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
