"""Every benchmark suite, one summary: ``python -m bench.all [--quick] [--only NAME ...]`` (``make bench``).

The suites run one after the other, each as a subprocess of this Python, on PostgreSQL: the HTTP scenarios
(``bench.run --db postgresql``), the intake scenario on SQLite too, then ``bench.crypto``, ``bench.audit``,
``bench.export`` and ``bench.mixed``. Each suite runs even if an earlier one failed. Afterwards every figure of
every suite's result file goes into one table, against its control and target, with the machine's description:
``bench/results/summary-<UTC timestamp>.md`` and ``.json``. ``make chaos`` stays separate (it needs root and stops
PostgreSQL).

Exit status: 0 when every suite was clean, else the first failing suite's own status (a missing suite counts as
2), 2 when PostgreSQL is not reachable, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

from bench.databases import DEFAULT_POSTGRES_URL, postgres_server_version
from bench.instance import PROJECT_ROOT
from bench.load import find_wrk, wrk_version
from bench.report import RESULTS_DIR, describe_machine, utc_now

EXIT_OK = 0
EXIT_FAILED = 2
EXIT_INTERRUPTED = 130

QUICK_DURATION = 5  # measured seconds per wrk run in a quick run
QUICK_WARMUP = 1
QUICK_REVIEW_RECORDS = 2_000
QUICK_CRYPTO_KEYS = 20_000
QUICK_MIXED_RECORDS = 2_000
QUICK_MIXED_DURATION = 15
STOP_GRACE_SECONDS = 60.0  # how long an interrupted suite may take to clean up before it is killed

CHAOS_NOTE = (
    "Faults under load (`make chaos`, bench/chaos.py) are not part of this run: they need root and stop the "
    "local PostgreSQL server for everyone."
)

_WRITTEN = re.compile(r"(?:results|report) written to (\S+\.md)(?: and (\S+\.json))?\s*$")


def progress(message: str) -> None:
    """Report progress on stderr."""
    print(f"[bench.all] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# The suites


@dataclass(frozen=True)
class Options:
    """What the command line asks of every suite."""

    quick: bool = False
    postgres_url: str | None = None  # None: each suite's own default database
    results_dir: Path = RESULTS_DIR


def _database_url(url: str, suffix: str) -> str:
    """``url`` with ``suffix`` appended to its database name, so that each suite has a scratch database of its own."""
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    return parsed.set(database=f"{parsed.database}{suffix}").render_as_string(hide_password=False)


def _accepts(module: str, option: str) -> bool:
    """Whether the suite's source defines the command-line ``option``."""
    path = PROJECT_ROOT / (module.replace(".", "/") + ".py")
    try:
        return f'"{option}"' in path.read_text(encoding="utf-8")
    except OSError:
        return False


@dataclass(frozen=True)
class Suite:
    """One benchmark module, run as ``python -m <module> <arguments>``."""

    name: str
    module: str
    prefix: str  # its result files are bench/results/<prefix>-<UTC timestamp>.md and .json
    arguments: Callable[[Options], list[str]]
    postgres_suffix: str | None = ""  # appended to --postgres-url's database name; None: it takes no URL
    needs_postgres: bool = True
    scratch_database: str = ""  # the database it makes by default (ending in _*: the prefix of several); "": none
    redis_url: str = ""  # the Redis database it uses, if any

    @property
    def path(self) -> Path:
        return PROJECT_ROOT / (self.module.replace(".", "/") + ".py")

    def command(self, options: Options, extra: Sequence[str] = ()) -> list[str]:
        """The suite's command line, this run's options mapped to its own."""
        argv = [sys.executable, "-m", self.module, *self.arguments(options)]
        if options.postgres_url is not None and self.postgres_suffix is not None:
            if _accepts(self.module, "--postgres-url"):
                argv += ["--postgres-url", _database_url(options.postgres_url, self.postgres_suffix)]
        if options.results_dir != RESULTS_DIR and _accepts(self.module, "--results-dir"):
            argv += ["--results-dir", str(options.results_dir)]
        return argv + list(extra)


