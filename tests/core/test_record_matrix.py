"""Who opens which parts of which record, proven for every testimony route: generated from `app.url_map`, so a new
route fails here until its expectations are written in EXPECTED.

Every rule with a `testimony_id` (pages and API), every method it answers, is called by every role (pages in a
signed-in session with a fresh two-factor code, the API with a bearer token): by the role it is for on each of six
records, by the others once each (their refusal comes before any record is looked up). Each record has a sentinel
in every identity, consent and content field:

- own: recorded by the interviewer, submitted and still correctable (assigned to another reviewer);
- assigned: recorded by another interviewer, submitted, assigned to the reviewer;
- unassigned: recorded by another interviewer, submitted, assigned and granted to another reviewer only;
- withdrawn: recorded by the interviewer, submitted, assigned to the reviewer, consent withdrawn for everything;
- draft: recorded by the interviewer, not submitted, assigned to the reviewer;
- erased: recorded by the interviewer, submitted, assigned to the reviewer, erased at the person's request.

Each is also granted to the other reviewer, and has a reviewer's note, links and identifying marks to remove.

What a request opened is read from the audit events it appended: the one `record_viewed` (or `reidentified`) event
names the parts, a refusal is one `record_access_refused` event saying why, and nothing else is appended. A role
without the route's permission gets the permission 403 and no record event. No response carries a sentinel of a part
it did not open: a reviewer never sees an identity or the consent's particulars, and a reviewer's page or reading
shows the narrative exactly when it opened the content. Where identity is the point (re-identification, the
survivor's copy), the row says which sentinels the answer shows.

Changes are asked for with requests that change nothing when allowed (an empty form, a stale revision), except
where the button itself is the whole request (removing a link or an identifying mark, unassigning a reviewer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, url_for
from flask.testing import FlaskClient

from intake.accounts import operations as account_ops
from intake.cases import operations as cases
from intake.core.access import assignments
from intake.core.audit.models import AuditEvent
from intake.core.crypto.fields import seal_value
from intake.core.db import db, utcnow
from intake.core.security import Permission, Role, declared_access, permissions_for
from intake.review.models import AnalystNote, IdentifyingSpan, RecordLink
from intake.testimonies.models import Testimony as StoredTestimony
from intake.withdrawals import withdraw
from tests.conftest import Auth, TestUser, TotpClock, csrf_token
from tests.core.test_route_matrix import EXPECTED as WHO_MAY
from tests.interviews import factories as f
from tests.interviews.test_api import whole_interview

STATES = ("own", "assigned", "unassigned", "withdrawn", "draft", "erased")
RECORD_EVENTS = frozenset({"record_viewed", "reidentified", "record_access_refused"})
# A revision no page or script has seen: a change sent with it is refused as stale (409) and changes nothing.
STALE_REVISION = 999
SUBMISSION_KEY = "matrix-submission-key-0001"
SENTINEL_NOTE = "SENTINEL-ANALYST-NOTE-1e5b the same shelling as KB-other"
# The narrative's first word: a reviewer's identifying mark lies over its last word, which the page sets apart.
NARRATIVE = f.SENTINEL_NARRATIVE.split()[0]
MARKED = f.SENTINEL_NARRATIVE.split()[-1]
CONSENT_SEALED = {f.SENTINEL_WITNESS, f.SENTINEL_INTERPRETER, f.SENTINEL_FOLLOW_UP_METHOD, f.SENTINEL_FOLLOW_UP_TIMES}
IDENTITY = set(f.IDENTITY_SENTINELS.values())
ALL_SENTINELS = IDENTITY | CONSENT_SEALED | {NARRATIVE, SENTINEL_NOTE, f.SENTINEL_FILENAME}


# ---------------------------------------------------------------------------------------------------------------
# What each request should do


@dataclass(frozen=True)
class Outcome:
    """The status, and what the one record event of the request says: the parts opened (`opened`), the reason of
    a refusal (`refused`), or no record event at all (both None)."""

    status: int
    opened: frozenset[str] | None = None
    refused: str | None = None
    action: str = "record_viewed"


def opens(status: int, *parts: str, action: str = "record_viewed") -> Outcome:
    return Outcome(status, opened=frozenset(parts), action=action)


def plain(status: int) -> Outcome:
    """Answered without opening the record, and without a record event."""
    return Outcome(status)


def refused(why: str) -> Outcome:
    return Outcome(403, refused=why)


NOT_OWN = refused("not_own")
NOT_ASSIGNED = refused("not_assigned")
NOT_SUBMITTED = refused("not_submitted")
WITHDRAWN = refused("consent_withdrawn")
ERASED = refused("erased")
NO_PERMISSION = Outcome(403)  # the permission check's refusal, before any record is looked at

INTERVIEWER_PARTS = ("attachments", "consent", "content", "identity")  # everything the person gave, no analysis
REVIEWER_PARTS = ("attachments", "content", "notes")  # never who the person is, nor the consent's particulars
REIDENTIFIED = opens(200, "identity", action="reidentified")
SURVIVOR_COPY = opens(200, *INTERVIEWER_PARTS)  # what the person gave, never the reviewers' analysis


def states(*, own: Outcome, assigned: Outcome, unassigned: Outcome, withdrawn: Outcome, draft: Outcome,
           erased: Outcome) -> dict[str, Outcome]:
    return {"own": own, "assigned": assigned, "unassigned": unassigned, "withdrawn": withdrawn, "draft": draft,
            "erased": erased}


def interviewers_record(outcome: Outcome) -> dict[str, Outcome]:
    """The interviewer's rule: their own draft, or their own submission within its correction window, while the
    consent stands and the record is not erased; nobody else's."""
    return states(own=outcome, assigned=NOT_OWN, unassigned=NOT_OWN, withdrawn=WITHDRAWN, draft=outcome,
                  erased=ERASED)


