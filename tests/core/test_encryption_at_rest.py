"""Encrypted fields, attachments and shredding, on SQLite and PostgreSQL.

- The inventory: every column of a table that holds content or identity is sealed or declared clear with a reason;
  every sealed column stores ciphertext bound to its place, and a ciphertext moved elsewhere fails to open.
- Attachments: the type comes from the content, the digest from the original, the size limit refuses, nothing is
  kept of a refused file, and the stored stream detects tampering, in the database and in the files store.
- Shredding: one transaction makes the testimony or the identity unreadable, reads return a tombstone, and a shred
  that rolls back loses nothing.
"""

from __future__ import annotations

import hashlib
import io
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake.all_models import metadata
from intake.core.crypto.envelope import Unreadable, field_data_key_id
from intake.core.crypto.fields import CLEAR_COLUMNS, CONTENT_TABLES, SEALED_FIELDS, Tombstone
from intake.core.crypto.models import DataKey
from intake.core.crypto.stream import CHUNK_SIZE, encrypted_chunk_size
from intake.core.db import db
from intake.identities import operations as identity_ops
from intake.identities.models import Person
from intake.testimonies import operations as testimony_ops
from intake.testimonies.models import Attachment, AttachmentChunk
from intake.testimonies.models import Testimony as StoredTestimony

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
# Binary columns outside the inventory, and why they are not content.
NOT_CONTENT_BINARY = {
    ("data_keys", "wrapped"): "a data key wrapped by a KEK",
    ("attachments", "stream_header"): "stream format, chunk size and salt",
    ("audit_events", "prev_hash"): "the previous event's SHA-256",
    ("audit_events", "hash"): "the event's SHA-256",
    ("audit_checkpoints", "root_hash"): "a Merkle tree root",
    ("audit_checkpoints", "frontier"): "Merkle subtree roots",
}


@pytest.fixture
def store_app(make_app: Callable[..., Flask], tmp_path: Path) -> Flask:
    return make_app(BLOB_PATH=str(tmp_path / "blobs"), ATTACHMENT_MAX_BYTES=300_000)


def new_record(narrative: str = "Ստեփանակերտ, 2020 թ. հոկտեմբեր", name: str = "Անի Հակոբյան") -> StoredTestimony:
    person = identity_ops.register_person({"name": name, "birth_year": 1984}, actor=None, prefix="KB")
    return testimony_ops.create_testimony(pseudonym=person.pseudonym, interviewer=None, language="hy",
                                          region="Syunik", narrative=narrative)


def config_for(app: Flask, storage: str) -> dict[str, Any]:
    return {**app.config, "BLOB_STORAGE": storage}


# ---------------------------------------------------------------------------------------------------------------
# The inventory


def test_every_column_of_a_content_table_is_sealed_or_declared_clear() -> None:
    sealed = {(f.table, f.column) for f in SEALED_FIELDS}
    for table_name in CONTENT_TABLES:
        table = metadata.tables[table_name]
        for column in table.columns:
            place = (table_name, column.name)
            assert place in sealed or place in CLEAR_COLUMNS, f"{table_name}.{column.name} is neither sealed nor " \
                "declared clear in intake/core/crypto/fields.py"
    for table_name, column_name in CLEAR_COLUMNS:
        assert column_name in metadata.tables[table_name].columns, f"{table_name}.{column_name} no longer exists"


def test_every_binary_column_anywhere_is_in_the_inventory_or_is_key_material() -> None:
    sealed = {(f.table, f.column) for f in SEALED_FIELDS}
    for table in metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, sa.LargeBinary):
                place = (table.name, column.name)
                assert place in sealed or place in NOT_CONTENT_BINARY, f"{table.name}.{column.name} is binary but " \
                    "not in the encrypted-field inventory"
    for field in SEALED_FIELDS:
        column = metadata.tables[field.table].columns[field.column]
        assert column.info.get("sealed") is True, f"{field.table}.{field.column} is not declared with sealed_column"