def _http_arguments(options: Options) -> list[str]:
    quick = ["--duration", str(QUICK_DURATION), "--warmup", str(QUICK_WARMUP)]
    return ["--db", "postgresql"] + (quick + ["--review-records", str(QUICK_REVIEW_RECORDS)] if options.quick else [])


def _intake_sqlite_arguments(options: Options) -> list[str]:
    quick = ["--duration", str(QUICK_DURATION), "--warmup", str(QUICK_WARMUP)]
    return ["--db", "sqlite", "--scenario", "intake"] + (quick if options.quick else [])


def _crypto_arguments(options: Options) -> list[str]:
    quick = ["--quick", "--keys", str(QUICK_CRYPTO_KEYS), "--no-alternatives"]
    return ["--db", "postgresql"] + (quick if options.quick else [])


def _quick_only(options: Options) -> list[str]:
    return ["--db", "postgresql"] + (["--quick"] if options.quick else [])


def _mixed_arguments(options: Options) -> list[str]:
    quick = ["--records", str(QUICK_MIXED_RECORDS), "--duration", str(QUICK_MIXED_DURATION)]
    return ["--db", "postgresql"] + (quick if options.quick else [])


SUITES: tuple[Suite, ...] = (
    Suite("http", "bench.run", "bench", _http_arguments, scratch_database="intake_bench"),
    Suite("intake-sqlite", "bench.run", "bench", _intake_sqlite_arguments, postgres_suffix=None,
          needs_postgres=False),
    Suite("crypto", "bench.crypto", "crypto", _crypto_arguments, postgres_suffix="_crypto",
          scratch_database="intake_bench_crypto"),
    # its URL's name prefixes its own scratch databases
    Suite("audit", "bench.audit", "audit", _quick_only, scratch_database="intake_bench_*"),
    Suite("export", "bench.export", "export", _quick_only, postgres_suffix="_export", scratch_database="bench_export"),
    Suite("mixed", "bench.mixed", "mixed", _mixed_arguments, postgres_suffix="_mixed",
          scratch_database="intake_bench_mixed", redis_url="redis://127.0.0.1:6379/12"),
)


def left_behind(suite: Suite, options: Options) -> str:
    """What a killed suite may leave behind: its scratch database, Redis database and temporary folder."""
    parts = []
    if suite.scratch_database:
        name = suite.scratch_database
        if options.postgres_url is not None and suite.postgres_suffix is not None:
            import sqlalchemy as sa

            several = "_*" if name.endswith("_*") else ""
            name = f"{sa.engine.make_url(options.postgres_url).database}{suite.postgres_suffix}{several}"
        parts.append(f"PostgreSQL database {name}")
    if suite.redis_url:
        parts.append(f"the keys in Redis {suite.redis_url}")
    parts.append(f"its temporary folder in {tempfile.gettempdir()}")
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------------------------------
# Running them


@dataclass
class Outcome:
    """What one suite did in this run."""

    name: str
    command: list[str]
    state: str  # ok, failed, missing, interrupted, not run
    status: int | None = None  # the process's exit status; None when it did not run
    seconds: float = 0.0
    result_json: Path | None = None
    result_markdown: Path | None = None
    data: dict[str, Any] | None = None
    reason: str = ""

    @property
    def exit_status(self) -> int:
        """The status this suite gives the whole run: its own, or 2 when it could not be started."""
        if self.status is not None:
            return self.status
        return EXIT_OK if self.state == "ok" else EXIT_FAILED


