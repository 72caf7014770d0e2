"""Faults under load: ``python -m bench.chaos [--db postgresql|sqlite] [--duration S] [--clients N]`` (``make chaos``).

A fresh instance (keyring, migrated database, an interviewer with an API token) is served by gunicorn with several
sync workers, rate limits and sessions in Redis, and attachments stored as files (``BLOB_STORAGE=files``) in a
scratch data folder. ``--clients`` threads submit interviews through the API, each interview with its own
Idempotency-Key, alternating between the two ways the API offers:

- the whole interview in one request (``POST /api/v1/interviews`` with ``"submit": true``), and
- step by step: the interview as a draft (same request, ``"submit": false``), a PDF attachment
  (``POST .../attachments?revision=N``), then ``POST .../submit`` with the same key.

On any error or timeout a client retries the same step with the same key (bounded backoff) until the interview is
acknowledged (a 2xx answer naming the testimony, status ``submitted``) or the run gives up on it. A lost answer to an
attachment upload that was stored shows as a 409 (the revision moved on): the client reads the interview back and
goes on if its file is there. Every acknowledgement is kept (key -> testimony id, attachment digest).

While the load goes on, one fault after another:

1. ``worker``: SIGKILL to one gunicorn worker (a child of the master); the master starts a new one.
2. ``postgres`` (only with ``--db postgresql``): ``pg_ctlcluster <version> main stop -m immediate``, a few seconds
   down, then ``start`` (needs root; the version is the newest under /etc/postgresql, as ``.ci/run`` picks it).
3. ``disk``: the scratch data folder is a small tmpfs mounted for the run (needs root); it is filled to 100% with a
   file, load goes on for a few seconds, then the file is removed. On SQLite the database lives there too, on
   PostgreSQL only the attachment files. When the folder cannot be mounted, this fault is not run and the report
   says why: filling a shared disk instead is never done.

After each fault the time until ``/healthz`` answers and a fresh submission is acknowledged is measured. After the
load: every acknowledged interview must be stored, submitted, with its narrative readable and naming its key and
its attachment decrypting to the digest sent (read with the keyring through the testimony's own accessors); no
idempotency key may hold more than one testimony (nor an interview more than one copy of its file); ``intake audit
verify`` must pass; and the same gunicorn master must still answer ``/healthz`` and take a fresh submission.

The report goes to stdout and to bench/results/chaos-<UTC>.md (and .json). Exit status: 0 every check passed,
1 a check failed, 2 the run could not be made, 130 interrupted.
"""

from __future__ import annotations

import argparse
import copy
import errno
import hashlib
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlencode

from bench.databases import (
    POSTGRESQL,
    SQLITE,
    DatabaseError,
    drop_postgres_database,
    postgres_server_version,
    recreate_postgres_database,
    sqlite_url,
)
from bench.instance import PROJECT_ROOT, Instance, InstanceError, instance_environment, intake_command
from bench.report import RESULTS_DIR, describe_machine, usable_cores, utc_now
from bench.scenarios import INTAKE_BODY, seed_interviewer
from bench.servers import LOCALHOST, GunicornServer, GunicornSettings, ServerError

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/chaos"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
INTERVIEWS = "/api/v1/interviews"
PROBLEM_JSON = "application/problem+json"
FAULTS = ("worker", "postgres", "disk")
PDF_HEAD = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
VERIFY_MARKER = "CHAOS_VERIFY="

EXIT_OK, EXIT_FAILED_CHECK, EXIT_COULD_NOT_RUN, EXIT_INTERRUPTED = 0, 1, 2, 130


def progress(message: str) -> None:
    """Report progress on stderr, keeping stdout for the report."""
    print(f"[chaos] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# HTTP


@dataclass(frozen=True)
class Target:
    """The service under load: where it listens, the interviewer's token, how long one request may take."""

    host: str
    port: int
    token: str
    timeout: float = 15.0


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, media type and the JSON body (None when it is not JSON)."""

    status: int
    media_type: str
    body: Any


class TransportError(Exception):
    """No HTTP answer: the connection was refused, reset or closed, or the request timed out."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def call(target: Target, method: str, path: str, *, json_body: Any = None, data: bytes | None = None,
         headers: dict[str, str] | None = None, query: dict[str, Any] | None = None,
         authorised: bool = True) -> Answer:
    """One request on a new connection (sync workers close theirs after each answer)."""
    if query:
        path = f"{path}?{urlencode(query)}"
    sent = dict(headers or {})
    if authorised:
        sent["Authorization"] = f"Bearer {target.token}"
    sent.setdefault("Accept", "application/json")
    body = data
    if json_body is not None:
        body = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
        sent["Content-Type"] = "application/json"
    connection = http.client.HTTPConnection(target.host, target.port, timeout=target.timeout)
    try:
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        raw = response.read()
    except http.client.RemoteDisconnected:
        raise TransportError("closed without an answer") from None
    except ConnectionRefusedError:
        raise TransportError("connection refused") from None
    except (ConnectionResetError, BrokenPipeError):
        raise TransportError("connection reset") from None
    except TimeoutError:
        raise TransportError("timeout") from None
    except (OSError, http.client.HTTPException) as error:
        name = errno.errorcode.get(error.errno or 0, type(error).__name__) if isinstance(error, OSError) else (
            type(error).__name__)
        raise TransportError(f"socket error ({name})") from None
    finally:
        connection.close()
    media_type = (response.getheader("Content-Type") or "").split(";", 1)[0].strip()
    parsed: Any = None
    if media_type in {"application/json", PROBLEM_JSON}:
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
    return Answer(response.status, media_type, parsed)


