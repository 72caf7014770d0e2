"""Migration discipline, after SecureDrop's tests/test_alembic.py, on SQLite and on PostgreSQL:
one head; the schema at head equals the models; every revision upgrades and downgrades; and going up then down
leaves the schema exactly as it was."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from intake.all_models import metadata
from intake.core import migrate
from intake.core.db import make_engine
from tests.conftest import POSTGRES_URL, missing, postgres_reachable


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'migrations.sqlite3'}")
        yield engine
        engine.dispose()
        return
    problem = postgres_reachable(POSTGRES_URL)
    if problem:
        missing("postgresql", problem)
    name = f"intake_migrations_{os.getpid()}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = make_engine(sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False))
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _revisions_base_to_head() -> list[str]:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions("base", "heads")))]


def _triggers(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
        else:
            rows = conn.exec_driver_sql(
                "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal"
            )
        return sorted(f"{name}: {definition}" for name, definition in rows)


def schema_snapshot(engine: sa.Engine) -> dict[str, Any]:
    """Everything about the schema that a migration can change, in comparable form (triggers included)."""
    inspector = sa.inspect(engine)
    snapshot: dict[str, Any] = {}
    triggers = _triggers(engine)
    if triggers:
        snapshot["<triggers>"] = triggers
    for table in sorted(inspector.get_table_names()):
        if table == "alembic_version":
            continue
        snapshot[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default"))) for c in inspector.get_columns(table)
            ],
            "pk": inspector.get_pk_constraint(table),
            "fks": sorted(str(fk) for fk in inspector.get_foreign_keys(table)),
            "indexes": sorted(str(ix) for ix in inspector.get_indexes(table)),
            "uniques": sorted(str(u) for u in inspector.get_unique_constraints(table)),
            "checks": sorted(str(c) for c in inspector.get_check_constraints(table)),
        }
    return snapshot


def test_there_is_exactly_one_head() -> None:
    assert len(migrate.head_revisions()) == 1


def test_schema_at_head_matches_the_models(empty_engine: sa.Engine) -> None:
    migrate.upgrade(empty_engine)
    with empty_engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert differences == [], "the models and the migrations disagree; write a migration"
    assert migrate.is_at_head(empty_engine)


def test_every_revision_upgrades_and_downgrades(empty_engine: sa.Engine) -> None:
    previous = "base"
    for revision in _revisions_base_to_head():
        before = schema_snapshot(empty_engine)
        migrate.upgrade(empty_engine, revision)
        after_upgrade = schema_snapshot(empty_engine)
        assert after_upgrade != before, f"{revision} changed nothing a snapshot can see"
        migrate.downgrade(empty_engine, previous)
        assert schema_snapshot(empty_engine) == before, f"downgrading {revision} did not restore the schema"
        migrate.upgrade(empty_engine, revision)
        assert schema_snapshot(empty_engine) == after_upgrade, f"re-applying {revision} gave another schema"
        previous = revision
    migrate.downgrade(empty_engine, "base")
    assert schema_snapshot(empty_engine) == {}


def test_rebuilding_a_table_in_a_migration_keeps_the_rows_that_point_at_it(empty_engine: sa.Engine) -> None:
    from alembic.operations import Operations

    migrate.upgrade(empty_engine)
    with empty_engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO accounts (id, username, totp_last_counter, is_active, auth_epoch, created_at)"
                             " VALUES (1, 'amira', 0, true, 1, CURRENT_TIMESTAMP)")
        conn.exec_driver_sql("INSERT INTO account_roles (account_id, role) VALUES (1, 'interviewer')")
    with migrate.connection_for_migrations(empty_engine) as conn:
        operations = Operations(MigrationContext.configure(conn))
        if empty_engine.dialect.name == "sqlite":  # SQLite cannot alter a column: the table is copied and dropped
            with operations.batch_alter_table("accounts", recreate="always") as batch:
                batch.alter_column("locale", type_=sa.String(16))
        else:
            operations.alter_column("accounts", "locale", type_=sa.String(16))
    with empty_engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM account_roles").scalar() == 1
        if empty_engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # switched back on


def test_downgrading_below_the_envelope_refuses_while_data_keys_exist(empty_engine: sa.Engine) -> None:
    migrate.upgrade(empty_engine)
    with empty_engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO data_keys (id, owner, kek_version, wrapped, created_at) "
                             "VALUES (7, 'account', 1, :wrapped, CURRENT_TIMESTAMP)"), {"wrapped": b"\x00"})
    with pytest.raises(RuntimeError, match="Refusing to downgrade below 0003"):
        migrate.downgrade(empty_engine, "0002")
    assert migrate.is_at_head(empty_engine)


def test_events_recorded_before_the_chain_are_chained_in_order_and_verify(empty_engine: sa.Engine) -> None:
    from intake.core.audit.note import Signer
    from intake.core.audit.verify import verify_log

    migrate.upgrade(empty_engine, "0003")
    with empty_engine.begin() as conn:
        for action, actor, targets, details, reason in [
            ("login_failed", None, "[]", '{"failures": 1}', None),
            ("login", 3, "[3]", "{}", None),
            ("roles_changed", 1, "[3]", '{"roles": ["reviewer"], "was": ["interviewer"]}', "Ротация смены"),
        ]:
            conn.execute(sa.text(
                "INSERT INTO audit_events (occurred_at, actor_id, actor_roles, action, target_type, target_ids, "
                "reason, details) VALUES (CURRENT_TIMESTAMP, :actor, 'admin', :action, 'account', :targets, :reason, "
                ":details)"), {"actor": actor, "action": action, "targets": targets, "details": details,
                               "reason": reason})
    migrate.upgrade(empty_engine)
    with empty_engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT seq, action, actor_id, details FROM audit_events ORDER BY seq").all()
        assert [(r[0], r[1], r[2]) for r in rows] == [(1, "login_failed", None), (2, "login", 3),
                                                      (3, "roles_changed", 1)]
        assert rows[2][3] == '{"roles":["reviewer"],"was":["interviewer"]}'  # canonical from now on
        report = verify_log(conn, verifiers=[Signer("test.invalid/audit", bytes(32)).verifier],
                            origin="test.invalid/audit")
    assert report.ok and report.events == 3, report.problems
    with empty_engine.begin() as conn, pytest.raises(sa.exc.DatabaseError, match="append-only"):
        conn.exec_driver_sql("UPDATE audit_events SET actor_id = 9")


def test_testimonies_from_before_the_wizard_get_a_revision_and_consent_blocks_a_downgrade(
        empty_engine: sa.Engine) -> None:
    migrate.upgrade(empty_engine, "0004")
    with empty_engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO data_keys (id, owner, kek_version, wrapped, created_at) "
                             "VALUES (7, 'testimony', 1, :wrapped, CURRENT_TIMESTAMP)"), {"wrapped": b"\x00"})
        conn.execute(sa.text("INSERT INTO data_keys (id, owner, kek_version, wrapped, created_at) "
                             "VALUES (8, 'person', 1, :wrapped, CURRENT_TIMESTAMP)"), {"wrapped": b"\x00"})
        conn.execute(sa.text("INSERT INTO persons (id, pseudonym, data_key_id, created_at) "
                             "VALUES (1, 'KB-0000-00', 8, CURRENT_TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO testimonies (id, pseudonym, data_key_id, status, created_at, updated_at) "
                             "VALUES (1, 'KB-0000-00', 7, 'draft', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
    migrate.upgrade(empty_engine)
    with empty_engine.begin() as conn:
        assert conn.execute(sa.text("SELECT revision FROM testimonies")).scalar() == 1
        conn.execute(sa.text(
            "INSERT INTO consent_versions (id, testimony_id, number, recorded_at, script_language, script_hash, "
            "method, items, capacity_confirmed, voluntariness_confirmed, witness_present, interpreter_present, "
            "is_minor, guardian_consented, child_assented, best_interests_given, grants, media, exclusions, "
            "follow_up_permitted) VALUES (1, 1, 1, CURRENT_TIMESTAMP, 'en', :hash, 'written', '[]', true, true, "
            "false, false, false, false, false, false, '{}', '[]', '[]', false)"), {"hash": "0" * 64})
    with pytest.raises(RuntimeError, match="consent versions exist"):
        migrate.downgrade(empty_engine, "0004")
    assert migrate.is_at_head(empty_engine)
