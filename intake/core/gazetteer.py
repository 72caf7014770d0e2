"""The places of the region, with the names people use for them (`intake/data/gazetteer.toml`).

An incident's place is a gazetteer id, or a free description when the place is not in it. The same town has an
Armenian, an Azerbaijani, a Russian and a Latin name, and more spellings besides (Stepanakert, Khankendi,
Xankəndi, Ստեփանակերտ, Степанакерт): `find` matches a typed name against all of them, spelling-independently, so
an interviewer finds the place whichever name the person uses, and the record stores one id for it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType

from intake.core.crypto.blind_index import fold_readings

GAZETTEER = Path(__file__).resolve().parent.parent / "data" / "gazetteer.toml"
KINDS = frozenset({"city", "town", "village", "district", "region", "road", "corridor", "checkpoint", "crossing"})
REGIONS = ("nagorno-karabakh", "armenia", "azerbaijan")
NAME_LANGUAGES = ("hy", "az", "ru", "en")


@dataclass(frozen=True)
class Place:
    id: str
    kind: str
    region: str
    names: MappingProxyType[str, str]
    other_names: tuple[str, ...] = ()
    latitude: float | None = None
    longitude: float | None = None

    def name(self, locale: str) -> str:
        """The place's name in `locale` (its Latin name in a language the gazetteer does not hold)."""
        return self.names.get(locale, self.names["en"])

    def all_names(self) -> tuple[str, ...]:
        return (*self.names.values(), *self.other_names)


class GazetteerError(ValueError):
    """The gazetteer file does not hold what the service expects."""


def parse(path: Path) -> tuple[Place, ...]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    places = []
    seen: set[str] = set()
    for entry in data.get("place", []):
        place_id = entry.get("id", "")
        if not place_id or place_id in seen or not place_id.isascii() or place_id != place_id.lower():
            raise GazetteerError(f"place id {place_id!r} is empty, repeated or not lower-case ASCII")
        seen.add(place_id)
        names = entry.get("names", {})
        if set(names) != set(NAME_LANGUAGES) or not all(isinstance(n, str) and n.strip() for n in names.values()):
            raise GazetteerError(f"{place_id}: names must be given in {', '.join(NAME_LANGUAGES)}")
        if entry.get("kind") not in KINDS or entry.get("region") not in REGIONS:
            raise GazetteerError(f"{place_id}: unknown kind or region")
        places.append(Place(
            id=place_id, kind=entry["kind"], region=entry["region"], names=MappingProxyType(dict(names)),
            other_names=tuple(entry.get("other_names", ())), latitude=entry.get("latitude"),
            longitude=entry.get("longitude"),
        ))
    return tuple(places)


@cache
def places() -> tuple[Place, ...]:
    return parse(GAZETTEER)


@cache
def _index() -> tuple[tuple[Place, tuple[str, ...]], ...]:
    return tuple((p, tuple(sorted({r for n in p.all_names() for r in fold_readings(n)}))) for p in places())


def get(place_id: str) -> Place | None:
    return next((p for p in places() if p.id == place_id), None)


def find(query: str, *, limit: int = 10) -> list[Place]:
    """Places whose name, in any script or spelling, is `query` (first), starts with it, or contains it."""
    wanted = [r for r in fold_readings(query) if r]
    if not wanted:
        return []
    ranked: list[tuple[int, int, Place]] = []
    for order, (place, folded) in enumerate(_index()):
        best = min((0 if name == w else 1 if name.startswith(w) else 2 if w in name else 3
                    for name in folded for w in wanted), default=3)
        if best < 3:
            ranked.append((best, order, place))
    return [place for _, _, place in sorted(ranked)[:limit]]
