"""The blind index of names behind "this person may already have been interviewed": Armenian, Cyrillic and Latin
spellings of one name meet, the tags are keyed and deliberately short, their collisions never reach the
interviewer, shredded identities are never matched, and the audit log keeps counts, never names."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from intake.core.crypto.blind_index import (
    fold_name,
    name_tag,
    name_tags,
    same_person,
    same_person_key,
    search_tags,
)
from intake.core.db import db
from intake.core.keys import Keyring
from intake.identities.models import Person
from intake.identities.operations import possible_previous_interviews, register_person, shred_identity
from tests.conftest import PASSPHRASE

SPELLINGS = [
    ("Արմեն Սարգսյան", "Армен Саргсян", "Armen Sargsyan"),
    ("Գոհար Հովհաննիսյան", "Гоар Ованнисян", "Gohar Hovhannisyan"),
    ("Əliyev", "Алиев", "Ալիև"),
    ("Cavad", "Джавад", "Ջավադ"),
    ("Xaçatryan", "Хачатрян", "Խաչատրյան", "Khachatryan"),
    ("Chobanyan", "Чобанян", "Չոբանյան"),
    ("Victor", "Виктор"),
    ("Ilham", "Ильхам"),
    ("Qasımov", "Гасымов"),
]
TAG = re.compile(r"[0-9a-f]{4}")


def generated_names() -> Iterator[str]:
    """Plausible, distinct names (given and family name from syllables), each folding to its own form."""
    syllables = [c + v for c in "bdgklmnprstvz" for v in "aeiou"]
    seen: set[str] = set()
    for first, second, third in itertools.product(syllables, repeat=3):
        name = f"{(first + second).title()} {(third + first + 'yan').title()}"
        folded = fold_name(name)
        if folded not in seen:
            seen.add(folded)
            yield name


def colliding_pair(keyring: Keyring, birth_year: int | None) -> tuple[str, str]:
    """Two different names whose tags under `keyring` are the same."""
    by_tag: dict[str, str] = {}
    for name in itertools.islice(generated_names(), 20_000):
        tag = name_tag(keyring, name, birth_year)
        assert tag is not None
        if tag in by_tag:
            return by_tag[tag], name
        by_tag[tag] = name
    raise AssertionError("no two of 20,000 names share a tag: the tags are not 16 bits")


def register(name: str | None, birth_year: int | None = None) -> Person:
    identity = {"name": name, "birth_year": birth_year} if name is not None else None
    return register_person(identity, actor=None, prefix="KB")


# ---------------------------------------------------------------------------------------------------------------
# Folding


@pytest.mark.parametrize("spellings", SPELLINGS, ids=["sargsyan", "hovhannisyan", "aliyev", "javad", "khachatryan",
                                                     "chobanyan", "viktor", "ilham", "gasymov"])
def test_armenian_cyrillic_and_latin_spellings_of_one_name_meet(spellings: tuple[str, ...], keyring: Keyring) -> None:
    for stored in spellings:
        tags = set(name_tags(keyring, stored, 1978))
        assert tags and name_tag(keyring, stored, 1978) in tags
        for searched in spellings:
            assert same_person(searched, 1978, stored, 1978), (searched, stored)
            # Whichever spelling was stored, a search in any other finds it by one of its tags.
            assert tags & set(search_tags(keyring, searched, 1978)), (searched, stored)


def test_the_azerbaijani_capital_dotted_i_reads_as_i(keyring: Keyring) -> None:
    for spelling in ("İlqar Quliyev", "Ilqar Quliyev", "Ильгар Гулиев"):
        assert same_person(spelling, 1990, "İLQAR QULİYEV", 1990), spelling
    assert fold_name("İsmayıl") == fold_name("Ismayıl")


def test_word_order_case_and_spaces_do_not_matter() -> None:
    for variant in ["Sargsyan Armen", "  ARMEN   sargsyan ", "armen\tSARGSYAN", "Саргсян Армен", "ԱՐՄԵՆ ՍԱՐԳՍՅԱՆ",
                    "Սարգսյան   Արմեն"]:
        assert fold_name(variant) == fold_name("Armen Sargsyan"), variant
    assert fold_name("Hovhannisyan Gohar") == fold_name("  GOAR  ОВАННИСЯН")


def test_different_names_stay_different() -> None:
    canonical = [fold_name(s[0]) for s in SPELLINGS]
    assert len(set(canonical)) == len(SPELLINGS)
    for one, other in [("Armen Sargsyan", "Aram Sargsyan"), ("Armen Sargsyan", "Armen Sarkisov"),
                       ("Gohar Hovhannisyan", "Gohar Harutyunyan"), ("Əliyev", "Əliyeva"), ("Cavad", "Cavid"),
                       ("Xaçatryan", "Xaçikyan"), ("Армен Саргсян", "Арам Саргсян"),
                       ("Armen Sargsyan", "Armen Sargsyan Tigran")]:
        assert fold_name(one) != fold_name(other), (one, other)
    assert same_person_key("Armen Sargsyan", 1978) != same_person_key("Armen Sargsyan", 1979)


# ---------------------------------------------------------------------------------------------------------------
# Tags


def test_a_tag_is_16_bits_of_hex_and_stable_for_the_same_keyring(keyring: Keyring, keyring_path: Path) -> None:
    reopened = Keyring.open(keyring_path, PASSPHRASE)  # as after a restart
    for name in itertools.islice(generated_names(), 50):
        tag = name_tag(keyring, name, 1985)
        assert tag is not None and TAG.fullmatch(tag), tag
        assert name_tag(keyring, name, 1985) == tag == name_tag(reopened, name, 1985)
    assert name_tag(keyring, "---", 1985) is None  # nothing to index in a name without letters


def test_another_keyring_gives_other_tags(keyring: Keyring, tmp_path: Path) -> None:
    other = Keyring.create(tmp_path / "other.sealed", PASSPHRASE, scrypt_n=2**10)
    names = list(itertools.islice(generated_names(), 40))
    same = [n for n in names if name_tag(keyring, n, 1985) == name_tag(other, n, 1985)]
    assert len(same) <= 2, same  # by chance 40 / 65536 are expected to agree


def test_tags_are_short_enough_that_different_names_share_them(keyring: Keyring) -> None:
    names = list(itertools.islice(generated_names(), 3000))
    tags = [name_tag(keyring, n, None) for n in names]
    collisions = len(tags) - len(set(tags))
    # 3000 names over 2^16 tags collide about 68 times; over 2^12 about 880 times, over 2^20 about 4 times.
    assert 20 <= collisions <= 150, collisions
    first, second = colliding_pair(keyring, None)
    assert fold_name(first) != fold_name(second)
    assert name_tag(keyring, first, None) == name_tag(keyring, second, None)


# ---------------------------------------------------------------------------------------------------------------
# "Already interviewed?" (both databases)


def test_a_person_registered_in_one_script_is_found_when_searched_in_another(app: Flask) -> None:
    with app.app_context():
        armen = register("Армен Саргсян", 1978)
        register("Арам Саргсян", 1978)
        register("Армен Саргсян", 1979)
        register(None)  # anonymous
        db.session.commit()
        for search in ["Armen Sargsyan", "Սարգսյան Արմեն", "  SARGSYAN armen"]:
            assert [p.id for p in possible_previous_interviews(search, 1978, actor=None)] == [armen.id], search
        assert possible_previous_interviews("Armen Sargsyan", 1980, actor=None) == []
        assert possible_previous_interviews("Tigran Sargsyan", 1978, actor=None) == []
        assert possible_previous_interviews("", 1978, actor=None) == []


def test_names_that_share_a_tag_are_told_apart_after_decryption(app: Flask, keyring: Keyring) -> None:
    first, second = colliding_pair(keyring, 1984)
    with app.app_context():
        one, other = register(first, 1984), register(second, 1984)
        db.session.commit()
        stored = db.session.execute(sa.select(Person.id, Person.name_tag).where(Person.id.in_([one.id, other.id])))
        assert len({tag for _, tag in stored}) == 1  # the database cannot tell them apart

        assert [p.id for p in possible_previous_interviews(first, 1984, actor=None)] == [one.id]
        assert [p.id for p in possible_previous_interviews(second, 1984, actor=None)] == [other.id]
        db.session.commit()
        checks = db.session.execute(sa.text(
            "SELECT target_ids, details FROM audit_events WHERE action = 'identity_match_checked' ORDER BY seq"
        )).all()
    details = [json.loads(d) if isinstance(d, str) else d for _, d in checks]
    assert details == [{"candidates": 2, "matches": 1}, {"candidates": 2, "matches": 1}]


def test_a_shredded_identity_is_never_matched(app: Flask) -> None:
    with app.app_context():
        gone = register("Գոհար Հովհաննիսյան", 1975)
        db.session.commit()
        tag = gone.name_tag
        shred_identity(gone, reason="asked to be forgotten", actor=None)
        db.session.commit()
        assert possible_previous_interviews("Gohar Hovhannisyan", 1975, actor=None) == []
        assert db.session.get(Person, gone.id).name_tag is None

        # Even with the tag put back (an index restored from an old backup), the shredded person is not matched.
        db.session.execute(sa.update(Person).where(Person.id == gone.id).values(name_tag=tag))
        registered_again = register("Гоар Ованнисян", 1975)
        db.session.commit()
        found = possible_previous_interviews("Gohar Hovhannisyan", 1975, actor=None)
        assert [p.id for p in found] == [registered_again.id]


def test_the_audit_log_of_a_check_holds_counts_never_names(app: Flask) -> None:
    with app.app_context():
        person = register("Cavad Əliyev", 1969)
        db.session.commit()
        assert [p.id for p in possible_previous_interviews("Джавад Алиев", 1969, actor=None)] == [person.id]
        assert possible_previous_interviews("Xaçatryan Lusine", 1969, actor=None) == []
        db.session.commit()
        rows = [dict(r._mapping) for r in db.session.execute(sa.text("SELECT * FROM audit_events ORDER BY seq"))]
    checks = [r for r in rows if r["action"] == "identity_match_checked"]
    details = [json.loads(r["details"]) if isinstance(r["details"], str) else r["details"] for r in checks]
    assert details[0] == {"candidates": 1, "matches": 1}
    assert set(details[1]) == {"candidates", "matches"} and details[1]["matches"] == 0
    target_ids = [json.loads(t) if isinstance(t, str) else t for t in (r["target_ids"] for r in checks)]
    assert target_ids == [[person.id], []]
    recorded = json.dumps([{k: str(v) for k, v in r.items()} for r in rows], ensure_ascii=False).casefold()
    for part in ["Cavad", "Əliyev", "Джавад", "Алиев", "Xaçatryan", "Lusine", "javad", "aliev", "khachatryan"]:
        assert part.casefold() not in recorded, part