def reviewers_record(outcome: Outcome) -> dict[str, Outcome]:
    """The reviewer's rule: a submitted record assigned or granted to them, while the consent stands and the record
    is not erased."""
    return states(own=NOT_ASSIGNED, assigned=outcome, unassigned=NOT_ASSIGNED, withdrawn=WITHDRAWN,
                  draft=NOT_SUBMITTED, erased=ERASED)


LEGAL_PARTS = ("attachments", "content")  # never who the person is, the consent's particulars, nor the analysis
NOT_IN_CASE = refused("not_in_case")


def legal_record(outcome: Outcome) -> dict[str, Outcome]:
    """A case member's rule: a submitted record of one of their cases (own, assigned, withdrawn and erased are in
    the matrix's case), while its consent permits a legal use and it is not erased."""
    return states(own=outcome, assigned=outcome, unassigned=NOT_IN_CASE, withdrawn=refused("no_legal_purpose"),
                  draft=NOT_IN_CASE, erased=ERASED)


def any_record(outcome: Outcome) -> dict[str, Outcome]:
    return states(own=outcome, assigned=outcome, unassigned=outcome, withdrawn=outcome, draft=outcome,
                  erased=outcome)


@dataclass(frozen=True)
class Row:
    """One route and method: the role it is for (every other role gets the permission 403), the outcome on each
    record, and the request sent. Pages get `form` (with the CSRF token added), the API `json`, or `body` raw."""

    role: Role
    outcomes: dict[str, Outcome]
    form: dict[str, Any] = field(default_factory=dict)
    json: dict[str, Any] | None = None
    body: bytes | None = None
    query: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    shows: frozenset[str] | None = None  # the sentinels its answer shows when it opens the record, where declared


INCIDENT_CHANGE = {"revision": STALE_REVISION, "incident": whole_interview()["incidents"][0]}
STALE = {"revision": STALE_REVISION}
ERASURE_BY_API = {"received_how": "phone", "erasure": True}  # erasing needs a fresh code: refused on the API
I = Role.INTERVIEWER  # noqa: E741 - the table reads better with one letter per role
R = Role.REVIEWER
C = Role.COORDINATOR
L = Role.LEGAL

