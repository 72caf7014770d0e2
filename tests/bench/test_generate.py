"""The data generator: records in their interview's language, incidents across the gazetteer, attachments that open
as what was meant to be stored, withdrawals and erasures as in service, and the command line's report."""

from __future__ import annotations

import hashlib
import json
import random
import unicodedata
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask

from bench import generate
from intake.accounts.models import Account
from intake.consents.operations import documentation_allowed
from intake.core import gazetteer, vocabulary
from intake.core.access import AccessRefused, Part, open_attachment, open_record
from intake.core.db import db
from intake.interviews.operations import IncidentInput, Perpetrator, incident_problems
from intake.testimonies.models import Attachment
from intake.testimonies.models import Testimony as StoredTestimony

# Enough records for every kind of withdrawal and one erasure (0.2%), few enough to open each of them.
RECORDS = 500
PURPOSE = "review"
AZERBAIJANI = set("əƏğĞıİşŞçÇöÖüÜ")


def _letters(text: str) -> list[str]:
    return [c for c in text if c.isalpha()]


def in_script(text: str, language: str) -> bool:
    """Whether every letter of `text` is of the language's script (and Azerbaijani shows its own letters)."""
    letters = _letters(text)
    if not letters:
        return False
    if language == "hy":
        return all("\u0531" <= c <= "\u058f" for c in letters)
    if language == "ru":
        return all("\u0400" <= c <= "\u04ff" for c in letters)
    if language == "en":
        return all(c.isascii() for c in letters)
    return all(unicodedata.name(c).startswith("LATIN ") for c in letters) and bool(AZERBAIJANI & set(letters))


def test_the_scripts_are_told_apart() -> None:
    assert in_script("Ստեփանակերտ։", "hy") and not in_script("Степанакерт", "hy")
    assert in_script("Степанакерт.", "ru") and not in_script("Stepanakert", "ru")
    assert in_script("Stepanakert", "en") and not in_script("Xankəndi", "en")
    assert in_script("Xankəndi", "az") and not in_script("Khankendi", "az")


def _incident_input(kind: str, document: dict) -> IncidentInput:
    """The incident an interviewer would have entered, read back from its stored document."""
    date = document["date"] or {}
    place = document["place"] or {}
    victims = document["victims"] or {}
    return IncidentInput(
        type=kind, description=document["description"], date_precision=date.get("precision", "unknown"),
        date_start=date.get("start") or "", date_end=date.get("end") or "", place_id=place.get("id") or "",
        place_description=place.get("description", ""), victims_count=victims.get("count"),
        victims_description=victims.get("description", ""),
        perpetrators=tuple(Perpetrator(**p) for p in document["perpetrators"] or ()),
        source_relation=document["source_relation"] or "", declined=frozenset(document["declined"]))


