"""The embedded database runs in WAL mode with foreign keys enforced; both databases use the naming convention."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from intake.all_models import metadata
from intake.core.db import db, make_engine


def test_sqlite_runs_in_wal_mode_with_foreign_keys_enforced(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        conn.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("CREATE TABLE child (parent_id INTEGER REFERENCES parent (id))")
        with pytest.raises(sa.exc.IntegrityError):
            conn.exec_driver_sql("INSERT INTO child (parent_id) VALUES (42)")
    engine.dispose()


def test_a_row_pointing_at_nothing_is_refused_on_both_databases(app: Flask) -> None:
    with app.app_context():
        with pytest.raises(sa.exc.IntegrityError):
            db.session.execute(sa.text("INSERT INTO account_roles (account_id, role) VALUES (999, 'admin')"))
        db.session.rollback()


def test_every_constraint_and_index_is_named_by_the_convention() -> None:
    for table in metadata.tables.values():
        for constraint in table.constraints:
            assert constraint.name and str(constraint.name).split("_")[0] in {"pk", "fk", "uq", "ck"}, constraint
        for index in table.indexes:
            assert str(index.name).startswith("ix_"), index


def test_sqlite_overwrites_deleted_content(tmp_path: Path) -> None:
    """Shredded keys and ciphertexts must not linger in the free space of a page that other rows still use."""
    path = tmp_path / "x.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    marker = b"wrapped-key-bytes-" * 3
    with engine.begin() as conn:
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
        conn.exec_driver_sql("CREATE TABLE k (id INTEGER PRIMARY KEY, wrapped BLOB, other TEXT)")
        for i in range(20):
            conn.exec_driver_sql("INSERT INTO k (wrapped, other) VALUES (?, ?)",
                                 (marker if i == 5 else b"x" * len(marker), "y" * 10))
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE k SET wrapped = NULL WHERE id = 6")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    assert marker not in path.read_bytes()


def test_a_transaction_cache_lasts_exactly_as_long_as_its_transaction(app: Flask) -> None:
    from intake.consents import operations as consents
    from intake.core.db import transaction_cache

    with app.app_context():
        db.session.execute(sa.text("SELECT 1"))
        transaction_cache(db.session, "example")["answer"] = 42
        with db.session.begin_nested():  # a savepoint is still the same transaction
            assert transaction_cache(db.session, "example") == {"answer": 42}
        assert transaction_cache(db.session, "other") == {}
        db.session.commit()
        db.session.execute(sa.text("SELECT 1"))
        assert transaction_cache(db.session, "example") == {}  # a new transaction asks again
        transaction_cache(db.session, consents.DECISIONS_KEY)[1] = True
        consents.forget_decisions()
        assert transaction_cache(db.session, consents.DECISIONS_KEY) == {}
        db.session.rollback()


def test_the_primary_kek_version_is_read_again_in_each_transaction(app: Flask) -> None:
    from intake.core.crypto.datakeys import primary_kek_version
    from intake.core.crypto.models import KekVersion

    with app.app_context():
        first = primary_kek_version()
        db.session.commit()
        db.session.execute(sa.update(KekVersion).where(KekVersion.version == first).values(state="active"))
        db.session.add(KekVersion(version=first + 1, state="primary", added_at=sa.func.now()))
        db.session.commit()
        assert primary_kek_version() == first + 1
        db.session.rollback()
