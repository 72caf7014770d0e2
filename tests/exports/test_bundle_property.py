"""For any consent state of the records in a case, any recipient and any purpose, the case file holds exactly the
records `consent.policy.decide` allows, each at exactly the disclosure it gives, and nothing more of them.

What should go is worked out here from the consent the test itself recorded (grants with their levels, exclusions
by organisation, country or a country's authorities, withdrawals whole or for some purposes, erasure, media),
without asking the service. Each part of each record carries a string of its own (`planted_record`), so the
bundle's bytes show which parts of which record went in."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import pytest
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from consent.records import Disclosure, ExclusionKind, Medium, Purpose
from intake.recipients.models import CATEGORY_PURPOSES, RecipientCategory
from tests.exports.helpers import (
    Planted,
    age_identity,
    build_export,
    bundle_files,
    export_users,
    make_case,
    planted_record,
    register_recipient,
)

PURPOSES = [p.value for p in Purpose]
SHARED = [p.value for p in Purpose if p is not Purpose.DOCUMENTATION]
LEVELS = [d.value for d in Disclosure]
MEDIA = sorted(m.value for m in Medium)
COUNTRIES = ["AM", "AZ", "NL"]
# Short names of recipients; each example registers its recipient as "<name>-<example token>", and an exclusion of
# an organisation names one of these the same way.
NAMES = ["iiim", "otp", "desk"]
FIXED_FILES = {"VERIFY.txt", "export-signing.pub", "manifest.json", "manifest.json.minisig", "SHA256SUMS",
               "SHA256SUMS.minisig", "fonts/DejaVuSans.ttf", "fonts/DejaVuSans-Bold.ttf", "fonts/LICENSE-DejaVu.txt",
               "custody/shared-events.json"}
RECORD_FILES = ("testimony.json", "testimony.html", "consent.json", "custody.json")
T = TypeVar("T")


@dataclass(frozen=True)
class Asked:
    """The recipient the case file is for."""

    category: str
    country: str | None
    is_authority: bool
    name: str


@dataclass(frozen=True)
class Told:
    """One record's consent after the interview: the new version recorded, then the withdrawals, then erasure."""

    grants: dict[str, str]  # always documentation, at some level
    media: frozenset[str] = frozenset()
    exclusions: tuple[tuple[str, str], ...] = ()  # an organisation's exclusion names one of NAMES
    minor: bool = False
    review: bool = False
    withdrawals: tuple[tuple[str, ...], ...] = ()  # each empty (everything) or naming granted purposes
    erased: bool = False


@dataclass(frozen=True)
class Scenario:
    recipient: Asked
    purpose: str
    records: tuple[Told, ...] = field(default_factory=tuple)


def _mostly(usual: st.SearchStrategy[T], *unusual: st.SearchStrategy[T], odds: int = 3) -> st.SearchStrategy[T]:
    """`usual` `odds` times as often as one of `unusual`: most records go, so that each condition in turn is the one
    that leaves a record out."""
    choices = [usual, *unusual]
    # (`st.one_of` with `usual` repeated would not weigh it: it draws each distinct strategy alike.)
    return st.sampled_from([0] * odds * len(unusual) + list(range(1, len(choices)))).flatmap(lambda i: choices[i])


@st.composite
def _told(draw: st.DrawFn, own: str) -> Told:
    levels = st.sampled_from(LEVELS)
    grants = draw(st.dictionaries(st.sampled_from(SHARED), levels))
    if draw(_mostly(st.just(True), st.just(False))):
        grants[own] = draw(levels)
    grants[Purpose.DOCUMENTATION.value] = draw(levels)
    exclusion = st.one_of(
        st.tuples(st.just(ExclusionKind.RECIPIENT.value), st.sampled_from(NAMES)),
        st.tuples(st.sampled_from([ExclusionKind.COUNTRY.value, ExclusionKind.AUTHORITIES_OF.value]),
                  st.sampled_from(COUNTRIES)))
    partial = st.sets(st.sampled_from(sorted(grants)), min_size=1).map(lambda chosen: tuple(sorted(chosen)))
    return Told(
        grants=grants,
        media=draw(st.frozensets(st.sampled_from(MEDIA))),
        exclusions=draw(_mostly(st.just(()), st.lists(exclusion, min_size=1, max_size=2).map(tuple))),
        minor=draw(st.booleans()),
        review=draw(st.booleans()),
        withdrawals=draw(_mostly(st.just(()), st.just(((),)), st.lists(partial, min_size=1, max_size=2).map(tuple))),
        erased=draw(st.sampled_from([False] * 9 + [True])),
    )


@st.composite
def _scenarios(draw: st.DrawFn) -> Scenario:
    category = draw(st.sampled_from([c.value for c in RecipientCategory]))
    country = draw(st.sampled_from([None, *COUNTRIES]))
    recipient = Asked(category, country, country is not None and draw(st.booleans()), draw(st.sampled_from(NAMES)))
    own = CATEGORY_PURPOSES[RecipientCategory(category)][0].value
    purpose = draw(_mostly(st.just(own), st.sampled_from(PURPOSES), odds=7))
    records = draw(st.lists(_told(own), min_size=2, max_size=4))
    return Scenario(recipient, purpose, tuple(records))