EXPECTED: dict[tuple[str, str], Row] = {
    # The interview wizard: each page opens the parts it shows; an empty form is refused (422) and the page shown
    # again opens them again, except where the page shown again shows nothing of the record.
    ("interviews.overview", "GET"): Row(I, interviewers_record(opens(200, *INTERVIEWER_PARTS))),
    ("interviews.person", "GET"): Row(I, interviewers_record(opens(200, "identity"))),
    ("interviews.person", "POST"): Row(I, interviewers_record(plain(422))),
    ("interviews.testimony", "GET"): Row(I, interviewers_record(opens(200, "content"))),
    ("interviews.testimony", "POST"): Row(I, interviewers_record(opens(422, "content"))),
    ("interviews.pause", "POST"): Row(I, interviewers_record(opens(422, "content"))),
    ("interviews.incidents", "GET"): Row(I, interviewers_record(opens(200, "content"))),
    ("interviews.incidents", "POST"): Row(I, interviewers_record(opens(422, "content"))),
    ("interviews.incident", "GET"): Row(I, interviewers_record(opens(200, "content"))),
    ("interviews.incident", "POST"): Row(I, interviewers_record(plain(422))),
    ("interviews.remove_incident", "POST"): Row(I, interviewers_record(opens(422, "content"))),
    ("interviews.attachments", "GET"): Row(I, interviewers_record(opens(200, "attachments"))),
    ("interviews.attachments", "POST"): Row(I, interviewers_record(opens(422, "attachments"))),
    ("interviews.referral", "GET"): Row(I, interviewers_record(opens(200, "consent", "content"))),
    ("interviews.referral", "POST"): Row(I, interviewers_record(opens(422, "consent", "content"))),
    ("interviews.review", "GET"): Row(I, interviewers_record(opens(200, *INTERVIEWER_PARTS))),
    ("interviews.review", "POST"): Row(I, interviewers_record(opens(422, *INTERVIEWER_PARTS))),
    # The interview through the API: reading opens everything the interviewer may see; a change with a stale
    # revision is checked for access first, then refused as stale.
    ("api_interviews.InterviewItem", "GET"): Row(I, interviewers_record(opens(200, *INTERVIEWER_PARTS)),
                                                 shows=frozenset(IDENTITY | CONSENT_SEALED
                                                                 | {NARRATIVE, f.SENTINEL_FILENAME})),
    ("api_interviews.InterviewItem", "PATCH"): Row(I, interviewers_record(plain(409)),
                                                   json={**STALE, "narrative": "changed"}),
    ("api_interviews.Incidents", "POST"): Row(I, interviewers_record(plain(409)), json=INCIDENT_CHANGE),
    ("api_interviews.IncidentItem", "PUT"): Row(I, interviewers_record(plain(409)), json=INCIDENT_CHANGE),
    ("api_interviews.IncidentItem", "DELETE"): Row(I, interviewers_record(plain(409)), query=STALE),
    ("api_interviews.Attachments", "POST"): Row(I, interviewers_record(plain(409)), body=f.PIXEL_PNG,
                                                query={**STALE, "medium": "photo"}),
    # Submitting: a draft's stale revision is a 409; a submission already made with another key is locked (403
    # without opening anything), whatever became of its consent since.
    ("api_interviews.Submission", "POST"): Row(I, states(
        own=plain(403), assigned=NOT_OWN, unassigned=NOT_OWN, withdrawn=plain(403), draft=plain(409),
        erased=plain(403)), json=STALE, headers={"Idempotency-Key": SUBMISSION_KEY}),
    # The person's withdrawal, recorded by their interviewer: only on their own records (the page shows what is
    # stored in clear, so opens nothing), and never erasure through the API.
    ("api_interviews.Withdrawals", "POST"): Row(I, states(
        own=plain(403), assigned=NOT_OWN, unassigned=NOT_OWN, withdrawn=plain(403), draft=plain(403),
        erased=plain(403)), json=ERASURE_BY_API),
    ("withdrawals.interview_withdrawal", "GET"): Row(I, states(
        own=plain(200), assigned=NOT_OWN, unassigned=NOT_OWN, withdrawn=plain(200), draft=plain(200),
        erased=plain(200))),
    ("withdrawals.interview_withdrawal", "POST"): Row(I, states(
        own=plain(422), assigned=NOT_OWN, unassigned=NOT_OWN, withdrawn=plain(422), draft=plain(422),
        erased=plain(422))),
    ("withdrawals.interview_erasure", "GET"): Row(I, states(
        own=plain(200), assigned=NOT_OWN, unassigned=NOT_OWN, withdrawn=plain(200), draft=plain(200),
        erased=plain(200))),
    ("withdrawals.interview_erasure", "POST"): Row(I, states(
        own=plain(422), assigned=NOT_OWN, unassigned=NOT_OWN, withdrawn=plain(422), draft=plain(422),
        erased=plain(422))),
    # The coordinator's pages show what is stored in clear and open nothing, for any record.
    ("withdrawals.record", "GET"): Row(C, any_record(plain(200))),
    ("withdrawals.record", "POST"): Row(C, any_record(plain(422))),
    ("withdrawals.erase", "GET"): Row(C, any_record(plain(200))),
    ("withdrawals.erase", "POST"): Row(C, any_record(plain(422))),
    ("withdrawals.assign_reviewer", "POST"): Row(C, any_record(plain(422))),
    ("withdrawals.unassign_reviewer", "POST"): Row(C, any_record(plain(303))),
    ("withdrawals.grant_access", "POST"): Row(C, any_record(plain(422))),
    ("withdrawals.revoke_access", "POST"): Row(C, any_record(plain(422))),
    ("api_withdrawals.CoordinationRecord", "GET"): Row(C, any_record(plain(200))),
    ("api_withdrawals.CoordinationWithdrawals", "POST"): Row(C, any_record(plain(403)), json=ERASURE_BY_API),
    # The reviewer's record: content, attachments and analysis; an empty analysis form is refused (422) on the
    # record page shown again, which opens them again. Removing a link or a mark opens nothing.
    ("review.record", "GET"): Row(R, reviewers_record(opens(200, *REVIEWER_PARTS)),
                                  shows=frozenset({NARRATIVE, SENTINEL_NOTE})),
    ("review.assess", "POST"): Row(R, reviewers_record(opens(422, *REVIEWER_PARTS))),
    ("review.code_incident", "POST"): Row(R, reviewers_record(opens(422, *REVIEWER_PARTS))),
    ("review.link", "POST"): Row(R, reviewers_record(opens(422, *REVIEWER_PARTS))),
    ("review.remove_link", "POST"): Row(R, reviewers_record(plain(303))),
    ("review.mark_span", "POST"): Row(R, reviewers_record(opens(422, *REVIEWER_PARTS))),
    ("review.unmark_span", "POST"): Row(R, reviewers_record(plain(303))),
    ("review.add_note", "POST"): Row(R, reviewers_record(opens(422, *REVIEWER_PARTS))),
    ("review.attachment", "GET"): Row(R, reviewers_record(opens(200, "attachments"))),
    # The reviewer's API: reading opens what the record page opens. An action is checked for access first, then
    # refused for what was sent (422); marking words opens the narrative to find them, found or not.
    ("api_review.RecordItem", "GET"): Row(R, reviewers_record(opens(200, *REVIEWER_PARTS)),
                                          shows=frozenset({NARRATIVE, SENTINEL_NOTE})),
    ("api_review.Assessments", "POST"): Row(R, reviewers_record(plain(422)),
                                            json={"kind": "reliability", "value": "Z", "reason": "a grade"}),
    ("api_review.Codings", "POST"): Row(R, reviewers_record(plain(422)),
                                        json={"type": "not-a-type", "reason": "a coding"}),
    ("api_review.Links", "POST"): Row(R, reviewers_record(plain(422)),
                                      json={"other": "KB-NONE-00", "kind": "corroborates", "reason": "a link"}),
    ("api_review.LinkItem", "DELETE"): Row(R, reviewers_record(plain(204))),
    ("api_review.IdentifyingSpans", "POST"): Row(R, reviewers_record(opens(422, "content")),
                                                 json={"phrase": "words the narrative does not hold", "kind": "name"}),
    ("api_review.IdentifyingSpanItem", "DELETE"): Row(R, reviewers_record(plain(204))),
    ("api_review.Notes", "POST"): Row(R, reviewers_record(plain(422)), json={"text": ""}),
    # Re-identification and the survivor's copy: the form opens nothing; sent with a written reason, the identity
    # alone (recorded as re-identification, while the consent stands), or everything the person gave (also after
    # withdrawal). Nothing of an erased record.
    ("withdrawals.reidentify", "GET"): Row(C, any_record(plain(200))),
    ("withdrawals.reidentify", "POST"): Row(C, states(
        own=REIDENTIFIED, assigned=REIDENTIFIED, unassigned=REIDENTIFIED, withdrawn=WITHDRAWN, draft=REIDENTIFIED,
        erased=ERASED), form={"reason": "The person asked to be called back about their case"},
        shows=frozenset(IDENTITY)),
    ("withdrawals.survivor_copy", "GET"): Row(C, any_record(plain(200))),
    ("withdrawals.survivor_copy", "POST"): Row(C, states(
        own=SURVIVOR_COPY, assigned=SURVIVOR_COPY, unassigned=SURVIVOR_COPY, withdrawn=SURVIVOR_COPY,
        draft=SURVIVOR_COPY, erased=ERASED), form={"reason": "The person asked for a copy of their data",
                                                   "show": "Show the copy"},
        # Their own identity and words, without other people's details: relatives, witness, interpreter.
        shows=frozenset({f.SENTINEL_NAME, f.SENTINEL_CONTACT, f.SENTINEL_ADDRESS, NARRATIVE,
                         f.SENTINEL_FOLLOW_UP_METHOD, f.SENTINEL_FOLLOW_UP_TIMES})),
    # A legal team's member opens the content and attachments of the records of their case, while the consent permits
    # a legal use and the record is not erased; a record in none of their cases is refused. An empty form to add an
    # incident shows the record again; removing a record from the case opens nothing (422 when it is not in it).
    ("cases.record", "GET"): Row(L, legal_record(opens(200, *LEGAL_PARTS)), shows=frozenset({NARRATIVE})),
    ("cases.add_incident", "POST"): Row(L, legal_record(opens(422, *LEGAL_PARTS))),
    ("cases.remove_record", "POST"): Row(L, states(
        own=plain(303), assigned=plain(303), unassigned=plain(422), withdrawn=plain(303), draft=plain(422),
        erased=plain(303))),
}
# The URL arguments other than the record's own, where a route needs a fixed one.
FIXED_ARGUMENTS: dict[str, Any] = {"kind": "reliability"}

