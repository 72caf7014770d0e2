"""Blind index of names, for "this person may already have been interviewed".

A person's name and birth year are folded into one spelling-independent form and reduced to a short tag:
HMAC-SHA256 under a key derived from the keyring (its own purpose, never reused), truncated to `TAG_BITS` bits.
The tag is stored in clear beside the sealed identity. Truncation is deliberate: with more than a few hundred
people registered, every tag is shared by several different names, so a tag alone says little, and candidates
that share a tag are compared after decrypting their identities (`same_person_key`).

The folding, so that Armenian, Cyrillic and Latin spellings of one name meet:

1. Unicode NFKC, then case folding.
2. Letters of the Azerbaijani Latin alphabet written as Russian and Armenian spellings render them
   (ə→a, ç→ch, ş→sh, ğ→gh, ı→i, ö→o, ü→u, x→kh, c→j, q→g), the Armenian digraph ու→u, and any other ւ (as
   in և, "ev") →v.
3. Transliteration to Latin with `anyascii`.
4. Only the letters a–z are kept, then spelling variants between transliterations are merged: dzh→j, iy→i, an
   h not part of ch/sh/zh/kh/gh is dropped (Hovhannisyan, Ovannisyan), doubled letters become one.
5. The words are sorted, so the order of given and family names does not matter.

What the stored tags reveal to someone holding the database but not the keyring: which persons share a tag
(a coarse hint that they may have the same name and birth year, diluted by the truncation), and how many persons
share each tag. Without the keyring's blind-index key no tag can be computed for a guessed name.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

from anyascii import anyascii

from intake.core.keys import Keyring

__all__ = ["TAG_BITS", "fold_name", "name_tag", "same_person_key"]

TAG_BITS = 16
_LABEL = "person-name/v1"
_AZ_LATIN = str.maketrans({"ə": "a", "ç": "ch", "ş": "sh", "ğ": "gh", "ı": "i", "ö": "o", "ü": "u", "x": "kh",
                           "c": "j", "q": "g"})
_NOT_LETTERS = re.compile(r"[^a-z]+")
_LONE_H = re.compile(r"(?<![cszkg])h")
_DOUBLED = re.compile(r"([a-z])\1+")


def _fold_word(word: str) -> str:
    word = word.replace("dzh", "j").replace("iy", "i")
    word = _LONE_H.sub("", word)
    return _DOUBLED.sub(r"\1", word)


def fold_name(name: str) -> str:
    """The spelling-independent form of a name (see the module's description)."""
    text = unicodedata.normalize("NFKC", name).casefold()
    text = text.replace("ու", "u").replace("ւ", "v").translate(_AZ_LATIN)
    text = anyascii(text).lower()
    words = [_fold_word(w) for w in _NOT_LETTERS.split(text.replace("'", "")) if w]
    return " ".join(sorted(w for w in words if w))


def same_person_key(name: str, birth_year: int | None) -> str:
    """What two identities must share to be reported as possibly the same person."""
    return f"{fold_name(name)}|{birth_year if birth_year is not None else ''}"


def name_tag(keyring: Keyring, name: str, birth_year: int | None) -> str | None:
    """The truncated blind-index tag of a name and birth year, as hex; None when the name folds to nothing."""
    folded = fold_name(name)
    if not folded:
        return None
    key = keyring.subkey("blind-index", label=_LABEL)
    digest = hmac.new(key, same_person_key(name, birth_year).encode("ascii"), hashlib.sha256).digest()
    tag = int.from_bytes(digest[:4], "big") >> (32 - TAG_BITS)
    return f"{tag:0{TAG_BITS // 4}x}"
