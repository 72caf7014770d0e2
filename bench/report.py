"""The benchmark's results: the machine's description, the table, and the files in bench/results/."""

import json
import os
import platform
import sqlite3
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.load import LoadResult
from bench.scenarios import Targets

RESULTS_DIR = Path(__file__).with_name("results")


@dataclass
class Row:
    """One scenario on one database, with the control measured just before it."""

    scenario: str
    request: str
    database: str
    app: LoadResult
    control: LoadResult
    targets: Targets | None = None
    connections: int | None = None  # the scenario's own number of clients, when it is not the run's

    @property
    def ratio(self) -> float:
        """The app's throughput as a fraction of the control's (1.0 = as fast as bare Flask)."""
        if self.control.requests_per_s <= 0:
            return 0.0
        return self.app.requests_per_s / self.control.requests_per_s

    @property
    def flagged(self) -> bool:
        """True if either run had errors, which makes the row's numbers unreliable."""
        return self.app.error_count > 0 or self.control.error_count > 0

    def errors_cell(self) -> str:
        """The table's error cell: ``0``, or a flagged count with its breakdown."""
        if not self.flagged:
            return "0"
        parts = []
        if self.app.error_count:
            parts.append(f"{self.app.error_count} ({self.app.error_summary()})")
        if self.control.error_count:
            parts.append(f"control {self.control.error_count} ({self.control.error_summary()})")
        return "FLAGGED " + "; ".join(parts)

    def assess(self, connections: int) -> list[dict[str, Any]]:
        """Each target of the row against what was measured at ``connections`` clients (empty if it has none).

        A verdict is ``met``, ``MISSED``, or ``not assessed`` when the run used another number of connections
        than the target is stated for. A flagged row never meets a target: its numbers are not the endpoint's.
        """
        targets = self.targets
        if targets is None:
            return []
        if self.connections is not None:
            connections = self.connections
        checks: list[tuple[str, float, str, float, bool]] = []
        if targets.min_ratio is not None:
            checks.append(("ratio", round(self.ratio, 4), ">=", targets.min_ratio, self.ratio >= targets.min_ratio))
        if targets.max_p95_ms is not None:
            checks.append(
                ("p95_ms", self.app.p95_ms, "<=", targets.max_p95_ms, self.app.p95_ms <= targets.max_p95_ms)
            )
        if targets.max_p99_ms is not None:
            checks.append(
                ("p99_ms", self.app.p99_ms, "<=", targets.max_p99_ms, self.app.p99_ms <= targets.max_p99_ms)
            )
        assessed = []
        for figure, value, relation, bound, within in checks:
            if connections != targets.connections:
                verdict = "not assessed"
                reason = f"the target is for {targets.connections} connections; this run used {connections}"
            elif self.flagged:
                verdict, reason = "MISSED", "the run had errors"
            else:
                verdict, reason = ("met" if within else "MISSED"), ""
            assessed.append(
                {
                    "figure": figure,
                    "value": value,
                    "relation": relation,
                    "target": bound,
                    "connections": targets.connections,
                    "verdict": verdict,
                    "reason": reason,
                }
            )
        return assessed

    def as_dict(self, connections: int | None = None) -> dict[str, Any]:
        """A JSON-ready dictionary of the row; with ``connections``, its targets assessed at that load."""
        data = {
            "scenario": self.scenario,
            "request": self.request,
            "database": self.database,
            "ratio": round(self.ratio, 4),
            "connections": self.connections,
            "flagged": self.flagged,
            "app": self.app.as_dict(),
            "control": self.control.as_dict(),
        }
        if connections is not None and self.targets is not None:
            data["targets"] = self.assess(connections)
        return data


@dataclass
class Report:
    """Everything one run of the benchmark produced."""

    started_at: datetime
    machine: dict[str, Any]
    settings: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        """True if any row is flagged."""
        return any(row.flagged for row in self.rows)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of the whole report."""
        return {
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "machine": self.machine,
            "settings": self.settings,
            "notes": self.notes,
            "results": [row.as_dict(self.settings.get("connections")) for row in self.rows],
        }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def usable_cores() -> int:
    """The number of CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_revision(cwd: Path) -> str:
    completed = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, check=False
    )
    return completed.stdout.strip() if completed.returncode == 0 else "unknown"


def describe_machine(*, wrk_version: str, postgres_version: str | None, project_root: Path) -> dict[str, Any]:
    """The facts needed to compare runs across machines."""
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "gunicorn": _package_version("gunicorn"),
        "flask": _package_version("flask"),
        "sqlalchemy": _package_version("sqlalchemy"),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version or "not used",
        "wrk": wrk_version,
        "git_revision": _git_revision(project_root),
    }


COLUMNS = (
    "scenario",
    "database",
    "clients",
    "req/s",
    "control req/s",
    "ratio",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "control p99",
    "errors",
)


