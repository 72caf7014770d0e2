"""The databases the app under test can run against, prepared fresh for every run."""

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/intake_bench"
MAINTENANCE_DATABASE = "postgres"


class DatabaseError(RuntimeError):
    """A database could not be reached or prepared."""


def sqlite_url(instance_dir: Path) -> str:
    """The SQLAlchemy URL of a fresh SQLite file inside the instance directory."""
    return f"sqlite:///{instance_dir / 'intake.sqlite3'}"


def _libpq_url(sqlalchemy_url: str, database: str | None = None) -> tuple[str, str]:
    """Turn a SQLAlchemy PostgreSQL URL into a libpq URL (optionally for another database) and its db name."""
    parts = urlsplit(sqlalchemy_url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in {"postgresql", "postgres"}:
        raise DatabaseError(f"not a PostgreSQL URL: {sqlalchemy_url}")
    name = parts.path.lstrip("/")
    if not name:
        raise DatabaseError(f"the PostgreSQL URL names no database: {sqlalchemy_url}")
    path = "/" + (database if database is not None else name)
    return urlunsplit(("postgresql", parts.netloc, path, parts.query, "")), name


def postgres_server_version(sqlalchemy_url: str) -> str | None:
    """Return the server's version if PostgreSQL answers within two seconds, else None."""
    import psycopg

    conninfo, _ = _libpq_url(sqlalchemy_url, MAINTENANCE_DATABASE)
    try:
        with psycopg.connect(conninfo, connect_timeout=2, autocommit=True) as connection:
            row = connection.execute("SHOW server_version").fetchone()
    except psycopg.Error:
        return None
    return str(row[0]) if row else None


def _administer(sqlalchemy_url: str, *, create: bool) -> None:
    import psycopg
    from psycopg import sql

    conninfo, name = _libpq_url(sqlalchemy_url, MAINTENANCE_DATABASE)
    try:
        with psycopg.connect(conninfo, connect_timeout=5, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            if create:
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as error:
        action = "recreate" if create else "drop"
        raise DatabaseError(f"could not {action} PostgreSQL database {name!r}: {error}") from error


def recreate_postgres_database(sqlalchemy_url: str) -> None:
    """Drop the URL's database if it exists (ending its sessions) and create it empty."""
    _administer(sqlalchemy_url, create=True)


def drop_postgres_database(sqlalchemy_url: str) -> None:
    """Drop the URL's database, ending its sessions."""
    _administer(sqlalchemy_url, create=False)