def answer_kind(answer: Answer) -> str:
    """How an answer that is not the one hoped for is counted, e.g. ``500 (problem+json)``, ``502 (text/html)``."""
    shown = "problem+json" if answer.media_type == PROBLEM_JSON else (answer.media_type or "no body")
    return f"{answer.status} ({shown})"


def clean_failure(kind: str) -> bool:
    """A refusal the service itself made and explained: a 5xx problem+json answer (500, 503 or 507), or the health
    check's own 503 while the database does not answer."""
    return kind.startswith("5") and (kind.endswith("(problem+json)") or kind == "503 from /healthz")


# ---------------------------------------------------------------------------------------------------------------
# Interviews


def interview_body(key: str, *, submit: bool) -> dict[str, Any]:
    """The bench's whole interview (``bench.scenarios.INTAKE_BODY``) with a narrative naming ``key``."""
    body = copy.deepcopy(INTAKE_BODY)
    testimony = dict(body["testimony"])  # type: ignore[call-overload]
    testimony["narrative"] = f"{testimony['narrative']} Reference {key}."
    body["testimony"] = testimony
    body["submit"] = submit
    return body


@dataclass
class Interview:
    """One interview a client is submitting, and how far it got."""

    key: str
    with_attachment: bool
    attachment: bytes = b""
    testimony_id: int | None = None
    revision: int | None = None
    attached: bool = False
    requests: int = 0

    @property
    def attachment_sha256(self) -> str | None:
        return hashlib.sha256(self.attachment).hexdigest() if self.with_attachment else None


@dataclass(frozen=True)
class Ack:
    """An interview the service acknowledged as submitted."""

    key: str
    testimony_id: int
    attachment_sha256: str | None
    client: str
    requests: int
    at: float  # time.monotonic() when the acknowledgement arrived