def _row_cells(row: Row, connections: int | None = None) -> list[str]:
    return [
        row.scenario,
        row.database,
        str(row.connections if row.connections is not None else (connections or "")),
        f"{row.app.requests_per_s:.0f}",
        f"{row.control.requests_per_s:.0f}",
        f"{row.ratio:.2f}",
        f"{row.app.p50_ms:.2f}",
        f"{row.app.p95_ms:.2f}",
        f"{row.app.p99_ms:.2f}",
        f"{row.control.p99_ms:.2f}",
        row.errors_cell(),
    ]


def render_table(rows: list[Row], connections: int | None = None) -> str:
    """A Markdown table padded so that it also reads well in a terminal; ``connections`` is the run's number of
    clients, shown for the rows that have none of their own."""
    body = [_row_cells(row, connections) for row in rows]
    widths = [max(len(cells[i]) for cells in [list(COLUMNS), *body]) for i in range(len(COLUMNS))]
    numeric = {2, 3, 4, 5, 6, 7, 8, 9}

    def line(cells: list[str]) -> str:
        padded = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(cells)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [("-" * (widths[i] - 1) + ":") if i in numeric else "-" * widths[i] for i in range(len(COLUMNS))]
    return "\n".join([line(list(COLUMNS)), line(rule), *(line(cells) for cells in body)])


_RELATIONS = {">=": "≥", "<=": "≤"}
_FIGURES = {"ratio": ("ratio", "{:.2f}", ""), "p95_ms": ("p95", "{:.1f}", " ms"), "p99_ms": ("p99", "{:.1f}", " ms")}


def render_targets(report: Report) -> list[str]:
    """One Markdown list item per row that has targets, e.g. ``- intake/postgresql: ratio 0.62 ≥ 0.50 met; ...``."""
    lines = []
    connections = int(report.settings.get("connections", 0))
    for row in report.rows:
        parts = []
        for check in row.assess(connections):
            label, number, unit = _FIGURES[check["figure"]]
            text = (
                f"{label} {number.format(check['value'])}{unit} (target {_RELATIONS[check['relation']]} "
                f"{number.format(check['target'])}{unit} at {check['connections']} clients): {check['verdict']}"
            )
            if check["reason"]:
                text += f" ({check['reason']})"
            parts.append(text)
        if parts:
            lines.append(f"- {row.scenario}/{row.database}: " + "; ".join(parts))
    return lines


def render_markdown(report: Report) -> str:
    """The full Markdown report: table, notes, settings and machine."""
    settings = report.settings
    machine = report.machine
    lines = [
        f"# Benchmark {report.started_at.strftime('%Y-%m-%d %H:%M:%S UTC')}",
        "",
        render_table(report.rows, report.settings.get("connections")) if report.rows else "(no results)",
        "",
        "ratio = req/s of the app ÷ req/s of the control (a bare Flask JSON endpoint, same gunicorn "
        "settings, measured just before in the same run). Latencies are the app's.",
    ]
    requests = {row.scenario: row.request for row in report.rows}
    if requests:
        lines += ["", "Scenarios:", *(f"- {name}: `{request}`" for name, request in requests.items())]
    targets = render_targets(report)
    if targets:
        lines += ["", "Targets:", *targets]
    if report.notes:
        lines += ["", "Notes:", *(f"- {note}" for note in report.notes)]
    lines += [
        "",
        "Settings: "
        + ", ".join(
            [
                f"{settings['workers']} gunicorn {settings['worker_class']} workers",
                f"wrk {settings['threads']} threads / {settings['connections']} connections",
                f"{settings['duration_s']}s measured after {settings['warmup_s']}s warm-up",
                "servers bound to 127.0.0.1 without access log",
            ]
        ),
        "",
        "Machine:",
        f"- CPU: {machine['cpu_model']}, {machine['usable_cores']} usable of {machine['cores']} cores",
        f"- memory: {machine['memory_gib']} GiB",
        f"- OS: {machine['os']}",
        f"- Python {machine['python']}, gunicorn {machine['gunicorn']}, Flask {machine['flask']}, "
        f"SQLAlchemy {machine['sqlalchemy']}",
        f"- PostgreSQL {machine['postgresql']}, SQLite {machine['sqlite']}",
        f"- load tool: {machine['wrk']}",
        f"- revision: {machine['git_revision']}",
    ]
    return "\n".join(lines) + "\n"


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def write_results(report: Report, directory: Path = RESULTS_DIR) -> tuple[Path, Path]:
    """Write ``<timestamp>.md`` and ``<timestamp>.json`` into ``directory``; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = "bench-" + report.started_at.strftime("%Y%m%dT%H%M%SZ")
    markdown_path = directory / f"{stem}.md"
    json_path = directory / f"{stem}.json"
    _write_atomically(markdown_path, render_markdown(report))
    _write_atomically(json_path, json.dumps(report.as_dict(), indent=2) + "\n")
    return markdown_path, json_path


def utc_now() -> datetime:
    """The current time in UTC, to the second."""
    return datetime.now(UTC).replace(microsecond=0)