def expected_disclosure(told: Told, recipient: Asked, purpose: str) -> str | None:
    """The level the record goes at, or None if it does not go: default deny, from what was recorded."""
    if purpose not in {p.value for p in CATEGORY_PURPOSES[RecipientCategory(recipient.category)]}:
        return None
    if told.erased or any(not purposes for purposes in told.withdrawals):
        return None
    withdrawn = {p for purposes in told.withdrawals for p in purposes}
    if purpose in withdrawn or Purpose.DOCUMENTATION.value in withdrawn or purpose not in told.grants:
        return None
    for kind, value in told.exclusions:
        if kind == ExclusionKind.RECIPIENT and value == recipient.name:
            return None
        if kind == ExclusionKind.COUNTRY and value == recipient.country:
            return None
        if kind == ExclusionKind.AUTHORITIES_OF and recipient.is_authority and value == recipient.country:
            return None
    return told.grants[purpose]


def _all(level: str, *, media: frozenset[str] = frozenset(MEDIA)) -> Told:
    return Told(grants={Purpose.DOCUMENTATION.value: "public", Purpose.UN_MECHANISMS.value: level}, media=media)


UN = Asked(RecipientCategory.UN_MECHANISM.value, None, False, "iiim")
# Every level side by side, with every medium, documents only, or none consented.
EVERY_LEVEL = Scenario(UN, Purpose.UN_MECHANISMS.value, (
    _all("anonymous"), _all("pseudonymous"), _all("confidential", media=frozenset({"document"})),
    _all("public", media=frozenset())))
# A state's prosecutor that every record refuses, each in another way.
ALL_REFUSED = Scenario(
    Asked(RecipientCategory.DOMESTIC_PROSECUTOR.value, "AZ", True, "otp"), Purpose.DOMESTIC_PROSECUTION.value, (
        Told({"documentation": "public", "domestic_prosecution": "public"}, exclusions=(("authorities_of", "AZ"),)),
        Told({"documentation": "public", "domestic_prosecution": "public"}, exclusions=(("recipient", "otp"),)),
        Told({"documentation": "public", "domestic_prosecution": "public"},
             withdrawals=(("domestic_prosecution",),)),
        Told({"documentation": "public", "domestic_prosecution": "public"}, withdrawals=(("documentation",),)),
    ))
# Refusals of every kind beside the one record that goes.
MIXED = Scenario(
    Asked(RecipientCategory.INTERNATIONAL_COURT.value, "NL", False, "desk"), Purpose.INTERNATIONAL_JUSTICE.value, (
        Told({"documentation": "anonymous", "international_justice": "pseudonymous"}, media=frozenset({"photo"}),
             exclusions=(("authorities_of", "NL"), ("recipient", "iiim")), minor=True, review=True),
        Told({"documentation": "public", "international_justice": "public"}, exclusions=(("country", "NL"),)),
        Told({"documentation": "public", "international_justice": "public"}, withdrawals=((),)),
        Told({"documentation": "public", "international_justice": "public"}, erased=True),
    ))
# A purpose the recipient does not take case files for, granted by every record.
WRONG_PURPOSE = Scenario(Asked(RecipientCategory.MEDIA.value, None, False, "desk"), Purpose.UN_MECHANISMS.value,
                         (_all("public"), _all("anonymous")))


@pytest.fixture
def export_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(EXPORT_RUNNER="inline")


@pytest.fixture
def people(export_app: Flask) -> tuple[int, int, int]:
    return export_users(export_app)