class Outcomes:
    """What every client saw, counted by phase (the phase when the answer, or its absence, arrived)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.phase = "load"
        self.counts: Counter[tuple[str, str]] = Counter()
        self.acks: dict[str, Ack] = {}
        self.tried: dict[str, bool] = {}  # key -> with an attachment
        self.given_up: list[str] = []
        self.replays = 0  # creations answered 200: a retry of a request whose first answer was lost
        self.conflicts_resolved = 0  # 409 after a lost upload answer, resolved by reading the interview back

    def count(self, kind: str) -> None:
        with self._lock:
            self.counts[(self.phase, kind)] += 1

    def start(self, interview: Interview) -> None:
        with self._lock:
            self.tried[interview.key] = interview.with_attachment

    def acknowledge(self, ack: Ack) -> None:
        with self._lock:
            self.acks[ack.key] = ack

    def give_up(self, key: str) -> None:
        with self._lock:
            self.given_up.append(key)

    def note_replay(self) -> None:
        with self._lock:
            self.replays += 1

    def note_conflict_resolved(self) -> None:
        with self._lock:
            self.conflicts_resolved += 1

    @property
    def requests(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def kinds_in(self, phase: str) -> Counter[str]:
        with self._lock:
            return Counter({kind: n for (seen, kind), n in self.counts.items() if seen == phase})

    def acks_after(self, moment: float) -> int:
        with self._lock:
            return sum(1 for ack in self.acks.values() if ack.at >= moment)


SUCCESS_KINDS = frozenset({"201 created", "200 replay", "201 attachment stored", "200 submitted", "200 read",
                           "200 healthz", "409 stale revision"})


class GaveUp(Exception):
    """The run ended before the interview was acknowledged."""


class Submitter(threading.Thread):
    """A client that submits interviews one after another until ``stop`` is set (or ``interviews`` are done),
    retrying each step with the same key until acknowledged or until ``give_up`` is set."""

    def __init__(self, name: str, target: Target, outcomes: Outcomes, *, stop: threading.Event,
                 give_up: threading.Event, interviews: int | None = None, attachments: bool = True,
                 max_backoff: float = 1.0) -> None:
        super().__init__(name=name, daemon=True)
        self.target = target
        self.outcomes = outcomes
        self.stop = stop
        self.give_up_event = give_up
        self.interviews = interviews
        self.attachments = attachments
        self.max_backoff = max_backoff
        self.prefix = f"chaos-{secrets.token_hex(6)}-{name}"
        self.random = random.Random(secrets.randbits(64))  # noqa: S311 - load shaping, not secrets
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            number = 0
            while not self.stop.is_set() and (self.interviews is None or number < self.interviews):
                with_attachment = self.attachments and number % 2 == 1
                interview = Interview(key=f"{self.prefix}-{number}", with_attachment=with_attachment,
                                      attachment=self._attachment() if with_attachment else b"")
                number += 1
                try:
                    self.submit(interview)
                except GaveUp:
                    self.outcomes.give_up(interview.key)
                    return
        except BaseException as error:  # noqa: BLE001 - reported by the caller, which fails the run
            self.failure = error

    def _attachment(self) -> bytes:
        return PDF_HEAD + self.random.randbytes(self.random.randint(4096, 16384)) + b"\n%%EOF\n"

    def _send(self, interview: Interview, method: str, path: str, **kwargs: Any) -> Answer | None:
        """Send once; count the outcome. None when there was no answer at all."""
        interview.requests += 1
        try:
            return call(self.target, method, path, **kwargs)
        except TransportError as error:
            self.outcomes.count(error.kind)
            return None

    def submit(self, interview: Interview) -> Ack:
        """Take ``interview`` to an acknowledged submission, retrying each step with its key."""
        self.outcomes.start(interview)
        delay = 0.05
        while True:
            if self.give_up_event.is_set():
                raise GaveUp(interview.key)
            ack, progressed = self._step(interview)
            if ack is not None:
                self.outcomes.acknowledge(ack)
                return ack
            if progressed:  # on to the next step at once
                delay = 0.05
                continue
            time.sleep(delay * (0.5 + self.random.random()))
            delay = min(self.max_backoff, delay * 2)

    def _step(self, interview: Interview) -> tuple[Ack | None, bool]:
        """One request of the interview: the acknowledgement once it is submitted, and whether a step was done."""
        key_header = {"Idempotency-Key": interview.key}
        if interview.testimony_id is None:
            body = interview_body(interview.key, submit=not interview.with_attachment)
            answer = self._send(interview, "POST", INTERVIEWS, json_body=body, headers=key_header)
            if answer is None or not self._expected(answer, {200, 201}):
                return None, False
            self.outcomes.count("201 created" if answer.status == 201 else "200 replay")
            if answer.status == 200:
                self.outcomes.note_replay()
            interview.testimony_id = int(answer.body["id"])
            interview.revision = int(answer.body["revision"])
            if answer.body["status"] == "submitted":
                return self._ack(interview), True
            return None, True
        where = f"{INTERVIEWS}/{interview.testimony_id}"
        if interview.with_attachment and not interview.attached:
            answer = self._send(
                interview, "POST", f"{where}/attachments", data=interview.attachment,
                headers={"Content-Type": "application/octet-stream", "X-Filename": f"{interview.key}.pdf"},
                query={"revision": interview.revision, "medium": "document", "graphic": "false"})
            if answer is not None and answer.status == 409:
                self.outcomes.count("409 stale revision")
                return self._read_back(interview)
            if answer is None or not self._expected(answer, {201}):
                return None, False
            self.outcomes.count("201 attachment stored")
            interview.attached = True
            interview.revision = int(answer.body["revision"])
            return None, True
        answer = self._send(interview, "POST", f"{where}/submit", json_body={"revision": interview.revision},
                            headers=key_header)
        if answer is not None and answer.status == 409:
            self.outcomes.count("409 stale revision")
            return self._read_back(interview)
        if answer is None or not self._expected(answer, {200}):
            return None, False
        self.outcomes.count("200 submitted")
        if answer.body.get("status") != "submitted":
            raise RuntimeError(f"submit answered 200 with status {answer.body.get('status')!r}")
        return self._ack(interview), True

    def _read_back(self, interview: Interview) -> tuple[Ack | None, bool]:
        """After a 409 (the revision moved on: an earlier attempt was stored), read the interview as it stands."""
        answer = self._send(interview, "GET", f"{INTERVIEWS}/{interview.testimony_id}")
        if answer is None or not self._expected(answer, {200}):
            return None, False
        self.outcomes.count("200 read")
        interview.revision = int(answer.body["revision"])
        digests = [item.get("sha256") for item in answer.body.get("attachments") or []]
        if interview.with_attachment and not interview.attached and interview.attachment_sha256 in digests:
            interview.attached = True
            self.outcomes.note_conflict_resolved()
        if answer.body["status"] == "submitted":
            return self._ack(interview), True
        return None, True

    def _expected(self, answer: Answer, statuses: set[int]) -> bool:
        """Whether the answer is one of ``statuses`` with a JSON body; anything else is counted as an error."""
        if answer.status in statuses and isinstance(answer.body, dict):
            return True
        kind = answer_kind(answer)
        self.outcomes.count(kind)
        if answer.status in {400, 401, 403, 404, 413, 415, 422}:
            # Sending the same thing again cannot help: a fault of the harness or a bug, which fails the run.
            raise RuntimeError(f"the service refused a request with {kind}: {answer.body}")
        return False

    def _ack(self, interview: Interview) -> Ack:
        assert interview.testimony_id is not None
        return Ack(key=interview.key, testimony_id=interview.testimony_id,
                   attachment_sha256=interview.attachment_sha256, client=self.name, requests=interview.requests,
                   at=time.monotonic())


def recovered(target: Target, outcomes: Outcomes, *, since: float, deadline: float, label: str) -> float | None:
    """Seconds from ``since`` until ``/healthz`` answers 200 and a fresh whole interview is acknowledged; None if
    not by ``deadline`` (monotonic). The fresh interview is recorded with the others, and verified with them."""
    delay = 0.05
    while time.monotonic() < deadline:
        try:
            health = call(target, "GET", "/healthz", authorised=False)
        except TransportError as error:
            outcomes.count(error.kind)
        else:
            if health.status == 200:
                outcomes.count("200 healthz")
                break
            outcomes.count(f"{health.status} from /healthz")
        time.sleep(delay)
        delay = min(0.5, delay * 2)
    else:
        return None
    probe = Submitter(f"probe-{label}", target, outcomes, stop=threading.Event(), give_up=threading.Event(),
                      attachments=False, max_backoff=0.5)
    timer = threading.Timer(max(0.0, deadline - time.monotonic()), probe.give_up_event.set)
    timer.start()
    try:
        probe.submit(Interview(key=f"{probe.prefix}-0", with_attachment=False))
    except GaveUp:
        return None
    finally:
        timer.cancel()
    return time.monotonic() - since


# ---------------------------------------------------------------------------------------------------------------
# Processes and faults


def child_pids(parent: int) -> list[int]:
    """The processes whose parent is ``parent`` (gunicorn's workers, for its master), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (2nd field) is in parentheses and may hold spaces: the fields after it are fixed.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(parent):
            found.append(int(entry.name))
    return sorted(found)


def alive(pid: int) -> bool:
    """Whether the process runs (exists and is not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def wait_for_workers(master: int, workers: int, *, without: int, timeout: float) -> float | None:
    """Seconds until ``master`` has ``workers`` children again, none of them ``without``; None after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        pids = child_pids(master)
        if len(pids) >= workers and without not in pids:
            return time.monotonic() - started
        time.sleep(0.02)
    return None


def kill_worker(master: int) -> int:
    """SIGKILL one of the master's workers; return its pid."""
    pids = child_pids(master)
    if not pids:
        raise RuntimeError("gunicorn has no worker to kill")
    victim = random.choice(pids)  # noqa: S311 - any worker will do
    os.kill(victim, signal.SIGKILL)
    return victim


def postgres_version() -> str:
    """The newest PostgreSQL version with a cluster under /etc/postgresql (as .ci/run picks it)."""
    try:
        versions = [entry.name for entry in Path("/etc/postgresql").iterdir() if entry.is_dir()]
    except OSError:
        versions = []
    if not versions:
        raise RuntimeError("no PostgreSQL cluster under /etc/postgresql")
    return max(versions, key=lambda name: [int(part) if part.isdigit() else 0 for part in name.split(".")])


def pg_ctlcluster(version: str, action: str, *options: str) -> None:
    """Run ``pg_ctlcluster [options] <version> main <action>`` (as root it acts as the cluster's owner)."""
    completed = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", *options, version, "main", action],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"pg_ctlcluster {version} main {action} failed ({completed.returncode}): "
                           f"{(completed.stderr or completed.stdout).strip()}")


