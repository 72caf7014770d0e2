"""Schema migrations with alembic; the revisions live in the top-level `migrations/` folder."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from intake.core.db import write_intent

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


@contextmanager
def connection_for_migrations(engine: Engine) -> Iterator[Connection]:
    """A connection in one write transaction, fit for schema changes.

    On SQLite, foreign keys are switched off for the duration (it can only be done outside a transaction): a
    migration that rebuilds a table (alembic's batch mode copies it and drops the original) would otherwise
    cascade the drop into every table pointing at it and delete their rows. Afterwards the foreign keys are
    checked, and a violation undoes the whole migration.
    """
    sqlite = engine.dialect.name == "sqlite"
    token = write_intent.set(True)
    try:
        with engine.connect() as connection:
            raw = connection.connection.dbapi_connection
            if sqlite and raw is not None:
                raw.execute("PRAGMA foreign_keys=OFF")
            try:
                with connection.begin():
                    yield connection
                    if sqlite:
                        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise RuntimeError(f"the migration left rows pointing at nothing: {broken[:5]}")
            finally:
                if sqlite and raw is not None:
                    raw.execute("PRAGMA foreign_keys=ON")
    finally:
        write_intent.reset(token)


def upgrade(engine: Engine, revision: str = "head") -> None:
    cfg = alembic_config(engine)
    with connection_for_migrations(engine) as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    cfg = alembic_config(engine)
    with connection_for_migrations(engine) as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


def head_revisions() -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revisions(engine: Engine) -> tuple[str, ...]:
    with engine.connect() as connection:
        return tuple(MigrationContext.configure(connection).get_current_heads())


def is_at_head(engine: Engine) -> bool:
    return set(current_revisions(engine)) == set(head_revisions())