def _tell(app: Flask, planted: Planted, told: Told, *, token: str, mark: str) -> tuple[str, ...]:
    """Record the consent `told` after the interview (organisations named with the example's `token`); the sealed
    particulars it planted, each carrying `mark`."""
    from intake.consents.operations import record_consent
    from intake.core.db import db, utcnow
    from intake.testimonies.models import Testimony as StoredTestimony
    from intake.withdrawals import withdraw
    from tests.interviews.factories import consent

    sealed = (f"V2-WITNESS-{mark}", f"V2-INTERPRETER-{mark}", f"V2-FOLLOW-UP-{mark}", f"V2-TIMES-{mark}",
              f"V2-BEST-INTERESTS-{mark}")
    with app.app_context():
        testimony = db.session.get(StoredTestimony, planted.testimony_id)
        assert testimony is not None
        exclusions = tuple((kind, f"{value}-{token}" if kind == ExclusionKind.RECIPIENT else value)
                           for kind, value in told.exclusions)
        record_consent(testimony, consent(
            grants=dict(told.grants), media=told.media, exclusions=exclusions, witness=sealed[0],
            interpreter=sealed[1], follow_up_permitted=True, follow_up_method=sealed[2], follow_up_times=sealed[3],
            is_minor=told.minor, guardian_consented=told.minor, child_assented=told.minor,
            best_interests_note=sealed[4] if told.minor else "",
            review_date=utcnow().date() + timedelta(days=400) if told.review else None), actor=None)
        for purposes in told.withdrawals:
            withdraw(testimony, purposes=list(purposes), received_how="in_person", erasure=False, actor=None,
                     config=app.config)
        if told.erased:
            withdraw(testimony, purposes=[], received_how="in_person", erasure=True, actor=None, config=app.config)
        db.session.commit()
    return sealed


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(_scenarios())
@example(EVERY_LEVEL)
@example(ALL_REFUSED)
@example(MIXED)
@example(WRONG_PURPOSE)
def test_the_case_file_holds_exactly_what_consent_allows(export_app: Flask, people: tuple[int, int, int],
                                                         scenario: Scenario) -> None:
    from intake.consents.operations import InputRefused
    from intake.core.db import db
    from intake.exports.models import Export
    from intake.exports.operations import export_folder

    interviewer, legal, admin = people
    token = uuid.uuid4().hex[:12]
    secret, public = age_identity()
    planted = [planted_record(export_app, interviewer, f"{token}-{i}") for i in range(len(scenario.records))]
    asked = scenario.recipient
    recipient = register_recipient(export_app, admin, key=f"{asked.name}-{token}", category=asked.category,
                                   country=asked.country, is_authority=asked.is_authority, public_keys=[public])
    case = make_case(export_app, legal, [p.testimony_id for p in planted], reference=f"LC-{token}")
    sealed = [s for i, (p, told) in enumerate(zip(planted, scenario.records, strict=True))
              for s in (*p.sealed, *_tell(export_app, p, told, token=token, mark=f"{token}-{i}-V2-SENTINEL"))]
    expected = [expected_disclosure(told, asked, scenario.purpose) for told in scenario.records]

    for level in expected:
        event(f"a record {'is left out' if level is None else 'goes at ' + level}")
    if not any(expected):
        event("the export is refused")
        folder = export_folder(export_app.config)
        stored = sorted(folder.iterdir()) if folder.exists() else []
        with pytest.raises(InputRefused):
            build_export(export_app, legal, case, recipient, scenario.purpose)
        with export_app.app_context():
            assert db.session.scalar(sa.select(sa.func.count()).select_from(Export)
                                     .where(Export.case_id == case)) == 0
        assert (sorted(folder.iterdir()) if folder.exists() else []) == stored
        return

    export_id, state = build_export(export_app, legal, case, recipient, scenario.purpose)
    assert state == "ready"
    files = bundle_files(export_app, export_id, secret)

    def anywhere(text: str | bytes) -> bool:
        wanted = text.encode("ascii") if isinstance(text, str) else text
        return any(wanted in data for data in files.values())

    for secret_text in sealed:
        assert not anywhere(secret_text), "a sealed particular, incident text or file name went into the case file"
    labels = {}
    for name in files:
        if name.endswith("/testimony.json"):
            document = json.loads(files[name])
            labels[document["narrative"]] = document
    manifest = json.loads(files["manifest.json"])
    listed = {r["record"]: r["disclosure"] for r in manifest["records"]}
    wanted_files = set(FIXED_FILES)
    for p, told, level in zip(planted, scenario.records, expected, strict=True):
        if level is None:
            assert p.narrative not in labels
            for part in (p.narrative, p.pseudonym, *p.identity, p.relatives, p.place, p.victims, p.photo_mark,
                         p.document_mark):
                assert not anywhere(part), "a part of a record that may not go is in the case file"
            continue
        document = labels.pop(p.narrative)
        label = document["record"]
        assert document["disclosure"] == level and listed.pop(label) == level
        assert json.loads(files[f"records/{label}/consent.json"])["disclosure"] == level
        rank = Disclosure(level).rank
        assert anywhere(p.pseudonym) is (rank >= Disclosure.PSEUDONYMOUS.rank)
        assert document["pseudonym"] == (p.pseudonym if rank >= Disclosure.PSEUDONYMOUS.rank else None)
        for part in p.identity:
            assert anywhere(part) is (rank >= Disclosure.CONFIDENTIAL.rank)
        assert not anywhere(p.relatives)
        for part in (p.place, p.victims):
            assert anywhere(part) is (level != Disclosure.ANONYMOUS)
        assert len(document["interviewed"]) == (7 if level == Disclosure.ANONYMOUS else 10)
        going = {"photo": "photo" in told.media and level != Disclosure.ANONYMOUS,
                 "document": "document" in told.media}
        assert anywhere(p.photo_mark) is going["photo"] and anywhere(p.document_mark) is going["document"]
        assert sorted(a["medium"] for a in document["attachments"]) == sorted(m for m, g in going.items() if g)
        assert {a["medium"]: a["why"] for a in document["withheld_attachments"]} == {
            m: "medium_not_consented" if m not in told.media else "identifying_medium"
            for m, g in going.items() if not g}
        wanted_files |= {f"records/{label}/{name}" for name in RECORD_FILES}
        for medium, content in (("photo", p.photo), ("document", p.document)):
            if going[medium]:
                path = f"records/{label}/attachments/{hashlib.sha256(content).hexdigest()}"
                assert files[path] == content
                wanted_files.add(path)
    assert labels == {} and listed == {}, "the case file holds a record nobody planted"
    assert set(files) == wanted_files
