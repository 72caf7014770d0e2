"""Fixtures shared by the whole suite.

Every database test runs twice: on SQLite and on PostgreSQL. PostgreSQL is used whenever it is reachable at
``PYTEST_POSTGRES_URL`` (default: the local server's ``test`` database); when it is not, those runs skip and say
so, unless ``PYTEST_REQUIRE`` names ``postgresql`` (CI sets it), in which case they fail. Both databases are built
by running the migrations, never ``create_all``, so the suite also proves the migrated schema.

CSRF protection and rate limits stay on: the helpers below fetch real CSRF tokens, and tests that need many
requests are written to stay inside the limits or to assert on them.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from jinja2.bccache import Bucket, BytecodeCache

from intake import create_app
from intake.core import migrate
from intake.core.db import db, make_engine
from intake.core.keys import Keyring

POSTGRES_URL = os.environ.get("PYTEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRED = {part.strip() for part in os.environ.get("PYTEST_REQUIRE", "").split(",") if part.strip()}
PASSPHRASE = "test keyring passphrase, not secret"
PASSWORD = "violet kettle harbour sixteen"
CSRF_PATTERN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def missing(what: str, reason: str) -> None:
    """Skip for a missing dependency, or fail when the environment says it must be present."""
    if what in REQUIRED:
        pytest.fail(f"{what} is required here (PYTEST_REQUIRE) but {reason}")
    pytest.skip(f"{what} not available: {reason}")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come only from what each test passes, never from the developer's shell."""
    for key in list(os.environ):
        if key.startswith("INTAKE_"):
            monkeypatch.delenv(key)


# ---------------------------------------------------------------------------------------------------------------
# Keyring and databases


@pytest.fixture(scope="session")
def keyring_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keyring.sealed"
    Keyring.create(path, PASSPHRASE, scrypt_n=2**10)
    return path


@pytest.fixture(scope="session")
def keyring(keyring_path: Path) -> Keyring:
    return Keyring.open(keyring_path, PASSPHRASE)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


def postgres_reachable(url: str) -> str | None:
    """None when PostgreSQL answers at `url`, else why not."""
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"; the reason is reported
        return f"{url} did not answer ({exc.__class__.__name__})"
    return None


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A PostgreSQL database for the suite, dropped and migrated afresh once per session."""
    problem = postgres_reachable(POSTGRES_URL)
    if problem:
        missing("postgresql", problem)
    # Pre-ping: a server restarted during the session (a fault test run beside the suite) costs no test.
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    name = f"intake_suite_{os.getpid()}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


# One round trip empties every table and restarts every sequence, as a fresh database would be. DELETE, not
# TRUNCATE: TRUNCATE gives each table and each of its indexes new files and has the server drop their pages from
# its buffers and sync at commit, which costs tenths of a second per test, where deleting the few rows a test
# wrote costs milliseconds. The replica role keeps guards such as the append-only triggers, and the foreign-key
# checks, from stopping the reset (every table is emptied, so no reference is left dangling). Sequences are
# restarted since a test can advance one without leaving a row (a rolled-back insert).
EMPTY_POSTGRES = """
DO $$
DECLARE
    name text;
BEGIN
    SET LOCAL session_replication_role = replica;
    FOR name IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version' LOOP
        EXECUTE 'DELETE FROM ' || quote_ident(name);
    END LOOP;
    PERFORM setval(c.oid::regclass, s.seqstart, false) FROM pg_class c
        JOIN pg_sequence s ON s.seqrelid = c.oid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public';
END
$$
"""


@pytest.fixture(scope="session")
def empty_postgres(postgres_database: str) -> Iterator[Callable[[], None]]:
    """Empties the suite's PostgreSQL database; one connection serves every test, idle (holding no lock) between
    resets, and is closed before the database is dropped."""
    engine = sa.create_engine(postgres_database, pool_size=1, pool_pre_ping=True)

    def empty() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql(EMPTY_POSTGRES)

    yield empty
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "intake.sqlite3"
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("postgres_database")
    request.getfixturevalue("empty_postgres")()
    return url


# ---------------------------------------------------------------------------------------------------------------
# Application


TEST_SETTINGS: dict[str, Any] = {
    "ENV": "production",
    "SECURE_COOKIES": "false",
    "ARGON2_TIME_COST": 1,
    "ARGON2_MEMORY_KIB": 1024,
    "ARGON2_PARALLELISM": 1,
    "BASE_URL": "http://localhost",
    "LOG_LEVEL": "WARNING",
}


class TemplateCode(BytecodeCache):
    """Compiled templates kept in memory for the whole session, shared by the apps the tests build.

    Every app has its own Jinja environment, which would otherwise parse and compile each template it renders
    again in every test. The apps are all configured alike by `create_app`, and Jinja checks each template's
    source against the checksum stored with its code, so an edited template is compiled afresh."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