def test_sealed_columns_store_ciphertext_bound_to_the_records_own_key(app: Flask) -> None:
    with app.app_context():
        testimony = new_record(narrative="Ракетный удар по рынку")
        attachment = testimony_ops.store_attachment(testimony, io.BytesIO(JPEG + b"x" * 1000), filename="a.jpg",
                                                    actor=None, config=app.config)
        db.session.commit()
        row = db.session.execute(sa.text(
            "SELECT t.narrative, t.data_key_id, p.identity, p.data_key_id FROM testimonies t "
            "JOIN persons p ON p.pseudonym = t.pseudonym WHERE t.id = :id"), {"id": testimony.id}).one()
        narrative, testimony_key, identity, person_key = (bytes(row[0]), row[1], bytes(row[2]), row[3])
        details = bytes(db.session.scalar(sa.text("SELECT details FROM attachments WHERE id = :id"),
                                          {"id": attachment.id}))
        chunks = [bytes(c) for c in db.session.scalars(sa.text(
            "SELECT data FROM attachment_chunks WHERE attachment_id = :id ORDER BY idx"), {"id": attachment.id})]
    assert testimony_key != person_key
    assert field_data_key_id(narrative) == testimony_key and field_data_key_id(details) == testimony_key
    assert field_data_key_id(identity) == person_key
    assert "Ракетный".encode() not in narrative and "Հակոբյան".encode() not in identity
    assert b"a.jpg" not in details and b"image/jpeg" not in details
    assert len(chunks) == 1 and len(chunks[0]) == encrypted_chunk_size(CHUNK_SIZE)
    assert b"JFIF" not in chunks[0] and b"x" * 16 not in chunks[0]


def test_a_ciphertext_moved_to_another_row_or_field_fails_to_open(app: Flask) -> None:
    with app.app_context():
        first, second = new_record(narrative="first"), new_record(narrative="second")
        attachment = testimony_ops.store_attachment(first, io.BytesIO(JPEG), filename="a.jpg", actor=None,
                                                    config=app.config)
        db.session.commit()
        first_id, second_id, attachment_id = first.id, second.id, attachment.id
        # Another row of the same table (under another record's data key).
        db.session.execute(sa.text("UPDATE testimonies SET narrative = (SELECT narrative FROM testimonies WHERE id ="
                                   " :a) WHERE id = :b"), {"a": first_id, "b": second_id})
        # Another field under the same data key: the narrative of `first` put into its attachment's details.
        db.session.execute(sa.text("UPDATE attachments SET details = (SELECT narrative FROM testimonies WHERE id = :a)"
                                   " WHERE id = :b"), {"a": first_id, "b": attachment_id})
        db.session.commit()
        db.session.expire_all()
        assert testimony_ops.read_narrative(db.session.get(StoredTestimony, first_id)) == "first"
        with pytest.raises(Unreadable):
            testimony_ops.read_narrative(db.session.get(StoredTestimony, second_id))
        with pytest.raises(Unreadable):
            testimony_ops.read_attachment_details(db.session.get(Attachment, attachment_id))


def test_a_data_key_moved_to_another_record_fails_to_unwrap(app: Flask) -> None:
    with app.app_context():
        first, second = new_record(narrative="first"), new_record(narrative="second")
        db.session.commit()
        ids = (first.data_key_id, second.data_key_id, second.id)
        db.session.execute(sa.text("UPDATE data_keys SET wrapped = (SELECT wrapped FROM data_keys WHERE id = :a) "
                                   "WHERE id = :b"), {"a": ids[0], "b": ids[1]})
        db.session.commit()
        db.session.expire_all()
        with pytest.raises(Unreadable):
            testimony_ops.read_narrative(db.session.get(StoredTestimony, ids[2]))


# ---------------------------------------------------------------------------------------------------------------
# Attachments