def mount_tmpfs(folder: Path, size_mib: int) -> str | None:
    """Mount a tmpfs of ``size_mib`` MiB on ``folder``; None when done, else why it could not be."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    if shutil.which("mount") is None:
        return "the mount command is missing"
    completed = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}M,mode=0700", "tmpfs", str(folder)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, check=False)
    if completed.returncode != 0:
        return f"mount -t tmpfs failed: {(completed.stderr or completed.stdout).strip()}"
    return None


def unmount(folder: Path) -> None:
    """Unmount ``folder``, lazily if something still holds it."""
    completed = subprocess.run(["umount", str(folder)], stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
                               check=False)
    if completed.returncode != 0:
        subprocess.run(["umount", "-l", str(folder)], stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
                       check=False)


def is_mount_point(folder: Path) -> bool:
    return os.path.ismount(folder)


def free_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def fill(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` to the last byte with one file; return that file."""
    filler = folder / "chaos-filler"
    block = b"\0" * (1 << 20)
    with open(filler, "wb", buffering=0) as handle:
        for size in (1 << 20, 1 << 12, 1):
            piece = block[:size]
            while True:
                try:
                    handle.write(piece)
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
                    break
    return filler


# ---------------------------------------------------------------------------------------------------------------
# Checks after the load


def verify_inside(path: str) -> None:
    """Run inside the instance (its environment, ``create_app()``): check every acknowledgement listed in the JSON
    file at ``path`` against the database, and print the findings as JSON after ``CHAOS_VERIFY=``."""
    import sqlalchemy as sa

    from intake import create_app
    from intake.accounts.models import Account
    from intake.core.db import db
    from intake.testimonies.models import Attachment, Incident, Testimony
    from intake.testimonies.operations import attachment_content, read_narrative

    given = json.loads(Path(path).read_text(encoding="utf-8"))
    acks: dict[str, dict[str, Any]] = given["acks"]
    tried: dict[str, bool] = given["tried"]
    app = create_app()
    problems: list[str] = []
    with app.app_context():
        account = db.session.scalar(sa.select(Account).where(Account.username == given["username"]))
        if account is None:
            raise SystemExit(f"no account {given['username']!r}")
        mine = Testimony.interviewer_id == account.id
        per_key = db.session.execute(sa.select(Testimony.idempotency_key, sa.func.count()).where(mine)
                                     .group_by(Testimony.idempotency_key)).all()
        per_submission_key = db.session.execute(
            sa.select(Testimony.submission_key, sa.func.count()).where(mine, Testimony.submission_key.is_not(None))
            .group_by(Testimony.submission_key)).all()
        duplicates = sum(int(n) - 1 for key, n in per_key if key is not None and int(n) > 1)
        duplicates += sum(int(n) - 1 for _key, n in per_submission_key if int(n) > 1)
        stored_keys = {str(key) for key, _n in per_key if key is not None}
        strays = sum(int(n) for key, n in per_key if key is None or key not in tried)
        attachments_per = dict(db.session.execute(
            sa.select(Attachment.testimony_id, sa.func.count()).join(Testimony).where(mine)
            .group_by(Attachment.testimony_id)).all())
        incidents_per = dict(db.session.execute(
            sa.select(Incident.testimony_id, sa.func.count()).join(Testimony).where(mine)
            .group_by(Incident.testimony_id)).all())
        duplicate_attachments = sum(max(0, int(n) - 1) for n in attachments_per.values())
        duplicate_incidents = sum(max(0, int(n) - 2) for n in incidents_per.values())
        lost = unreadable = 0
        for key, ack in acks.items():
            testimony = db.session.scalar(sa.select(Testimony).where(mine, Testimony.idempotency_key == key))
            if testimony is None or testimony.id != ack["testimony_id"] or testimony.status != "submitted":
                lost += 1
                problems.append(f"{key}: " + ("not stored" if testimony is None else
                                              f"stored as {testimony.id} ({testimony.status}), acknowledged as "
                                              f"{ack['testimony_id']}"))
                continue
            narrative = read_narrative(testimony)
            readable = isinstance(narrative, str) and f"Reference {key}." in narrative
            if incidents_per.get(testimony.id, 0) != 2:
                readable = False
            if ack["attachment_sha256"] is not None:
                files = list(testimony.attachments)
                if not files:
                    readable = False
                for attachment in files:
                    digest = hashlib.sha256()
                    content = attachment_content(attachment, app.config)
                    if isinstance(content, Iterator):
                        for piece in content:
                            digest.update(piece)
                    if digest.hexdigest() != ack["attachment_sha256"]:
                        readable = False
            if not readable:
                unreadable += 1
                problems.append(f"{key}: stored as {testimony.id} but not readable as sent")
        orphans: list[float] = []  # when each file no attachment row names was written (epoch seconds)
        blob_path = Path(app.config["BLOB_PATH"])
        if blob_path.is_dir():
            named = set(db.session.scalars(sa.select(Attachment.blob_name)))
            orphans = sorted(item.stat().st_mtime for item in blob_path.glob("*/*")
                             if item.is_file() and item.name not in named)
        result = {
            "acknowledged": len(acks),
            "lost": lost,
            "unreadable": unreadable,
            "duplicates": duplicates,
            "duplicate_attachments": duplicate_attachments,
            "duplicate_incidents": duplicate_incidents,
            "strays": strays,
            "stored": len(stored_keys),
            "stored_unacknowledged": len([key for key in stored_keys if key in tried and key not in acks]),
            "orphan_files": len(orphans),
            "orphans_written_at": orphans,
            "problems": problems[:20],
        }
        db.session.rollback()
    print(VERIFY_MARKER + json.dumps(result), flush=True)


