"""The review scenarios' data: many submitted records as the service stores them, and a reviewer signed in.

`populate(records)` fills the database of the current application context with `records` submitted testimonies.
They are written in bulk (SQLAlchemy Core, a few thousand rows per statement) instead of one interview at a time
through the wizard's operations, but each row is what those operations store: an anonymous person and a testimony,
each with its own data key wrapped under the keyring's primary KEK version; the narrative, the interview's details,
every incident's details and the consent's particulars sealed with `seal_value` under the testimony's key and bound
to their row; a consent version from the current script with every item confirmed (and for some records a second
version); one to three incidents with types from the vocabulary and places from the gazetteer, as
`intake.interviews.operations` validates and stores them (`incident_problems`, the same month and region columns
and sealed document). Most records are assigned to the bench reviewer through rows like `assign` writes; some
consents are withdrawn, a few with erasure, through `record_withdrawal` itself, so those records leave the queue
exactly as in service. The records' own audit events (created, consent recorded, submitted) are not written: the
log is not what these scenarios read.

`main(records)` is what the scenarios' setup runs inside a fresh instance: it populates, signs the reviewer in
through the real sign-in page (password and a fresh two-factor code) and prints the session cookie and the paths
the scenarios request, one marker line each.
"""

from __future__ import annotations

import random
import secrets
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

DEFAULT_RECORDS = 100_000
REVIEWER = "bench-reviewer"
REVIEWER_PASSWORD = "correct horse battery staple 42"
COORDINATOR = "bench-coordinator"
TEAMS = ("north", "south", "syunik", "lachin", "yerevan", "goris")
INTERVIEWERS_PER_TEAM = 4
BATCH = 2_000
SEED = 2023

# Shares of the records: assigned to the bench reviewer; consent withdrawn (wholly, for documentation, or only for
# another purpose, which leaves the record in the queue); erased at the person's request; with a second version.
ASSIGNED = 0.9
WITHDRAWN = 0.03
ERASED = 0.002
SECOND_VERSION = 0.05
# How many records the record scenario opens, spread over the whole id range.
OPENED = 1_000

COOKIE_MARKER = "BENCH_COOKIE="
RECORD_PATHS_MARKER = "BENCH_RECORD_PATHS="
QUEUE_PATHS_MARKER = "BENCH_QUEUE_PATHS="
COUNTS_MARKER = "BENCH_COUNTS="

# The most frequent incident types first: the shares fall off like a survey's would (harmonic weights), so that
# shelling or displacement fill the queue and the rarest types are a few hundred records in 100,000.
COMMON_TYPES = ("shelling", "forced_displacement", "drone_strike", "destruction_of_home", "checkpoint_detention",
                "denial_of_food_medicine_fuel", "family_separation", "road_corridor_blockade", "small_arms_fire",
                "unlawful_killing_civilian", "arbitrary_detention", "looting_pillage", "threats_intimidation")
LANGUAGES = (("hy", 70), ("ru", 20), ("en", 7), ("az", 3))
STATUSES = (("submitted", 70), ("in_review", 20), ("reviewed", 8), ("archived", 2))
# The periods most testimony is about: the 2020 war, the blockade of the Lachin corridor, the 2023 exodus.
PERIODS = ((date(2020, 9, 27), date(2020, 11, 10), 40), (date(2022, 12, 12), date(2023, 9, 18), 25),
           (date(2023, 9, 19), date(2023, 10, 15), 30), (date(2016, 4, 1), date(2022, 12, 11), 5))
SENTENCES = (
    "On the morning of the nineteenth the shelling started while we were at the market.",
    "We ran to the basement of the school with our neighbours and stayed there two days without water.",
    "When we came out our street was burnt and my brother's house was gone.",
    "On the road to Kornidzor men in uniform stopped our car at the bridge and took my husband's phone.",
    "They kept him for three hours before letting us go, and nobody told us why.",
    "There was no bread for weeks during the blockade; the children queued for it at dawn.",
    "The drone came twice over the village, the second time it hit the school yard.",
    "My father refused to leave the house, and we have not heard from him since October.",
    "We left with what we could carry, forty hours on the road to Goris.",
    "A neighbour saw soldiers take two men from the checkpoint into a car without plates.",
)


@dataclass
class Populated:
    """What `populate` made: the accounts, and the records the scenarios read."""

    reviewer_id: int
    reviewer_secret: str
    records: int
    first_id: int
    last_id: int
    openable: list[int] = field(default_factory=list)  # assigned to the reviewer, consent standing, not erased
    counts: dict[str, int] = field(default_factory=dict)


class _Row:
    """Stands for a row that is being built, so that `seal_value` binds what it seals to that row's table and id."""

    def __init__(self, table: sa.Table, row_id: int) -> None:
        self.__table__ = table
        self.id = row_id


