"""Benchmark scenarios.

A scenario is one declarative entry: a name, an optional setup function that prepares data in a fresh
instance, and the request that wrk repeats (method, path, headers, body). Headers, path and body are
``string.Template`` strings: ``${name}`` is replaced by the value the setup function returned under that
name (``$`` rather than ``{}`` so that JSON bodies need no escaping).

To add a scenario, write its setup function (or reuse one) and append an entry to ``SCENARIOS``.
Setup functions run once per fresh instance and database; scenarios that share a setup function share
its result.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from string import Template
from typing import Protocol


class SetupContext(Protocol):
    """What a setup function may use: code run inside the app under test's environment."""

    def run_python(self, code: str) -> str:
        """Run ``code`` with the instance's environment from the project root and return its stdout."""
        ...

    def run_cli(self, *args: str) -> str:
        """Run the ``intake`` command with ``args`` in the instance's environment and return its stdout."""
        ...


SetupFunction = Callable[[SetupContext], Mapping[str, str]]


@dataclass(frozen=True)
class RenderedRequest:
    """A concrete HTTP request for wrk, with every template variable filled in."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: str | None


@dataclass(frozen=True)
class Scenario:
    """One thing to measure: a request against a prepared instance of the app."""

    name: str
    description: str
    setup: SetupFunction | None
    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None

    def render(self, variables: Mapping[str, str]) -> RenderedRequest:
        """Fill ``${name}`` placeholders from the setup's variables; a missing one is an error."""
        return RenderedRequest(
            method=self.method,
            path=Template(self.path).substitute(variables),
            headers={name: Template(value).substitute(variables) for name, value in self.headers.items()},
            body=None if self.body is None else Template(self.body).substitute(variables),
        )


def read_marker(output: str, marker: str) -> str:
    """Return the value printed after ``marker`` on its own line in ``output`` (the last one wins)."""
    values = [line[len(marker) :].strip() for line in output.splitlines() if line.startswith(marker)]
    if not values or not values[-1]:
        raise RuntimeError(f"setup printed no {marker!r} line; its output was:\n{output}")
    return values[-1]


BENCH_USERNAME = "bench"
BENCH_PASSWORD = "correct horse battery staple 42"

_SEED_BENCH_USER = f"""
from intake import create_app
from intake.core.db import db
from intake.accounts import operations as ops

app = create_app()
with app.app_context():
    account = ops.create_account(username={BENCH_USERNAME!r}, password={BENCH_PASSWORD!r}, roles=["reviewer"])
    token, plaintext = ops.create_api_token(account, name="bench", expires_in_days=1)
    db.session.commit()
    print("BENCH_TOKEN=" + plaintext)
"""


def seed_bench_user(context: SetupContext) -> Mapping[str, str]:
    """Create the bench reviewer account and an API token; expose ``token`` and ``username``."""
    output = context.run_python(_SEED_BENCH_USER)
    return {"token": read_marker(output, "BENCH_TOKEN="), "username": BENCH_USERNAME}


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="me",
        description="sign-in-protected GET /api/v1/me with a bearer token",
        setup=seed_bench_user,
        method="GET",
        path="/api/v1/me",
        headers={"Authorization": "Bearer ${token}", "Accept": "application/json"},
    ),
)


def _dry_run_setup(context: SetupContext) -> Mapping[str, str]:
    """Exercise the setup machinery without the application: a subprocess prints a fake token."""
    output = context.run_python('print("BENCH_TOKEN=dry-run-token")')
    return {"token": read_marker(output, "BENCH_TOKEN=")}


DRY_RUN_SCENARIO = Scenario(
    name="dry-run",
    description="the control app measured as if it were the app under test",
    setup=_dry_run_setup,
    method="GET",
    path="/control",
    headers={"Authorization": "Bearer ${token}", "Accept": "application/json"},
)
