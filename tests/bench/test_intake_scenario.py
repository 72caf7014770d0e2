"""The bench's intake scenario: its request is a real submission, wrk varies its key, the report judges targets."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from bench.load import LoadResult, LoadSettings, run_wrk
from bench.report import Report, Row, render_targets, utc_now
from bench.scenarios import SCENARIOS, Scenario, Targets
from intake.accounts import operations as ops
from intake.accounts.models import Account
from intake.core.db import db
from intake.interviews.operations import IDEMPOTENCY_KEY
from intake.testimonies.models import Incident
from intake.testimonies.models import Testimony as StoredTestimony
from tests.conftest import TestUser


def intake_scenario() -> Scenario:
    return next(scenario for scenario in SCENARIOS if scenario.name == "intake")


def bearer_token(app: Flask, user: TestUser) -> str:
    with app.app_context():
        account = db.session.get(Account, user.id)
        assert account is not None
        _, plaintext = ops.create_api_token(account, name="bench", expires_in_days=1)
        db.session.commit()
        return plaintext


def test_the_intake_request_submits_a_whole_interview_each_time(
    app: Flask, client: FlaskClient, create_user: Callable[..., TestUser]
) -> None:
    request = intake_scenario().render({"token": bearer_token(app, create_user("bench-interviewer"))})
    assert request.body is not None
    ids = []
    for key in ("bench-0123456789abcdef-1-1", "bench-0123456789abcdef-1-2"):
        answer = client.open(request.path, method=request.method, data=request.body.encode(),
                             headers={**request.headers, "Idempotency-Key": key})
        assert answer.status_code == 201, answer.get_data(as_text=True)
        assert answer.get_json()["status"] == "submitted"
        ids.append(answer.get_json()["id"])
    assert ids[0] != ids[1]
    with app.app_context():
        stored = db.session.scalars(sa.select(StoredTestimony).order_by(StoredTestimony.id)).all()
        assert [t.id for t in stored] == ids
        assert {t.status for t in stored} == {"submitted"}
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Incident)) == 4


class _Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str | None, bytes]]

    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.seen.append((self.headers.get("Idempotency-Key"), body))
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the signature of the base class
        return None


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # wrk drops its connections when it stops


@pytest.fixture
def recording_server() -> Iterator[tuple[str, list[tuple[str | None, bytes]]]]:
    seen: list[tuple[str | None, bytes]] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()
    thread.join()


def test_wrk_sends_every_request_with_a_new_valid_idempotency_key(
    recording_server: tuple[str, list[tuple[str | None, bytes]]],
) -> None:
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.skip("wrk is not installed")
    base_url, seen = recording_server
    request = intake_scenario().render({"token": "a-token"})
    settings = LoadSettings(duration=1, warmup=0, connections=2, threads=2)
    results = [run_wrk(wrk, base_url, request, settings, 1) for _ in range(2)]  # two runs, as warm-up + measured
    keys = [key for key, _ in seen]
    assert len(keys) >= 2 and all(key is not None and IDEMPOTENCY_KEY.fullmatch(key) for key in keys), keys[:5]
    assert len(set(keys)) == len(keys)
    assert {body for _, body in seen} == {(request.body or "").encode()}
    assert all(result.statuses.get("201", 0) > 0 and result.error_count == 0 for result in results)
    assert json.loads(seen[0][1])["submit"] is True


def _result(rps: float, p99: float, statuses: dict[str, int] | None = None) -> LoadResult:
    statuses = statuses or {"201": 100}
    non_2xx = sum(count for status, count in statuses.items() if not 200 <= int(status) <= 299)
    return LoadResult(requests=100, duration_s=1.0, requests_per_s=rps, p50_ms=p99 / 2, p95_ms=p99 * 0.9,
                      p99_ms=p99, mean_ms=p99 / 2, max_ms=p99, socket_errors={"timeout": 0}, non_2xx=non_2xx,
                      statuses=statuses)


def _row(app: LoadResult, database: str = "postgresql") -> Row:
    return Row(scenario="intake", request="POST /api/v1/interviews", database=database, app=app,
               control=_result(1000, 10), targets=Targets(min_ratio=0.5, max_p99_ms=100.0, connections=16))


def _verdicts(row: Row, connections: int = 16) -> dict[str, str]:
    return {check["figure"]: check["verdict"] for check in row.assess(connections)}


def test_the_report_says_which_targets_were_met_or_missed() -> None:
    assert _verdicts(_row(_result(600, 80))) == {"ratio": "met", "p99_ms": "met"}
    assert _verdicts(_row(_result(400, 120))) == {"ratio": "MISSED", "p99_ms": "MISSED"}
    assert _verdicts(_row(_result(600, 80, {"201": 90, "500": 10}))) == {"ratio": "MISSED", "p99_ms": "MISSED"}
    assert _verdicts(_row(_result(600, 80)), connections=64) == {"ratio": "not assessed", "p99_ms": "not assessed"}

    report = Report(started_at=utc_now(), machine={}, settings={"connections": 16},
                    rows=[_row(_result(600, 120), "sqlite"), _row(_result(600, 80, {"201": 90, "500": 10}))])
    assert render_targets(report) == [
        "- intake/sqlite: ratio 0.60 (target ≥ 0.50 at 16 clients): met; "
        "p99 120.0 ms (target ≤ 100.0 ms at 16 clients): MISSED",
        "- intake/postgresql: ratio 0.60 (target ≥ 0.50 at 16 clients): MISSED (the run had errors); "
        "p99 80.0 ms (target ≤ 100.0 ms at 16 clients): MISSED (the run had errors)",
    ]
    assert report.as_dict()["results"][1]["targets"][0]["verdict"] == "MISSED"