class Interrupted(Exception):
    """The run was interrupted while ``outcome``'s suite was running."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.name)
        self.outcome = outcome


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def process_groups_below(pid: int) -> set[int]:
    """The process groups of every process ``pid`` started, directly or not (read from /proc; empty without it)."""
    parents: dict[int, list[tuple[int, int]]] = {}
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return set()
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text(encoding="utf-8").rpartition(")")[2].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append((int(entry.name), int(fields[2])))
    groups: set[int] = set()
    waiting = [pid]
    while waiting:
        for child, group in parents.get(waiting.pop(), []):
            groups.add(group)
            waiting.append(child)
    return groups


def _stop(process: subprocess.Popen[str]) -> tuple[int, bool]:
    """Ask the suite to stop as Ctrl-C would (it stops its servers and drops its databases), then kill what is left.

    Returns its exit status and whether it had to be killed. The servers, load generator and workers it started run
    in sessions of their own, so their process groups are killed with the suite's."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=STOP_GRACE_SECONDS), False
    except subprocess.TimeoutExpired:
        progress(f"the suite did not stop within {STOP_GRACE_SECONDS:.0f} s: killing it")
    except KeyboardInterrupt:
        progress("interrupted again: killing the suite")
    groups = {process.pid} | process_groups_below(process.pid)
    groups.discard(os.getpgrp())
    for group in sorted(groups):
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return process.wait(), True


def _relay(stream: IO[str], written: list[tuple[Path, Path]]) -> None:
    """Copy the suite's stderr to ours, noting the result files it says it wrote."""
    for line in stream:
        sys.stderr.write(line)
        sys.stderr.flush()
        match = _WRITTEN.search(line)
        if match:
            markdown = Path(match.group(1))
            written.append((markdown, Path(match.group(2)) if match.group(2) else markdown.with_suffix(".json")))


def result_files(directory: Path, prefix: str) -> set[Path]:
    """The ``<prefix>-*.json`` files in ``directory`` now."""
    return set(directory.glob(f"{prefix}-*.json"))


def newest_result(directory: Path, prefix: str, before: set[Path]) -> Path | None:
    """The newest ``<prefix>-*.json`` in ``directory`` that is not among ``before`` (listed when the suite started)."""
    candidates = [path for path in result_files(directory, prefix) if path not in before]
    return max(candidates, key=lambda path: path.stat().st_mtime, default=None)