@pytest.mark.parametrize("storage", ["database", "files"])
def test_an_attachment_round_trips_with_the_digest_of_the_original(store_app: Flask, storage: str) -> None:
    content = JPEG + bytes(range(256)) * 700  # three chunks
    with store_app.app_context():
        testimony = new_record()
        attachment = testimony_ops.store_attachment(testimony, io.BytesIO(content), filename="shelter.jpg",
                                                    actor=None, config=config_for(store_app, storage), graphic=True)
        db.session.commit()
        attachment_id = attachment.id
    with store_app.app_context():
        attachment = db.session.get(Attachment, attachment_id)
        assert attachment.storage == storage and attachment.medium == "photo" and attachment.graphic
        details = testimony_ops.read_attachment_details(attachment)
        assert details["digest"] == {"algorithm": "sha-256", "value": hashlib.sha256(content).hexdigest()}
        assert details["size"] == len(content) and details["filename"] == "shelter.jpg"
        assert b"".join(testimony_ops.attachment_content(attachment, store_app.config)) == content
        assert attachment.stored_bytes == 3 * encrypted_chunk_size(CHUNK_SIZE)


def test_the_type_comes_from_the_content_not_the_name(store_app: Flask) -> None:
    with store_app.app_context():
        testimony = new_record()
        png = testimony_ops.store_attachment(testimony, io.BytesIO(PNG), filename="report.pdf", actor=None,
                                             config=store_app.config)
        pdf = testimony_ops.store_attachment(testimony, io.BytesIO(PDF), filename="photo.jpg", actor=None,
                                             config=store_app.config)
        assert (png.medium, testimony_ops.read_attachment_details(png)["media_type"]) == ("photo", "image/png")
        assert (pdf.medium, testimony_ops.read_attachment_details(pdf)["media_type"]) == ("document",
                                                                                           "application/pdf")


def _nothing_stored(app: Flask, blobs: Path) -> None:
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Attachment)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AttachmentChunk)) == 0
    assert not [p for p in blobs.rglob("*") if p.is_file()]


@pytest.mark.parametrize("storage", ["database", "files"])
@pytest.mark.parametrize("content", [
    b"#!/bin/sh\nrm -rf /\n",
    b"<html><script>alert(1)</script></html>",
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff",
    b"",
], ids=["script", "html", "svg", "exe", "empty"])
def test_an_unrecognised_file_is_refused_with_a_clear_message_and_nothing_kept(
    store_app: Flask, tmp_path: Path, storage: str, content: bytes
) -> None:
    with store_app.app_context():
        testimony = new_record()
        db.session.commit()
        with pytest.raises(testimony_ops.AttachmentRefused) as refused:
            testimony_ops.store_attachment(testimony, io.BytesIO(content), filename="photo.jpg", actor=None,
                                           config=config_for(store_app, storage))
        db.session.rollback()
    assert "This kind of file is not accepted" in str(refused.value.message)
    _nothing_stored(store_app, tmp_path / "blobs")


@pytest.mark.parametrize("storage", ["database", "files"])
def test_a_file_over_the_limit_is_refused_and_nothing_of_it_kept(store_app: Flask, tmp_path: Path,
                                                                 storage: str) -> None:
    with store_app.app_context():
        testimony = new_record()
        db.session.commit()
        with pytest.raises(testimony_ops.AttachmentRefused) as refused:
            testimony_ops.store_attachment(testimony, io.BytesIO(JPEG + b"\x00" * 400_000), filename="big.jpg",
                                           actor=None, config=config_for(store_app, storage))
        db.session.rollback()
    assert "larger than the limit" in str(refused.value.message)
    _nothing_stored(store_app, tmp_path / "blobs")


def test_the_files_store_uses_generated_names_private_files_and_equal_chunks(store_app: Flask,
                                                                             tmp_path: Path) -> None:
    with store_app.app_context():
        testimony = new_record()
        attachment = testimony_ops.store_attachment(testimony, io.BytesIO(JPEG + b"y" * 70_000),
                                                    filename="Anna_Petrosyan_passport.jpg", actor=None,
                                                    config=config_for(store_app, "files"))
        db.session.commit()
        name = attachment.blob_name
    [path] = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert path.name == name and "Petrosyan" not in str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_size == 2 * encrypted_chunk_size(CHUNK_SIZE)
    assert b"yyyyyyyy" not in path.read_bytes()


def test_a_rolled_back_upload_leaves_no_file(store_app: Flask, tmp_path: Path) -> None:
    with store_app.app_context():
        testimony = new_record()
        db.session.commit()
        testimony_ops.store_attachment(testimony, io.BytesIO(JPEG), filename="a.jpg", actor=None,
                                       config=config_for(store_app, "files"))
        assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
        db.session.rollback()
    _nothing_stored(store_app, tmp_path / "blobs")