TEMPLATE_CODE = TemplateCode()


@pytest.fixture
def make_app(database_url: str, keyring: Keyring, tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Build an app on this test's database; keyword arguments override settings."""
    apps: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        settings = {**TEST_SETTINGS, "INSTANCE_PATH": str(tmp_path / "instance"), "DATABASE_URL": database_url,
                    "KEYRING_PATH": str(tmp_path / "unused.sealed"), **overrides}
        app = create_app(settings, keyring=keyring)
        app.config["TESTING"] = True
        app.jinja_env.bytecode_cache = TEMPLATE_CODE
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["intake.db"].dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# ---------------------------------------------------------------------------------------------------------------
# Time and codes


class TotpClock:
    """Replaces the clock two-factor codes are checked against, so tests can step to a fresh code at will."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = 30) -> None:
        self.now += seconds

    def code(self, secret: str) -> str:
        """A code for the next time step (each call moves 30 seconds on, so codes are never reused)."""
        self.advance(30)
        return pyotp.TOTP(secret).at(self.now)


@pytest.fixture(autouse=True)
def totp_clock(monkeypatch: pytest.MonkeyPatch) -> TotpClock:
    import time

    from intake.accounts import totp

    clock = TotpClock(time.time())
    monkeypatch.setattr(totp, "_clock", clock)
    return clock


# ---------------------------------------------------------------------------------------------------------------
# People


@dataclass
class TestUser:
    __test__ = False  # not a test class

    id: int
    username: str
    password: str
    totp_secret: str
    roles: list[str]


@pytest.fixture
def create_user(app: Flask) -> Callable[..., TestUser]:
    """Factory: an enrolled account with a known password and TOTP secret."""
    from intake.accounts import operations as ops

    def create(username: str = "amira", roles: list[str] | tuple[str, ...] = ("interviewer",),
               password: str = PASSWORD) -> TestUser:
        secret = pyotp.random_base32()
        with app.app_context():
            account = ops.create_account(username=username, roles=list(roles), password=password,
                                         totp_secret=secret)
            db.session.commit()
            return TestUser(account.id, account.username, password, secret, list(roles))

    return create


def csrf_token(client: FlaskClient, path: str = "/sign-in") -> str:
    """The CSRF token of the client's session, read from a real page as a browser would."""
    html = client.get(path).get_data(as_text=True)
    match = CSRF_PATTERN.search(html)
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


def post_form(client: FlaskClient, path: str, data: dict[str, Any], *, token_from: str | None = None,
              **kwargs: Any) -> Any:
    """POST a form with the CSRF token a browser would have, read from `token_from` (default: `path`)."""
    token = csrf_token(client, token_from or path)
    return client.post(path, data={"csrf_token": token, **data}, **kwargs)


def open_link(client: FlaskClient, path: str) -> Any:
    """Open a one-time link as a person does: the page explains it, pressing Continue spends it."""
    landing = client.get(path)
    assert landing.status_code == 200, landing.get_data(as_text=True)
    match = CSRF_PATTERN.search(landing.get_data(as_text=True))
    assert match, "no CSRF token on the link's page"
    return client.post(path, data={"csrf_token": match.group(1) or match.group(2)})


class Auth:
    def __init__(self, client: FlaskClient, clock: TotpClock) -> None:
        self.client = client
        self.clock = clock

    def sign_in(self, user: TestUser, *, code: str | None = None, password: str | None = None,
                follow: bool = False) -> Any:
        return post_form(
            self.client, "/sign-in",
            {"username": user.username, "password": password or user.password,
             "code": code or self.clock.code(user.totp_secret)},
            follow_redirects=follow,
        )

    def step_up(self, user: TestUser) -> Any:
        return post_form(self.client, "/step-up", {"code": self.clock.code(user.totp_secret)})

    def sign_out(self) -> Any:
        return post_form(self.client, "/sign-out", {}, token_from="/")


@pytest.fixture
def auth(client: FlaskClient, totp_clock: TotpClock) -> Auth:
    return Auth(client, totp_clock)