def run_suite(suite: Suite, options: Options, extra: Sequence[str] = ()) -> Outcome:
    """Run one suite to its end and find the result file it wrote."""
    command = suite.command(options, extra)
    if not suite.path.exists():
        reason = f"{suite.path.relative_to(PROJECT_ROOT)} does not exist"
        progress(f"{suite.name}: MISSING, not run: {reason}")
        return Outcome(suite.name, command, "missing", reason=reason)
    progress(f"{suite.name}: {shlex.join(['python', *command[1:]])}")
    before = result_files(options.results_dir, suite.prefix)
    since = time.time()
    written: list[tuple[Path, Path]] = []
    # A session of its own, so that a Ctrl-C reaches it once, from here, and it can clean up before it exits.
    process = subprocess.Popen(
        command, cwd=PROJECT_ROOT, stderr=subprocess.PIPE, text=True, bufsize=1, start_new_session=True
    )
    assert process.stderr is not None
    relay = threading.Thread(target=_relay, args=(process.stderr, written), daemon=True)
    relay.start()
    outcome = Outcome(suite.name, command, "failed")
    try:
        status = process.wait()
    except KeyboardInterrupt:
        progress(f"{suite.name}: interrupted, stopping it")
        outcome.status, killed = _stop(process)
        outcome.state = "interrupted"
        if killed:
            outcome.reason = (
                f"killed before it cleaned up: {left_behind(suite, options)} may be left behind (its next run "
                "recreates the database)"
            )
            progress(f"{suite.name}: {outcome.reason}")
        relay.join(timeout=5)
        outcome.seconds = time.time() - since
        raise Interrupted(outcome) from None
    relay.join(timeout=5)
    outcome.status = status
    outcome.seconds = time.time() - since
    outcome.state = "ok" if status == EXIT_OK else ("interrupted" if status == EXIT_INTERRUPTED else "failed")
    if written:
        outcome.result_markdown, outcome.result_json = written[-1]
    else:
        outcome.result_json = newest_result(options.results_dir, suite.prefix, before)
        if outcome.result_json is not None:
            outcome.result_markdown = outcome.result_json.with_suffix(".md")
    if outcome.result_json is not None:
        try:
            outcome.data = json.loads(outcome.result_json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            outcome.reason = f"its result file could not be read: {error}"
    progress(f"{suite.name}: exit status {status} after {outcome.seconds:.0f} s")
    return outcome


# ---------------------------------------------------------------------------------------------------------------
# The summary


@dataclass
class Figure:
    """One row of the summary: one figure of one scenario, against its control and target."""

    suite: str
    scenario: str
    database: str
    figure: str
    value: float | None
    control: float | None = None
    control_label: str = ""
    ratio: float | None = None
    target: str = "—"
    verdict: str = "—"  # met, MISSED or —


@dataclass
class Summary:
    """Everything the summary files say."""

    started_at: datetime
    machine: dict[str, Any]
    settings: dict[str, Any]
    outcomes: list[Outcome]
    rows: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        """0 when every suite was clean, else the first failing suite's status."""
        for outcome in self.outcomes:
            if outcome.state == "interrupted":
                return EXIT_INTERRUPTED
        for outcome in self.outcomes:
            if outcome.state != "not run" and outcome.exit_status != EXIT_OK:
                return outcome.exit_status
        return EXIT_OK


_RELATIONS = {">=": "≥", "<=": "≤"}
_HTTP_FIGURES = {"ratio": "req/s", "p95_ms": "p95 ms", "p99_ms": "p99 ms"}


def _verdict(met: bool | None) -> str:
    return "—" if met is None else ("met" if met else "MISSED")


def _number(text: Any) -> float | None:
    """The number a result cell starts with (``"8.6 MiB/s"`` gives 8.6), or None."""
    if isinstance(text, int | float):
        return float(text)
    match = re.match(r"\s*(-?[\d,]*\.?\d+)", str(text))
    return float(match.group(1).replace(",", "")) if match else None


def _http_target(assessed: dict[str, dict[str, Any]], figure: str) -> tuple[str, str]:
    """The target and verdict bench.run gave ``figure`` (``not assessed``, at another load, shows as —)."""
    check = assessed.get(figure)
    if check is None:
        return "—", "—"
    number = f"{check['target']:.2f}" if figure == "ratio" else f"{check['target']:g} ms"
    target = f"{_RELATIONS.get(check['relation'], check['relation'])} {number}"
    if figure == "ratio":
        target = "ratio " + target
    verdict = check["verdict"] if check["verdict"] in ("met", "MISSED") else "—"
    return target, verdict


def http_figures(suite: str, data: dict[str, Any]) -> tuple[list[Figure], list[str]]:
    """bench.run's rows: req/s against bare Flask's, p99 (and p95 where a target is stated on it)."""
    rows: list[Figure] = []
    notes: list[str] = []
    run_clients = data.get("settings", {}).get("connections")
    for result in data.get("results", []):
        app, control = result["app"], result["control"]
        clients = result.get("connections") or run_clients
        scenario = f"{result['scenario']}, {clients} clients" if clients else result["scenario"]
        assessed = {check["figure"]: check for check in result.get("targets", [])}
        target, verdict = _http_target(assessed, "ratio")
        rows.append(Figure(suite, scenario, result["database"], "req/s", app["requests_per_s"],
                           control["requests_per_s"], "bare Flask req/s", result["ratio"], target, verdict))
        percentiles = ["p95_ms", "p99_ms"] if "p95_ms" in assessed else ["p99_ms"]
        for key in percentiles:
            target, verdict = _http_target(assessed, key)
            rows.append(Figure(suite, scenario, result["database"], _HTTP_FIGURES[key], app[key], control[key],
                               f"bare Flask {_HTTP_FIGURES[key]}", None, target, verdict))
        if result.get("flagged"):
            notes.append(
                f"{suite}: {result['scenario']} on {result['database']} is FLAGGED ({app.get('error_count', 0)} failed "
                f"requests, control {control.get('error_count', 0)}): its numbers do not describe the endpoint."
            )
    return rows, notes


def crypto_figures(suite: str, data: dict[str, Any]) -> tuple[list[Figure], list[str]]:
    """bench.crypto's rows as they are, but for the bench-only alternatives (``alt: ...``), which are counted."""
    rows: list[Figure] = []
    alternatives = 0
    for result in data.get("results", []):
        if str(result["scenario"]).startswith("alt:"):
            alternatives += 1
            continue
        database = result.get("database", "none")
        rows.append(Figure(
            suite, result["scenario"], "—" if database == "none" else database, result["unit"], result["value"],
            result.get("control"), result.get("control_label", ""), result.get("ratio"),
            result.get("target") or "—", _verdict(result.get("target_met")),
        ))
    notes = [f"{suite}: {alternatives} rows of bench-only rewrap alternatives are left out here (see its own file)."]
    return rows, notes if alternatives else []


_AUDIT_CONTROLS = {
    "verify": "SHA-256 chaining in memory",
    "append": "same writers, unchained rows, no lock",
}


def audit_figures(suite: str, data: dict[str, Any]) -> tuple[list[Figure], list[str]]:
    """bench.audit's rows: verify and append rates against their in-memory and unlocked controls."""
    rows = []
    for result in data.get("results", []):
        kind = str(result["scenario"]).split(",", 1)[0]
        label = _AUDIT_CONTROLS.get(kind) or str(result.get("notes", "")).partition("control = ")[2]
        rows.append(Figure(
            suite, result["scenario"], result["database"], result["unit"], result["value"], result.get("control"),
            label, result.get("ratio"), result.get("target") or "—", _verdict(result.get("met")),
        ))
    return rows, []


def export_figures(suite: str, data: dict[str, Any]) -> tuple[list[Figure], list[str]]:
    """bench.export's rows: the build against raw age, its peak memory, the verification."""
    rows = []
    database = data.get("settings", {}).get("database", "")
    build = data.get("figures", {}).get("build", {})
    for result in data.get("results", []):
        scenario = result["scenario"]
        unit = re.sub(r"^\s*-?[\d,]*\.?\d+\s*", "", str(result["value"])) or "—"
        value, control, ratio = _number(result["value"]), _number(result["control"]), _number(result["ratio"])
        label = ""
        if scenario == "export build":
            value = build.get("build_mib_s", value)
            control = build.get("raw_mib_s", control)
            ratio = build.get("ratio", ratio)
            label = "raw age (pyrage) of the same bytes"
        figure = f"peak {unit}" if "memory" in scenario else unit
        rows.append(Figure(suite, scenario, database, figure, value, control, label, ratio,
                           result.get("target") or "—", _verdict(result.get("met"))))
    return rows, []


def mixed_figures(suite: str, data: dict[str, Any]) -> tuple[list[Figure], list[str]]:
    """bench.mixed's endpoints (req/s and p99 each; no control, as everything runs at once), its checks and the
    case-file builds' median time."""
    rows = []
    notes = []
    database = data.get("settings", {}).get("db", "postgresql")
    for endpoint in data.get("endpoints", []):
        name = endpoint["name"]
        if endpoint.get("method") and not str(name).startswith(f"{endpoint['method']} "):
            name = f"{endpoint['method']} {name}"
        rows.append(Figure(suite, name, database, "req/s", endpoint["rps"]))
        rows.append(Figure(suite, name, database, "p99 ms", endpoint["p99_ms"]))
        if endpoint.get("failures"):
            notes.append(f"{suite}: {name} had {endpoint['failures']:,} failed requests of {endpoint['requests']:,}.")
    checks = data.get("checks", {})
    if "passed" in checks:
        failed = list(checks.get("failed", []))
        rows.append(Figure(suite, "checks of what was stored and built", database, "checks failed",
                           float(len(failed)), target="none", verdict=_verdict(bool(checks["passed"]))))
        if failed:
            notes.append(f"{suite}: checks failed: {'; '.join(str(item) for item in failed)}.")
    exports = data.get("exports", {})
    if exports.get("requested"):
        rows.append(Figure(suite, f"case files ({exports.get('built', 0)} of {exports['requested']} built)",
                           database, "median build s", exports.get("build_s_median")))
    return rows, notes


FIGURES: dict[str, Callable[[str, dict[str, Any]], tuple[list[Figure], list[str]]]] = {
    "http": http_figures,
    "intake-sqlite": http_figures,
    "crypto": crypto_figures,
    "audit": audit_figures,
    "export": export_figures,
    "mixed": mixed_figures,
}


def latest_chaos(directory: Path) -> Path | None:
    """The newest chaos report in ``directory``, if any."""
    return max(directory.glob("chaos-*.md"), default=None)


def build_summary(
    started_at: datetime,
    machine: dict[str, Any],
    settings: dict[str, Any],
    outcomes: list[Outcome],
    chaos_report: Path | None = None,
) -> Summary:
    """The summary of ``outcomes``: their figures in one table, and a note for each that failed or did not run."""
    summary = Summary(started_at, machine, settings, outcomes)
    for outcome in outcomes:
        extract = FIGURES.get(outcome.name)
        if outcome.data is None or extract is None:
            continue
        try:
            rows, notes = extract(outcome.name, outcome.data)
        except (KeyError, TypeError, ValueError) as error:
            summary.notes.append(f"{outcome.name}: its result file has an unexpected shape ({error!r}).")
            continue
        summary.rows += rows
        summary.notes += notes
    chaos = CHAOS_NOTE
    if chaos_report is not None:
        chaos += f" The latest: [{chaos_report.name}]({chaos_report.name})."
    summary.notes.append(chaos)
    return summary


def _format(value: float | None) -> str:
    if value is None:
        return "—"
    magnitude = abs(value)
    if magnitude >= 100 or value.is_integer():
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if abs(value) < 0.1 else f"{value:.2f}"


def _control(row: Figure) -> str:
    if row.control is None:
        return row.control_label or "—"
    return f"{_format(row.control)} ({row.control_label})" if row.control_label else _format(row.control)


COLUMNS = ("suite", "scenario", "database", "figure", "value", "control", "ratio", "target", "verdict")


def render_table(rows: list[Figure]) -> str:
    """The summary table in Markdown, padded to read in a terminal too."""
    body = [
        [row.suite, row.scenario, row.database, row.figure, _format(row.value), _control(row), _ratio(row.ratio),
         row.target, row.verdict]
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [list(COLUMNS), *body]) for i in range(len(COLUMNS))]
    numeric = {4, 6}

    def line(cells: list[str]) -> str:
        padded = [cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(cells)]
        return "| " + " | ".join(padded) + " |"

    rule = [("-" * (widths[i] - 1) + ":") if i in numeric else "-" * widths[i] for i in range(len(COLUMNS))]
    return "\n".join([line(list(COLUMNS)), line(rule), *(line(cells) for cells in body)])