# What each role's responses show, over the whole matrix: the parts it may open, and nothing else. This also shows
# that the search for sentinels finds them where they are.
SEEN_BY_ROLE: dict[Role, set[str]] = {
    Role.INTERVIEWER: IDENTITY | CONSENT_SEALED | {NARRATIVE, f.SENTINEL_FILENAME},
    Role.REVIEWER: {NARRATIVE, SENTINEL_NOTE},
    Role.LEGAL: {NARRATIVE},
    # Re-identification shows the identity; the survivor's copy what the person gave, without the witness's and
    # the interpreter's names (other people's details).
    Role.COORDINATOR: IDENTITY | {NARRATIVE, f.SENTINEL_FOLLOW_UP_METHOD, f.SENTINEL_FOLLOW_UP_TIMES},
    Role.AUDITOR: set(),
    Role.ADMIN: set(),
}


# ---------------------------------------------------------------------------------------------------------------
# The records


@dataclass
class World:
    people: dict[Role, TestUser]
    arguments: dict[str, dict[str, Any]]  # URL arguments by state


def _accounts(create_user: Callable[..., TestUser]) -> tuple[dict[Role, TestUser], TestUser, TestUser]:
    people = {role: create_user(username=f"matrix-{role.value}", roles=[role.value]) for role in Role}
    return people, create_user(username="matrix-other-interviewer"), create_user(
        username="matrix-other-reviewer", roles=["reviewer"])


