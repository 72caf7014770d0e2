"""A fresh, throw-away instance of the app under test: instance folder, keyring, database, seed data."""

import os
import secrets
import shutil
import string
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from bench.scenarios import SetupFunction

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class InstanceError(RuntimeError):
    """A preparation step of the instance failed."""


def random_passphrase(length: int = 32) -> str:
    """A random passphrase of letters and digits."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def base_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment without any INTAKE_* or gunicorn settings, plus ``extra``.

    Inherited INTAKE_* variables are dropped so that a developer's own configuration cannot leak into
    the measurement; pass what the bench needs explicitly (``--env`` on the command line).
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("INTAKE_") and name != "GUNICORN_CMD_ARGS"
    }
    env.update(extra)
    return env


def instance_environment(instance_dir: Path, database_url: str, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of an app instance living in ``instance_dir`` and using ``database_url``."""
    env = base_environment({})
    env.update(
        {
            "INTAKE_INSTANCE_PATH": str(instance_dir),
            "INTAKE_DATABASE_URL": database_url,
            "INTAKE_KEYRING_PATH": str(instance_dir / "keyring.sealed"),
            "INTAKE_KEYRING_PASSPHRASE": random_passphrase(),
            "INTAKE_ENV": "production",
            "INTAKE_SECURE_COOKIES": "false",
            # The whole load comes from one address; in service the API limit applies per client address, so
            # leaving it at its default would measure the limiter's refusals instead of the endpoint.
            "INTAKE_API_LIMIT": "1000000 per minute",
        }
    )
    env.update(extra)
    return env


_CLI_FALLBACK = "import sys; from intake.cli import main; sys.argv[0] = 'intake'; main()"


def intake_command() -> list[str]:
    """The ``intake`` console script next to this Python or on PATH, else the same entry point via ``-c``.

    The fallback lets the bench run from a checkout whose package is not installed into the virtualenv.
    """
    beside = Path(sys.executable).parent / "intake"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("intake")
    if found is not None:
        return [found]
    return [sys.executable, "-c", _CLI_FALLBACK]


class Instance:
    """Runs commands in the environment of one app instance; also the ``SetupContext`` of scenarios."""

    def __init__(self, env: dict[str, str], *, cwd: Path = PROJECT_ROOT) -> None:
        self.env = env
        self.cwd = cwd
        self._setup_results: dict[SetupFunction, Mapping[str, str]] = {}

    def _run(self, command: list[str], what: str) -> str:
        completed = subprocess.run(
            command,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if completed.returncode != 0:
            raise InstanceError(
                f"{what} failed with code {completed.returncode}\n--- stdout ---\n{completed.stdout}"
                f"\n--- stderr ---\n{completed.stderr}"
            )
        return completed.stdout

    def run_python(self, code: str) -> str:
        """Run ``code`` with this instance's environment from the project root; return its stdout."""
        return self._run([sys.executable, "-c", code], "python setup code")

    def run_cli(self, *args: str) -> str:
        """Run ``intake ARGS`` with this instance's environment; return its stdout."""
        return self._run([*intake_command(), *args], "intake " + " ".join(args))

    def initialise(self) -> None:
        """Create the keyring and migrate the database to the latest revision."""
        self.run_cli("keys", "init")
        self.run_cli("db", "upgrade")

    def setup_variables(self, setup: SetupFunction | None) -> Mapping[str, str]:
        """Run a scenario's setup function once for this instance and remember its variables."""
        if setup is None:
            return {}
        if setup not in self._setup_results:
            self._setup_results[setup] = setup(self)
        return self._setup_results[setup]