def _link(path: Path, directory: Path) -> str:
    name = os.path.relpath(path, directory)
    return f"[{name}]({name})"


def describe_outcome(outcome: Outcome, directory: Path) -> str:
    """One line on what a suite did: its status, time and result files."""
    shown = shlex.join(["python", *outcome.command[1:]])
    if outcome.state == "missing":
        return f"- {outcome.name}: MISSING, not run: {outcome.reason} (`{shown}`)"
    if outcome.state == "not run":
        return f"- {outcome.name}: not run (the run was interrupted before it) (`{shown}`)"
    state = {"ok": "ok", "failed": "FAILED", "interrupted": "INTERRUPTED"}[outcome.state]
    text = f"- {outcome.name}: {state}, exit status {outcome.status}, {outcome.seconds:.0f} s (`{shown}`)"
    if outcome.result_json is not None:
        links = [_link(outcome.result_json, directory)]
        if outcome.result_markdown is not None:
            links.insert(0, _link(outcome.result_markdown, directory))
        text += ": " + ", ".join(links)
    else:
        text += ": no result file"
    if outcome.reason:
        text += f"; {outcome.reason}"
    return text


def render_markdown(summary: Summary, directory: Path = RESULTS_DIR) -> str:
    """The summary in Markdown: the table, the suites, the notes, the settings and the machine."""
    machine = summary.machine
    missed = sum(row.verdict == "MISSED" for row in summary.rows)
    met = sum(row.verdict == "met" for row in summary.rows)
    lines = [
        f"# Benchmark summary {summary.started_at:%Y-%m-%d %H:%M:%S} UTC",
        "",
        render_table(summary.rows) if summary.rows else "(no results)",
        "",
        "ratio = value ÷ control, both measured in the same run by the same suite (for latencies and memory the "
        f"control is shown without a ratio where the suite gives none). Targets: {met} met, {missed} MISSED.",
        "",
        "Suites:",
        *(describe_outcome(outcome, directory) for outcome in summary.outcomes),
    ]
    if summary.notes:
        lines += ["", "Notes:", *(f"- {note}" for note in summary.notes)]
    settings = summary.settings
    lines += [
        "",
        f"Settings: {'quick' if settings.get('quick') else 'full'} run, PostgreSQL at "
        f"{settings.get('postgres_url') or 'each suite’s default database'}"
        + "".join(f"; {name} also given `{text}`" for name, text in settings.get("suite_args", {}).items())
        + (f"; 1-minute load average {settings['load_average_start']:.2f} at the start and "
           f"{settings['load_average_end']:.2f} at the end (other work on the machine lowers values and controls "
           "unevenly)" if "load_average_end" in settings else ""),
        "",
        "Machine:",
        f"- CPU: {machine.get('cpu_model')}, {machine.get('usable_cores')} usable of {machine.get('cores')} cores",
        f"- memory: {machine.get('memory_gib')} GiB",
        f"- OS: {machine.get('os')}",
        f"- Python {machine.get('python')}, gunicorn {machine.get('gunicorn')}, Flask {machine.get('flask')}, "
        f"SQLAlchemy {machine.get('sqlalchemy')}",
        f"- PostgreSQL {machine.get('postgresql')}, SQLite {machine.get('sqlite')}",
        f"- load tool: {machine.get('wrk')}",
        f"- revision: {machine.get('git_revision')}",
    ]
    return "\n".join(lines) + "\n"