def _stored(testimony_id: int) -> StoredTestimony:
    testimony = db.session.get(StoredTestimony, testimony_id)
    assert testimony is not None
    return testimony


def _analysed(app: Flask, testimony_id: int, other_id: int, reviewer: TestUser) -> dict[str, int]:
    """A reviewer's note, and links to another record and identifying marks, one each for the pages and for the API
    to remove, on the record (as rows, so that drafts and records closed to reviewers have them too): the ids the
    routes need (`api_...` for the API's)."""
    with app.app_context():
        testimony = _stored(testimony_id)
        now = utcnow()
        start = f.SENTINEL_NARRATIVE.index(MARKED)
        arguments = {"testimony_id": testimony_id, "incident_id": testimony.incidents[0].id,
                     "attachment_id": testimony.attachments[0].id}
        note = AnalystNote(testimony=testimony, testimony_id=testimony_id, author_id=reviewer.id, created_at=now)
        db.session.add(note)
        db.session.flush()
        seal_value(note, "text", SENTINEL_NOTE)
        for prefix, kind in (("", "corroborates"), ("api_", "duplicate")):
            link = RecordLink(testimony=testimony, testimony_id=testimony_id, other_id=other_id, kind=kind,
                              created_by_id=reviewer.id, created_at=now)
            span = IdentifyingSpan(testimony_id=testimony_id, start=start, stop=start + len(MARKED), kind="address",
                                   revision=testimony.revision, created_by_id=reviewer.id, created_at=now)
            db.session.add_all([link, span])
            db.session.flush()
            seal_value(link, "reason", "the same shelling, told by a neighbour")
            arguments.update({f"{prefix}link_id": link.id, f"{prefix}span_id": span.id})
        db.session.commit()
        return arguments