def write_acks(path: Path, outcomes: Outcomes, username: str) -> None:
    """The acknowledgements and the keys tried, for ``verify_inside``."""
    path.write_text(json.dumps({
        "username": username,
        "acks": {key: {"testimony_id": ack.testimony_id, "attachment_sha256": ack.attachment_sha256}
                 for key, ack in outcomes.acks.items()},
        "tried": outcomes.tried,
    }), encoding="utf-8")


def audit_verify(instance: Instance) -> tuple[bool, str]:
    """Sign a checkpoint, then run ``intake audit verify``; whether it passed, and its last line."""
    instance.run_cli("audit", "checkpoint")
    completed = subprocess.run([*intake_command(), "audit", "verify"], cwd=instance.cwd, env=instance.env,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600, check=False)
    lines = completed.stdout.strip().splitlines()
    problems = [line for line in completed.stderr.splitlines() if not line.startswith("{")]  # not the app's log
    passed = completed.returncode == 0 and any(line.startswith("OK:") for line in lines)
    return passed, " ".join(lines[-3:] + ([] if passed else problems[-10:]))


def sqlite_integrity(path: Path) -> str:
    """``PRAGMA integrity_check`` of the SQLite file (``ok`` when sound)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        rows = connection.execute("PRAGMA integrity_check").fetchall()
    finally:
        connection.close()
    return "; ".join(str(row[0]) for row in rows[:5])


# ---------------------------------------------------------------------------------------------------------------
# The run


@dataclass
class FaultResult:
    """One fault: what was done, when (seconds into the load), for how long, and how long recovery took."""

    name: str
    ran: bool
    what: str
    at_s: float | None = None
    held_s: float | None = None
    recovered_s: float | None = None
    respawned_s: float | None = None
    answers: dict[str, int] = field(default_factory=dict)
    clean: bool | None = None
    note: str = ""


@dataclass
class RunResult:
    """Everything the report shows."""

    started_at: str
    database: str
    settings: dict[str, Any]
    faults: list[FaultResult]
    counts: dict[str, dict[str, int]]
    acknowledged: int = 0
    given_up: int = 0
    replays: int = 0
    conflicts_resolved: int = 0
    requests: int = 0
    load_seconds: float = 0.0
    verification: dict[str, Any] = field(default_factory=dict)
    audit_ok: bool = False
    audit_output: str = ""
    integrity: str = "n/a"
    orphans_at_s: list[float] = field(default_factory=list)  # when each orphan attachment file was written
    final_health: bool = False
    final_submission_s: float | None = None
    same_master: bool = False
    workers_at_end: int = 0
    notes: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def checks(self) -> list[tuple[str, str, bool]]:
        v = self.verification
        duplicates = int(v.get("duplicates", 0)) + int(v.get("duplicate_attachments", 0)) + int(
            v.get("duplicate_incidents", 0))
        faults_clean = all(f.clean is not False for f in self.faults)
        recovered = all(f.recovered_s is not None for f in self.faults if f.ran)
        return [
            ("acknowledged submissions lost", str(v.get("lost", "?")), v.get("lost") == 0),
            ("acknowledged but not readable as sent", str(v.get("unreadable", "?")), v.get("unreadable") == 0),
            ("duplicates", f"{duplicates} (testimonies per key {v.get('duplicates', '?')}, attachments "
                           f"{v.get('duplicate_attachments', '?')}, incidents {v.get('duplicate_incidents', '?')})",
             duplicates == 0 and bool(v)),
            ("testimonies under keys no client sent", str(v.get("strays", "?")), v.get("strays") == 0),
            ("audit verify", "ok" if self.audit_ok else f"FAILED: {self.audit_output}", self.audit_ok),
            ("faults answered cleanly (5xx problem+json, no dropped connection)",
             "yes" if faults_clean else "NO", faults_clean),
            ("recovered after every fault", "yes" if recovered else "NO", recovered),
            ("recovered without a restart by hand",
             "yes: same gunicorn master, /healthz 200, a fresh submission acknowledged"
             if self.same_master and self.final_health and self.final_submission_s is not None else "NO",
             self.same_master and self.final_health and self.final_submission_s is not None),
            *([("SQLite integrity_check", self.integrity, self.integrity == "ok")] if self.database == SQLITE
              else []),
        ]

    @property
    def passed(self) -> bool:
        return all(ok for _name, _value, ok in self.checks)


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def render_markdown(result: RunResult) -> str:
    """The report as Markdown."""
    s = result.settings
    lines = [
        f"# Faults under load — {result.started_at}",
        "",
        f"Database **{result.database}**, gunicorn {s['workers']} sync workers, {s['clients']} clients, "
        f"{result.load_seconds:.0f} s of load, Redis `{s['redis_url']}`, attachments as files in a "
        f"{s['data_dir']}. Git revision {result.machine.get('git_revision', '?')}.",
        "",
        "## Result",
        "",
        "| check | result |",
        "| --- | --- |",
        f"| acknowledged submissions | {result.acknowledged} |",
    ]
    lines += [f"| {name} | {value}{'' if ok else ' **(FAILED)**'} |" for name, value, ok in result.checks]
    v = result.verification
    lines += [
        "",
        f"Requests: {result.requests} ({result.requests / result.load_seconds if result.load_seconds else 0:.1f}/s). "
        f"Creations answered as replays of a request whose first answer was lost: {result.replays}; uploads found "
        f"stored after a lost answer (409, read back): {result.conflicts_resolved}. Interviews still unacknowledged "
        f"when the run gave up on them: {result.given_up}; stored without an acknowledgement (the answer was lost "
        f"and the run ended before a retry): {v.get('stored_unacknowledged', '?')}. Attachment files left with no "
        f"attachment row (written by a request that did not commit): {v.get('orphan_files', '?')}"
        + (f", written at {', '.join(f'{at:.2f}' for at in result.orphans_at_s)} s into the load" if result.orphans_at_s
           else "") + ".",
        "",
        "## Faults",
        "",
        "| fault | at s | what | held s | recovered after s | worker respawned after s | answers during the fault "
        "and recovery | clean |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for fault in result.faults:
        answers = ", ".join(f"{kind} ×{n}" for kind, n in sorted(fault.answers.items())) or "—"
        clean = "—" if fault.clean is None else ("yes" if fault.clean else "NO")
        what = fault.what if fault.ran else f"not run: {fault.note}"
        lines.append(f"| {fault.name} | {_seconds(fault.at_s)} | {what} | {_seconds(fault.held_s)} | "
                     f"{_seconds(fault.recovered_s)} | {_seconds(fault.respawned_s)} | {answers} | {clean} |")
    lines += [
        "",
        "\"Recovered after\" runs from the end of the fault (the kill; PostgreSQL started again; the filler removed) "
        "until `/healthz` answered 200 and a fresh interview was acknowledged. \"Clean\" means that every request "
        "that failed during the fault and the recovery got a 5xx `application/problem+json` answer from the service "
        "(not judged for the killed worker, whose open connections drop by the nature of the fault).",
        "",
        "## Requests by kind and phase",
        "",
    ]
    phases = list(result.counts)
    kinds = sorted({kind for counts in result.counts.values() for kind in counts},
                   key=lambda kind: (kind not in SUCCESS_KINDS, kind))
    lines.append("| kind | " + " | ".join(phases) + " | total |")
    lines.append("| --- | " + " | ".join("---" for _ in phases) + " | --- |")
    for kind in kinds:
        cells = [str(result.counts[phase].get(kind, 0) or "") for phase in phases]
        total = sum(result.counts[phase].get(kind, 0) for phase in phases)
        label = kind if kind in SUCCESS_KINDS else f"error: {kind}"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {total} |")
    lines += ["", f"`intake audit verify`: {result.audit_output}", ""]
    if v.get("problems"):
        lines += ["## Problems found", "", *[f"- {problem}" for problem in v["problems"]], ""]
    if result.notes:
        lines += ["## Notes", "", *[f"- {note}" for note in result.notes], ""]
    m = result.machine
    lines += [
        "## Machine",
        "",
        f"{m.get('cpu_model')}, {m.get('usable_cores')} usable cores, {m.get('memory_gib')} GiB; {m.get('os')}; "
        f"{m.get('python')}; gunicorn {m.get('gunicorn')}, Flask {m.get('flask')}, SQLAlchemy {m.get('sqlalchemy')}, "
        f"SQLite {m.get('sqlite')}, PostgreSQL {m.get('postgresql')}.",
        "",
    ]
    return "\n".join(lines)


def write_report(result: RunResult, directory: Path) -> Path:
    """Write chaos-<UTC>.md and .json into ``directory``; return the Markdown file."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = "chaos-" + result.started_at.replace("-", "").replace(":", "").replace("+0000", "Z")
    markdown = directory / f"{stem}.md"
    data = asdict(result)
    data["checks"] = [{"check": name, "result": value, "ok": ok} for name, value, ok in result.checks]
    data["passed"] = result.passed
    for path, text in ((markdown, render_markdown(result)), (directory / f"{stem}.json",
                                                             json.dumps(data, indent=2) + "\n")):
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    return markdown