def test_generated_records_read_as_a_reviewer_sees_them(app: Flask) -> None:
    with app.app_context():
        generated = generate.generate(RECORDS, seed=11, batch=150, attachment_share=0.2)
        reviewer = db.session.get(Account, generated.reviewer_id)
        assert generated.languages == {"hy": 350, "ru": 100, "en": 35, "az": 15}
        places = {p.id: p for p in gazetteer.places()}
        types = {t.id for t in vocabulary.incident_types()}
        today = datetime.now(UTC).date()
        opened: Counter[str] = Counter()
        openable = set(generated.openable)
        assert len(openable) > 0.8 * RECORDS
        for testimony_id in sorted(openable):
            testimony = db.session.get(StoredTestimony, testimony_id)
            view = open_record(reviewer, testimony, {Part.CONTENT, Part.ATTACHMENTS}, config=app.config,
                               purpose=PURPOSE)
            language = view.language or ""
            opened[language] += 1
            assert view.narrative and in_script(view.narrative, language), (language, view.narrative)
            note = view.details["referral"]["note"]
            assert not note or in_script(note, language)
            assert view.incidents
            for incident in view.incidents:
                document = incident.details
                assert incident.type in types and in_script(document["description"], language)
                place = places[document["place"]["id"]]
                assert incident.region == place.region
                assert not incident_problems(_incident_input(incident.type, document), today=today)
            db.session.commit()
        assert set(opened) == {"hy", "ru", "en", "az"}

        # Every attachment of a record the reviewer may open decrypts to what the generator meant to store.
        assert generated.counts["attachments"] == len(generated.attachments) > 0
        assert {a.media_type for a in generated.attachments} == {"image/jpeg", "image/png", "application/pdf"}
        checked = 0
        for meant in generated.attachments:
            if meant.testimony_id not in openable:
                continue
            testimony = db.session.get(StoredTestimony, meant.testimony_id)
            stored = db.session.get(Attachment, meant.attachment_id)
            got = open_attachment(reviewer, testimony, stored, config=app.config, purpose=PURPOSE)
            content = b"".join(got.chunks)
            assert (got.medium, got.media_type, got.size) == (meant.medium, meant.media_type, meant.size)
            assert len(content) == meant.size and hashlib.sha256(content).hexdigest() == meant.sha256
            assert 3 * 1024 <= meant.size <= 200 * 1024
            db.session.commit()
            checked += 1
        assert checked > 0.8 * RECORDS * 0.2

        # Withdrawals went through record_withdrawal: only a withdrawal for another purpose leaves a record open.
        kinds = Counter(generated.withdrawals.values())
        assert set(kinds) == {"whole", "documentation", "media", "erasure"}
        assert sum(kinds.values()) == int(RECORDS * generate.WITHDRAWN)
        for testimony_id, kind in generated.withdrawals.items():
            testimony = db.session.get_one(StoredTestimony, testimony_id)
            assert documentation_allowed(testimony_id).allowed is (kind == "media")
            if kind == "erasure":
                assert testimony.data_key.destroyed_at is not None and testimony.narrative is None
                assert all(a.details is None for a in testimony.attachments)
            if kind == "media":
                view = open_record(reviewer, testimony, {Part.CONTENT}, config=app.config, purpose=PURPOSE)
                assert view.narrative, f"record {testimony_id} does not open after a withdrawal of media only"
            else:
                with pytest.raises(AccessRefused):
                    open_record(reviewer, testimony, {Part.CONTENT}, config=app.config, purpose=PURPOSE)
            db.session.rollback()


def test_every_place_of_the_gazetteer_occurs_and_towns_more_than_villages() -> None:
    picker = generate.PlacePicker()
    rng = random.Random(5)
    drawn = Counter(picker.pick(rng, "shelling").id for _ in range(30_000))
    assert set(drawn) == {p.id for p in gazetteer.places()}
    assert drawn["stepanakert"] > 3 * drawn["karintak"]
    at_checkpoints = Counter(picker.pick(rng, "checkpoint_detention").kind for _ in range(2_000))
    assert at_checkpoints["checkpoint"] + at_checkpoints["road"] + at_checkpoints["corridor"] > 1_000


def test_the_command_line_fills_a_fresh_instance_and_reports_it(tmp_path: Path) -> None:
    status = generate.main(["--db", "sqlite", "--records", "120", "--seed", "3", "--attachment-share", "0.5",
                            "--results-dir", str(tmp_path)])
    assert status == generate.EXIT_OK
    (markdown,) = tmp_path.glob("generate-*.md")
    (data,) = tmp_path.glob("generate-*.json")
    report = json.loads(data.read_text(encoding="utf-8"))
    figures = report["figures"]
    assert figures["records"] == 120 and sum(figures["languages"].values()) == 120
    assert figures["gazetteer_places"] == len(gazetteer.places()) >= figures["places_touched"] > 10
    assert figures["counts"]["attachments"] >= 60 and figures["counts"]["attachment_bytes"] > 0
    assert set(figures["seconds"]) >= {"records", "attachments", "withdrawals", "total"}
    assert report["settings"]["database"] == "sqlite" and report["machine"]["cpu_model"]
    text = markdown.read_text(encoding="utf-8")
    assert "| hy | 84 | 70.0% |" in text and "records/s" in text
