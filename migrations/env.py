"""Alembic environment. Called by `intake db ...`, by tests, or by plain `alembic -c migrations/alembic.ini`
with `-x url=...`. A connection handed over in ``config.attributes['connection']`` is used as it is."""

from __future__ import annotations

from alembic import context

from intake.all_models import metadata
from intake.core.db import UTCDateTime, make_engine
from intake.core.migrate import connection_for_migrations

config = context.config


def _render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Write the application's column types as plain SQLAlchemy types, so revisions never import the app."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_item=_render_item,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
        transaction_per_migration=False,
    )


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("No database URL: pass -x url=... or use `intake db upgrade`.")
    return url


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_url())
    with connection_for_migrations(engine) as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