def flush_redis(url: str) -> str | None:
    """Empty the Redis database the run uses; None when done, else why not."""
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.flushdb()
        client.close()
    except Exception as error:  # noqa: BLE001 - any failure means Redis is not usable; the reason is reported
        return f"{url} did not answer ({type(error).__name__})"
    return None


class Run:
    """One chaos run, from a fresh instance to the checks."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.outcomes = Outcomes()
        self.load_started = 0.0
        self.load_started_wall = 0.0

    def _elapsed(self) -> float:
        return time.monotonic() - self.load_started

    def execute(self) -> RunResult:
        args = self.args
        started = utc_now()
        faults = [FaultResult(name=name, ran=False, what="") for name in args.faults]
        result = RunResult(started_at=started.strftime("%Y-%m-%dT%H:%M:%SZ"), database=args.db, settings={},
                           faults=faults, counts={})
        pg_version = postgres_server_version(args.postgres_url) if args.db == POSTGRESQL else None
        if args.db == POSTGRESQL and pg_version is None:
            raise DatabaseError(f"PostgreSQL is not reachable at {args.postgres_url}")
        result.machine = describe_machine(wrk_version="not used", postgres_version=pg_version,
                                          project_root=PROJECT_ROOT)
        result.machine.pop("wrk", None)
        problem = flush_redis(args.redis_url)
        if problem is not None:
            raise RuntimeError(f"Redis is needed for limits and sessions: {problem}")
        with ExitStack() as stack:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"chaos-{args.db}-")))
            instance_dir, data_dir = root / "instance", root / "data"
            instance_dir.mkdir(mode=0o700)
            data_dir.mkdir(mode=0o700)
            mount_problem = mount_tmpfs(data_dir, args.tmpfs_mib)
            if mount_problem is None:
                stack.callback(unmount, data_dir)
                data_where = f"tmpfs of {args.tmpfs_mib} MiB"
            else:
                data_where = "plain folder (no tmpfs: the disk-full fault is not run)"
                result.notes.append(f"The scratch data folder could not be a tmpfs ({mount_problem}), so the "
                                    "disk-full fault was not run: filling the machine's shared disk instead is "
                                    "never done.")
            if args.db == POSTGRESQL:
                database_url = args.postgres_url
                progress("recreating the PostgreSQL database")
                recreate_postgres_database(database_url)
                stack.callback(drop_postgres_database, database_url)
            else:
                database_url = sqlite_url(data_dir)
            blob_dir = data_dir / "blobs"
            blob_dir.mkdir(mode=0o700)
            env = instance_environment(instance_dir, database_url, {
                "INTAKE_REDIS_URL": args.redis_url,
                "INTAKE_BLOB_STORAGE": "files",
                "INTAKE_BLOB_PATH": str(blob_dir),
                "INTAKE_LOG_LEVEL": "WARNING",
            })
            stack.callback(flush_redis, args.redis_url)
            instance = Instance(env)
            progress("creating the keyring and migrating")
            instance.initialise()
            seeded = seed_interviewer(instance)
            result.settings = {"workers": args.workers, "clients": args.clients, "duration_s": args.duration,
                               "redis_url": args.redis_url, "data_dir": data_where,
                               "pg_down_s": args.pg_down_seconds, "disk_full_s": args.disk_full_seconds,
                               "request_timeout_s": args.request_timeout, "faults": list(args.faults)}
            progress(f"starting gunicorn with {args.workers} workers")
            server = stack.enter_context(GunicornServer(
                label=f"app on {args.db}", app_spec="app:app", settings=GunicornSettings(workers=args.workers),
                cwd=PROJECT_ROOT, env=env, log_path=instance_dir / "gunicorn.log", health_path="/healthz"))
            master = server.pid
            assert master is not None
            target = Target(LOCALHOST, server.port, seeded["token"], timeout=args.request_timeout)
            self._load(target, master, data_dir, faults, result, mount_problem, stack)
            progress("checking what was acknowledged")
            result.same_master = server.pid == master and alive(master)
            result.workers_at_end = len(child_pids(master))
            ack_file = instance_dir / "acks.json"
            write_acks(ack_file, self.outcomes, seeded["username"])
            output = instance.run_python(f"from bench.chaos import verify_inside; verify_inside({str(ack_file)!r})")
            result.verification = json.loads(next(
                line[len(VERIFY_MARKER):] for line in output.splitlines() if line.startswith(VERIFY_MARKER)))
            result.orphans_at_s = [round(at - self.load_started_wall, 2)
                                   for at in result.verification.pop("orphans_written_at", [])]
            result.audit_ok, result.audit_output = audit_verify(instance)
            if args.db == SQLITE:
                result.integrity = sqlite_integrity(data_dir / "intake.sqlite3")
        return result

    def _load(self, target: Target, master: int, data_dir: Path, faults: list[FaultResult], result: RunResult,
              mount_problem: str | None, stack: ExitStack) -> None:
        args = self.args
        outcomes = self.outcomes
        stop, give_up = threading.Event(), threading.Event()
        clients = [Submitter(f"c{number}", target, outcomes, stop=stop, give_up=give_up)
                   for number in range(args.clients)]
        gap = max(3.0, args.duration / (len(faults) + 1))
        self.load_started = time.monotonic()
        self.load_started_wall = time.time()
        for client in clients:
            client.start()
        try:
            for index, fault in enumerate(faults, start=1):
                self._sleep_until(index * gap, clients)
                self._fault(fault, target, master, data_dir, mount_problem)
            self._sleep_until((len(faults) + 1) * gap, clients)
            outcomes.phase = "drain"
            progress(f"load ends: clients finish their interviews (at most {args.drain_seconds:.0f} s)")
            stop.set()
            deadline = time.monotonic() + args.drain_seconds
            for client in clients:
                client.join(max(0.0, deadline - time.monotonic()))
        finally:
            stop.set()
            give_up.set()
            for client in clients:
                client.join(30)
        result.load_seconds = self._elapsed()
        failures = [client.failure for client in clients if client.failure is not None]
        if failures:
            raise RuntimeError(f"a client failed: {failures[0]!r}") from failures[0]
        outcomes.phase = "after"
        final_start = time.monotonic()
        result.final_submission_s = recovered(target, outcomes, since=final_start, deadline=final_start + 60,
                                              label="final")
        result.final_health = result.final_submission_s is not None
        result.counts = {}
        for phase in ["load", *[f.name for f in faults if f.ran], "drain", "after"]:
            result.counts[phase] = dict(outcomes.kinds_in(phase))
        result.acknowledged = len(outcomes.acks)
        result.given_up = len(outcomes.given_up)
        result.replays = outcomes.replays
        result.conflicts_resolved = outcomes.conflicts_resolved
        result.requests = outcomes.requests

    def _sleep_until(self, moment: float, clients: Sequence[Submitter]) -> None:
        while self._elapsed() < moment:
            if any(client.failure is not None for client in clients):
                return
            time.sleep(0.1)

    def _fault(self, fault: FaultResult, target: Target, master: int, data_dir: Path,
               mount_problem: str | None) -> None:
        args = self.args
        outcomes = self.outcomes
        recovery_limit = args.recovery_seconds
        if fault.name == "postgres" and args.db != POSTGRESQL:
            fault.note = "SQLite run"
            return
        if fault.name == "postgres" and os.geteuid() != 0:
            fault.note = "pg_ctlcluster needs root"
            return
        if fault.name == "disk" and mount_problem is not None:
            fault.note = mount_problem
            return
        fault.at_s = self._elapsed()
        outcomes.phase = fault.name
        fault.ran = True
        if fault.name == "worker":
            before = len(child_pids(master))
            victim = kill_worker(master)
            ended = time.monotonic()
            fault.what = f"SIGKILL to worker {victim} of {before}"
            progress(f"fault: {fault.what}")
            fault.held_s = 0.0
            fault.respawned_s = wait_for_workers(master, before, without=victim, timeout=recovery_limit)
        elif fault.name == "postgres":
            version = postgres_version()
            progress(f"fault: PostgreSQL {version} stop -m immediate")
            began = time.monotonic()
            try:
                pg_ctlcluster(version, "stop", "-m", "immediate")
                time.sleep(args.pg_down_seconds)
            finally:
                pg_ctlcluster(version, "start")
            ended = time.monotonic()
            fault.held_s = ended - began
            fault.what = f"PostgreSQL {version}: stop -m immediate, start {args.pg_down_seconds:g} s later"
            progress("PostgreSQL started again")
        else:
            began = time.monotonic()
            filler = fill(data_dir)
            left = free_bytes(data_dir)
            progress(f"fault: {data_dir.name} filled ({left} bytes free), load goes on "
                     f"{args.disk_full_seconds:g} s")
            try:
                time.sleep(args.disk_full_seconds)
            finally:
                filler.unlink()
            ended = time.monotonic()
            fault.held_s = ended - began
            fault.what = (f"data folder (tmpfs {args.tmpfs_mib} MiB: "
                          f"{'database and ' if args.db == SQLITE else ''}attachment files) filled to 100% "
                          f"({left} bytes free) for {args.disk_full_seconds:g} s, then freed")
            progress("disk space freed")
        fault.recovered_s = recovered(target, outcomes, since=ended, deadline=ended + recovery_limit,
                                      label=fault.name)
        progress(f"{fault.name}: recovered after {_seconds(fault.recovered_s)} s")
        kinds = outcomes.kinds_in(fault.name)
        fault.answers = {kind: n for kind, n in kinds.items() if kind not in SUCCESS_KINDS}
        fault.clean = None if fault.name == "worker" else all(clean_failure(kind) for kind in fault.answers)
        outcomes.phase = "load"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    default_workers = max(2, 2 * usable_cores())
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description="Faults under load (a worker killed, PostgreSQL stopped, the data disk full): afterwards every "
                    "acknowledged submission must be there, once, readable, and the audit log must verify.")
    parser.add_argument("--db", choices=[POSTGRESQL, SQLITE], default=POSTGRESQL,
                        help="database to run against (default: %(default)s)")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                        help="SQLAlchemy URL of the PostgreSQL database; it is dropped and recreated, and dropped at "
                             "the end (default: %(default)s)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                        help="Redis database for limits and sessions; emptied at the start and the end "
                             "(default: %(default)s)")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="seconds of load, the faults spread evenly over it (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=8, help="client threads (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=default_workers,
                        help="gunicorn sync workers (default: 2 x usable cores, at least 2 = %(default)s)")
    parser.add_argument("--fault", action="append", dest="faults", choices=FAULTS,
                        help="run only this fault (repeatable; default: all, in the order worker, postgres, disk)")
    parser.add_argument("--pg-down-seconds", type=float, default=3.0,
                        help="how long PostgreSQL stays stopped (default: %(default)s)")
    parser.add_argument("--disk-full-seconds", type=float, default=5.0,
                        help="how long the data folder stays full (default: %(default)s)")
    parser.add_argument("--tmpfs-mib", type=int, default=256,
                        help="size of the scratch data folder's tmpfs in MiB (default: %(default)s)")
    parser.add_argument("--request-timeout", type=float, default=15.0,
                        help="seconds a client waits for one answer (default: %(default)s)")
    parser.add_argument("--recovery-seconds", type=float, default=60.0,
                        help="longest wait for the service to recover after a fault (default: %(default)s)")
    parser.add_argument("--drain-seconds", type=float, default=60.0,
                        help="how long clients may go on retrying their last interview after the load "
                             "(default: %(default)s)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help="where the Markdown and JSON reports go (default: bench/results)")
    args = parser.parse_args(argv)
    args.faults = [name for name in FAULTS if name in (args.faults or FAULTS)]
    if args.clients < 1 or args.workers < 2 or args.duration < 3:
        parser.error("--clients must be at least 1, --workers at least 2 and --duration at least 3")
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = Run(args).execute()
    except KeyboardInterrupt:
        progress("interrupted")
        return EXIT_INTERRUPTED
    except (DatabaseError, InstanceError, ServerError, RuntimeError, OSError) as error:
        progress(f"the run could not be made: {error}")
        return EXIT_COULD_NOT_RUN
    path = write_report(result, args.results_dir)
    print(render_markdown(result))
    progress(f"report written to {path}")
    return EXIT_OK if result.passed else EXIT_FAILED_CHECK


if __name__ == "__main__":
    sys.exit(main())

