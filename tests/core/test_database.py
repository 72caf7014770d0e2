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
