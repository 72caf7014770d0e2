"""The controlled vocabulary incidents are coded with (`intake/data/incident_types.toml`).

Types are grouped (attacks, detention, ill-treatment, killing, sexual violence, displacement, property, blockade,
other) after the HURIDOCS micro-thesauri, and flagged when testimony of that type is typically graphic, so that
reviewers are warned before they read it. Labels come in the interface's four languages; all but English are
drafts awaiting review by a native speaker.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType

INCIDENT_TYPES = Path(__file__).resolve().parent.parent / "data" / "incident_types.toml"
GROUPS = ("attacks", "detention", "ill_treatment", "killing", "sexual_violence", "displacement", "property",
          "blockade", "other")
LABEL_LANGUAGES = ("en", "hy", "ru", "az")
_MAX_LABEL = 60


class VocabularyError(ValueError):
    """The vocabulary file does not hold what the service expects."""


@dataclass(frozen=True)
class IncidentType:
    id: str
    group: str
    graphic: bool
    labels: MappingProxyType[str, str]
    description_required: bool = False  # the interviewer must describe it in words (the `other` type)

    def label(self, locale: str) -> str:
        return self.labels.get(locale, self.labels["en"])


def parse(path: Path) -> tuple[IncidentType, ...]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    found: list[IncidentType] = []
    for entry in data.get("type", []):
        type_id = entry.get("id", "")
        if not type_id or not type_id.isascii() or type_id != type_id.lower() or type_id in {t.id for t in found}:
            raise VocabularyError(f"incident type id {type_id!r} is empty, repeated or not lower-case ASCII")
        labels = entry.get("labels", {})
        if set(labels) != set(LABEL_LANGUAGES) or not all(
                isinstance(v, str) and v.strip() and len(v) <= _MAX_LABEL for v in labels.values()):
            raise VocabularyError(f"{type_id}: labels must be given in {', '.join(LABEL_LANGUAGES)}, each at most "
                                  f"{_MAX_LABEL} characters")
        if entry.get("group") not in GROUPS or not isinstance(entry.get("graphic"), bool) \
                or not isinstance(entry.get("description_required", False), bool):
            raise VocabularyError(f"{type_id}: unknown group, or graphic or description_required is not true or "
                                  "false")
        found.append(IncidentType(type_id, entry["group"], entry["graphic"], MappingProxyType(dict(labels)),
                                  entry.get("description_required", False)))
    if not any(t.id == "other" for t in found):
        raise VocabularyError("the vocabulary needs an `other` type for what it does not name")
    return tuple(found)


@cache
def incident_types() -> tuple[IncidentType, ...]:
    return parse(INCIDENT_TYPES)


def incident_type(type_id: str) -> IncidentType | None:
    """The type with this id; None for an id the vocabulary does not hold (refused as bad input)."""
    return next((t for t in incident_types() if t.id == type_id), None)