def _weighted(rng: random.Random, choices: Sequence[tuple[Any, int]]) -> Any:
    values = [c for c, _ in choices]
    return rng.choices(values, weights=[w for _, w in choices])[0]


def _type_weights() -> list[tuple[str, float]]:
    from intake.core import vocabulary

    ids = [t.id for t in vocabulary.incident_types()]
    ordered = [t for t in COMMON_TYPES if t in ids] + [t for t in ids if t not in COMMON_TYPES]
    return [(t, 1.0 / (rank + 1)) for rank, t in enumerate(ordered)]


def _day(rng: random.Random) -> date:
    start, end, _ = rng.choices(PERIODS, weights=[p[2] for p in PERIODS])[0]
    return start + timedelta(days=rng.randrange((end - start).days + 1))


def _incident(rng: random.Random, types: list[tuple[str, float]], places: list[Any]) -> Any:
    from intake.interviews.operations import INVOLVEMENT, SOURCE_RELATIONS, IncidentInput, Perpetrator

    kind = rng.choices([t for t, _ in types], weights=[w for _, w in types])[0]
    place = rng.choice(places)
    day = _day(rng)
    precision = rng.choices(("day", "month", "range", "approximate", "unknown"), weights=(55, 20, 10, 10, 5))[0]
    start = {"day": day.isoformat(), "approximate": day.isoformat(), "range": day.isoformat(),
             "month": day.isoformat()[:7], "unknown": ""}[precision]
    end = (day + timedelta(days=rng.randrange(1, 5))).isoformat() if precision == "range" else ""
    return IncidentInput(
        type=kind, description=rng.choice(SENTENCES), date_precision=precision, date_start=start, date_end=end,
        place_id=place.id, place_description=rng.choice(("", "near the central market", "at the school")),
        victims_count=rng.randrange(0, 6), victims_description=rng.choice(("", "two neighbours", "my brother")),
        perpetrators=(Perpetrator(description=rng.choice(("men in uniform", "artillery from the east", "unknown")),
                                  unit="", involvement=rng.choice(INVOLVEMENT)),),
        source_relation=rng.choice(SOURCE_RELATIONS),
        declined=frozenset(rng.sample(("perpetrators", "victims"), rng.choice((0, 0, 0, 1)))))


def _ids_from(conn: sa.Connection, table: sa.Table) -> int:
    return int(conn.scalar(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))) or 0) + 1


def _accounts(rng: random.Random) -> tuple[int, int, str, list[int]]:
    """The reviewer (who signs in: a password and a two-factor seed), a coordinator (who assigns and records
    withdrawals) and the interviewers of each team (who never sign in here); their ids and the reviewer's seed."""
    import pyotp

    from intake.accounts import operations as accounts
    from intake.core.db import db

    secret = pyotp.random_base32()
    reviewer = accounts.create_account(username=REVIEWER, roles=["reviewer"], password=REVIEWER_PASSWORD,
                                       totp_secret=secret)
    coordinator = accounts.create_account(username=COORDINATOR, roles=["coordinator"])
    interviewers = []
    for team in TEAMS:
        for n in range(INTERVIEWERS_PER_TEAM):
            account = accounts.create_account(username=f"bench-{team}-{n + 1}", roles=["interviewer"])
            account.team = team
            interviewers.append(account)
    db.session.flush()
    ids = [a.id for a in interviewers]
    rng.shuffle(ids)
    return reviewer.id, coordinator.id, secret, ids


def _pseudonyms(rng: random.Random, prefix: str, count: int) -> list[str]:
    from intake.identities.operations import PSEUDONYM_ALPHABET

    seen: set[str] = set()
    while len(seen) < count:
        chars = "".join(rng.choice(PSEUDONYM_ALPHABET) for _ in range(6))
        seen.add(f"{prefix}-{chars[:4]}-{chars[4:]}")
    codes = sorted(seen)
    rng.shuffle(codes)
    return codes


def _batches(total: int, size: int) -> Iterator[range]:
    for start in range(0, total, size):
        yield range(start, min(total, start + size))


