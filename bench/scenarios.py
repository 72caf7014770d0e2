"""Benchmark scenarios.

A scenario is one declarative entry: a name, an optional setup function that prepares data in a fresh
instance, and the request that wrk repeats (method, path, headers, body). Headers, path and body are
``string.Template`` strings: ``${name}`` is replaced by the value the setup function returned under that
name (``$`` rather than ``{}`` so that JSON bodies need no escaping).

A scenario whose requests must differ from one another (a fresh ``Idempotency-Key`` each, say) names a wrk
Lua script in this folder as its ``script``: that script loads ``wrk_report.lua`` (which counts the statuses
and prints the result) and adds a ``request()`` function. A scenario may also state its ``targets``; the
report says for every row whether they were met.

To add a scenario, write its setup function (or reuse one) and append an entry to ``SCENARIOS``.
Setup functions run once per fresh instance and database; scenarios that share a setup function share
its result.
"""

import json
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
    script: str | None = None
    paths: tuple[str, ...] = ()  # when set, wrk_paths.lua requests one of these at random each time


@dataclass(frozen=True)
class Targets:
    """What a scenario must reach, at ``connections`` concurrent clients (None: no target on that figure)."""

    min_ratio: float | None = None
    max_p99_ms: float | None = None
    connections: int = 16
    max_p95_ms: float | None = None


