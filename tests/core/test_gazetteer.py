"""The gazetteer finds a place by any of its names, in any script or spelling, and holds one id for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from intake.core import gazetteer


def test_every_place_is_named_in_the_four_languages_and_lies_in_a_known_region() -> None:
    places = gazetteer.places()
    assert len(places) >= 40
    assert len({p.id for p in places}) == len(places)
    for place in places:
        assert set(place.names) == {"hy", "az", "ru", "en"}
        assert place.region in gazetteer.REGIONS and place.kind in gazetteer.KINDS
        if place.latitude is not None:
            assert 38.0 < place.latitude < 42.0 and 43.0 < (place.longitude or 0) < 51.0, place.id


@pytest.mark.parametrize(("typed", "place_id"), [
    ("Stepanakert", "stepanakert"), ("Khankendi", "stepanakert"), ("Xankəndi", "stepanakert"),
    ("Ստեփանակերտ", "stepanakert"), ("Степанакерт", "stepanakert"), ("stepanakert", "stepanakert"),
    ("Shushi", "shushi"), ("Shusha", "shushi"), ("Şuşa", "shushi"), ("Шуши", "shushi"),
    ("Martuni", "martuni"), ("Xocavənd", "martuni"),
    ("Goris", "goris"), ("Kornidzor", "kornidzor"),
])
def test_any_name_finds_the_same_place_first(typed: str, place_id: str) -> None:
    found = gazetteer.find(typed)
    assert found and found[0].id == place_id, [p.id for p in found]


def test_a_beginning_is_enough_and_the_corridor_is_found_by_its_town() -> None:
    assert "stepanakert" in [p.id for p in gazetteer.find("Stepan")]
    assert any(p.kind == "corridor" for p in gazetteer.find("Lachin"))


def test_unknown_names_find_nothing_and_ids_resolve() -> None:
    assert gazetteer.find("Atlantis") == [] and gazetteer.find("  ") == []
    place = gazetteer.get("stepanakert")
    assert place is not None and place.name("ru") == "Степанакерт" and place.name("fr") == place.names["en"]
    assert gazetteer.get("nowhere") is None


@pytest.mark.parametrize(("text", "message"), [
    ('[[place]]\nid = "a"\nkind = "city"\nregion = "armenia"\nnames = { hy = "Ա", az = "A", ru = "А" }\n',
     "names must be given"),
    ('[[place]]\nid = "a"\nkind = "castle"\nregion = "armenia"\nnames = { hy = "Ա", az = "A", ru = "А", en = "A" }\n',
     "unknown kind"),
    ('[[place]]\nid = "A"\nkind = "city"\nregion = "armenia"\nnames = { hy = "Ա", az = "A", ru = "А", en = "A" }\n',
     "lower-case"),
])
def test_a_malformed_gazetteer_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "gazetteer.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(gazetteer.GazetteerError, match=message):
        gazetteer.parse(path)
