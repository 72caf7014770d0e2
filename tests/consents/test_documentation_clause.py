"""`documentation_allowed_clause`, the SQL form of the consent decision that the reviewer's queue filters on, agrees
with `documentation_allowed` (`consent.policy.decide`) for any consent history: versions valid or not, in any order,
recorded before or after the moment asked about, with withdrawals whole or for some purposes, on both databases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

import pytest
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from consent.records import Disclosure, ExclusionKind, Medium, Method, Purpose, ScriptItem
from intake.consents import operations as consents
from intake.consents.models import ConsentRecord, ConsentWithdrawal
from intake.core.db import db
from intake.testimonies.models import Testimony as StoredTestimony
from tests.conftest import TestUser
from tests.interviews import factories as f

AT = datetime(2027, 3, 14, 9, 30, tzinfo=UTC)
# Around the moment asked about: long before, just before, exactly then, just after, later.
OFFSETS = [timedelta(days=-400), timedelta(days=-1), timedelta(microseconds=-1), timedelta(0),
           timedelta(microseconds=1), timedelta(days=1)]
ALL_ITEMS = frozenset(i.value for i in ScriptItem)
RECORDS = 3
T = TypeVar("T")


@dataclass(frozen=True)
class Version:
    items: list[str]
    method: str
    capacity: bool
    voluntariness: bool
    witness: bool
    minor: tuple[bool, bool, bool] | None  # guardian consented, child assented, best-interests note given
    follow_up: bool
    grants: dict[str, str]
    review_date: date | None
    recorded_at: datetime


@dataclass(frozen=True)
class Withdrawn:
    at: datetime
    purposes: list[str]


def _mostly(usual: st.SearchStrategy[T], *unusual: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """`usual` seven times in eight, else one of `unusual`: most histories come close to allowing documentation, so
    that each condition in turn is the one that decides."""
    return st.one_of(*[usual] * 7 * len(unusual), *unusual)


def _yes() -> st.SearchStrategy[bool]:
    return _mostly(st.just(True), st.just(False))


PURPOSES = [p.value for p in Purpose]
MOMENTS = [AT + offset for offset in OFFSETS]
BEFORE = _mostly(st.just(AT - timedelta(days=30)), st.sampled_from(MOMENTS))
items = _mostly(
    st.just(sorted(ALL_ITEMS)),
    st.sets(st.sampled_from(sorted(ALL_ITEMS))).map(sorted),
    # an item the script does not have counts for nothing
    st.sets(st.sampled_from(sorted(ALL_ITEMS))).map(lambda chosen: sorted(chosen | {"read_aloud_twice"})),
)
grants = st.dictionaries(st.sampled_from(PURPOSES), st.sampled_from([d.value for d in Disclosure]))
versions = st.builds(
    Version,
    items=items,
    method=st.sampled_from([m.value for m in Method]),
    capacity=_yes(),
    voluntariness=_yes(),
    witness=_yes(),
    minor=_mostly(st.none(), st.tuples(_yes(), _yes(), _yes())),
    follow_up=st.booleans(),
    grants=_mostly(grants.map(lambda g: {Purpose.DOCUMENTATION.value: "pseudonymous", **g}), grants),
    review_date=_mostly(st.none(), st.sampled_from([AT.date() + timedelta(days=d) for d in (-1, 0, 1)])),
    recorded_at=BEFORE,
)
withdrawals = st.builds(
    Withdrawn,
    at=st.sampled_from(MOMENTS),
    purposes=_mostly(st.sets(st.sampled_from([p for p in PURPOSES if p != Purpose.DOCUMENTATION]),
                             min_size=1).map(sorted),
                     st.just([]), st.sets(st.sampled_from(PURPOSES), min_size=1).map(sorted)),
)
# Per record: its versions in the order they are inserted (their numbers are a shuffle of 1..n), and withdrawals.
histories = st.lists(
    st.tuples(st.lists(versions, max_size=3).flatmap(
        lambda vs: st.tuples(st.just(vs), st.permutations(list(range(1, len(vs) + 1))))),
        st.lists(withdrawals, max_size=2)),
    min_size=RECORDS, max_size=RECORDS)

# Valid, and allowing documentation, until an example below changes it.
VALID = Version(items=sorted(ALL_ITEMS), method=Method.WRITTEN.value, capacity=True, voluntariness=True,
                witness=False, minor=None, follow_up=False, grants={Purpose.DOCUMENTATION.value: "anonymous"},
                review_date=None, recorded_at=AT - timedelta(days=30))
History = tuple[tuple[list[Version], list[int]], list[Withdrawn]]


def _alone(version: Version, *withdrawn: Withdrawn) -> History:
    return ([version], [1]), list(withdrawn)


# The edges, each beside a record that differs only there.
EDGES: list[list[History]] = [
    [_alone(replace(VALID, review_date=AT.date())), _alone(replace(VALID, review_date=AT.date() - timedelta(1))),
     _alone(replace(VALID, recorded_at=AT))],
    [_alone(replace(VALID, recorded_at=AT + timedelta(microseconds=1))),
     _alone(VALID, Withdrawn(AT, [Purpose.DOCUMENTATION.value])),
     _alone(VALID, Withdrawn(AT + timedelta(microseconds=1), []))],
    [_alone(replace(VALID, minor=(True, True, True))), _alone(replace(VALID, minor=(True, True, False))),
     _alone(replace(VALID, method=Method.ORAL_WITNESSED.value))],
    [_alone(replace(VALID, method=Method.ORAL_WITNESSED.value, witness=True)),
     _alone(replace(VALID, items=sorted(ALL_ITEMS - {ScriptItem.CONTACT.value}) + ["read_aloud_twice"])),
     (([replace(VALID, grants={}), VALID], [2, 1]), [Withdrawn(AT - timedelta(days=400), [])])],
]


@pytest.fixture
def records(app: Flask, create_user: Callable[..., TestUser]) -> list[int]:
    amira = create_user("amira", ["interviewer"])
    return [f.full_interview(app, amira, key=c * 24) for c in "abc"[:RECORDS]]


def _store(testimony_id: int, history: History) -> None:
    (stored_versions, numbers), stored_withdrawals = history
    for version, number in zip(stored_versions, numbers, strict=True):
        minor = version.minor
        db.session.add(ConsentRecord(
            testimony_id=testimony_id, number=number, recorded_at=version.recorded_at, script_language="hy",
            script_hash="0" * 64, method=version.method, items=version.items, capacity_confirmed=version.capacity,
            voluntariness_confirmed=version.voluntariness, witness_present=version.witness,
            interpreter_present=False, is_minor=minor is not None,
            guardian_consented=minor is not None and minor[0], child_assented=minor is not None and minor[1],
            best_interests_given=minor is not None and minor[2], grants=version.grants,
            media=[Medium.PHOTO.value], exclusions=[[ExclusionKind.AUTHORITIES_OF.value, "AZ"]],
            follow_up_permitted=version.follow_up, review_date=version.review_date))
    for withdrawal in stored_withdrawals:
        db.session.add(ConsentWithdrawal(testimony_id=testimony_id, at=withdrawal.at, purposes=withdrawal.purposes,
                                         received_how="in_person"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories)
@example(EDGES[0])
@example(EDGES[1])
@example(EDGES[2])
@example(EDGES[3])
def test_the_sql_condition_decides_as_the_policy_does(app: Flask, records: list[int], history: list[History]) -> None:
    with app.app_context():
        try:
            db.session.execute(sa.delete(ConsentWithdrawal).where(ConsentWithdrawal.testimony_id.in_(records)))
            db.session.execute(sa.delete(ConsentRecord).where(ConsentRecord.testimony_id.in_(records)))
            for testimony_id, told in zip(records, history, strict=True):
                _store(testimony_id, told)
            db.session.flush()
            by_policy = {t for t in records if consents.decide_use(t, Purpose.DOCUMENTATION, at=AT).allowed}
            by_sql = set(db.session.scalars(sa.select(StoredTestimony.id).where(
                StoredTestimony.id.in_(records), consents.documentation_allowed_clause(StoredTestimony.id, AT))))
            assert by_sql == by_policy
        finally:
            db.session.rollback()


def test_the_condition_follows_a_real_consent_and_its_withdrawal(app: Flask, records: list[int]) -> None:
    """Through the operations and at the present moment: the recorded consent stands until it is withdrawn."""
    def standing() -> set[int]:
        return set(db.session.scalars(sa.select(StoredTestimony.id).where(
            consents.documentation_allowed_clause(StoredTestimony.id))))

    with app.app_context():
        assert standing() == set(records)
        withdrawn = db.session.get(StoredTestimony, records[0])
        consents.record_withdrawal(withdrawn, purposes=[Purpose.ADVOCACY.value], received_how="phone",
                                   erasure=False, actor=None, config=app.config)
        db.session.flush()
        assert standing() == set(records)
        consents.record_withdrawal(withdrawn, purposes=[Purpose.DOCUMENTATION.value], received_how="phone",
                                   erasure=False, actor=None, config=app.config)
        db.session.flush()
        assert standing() == set(records[1:])
        assert not consents.documentation_allowed(records[0]).allowed
        db.session.rollback()
