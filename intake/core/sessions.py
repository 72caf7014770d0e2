"""Server-side sessions: the browser holds only a random id; everything else stays on the server.

Stored in the database by default and in Redis when `INTAKE_REDIS_URL` is set. The id is stored only as its
SHA-256, so a database dump yields no usable session. Sessions expire after the idle timeout and, counted from
sign-in, after the absolute timeout. Signing in issues a new id (`regenerate`). Ending every session of an
account works on both stores through the account's ``auth_epoch`` (checked on every request by the sign-in
loader); the database store also deletes the rows.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.datastructures import CallbackDict

from intake.core.db import Base, UTCDateTime, db, utcnow

# Paths that never carry a browser session: the API authenticates with bearer tokens only (which is why it can
# be exempt from CSRF), and static files and the health check need none.
SESSIONLESS_PREFIXES = ("/api/", "/static/", "/healthz")
TOUCH_INTERVAL = timedelta(seconds=60)


class WebSession(Base):
    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    account_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)


class ServerSession(CallbackDict[str, Any], SessionMixin):
    """A dict that remembers whether it changed, and whether it must get a new id when saved."""

    def __init__(
        self,
        initial: Mapping[str, Any] | None = None,
        *,
        sid: str | None = None,
        created_at: datetime | None = None,
        last_seen_at: datetime | None = None,
        transient: bool = False,
    ) -> None:
        def on_update(this: ServerSession) -> None:
            this.modified = True

        super().__init__(initial, on_update)
        self.sid = sid
        self.created_at = created_at or utcnow()
        self.last_seen_at = last_seen_at or self.created_at
        self.transient = transient
        self.new = sid is None
        self.modified = False
        self.rotate = False
        self.ended = False  # the browser sent the id of a session that has expired or been ended

    def regenerate(self) -> None:
        """Issue a new id at the next save (at sign-in and at every privilege change) and restart the clock."""
        self.rotate = True
        self.created_at = utcnow()
        self.modified = True


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class _DatabaseStore:
    def load(self, sid_hash: str) -> tuple[dict[str, Any], datetime, datetime] | None:
        with db.new_session() as s:
            row = s.get(WebSession, sid_hash)
            if row is None or row.expires_at <= utcnow():
                return None
            return dict(row.data), row.created_at, row.last_seen_at

    def save(self, sid_hash: str, session: ServerSession, idle: timedelta) -> None:
        now = utcnow()
        account_id = session.get("account_id")
        with db.new_session() as s, s.begin():
            row = s.get(WebSession, sid_hash)
            if row is None:
                row = WebSession(id_hash=sid_hash, created_at=session.created_at)
                s.add(row)
            row.account_id = account_id
            row.data = dict(session)
            row.last_seen_at = now
            row.expires_at = now + idle
            # Sweep expired sessions now and then so the table does not grow without bound.
            if secrets.randbelow(50) == 0:
                s.execute(sa.delete(WebSession).where(WebSession.expires_at <= now))

    def delete(self, sid_hash: str) -> None:
        with db.new_session() as s, s.begin():
            s.execute(sa.delete(WebSession).where(WebSession.id_hash == sid_hash))


class _RedisStore:
    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)

    def _key(self, sid_hash: str) -> str:
        return f"intake:session:{sid_hash}"

    def load(self, sid_hash: str) -> tuple[dict[str, Any], datetime, datetime] | None:
        raw = cast(bytes | None, self.client.get(self._key(sid_hash)))
        if raw is None:
            return None
        record = json.loads(raw)
        return (
            record["data"],
            datetime.fromisoformat(record["created_at"]),
            datetime.fromisoformat(record["last_seen_at"]),
        )

    def save(self, sid_hash: str, session: ServerSession, idle: timedelta) -> None:
        record = {
            "data": dict(session),
            "created_at": session.created_at.isoformat(),
            "last_seen_at": utcnow().isoformat(),
        }
        self.client.set(self._key(sid_hash), json.dumps(record), ex=int(idle.total_seconds()))

    def delete(self, sid_hash: str) -> None:
        self.client.delete(self._key(sid_hash))


def renew_session_id() -> None:
    """Give the current session a new id at the next save (call at every change of who is signed in)."""
    from flask import session

    if not isinstance(session, ServerSession):
        raise RuntimeError("the server-side session interface is not installed")
    session.regenerate()


class ServerSessionInterface(SessionInterface):
    """Flask session interface over the database or Redis store."""

    def __init__(self, app: Flask) -> None:
        self.store: _DatabaseStore | _RedisStore = (
            _RedisStore(app.config["REDIS_URL"]) if app.config["REDIS_URL"] else _DatabaseStore()
        )
        self.idle = timedelta(minutes=app.config["SESSION_IDLE_MINUTES"])
        self.absolute = timedelta(hours=app.config["SESSION_ABSOLUTE_HOURS"])
        self.secure = app.config["SECURE_COOKIES"]
        self.cookie_name = "__Host-intake-session" if self.secure else "intake-session"

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        if request.path.startswith(SESSIONLESS_PREFIXES):
            return ServerSession(transient=True)
        sid = request.cookies.get(self.cookie_name)
        if sid and 20 <= len(sid) <= 100:
            loaded = self.store.load(_hash(sid))
            if loaded is not None:
                data, created_at, last_seen_at = loaded
                if utcnow() - created_at < self.absolute:
                    return ServerSession(data, sid=sid, created_at=created_at, last_seen_at=last_seen_at)
                self.store.delete(_hash(sid))
            ended = ServerSession()
            ended.ended = True
            return ended
        return ServerSession()

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, ServerSession) or session.transient:
            return
        if not session:
            if session.sid is not None:
                self.store.delete(_hash(session.sid))
                response.delete_cookie(self.cookie_name, path="/", secure=self.secure, samesite="Lax")
            return
        if session.rotate and session.sid is not None:
            self.store.delete(_hash(session.sid))
            session.sid = None
        stale = utcnow() - session.last_seen_at > TOUCH_INTERVAL
        if session.sid is not None and not session.modified and not stale:
            return
        if session.sid is None:
            session.sid = secrets.token_urlsafe(32)
        self.store.save(_hash(session.sid), session, self.idle)
        response.set_cookie(
            self.cookie_name,
            session.sid,
            httponly=True,
            secure=self.secure,
            samesite="Lax",
            path="/",
        )
        response.vary.add("Cookie")
