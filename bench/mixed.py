"""Mixed load: ``python -m bench.mixed [--db postgresql|sqlite] [--records 100000] [--duration 60] [--workers N]
[--interviewers 8] [--reviewers 4] [--legal 1]`` (``make bench-mixed``).

Interviewers submitting, reviewers opening records and a legal officer building case files, all at once, driven by
locust (`bench/locustfile.py`, the users' steps in `bench/mixed_flows.py`) against gunicorn with several sync
workers, rate limits and sessions in Redis, and case files built by `intake export work` beside it
(``EXPORT_RUNNER=worker``, the production shape). The instance is fresh: keyring, migrated database, `--records`
submitted records written by `bench.review.populate`, one reviewer account per reviewer sharing the bench reviewer's
assignments, one legal officer per `--legal` with a case of `--case-records` records and a UN-mechanism recipient
with an age key, and the bench interviewer with an API token.

Afterwards: no request failed and no user's task raised; every acknowledged submission must be stored under its
key with its id and pseudonym, submitted, with the digest of the body sent, and readable by its interviewer through
`open_record`; nothing stored beyond what was sent (one key cannot be stored twice: a unique key guarantees it);
reviewers opened records; every case file requested must be built, downloaded whole and verified with the
recipient's age identity (`intake export verify`'s checks). The report gives per endpoint the requests, requests
per second, p50/p95/p99 and failures, and the exports' build durations.

Results go to bench/results/mixed-<UTC>.md and .json. Exit status: 0 clean, 1 errors seen or a check failed,
2 the run could not be made, 130 interrupted.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

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
from bench.scenarios import INTERVIEWER_USERNAME, read_marker, seed_interviewer
from bench.servers import GunicornServer, GunicornSettings, ServerError

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/intake_bench_mixed"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
PREPARED_MARKER = "MIXED_PREPARED="
VERIFY_MARKER = "MIXED_VERIFY="
LEGAL_PREFIX = "bench-legal"
RECIPIENT_KEY = "bench-mixed-un"
CASE_REFERENCE = "BENCH-MIXED"
PURPOSE = "un_mechanisms"
BUILD_TIMEOUT_S = 180.0
POLL_SECONDS = 3.0  # the export page reloads itself this often while the build runs
EXIT_OK, EXIT_FAILED, EXIT_COULD_NOT_RUN, EXIT_INTERRUPTED = 0, 1, 2, 130
LOCUST_EXIT_EXCEPTIONS = 3  # locust's exit code when a user's task raised (see bench/locustfile.py)


def progress(message: str) -> None:
    """Report progress on stderr, keeping stdout for the report."""
    print(f"[bench.mixed] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Inside the instance (its environment, ``create_app()``)


def prepare_inside(records: int, reviewers: int, legal: int, case_records: int, identity_path: str) -> None:
    """Populate through `bench.review`, add the reviewers and legal officers, the recipient and the case; write the
    recipient's age identity to ``identity_path``; print what the users need as JSON after ``MIXED_PREPARED=``."""
    import pyotp
    import pyrage
    import sqlalchemy as sa

    from bench import review
    from intake import create_app
    from intake.accounts import operations as accounts
    from intake.cases import operations as cases
    from intake.core.access.models import Assignment
    from intake.core.db import db
    from intake.recipients.operations import RecipientInput, register
    from intake.testimonies.models import Testimony

    app = create_app()
    with app.app_context():
        populated = review.populate(records, progress=lambda text: print(text, file=sys.stderr, flush=True))
        people = [{"username": review.REVIEWER, "secret": populated.reviewer_secret}]
        for number in range(2, reviewers + 1):
            secret = pyotp.random_base32()
            account = accounts.create_account(username=f"{review.REVIEWER}-{number}", roles=["reviewer"],
                                              password=review.REVIEWER_PASSWORD, totp_secret=secret)
            db.session.flush()
            # The same records as the bench reviewer, so every reviewer's queue is as full.
            columns = ("testimony_id", "assigned_at", "assigned_by_id")
            db.session.execute(sa.insert(Assignment).from_select(
                [*columns, "reviewer_id"],
                sa.select(*[getattr(Assignment, c) for c in columns], sa.literal(account.id))
                .where(Assignment.reviewer_id == populated.reviewer_id)))
            people.append({"username": account.username, "secret": secret})
        admin = accounts.create_account(username="bench-mixed-admin", roles=["admin"])
        identity = pyrage.x25519.Identity.generate()
        identity_file = Path(identity_path)
        identity_file.touch(mode=0o600)
        identity_file.write_text(str(identity) + "\n", encoding="utf-8")
        recipient = register(RecipientInput(
            key=RECIPIENT_KEY, name="Bench UN mechanism", category="un_mechanism", country=None,
            is_authority=False, agreement_reference="BENCH-AGR-1", agreement_date=utc_now().date(),
            contact="desk@bench.invalid", age_recipients=[str(identity.to_public())]), actor=admin)
        officers, case_ids = [], []
        step = max(1, len(populated.openable) // max(1, case_records))
        chosen = populated.openable[::step][:case_records]
        for number in range(1, legal + 1):
            secret = pyotp.random_base32()
            officer = accounts.create_account(username=f"{LEGAL_PREFIX}-{number}", roles=["legal"],
                                              password=review.REVIEWER_PASSWORD, totp_secret=secret)
            db.session.flush()
            officers.append({"username": officer.username, "secret": secret})
            if number == 1:
                case = cases.create_case(CASE_REFERENCE, "Mixed load case file", recipient=recipient, actor=officer)
                for testimony_id in chosen:
                    cases.add_testimony(case, db.session.get(Testimony, testimony_id), actor=officer)
                case_ids.append(case.id)
            else:
                cases.add_member(db.session.get_one(type(case), case_ids[0]), officer, actor=admin)
        db.session.commit()
        prepared = {"reviewers": people, "legal": officers, "case_id": case_ids[0] if case_ids else None,
                    "choice": f"{recipient.id}-{PURPOSE}", "case_records": len(chosen),
                    "queue_paths": review.queue_paths(populated), "password": review.REVIEWER_PASSWORD,
                    "counts": populated.counts}
        db.session.remove()
    print(PREPARED_MARKER + json.dumps(prepared), flush=True)


def verify_inside(path: str) -> None:
    """`check_stored` on the JSON file at ``path``; print the findings as JSON after ``MIXED_VERIFY=``."""
    from intake import create_app

    given = json.loads(Path(path).read_text(encoding="utf-8"))
    with create_app().app_context():
        result = check_stored(given)
    print(VERIFY_MARKER + json.dumps(result), flush=True)


def check_stored(given: dict[str, Any]) -> dict[str, Any]:
    """Check the acknowledgements in ``given`` against the current application's database, verify every downloaded
    case file as its recipient would, and describe every export.

    ``given`` names the interviewer (``username``), the keys sent (``tried``), the acknowledgements (``acks``:
    key, id, pseudonym), the recipient's age identity file (``identity_file``) and the downloads (``downloads``:
    export id and file). A record is stored as sent when its submission digest is that of the body the interviewer
    sent with its key, and readable when the interviewer who recorded it opens it (`open_record`, audited) and finds
    the narrative naming the key and both incidents. No key can be stored twice (the unique key
    uq_testimonies_idempotency_key), so a duplicate shows as a record stored without being sent, or as more records
    stored than were sent."""
    import sqlalchemy as sa
    from flask import current_app

    from bench.mixed_flows import interview_body
    from intake.accounts.models import Account
    from intake.core.access import AccessRefused, Part, open_record
    from intake.core.crypto import current_keyring
    from intake.core.db import db
    from intake.exports.archive import InvalidIdentity, parse_identities
    from intake.exports.models import Export, ExportRecord
    from intake.exports.signing import public_key_text
    from intake.exports.verify import verify_bundle
    from intake.interviews.operations import request_digest
    from intake.testimonies.models import Testimony

    acks: list[dict[str, Any]] = given["acks"]
    tried = set(given["tried"])
    problems: list[str] = []
    account = db.session.scalar(sa.select(Account).where(Account.username == given["username"]))
    if account is None:
        raise SystemExit(f"no account {given['username']!r}")
    mine = Testimony.interviewer_id == account.id
    stored_keys = [key for (key,) in db.session.execute(sa.select(Testimony.idempotency_key).where(mine))]
    strays = sum(1 for key in stored_keys if key is None or key not in tried)
    lost = unreadable = 0
    acknowledged_keys = set()
    for ack in acks:
        acknowledged_keys.add(ack["key"])
        testimony = db.session.scalar(sa.select(Testimony).where(mine, Testimony.idempotency_key == ack["key"]))
        if testimony is None or testimony.id != ack["id"] or testimony.pseudonym != ack["pseudonym"] \
                or testimony.status != "submitted":
            lost += 1
            problems.append(f"{ack['key']}: " + ("not stored" if testimony is None else
                            f"stored as {testimony.id} {testimony.pseudonym} ({testimony.status}), "
                            f"acknowledged as {ack['id']} {ack['pseudonym']}"))
            continue
        try:
            view = open_record(account, testimony, {Part.CONTENT}, config=current_app.config)
            readable = f"Reference {ack['key']}." in str(view.narrative) and len(view.incidents) == 2
        except AccessRefused as refused:
            readable = False
            problems.append(f"{ack['key']}: the interviewer may not open {testimony.id} "
                            f"({refused.decision.reason})")
        if testimony.submission_digest != request_digest(interview_body(ack["key"])) or not readable:
            unreadable += 1
            problems.append(f"{ack['key']}: stored as {testimony.id} but not readable as sent")
        db.session.expunge(testimony)
    db.session.commit()  # the interviewer's openings, audited as any other
    downloads = []
    if given.get("downloads"):
        try:
            identities = parse_identities(Path(given["identity_file"]).read_text(encoding="utf-8"))
        except (OSError, InvalidIdentity) as error:
            raise SystemExit(f"the recipient's identity cannot be read: {error}") from None
        signing_key = public_key_text(current_keyring())
        for download in given["downloads"]:
            report = verify_bundle(Path(download["file"]), identities, public_key=signing_key)
            downloads.append({"export_id": download["export_id"], "verified": report.ok,
                              "failed": [text for good, text in report.findings if not good][:3]})
    included = dict(db.session.execute(sa.select(ExportRecord.export_id, sa.func.count())
                                       .where(ExportRecord.included.is_(True))
                                       .group_by(ExportRecord.export_id)).all())
    exports = []
    for export in db.session.scalars(sa.select(Export).order_by(Export.id)):
        def seconds(start: Any, end: Any) -> float | None:
            return None if start is None or end is None else round((end - start).total_seconds(), 3)
        exports.append({"id": export.id, "status": export.status, "failure": export.failure,
                        "queued_s": seconds(export.requested_at, export.started_at),
                        "build_s": seconds(export.started_at, export.finished_at),
                        "records": export.progress_total, "included": int(included.get(export.id, 0)),
                        "size_bytes": export.size, "downloads": export.downloads})
    result = {"acknowledged": len(acks), "lost": lost, "unreadable": unreadable,
              "duplicates": max(0, len(stored_keys) - len(tried)), "strays": strays,
              "stored": len(stored_keys), "sent": len(tried),
              "stored_unacknowledged": len([k for k in stored_keys if k in tried and k not in acknowledged_keys]),
              "problems": problems[:20], "downloads": downloads, "exports": exports}
    db.session.rollback()
    return result


# ---------------------------------------------------------------------------------------------------------------
# locust's results


@dataclass(frozen=True)
class Endpoint:
    """One endpoint's figures from locust's stats (times in ms, as locust rounds them)."""

    name: str
    method: str
    requests: int
    failures: int
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # "N/A" when nothing was measured
        return None


def read_stats(path: Path) -> list[Endpoint]:
    """The endpoints of locust's ``<prefix>_stats.csv``, without its "Aggregated" row, by name."""
    endpoints = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["Name"] == "Aggregated":
                continue
            endpoints.append(Endpoint(name=row["Name"], method=row["Type"], requests=int(row["Request Count"]),
                                      failures=int(row["Failure Count"]), rps=float(row["Requests/s"]),
                                      p50_ms=_number(row["50%"]), p95_ms=_number(row["95%"]),
                                      p99_ms=_number(row["99%"])))
    return sorted(endpoints, key=lambda e: e.name)


def read_failures(path: Path) -> list[dict[str, Any]]:
    """locust's ``<prefix>_failures.csv``: each kind of failure per endpoint and how often it happened."""
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return [{"name": row["Name"], "method": row["Method"], "error": row["Error"],
                 "occurrences": int(row["Occurrences"])} for row in csv.DictReader(handle)]


def read_exceptions(path: Path) -> list[dict[str, Any]]:
    """locust's ``<prefix>_exceptions.csv``: each exception raised in a user's task or ``on_start``, how often,
    and its message (the traceback left out)."""
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return [{"count": int(row["Count"]), "message": row["Message"]} for row in csv.DictReader(handle)]


def read_lines(path: Path) -> list[dict[str, Any]]:
    """A file of one JSON object a line (the users' own records); missing means none."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------------------------
# The run


@dataclass
class RunResult:
    started_at: str
    machine: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    endpoints: list[Endpoint] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    exports: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.checks.get("passed"))


RECORD_ENDPOINT = "GET /review/records/[id]"


def judge(result: RunResult, verification: dict[str, Any], sessions: list[dict[str, Any]], *,
          interviewers: int, reviewers: int, legal: int) -> None:
    """Fill ``checks`` and ``exports`` from the stats, locust's exceptions, the database's findings and the legal
    officers' records."""
    errors = sum(e.failures for e in result.endpoints)
    exceptions = sum(int(e["count"]) for e in result.exceptions)
    exports = verification.pop("exports")
    sizes = {e["id"]: e["size_bytes"] for e in exports}
    verified = {d["export_id"]: d for d in verification.get("downloads", [])}
    built = [e for e in exports if e["status"] in ("ready", "downloaded")]
    durations = [e["build_s"] for e in built if e["build_s"] is not None]
    downloads = [s for s in sessions if s.get("age_file")]
    opened = sum(e.requests for e in result.endpoints if e.name == RECORD_ENDPOINT)
    checks: dict[str, Any] = {
        "errors": errors,
        "errors_by_endpoint": {e.name: e.failures for e in result.endpoints if e.failures},
        "exceptions": exceptions,
        **{name: verification[name] for name in ("acknowledged", "lost", "unreadable", "duplicates", "strays",
                                                 "stored", "stored_unacknowledged")},
        "sent": verification.get("sent"),
        "duplicate_keys": "impossible: guaranteed by the unique key uq_testimonies_idempotency_key",
        "replayed_acknowledgements": verification.get("replayed", 0),
        "records_opened": opened,
        "exports_requested": len(exports),
        "exports_built": len(built),
        "exports_downloaded": len(downloads),
        "exports_verified": sum(1 for d in verified.values() if d["verified"]),
        "problems": list(verification["problems"]),
    }
    failed = []
    if errors:
        failed.append(f"{errors} failed requests")
    if exceptions:
        failed.append(f"{exceptions} exceptions in the users' tasks")
    for name in ("lost", "unreadable", "duplicates", "strays"):
        if verification[name]:
            failed.append(f"{verification[name]} {name}")
    if interviewers and not verification["acknowledged"]:
        failed.append("no submission was acknowledged")
    if reviewers and not opened:
        failed.append("no record was opened by a reviewer")
    if len(built) != len(exports):
        failed.append(f"{len(exports) - len(built)} of {len(exports)} exports not built")
    if legal and not downloads:
        failed.append("no case file was downloaded")
    if any(s.get("state") != "ready" or not s.get("age_file") for s in sessions):
        failed.append("a requested case file was not downloaded as an age file")
    for session in downloads:
        number = session.get("export_id")
        if session.get("downloaded_bytes") != sizes.get(number):
            failed.append(f"export {number}: {session.get('downloaded_bytes')} bytes downloaded, "
                          f"{sizes.get(number)} built")
        found = verified.get(number)
        if found is None or not found["verified"]:
            failed.append(f"export {number}: the downloaded case file did not verify with the recipient's "
                          f"identity")
            checks["problems"] += found["failed"] if found is not None else []
    checks["failed"] = failed
    checks["passed"] = not failed
    result.checks = checks
    result.exports = {
        "requested": len(exports), "built": len(built), "downloaded": len(downloads),
        "verified": checks["exports_verified"],
        "build_s": durations,
        "build_s_median": round(statistics.median(durations), 3) if durations else None,
        "build_s_max": max(durations) if durations else None,
        "queued_s_max": max((e["queued_s"] for e in built if e["queued_s"] is not None), default=None),
        "seen_ready_after_s": [s.get("seen_ready_after_s") for s in sessions],
        "items": exports,
    }


def flush_redis(url: str) -> str | None:
    """Empty the Redis database the run uses (that index only); None when done, else why not."""
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.flushdb()
        client.close()
    except Exception as error:  # noqa: BLE001 - any failure means Redis is not usable; the reason is reported
        return f"{url} did not answer ({type(error).__name__})"
    return None


def _locust_version() -> str | None:
    try:
        import importlib.metadata

        return importlib.metadata.version("locust")
    except Exception:  # noqa: BLE001 - not installed
        return None


class _Process:
    """A helper process in its own process group, ended (SIGTERM, then SIGKILL) when the run ends."""

    def __init__(self, command: list[str], *, env: dict[str, str], log: Path) -> None:
        with log.open("ab") as out:
            self.process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL,
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()


def execute(args: argparse.Namespace) -> RunResult:
    """One run, from a fresh instance to the checks; raises when it cannot be made."""
    version = _locust_version()
    if version is None:
        raise RuntimeError("locust is not installed: .venv/bin/pip install -e '.[bench]' (or make bench-mixed)")
    result = RunResult(started_at=utc_now().strftime("%Y-%m-%dT%H:%M:%SZ"))
    pg_version = postgres_server_version(args.postgres_url) if args.db == POSTGRESQL else None
    if args.db == POSTGRESQL and pg_version is None:
        raise DatabaseError(f"PostgreSQL is not reachable at {args.postgres_url}")
    result.machine = describe_machine(wrk_version="not used", postgres_version=pg_version,
                                      project_root=PROJECT_ROOT)
    result.machine.pop("wrk", None)
    result.machine["locust"] = version
    problem = flush_redis(args.redis_url)
    if problem is not None:
        raise RuntimeError(f"Redis is needed for limits and sessions: {problem}")
    with ExitStack() as stack:
        stack.callback(flush_redis, args.redis_url)
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"mixed-{args.db}-")))
        instance_dir = root / "instance"
        instance_dir.mkdir(mode=0o700)
        if args.db == POSTGRESQL:
            database_url = args.postgres_url
            progress("recreating the PostgreSQL database")
            recreate_postgres_database(database_url)
            stack.callback(drop_postgres_database, database_url)
        else:
            database_url = sqlite_url(instance_dir)
        env = instance_environment(instance_dir, database_url, {
            "INTAKE_REDIS_URL": args.redis_url,
            "INTAKE_EXPORT_RUNNER": "worker",
            "INTAKE_EXPORT_PATH": str(root / "exports"),
            "INTAKE_LOG_LEVEL": "WARNING",
        })
        instance = Instance(env)
        progress("creating the keyring and migrating")
        instance.initialise()
        progress(f"populating {args.records:,} records, {args.reviewers} reviewers, {args.legal} legal officers")
        identity_file = root / "recipient-identity.txt"
        output = instance.run_python(f"from bench.mixed import prepare_inside; prepare_inside({int(args.records)}, "
                                     f"{int(args.reviewers)}, {int(args.legal)}, {int(args.case_records)}, "
                                     f"{str(identity_file)!r})")
        prepared = json.loads(read_marker(output, PREPARED_MARKER))
        seeded = seed_interviewer(instance)
        files = {name: root / f"{name}.jsonl" for name in ("acks", "tried", "exports")}
        downloads_dir = root / "downloads"
        downloads_dir.mkdir(mode=0o700)
        users = {"interviewer": args.interviewers, "reviewer": args.reviewers, "legal": args.legal}
        settings = {**prepared, "token": seeded["token"], "users": users, "think_seconds": args.think_seconds,
                    "build_timeout_s": BUILD_TIMEOUT_S, "poll_seconds": POLL_SECONDS,
                    "downloads_dir": str(downloads_dir),
                    **{f"{name}_file": str(path) for name, path in files.items()}}
        settings_file = root / "locust-settings.json"
        settings_file.write_text(json.dumps(settings), encoding="utf-8")
        settings_file.chmod(0o600)
        result.settings = {"db": args.db, "records": args.records, "duration_s": args.duration,
                           "workers": args.workers, "worker_class": "sync", "users": users,
                           "think_seconds": args.think_seconds, "case_records": prepared["case_records"],
                           "redis_url": args.redis_url, "export_runner": "worker (intake export work)",
                           "queue_pages": len(prepared["queue_paths"]), "populated": prepared["counts"]}
        progress(f"starting gunicorn with {args.workers} workers and the export worker")
        server = stack.enter_context(GunicornServer(
            label=f"app on {args.db}", app_spec="app:app", settings=GunicornSettings(workers=args.workers),
            cwd=PROJECT_ROOT, env=env, log_path=instance_dir / "gunicorn.log", health_path="/healthz"))
        worker = _Process([*intake_command(), "export", "work"], env=env, log=instance_dir / "export-worker.log")
        stack.callback(worker.stop)
        total = sum(users.values())
        prefix = root / "locust"
        command = [sys.executable, "-m", "locust", "-f", str(PROJECT_ROOT / "bench" / "locustfile.py"),
                   "--headless", "--host", server.base_url, "--users", str(total), "--spawn-rate", str(total),
                   "--run-time", f"{args.duration:g}s", "--stop-timeout", f"{30 + BUILD_TIMEOUT_S:g}",
                   "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING",
                   "--exit-code-on-error", str(LOCUST_EXIT_EXCEPTIONS)]
        locust_env = {**env, "MIXED_SETTINGS": str(settings_file)}
        progress(f"locust: {total} users for {args.duration:g} s")
        driver = _Process(command, env=locust_env, log=root / "locust.log")
        stack.callback(driver.stop)
        try:
            driver.process.wait(timeout=args.duration + 30 + BUILD_TIMEOUT_S + 120)
        except subprocess.TimeoutExpired as error:
            raise RuntimeError("locust did not stop in time") from error
        stats = prefix.parent / f"{prefix.name}_stats.csv"
        exceptions = read_exceptions(prefix.parent / f"{prefix.name}_exceptions.csv")
        expected_code = LOCUST_EXIT_EXCEPTIONS if exceptions else 0
        if driver.process.returncode != expected_code or not stats.exists():
            log = (root / "locust.log").read_text(errors="replace").splitlines()[-30:]
            raise RuntimeError(f"locust failed with code {driver.process.returncode}:\n" + "\n".join(log))
        result.exceptions = exceptions
        if worker.process.poll() is not None:
            raise RuntimeError(f"the export worker exited with code {worker.process.returncode}")
        result.endpoints = read_stats(stats)
        result.failures = read_failures(prefix.parent / f"{prefix.name}_failures.csv")
        worker.stop()
        progress("checking what was acknowledged and built")
        acks = read_lines(files["acks"])
        sessions = read_lines(files["exports"])
        check_file = root / "verify.json"
        check_file.write_text(json.dumps({"username": INTERVIEWER_USERNAME, "acks": acks,
                                          "tried": [t["key"] for t in read_lines(files["tried"])],
                                          "identity_file": str(identity_file),
                                          "downloads": [{"export_id": s["export_id"], "file": s["file"]}
                                                        for s in sessions if s.get("file")]}),
                              encoding="utf-8")
        output = instance.run_python(f"from bench.mixed import verify_inside; verify_inside({str(check_file)!r})")
        verification = json.loads(read_marker(output, VERIFY_MARKER))
        verification["replayed"] = sum(1 for a in acks if a.get("replayed"))
        judge(result, verification, sessions, interviewers=args.interviewers, reviewers=args.reviewers,
              legal=args.legal)
    return result


