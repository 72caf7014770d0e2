"""The summary `make bench` writes: one row per figure with its control, ratio, target and verdict; the suites."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import bench.all as bench_all
from bench import mixed, mixed_flows
from bench.all import (
    SUITES,
    Figure,
    Options,
    Outcome,
    Suite,
    build_summary,
    left_behind,
    main,
    newest_result,
    render_markdown,
    result_files,
    run_suite,
    write_summary,
)
from bench.report import RESULTS_DIR

STARTED = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)

MACHINE = {
    "cpu_model": "AMD EPYC 7B13",
    "cores": 2,
    "usable_cores": 2,
    "memory_gib": 23.5,
    "os": "Linux-6.1-x86_64-with-glibc2.36",
    "python": "CPython 3.11.7",
    "gunicorn": "23.0.0",
    "flask": "3.1.0",
    "sqlalchemy": "2.0.36",
    "sqlite": "3.40.1",
    "postgresql": "15.20",
    "wrk": "wrk debian/4.1.0-3+b2",
    "git_revision": "abc1234",
}


def load(requests_per_s: float, p95_ms: float, p99_ms: float, errors: int = 0) -> dict[str, Any]:
    return {
        "requests": int(requests_per_s * 15), "duration_s": 15.0, "requests_per_s": requests_per_s,
        "p50_ms": p95_ms / 2, "p95_ms": p95_ms, "p99_ms": p99_ms, "mean_ms": p95_ms / 2, "max_ms": p99_ms * 2,
        "socket_errors": {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0},
        "non_2xx": errors, "statuses": {"201": 700}, "error_count": errors,
    }


HTTP = {
    "started_at": "2026-12-02T12:00:01+00:00",
    "settings": {"connections": 16, "duration_s": 15, "databases": ["postgresql"]},
    "results": [
        {
            "scenario": "intake", "request": "POST /api/v1/interviews", "database": "postgresql", "ratio": 0.25,
            "connections": None, "flagged": False,
            "app": load(900.0, 40.0, 80.0), "control": load(3600.0, 5.0, 9.0),
            "targets": [
                {"figure": "ratio", "value": 0.25, "relation": ">=", "target": 0.5, "connections": 16,
                 "verdict": "MISSED", "reason": ""},
                {"figure": "p99_ms", "value": 80.0, "relation": "<=", "target": 100.0, "connections": 16,
                 "verdict": "met", "reason": ""},
            ],
        },
        {
            "scenario": "review-record", "request": "GET /review/records/<id>", "database": "postgresql",
            "ratio": 0.05, "connections": 4, "flagged": True,
            "app": load(180.0, 15.0, 30.0, errors=3), "control": load(3600.0, 3.0, 8.0),
            "targets": [
                {"figure": "p95_ms", "value": 15.0, "relation": "<=", "target": 20.0, "connections": 4,
                 "verdict": "MISSED", "reason": "the run had errors"},
            ],
        },
    ],
}

CRYPTO = {
    "settings": {"quick": True},
    "results": [
        {"scenario": "stream seal 64 MiB", "database": "none", "unit": "MiB/s", "value": 437.87,
         "control": 875.74, "control_label": "AES-GCM per 64 KiB to a file", "ratio": 0.5, "target": "—",
         "target_met": None, "notes": ""},
        {"scenario": "rewrap_batch B=1000", "database": "postgresql", "unit": "keys/s", "value": 18586.0,
         "control": 109109.8, "control_label": "unwrap+wrap in memory", "ratio": 0.1703,
         "target": "≥ 20,000 keys/s", "target_met": False, "notes": ""},
        {"scenario": "alt: keyset + unnest B=1000", "database": "postgresql", "unit": "keys/s", "value": 30000.0,
         "control": 100000.0, "control_label": "unwrap+wrap in memory", "ratio": 0.3, "target": "—",
         "target_met": None, "notes": ""},
    ],
}

AUDIT = {
    "results": [
        {"scenario": "verify, 1 process", "database": "postgresql", "value": 600000.0, "control": 1000000.0,
         "unit": "events/s", "target": "≥ 500,000 events/s", "met": True,
         "notes": "1,000 checkpoints; control = raw SHA-256 chaining in memory (one hash per event)", "ratio": 0.6},
    ],
}

EXPORT = {
    "settings": {"database": "postgresql", "quick": True},
    "results": [
        {"scenario": "export build", "value": "8.6 MiB/s", "control": "513.2 MiB/s", "ratio": "0.02",
         "target": "≥ 0.50 of raw age", "met": False, "notes": ""},
        {"scenario": "export build peak memory", "value": "239.7 MiB", "control": "—", "ratio": "—",
         "target": "≤ 256 MiB", "met": True, "notes": ""},
    ],
    "figures": {"build": {"build_mib_s": 8.56, "raw_mib_s": 513.19, "ratio": 0.0167}},
}

LOCUST_HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
    "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)


def mixed_result_file(directory: Path) -> dict[str, Any]:
    """A result file as bench.mixed writes it: endpoints read from a locust stats file by its own reader, under the
    names its users give their requests, and its own report writer."""
    interviews = mixed_flows.endpoint_name("POST", mixed_flows.INTERVIEWS)
    record = mixed_flows.endpoint_name("GET", "/review/records/4812")
    stats = directory / "locust_stats.csv"
    stats.write_text("\n".join([
        LOCUST_HEADER,
        f"POST,{interviews},1200,2,110,130,20,900,310,20.0,0.03,120,150,170,200,250,300,380,450,800,900,900",
        f"GET,{record},600,0,35,40,5,300,9000,10.0,0.0,40,50,55,60,80,90,95,N/A,N/A,N/A,N/A",
        "GET,Aggregated,1800,2,80,100,5,900,3000,30.0,0.03,90,110,130,150,200,250,300,400,800,900,900",
    ]) + "\n", encoding="utf-8")
    result = mixed.RunResult(
        started_at="2026-12-02T12:20:00Z", machine=MACHINE,
        settings={"db": "postgresql", "records": 100000, "duration_s": 60.0},
        endpoints=mixed.read_stats(stats),
        checks={"errors": 2, "lost": 0, "failed": ["2 failed requests", "1 of 3 exports not built"], "passed": False},
        exports={"requested": 3, "built": 2, "downloaded": 2, "build_s": [4.0, 6.0], "build_s_median": 5.0},
    )
    markdown = mixed.write_report(result, directory)
    data: dict[str, Any] = json.loads(markdown.with_suffix(".json").read_text(encoding="utf-8"))
    return data


def outcome(name: str, data: dict[str, Any] | None, status: int = 0, stem: str | None = None,
            directory: Path = Path("/results")) -> Outcome:
    result = directory / f"{stem}.json" if stem else None
    return Outcome(
        name=name, command=["/venv/bin/python", "-m", f"bench.{name}"], state="ok" if status == 0 else "failed",
        status=status, seconds=12.0, result_json=result,
        result_markdown=result.with_suffix(".md") if result else None, data=data,
    )


def rows_of(summary_rows: list[Figure], suite: str) -> list[Figure]:
    return [row for row in summary_rows if row.suite == suite]


def table_line(markdown: str, *cells: str) -> str:
    """The table line whose cells include all of ``cells``."""
    for line in markdown.splitlines():
        parts = [part.strip() for part in line.strip().strip("|").split("|")]
        if line.startswith("|") and all(cell in parts for cell in cells):
            return line
    raise AssertionError(f"no table line with {cells}")


def test_http_rows_give_throughput_against_bare_flask_and_latency_with_their_targets() -> None:
    summary = build_summary(STARTED, MACHINE, {"quick": False}, [outcome("http", HTTP, stem="bench-x")])
    rows = rows_of(summary.rows, "http")
    intake = [row for row in rows if row.scenario == "intake, 16 clients"]
    assert [(row.figure, row.value, row.control, row.ratio, row.target, row.verdict) for row in intake] == [
        ("req/s", 900.0, 3600.0, 0.25, "ratio ≥ 0.50", "MISSED"),
        ("p99 ms", 80.0, 9.0, None, "≤ 100 ms", "met"),
    ]
    review = [row for row in rows if row.scenario == "review-record, 4 clients"]
    assert [(row.figure, row.verdict) for row in review] == [("req/s", "—"), ("p95 ms", "MISSED"), ("p99 ms", "—")]
    markdown = render_markdown(summary, Path("/results"))
    line = table_line(markdown, "http", "intake, 16 clients", "req/s")
    assert "3,600 (bare Flask req/s)" in line and "0.25" in line and "MISSED" in line
    assert "review-record on postgresql is FLAGGED (3 failed requests" in markdown


def test_crypto_audit_export_rows_carry_their_controls_ratios_and_verdicts() -> None:
    outcomes = [outcome("crypto", CRYPTO, status=1, stem="crypto-x"), outcome("audit", AUDIT, stem="audit-x"),
                outcome("export", EXPORT, status=1, stem="export-x")]
    summary = build_summary(STARTED, MACHINE, {}, outcomes)
    crypto = rows_of(summary.rows, "crypto")
    assert [(row.scenario, row.database, row.figure, row.ratio, row.verdict) for row in crypto] == [
        ("stream seal 64 MiB", "—", "MiB/s", 0.5, "—"),
        ("rewrap_batch B=1000", "postgresql", "keys/s", 0.1703, "MISSED"),
    ]
    assert any("1 rows of bench-only rewrap alternatives" in note for note in summary.notes)
    (audit,) = rows_of(summary.rows, "audit")
    assert (audit.figure, audit.value, audit.ratio, audit.verdict) == ("events/s", 600000.0, 0.6, "met")
    assert audit.control_label == "SHA-256 chaining in memory"
    build, memory = rows_of(summary.rows, "export")
    assert (build.figure, build.value, build.control, build.ratio, build.verdict) == (
        "MiB/s", 8.56, 513.19, 0.0167, "MISSED"
    )
    assert (memory.figure, memory.value, memory.control, memory.ratio, memory.verdict) == (
        "peak MiB", 239.7, None, None, "met"
    )
    markdown = render_markdown(summary, Path("/results"))
    assert "0.017" in table_line(markdown, "export", "export build")
    assert "600,000" in table_line(markdown, "audit", "verify, 1 process")
    assert "Targets: 2 met, 2 MISSED." in markdown


def test_mixed_endpoints_checks_and_builds_have_no_control(tmp_path: Path) -> None:
    data = mixed_result_file(tmp_path)
    summary = build_summary(STARTED, MACHINE, {}, [outcome("mixed", data, status=1, stem="mixed-x")])
    rows = [(row.scenario, row.figure, row.value, row.control, row.target, row.verdict)
            for row in rows_of(summary.rows, "mixed")]
    assert rows == [
        ("GET /review/records/[id]", "req/s", 10.0, None, "—", "—"),
        ("GET /review/records/[id]", "p99 ms", None, None, "—", "—"),
        ("POST /api/v1/interviews", "req/s", 20.0, None, "—", "—"),
        ("POST /api/v1/interviews", "p99 ms", 450.0, None, "—", "—"),
        ("checks of what was stored and built", "checks failed", 2.0, None, "none", "MISSED"),
        ("case files (2 of 3 built)", "median build s", 5.0, None, "—", "—"),
    ]
    assert "POST /api/v1/interviews had 2 failed requests of 1,200." in " ".join(summary.notes)
    assert "checks failed: 2 failed requests; 1 of 3 exports not built." in " ".join(summary.notes)
    markdown = render_markdown(summary, Path("/results"))
    assert "450" in table_line(markdown, "mixed", "POST /api/v1/interviews", "p99 ms")


COMMITTED = {"http": "bench", "crypto": "crypto", "audit": "audit", "export": "export"}


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_the_newest_committed_result_file_of_each_suite_gives_a_row_per_result(name: str) -> None:
    files = sorted(RESULTS_DIR.glob(f"{COMMITTED[name]}-*.json"))
    assert files, f"no {COMMITTED[name]}-*.json in {RESULTS_DIR}"
    data = json.loads(files[-1].read_text(encoding="utf-8"))
    summary = build_summary(STARTED, MACHINE, {}, [outcome(name, data, stem=files[-1].stem, directory=RESULTS_DIR)])
    assert not [note for note in summary.notes if "unexpected shape" in note]
    rows = rows_of(summary.rows, name)
    for result in data["results"]:
        if str(result["scenario"]).startswith("alt:"):
            continue
        scenario = str(result["scenario"])
        matching = [row for row in rows if row.scenario == scenario or row.scenario.startswith(f"{scenario}, ")]
        assert matching, f"{files[-1].name}: no row for {scenario}"
        assert all(isinstance(row.value, float) for row in matching), matching
    markdown = render_markdown(summary, RESULTS_DIR)
    assert f"[{files[-1].stem}.json]({files[-1].stem}.json)" in markdown


def test_failed_and_missing_suites_are_listed_with_their_status_and_decide_the_exit_status() -> None:
    outcomes = [
        outcome("http", HTTP, stem="bench-20261202T120001Z"),
        outcome("crypto", None, status=2),
        Outcome("mixed", ["/venv/bin/python", "-m", "bench.mixed"], "missing", reason="bench/mixed.py does not exist"),
        outcome("audit", AUDIT, status=1, stem="audit-x"),
    ]
    summary = build_summary(STARTED, MACHINE, {}, outcomes)
    markdown = render_markdown(summary, Path("/results"))
    assert (
        "- http: ok, exit status 0, 12 s (`python -m bench.http`): "
        "[bench-20261202T120001Z.md](bench-20261202T120001Z.md), "
        "[bench-20261202T120001Z.json](bench-20261202T120001Z.json)"
    ) in markdown
    assert "- crypto: FAILED, exit status 2, 12 s (`python -m bench.crypto`): no result file" in markdown
    assert "- mixed: MISSING, not run: bench/mixed.py does not exist" in markdown
    assert "make chaos" in markdown
    assert summary.exit_status == 2

    clean = build_summary(STARTED, MACHINE, {}, [outcome("http", HTTP, stem="bench-x")])
    assert clean.exit_status == 0
    interrupted = outcome("audit", None, status=130)
    interrupted.state = "interrupted"
    assert build_summary(STARTED, MACHINE, {}, [outcome("crypto", None, status=1), interrupted]).exit_status == 130


def test_markdown_describes_the_machine_and_the_json_holds_the_same(tmp_path: Path) -> None:
    outcomes = [outcome("http", HTTP, stem="bench-x", directory=tmp_path)]
    summary = build_summary(STARTED, MACHINE, {"quick": True, "postgres_url": None}, outcomes)
    markdown_path, json_path = write_summary(summary, tmp_path)
    assert markdown_path.name == "summary-20261202T120000Z.md"
    markdown = markdown_path.read_text(encoding="utf-8")
    assert "- CPU: AMD EPYC 7B13, 2 usable of 2 cores" in markdown
    assert "- PostgreSQL 15.20, SQLite 3.40.1" in markdown
    assert "quick run" in markdown
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["machine"] == MACHINE
    assert data["exit_status"] == 0
    assert data["suites"][0]["result_json"] == "bench-x.json"
    assert {"suite": "http", "scenario": "intake, 16 clients", "figure": "req/s", "ratio": 0.25,
            "verdict": "MISSED"}.items() <= data["rows"][0].items()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("http", ["--db", "postgresql", "--duration", "5", "--warmup", "1", "--review-records", "2000",
                  "--postgres-url", "postgresql+psycopg://postgres@db:5432/mine"]),
        ("intake-sqlite", ["--db", "sqlite", "--scenario", "intake", "--duration", "5", "--warmup", "1"]),
        ("crypto", ["--db", "postgresql", "--quick", "--keys", "20000", "--no-alternatives",
                    "--postgres-url", "postgresql+psycopg://postgres@db:5432/mine_crypto"]),
        ("audit", ["--db", "postgresql", "--quick", "--postgres-url", "postgresql+psycopg://postgres@db:5432/mine"]),
        ("export", ["--db", "postgresql", "--quick", "--postgres-url", "postgresql+psycopg://postgres@db:5432/mine_export"]),
        ("mixed", ["--db", "postgresql", "--records", "2000", "--duration", "15",
                   "--postgres-url", "postgresql+psycopg://postgres@db:5432/mine_mixed"]),
    ],
)
def test_quick_and_the_postgres_url_map_to_each_suites_own_options(name: str, expected: list[str]) -> None:
    suite = next(suite for suite in SUITES if suite.name == name)
    options = Options(quick=True, postgres_url="postgresql+psycopg://postgres@db:5432/mine")
    assert suite.command(options)[3:] == expected


def test_a_suite_whose_module_is_absent_is_reported_missing_without_running() -> None:
    suite = Suite("mixed", "bench.not_written", "mixed", lambda options: [])
    result = run_suite(suite, Options())
    assert (result.state, result.status, result.exit_status) == ("missing", None, 2)
    assert result.reason == "bench/not_written.py does not exist"


def test_the_result_file_of_a_suite_is_the_newest_with_its_prefix_written_since_it_started(tmp_path: Path) -> None:
    (tmp_path / "crypto-20261201T000000Z.json").write_text("{}")
    before = result_files(tmp_path, "crypto")
    new = tmp_path / "crypto-20261202T000000Z.json"
    new.write_text("{}")
    (tmp_path / "audit-20261202T000001Z.json").write_text("{}")
    assert newest_result(tmp_path, "crypto", before) == new
    assert newest_result(tmp_path, "export", result_files(tmp_path, "export")) is None


def test_a_suite_sharing_a_prefix_does_not_take_the_file_the_previous_one_wrote_just_before(tmp_path: Path) -> None:
    http = tmp_path / "bench-20261202T120000Z.json"
    http.write_text("{}")  # written by the http suite a moment before intake-sqlite starts
    before = result_files(tmp_path, "bench")
    assert newest_result(tmp_path, "bench", before) is None
    sqlite = tmp_path / "bench-20261202T120005Z.json"
    sqlite.write_text("{}")
    os.utime(http, (time.time() + 5, time.time() + 5))  # even when the older file looks newer
    assert newest_result(tmp_path, "bench", before) == sqlite


def test_a_killed_suite_names_the_database_and_redis_it_may_leave_behind() -> None:
    suites = {suite.name: suite for suite in SUITES}
    url = Options(postgres_url="postgresql+psycopg://postgres@db:5432/mine")
    assert left_behind(suites["mixed"], url).startswith(
        "PostgreSQL database mine_mixed, the keys in Redis redis://127.0.0.1:6379/12, its temporary folder in "
    )
    assert left_behind(suites["mixed"], Options()).startswith("PostgreSQL database intake_bench_mixed, ")
    assert left_behind(suites["audit"], url).startswith("PostgreSQL database mine_*, its temporary folder")
    assert left_behind(suites["intake-sqlite"], url).startswith("its temporary folder in ")


def test_without_postgresql_nothing_runs_and_the_exit_status_is_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["--postgres-url", "postgresql+psycopg://postgres@127.0.0.1:1/none", "--results-dir", str(tmp_path)])
    assert status == 2
    assert "PostgreSQL is not reachable at postgresql+psycopg://postgres@127.0.0.1:1/none" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a killed one not yet reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def test_a_suite_that_will_not_stop_is_killed_with_the_servers_it_started_in_their_own_sessions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to find the suite's servers")
    monkeypatch.setattr(bench_all, "STOP_GRACE_SECONDS", 0.5)
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "server = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
        "print(server.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    suite = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,  # noqa: S603
                             start_new_session=True)
    assert suite.stdout is not None
    server = int(suite.stdout.readline())
    try:
        status, killed = bench_all._stop(suite)
        assert (status, killed) == (-signal.SIGKILL, True)
        for _ in range(100):
            if not _running(server):
                break
            time.sleep(0.05)
        assert not _running(server), "the suite's server outlived it"
    finally:
        if _running(server):
            os.kill(server, signal.SIGKILL)
        suite.stdout.close()