def _stored_chunks(attachment_id: int) -> list[bytes]:
    return [bytes(c) for c in db.session.scalars(
        sa.select(AttachmentChunk.data).where(AttachmentChunk.attachment_id == attachment_id)
        .order_by(AttachmentChunk.idx))]


@pytest.mark.parametrize("tamper", ["swap", "truncate", "flip", "splice"])
def test_a_tampered_stored_stream_is_refused(store_app: Flask, tamper: str) -> None:
    content = JPEG + b"z" * (2 * CHUNK_SIZE)
    with store_app.app_context():
        testimony = new_record()
        first = testimony_ops.store_attachment(testimony, io.BytesIO(content), filename="a.jpg", actor=None,
                                               config=store_app.config)
        other = testimony_ops.store_attachment(testimony, io.BytesIO(content), filename="b.jpg", actor=None,
                                               config=store_app.config)
        db.session.commit()
        chunks, others = _stored_chunks(first.id), _stored_chunks(other.id)
        table = AttachmentChunk.__table__
        if tamper == "swap":
            changes = {0: chunks[1], 1: chunks[0]}
        elif tamper == "flip":
            changes = {1: chunks[1][:100] + bytes([chunks[1][100] ^ 1]) + chunks[1][101:]}
        elif tamper == "splice":
            changes = {1: others[1]}
        else:
            changes = {}
            db.session.execute(table.delete().where(table.c.attachment_id == first.id, table.c.idx == 2))
        for index, data in changes.items():
            db.session.execute(table.update().where(table.c.attachment_id == first.id, table.c.idx == index)
                               .values(data=data))
        db.session.commit()
        with pytest.raises(Unreadable):
            b"".join(testimony_ops.attachment_content(db.session.get(Attachment, first.id), store_app.config))
        assert b"".join(testimony_ops.attachment_content(db.session.get(Attachment, other.id),
                                                         store_app.config)) == content


# ---------------------------------------------------------------------------------------------------------------
# Shredding


@pytest.mark.parametrize("storage", ["database", "files"])
def test_shredding_a_testimony_leaves_a_tombstone_in_one_transaction(store_app: Flask, tmp_path: Path,
                                                                     storage: str) -> None:
    with store_app.app_context():
        testimony = new_record(narrative="Մեզ բաժանեցին անցակետում")
        attachment = testimony_ops.store_attachment(testimony, io.BytesIO(JPEG), filename="a.jpg", actor=None,
                                                    config=config_for(store_app, storage))
        db.session.commit()
        testimony_id, attachment_id, key_id = testimony.id, attachment.id, testimony.data_key_id
        pseudonym = testimony.pseudonym

        testimony_ops.shred_testimony(testimony, reason="survivor asked for erasure", actor=None,
                                      config=store_app.config)
        db.session.commit()
    with store_app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        read = testimony_ops.read_narrative(testimony)
        assert isinstance(read, Tombstone) and read.shredded_at is not None and not read
        attachment = db.session.get(Attachment, attachment_id)
        assert isinstance(testimony_ops.read_attachment_details(attachment), Tombstone)
        assert isinstance(testimony_ops.attachment_content(attachment, store_app.config), Tombstone)
        key = db.session.get(DataKey, key_id)
        assert key.wrapped is None and key.kek_version is None and key.destroyed_at is not None
        assert testimony.narrative is None and attachment.details is None
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AttachmentChunk)) == 0
        # The person's identity is a separate key and stays readable.
        person = db.session.scalar(sa.select(Person).where(Person.pseudonym == pseudonym))
        assert identity_ops.read_identity(person)["name"] == "Անի Հակոբյան"
        actions = list(db.session.scalars(sa.text("SELECT action FROM audit_events ORDER BY seq")))
        assert actions[-1] == "record_shredded"
    assert not [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]