def _world(app: Flask, create_user: Callable[..., TestUser]) -> World:
    people, other_interviewer, other_reviewer = _accounts(create_user)
    interviewer, reviewer = people[Role.INTERVIEWER], people[Role.REVIEWER]
    recorded_by = {"own": interviewer, "assigned": other_interviewer, "unassigned": other_interviewer,
                   "withdrawn": interviewer, "draft": interviewer, "erased": interviewer}
    ids = {state: f.planted_interview(app, by, key=f"matrix-{state}-submission", submit=state != "draft")
           for state, by in recorded_by.items()}
    arguments: dict[str, dict[str, Any]] = {}
    with app.app_context():
        coordinator = f.account(people[Role.COORDINATOR])
        for state, testimony_id in ids.items():
            testimony = _stored(testimony_id)
            to = other_reviewer if state in ("own", "unassigned") else reviewer
            assignments.assign(testimony, f.account(to), actor=coordinator)
            grant = assignments.grant_access(testimony, f.account(other_reviewer), reason="a second opinion",
                                             expires_at=utcnow() + timedelta(days=7), actor=coordinator)
            db.session.flush()
            arguments[state] = {"reviewer_id": to.id, "grant_id": grant.id}
        db.session.commit()
    for state, testimony_id in ids.items():
        other = ids["assigned" if state != "assigned" else "own"]
        arguments[state].update(_analysed(app, testimony_id, other, reviewer))
    with app.app_context():
        legal = f.account(people[Role.LEGAL])
        case = cases.create_case("MATRIX-CASE", "The record matrix", recipient=None, actor=legal)
        for state in ("own", "assigned", "withdrawn", "erased"):  # before the withdrawal and the erasure
            cases.add_testimony(case, _stored(ids[state]), actor=legal)
        db.session.commit()
        for state in STATES:
            arguments[state]["case_id"] = case.id
    with app.app_context():
        coordinator = f.account(people[Role.COORDINATOR])
        for state, erasure in (("withdrawn", False), ("erased", True)):
            withdraw(_stored(ids[state]), purposes=[], received_how="phone", erasure=erasure,
                     actor=coordinator, config=app.config)
        db.session.commit()
    return World(people, arguments)


# ---------------------------------------------------------------------------------------------------------------
# Requests


def _testimony_rules(app: Flask) -> list[tuple[Any, str]]:
    """Every (rule, method) of a route about one testimony: reading first, then changes."""
    found = [(rule, method) for rule in app.url_map.iter_rules() if "testimony_id" in rule.arguments
             for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})]
    return sorted(found, key=lambda rm: (rm[1] != "GET", rm[0].endpoint, rm[1]))


