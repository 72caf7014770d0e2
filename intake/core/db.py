"""Database access: one engine per application, one session per application context.

SQLite runs in WAL mode with foreign keys enforced and a busy timeout; PostgreSQL goes through psycopg 3 with
``pool_pre_ping`` so a restarted server does not surface as an error to the first request after it.
Handlers and operations never commit: the request pipeline (`intake.core.web`) and the CLI commit once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, has_request_context, request
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every model; its metadata carries the naming convention migrations rely on."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite has no time zones of its own)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use intake.core.db.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy issue BEGIN itself so that BEGIN IMMEDIATE can be chosen per transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # FULL: in WAL mode NORMAL may lose the last commits on power loss, and an acknowledged write must never be lost
    # (nor an audit event the checkpoint file, synced after each commit, already vouches for).
    cursor.execute("PRAGMA synchronous=FULL")
    # Deleted content (shredded keys and ciphertexts) is overwritten with zeros instead of lingering in free pages.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


# Transactions that will write take SQLite's write lock when they begin, so concurrent writers queue on the busy
# timeout instead of one failing with "database is locked" when its read transaction tries to upgrade. `None`
# decides by the request: methods other than GET, HEAD and OPTIONS write, and so do views marked `writes_on_get`.
# Code that knows better sets True (it will write) or False (it only reads, e.g. before slow password hashing).
write_intent: ContextVar[bool | None] = ContextVar("intake_write_intent", default=None)
_READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WRITES_ON_GET_ATTRIBUTE = "__intake_writes_on_get__"


def writes_on_get(view: Any) -> Any:
    """Mark a view whose GET changes state, so its SQLite transaction takes the write lock from the start."""
    setattr(view, WRITES_ON_GET_ATTRIBUTE, True)
    return view


def _request_writes() -> bool:
    if not has_request_context():
        return False
    if request.method not in _READ_ONLY_METHODS:
        return True
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, WRITES_ON_GET_ATTRIBUTE, False))


def transactions_write() -> bool:
    """Whether transactions begun now take the write lock (on SQLite: BEGIN IMMEDIATE)."""
    intent = write_intent.get()
    return _request_writes() if intent is None else intent


def _sqlite_on_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if transactions_write() else "BEGIN")


def make_engine(url: str) -> Engine:
    """Create an engine with the settings this service relies on for the given database URL."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": 10}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    # hide_parameters: error messages and logs must never carry row values (hashes, sealed secrets, tokens).
    # READ COMMITTED whatever the server's default: the audit log's appenders read the last event after taking their
    # lock, and must see what the previous holder committed (`intake.core.audit.chain`).
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, hide_parameters=True,
                            isolation_level="READ COMMITTED")


class _AppSession(Session):
    """A session bound to the engine of the application in the current context."""

    def get_bind(self, *args: Any, **kwargs: Any) -> Engine:
        engine: Engine = current_app.extensions["intake.db"]
        return engine


class Database:
    """Holds the scoped session; the engine lives on the application (``app.extensions['intake.db']``)."""

    def __init__(self) -> None:
        self.session = scoped_session(
            # One commit ends each request, so nothing needs reloading after it: expiring would only cost queries
            # when the response is logged or rendered.
            sessionmaker(class_=_AppSession, expire_on_commit=False),
            scopefunc=_scope,
        )

    def init_app(self, app: Flask) -> None:
        app.extensions["intake.db"] = make_engine(app.config["DATABASE_URL"])
        app.teardown_appcontext(self._remove_session)

    @property
    def engine(self) -> Engine:
        engine: Engine = current_app.extensions["intake.db"]
        return engine

    def _remove_session(self, _exc: BaseException | None) -> None:
        self.session.remove()

    def new_session(self) -> Session:
        """A session outside the request transaction (used by the session store, which saves after the commit)."""
        return Session(bind=self.engine, expire_on_commit=False)

    @contextmanager
    def separate_transaction(self, *, writes: bool) -> Iterator[Session]:
        """A short transaction of its own, committed on success: for work that must not wait for, or hold up,
        the request's transaction (reading before slow password hashing, noting when a token was last used,
        saving the browser session after the request committed).

        A writing one takes SQLite's write lock at BEGIN: a deferred transaction that reads and then writes fails
        at once with "database is locked" when another writer committed in between, busy timeout or not.
        """
        token = write_intent.set(writes)
        try:
            with self.new_session() as session, session.begin():
                yield session
        finally:
            write_intent.reset(token)


def within_transaction(transaction: Any, ancestor: Any) -> bool:
    """Whether session transaction `transaction` is `ancestor` or one of its savepoints (at any depth)."""
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


def transaction_cache(session: Session | scoped_session[Any], name: str) -> dict[Any, Any]:
    """A dict that lives as long as the session's current outer transaction: what was read once in it (and is
    locked or may be trusted until it ends) need not be read again. A new transaction starts with an empty one."""
    real: Session = session() if isinstance(session, scoped_session) else session
    transaction = real.get_transaction()
    if transaction is None:
        return {}
    caches: dict[str, tuple[Any, dict[Any, Any]]] = real.info.setdefault("intake.transaction_caches", {})
    owner, cache = caches.get(name, (None, {}))
    if owner is not transaction:
        cache = {}
        caches[name] = (transaction, cache)
    return cache


def innermost_transaction(session: Session) -> Any:
    """The savepoint or outer transaction now open in `session` (begun first if none is)."""
    session.connection()
    return session.get_nested_transaction() or session.get_transaction()


def _scope() -> int:
    # One session per application context, created with the current app's engine.
    from flask import globals as flask_globals

    ctx = flask_globals._cv_app.get(None)
    return id(ctx)


db = Database()