def test_a_shred_that_rolls_back_loses_nothing(store_app: Flask, tmp_path: Path) -> None:
    content = JPEG + b"keep me" * 10
    with store_app.app_context():
        testimony = new_record(narrative="still here")
        attachment = testimony_ops.store_attachment(testimony, io.BytesIO(content), filename="a.jpg", actor=None,
                                                    config=config_for(store_app, "files"))
        db.session.commit()
        testimony_id, attachment_id = testimony.id, attachment.id
        testimony_ops.shred_testimony(testimony, reason="mistake", actor=None, config=store_app.config)
        db.session.rollback()
    with store_app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        assert testimony_ops.read_narrative(testimony) == "still here"
        attachment = db.session.get(Attachment, attachment_id)
        assert b"".join(testimony_ops.attachment_content(attachment, store_app.config)) == content


def test_shredding_an_identity_keeps_the_testimony_and_forgets_the_name(app: Flask) -> None:
    with app.app_context():
        testimony = new_record(narrative="what I saw", name="Սոնա Մելքոնյան")
        person = db.session.scalar(sa.select(Person).where(Person.pseudonym == testimony.pseudonym))
        db.session.commit()
        assert identity_ops.possible_previous_interviews("Сона Мелконян", 1984, actor=None) == [person]
        identity_ops.shred_identity(person, reason="survivor asked for erasure", actor=None)
        db.session.commit()
        assert isinstance(identity_ops.read_identity(person), Tombstone)
        assert person.identity is None and person.name_tag is None
        assert testimony_ops.read_narrative(testimony) == "what I saw"
        assert identity_ops.possible_previous_interviews("Սոնա Մելքոնյան", 1984, actor=None) == []


def test_an_anonymous_person_has_no_identity_and_no_tag(app: Flask) -> None:
    with app.app_context():
        person = identity_ops.register_person(None, actor=None, prefix="KB")
        db.session.commit()
        assert identity_ops.read_identity(person) is None and person.name_tag is None and person.identity is None
        assert person.pseudonym.startswith("KB-") and len(person.pseudonym) == 10


def test_a_refusal_is_told_in_the_readers_language(store_app: Flask) -> None:
    with store_app.test_request_context("/", headers={"Accept-Language": "hy"}):
        testimony = new_record()
        with pytest.raises(testimony_ops.AttachmentRefused) as refused:
            testimony_ops.store_attachment(testimony, io.BytesIO(b"plain text"), filename="a.jpg", actor=None,
                                           config=store_app.config)
        db.session.rollback()
        assert "Այս տեսակի ֆայլն ընդունելի չէ" in str(refused.value.message)


def test_the_length_of_a_sealed_identity_or_narrative_says_little(app: Flask) -> None:
    with app.app_context():
        short = new_record(narrative="Yes.", name="Ani Ho")
        long = new_record(narrative="We left at night " * 8, name="Anahit Ter-Hovhannisyan Melkonyan")
        db.session.commit()
        rows = db.session.execute(sa.text(
            "SELECT length(t.narrative), length(p.identity) FROM testimonies t JOIN persons p "
            "ON p.pseudonym = t.pseudonym WHERE t.id IN (:a, :b) ORDER BY t.id"), {"a": short.id, "b": long.id}).all()
        assert rows[0] == rows[1]  # padded to the same 256-byte bucket
        assert testimony_ops.read_narrative(short) == "Yes."
        person = db.session.scalar(sa.select(Person).where(Person.pseudonym == long.pseudonym))
        assert identity_ops.read_identity(person)["name"] == "Anahit Ter-Hovhannisyan Melkonyan"


def _blob_files(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]


def test_savepoints_neither_lose_a_committed_file_nor_keep_a_rolled_back_one(store_app: Flask,
                                                                               tmp_path: Path) -> None:
    content = JPEG + b"savepoint" * 10
    files = config_for(store_app, "files")
    with store_app.app_context():
        testimony = new_record()
        kept = testimony_ops.store_attachment(testimony, io.BytesIO(content), filename="a.jpg", actor=None,
                                              config=files)
        with db.session.begin_nested():  # an unrelated savepoint, released
            pass
        db.session.begin_nested().rollback()  # an unrelated savepoint, rolled back
        savepoint = db.session.begin_nested()
        testimony_ops.store_attachment(testimony, io.BytesIO(content), filename="b.jpg", actor=None, config=files)
        assert len(_blob_files(tmp_path)) == 2
        savepoint.rollback()  # the second upload goes, with its file
        assert len(_blob_files(tmp_path)) == 1
        db.session.commit()
        kept_id = kept.id
    with store_app.app_context():
        attachment = db.session.get(Attachment, kept_id)
        assert b"".join(testimony_ops.attachment_content(attachment, store_app.config)) == content
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Attachment)) == 1