def populate(records: int = DEFAULT_RECORDS, *, seed: int = SEED, batch: int = BATCH,
             progress: Any = None) -> Populated:
    """Fill the current application's database with `records` submitted testimonies (see the module docstring);
    commits as it goes. The database must hold no bench accounts yet."""
    from flask import current_app

    from consent import scripts
    from consent.records import Purpose, ScriptItem
    from intake.accounts.models import Account
    from intake.consents.models import ConsentRecord
    from intake.consents.operations import record_withdrawal
    from intake.core import gazetteer
    from intake.core.access.models import Assignment
    from intake.core.crypto import keyring_holding
    from intake.core.crypto.datakeys import primary_kek_version
    from intake.core.crypto.envelope import OpenDataKey, new_data_key, wrap_data_key
    from intake.core.crypto.fields import seal_value
    from intake.core.crypto.models import DataKey
    from intake.core.db import db
    from intake.identities.models import Person
    from intake.interviews.operations import _incident_columns, _incident_document, incident_problems
    from intake.testimonies.models import Incident, Testimony

    rng = random.Random(seed)
    reviewer_id, coordinator_id, secret, interviewers = _accounts(rng)
    db.session.commit()

    types = _type_weights()
    places = [p for p in gazetteer.places() if p.kind != "region"]
    version = primary_kek_version(db.session(), lock=False)
    kek = keyring_holding(version).kek(version)
    script_of = {language: scripts.latest(language) for language, _ in LANGUAGES}
    items = sorted(i.value for i in ScriptItem)
    tables: dict[str, sa.Table] = {name: model.__table__ for name, model in (  # type: ignore[misc]
        ("keys", DataKey), ("persons", Person), ("testimonies", Testimony), ("incidents", Incident),
        ("consents", ConsentRecord), ("assignments", Assignment))}
    named = {t.name: t for t in tables.values()}
    conn = db.session.connection()
    next_id = {name: _ids_from(conn, tables[name]) for name in ("persons", "testimonies", "incidents", "consents")}
    first_id = next_id["testimonies"]
    pseudonyms = _pseudonyms(rng, current_app.config["PSEUDONYM_PREFIX"], records)
    today = datetime.now(UTC).date()
    # Submissions spread over the last three years, in id order as they would have arrived.
    now = datetime.now(UTC).replace(microsecond=0)
    span = timedelta(days=3 * 365)
    used_key_ids: set[int] = set()
    counts = {"incidents": 0, "assigned": 0, "second_versions": 0}

    def data_key(owner: str, made: datetime) -> tuple[dict[str, Any], OpenDataKey]:
        key_id = secrets.randbits(63) or 1
        while key_id in used_key_ids:
            key_id = secrets.randbits(63) or 1
        used_key_ids.add(key_id)
        key = new_data_key()
        return ({"id": key_id, "owner": owner, "kek_version": version, "created_at": made,
                 "wrapped": wrap_data_key(kek, version, key, key_id=key_id, owner=owner)}, OpenDataKey(key_id, key))

    def sealed(table: str, row_id: int, column: str, value: Any, key: OpenDataKey) -> bytes:
        row = _Row(named[table], row_id)
        seal_value(row, column, value, key=key)
        return bytes(getattr(row, column))

    for chunk in _batches(records, batch):
        keys, persons, testimonies, incidents, consents, assignments = [], [], [], [], [], []
        for n in chunk:
            submitted = now - span + span * (n + 1) / (records + 1) - timedelta(minutes=rng.randrange(60))
            started = submitted - timedelta(minutes=rng.randrange(40, 180))
            language = _weighted(rng, LANGUAGES)
            interviewer = interviewers[n % len(interviewers)]
            person_key, _ = data_key("person", started)
            person_id = next_id["persons"]
            next_id["persons"] += 1
            keys.append(person_key)
            persons.append({"id": person_id, "pseudonym": pseudonyms[n], "data_key_id": person_key["id"],
                            "identity": None, "name_tag": None, "other_name_tag": None, "created_at": started,
                            "created_by_id": interviewer})
            testimony_key, open_key = data_key("testimony", started)
            keys.append(testimony_key)
            testimony_id = next_id["testimonies"]
            next_id["testimonies"] += 1
            told = [_incident(rng, types, places) for _ in range(rng.choices((1, 2, 3), weights=(50, 35, 15))[0])]
            for given in told:
                problems = incident_problems(given, today=today)
                if problems:
                    raise RuntimeError(f"generated incident refused: {problems}")
                month, region = _incident_columns(given)
                incident_id = next_id["incidents"]
                next_id["incidents"] += 1
                incidents.append({"id": incident_id, "testimony_id": testimony_id, "type": given.type,
                                  "month": month, "region": region, "created_at": started,
                                  "details": sealed("incidents", incident_id, "details",
                                                    _incident_document(given), open_key)})
            narrative = " ".join(rng.sample(SENTENCES, rng.randrange(3, len(SENTENCES) + 1)))
            details = {"readiness": {"private_place": True, "no_observers": True, "interpreter": "not_needed",
                                     "support_available": True, "risk": "low", "risk_mitigated": False},
                       "declined": [], "pauses": [],
                       "referral": {"outcome": "accepted", "services": ["psychosocial"], "wellbeing": "settled",
                                    "note": ""}}
            testimonies.append({
                "id": testimony_id, "pseudonym": pseudonyms[n], "interviewer_id": interviewer,
                "data_key_id": testimony_key["id"], "status": _weighted(rng, STATUSES), "language": language,
                "region": None, "interviewed_on": started.date(), "revision": 4 + len(told),
                "submitted_at": submitted, "idempotency_key": None, "submission_digest": None,
                "submission_key": secrets.token_hex(12), "created_at": started, "updated_at": submitted,
                "narrative": sealed("testimonies", testimony_id, "narrative", narrative, open_key),
                "details": sealed("testimonies", testimony_id, "details", details, open_key)})
            script = script_of[language]
            versions = 2 if rng.random() < SECOND_VERSION else 1
            counts["second_versions"] += versions - 1
            for number in range(1, versions + 1):
                consent_id = next_id["consents"]
                next_id["consents"] += 1
                grants = {Purpose.DOCUMENTATION.value: "pseudonymous", Purpose.UN_MECHANISMS.value: "anonymous"}
                if number == 2:
                    grants[Purpose.INTERNATIONAL_JUSTICE.value] = "confidential"
                consents.append({
                    "id": consent_id, "testimony_id": testimony_id, "number": number,
                    # A later version is never dated after now: a consent not yet given permits nothing.
                    "recorded_at": started if number == 1
                    else min(submitted + timedelta(days=rng.randrange(1, 60)), now - timedelta(minutes=1)),
                    "recorded_by_id": interviewer, "script_language": script.language, "script_hash": script.hash,
                    "method": "written", "items": items, "capacity_confirmed": True,
                    "voluntariness_confirmed": True, "witness_present": False, "interpreter_present": False,
                    "is_minor": False, "guardian_consented": False, "child_assented": False,
                    "best_interests_given": False, "grants": grants, "media": ["document", "photo"],
                    "exclusions": [["authorities_of", "AZ"]], "follow_up_permitted": False, "review_date": None,
                    "particulars": sealed("consent_versions", consent_id, "particulars",
                                          {"witness": "", "interpreter": "", "best_interests_note": "",
                                           "follow_up": None}, open_key)})
            if rng.random() < ASSIGNED:
                assignments.append({"testimony_id": testimony_id, "reviewer_id": reviewer_id,
                                    "assigned_at": submitted + timedelta(hours=rng.randrange(1, 72)),
                                    "assigned_by_id": coordinator_id})
        for name, rows in (("keys", keys), ("persons", persons), ("testimonies", testimonies),
                           ("incidents", incidents), ("consents", consents), ("assignments", assignments)):
            conn.execute(tables[name].insert(), rows)
        counts["incidents"] += len(incidents)
        counts["assigned"] += len(assignments)
        db.session.commit()
        conn = db.session.connection()
        if progress is not None:
            progress(f"{chunk.stop} of {records} records")
    last_id = next_id["testimonies"] - 1

    if conn.dialect.name == "postgresql":
        for name in ("persons", "testimonies", "incidents", "consents"):
            table = tables[name].name
            conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                 f"(SELECT max(id) FROM {table}))")
        db.session.commit()
        conn = db.session.connection()

    coordinator = db.session.get(Account, coordinator_id)
    withdrawn = rng.sample(range(first_id, last_id + 1), int(records * WITHDRAWN))
    erased = set(withdrawn[:int(records * ERASED)])
    for at, testimony_id in enumerate(withdrawn):
        kind = at % 3
        purposes = [] if kind == 0 or testimony_id in erased else (
            ["documentation"] if kind == 1 else ["media"])
        record_withdrawal(db.session.get(Testimony, testimony_id), purposes=purposes,
                          received_how=rng.choice(("in_person", "phone", "message")),
                          erasure=testimony_id in erased, actor=coordinator, config=current_app.config)
        if at % 200 == 199:
            db.session.commit()
    db.session.commit()
    stopped = {t for at, t in enumerate(withdrawn) if t in erased or at % 3 in (0, 1)}
    counts.update({"records": records, "withdrawn": len(withdrawn), "erased": len(erased),
                   "withdrawn_for_documentation": len(stopped)})
    if conn.dialect.name == "postgresql":
        db.session.remove()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as raw:
            raw.exec_driver_sql("VACUUM ANALYZE")

    assigned = set(db.session.scalars(sa.select(Assignment.testimony_id)
                                      .where(Assignment.reviewer_id == reviewer_id)))
    openable = sorted(assigned - stopped)
    step = max(1, len(openable) // OPENED)
    return Populated(reviewer_id=reviewer_id, reviewer_secret=secret, records=records, first_id=first_id,
                     last_id=last_id, openable=openable[::step][:OPENED], counts=counts)


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
