"""Run the benchmark: ``python -m bench.run`` from the project root (``make bench``).

For every selected database, a fresh instance of the app is prepared (keyring, migrations, seed data),
served by gunicorn, and every selected scenario is driven by wrk. Before each scenario the control (a bare
Flask JSON endpoint served by gunicorn with the same settings) is driven the same way, so every row has its
own ratio taken in the same run. The table goes to stdout; Markdown and JSON copies go to bench/results/.

Exit status: 0 when every run was clean, 1 when a row is flagged for errors, 2 when the benchmark could not
run, 130 when interrupted.
"""

import argparse
import signal
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from types import FrameType

from bench.databases import (
    DEFAULT_POSTGRES_URL,
    POSTGRESQL,
    SQLITE,
    DatabaseError,
    drop_postgres_database,
    postgres_server_version,
    recreate_postgres_database,
    sqlite_url,
)
from bench.instance import PROJECT_ROOT, Instance, InstanceError, base_environment, instance_environment
from bench.load import WRK_INSTALL_HINT, LoadError, LoadSettings, find_wrk, measure, wrk_version
from bench.report import RESULTS_DIR, Report, Row, describe_machine, render_markdown, usable_cores, utc_now
from bench.report import write_results as write_result_files
from bench.scenarios import DRY_RUN_SCENARIO, REVIEW_RECORDS, SCENARIOS, RenderedRequest, ReviewData, Scenario
from bench.servers import GunicornServer, GunicornSettings, ServerError

APP_SPEC = "app:app"
APP_HEALTH_PATH = "/healthz"
CONTROL_SPEC = "bench.control_app:app"
CONTROL_REQUEST = RenderedRequest(method="GET", path="/control", headers={}, body=None)

EXIT_OK = 0
EXIT_FLAGGED = 1
EXIT_FAILED = 2
EXIT_INTERRUPTED = 130


def progress(message: str) -> None:
    """Report progress on stderr, keeping stdout for the table."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    default_workers = 2 * usable_cores()
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Benchmark the app under gunicorn with wrk, as a ratio against a bare Flask control.",
    )
    parser.add_argument(
        "--db",
        choices=[SQLITE, POSTGRESQL, "both"],
        help="database(s) to run against (default: both if PostgreSQL is reachable, else sqlite)",
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="SQLAlchemy URL of the PostgreSQL database; it is dropped and recreated (default: %(default)s)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        dest="scenarios",
        metavar="NAME",
        help="run only this scenario (repeatable; default: all)",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--review-records",
        type=int,
        default=REVIEW_RECORDS,
        metavar="N",
        help="submitted records stored for the review scenarios (default: %(default)s)",
    )
    parser.add_argument("--duration", type=int, default=15, help="measured seconds per run (default: 15)")
    parser.add_argument(
        "--warmup", type=int, default=3, help="discarded warm-up seconds per run (default: 3)"
    )
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default: 16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default: 2)")
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers,
        help=f"gunicorn workers for both servers (default: 2 x usable cores = {default_workers})",
    )
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class (default: sync)")
    parser.add_argument(
        "--timeout", type=int, default=10, help="wrk request timeout in seconds (default: 10)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment variable for both servers and the setup (repeatable)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help="where the Markdown and JSON results go (default: bench/results)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="serve the control app as the app under test (no keyring, migrations or seeding): "
        "checks the harness itself",
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for a server to answer its health check (default: 60)",
    )
    args = parser.parse_args(argv)
    if args.threads < 1 or args.connections < args.threads:
        parser.error("--threads must be at least 1 and --connections at least --threads")
    if args.review_records < 10:
        parser.error("--review-records must be at least 10")
    if args.duration < 1 or args.warmup < 0 or args.workers < 1 or args.timeout < 1:
        parser.error("--duration, --workers and --timeout must be at least 1, --warmup at least 0")
    for item in args.env:
        if "=" not in item:
            parser.error(f"--env expects NAME=VALUE, got {item!r}")
    return args


def select_scenarios(names: list[str] | None, review_records: int = REVIEW_RECORDS) -> tuple[Scenario, ...]:
    """The scenarios named on the command line, in the order given, or all of them; the review scenarios with
    ``review_records`` records stored."""
    review = ReviewData(records=review_records)
    known = tuple(
        replace(scenario, setup=review) if isinstance(scenario.setup, ReviewData) else scenario
        for scenario in SCENARIOS
    )
    if not names:
        return known
    by_name = {scenario.name: scenario for scenario in known}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(by_name)}")
    return tuple(by_name[name] for name in names)


def scenario_load(scenario: Scenario, load: LoadSettings) -> LoadSettings:
    """The run's load, at the scenario's own number of clients if it has one (wrk threads at most as many)."""
    if scenario.connections is None:
        return load
    return replace(load, connections=scenario.connections, threads=min(load.threads, scenario.connections))


def choose_databases(choice: str | None, postgres_url: str, notes: list[str]) -> tuple[list[str], str | None]:
    """Resolve ``--db`` to a list of databases; also return PostgreSQL's version if it is reachable."""
    version = postgres_server_version(postgres_url)
    if choice is None:
        if version is None:
            notes.append(
                "PostgreSQL is not reachable at the configured URL: measured on SQLite only "
                "(pass --postgres-url, or start PostgreSQL and rerun for both)."
            )
            return [SQLITE], None
        return [SQLITE, POSTGRESQL], version
    databases = [SQLITE, POSTGRESQL] if choice == "both" else [choice]
    if POSTGRESQL in databases and version is None:
        raise DatabaseError(f"PostgreSQL is not reachable at {postgres_url}")
    return databases, version if POSTGRESQL in databases else None