def test_a_shred_undone_by_a_savepoint_or_by_the_outer_transaction_deletes_no_file(store_app: Flask,
                                                                                    tmp_path: Path) -> None:
    content = JPEG + b"keep" * 10
    with store_app.app_context():
        testimony = new_record()
        attachment = testimony_ops.store_attachment(testimony, io.BytesIO(content), filename="a.jpg", actor=None,
                                                    config=config_for(store_app, "files"))
        db.session.commit()
        testimony_id, attachment_id = testimony.id, attachment.id

        savepoint = db.session.begin_nested()
        testimony_ops.shred_testimony(testimony, reason="test", actor=None, config=store_app.config)
        savepoint.rollback()
        db.session.commit()
        assert len(_blob_files(tmp_path)) == 1

        testimony = db.session.get(StoredTestimony, testimony_id)
        with db.session.begin_nested():  # released, but the outer transaction then rolls back
            testimony_ops.shred_testimony(testimony, reason="test", actor=None, config=store_app.config)
        db.session.rollback()
        assert len(_blob_files(tmp_path)) == 1
    with store_app.app_context():
        attachment = db.session.get(Attachment, attachment_id)
        assert b"".join(testimony_ops.attachment_content(attachment, store_app.config)) == content


SCRIPTS = st.sampled_from([
    st.characters(min_codepoint=0x0531, max_codepoint=0x058F),  # Armenian
    st.characters(min_codepoint=0x0400, max_codepoint=0x04FF),  # Cyrillic
    st.sampled_from("abcçdeəfgğhxıijkqlmnoöprsştuüvyz ABCÇDEƏFGĞHXIİJKQLMNOÖPRSŞTUÜVYZ"),  # Azerbaijani Latin
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),  # English
])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_sealed_fields_round_trip_through_the_database(app: Flask, data: st.DataObject) -> None:
    alphabet = data.draw(SCRIPTS)
    narrative = data.draw(st.one_of(st.just(""), st.text(alphabet, max_size=300),
                                    st.text(alphabet, min_size=1, max_size=40).map(lambda t: t * 1000)))
    name = data.draw(st.text(alphabet, max_size=80))
    with app.app_context():
        testimony = new_record(narrative=narrative, name=name)
        db.session.commit()
        testimony_id = testimony.id
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        person = db.session.scalar(sa.select(Person).where(Person.pseudonym == testimony.pseudonym))
        assert testimony_ops.read_narrative(testimony) == narrative
        assert identity_ops.read_identity(person) == {"name": name, "birth_year": 1984}


def test_a_latin_name_with_two_readings_is_found_from_either_script(app: Flask) -> None:
    with app.app_context():
        latin = identity_ops.register_person({"name": "Cavad Aliyev", "birth_year": 1971}, actor=None, prefix="KB")
        cyrillic = identity_ops.register_person({"name": "Нарине Арутюнян", "birth_year": 1980}, actor=None,
                                                prefix="KB")
        db.session.commit()
        assert latin.name_tag and latin.other_name_tag and latin.name_tag != latin.other_name_tag
        assert cyrillic.other_name_tag is None  # one reading, one tag
        assert identity_ops.possible_previous_interviews("Джавад Алиев", 1971, actor=None) == [latin]
        assert identity_ops.possible_previous_interviews("Cavad Aliyev", 1971, actor=None) == [latin]
        assert identity_ops.possible_previous_interviews("Narine Arutyunyan", 1980, actor=None) == [cyrillic]
        identity_ops.shred_identity(latin, reason="erasure", actor=None)
        db.session.commit()
        assert latin.other_name_tag is None
        assert identity_ops.possible_previous_interviews("Джавад Алиев", 1971, actor=None) == []
