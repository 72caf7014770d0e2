"""Faults under load, small: gunicorn with two workers on this test's database, interviews submitted through the API
from a few threads with idempotency keys, and a fault in the middle (a worker killed with SIGKILL; the data folder's
disk full). Afterwards every acknowledged interview is stored once and reads back as sent, the audit log verifies,
and the same server takes a new submission. And, through the test client, the database going away in the middle of
a request: the answer is still a problem+json 500. `make chaos` (bench/chaos.py) is the full version, with PostgreSQL
stopped as well; the suite never stops the PostgreSQL server, which other tests share.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from bench.chaos import (
    INTERVIEWS,
    PDF_HEAD,
    SUCCESS_KINDS,
    Ack,
    Outcomes,
    Submitter,
    Target,
    call,
    child_pids,
    clean_failure,
    fill,
    interview_body,
    kill_worker,
    mount_tmpfs,
    unmount,
    wait_for_workers,
)
from bench.instance import PROJECT_ROOT
from bench.servers import LOCALHOST, GunicornServer, GunicornSettings
from intake.accounts import operations as accounts
from intake.accounts.models import Account
from intake.core.audit import service as audit
from intake.core.crypto.fields import Tombstone
from intake.core.db import db
from intake.interviews import operations as interviews
from intake.testimonies.models import Attachment
from intake.testimonies.models import Testimony as StoredTestimony
from intake.testimonies.operations import attachment_content, read_narrative
from tests.conftest import PASSPHRASE, PASSWORD, TEST_SETTINGS, TestUser, missing

pytestmark = pytest.mark.chaos

WORKERS = 2
PROBLEM = "application/problem+json"


@dataclass
class Served:
    app: Flask  # the same database, blobs and keyring as the server, to look at what it stored
    server: GunicornServer
    target: Target
    interviewer_id: int


@pytest.fixture
def serve(make_app: Callable[..., Flask], database_url: str, keyring_path: Path,
          tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start gunicorn (two sync workers) on this test's database with attachments as files under `data`."""
    started: list[GunicornServer] = []

    def start(data: Path) -> Served:
        url = database_url
        if url.startswith("sqlite:///"):  # the database lives in the data folder too
            moved = data / "intake.sqlite3"
            shutil.copyfile(url.removeprefix("sqlite:///"), moved)
            url = f"sqlite:///{moved}"
        (data / "blobs").mkdir(exist_ok=True)
        settings = {"DATABASE_URL": url, "BLOB_STORAGE": "files", "BLOB_PATH": str(data / "blobs")}
        app = make_app(**settings)
        with app.app_context():
            account = accounts.create_account(username="field-interviewer", roles=["interviewer"],
                                              password=PASSWORD)
            _token, plaintext = accounts.create_api_token(account, name="chaos", expires_in_days=1)
            db.session.commit()
            interviewer_id = account.id
        env = {name: value for name, value in os.environ.items()
               if not name.startswith("INTAKE_") and name != "GUNICORN_CMD_ARGS"}
        env.update({f"INTAKE_{name}": str(value) for name, value in {**TEST_SETTINGS, **settings}.items()})
        env.update({"INTAKE_INSTANCE_PATH": str(tmp_path / "instance"), "INTAKE_KEYRING_PATH": str(keyring_path),
                    "INTAKE_KEYRING_PASSPHRASE": PASSPHRASE})
        server = GunicornServer(label="app under faults", app_spec="app:app",
                                settings=GunicornSettings(workers=WORKERS), cwd=PROJECT_ROOT, env=env,
                                log_path=tmp_path / "gunicorn.log", health_path="/healthz")
        started.append(server)
        server.start()
        return Served(app, server, Target(LOCALHOST, server.port, plaintext, timeout=30), interviewer_id)

    yield start
    for server in started:
        if server.pid is not None:  # everything was checked: no need to wait for a graceful stop
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
        server.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs to fill (mounting needs root, as CI is)."""
    folder = tmp_path / "data"
    folder.mkdir()
    problem = mount_tmpfs(folder, 24)
    if problem is not None:
        missing("tmpfs", problem)
    yield folder
    unmount(folder)


def submitters(served: Served, outcomes: Outcomes, count: int, *, interviews: int | None = None,
               stop: threading.Event | None = None) -> tuple[list[Submitter], threading.Event, threading.Event]:
    stop = stop or threading.Event()
    give_up = threading.Event()
    clients = [Submitter(f"t{n}", served.target, outcomes, stop=stop, give_up=give_up, interviews=interviews,
                         max_backoff=0.5) for n in range(count)]
    for client in clients:
        client.start()
    return clients, stop, give_up


def wait_for_acks(outcomes: Outcomes, clients: list[Submitter], count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(outcomes.acks) < count and time.monotonic() < deadline:
        assert all(client.failure is None for client in clients), [c.failure for c in clients]
        time.sleep(0.05)
    assert len(outcomes.acks) >= count, "the load did not get going"


def finish(clients: list[Submitter], give_up: threading.Event, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    for client in clients:
        client.join(max(0.0, deadline - time.monotonic()))
    give_up.set()
    for client in clients:
        client.join(10)
    assert [client.failure for client in clients if client.failure is not None] == []


def assert_stored_once_as_sent(served: Served, acks: dict[str, Ack]) -> None:
    """Every acknowledged interview is there, submitted, reads back as sent; no key holds two interviews."""
    with served.app.app_context():
        mine = StoredTestimony.interviewer_id == served.interviewer_id
        per_key = dict(db.session.execute(sa.select(StoredTestimony.idempotency_key, sa.func.count()).where(mine)
                                          .group_by(StoredTestimony.idempotency_key)).all())
        assert {key: n for key, n in per_key.items() if n != 1} == {}
        for key, ack in acks.items():
            testimony = db.session.scalar(
                sa.select(StoredTestimony).where(mine, StoredTestimony.idempotency_key == key))
            assert testimony is not None, f"acknowledged interview {key} is missing"
            assert (testimony.id, testimony.status) == (ack.testimony_id, "submitted")
            narrative = read_narrative(testimony)
            assert isinstance(narrative, str) and narrative.endswith(f"Reference {key}.")
            assert len(testimony.incidents) == 2
            digests = [_digest(attachment, served.app) for attachment in testimony.attachments]
            assert digests == ([] if ack.attachment_sha256 is None else [ack.attachment_sha256])


def _digest(attachment: Attachment, app: Flask) -> str:
    content = attachment_content(attachment, app.config)
    assert not isinstance(content, Tombstone)
    digest = hashlib.sha256()
    for piece in content:
        digest.update(piece)
    return digest.hexdigest()


def assert_audit_log_verifies(served: Served) -> None:
    with served.app.app_context():
        report = audit.verify(use_configured_file=False)
        assert report.ok, [problem.message for problem in report.problems]
        assert report.events > 0


def assert_takes_a_new_submission(served: Served, key: str) -> None:
    answer = call(served.target, "POST", INTERVIEWS, json_body=interview_body(key, submit=True),
                  headers={"Idempotency-Key": key})
    assert answer.status == 201 and answer.body["status"] == "submitted", answer


def test_a_worker_killed_mid_load_loses_and_duplicates_nothing(
        serve: Callable[..., Served], tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    served = serve(data)
    master = served.server.pid
    assert master is not None
    outcomes = Outcomes()
    clients, _stop, give_up = submitters(served, outcomes, 3, interviews=4)
    wait_for_acks(outcomes, clients, 2)

    victim = kill_worker(master)
    assert wait_for_workers(master, WORKERS, without=victim, timeout=60) is not None, "no new worker"
    finish(clients, give_up)

    assert outcomes.given_up == []
    assert len(outcomes.acks) == 12  # every interview acknowledged, however many retries it took
    assert_stored_once_as_sent(served, outcomes.acks)
    assert_audit_log_verifies(served)
    assert served.server.pid == master and victim not in child_pids(master)
    assert_takes_a_new_submission(served, "after-the-kill-000001")


def test_a_full_disk_is_refused_cleanly_and_the_service_recovers_when_space_is_freed(
        serve: Callable[..., Served], small_disk: Path, database_url: str) -> None:
    served = serve(small_disk)
    outcomes = Outcomes()
    clients, stop, give_up = submitters(served, outcomes, 2)
    wait_for_acks(outcomes, clients, 2)
    key = "upload-on-full-disk-01"
    draft = call(served.target, "POST", INTERVIEWS, json_body=interview_body(key, submit=False),
                 headers={"Idempotency-Key": key})
    assert draft.status == 201, draft
    where, revision = f"{INTERVIEWS}/{draft.body['id']}", draft.body["revision"]
    document = PDF_HEAD + os.urandom(8192) + b"\n%%EOF\n"

    def upload() -> Any:
        return call(served.target, "POST", f"{where}/attachments", data=document,
                    headers={"Content-Type": "application/octet-stream", "X-Filename": "statement.pdf"},
                    query={"revision": revision, "medium": "document", "graphic": "false"})

    filler = fill(small_disk)
    try:
        refused = upload()
        time.sleep(1)  # the load goes on against the full disk
    finally:
        filler.unlink()
    assert refused.status >= 500 and refused.media_type == PROBLEM, refused

    stored = upload()  # the same upload, from the revision it was refused at: nothing of it was kept
    assert stored.status == 201, stored
    submitted = call(served.target, "POST", f"{where}/submit", json_body={"revision": stored.body["revision"]},
                     headers={"Idempotency-Key": key})
    assert submitted.status == 200 and submitted.body["status"] == "submitted", submitted
    wait_for_acks(outcomes, clients, len(outcomes.acks) + 2)  # the load goes through again
    stop.set()
    finish(clients, give_up)

    failures = {kind for (_phase, kind) in outcomes.counts if kind not in SUCCESS_KINDS}
    assert all(clean_failure(kind) for kind in failures), failures
    assert outcomes.given_up == []
    assert_stored_once_as_sent(served, {**outcomes.acks, key: Ack(
        key=key, testimony_id=draft.body["id"], attachment_sha256=hashlib.sha256(document).hexdigest(),
        client="test", requests=0, at=0.0)})
    assert_audit_log_verifies(served)
    if database_url.startswith("sqlite"):
        connection = sqlite3.connect(small_disk / "intake.sqlite3")
        try:
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            connection.close()
    with served.app.app_context():  # the refused upload left no file behind
        named = set(db.session.scalars(sa.select(Attachment.blob_name)))
    assert {path.name for path in (small_disk / "blobs").glob("*/*")} == named
    assert_takes_a_new_submission(served, "after-the-disk-filled-1")


def test_when_the_database_goes_away_mid_request_the_api_still_answers_with_a_problem(
        app: Flask, client: FlaskClient, create_user: Callable[..., TestUser],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # As when PostgreSQL stops under load: a statement fails, the rollback expires the caller's account, and every
    # new connection is refused while the error answer is written (in the caller's language) and the request logged.
    user = create_user("amira", ["interviewer"])
    with app.app_context():
        account = db.session.get(Account, user.id)
        assert account is not None
        _token, plaintext = accounts.create_api_token(account, name="chaos")
        db.session.commit()
    engine = app.extensions["intake.db"]
    dbapi = engine.dialect.loaded_dbapi

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise dbapi.OperationalError("the database is not accepting connections")

    def start_interview(*_args: Any, **_kwargs: Any) -> None:
        db.session.rollback()
        engine.dispose()
        event.listen(engine, "do_connect", refuse)
        raise sa.exc.OperationalError("INSERT INTO testimonies", {}, dbapi.OperationalError("connection lost"))

    monkeypatch.setattr(interviews, "start_interview", start_interview)
    logged: list[logging.LogRecord] = []
    handler = _Collect(logged)
    request_log = logging.getLogger("intake.request")
    request_log.addHandler(handler)
    level = request_log.level
    request_log.setLevel(logging.INFO)
    try:
        key = "database-goes-away-01"
        response = client.post(INTERVIEWS, json=interview_body(key, submit=True),
                               headers={"Authorization": f"Bearer {plaintext}", "Idempotency-Key": key})
    finally:
        request_log.removeHandler(handler)
        request_log.setLevel(level)
        if event.contains(engine, "do_connect", refuse):
            event.remove(engine, "do_connect", refuse)
    assert response.status_code == 500 and response.mimetype == PROBLEM, response.get_data(as_text=True)
    assert response.get_json()["detail"].startswith("Nothing you entered has been saved.")
    assert [(r.__dict__["status"], r.__dict__["account_id"]) for r in logged if r.getMessage() == "request"] == [
        (500, user.id)]


class _Collect(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(logging.INFO)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)