def bench_database(
    *,
    database: str,
    args: argparse.Namespace,
    scenarios: Sequence[Scenario],
    extra_env: dict[str, str],
    gunicorn: GunicornSettings,
    load: LoadSettings,
    wrk: str,
    control: GunicornServer,
) -> list[Row]:
    """Prepare a fresh instance on ``database``, serve it, and measure every scenario against the control."""
    rows: list[Row] = []
    with ExitStack() as stack:
        instance_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{database}-")))
        if database == POSTGRESQL:
            database_url = args.postgres_url
            progress(f"{database}: recreating the database")
            recreate_postgres_database(database_url)
            stack.callback(drop_postgres_database, database_url)
        else:
            database_url = sqlite_url(instance_dir)
        instance = Instance(instance_environment(instance_dir, database_url, extra_env))
        if args.dry_run:
            app_spec, health_path = CONTROL_SPEC, "/control"
        else:
            app_spec, health_path = APP_SPEC, APP_HEALTH_PATH
            progress(f"{database}: creating the keyring and migrating")
            instance.initialise()
        requests = {}
        for scenario in scenarios:
            progress(f"{database}: setting up scenario {scenario.name}")
            requests[scenario.name] = scenario.render(instance.setup_variables(scenario.setup))
        progress(f"{database}: starting gunicorn ({app_spec})")
        app = stack.enter_context(
            GunicornServer(
                label=f"app on {database}",
                app_spec=app_spec,
                settings=gunicorn,
                cwd=PROJECT_ROOT,
                env=instance.env,
                log_path=instance_dir / "gunicorn.log",
                health_path=health_path,
                startup_timeout=args.startup_timeout,
            )
        )
        run_seconds = load.warmup + load.duration
        for scenario in scenarios:
            own = scenario_load(scenario, load)
            clients = f", {own.connections} clients" if scenario.connections is not None else ""
            progress(f"{database}/{scenario.name}: control, {run_seconds}s{clients}")
            control_result = measure(wrk, control.base_url, CONTROL_REQUEST, own)
            progress(f"{database}/{scenario.name}: app, {run_seconds}s{clients}")
            app_result = measure(wrk, app.base_url, requests[scenario.name], own)
            rows.append(
                Row(
                    scenario=scenario.name,
                    request=scenario.request_label,
                    database=database,
                    app=app_result,
                    control=control_result,
                    targets=scenario.targets,
                    connections=scenario.connections,
                )
            )
            if "429" in app_result.statuses:
                progress(f"{database}/{scenario.name}: THROTTLED — the app answered 429 to the bench")
    return rows


