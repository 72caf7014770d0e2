"""The incident vocabulary: every type labelled in the four languages, grouped, flagged when graphic."""

from __future__ import annotations

from pathlib import Path

import pytest

from intake.core import vocabulary


def test_every_type_is_labelled_in_four_languages_and_grouped() -> None:
    types = vocabulary.incident_types()
    assert len(types) >= 30
    assert {t.group for t in types} <= set(vocabulary.GROUPS)
    for incident_type in types:
        assert set(incident_type.labels) == set(vocabulary.LABEL_LANGUAGES)
        assert len(set(incident_type.labels.values())) >= 3, incident_type.id  # translated, not copied
    assert any("\u0531" <= ch <= "\u058f" for ch in vocabulary.incident_type("shelling").labels["hy"])  # type: ignore[union-attr]


def test_the_types_testimony_is_graphic_for_are_flagged() -> None:
    graphic = {t.group for t in vocabulary.incident_types() if t.graphic}
    assert {"killing", "sexual_violence"} <= graphic
    assert not any(t.graphic for t in vocabulary.incident_types() if t.group == "blockade")


def test_the_conflicts_own_incidents_have_a_type() -> None:
    ids = {t.id for t in vocabulary.incident_types()}
    assert {"shelling", "drone_strike", "forced_displacement", "other"} <= ids
    other = vocabulary.incident_type("other")
    assert other is not None and other.description_required
    labels = " ".join(t.labels["en"].lower() for t in vocabulary.incident_types())
    assert "checkpoint" in labels and "blockade" in labels


def test_an_unknown_type_is_none_and_labels_fall_back_to_english() -> None:
    assert vocabulary.incident_type("teleportation") is None
    shelling = vocabulary.incident_type("shelling")
    assert shelling is not None and shelling.label("fr") == shelling.labels["en"]


@pytest.mark.parametrize(("text", "message"), [
    ('[[type]]\nid = "other"\ngroup = "other"\ngraphic = false\nlabels = { en = "Other" }\n', "labels must"),
    ('[[type]]\nid = "other"\ngroup = "weather"\ngraphic = false\n'
     'labels = { en = "Other", hy = "Այլ", ru = "Другое", az = "Digər" }\n', "unknown group"),
    ('[[type]]\nid = "shelling"\ngroup = "attacks"\ngraphic = false\n'
     'labels = { en = "Shelling", hy = "Հրետակոծում", ru = "Обстрел", az = "Atəş" }\n', "needs an `other`"),
])
def test_a_malformed_vocabulary_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "incident_types.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(vocabulary.VocabularyError, match=message):
        vocabulary.parse(path)
