"""`consent.policy.decide`: default deny, every reason, and never more disclosure than granted.

The small domains are walked exhaustively (every purpose × grant × documentation × withdrawal × exclusion × review
date × wanted level) against the rules written out again here; hypothesis then checks properties over random
consents that no table could list.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.policy import Decision, Reason, decide
from consent.records import (
    ConsentVersion,
    Disclosure,
    Exclusion,
    ExclusionKind,
    Grant,
    Method,
    MinorConsent,
    Purpose,
    Recipient,
    ScriptItem,
    Withdrawal,
)

GIVEN = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
UN = Recipient("un-iiim", country="CH", is_authority=False)
PROSECUTOR = Recipient("prosecutor-az", country="AZ", is_authority=True)
LEVELS = list(Disclosure)


def consent(**changes: object) -> ConsentVersion:
    base: dict[str, object] = dict(
        script_language="hy", script_hash="a" * 64, items_confirmed=frozenset(ScriptItem), method=Method.WRITTEN,
        interviewer="7", recorded_at=GIVEN, capacity_confirmed=True, voluntariness_confirmed=True,
        grants={Purpose.DOCUMENTATION: Grant(True, Disclosure.PSEUDONYMOUS)},
    )
    base.update(changes)
    return ConsentVersion(**base)  # type: ignore[arg-type]


def test_no_consent_and_the_default_grant_deny() -> None:
    assert decide(None, Purpose.DOCUMENTATION, None, NOW) == Decision(False, None, Reason.NO_CONSENT)
    bare = consent(grants={})
    for purpose in Purpose:
        decision = decide(bare, purpose, UN, NOW)
        assert not decision.allowed and decision.disclosure is None
        assert decision.reason is Reason.NO_DOCUMENTATION


def test_documentation_alone_is_allowed_without_a_recipient_and_nothing_else_is() -> None:
    given_ = consent()
    assert decide(given_, Purpose.DOCUMENTATION, None, NOW) == Decision(True, Disclosure.PSEUDONYMOUS, Reason.ALLOWED)
    for purpose in set(Purpose) - {Purpose.DOCUMENTATION}:
        assert decide(given_, purpose, UN, NOW).reason is Reason.NOT_GRANTED
    both = consent(grants={Purpose.DOCUMENTATION: Grant(True), Purpose.REFERRAL: Grant(True)})
    assert decide(both, Purpose.REFERRAL, None, NOW).reason is Reason.NO_RECIPIENT


@pytest.mark.parametrize(("changes", "reason"), [
    ({"capacity_confirmed": False}, Reason.INVALID),
    ({"voluntariness_confirmed": False}, Reason.INVALID),
    ({"items_confirmed": frozenset(ScriptItem) - {ScriptItem.RIGHT_TO_WITHDRAW}}, Reason.INVALID),
    ({"method": Method.ORAL_WITNESSED}, Reason.INVALID),
    ({"minor": MinorConsent(guardian_consented=True, child_assented=False, best_interests_note="school")},
     Reason.INVALID),
    ({"minor": MinorConsent(guardian_consented=False, child_assented=True, best_interests_note="school")},
     Reason.INVALID),
    ({"minor": MinorConsent(guardian_consented=True, child_assented=True, best_interests_note=" ")}, Reason.INVALID),
    ({"recorded_at": NOW + timedelta(seconds=1)}, Reason.NOT_YET_GIVEN),
])
def test_a_consent_that_is_not_informed_and_complete_allows_nothing(changes: dict[str, object],
                                                                    reason: Reason) -> None:
    decision = decide(consent(**changes), Purpose.DOCUMENTATION, None, NOW)
    assert (decision.allowed, decision.disclosure, decision.reason) == (False, None, reason)
    assert decision.detail


def test_a_complete_minor_flow_and_a_witnessed_oral_consent_are_valid() -> None:
    minor = MinorConsent(guardian_consented=True, child_assented=True, best_interests_note="family tracing")
    assert decide(consent(minor=minor), Purpose.DOCUMENTATION, None, NOW).allowed
    assert decide(consent(method=Method.ORAL_WITNESSED, witness="12"), Purpose.DOCUMENTATION, None, NOW).allowed
    assert decide(consent(method=Method.MARK), Purpose.DOCUMENTATION, None, NOW).allowed


# ---------------------------------------------------------------------------------------------------------------
# Exhaustively over the small domains

GRANTS = [None, *LEVELS]  # None: not granted
WITHDRAWALS = ["none", "whole_before", "whole_after", "this_purpose", "other_purpose", "documentation"]
EXCLUSIONS = ["none", "recipient", "country", "authorities_of_an_authority", "authorities_of_a_non_authority"]
REVIEWS = [None, date(2026, 12, 31), date(2026, 5, 31)]
WANTED = [None, *LEVELS]


def _withdrawals(kind: str, purpose: Purpose) -> tuple[Withdrawal, ...]:
    before, after = NOW - timedelta(days=1), NOW + timedelta(days=1)
    other = Purpose.MEDIA if purpose is not Purpose.MEDIA else Purpose.ADVOCACY
    return {
        "none": (),
        "whole_before": (Withdrawal(before),),
        "whole_after": (Withdrawal(after),),
        "this_purpose": (Withdrawal(before, frozenset({purpose})),),
        "other_purpose": (Withdrawal(before, frozenset({other})),),
        "documentation": (Withdrawal(before, frozenset({Purpose.DOCUMENTATION})),),
    }[kind]


def _exclusion(kind: str) -> tuple[frozenset[Exclusion], Recipient]:
    return {
        "none": (frozenset(), PROSECUTOR),
        "recipient": (frozenset({Exclusion(ExclusionKind.RECIPIENT, "PROSECUTOR-AZ")}), PROSECUTOR),
        "country": (frozenset({Exclusion(ExclusionKind.COUNTRY, "az")}), PROSECUTOR),
        "authorities_of_an_authority": (frozenset({Exclusion(ExclusionKind.AUTHORITIES_OF, "AZ")}), PROSECUTOR),
        "authorities_of_a_non_authority": (frozenset({Exclusion(ExclusionKind.AUTHORITIES_OF, "CH")}), UN),
    }[kind]


def _expected(purpose: Purpose, grant: Disclosure | None, documented: bool, withdrawal: str, exclusion: str,
              review: date | None, wanted: Disclosure | None) -> tuple[Reason, Disclosure | None]:
    """The rules, in the order DESIGN gives them, written out independently of `decide`."""
    if withdrawal == "whole_before":
        return Reason.WITHDRAWN, None
    if withdrawal == "this_purpose" or (withdrawal == "documentation" and purpose is Purpose.DOCUMENTATION):
        return Reason.WITHDRAWN_FOR_PURPOSE, None
    if review is not None and review < NOW.date():
        return Reason.EXPIRED, None
    documentation_level = grant if purpose is Purpose.DOCUMENTATION else (Disclosure.ANONYMOUS if documented else None)
    if documentation_level is None or withdrawal == "documentation":
        return Reason.NO_DOCUMENTATION, None
    if grant is None:
        return Reason.NOT_GRANTED, None
    if exclusion in ("recipient", "country", "authorities_of_an_authority"):
        return Reason.EXCLUDED_RECIPIENT, None
    level = grant if wanted is None else min(grant, wanted, key=LEVELS.index)
    return Reason.ALLOWED, level


def test_every_combination_of_the_small_domains() -> None:
    checked = 0
    for purpose, grant, documented, withdrawal, exclusion, review, wanted in itertools.product(
            Purpose, GRANTS, (False, True), WITHDRAWALS, EXCLUSIONS, REVIEWS, WANTED):
        if purpose is Purpose.DOCUMENTATION and documented:
            continue  # documentation's own grant is `grant`
        grants = {} if grant is None else {purpose: Grant(True, grant)}
        if documented and purpose is not Purpose.DOCUMENTATION:
            grants[Purpose.DOCUMENTATION] = Grant(True, Disclosure.ANONYMOUS)
        excluded, recipient = _exclusion(exclusion)
        subject = consent(grants=grants, withdrawals=_withdrawals(withdrawal, purpose), excluded=excluded,
                          review_date=review)
        decision = decide(subject, purpose, recipient, NOW, wanted=wanted)
        reason, level = _expected(purpose, grant, documented, withdrawal, exclusion, review, wanted)
        assert (decision.reason, decision.disclosure) == (reason, level), (
            purpose, grant, documented, withdrawal, exclusion, review, wanted, decision)
        assert decision.allowed is (reason is Reason.ALLOWED)
        checked += 1
    assert checked == 7 * 5 * 2 * 6 * 5 * 3 * 5 - 5 * 6 * 5 * 3 * 5


# ---------------------------------------------------------------------------------------------------------------
# Properties over random consents

moments = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC))
grants = st.dictionaries(st.sampled_from(list(Purpose)), st.builds(Grant, st.booleans(), st.sampled_from(LEVELS)))
withdrawals = st.lists(st.builds(Withdrawal, moments, st.frozensets(st.sampled_from(list(Purpose)), max_size=3)),
                       max_size=3).map(tuple)
countries = st.sampled_from(["AZ", "AM", "RU", "CH", "NL"])
recipients = st.builds(Recipient, st.sampled_from(["un-iiim", "icc", "ngo-2", "press"]), countries, st.booleans())
exclusions = st.frozensets(st.builds(Exclusion, st.sampled_from(list(ExclusionKind)),
                                     st.sampled_from(["AZ", "AM", "icc", "press"])), max_size=3)
consents = st.builds(consent, grants=grants, withdrawals=withdrawals, excluded=exclusions,
                     review_date=st.none() | st.dates(date(2025, 1, 1), date(2028, 1, 1)),
                     recorded_at=moments, capacity_confirmed=st.booleans())


@settings(max_examples=300, deadline=None)
@given(consents, st.sampled_from(list(Purpose)), recipients, moments, st.none() | st.sampled_from(LEVELS))
def test_what_is_allowed_is_granted_current_not_excluded_and_no_more_disclosed(
        subject: ConsentVersion, purpose: Purpose, recipient: Recipient, at: datetime,
        wanted: Disclosure | None) -> None:
    decision = decide(subject, purpose, recipient, at, wanted=wanted)
    if not decision.allowed:
        assert decision.disclosure is None and decision.reason is not Reason.ALLOWED
        return
    grant = subject.grant(purpose)
    assert grant.granted and subject.grant(Purpose.DOCUMENTATION).granted
    assert decision.disclosure is not None and decision.disclosure.rank <= grant.disclosure.rank
    assert wanted is None or decision.disclosure.rank <= wanted.rank
    assert subject.withdrawn(purpose, at) is None and not subject.problems()
    assert not any(e.matches(recipient) for e in subject.excluded)
    assert subject.review_date is None or at.date() <= subject.review_date


@settings(max_examples=200, deadline=None)
@given(consents, st.sampled_from(list(Purpose)), recipients, moments, moments,
       st.frozensets(st.sampled_from(list(Purpose)), max_size=2))
def test_withdrawing_or_excluding_never_allows_what_was_denied(
        subject: ConsentVersion, purpose: Purpose, recipient: Recipient, at: datetime, withdrawn_at: datetime,
        withdrawn_purposes: frozenset[Purpose]) -> None:
    before = decide(subject, purpose, recipient, at)
    withdrawn = consent(**{**subject.__dict__, "withdrawals": (*subject.withdrawals,
                                                               Withdrawal(withdrawn_at, withdrawn_purposes))})
    excluded = consent(**{**subject.__dict__, "excluded": subject.excluded | {
        Exclusion(ExclusionKind.RECIPIENT, recipient.key)}})
    for changed in (withdrawn, excluded):
        after = decide(changed, purpose, recipient, at)
        assert after.allowed <= before.allowed
    if withdrawn_at <= at and (not withdrawn_purposes or purpose in withdrawn_purposes):
        assert not decide(withdrawn, purpose, recipient, at).allowed
    if purpose is not Purpose.DOCUMENTATION:
        assert not decide(excluded, purpose, recipient, at).allowed
