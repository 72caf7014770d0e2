"""Consent scripts: what the interviewer reads, item by item, in the person's language.

Each script is a TOML file `consent/scripts/<language>-v<version>.toml`. Its SHA-256 is the version hash a consent
records, so what was read can always be shown again word for word. A script must cover every `ScriptItem`, every
purpose, disclosure level and medium, and the confirmation questions, and nothing else; scripts in a language not
yet reviewed by a native speaker say so (`needs_native_review`).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from consent.records import Disclosure, Medium, Purpose, ScriptItem

SCRIPTS = Path(__file__).with_name("scripts")
LANGUAGES = ("en", "hy", "ru", "az")
QUESTIONS = ("capacity", "voluntariness", "guardian", "child_assent", "follow_up")
_NAME = re.compile(r"(?P<language>[a-z]{2})-v(?P<version>[1-9][0-9]*)\.toml")
_SECTIONS: dict[str, tuple[str, ...]] = {
    "items": tuple(ScriptItem),
    "purposes": tuple(Purpose),
    "disclosure": tuple(Disclosure),
    "media": tuple(Medium),
    "questions": QUESTIONS,
}


class ScriptError(ValueError):
    """A script file that does not say everything a consent script must, or says something else."""


@dataclass(frozen=True)
class Script:
    language: str
    version: int
    hash: str  # SHA-256 of the file, hex: the version hash a consent records
    title: str
    needs_native_review: bool
    items: MappingProxyType[str, str]
    purposes: MappingProxyType[str, str]
    disclosure: MappingProxyType[str, str]
    media: MappingProxyType[str, str]
    questions: MappingProxyType[str, str]


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ScriptError(f"{where} must be a non-empty text")
    return value.strip()


def parse(path: Path) -> Script:
    """Read and check one script file."""
    match = _NAME.fullmatch(path.name)
    if match is None:
        raise ScriptError(f"{path.name}: script files are named <language>-v<version>.toml")
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ScriptError(f"{path.name}: not a TOML file: {exc}") from None
    expected_keys = {"language", "version", "needs_native_review", "title", *_SECTIONS}
    if set(data) != expected_keys:
        raise ScriptError(f"{path.name}: expected the keys {sorted(expected_keys)}, found {sorted(data)}")
    if data["language"] != match["language"] or data["version"] != int(match["version"]):
        raise ScriptError(f"{path.name}: its language and version differ from its name")
    if not isinstance(data["needs_native_review"], bool):
        raise ScriptError(f"{path.name}: needs_native_review must be true or false")
    sections: dict[str, MappingProxyType[str, str]] = {}
    for section, keys in _SECTIONS.items():
        table = data[section]
        if not isinstance(table, dict) or set(table) != set(keys):
            raise ScriptError(f"{path.name}: [{section}] must have exactly {sorted(keys)}")
        sections[section] = MappingProxyType({k: _text(table[k], f"{path.name} [{section}] {k}") for k in keys})
    return Script(
        language=data["language"], version=data["version"], hash=hashlib.sha256(raw).hexdigest(),
        title=_text(data["title"], f"{path.name} title"), needs_native_review=data["needs_native_review"],
        **sections,
    )


@cache
def available() -> tuple[Script, ...]:
    """Every script shipped, by language then version."""
    return tuple(sorted((parse(p) for p in SCRIPTS.glob("*.toml")), key=lambda s: (s.language, s.version)))


def latest(language: str) -> Script:
    """The newest script in `language` (what a new consent is read from)."""
    found = [s for s in available() if s.language == language]
    if not found:
        raise ScriptError(f"no consent script in {language!r}")
    return found[-1]


def by_hash(version_hash: str) -> Script | None:
    """The script a consent recorded, to show again exactly what was read."""
    return next((s for s in available() if s.hash == version_hash), None)
