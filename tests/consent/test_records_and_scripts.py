"""The consent package stands alone, and its scripts say everything a consent script must, in four languages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from consent import scripts
from consent.records import ConsentVersion, Disclosure, FollowUp, Medium, Method, Purpose, ScriptItem


def test_the_consent_package_imports_neither_flask_nor_sqlalchemy() -> None:
    probe = ("import sys, consent.records, consent.policy, consent.scripts; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in {'flask', 'sqlalchemy', 'intake'}))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,  # noqa: S603 - fixed
                            check=True)
    assert result.stdout.strip() == "[]"


def test_disclosure_levels_are_ordered_least_to_most() -> None:
    assert [d.rank for d in Disclosure] == [0, 1, 2, 3]
    assert Disclosure.PUBLIC.at_most(Disclosure.PSEUDONYMOUS) is Disclosure.PSEUDONYMOUS
    assert Disclosure.ANONYMOUS.at_most(Disclosure.CONFIDENTIAL) is Disclosure.ANONYMOUS


def test_there_is_no_fingerprint_method_and_follow_up_needs_a_safe_method() -> None:
    assert {m.value for m in Method} == {"written", "oral_witnessed", "mark"}
    from datetime import UTC, datetime

    given = ConsentVersion(script_language="en", script_hash="0" * 64, items_confirmed=frozenset(ScriptItem),
                           method=Method.MARK, interviewer="3", recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
                           capacity_confirmed=True, voluntariness_confirmed=True,
                           follow_up=FollowUp(permitted=True))
    assert given.problems() == ["follow-up permitted without a safe method"]


def test_a_script_exists_in_every_language_and_covers_every_item() -> None:
    shipped = scripts.available()
    assert {s.language for s in shipped} == set(scripts.LANGUAGES)
    for language in scripts.LANGUAGES:
        script = scripts.latest(language)
        assert set(script.items) == {i.value for i in ScriptItem}
        assert set(script.purposes) == {p.value for p in Purpose}
        assert set(script.disclosure) == {d.value for d in Disclosure}
        assert set(script.media) == {m.value for m in Medium}
        assert set(script.questions) == set(scripts.QUESTIONS)
        assert all(text.strip() for text in script.items.values())
        assert "fingerprint" not in " ".join(script.items.values()).lower()
        # Only the English text is final; the others are drafts until a native speaker reviews them.
        assert script.needs_native_review is (language != "en")
        assert scripts.by_hash(script.hash) is script


def test_translations_are_in_their_own_script() -> None:
    armenian = scripts.latest("hy").items["right_to_refuse"]
    russian = scripts.latest("ru").items["right_to_refuse"]
    azerbaijani = scripts.latest("az").items["right_to_refuse"]
    assert any("\u0531" <= ch <= "\u058f" for ch in armenian)
    assert any("\u0400" <= ch <= "\u04ff" for ch in russian)
    assert any(ch in "əğışçöü" for ch in azerbaijani.lower())
    assert len({armenian, russian, azerbaijani, scripts.latest("en").items["right_to_refuse"]}) == 4


def test_the_version_hash_is_the_files_sha256_so_any_change_is_a_new_version(tmp_path: Path) -> None:
    import hashlib

    english = next(p for p in scripts.SCRIPTS.glob("en-v*.toml"))
    assert scripts.parse(english).hash == hashlib.sha256(english.read_bytes()).hexdigest()
    changed = tmp_path / english.name
    changed.write_bytes(english.read_bytes().replace(b"version = 1", b"version = 1 "))
    assert scripts.parse(changed).hash != scripts.parse(english).hash


@pytest.mark.parametrize(("edit", "message"), [
    (lambda text: text.replace("[media]", "[media]\nfingerprint = \"x\""), r"\[media\] must have exactly"),
    (lambda text: text.replace('language = "en"', 'language = "hy"'), "differ from its name"),
    (lambda text: text.replace("needs_native_review = false", 'needs_native_review = "no"'), "true or false"),
    (lambda text: "extra = 1\n" + text, "expected the keys"),
    (lambda text: text.replace("[items]", "[items"), "not a TOML file"),
])
def test_a_script_that_says_too_much_or_too_little_is_refused(tmp_path: Path, edit: object, message: str) -> None:
    english = next(p for p in scripts.SCRIPTS.glob("en-v*.toml"))
    broken = tmp_path / english.name
    broken.write_text(edit(english.read_text(encoding="utf-8")), encoding="utf-8")  # type: ignore[operator]
    with pytest.raises(scripts.ScriptError, match=message):
        scripts.parse(broken)


def test_a_script_file_is_named_by_its_language_and_version(tmp_path: Path) -> None:
    english = next(p for p in scripts.SCRIPTS.glob("en-v*.toml"))
    misnamed = tmp_path / "english.toml"
    misnamed.write_bytes(english.read_bytes())
    with pytest.raises(scripts.ScriptError, match="named <language>-v<version>.toml"):
        scripts.parse(misnamed)
