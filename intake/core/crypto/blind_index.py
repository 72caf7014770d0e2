"""Blind index of names, for "this person may already have been interviewed".

A person's name and birth year are folded into one spelling-independent form and reduced to a short tag:
HMAC-SHA256 under a key derived from the keyring (its own purpose, never reused), truncated to `TAG_BITS` bits.
The tag (two, for a Latin name with two readings) is stored in clear beside the sealed identity. Candidates that
share a tag are confirmed by decrypting their identities (`same_person`), so collisions of the truncated tag never
reach the person asking.

The folding, so that Armenian, Cyrillic and Latin spellings of one name meet:

1. Unicode NFKC, then case folding (and the dot above that folding leaves after the Azerbaijani İ is dropped).
2. Latin words are read in one of two ways. A name with a letter only Azerbaijani uses (ə ş ğ ı ç ö ü) is read as
   Azerbaijani: ə→a, ç→ch, ş→sh, ğ→gh, ı→y, ö→o, ü→u, x→kh, c→j, q→g. Any other Latin name is read as the
   English-style transliterations of Armenian and Russian names are written: x→ks, ph→f, q→k, c→k (s before e, i,
   y; ch stays). A name is stored under the tags of both readings and a search tries both, so "Cavad" and
   «Джавад» find each other.
3. The Armenian ու→u and ւ→v; then transliteration to Latin with `anyascii`.
4. Only the letters a–z are kept, then variants between transliterations are merged: dzh→j, iy→i, kh→h, an h not
   part of ch/sh/zh/gh is dropped (Hovhannisyan and Ovannisyan, Ilham and Ильхам), doubled letters become one.
5. The words are sorted, so the order of given and family names does not matter.

What the stored tags reveal to someone holding the database but not the keyring is said in the README: in short,
which persons share a tag, which at the sizes of real deployments mostly means the same folded name and birth year.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

from anyascii import anyascii

from intake.core.keys import Keyring

__all__ = [
    "TAG_BITS", "fold_name", "fold_readings", "name_tag", "name_tags", "same_person", "same_person_key", "search_tags",
]

TAG_BITS = 16
_LABEL = "person-name/v1"
_AZ_ONLY = frozenset("əşğıçöü")
_AZ_LATIN = str.maketrans({"ə": "a", "ç": "ch", "ş": "sh", "ğ": "gh", "ı": "y", "ö": "o", "ü": "u", "x": "kh",
                           "c": "j", "q": "g"})
_LATIN_WORD = re.compile(r"^[a-z\u00c0-\u02af'’-]+$")
_C_SOFT = re.compile(r"c(?=[eiy])")
_C_HARD = re.compile(r"c(?!h)")
_NOT_LETTERS = re.compile(r"[^a-z]+")
_LONE_H = re.compile(r"(?<![csz g])h".replace(" ", ""))
_DOUBLED = re.compile(r"([a-z])\1+")


def _english_latin(word: str) -> str:
    word = word.replace("x", "ks").replace("ph", "f").replace("q", "k")
    return _C_HARD.sub("k", _C_SOFT.sub("s", word))


def _fold_word(word: str) -> str:
    word = word.replace("dzh", "j").replace("iy", "i").replace("kh", "h")
    word = _LONE_H.sub("", word)
    return _DOUBLED.sub(r"\1", word)


def _fold(words: list[str], azerbaijani: bool) -> str:
    out: list[str] = []
    for word in words:
        if _LATIN_WORD.match(word):
            word = word.translate(_AZ_LATIN) if azerbaijani else _english_latin(word)
        word = anyascii(word.replace("ու", "u").replace("ւ", "v")).lower()
        out.extend(_fold_word(w) for w in _NOT_LETTERS.split(word.replace("'", "")) if w)
    return " ".join(sorted(w for w in out if w))


def fold_readings(name: str) -> list[str]:
    """The spelling-independent forms of a name: the one it is stored under first, then the other reading of its
    Latin words, if it differs (see the module's description)."""
    # Case folding turns the Azerbaijani İ into i and a combining dot above; the dot carries nothing.
    words = unicodedata.normalize("NFKC", name).casefold().replace("\u0307", "").split()
    azerbaijani = any(_AZ_ONLY.intersection(word) for word in words)
    readings = [_fold(words, azerbaijani), _fold(words, not azerbaijani)]
    return [r for i, r in enumerate(readings) if r and r not in readings[:i]]


def fold_name(name: str) -> str:
    """The spelling-independent form a name is stored under."""
    readings = fold_readings(name)
    return readings[0] if readings else ""


def same_person_key(name: str, birth_year: int | None) -> str:
    """The stored form of a name and birth year, which the tag is computed over."""
    return _key(fold_name(name), birth_year)


def _key(folded: str, birth_year: int | None) -> str:
    return f"{folded}|{birth_year if birth_year is not None else ''}"


def same_person(name: str, birth_year: int | None, other_name: str, other_birth_year: int | None) -> bool:
    """Whether two names and birth years may be the same person's: same year, and a reading in common."""
    return birth_year == other_birth_year and bool(set(fold_readings(name)) & set(fold_readings(other_name)))


def _tag(keyring: Keyring, folded: str, birth_year: int | None) -> str:
    key = keyring.subkey("blind-index", label=_LABEL)
    digest = hmac.new(key, _key(folded, birth_year).encode("ascii"), hashlib.sha256).digest()
    tag = int.from_bytes(digest[:4], "big") >> (32 - TAG_BITS)
    return f"{tag:0{TAG_BITS // 4}x}"


def search_tags(keyring: Keyring, name: str, birth_year: int | None) -> list[str]:
    """The tags to look for when searching for a name: one per reading."""
    return [_tag(keyring, folded, birth_year) for folded in fold_readings(name)]


def name_tags(keyring: Keyring, name: str, birth_year: int | None) -> list[str]:
    """The truncated blind-index tags a name and birth year are stored under, as hex: one per reading (at most two),
    the first reading's first; empty when the name folds to nothing."""
    return search_tags(keyring, name, birth_year)


def name_tag(keyring: Keyring, name: str, birth_year: int | None) -> str | None:
    """The tag of a name's first reading (see `name_tags`); None when the name folds to nothing."""
    tags = name_tags(keyring, name, birth_year)
    return tags[0] if tags else None