def run_benchmark(args: argparse.Namespace, report: Report, wrk: str, databases: Sequence[str]) -> None:
    """Start the control, then measure every database in turn, appending rows to ``report``."""
    scenarios = (DRY_RUN_SCENARIO,) if args.dry_run else select_scenarios(args.scenarios, args.review_records)
    extra_env = dict(item.split("=", 1) for item in args.env)
    gunicorn = GunicornSettings(workers=args.workers, worker_class=args.worker_class)
    load = LoadSettings(
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        threads=args.threads,
        timeout=args.timeout,
    )
    with ExitStack() as stack:
        control_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-control-")))
        progress(f"starting the control ({CONTROL_SPEC})")
        control = stack.enter_context(
            GunicornServer(
                label="control",
                app_spec=CONTROL_SPEC,
                settings=gunicorn,
                cwd=PROJECT_ROOT,
                env=base_environment(extra_env),
                log_path=control_dir / "gunicorn.log",
                health_path=CONTROL_REQUEST.path,
                startup_timeout=args.startup_timeout,
            )
        )
        for database in databases:
            report.rows += bench_database(
                database=database,
                args=args,
                scenarios=scenarios,
                extra_env=extra_env,
                gunicorn=gunicorn,
                load=load,
                wrk=wrk,
                control=control,
            )


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table; see the module docstring for the exit status."""
    args = parse_args(argv)
    if args.list:
        for scenario in SCENARIOS:
            print(f"{scenario.name:20} {scenario.request_label}  — {scenario.description}")
        return EXIT_OK
    wrk = find_wrk()
    if wrk is None:
        print(
            f"bench: wrk is not installed (or not on PATH). Install it with:\n    {WRK_INSTALL_HINT}",
            file=sys.stderr,
        )
        return EXIT_FAILED

    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    started_at = utc_now()
    notes: list[str] = []
    try:
        databases, postgres_version = choose_databases(args.db, args.postgres_url, notes)
        for note in notes:
            progress(note)
        if args.dry_run:
            notes.append(
                "Dry run: the app under test is the control app itself; the ratio should be close to 1."
            )
        report = Report(
            started_at=started_at,
            machine=describe_machine(
                wrk_version=wrk_version(wrk), postgres_version=postgres_version, project_root=PROJECT_ROOT
            ),
            settings={
                "workers": args.workers,
                "worker_class": args.worker_class,
                "threads": args.threads,
                "connections": args.connections,
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "wrk_timeout_s": args.timeout,
                "databases": list(databases),
                "dry_run": args.dry_run,
                "bind": "127.0.0.1 (free port)",
                "access_log": False,
            },
            notes=notes,
        )
        run_benchmark(args, report, wrk, databases)
    except KeyboardInterrupt:
        progress("interrupted: servers stopped, temporary files removed")
        return EXIT_INTERRUPTED
    except (DatabaseError, InstanceError, LoadError, ServerError) as error:
        progress(f"failed: {error}")
        return EXIT_FAILED

    throttled = [f"{row.scenario}/{row.database}" for row in report.rows if "429" in row.app.statuses]
    if throttled:
        notes.append(
            "THROTTLED: the rate limiter answered 429 in " + ", ".join(throttled) + "; those numbers are not "
            "the endpoint's cost, and the limit on that endpoint needs to be looked at."
        )
    if report.has_errors:
        notes.append(
            "FLAGGED rows had failed requests (non-2xx or socket errors); their numbers are unreliable."
        )
    markdown_path, json_path = write_result_files(report, args.results_dir)
    print(render_markdown(report), end="")
    progress(f"results written to {markdown_path} and {json_path}")
    return EXIT_FLAGGED if report.has_errors else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
