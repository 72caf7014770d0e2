"""Browser sessions: on the server for anyone signed in or enrolling, in a signed cookie for everyone else.

A session that carries an account or an enrolment lives in the server store: the browser holds only a random id,
and everything else stays on the server. The store is the database by default and Redis when `INTAKE_REDIS_URL`
is set. The id is stored only as its SHA-256, so a database dump yields no usable session. Such sessions expire
after the idle timeout and, counted from sign-in, after the absolute timeout. Signing in and opening a one-time
link issue a new id (`renew_session_id`). Ending every session of an account works on both stores through the
account's ``auth_epoch`` (checked on every request by the sign-in loader); the database store also deletes the rows.

A visitor who is not signed in has nothing worth guarding on the server: the session holds the CSRF token of the
sign-in form, the chosen language and messages to show once. Keeping it in the store would cost a row (and, on
SQLite, the write lock) for every page anyone on the network opens, so it travels in a cookie of its own, signed
with the application's secret key and refused once older than the idle timeout. That cookie can never sign anyone
in: a session read from it that names an account or an enrolment is thrown away. When the session starts to
carry either, it moves to the store and the anonymous cookie is deleted; when it is cleared, both cookies go.

A session loaded from the store is only ever updated there, never written afresh: a request still running when
its session was ended (sign-out in another tab, every session ended by a password change) must not bring the
session back when it saves. Only a new or renewed id is inserted. Such a request clears the id from the browser
and leaves a note in the anonymous cookie, so that the next page that needs a sign-in still says the session ended.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.datastructures import CallbackDict

from intake.core.db import Base, UTCDateTime, db, utcnow

# Paths that never carry a browser session: the API authenticates with bearer tokens only (which is why it can
# be exempt from CSRF), and static files and the health check need none.
SESSIONLESS_PREFIXES = ("/api/", "/static/", "/healthz")
# How often an unchanged session is written again to note the activity (which pushes back its idle expiry).
TOUCH_INTERVAL = timedelta(seconds=60)
# Keys that make a session worth keeping on the server: someone is signed in, or is enrolling with a link.
SERVER_KEYS = frozenset({"account_id", "enrolment"})
ANONYMOUS_SALT = "intake-anonymous-session"
# Set in the anonymous cookie when a session turned out to have ended while a request ran; read once.
ENDED_NOTE = "_ended"


class WebSession(Base):
    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    account_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)


class ServerSession(CallbackDict[str, Any], SessionMixin):
    """A dict that remembers whether it changed, whether it must get a new id when saved, and where it came from.

    `sid` is set only for a session loaded from the server store (until it is renewed); `last_seen_at` is when it
    was last written, in the store or in the anonymous cookie, so that activity can be noted now and then.
    """

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
        self.server_cookie_sent = False
        self.anonymous_cookie_sent = False

    @property
    def needs_server(self) -> bool:
        """Whether the session carries what only the server store may hold (an account or an enrolment)."""
        return not SERVER_KEYS.isdisjoint(self)

    def regenerate(self) -> None:
        """Issue a new id at the next save (at sign-in and at every privilege change) and restart the clock."""
        self.rotate = True
        self.created_at = utcnow()
        self.modified = True


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class _DatabaseStore:
    def load(self, sid_hash: str) -> tuple[dict[str, Any], datetime, datetime] | None:
        with db.separate_transaction(writes=False) as s:
            row = s.get(WebSession, sid_hash)
            if row is None or row.expires_at <= utcnow():
                return None
            return dict(row.data), row.created_at, row.last_seen_at

    def insert(self, sid_hash: str, session: ServerSession, idle: timedelta) -> None:
        now = utcnow()
        with db.separate_transaction(writes=True) as s:
            s.add(WebSession(id_hash=sid_hash, created_at=session.created_at, account_id=session.get("account_id"),
                             data=dict(session), last_seen_at=now, expires_at=now + idle))
            # Sweep expired sessions now and then so the table does not grow without bound.
            if secrets.randbelow(50) == 0:
                s.execute(sa.delete(WebSession).where(WebSession.expires_at <= now))

    def update(self, sid_hash: str, session: ServerSession, idle: timedelta) -> bool:
        """Write the session over its stored row; False (and nothing written) when the row is gone."""
        now = utcnow()
        with db.separate_transaction(writes=True) as s:
            result = cast(sa.CursorResult[Any], s.execute(
                sa.update(WebSession)
                .where(WebSession.id_hash == sid_hash)
                .values(account_id=session.get("account_id"), data=dict(session), last_seen_at=now,
                        expires_at=now + idle)
                .execution_options(synchronize_session=False)
            ))
            return result.rowcount > 0

    def delete(self, sid_hash: str) -> None:
        with db.separate_transaction(writes=True) as s:
            s.execute(sa.delete(WebSession).where(WebSession.id_hash == sid_hash))


class _RedisStore:
    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)

    def _key(self, sid_hash: str) -> str:
        return f"intake:session:{sid_hash}"

    def _record(self, session: ServerSession) -> str:
        return json.dumps({
            "data": dict(session),
            "created_at": session.created_at.isoformat(),
            "last_seen_at": utcnow().isoformat(),
        })

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

    def insert(self, sid_hash: str, session: ServerSession, idle: timedelta) -> None:
        self.client.set(self._key(sid_hash), self._record(session), ex=int(idle.total_seconds()))

    def update(self, sid_hash: str, session: ServerSession, idle: timedelta) -> bool:
        """Write the session over its stored key (`SET … XX`); False (and nothing written) when the key is gone."""
        done = self.client.set(self._key(sid_hash), self._record(session), ex=int(idle.total_seconds()), xx=True)
        return bool(done)

    def delete(self, sid_hash: str) -> None:
        self.client.delete(self._key(sid_hash))


def renew_session_id() -> None:
    """Give the current session a new id at the next save (call at every change of who is signed in)."""
    from flask import session

    if not isinstance(session, ServerSession):
        raise RuntimeError("the server-side session interface is not installed")
    session.regenerate()


class ServerSessionInterface(SessionInterface):
    """Flask session interface: the server store for sessions that need it, a signed cookie for the others."""

    def __init__(self, app: Flask) -> None:
        self.store: _DatabaseStore | _RedisStore = (
            _RedisStore(app.config["REDIS_URL"]) if app.config["REDIS_URL"] else _DatabaseStore()
        )
        self.idle = timedelta(minutes=app.config["SESSION_IDLE_MINUTES"])
        self.absolute = timedelta(hours=app.config["SESSION_ABSOLUTE_HOURS"])
        self.secure = app.config["SECURE_COOKIES"]
        # `__Host-`: the browser accepts the cookie only over HTTPS, for this host and path "/" (no subdomain can
        # set or overwrite it).
        prefix = "__Host-" if self.secure else ""
        self.cookie_name = f"{prefix}intake-session"
        self.anonymous_cookie_name = f"{prefix}intake-visit"
        self.signer = URLSafeTimedSerializer(
            app.config["SECRET_KEY"], salt=ANONYMOUS_SALT, signer_kwargs={"digest_method": hashlib.sha256}
        )

    # -- reading -----------------------------------------------------------------------------------------------

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        if request.path.startswith(SESSIONLESS_PREFIXES):
            return ServerSession(transient=True)
        sid = request.cookies.get(self.cookie_name)
        anonymous = request.cookies.get(self.anonymous_cookie_name)
        if sid is not None:
            session = self._open_stored(sid)
        elif anonymous is not None:
            session = self._open_anonymous(anonymous)
        else:
            session = ServerSession()
        session.server_cookie_sent = sid is not None
        session.anonymous_cookie_sent = anonymous is not None
        return session

    def _open_stored(self, sid: str) -> ServerSession:
        if not 20 <= len(sid) <= 100:
            return ServerSession()
        loaded = self.store.load(_hash(sid))
        if loaded is not None:
            data, created_at, last_seen_at = loaded
            if utcnow() - created_at < self.absolute:
                return ServerSession(data, sid=sid, created_at=created_at, last_seen_at=last_seen_at)
            self.store.delete(_hash(sid))
        ended = ServerSession()
        ended.ended = True
        return ended

    def _open_anonymous(self, value: str) -> ServerSession:
        """The session in the anonymous cookie, or a fresh one when the cookie is forged, too old or names anyone."""
        try:
            data, signed_at = self.signer.loads(value, max_age=int(self.idle.total_seconds()),
                                                return_timestamp=True)
        except BadSignature:
            return ServerSession()
        if not isinstance(data, dict) or not SERVER_KEYS.isdisjoint(data):
            return ServerSession()
        signed_at = signed_at if signed_at.tzinfo else signed_at.replace(tzinfo=UTC)
        ended = bool(data.pop(ENDED_NOTE, False))
        session = ServerSession(data, created_at=signed_at)
        if ended:
            session.ended = True
            session.modified = True  # the note is read once: the cookie is written again without it
        return session

    # -- writing -----------------------------------------------------------------------------------------------

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, ServerSession) or session.transient:
            return
        if session.needs_server:
            if self._save_stored(session, response) and session.anonymous_cookie_sent:
                self._delete_cookie(response, self.anonymous_cookie_name)
            return
        if session.sid is not None:
            # It lived on the server and no longer names anyone: signed out, or ended and cleared by the loader.
            self.store.delete(_hash(session.sid))
            self._delete_cookie(response, self.cookie_name)
            if not session:
                self._delete_cookie(response, self.anonymous_cookie_name)
                return
        elif session.server_cookie_sent and session:
            # The id of an ended session, now replaced by an anonymous one. While the session stays empty the
            # cookie is left alone, so that the next page that needs a sign-in can still say the session ended.
            self._delete_cookie(response, self.cookie_name)
        self._save_anonymous(session, response)

    def _save_stored(self, session: ServerSession, response: Response) -> bool:
        """Save a session that needs the server; False when it turned out to have ended meanwhile."""
        if session.sid is not None and not session.rotate:
            stale = utcnow() - session.last_seen_at > TOUCH_INTERVAL
            if not session.modified and not stale:
                return True
            if self.store.update(_hash(session.sid), session, self.idle):
                return True
            # Ended while this request ran: it stays ended, the browser forgets the id, and the next page that
            # needs a sign-in says why (as it would have on finding the id unknown).
            self._delete_cookie(response, self.cookie_name)
            self._set_cookie(response, self.anonymous_cookie_name, self.signer.dumps({ENDED_NOTE: True}))
            return False
        if session.sid is not None:
            self.store.delete(_hash(session.sid))
        session.sid = secrets.token_urlsafe(32)
        self.store.insert(_hash(session.sid), session, self.idle)
        self._set_cookie(response, self.cookie_name, session.sid)
        return True

    def _save_anonymous(self, session: ServerSession, response: Response) -> None:
        if not session:
            if session.anonymous_cookie_sent:
                self._delete_cookie(response, self.anonymous_cookie_name)
            return
        # Signed again when changed, and now and then while in use, so that its age counts from the last activity.
        stale = utcnow() - session.last_seen_at > TOUCH_INTERVAL
        if session.anonymous_cookie_sent and not session.modified and not stale:
            return
        self._set_cookie(response, self.anonymous_cookie_name, self.signer.dumps(dict(session)))

    def _set_cookie(self, response: Response, name: str, value: str) -> None:
        # No expiry: the cookie goes when the browser closes; the server enforces the timeouts.
        response.set_cookie(name, value, httponly=True, secure=self.secure, samesite="Lax", path="/")
        response.vary.add("Cookie")

    def _delete_cookie(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=self.secure, httponly=True, samesite="Lax")
        response.vary.add("Cookie")