# ---------------------------------------------------------------------------------------------------------------
# The report


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def render_markdown(result: RunResult) -> str:
    s, checks, exports = result.settings, result.checks, result.exports
    users = s.get("users", {})
    lines = [
        f"# Mixed load, {result.started_at}",
        "",
        f"{s.get('db')}, {s.get('records', 0):,} records, {s.get('duration_s', 0):g} s of load; gunicorn "
        f"{s.get('workers')} sync workers, Redis `{s.get('redis_url')}` for limits and sessions, case files by "
        f"`intake export work`; {users.get('interviewer', 0)} interviewers, {users.get('reviewer', 0)} reviewers, "
        f"{users.get('legal', 0)} legal officers (think time about {s.get('think_seconds', 0):g} s); a case of "
        f"{s.get('case_records', 0)} records.",
        "",
        "| endpoint | requests | req/s | p50 ms | p95 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in result.endpoints:
        lines.append(f"| `{e.name}` | {e.requests:,} | {e.rps:.1f} | {_ms(e.p50_ms)} | {_ms(e.p95_ms)} | "
                     f"{_ms(e.p99_ms)} | {e.failures if not e.failures else f'FLAGGED {e.failures}'} |")
    lines += ["", "## Checks", "",
              f"- {'PASSED' if result.passed else 'FAILED: ' + '; '.join(checks.get('failed', []))}",
              f"- submissions sent {checks.get('sent') or 0:,}, acknowledged {checks.get('acknowledged', 0):,} "
              f"(replays of an earlier attempt {checks.get('replayed_acknowledgements', 0)}), lost "
              f"{checks.get('lost', 0)}, not readable as sent {checks.get('unreadable', 0)}, stored beyond one per "
              f"submission sent {checks.get('duplicates', 0)}, stored without being sent {checks.get('strays', 0)}, "
              f"stored but not acknowledged {checks.get('stored_unacknowledged', 0)}; one key stored twice: "
              f"guaranteed impossible by a unique key",
              f"- records opened by reviewers {checks.get('records_opened', 0):,}",
              f"- failed requests {checks.get('errors', 0)}, exceptions in the users' tasks "
              f"{checks.get('exceptions', 0)}"]
    for failure in result.failures:
        lines.append(f"  - `{failure['name']}`: {failure['error']} × {failure['occurrences']}")
    for exception in result.exceptions:
        lines.append(f"  - exception: {exception['message']} × {exception['count']}")
    for problem in checks.get("problems", []):
        lines.append(f"  - {problem}")
    builds = ", ".join(f"{v:.1f}" for v in exports.get("build_s", []))
    lines += ["", "## Exports", "",
              f"- requested {exports.get('requested', 0)}, built {exports.get('built', 0)}, downloaded as age "
              f"files {exports.get('downloaded', 0)}, verified with the recipient's identity "
              f"{exports.get('verified', 0)}",
              f"- build durations (s): {builds or '—'}; median {exports.get('build_s_median')}, longest wait in the "
              f"queue {exports.get('queued_s_max')} s"]
    for item in exports.get("items", []):
        lines.append(f"  - export {item['id']}: {item['status']}, {item['included']} of {item['records']} records "
                     f"included, {(item['size_bytes'] or 0) / (1 << 20):.1f} MiB")
    m = result.machine
    lines += ["", "## Machine", "",
              f"{m.get('cpu_model')}, {m.get('usable_cores')} usable cores, {m.get('memory_gib')} GiB; Python "
              f"{m.get('python')}, locust {m.get('locust')}, PostgreSQL {m.get('postgresql')}, git "
              f"{m.get('git_revision')}", ""]
    return "\n".join(lines)


def write_report(result: RunResult, directory: Path) -> Path:
    """Write mixed-<UTC>.md and .json into ``directory``; return the Markdown file."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = "mixed-" + result.started_at.replace("-", "").replace(":", "")
    data = {"started_at": result.started_at, "machine": result.machine, "settings": result.settings,
            "endpoints": [asdict(e) for e in result.endpoints], "failures": result.failures,
            "exceptions": result.exceptions,
            "checks": result.checks, "exports": result.exports, "passed": result.passed}
    markdown = directory / f"{stem}.md"
    for path, text in ((markdown, render_markdown(result)), (directory / f"{stem}.json",
                                                             json.dumps(data, indent=2) + "\n")):
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    return markdown


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    default_workers = max(2, 2 * usable_cores())
    parser = argparse.ArgumentParser(
        prog="python -m bench.mixed",
        description="Interviewers, reviewers and a legal officer at once through locust, against gunicorn with "
                    "Redis; per endpoint throughput, p50/p95/p99 and errors, then checks of what was stored.")
    parser.add_argument("--db", choices=[POSTGRESQL, SQLITE], default=POSTGRESQL,
                        help="database (default: %(default)s)")
    parser.add_argument("--records", type=int, default=100_000, help="records stored before the load (%(default)s)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=default_workers,
                        help="gunicorn sync workers (default: 2 x usable cores = %(default)s)")
    parser.add_argument("--interviewers", type=int, default=8, help="interviewer users (default: %(default)s)")
    parser.add_argument("--reviewers", type=int, default=4, help="reviewer users (default: %(default)s)")
    parser.add_argument("--legal", type=int, default=1, help="legal officer users (default: %(default)s)")
    parser.add_argument("--case-records", type=int, default=300,
                        help="records in the legal officer's case (default: %(default)s)")
    parser.add_argument("--think-seconds", type=float, default=1.0,
                        help="mean pause of a user between two tasks (default: %(default)s)")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                        help="PostgreSQL database; dropped and recreated, and dropped at the end (%(default)s)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                        help="Redis database for limits and sessions; that index alone is emptied at the start "
                             "and the end (default: %(default)s)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help="where the reports go (default: bench/results)")
    args = parser.parse_args(argv)
    if args.records < 100 or args.duration < 5 or args.workers < 2 or args.reviewers < 1 \
            or min(args.interviewers, args.legal) < 0 or args.case_records < 1:
        parser.error("--records at least 100, --duration at least 5, --workers at least 2, --reviewers at least 1")
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = execute(args)
    except KeyboardInterrupt:
        progress("interrupted")
        return EXIT_INTERRUPTED
    except (DatabaseError, InstanceError, ServerError, RuntimeError, OSError) as error:
        progress(f"the run could not be made: {error}")
        return EXIT_COULD_NOT_RUN
    except (ValueError, KeyError, csv.Error) as error:  # a result file half written, or not what was expected
        progress(f"the run could not be made: a result could not be read ({type(error).__name__}: {error})")
        return EXIT_COULD_NOT_RUN
    path = write_report(result, args.results_dir)
    print(render_markdown(result))
    progress(f"report written to {path}")
    return EXIT_OK if result.passed else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
