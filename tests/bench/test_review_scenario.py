"""The bench's review scenarios: the generator stores records the service reads like its own, the reviewer's
session and paths it hands to wrk open real pages, and the whole harness runs on a few hundred records."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from bench import review
from bench.load import LoadResult
from bench.report import Row
from bench.run import main as run_bench
from bench.scenarios import SCENARIOS, Targets
from intake.consents.models import ConsentRecord, ConsentWithdrawal
from intake.consents.operations import documentation_allowed
from intake.core.access.models import Assignment
from intake.core.crypto.models import DataKey
from intake.core.db import db
from intake.testimonies.models import Incident
from intake.testimonies.models import Testimony as StoredTestimony

RECORDS = 240


def _count(model: type) -> int:
    return int(db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def test_the_generator_stores_records_the_service_opens_and_lists(app: Flask) -> None:
    with app.app_context():
        populated = review.populate(RECORDS, batch=100)
        assert _count(StoredTestimony) == RECORDS
        assert db.session.scalar(sa.select(sa.func.count()).where(StoredTestimony.status == "draft")) == 0
        assert _count(Incident) >= RECORDS and _count(ConsentRecord) >= RECORDS
        assert _count(ConsentWithdrawal) == int(RECORDS * review.WITHDRAWN) > 0
        assert 0.8 * RECORDS < _count(Assignment) < RECORDS
        assert db.session.scalar(sa.select(sa.func.count()).where(DataKey.destroyed_at.is_not(None))) == \
            2 * int(RECORDS * review.ERASED)  # a person's key and a testimony's key for each erasure
        assert populated.openable and all(documentation_allowed(t).allowed for t in populated.openable)
        stopped = [t for t in range(populated.first_id, populated.last_id + 1)
                   if not documentation_allowed(t).allowed]
        assert len(stopped) == populated.counts["withdrawn_for_documentation"] > 0
        assert not set(stopped) & set(populated.openable)
        paths = review.queue_paths(populated)
        db.session.remove()

    cookie = review.sign_in(app, review.REVIEWER, review.REVIEWER_PASSWORD, populated.reviewer_secret)
    client = app.test_client()
    client.set_cookie(app.session_interface.cookie_name, cookie)  # type: ignore[attr-defined]
    for testimony_id in populated.openable[:3]:
        page = client.get(f"/review/records/{testimony_id}")
        assert page.status_code == 200
        assert any(sentence in page.get_data(as_text=True)
                   for bank in review.SENTENCES.values() for sentence in bank)
    assert client.get(f"/review/records/{stopped[0]}").status_code == 403
    listed: set[int] = set()
    for path in paths:
        page = client.get(path)
        assert page.status_code == 200, path
        listed |= {int(n) for n in re.findall(r'href="/review/records/(\d+)"', page.get_data(as_text=True))}
    assert listed and not listed & set(stopped)


def test_review_targets_are_judged_at_their_own_number_of_clients() -> None:
    record = next(s for s in SCENARIOS if s.name == "review-record")
    assert record.targets == Targets(max_p95_ms=20.0, connections=4) and record.connections == 4

    def row(p95: float) -> Row:
        result = LoadResult(requests=100, duration_s=1.0, requests_per_s=100.0, p50_ms=p95 / 2, p95_ms=p95,
                            p99_ms=p95 * 1.2, mean_ms=p95 / 2, max_ms=p95 * 2, socket_errors={}, non_2xx=0,
                            statuses={"200": 100})
        return Row(scenario="review-record", request=record.request_label, database="postgresql", app=result,
                   control=result, targets=record.targets, connections=record.connections)

    # The run's --connections (16) does not change the load these rows were measured and judged at.
    assert [c["verdict"] for c in row(12.0).assess(16)] == ["met"]
    assert [(c["figure"], c["verdict"]) for c in row(31.0).assess(16)] == [("p95_ms", "MISSED")]


def test_the_review_scenarios_run_through_the_harness(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed")
    status = run_bench(["--db", "sqlite", "--scenario", "review-record", "--scenario", "review-queue",
                        "--review-records", "200", "--duration", "1", "--warmup", "0", "--workers", "2",
                        "--results-dir", str(tmp_path)])
    assert status == 0
    (written,) = tmp_path.glob("bench-*.json")
    results = json.loads(written.read_text())["results"]
    assert [(r["scenario"], r["connections"]) for r in results] == [("review-record", 4), ("review-queue", 4)]
    for result in results:
        assert set(result["app"]["statuses"]) == {"200"} and result["app"]["requests"] > 0
        assert [t["figure"] for t in result["targets"]] == ["p95_ms"]
        assert result["targets"][0]["verdict"] in {"met", "MISSED"}