def _url(app: Flask, rule: Any, arguments: dict[str, Any], query: dict[str, Any]) -> str:
    values = {**FIXED_ARGUMENTS, **arguments}
    if rule.rule.startswith("/api/"):  # the API's own rows to remove, apart from the pages'
        values.update({name[len("api_"):]: value for name, value in arguments.items() if name.startswith("api_")})
    missing = [name for name in rule.arguments if name not in values]
    assert not missing, f"{rule.endpoint}: give the record matrix a value for {missing} (FIXED_ARGUMENTS or _world)"
    with app.test_request_context():
        return url_for(rule.endpoint, **{name: values[name] for name in rule.arguments}, **query)


@dataclass
class Caller:
    user: TestUser
    client: FlaskClient
    csrf: str
    bearer: dict[str, str]


def _caller(app: Flask, user: TestUser, totp_clock: TotpClock) -> Caller:
    client = app.test_client()
    auth = Auth(client, totp_clock)
    assert auth.sign_in(user).status_code == 303
    assert auth.step_up(user).status_code == 303
    with app.app_context():
        _, token = account_ops.create_api_token(f.account(user), name="record matrix")
        db.session.commit()
    return Caller(user, client, csrf_token(client, "/"), {"Authorization": f"Bearer {token}"})


def _last_seq(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.max(AuditEvent.seq))) or 0)


def _events_since(app: Flask, seq: int) -> list[AuditEvent]:
    with app.app_context():
        events = list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.seq > seq).order_by(AuditEvent.seq)))
        db.session.expunge_all()
        return events


def _send(app: Flask, caller: Caller, rule: Any, method: str, row: Row, arguments: dict[str, Any]) -> Any:
    """The request, its answer read to the end (a streamed one too) and closed."""
    response = _open(app, caller, rule, method, row, arguments)
    response.get_data()
    response.close()
    return response


def _open(app: Flask, caller: Caller, rule: Any, method: str, row: Row, arguments: dict[str, Any]) -> Any:
    url = _url(app, rule, arguments, row.query)
    if url.startswith("/api/"):
        headers = {**caller.bearer, **row.headers}
        if row.body is not None:
            return caller.client.open(url, method=method, data=row.body, headers=headers,
                                      content_type="application/octet-stream")
        if method in ("POST", "PUT", "PATCH"):  # the API takes JSON bodies only
            return caller.client.open(url, method=method, json=row.json or {}, headers=headers)
        return caller.client.open(url, method=method, headers=headers)
    if method == "GET":
        return caller.client.get(url)
    return caller.client.open(url, method=method, data={"csrf_token": caller.csrf, **row.form})


def _row(endpoint: str, method: str) -> Row:
    row = EXPECTED.get((endpoint, method))
    assert row is not None, f"{method} {endpoint}: write its expectations in EXPECTED of the record matrix"
    return row


def _record_events(events: list[AuditEvent]) -> list[AuditEvent]:
    return [e for e in events if e.action in RECORD_EVENTS]


def _problems(outcome: Outcome, response: Any, events: list[AuditEvent], caller: Caller,
              testimony_id: int) -> list[str]:
    """How the response and the record events it left differ from `outcome` (nothing: as expected)."""
    problems = []
    if response.status_code != outcome.status:
        problems.append(f"status {response.status_code}, expected {outcome.status}")
    found = _record_events(events)
    said = [(e.action, sorted(e.details.get("parts", [])), e.details.get("why")) for e in found]
    wanted: list[tuple[str, list[str], str | None]]
    if outcome.opened is not None:
        wanted = [(outcome.action, sorted(outcome.opened), None)]
    elif outcome.refused is not None:
        wanted = [("record_access_refused", sorted(found[0].details.get("parts", [])) if found else [],
                   outcome.refused)]
    else:
        wanted = []
    if said != wanted:
        problems.append(f"record events {said}, expected {wanted}")
    for event in found:
        if event.actor_id != caller.user.id or event.target_ids != [testimony_id]:
            problems.append(f"{event.action} names actor {event.actor_id} and targets {event.target_ids}")
    return problems


