"""The review scenarios' data: many submitted records as the service stores them, and a reviewer signed in.

`populate(records)` fills the database of the current application context with `records` submitted testimonies
through the data generator (`bench.generate.generate`, whose docstring says what the records hold): bulk-written
rows that are what the interview operations store, in four languages, with incidents across the gazetteer,
attachments for a share of them, most assigned to the bench reviewer and some consents withdrawn or erased through
`record_withdrawal` itself.

`main(records)` is what the scenarios' setup runs inside a fresh instance: it populates, signs the reviewer in
through the real sign-in page (password and a fresh two-factor code) and prints the session cookie and the paths
the scenarios request, one marker line each.
"""

from __future__ import annotations

import sys
from typing import Any

from bench.generate import (
    ASSIGNED,
    BATCH,
    COMMON_TYPES,
    COORDINATOR,
    DEFAULT_RECORDS,
    ERASED,
    LANGUAGES,
    OPENED,
    REVIEWER,
    REVIEWER_PASSWORD,
    SECOND_VERSION,
    SEED,
    SENTENCES,
    STATUSES,
    WITHDRAWN,
    Generated,
    _batches,
    _ids_from,
    _incident,
    _pseudonyms,
    _Row,
    _type_weights,
    _weighted,
    generate,
)

__all__ = ["ASSIGNED", "BATCH", "COMMON_TYPES", "COORDINATOR", "DEFAULT_RECORDS", "ERASED", "LANGUAGES", "OPENED",
           "REVIEWER", "REVIEWER_PASSWORD", "SECOND_VERSION", "SEED", "SENTENCES", "STATUSES", "WITHDRAWN",
           "Populated", "_Row", "_batches", "_ids_from", "_incident", "_pseudonyms", "_type_weights", "_weighted",
           "main", "populate", "queue_paths", "sign_in"]

COOKIE_MARKER = "BENCH_COOKIE="
RECORD_PATHS_MARKER = "BENCH_RECORD_PATHS="
QUEUE_PATHS_MARKER = "BENCH_QUEUE_PATHS="
COUNTS_MARKER = "BENCH_COUNTS="

# What `populate` made: the accounts, and the records the scenarios read.
Populated = Generated


def populate(records: int = DEFAULT_RECORDS, *, seed: int = SEED, batch: int = BATCH,
             progress: Any = None) -> Populated:
    """Fill the current application's database with `records` submitted testimonies through the generator;
    commits as it goes. The database must hold no bench accounts yet."""
    return generate(records, seed=seed, batch=batch, report=progress)


def queue_paths(populated: Populated) -> list[str]:
    """The filtered queue pages requested: each common incident type in each region (the newest page), a rarer
    type, a month, a team and a language, and older pages reached by `before`."""
    from intake.core import gazetteer

    middle = (populated.first_id + populated.last_id) // 2
    paths = [f"/review/?incident_type={kind}&region={region}"
             for kind in COMMON_TYPES[:6] for region in gazetteer.REGIONS]
    paths += [f"/review/?incident_type={kind}&region={region}&before={middle}"
              for kind in COMMON_TYPES[:2] for region in gazetteer.REGIONS]
    paths += ["/review/?incident_type=enforced_disappearance&region=azerbaijan",
              "/review/?incident_type=shelling&month=2020-10",
              "/review/?incident_type=checkpoint_detention&region=azerbaijan&team=lachin",
              "/review/?region=armenia&language=ru&status=submitted"]
    return paths


def sign_in(app: Any, username: str, password: str, secret: str) -> str:
    """Sign in through the sign-in page as a browser does; the value of the session cookie it sets."""
    import re

    import pyotp

    client = app.test_client()
    page = client.get("/sign-in").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"', page)
    if token is None:
        raise RuntimeError("the sign-in page has no CSRF token")
    answer = client.post("/sign-in", data={"csrf_token": token.group(1) or token.group(2), "username": username,
                                           "password": password, "code": pyotp.TOTP(secret).now()})
    cookie = client.get_cookie(app.session_interface.cookie_name)
    if answer.status_code not in (302, 303) or "sign-in" in answer.headers.get("Location", "") or cookie is None:
        raise RuntimeError(f"signing in as {username} failed ({answer.status_code})")
    return str(cookie.value)


def main(records: int = DEFAULT_RECORDS) -> None:
    """Populate the instance named by the environment, sign the reviewer in, and print the markers."""
    import json

    from intake import create_app
    from intake.core.db import db

    app = create_app()
    with app.app_context():
        populated = populate(records, progress=lambda text: print(text, file=sys.stderr, flush=True))
        db.session.remove()
    cookie = sign_in(app, REVIEWER, REVIEWER_PASSWORD, populated.reviewer_secret)
    name = app.session_interface.cookie_name  # type: ignore[attr-defined]
    print(COOKIE_MARKER + f"{name}={cookie}")
    print(RECORD_PATHS_MARKER + " ".join(f"/review/records/{n}" for n in populated.openable))
    print(QUEUE_PATHS_MARKER + " ".join(queue_paths(populated)))
    print(COUNTS_MARKER + json.dumps(populated.counts, sort_keys=True))