def summary_dict(summary: Summary, directory: Path = RESULTS_DIR) -> dict[str, Any]:
    """The summary as JSON-ready data."""
    def path(value: Path | None) -> str | None:
        return None if value is None else os.path.relpath(value, directory)

    return {
        "started_at": summary.started_at.isoformat(timespec="seconds"),
        "machine": summary.machine,
        "settings": summary.settings,
        "exit_status": summary.exit_status,
        "suites": [
            {
                "name": outcome.name,
                "command": shlex.join(["python", *outcome.command[1:]]),
                "state": outcome.state,
                "status": outcome.status,
                "seconds": round(outcome.seconds, 1),
                "result_json": path(outcome.result_json),
                "result_markdown": path(outcome.result_markdown),
                "reason": outcome.reason,
            }
            for outcome in summary.outcomes
        ],
        "rows": [asdict(row) for row in summary.rows],
        "notes": summary.notes,
    }


def write_summary(summary: Summary, directory: Path = RESULTS_DIR) -> tuple[Path, Path]:
    """Write ``summary-<timestamp>.md`` and ``.json`` into ``directory``; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = "summary-" + summary.started_at.strftime("%Y%m%dT%H%M%SZ")
    markdown, data = directory / f"{stem}.md", directory / f"{stem}.json"
    for path, text in (
        (markdown, render_markdown(summary, directory)),
        (data, json.dumps(summary_dict(summary, directory), indent=2, ensure_ascii=False) + "\n"),
    ):
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    return markdown, data


# ---------------------------------------------------------------------------------------------------------------
# The command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    names = [suite.name for suite in SUITES]
    parser = argparse.ArgumentParser(
        prog="python -m bench.all",
        description="Run every benchmark suite on PostgreSQL (the intake scenario on SQLite too) and write one "
        "summary table to bench/results/summary-<UTC timestamp>.md and .json.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"short runs: {QUICK_DURATION} s per wrk run after {QUICK_WARMUP} s, {QUICK_REVIEW_RECORDS:,} review "
        f"records, each suite's own --quick, {QUICK_CRYPTO_KEYS:,} keys to rewrap without the alternatives, "
        f"{QUICK_MIXED_DURATION} s of mixed load on {QUICK_MIXED_RECORDS:,} records",
    )
    parser.add_argument(
        "--only", action="append", choices=names, metavar="NAME",
        help=f"run only this suite (repeatable; default: all, in order: {', '.join(names)})",
    )
    parser.add_argument(
        "--postgres-url",
        help="SQLAlchemy URL of the PostgreSQL server and database name for the HTTP suite; the other suites get "
        "that name with their own suffix (_crypto, _audit_..., _export, _mixed), each dropped and recreated "
        f"(default: each suite's own, e.g. {DEFAULT_POSTGRES_URL})",
    )
    parser.add_argument(
        "--suite-args", action="append", nargs=2, default=[], metavar=("NAME", "ARGS"),
        help="extra arguments for one suite, split as a shell would (repeatable), "
        "e.g. --suite-args export '--records 2000'",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where every result goes")
    args = parser.parse_args(argv)
    for name, _ in args.suite_args:
        if name not in names:
            parser.error(f"--suite-args: unknown suite {name!r}; known: {', '.join(names)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suites and write the summary; see the module docstring for the exit status."""
    args = parse_args(argv)
    selected = [suite for suite in SUITES if not args.only or suite.name in args.only]
    options = Options(quick=args.quick, postgres_url=args.postgres_url, results_dir=args.results_dir)
    extra: dict[str, list[str]] = {}
    for name, text in args.suite_args:
        extra.setdefault(name, []).extend(shlex.split(text))

    postgres_url = args.postgres_url or DEFAULT_POSTGRES_URL
    postgres_version = postgres_server_version(postgres_url)
    if postgres_version is None and any(suite.needs_postgres for suite in selected):
        progress(
            f"PostgreSQL is not reachable at {postgres_url}: the benchmarks are stated for PostgreSQL, so nothing "
            "was run. Start it, or pass --postgres-url."
        )
        return EXIT_FAILED

    previous = signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    started_at = utc_now()
    load_start = round(os.getloadavg()[0], 2)
    outcomes: list[Outcome] = []
    try:
        for suite in selected:
            outcome = run_suite(suite, options, extra.get(suite.name, ()))
            outcomes.append(outcome)
            if outcome.state == "interrupted":
                break
    except (Interrupted, KeyboardInterrupt) as interruption:
        if isinstance(interruption, Interrupted):
            outcomes.append(interruption.outcome)
        progress("interrupted")
    finally:
        signal.signal(signal.SIGTERM, previous)
    done = {outcome.name for outcome in outcomes}
    outcomes += [Outcome(suite.name, suite.command(options, extra.get(suite.name, ())), "not run")
                 for suite in selected if suite.name not in done]

    wrk = find_wrk()
    machine = describe_machine(
        wrk_version=wrk_version(wrk) if wrk else "not installed",
        postgres_version=postgres_version,
        project_root=PROJECT_ROOT,
    )
    settings = {
        "quick": args.quick,
        "postgres_url": args.postgres_url,
        "suites": [suite.name for suite in selected],
        "suite_args": {name: shlex.join(values) for name, values in extra.items()},
        "load_average_start": load_start,
        "load_average_end": round(os.getloadavg()[0], 2),
    }
    summary = build_summary(started_at, machine, settings, outcomes, latest_chaos(args.results_dir))
    markdown, data = write_summary(summary, args.results_dir)
    print(render_markdown(summary, args.results_dir), end="")
    progress(f"summary written to {markdown} and {data}")
    return summary.exit_status


if __name__ == "__main__":
    sys.exit(main())