def _sentinel_problems(role: Role, outcome_parts: set[str], response: Any, method: str) -> tuple[set[str], list[str]]:
    """The sentinels in a response, and those it shows without having opened their part. A reviewer's reading of
    a record, and a reviewer's page, show the narrative exactly when they opened the content (an API action may
    open it to search it without showing it)."""
    text = response.get_data().decode("utf-8", "replace")
    shown = {s for s in ALL_SENTINELS if s in text}
    allowed: set[str] = set()
    if "identity" in outcome_parts:
        allowed |= IDENTITY
    if "consent" in outcome_parts:
        allowed |= CONSENT_SEALED
    if "content" in outcome_parts:
        allowed.add(NARRATIVE)
    if "notes" in outcome_parts:
        allowed.add(SENTINEL_NOTE)
    if "attachments" in outcome_parts:
        allowed.add(f.SENTINEL_FILENAME)
    problems = [f"shows {sorted(shown - allowed)} without opening their part"] if shown - allowed else []
    if role is Role.REVIEWER:
        if shown & (IDENTITY | CONSENT_SEALED):
            problems.append(f"a reviewer sees {sorted(shown & (IDENTITY | CONSENT_SEALED))}")
        shows_the_record = method == "GET" or response.mimetype == "text/html"
        if shows_the_record and ("content" in outcome_parts) != (NARRATIVE in shown):
            problems.append(f"the narrative shown: {NARRATIVE in shown}, content opened: {'content' in outcome_parts}")
    return shown, problems


# ---------------------------------------------------------------------------------------------------------------
# Tests


def test_every_testimony_route_has_its_expectations_written(app: Flask) -> None:
    routed = {(rule.endpoint, method) for rule, method in _testimony_rules(app)}
    assert routed - set(EXPECTED) == set(), "testimony routes without expectations in the record matrix"
    assert set(EXPECTED) - routed == set(), "expectations in the record matrix for routes that do not exist"
    for (endpoint, method), row in EXPECTED.items():
        assert set(row.outcomes) == set(STATES), endpoint
        # The role the row is for is the one the route matrix lets in, and the permission it declares.
        assert WHO_MAY[endpoint] == frozenset({row.role}), f"{endpoint}: {WHO_MAY[endpoint]}"
        permission, _ = declared_access(app, endpoint, method)
        assert isinstance(permission, Permission) and permission in permissions_for([row.role]), endpoint


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_every_testimony_route_for_every_role_and_record(
        app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock, role: Role) -> None:
    """The route's role on every record, every other role once per route (its permission is checked before the
    record is looked up, so of a record that changes from route to route).

    Each request that opens a record, or is refused it, appends exactly one event and no other: the refusal the
    request pipeline records again after rolling the request back is the only one kept. A reading asked for again
    appends one more: every open is recorded, not only the first."""
    world = _world(app, create_user)
    caller = _caller(app, world.people[role], totp_clock)
    shown: set[str] = set()
    failures: list[str] = []
    for index, (rule, method) in enumerate(_testimony_rules(app)):
        row = _row(rule.endpoint, method)
        for state in STATES if row.role is role else (STATES[index % len(STATES)],):
            outcome = row.outcomes[state] if row.role is role else NO_PERMISSION
            recorded = outcome.opened is not None or outcome.refused is not None
            arguments = world.arguments[state]
            for attempt in ("", " again") if recorded and method == "GET" else ("",):
                before = _last_seq(app)
                response = _send(app, caller, rule, method, row, arguments)
                events = _events_since(app, before)
                problems = _problems(outcome, response, events, caller, arguments["testimony_id"])
                if recorded and len(events) != 1:
                    problems.append(f"appended {[e.action for e in events]}, not one event")
                opened = {part for e in _record_events(events) if e.action != "record_access_refused"
                          for part in e.details.get("parts", [])}
                seen, leaks = _sentinel_problems(role, opened, response, method)
                if row.role is role and row.shows is not None and outcome.opened is not None and seen != row.shows:
                    leaks.append(f"shows {sorted(seen)}, expected {sorted(row.shows)}")
                shown |= seen
                failures += [f"{role.value}: {method} {rule.endpoint} on the {state} record{attempt}: {problem}"
                             for problem in problems + leaks]
    assert not failures, "\n".join(failures)
    assert shown == SEEN_BY_ROLE[role], f"the sentinels this role's responses showed: {sorted(shown)}"