@dataclass(frozen=True)
class Scenario:
    """One thing to measure: a request against a prepared instance of the app.

    ``script`` names a wrk Lua file in bench/ that replaces ``wrk_report.lua`` for this scenario (it must load
    that file itself, see ``wrk_intake.lua``); None keeps the plain report script and one fixed request.
    """

    name: str
    description: str
    setup: SetupFunction | None
    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    script: str | None = None
    targets: Targets | None = None
    # A template that becomes paths separated by spaces: each request asks for one of them (with ``script``
    # ``wrk_paths.lua``); ``path`` is then the first of them, and ``shown`` what the report calls the request.
    paths: str | None = None
    shown: str | None = None
    # Clients for this scenario's runs (control and app), whatever ``--connections`` says: the load its targets are
    # stated for. None: the run's ``--connections``.
    connections: int | None = None

    @property
    def request_label(self) -> str:
        """The request as the report names it, e.g. ``GET /api/v1/me``."""
        return self.shown or f"{self.method} {self.path}"

    def render(self, variables: Mapping[str, str]) -> RenderedRequest:
        """Fill ``${name}`` placeholders from the setup's variables; a missing one is an error."""
        return RenderedRequest(
            method=self.method,
            path=Template(self.path).substitute(variables),
            headers={name: Template(value).substitute(variables) for name, value in self.headers.items()},
            body=None if self.body is None else Template(self.body).substitute(variables),
            script=self.script,
            paths=() if self.paths is None else tuple(Template(self.paths).substitute(variables).split()),
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


INTERVIEWER_USERNAME = "bench-interviewer"

_SEED_INTERVIEWER = f"""
from intake import create_app
from intake.core.db import db
from intake.accounts import operations as ops

app = create_app()
with app.app_context():
    account = ops.create_account(username={INTERVIEWER_USERNAME!r}, password={BENCH_PASSWORD!r},
                                 roles=["interviewer"])
    account.team = "bench"
    token, plaintext = ops.create_api_token(account, name="bench", expires_in_days=1)
    db.session.commit()
    print("BENCH_TOKEN=" + plaintext)
"""


def seed_interviewer(context: SetupContext) -> Mapping[str, str]:
    """Create the bench interviewer account (team "bench") and an API token; expose ``token`` and ``username``."""
    output = context.run_python(_SEED_INTERVIEWER)
    return {"token": read_marker(output, "BENCH_TOKEN="), "username": INTERVIEWER_USERNAME}


# A few hundred characters in the person's words, as an interviewer would type them.
INTAKE_NARRATIVE = (
    "On the morning of the nineteenth the shelling started while we were at the market. We ran to the "
    "basement of the school with our neighbours and stayed there two days without water. When we came out "
    "our street was burnt and my brother's house was gone. On the road to Kornidzor men in uniform stopped "
    "our car at the bridge, took my husband's phone and kept him for three hours before letting us go."
)

INTAKE_BODY: dict[str, object] = {
    "readiness": {
        "private_place": True,
        "no_observers": True,
        "interpreter": "present_briefed",
        "support_available": True,
        "risk": "low",
        "risk_mitigated": False,
    },
    "consent": {
        "script_language": "en",
        "items_confirmed": [
            "who_collects_and_why",
            "uses",
            "recipients",
            "risks_and_benefits",
            "right_to_refuse",
            "right_to_skip_pause_stop",
            "right_to_withdraw",
            "what_we_can_and_cannot_do",
            "contact",
        ],
        "method": "written",
        "capacity_confirmed": True,
        "voluntariness_confirmed": True,
        "grants": {"documentation": "pseudonymous", "un_mechanisms": "anonymous", "referral": "confidential"},
        "media": ["photo", "document"],
        "witness": "",
        "interpreter": "",
        "minor": None,
        "follow_up": None,
        "exclusions": [{"kind": "authorities_of", "value": "AZ"}],
        "review_date": None,
    },
    "person": None,
    "testimony": {"narrative": INTAKE_NARRATIVE, "narrative_declined": False},
    "incidents": [
        {
            "type": "shelling",
            "description": "Shelling of the market street and the houses around it.",
            "date": {"precision": "day", "start": "2023-09-19", "end": None},
            "place": {"id": "stepanakert", "description": "near the central market"},
            "victims": {"count": 2, "description": "two neighbours wounded"},
            "perpetrators": [{"description": "artillery from the east", "unit": "", "involvement": "unknown"}],
            "source_relation": "lived",
        },
        {
            "type": "checkpoint_detention",
            "description": "Husband held at the checkpoint for three hours, phone taken.",
            "date": {"precision": "range", "start": "2023-09-25", "end": "2023-09-26"},
            "place": {"id": "hakari-bridge-checkpoint", "description": ""},
            "victims": {"count": 1, "description": "the husband"},
            "perpetrators": [{"description": "men in uniform", "unit": "", "involvement": "carried_out"}],
            "source_relation": "saw",
        },
    ],
    "referral": {
        "outcome": "accepted",
        "services": ["psychosocial", "family_tracing"],
        "wellbeing": "settled",
        "note": "",
    },
    "submit": True,
}

INTAKE_TARGETS = Targets(min_ratio=0.5, max_p99_ms=100.0, connections=16)


REVIEW_RECORDS = 100_000


@dataclass(frozen=True)
class ReviewData:
    """The review scenarios' setup: ``records`` submitted records (``bench/review.py``), the bench reviewer signed
    in. Exposes ``cookie`` (the reviewer's session cookie, as a ``Cookie`` header value), ``record_paths`` (records
    the reviewer may open, spread over the id range), ``queue_paths`` (filtered queue pages) and the first of each
    as ``record_path`` and ``queue_path``. Equal instances are one setup, run once per instance."""

    records: int = REVIEW_RECORDS

    def __call__(self, context: SetupContext) -> Mapping[str, str]:
        output = context.run_python(f"from bench.review import main; main({int(self.records)})")
        record_paths = read_marker(output, "BENCH_RECORD_PATHS=")
        queue_paths = read_marker(output, "BENCH_QUEUE_PATHS=")
        return {"cookie": read_marker(output, "BENCH_COOKIE="), "record_paths": record_paths,
                "queue_paths": queue_paths, "record_path": record_paths.split()[0],
                "queue_path": queue_paths.split()[0], "counts": read_marker(output, "BENCH_COUNTS=")}


# DESIGN "Performance targets": with 100,000 records stored, opening a record p95 <= 20 ms and a filtered queue page
# p95 <= 50 ms. A reviewer opens a record or a page by hand, a few times a minute: the latency that matters is the
# one a person waits for on a server with room to spare, so these targets are stated for 4 clients at once (a
# sync worker per core and a half, wrk on the same cores), not for the intake's 16, where two cores spend most of
# each request's time queueing behind the others. The report gives the requests per second at that load.
REVIEW_CONNECTIONS = 4
REVIEW_RECORD_TARGETS = Targets(max_p95_ms=20.0, connections=REVIEW_CONNECTIONS)
REVIEW_QUEUE_TARGETS = Targets(max_p95_ms=50.0, connections=REVIEW_CONNECTIONS)
REVIEW_HEADERS = {"Cookie": "${cookie}", "Accept": "text/html"}


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="me",
        description="sign-in-protected GET /api/v1/me with a bearer token",
        setup=seed_bench_user,
        method="GET",
        path="/api/v1/me",
        headers={"Authorization": "Bearer ${token}", "Accept": "application/json"},
    ),
    Scenario(
        name="intake",
        description="a whole interview submitted through POST /api/v1/interviews (consent, narrative, two "
        "incidents, referral, submit), a fresh Idempotency-Key per request, as an interviewer",
        setup=seed_interviewer,
        method="POST",
        path="/api/v1/interviews",
        headers={
            "Authorization": "Bearer ${token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        },
        body=json.dumps(INTAKE_BODY, ensure_ascii=False),
        script="wrk_intake.lua",
        targets=INTAKE_TARGETS,
    ),
    Scenario(
        name="review-record",
        description="a reviewer opens a record: GET /review/records/<id>, the page of one of 1,000 records "
        "assigned to them (a different one each time) among 100,000 stored, decrypted and audited, signed in "
        "with a browser session",
        setup=ReviewData(),
        method="GET",
        path="${record_path}",
        headers=REVIEW_HEADERS,
        script="wrk_paths.lua",
        paths="${record_paths}",
        shown="GET /review/records/<id>",
        connections=REVIEW_CONNECTIONS,
        targets=REVIEW_RECORD_TARGETS,
    ),
    Scenario(
        name="review-queue",
        description="a reviewer's filtered queue page among 100,000 records: GET /review/?incident_type=..."
        "&region=... (each common type in each region, some older pages, a rare type, month, team and "
        "language filters, one at random each time)",
        setup=ReviewData(),
        method="GET",
        path="${queue_path}",
        headers=REVIEW_HEADERS,
        script="wrk_paths.lua",
        paths="${queue_paths}",
        shown="GET /review/?incident_type=...&region=...",
        connections=REVIEW_CONNECTIONS,
        targets=REVIEW_QUEUE_TARGETS,
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
