"""Drive a server with wrk and read back the numbers printed by ``wrk_report.lua``."""

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.scenarios import RenderedRequest

REPORT_SCRIPT = Path(__file__).with_name("wrk_report.lua")
SCRIPTS_DIR = REPORT_SCRIPT.parent
RESULT_MARKER = "BENCH_RESULT "
WRK_INSTALL_HINT = "apt-get update && apt-get install -y wrk   (Debian/Ubuntu package 'wrk'; run as root)"


class LoadError(RuntimeError):
    """wrk failed or printed no result."""


@dataclass(frozen=True)
class LoadSettings:
    """How hard and how long wrk drives a server; identical for the app under test and the control."""

    duration: int
    warmup: int
    connections: int
    threads: int
    timeout: int = 10


@dataclass
class LoadResult:
    """What one measured wrk run saw. Latencies are in milliseconds."""

    requests: int
    duration_s: float
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    socket_errors: dict[str, int]
    non_2xx: int
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        """Failed requests: connect/read/write/timeout errors plus every response outside 2xx.

        wrk's own ``status`` counter (4xx/5xx) is not added: those responses are already in ``non_2xx``.
        """
        socket = sum(count for name, count in self.socket_errors.items() if name != "status")
        return socket + self.non_2xx

    def error_summary(self) -> str:
        """A short human description of the errors, e.g. ``429x120, timeout 3``; empty if none."""
        parts = [
            f"{status}x{count}"
            for status, count in sorted(self.statuses.items())
            if not 200 <= int(status) <= 299
        ]
        parts += [
            f"{name} {count}" for name, count in self.socket_errors.items() if name != "status" and count
        ]
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary, including the derived error count."""
        data = asdict(self)
        data["error_count"] = self.error_count
        return data

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> "LoadResult":
        """Build a result from the JSON object printed by ``wrk_report.lua``."""
        latency = report["latency_us"]
        return cls(
            requests=int(report["requests"]),
            duration_s=round(report["duration_us"] / 1e6, 3),
            requests_per_s=round(float(report["requests_per_s"]), 1),
            p50_ms=round(latency["p50"] / 1000, 3),
            p95_ms=round(latency["p95"] / 1000, 3),
            p99_ms=round(latency["p99"] / 1000, 3),
            mean_ms=round(latency["mean"] / 1000, 3),
            max_ms=round(latency["max"] / 1000, 3),
            socket_errors={name: int(count) for name, count in report["errors"].items()},
            non_2xx=int(report["non_2xx"]),
            statuses={str(status): int(count) for status, count in report["statuses"].items()},
        )


def find_wrk() -> str | None:
    """Return the path of wrk, or None if it is not installed."""
    return shutil.which("wrk")


def wrk_version(wrk: str) -> str:
    """Return wrk's name and version (wrk prints them atop its usage text)."""
    completed = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    lines = (completed.stdout or completed.stderr).splitlines()
    # e.g. "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer": keep the name and version.
    return " ".join(lines[0].split()[:2]) if lines else "unknown"


def parse_wrk_output(stdout: str) -> LoadResult:
    """Find the ``BENCH_RESULT`` line in wrk's output and parse it."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return LoadResult.from_report(json.loads(line[len(RESULT_MARKER) :]))
    raise LoadError(f"wrk printed no {RESULT_MARKER.strip()} line:\n{stdout}")


def run_wrk(
    wrk: str, base_url: str, request: RenderedRequest, settings: LoadSettings, seconds: int
) -> LoadResult:
    """Run wrk once for ``seconds`` (at least 1) against ``base_url`` + the request's path."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as workdir:
        # A scenario's own script loads the report script from BENCH_REPORT_SCRIPT and adds request().
        script = REPORT_SCRIPT if request.script is None else SCRIPTS_DIR / request.script
        env = dict(
            os.environ, BENCH_METHOD=request.method, BENCH_BODY_FILE="", BENCH_REPORT_SCRIPT=str(REPORT_SCRIPT)
        )
        if request.body is not None:
            body_file = Path(workdir) / "body"
            body_file.write_text(request.body, encoding="utf-8")
            env["BENCH_BODY_FILE"] = str(body_file)
        if request.paths:
            paths_file = Path(workdir) / "paths"
            paths_file.write_text("".join(f"{path}\n" for path in request.paths), encoding="utf-8")
            env["BENCH_PATHS_FILE"] = str(paths_file)
        command = [
            wrk,
            "--threads",
            str(settings.threads),
            "--connections",
            str(settings.connections),
            "--duration",
            f"{seconds}s",
            "--timeout",
            f"{settings.timeout}s",
            "--script",
            str(script),
        ]
        for name, value in request.headers.items():
            command += ["--header", f"{name}: {value}"]
        command.append(base_url + request.path)
        completed = subprocess.run(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=seconds + settings.timeout + 60,
            check=False,
        )
    if completed.returncode != 0:
        raise LoadError(
            f"wrk exited with code {completed.returncode}:\n{completed.stdout}\n{completed.stderr}"
        )
    return parse_wrk_output(completed.stdout)


def measure(wrk: str, base_url: str, request: RenderedRequest, settings: LoadSettings) -> LoadResult:
    """Warm the server up (result discarded), then return one measured run."""
    if settings.warmup > 0:
        run_wrk(wrk, base_url, request, settings, settings.warmup)
    return run_wrk(wrk, base_url, request, settings, settings.duration)
