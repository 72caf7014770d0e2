"""The reviewer's API as a script author meets it with a bearer token: the queue, a record, and each action of the
analysis; refusals audited and storing nothing; never an identity or the consent's particulars in any answer."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from intake.accounts import operations as accounts
from intake.consents import operations as consents
from intake.core.access import assignments as access
from intake.core.audit.models import AuditEvent
from intake.core.db import db
from intake.interviews import operations as ops
from intake.review import queries
from intake.review.models import AnalystNote, Assessment, IdentifyingSpan, IncidentCoding, RecordLink
from intake.testimonies.models import Testimony as StoredTestimony
from tests.conftest import TestUser
from tests.interviews import factories as f

PROBLEM = "application/problem+json"
RECORDS = "/api/v1/review/records"
# What identifies the person or belongs to the consent's particulars: never in any answer to a reviewer.
NEVER_SHOWN = (*f.IDENTITY_SENTINELS.values(), *f.CONSENT_SENTINELS.values(), f.SENTINEL_FILENAME)
ANALYSIS_ROWS = (Assessment, IncidentCoding, RecordLink, IdentifyingSpan, AnalystNote)


@pytest.fixture
def people(create_user: Callable[..., TestUser]) -> dict[str, TestUser]:
    return {"amira": create_user("amira", ["interviewer"]), "rafael": create_user("rafael", ["reviewer"]),
            "sona": create_user("sona", ["coordinator"])}


def bearer(app: Flask, user: TestUser) -> dict[str, str]:
    with app.app_context():
        _, plaintext = accounts.create_api_token(f.account(user), name="script")
        db.session.commit()
    return {"Authorization": f"Bearer {plaintext}"}


def _interview(app: Flask, user: TestUser, *, key: str) -> int:
    """A submitted interview with the sentinel narrative, an identity and consent particulars full of sentinels,
    two incidents (the second with the perpetrators declined) and a graphic photo named by a sentinel."""
    with app.app_context():
        actor = f.account(user)
        consent = f.consent(method="oral_witnessed", witness=f.SENTINEL_WITNESS, interpreter=f.SENTINEL_INTERPRETER,
                            follow_up_permitted=True, follow_up_method=f.SENTINEL_FOLLOW_UP_METHOD,
                            follow_up_times=f.SENTINEL_FOLLOW_UP_TIMES)
        testimony = ops.start_interview(f.readiness(interpreter="present_briefed"), consent, actor=actor,
                                        config=app.config)
        ops.save_person(testimony, ops.PersonInput(birth_year=1980, **f.IDENTITY_SENTINELS), actor=actor,
                        config=app.config)
        ops.save_narrative(testimony, f.SENTINEL_NARRATIVE, declined=False, actor=actor, config=app.config)
        ops.add_incident(testimony, f.incident(), actor=actor, config=app.config)
        ops.add_incident(testimony, f.incident(type="checkpoint_detention", date_precision="month",
                                               date_start="2023-10", place_id="lachin-corridor",
                                               declined=frozenset({"perpetrators"})), actor=actor, config=app.config)
        ops.store_interview_attachment(testimony, io.BytesIO(f.PIXEL_PNG), filename=f.SENTINEL_FILENAME,
                                       declared_medium="photo", graphic=True, actor=actor, config=app.config)
        ops.save_referral(testimony, f.referral(), actor=actor, config=app.config)
        assert ops.submit(testimony, idempotency_key=key, actor=actor, config=app.config) is True
        db.session.commit()
        return int(testimony.id)


def _assign(app: Flask, people: dict[str, TestUser], testimony_id: int) -> None:
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        access.assign(testimony, f.account(people["rafael"]), actor=f.account(people["sona"]))
        db.session.commit()


def _assigned(app: Flask, people: dict[str, TestUser], *, key: str = "r" * 24) -> int:
    testimony_id = _interview(app, people["amira"], key=key)
    _assign(app, people, testimony_id)
    return testimony_id


def _pseudonym(app: Flask, testimony_id: int) -> str:
    with app.app_context():
        return str(db.session.get_one(StoredTestimony, testimony_id).pseudonym)


def _first_incident(app: Flask, testimony_id: int) -> int:
    with app.app_context():
        return int(db.session.get_one(StoredTestimony, testimony_id).incidents[0].id)


def _events(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)
                                       .order_by(AuditEvent.seq)))


def _analysis_rows(app: Flask) -> dict[str, int]:
    with app.app_context():
        return {model.__tablename__: db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0
                for model in ANALYSIS_ROWS}


NOTHING_ANALYSED = {model.__tablename__: 0 for model in ANALYSIS_ROWS}


def _shows_no_identity(response: Any) -> None:
    text = response.get_data(as_text=True)
    shown = [s for s in NEVER_SHOWN if s in text]
    assert shown == [], f"{response.request.method} {response.request.path} answered {shown}"


def _record(client: FlaskClient, token: dict[str, str], testimony_id: int) -> dict[str, Any]:
    response = client.get(f"{RECORDS}/{testimony_id}", headers=token)
    assert response.status_code == 200, response.get_json()
    _shows_no_identity(response)
    body: dict[str, Any] = response.get_json()
    return body


def _sent(client: FlaskClient, method: str, url: str, token: dict[str, str], body: Any = None) -> Any:
    response = client.open(url, method=method, json=body, headers=token)
    _shows_no_identity(response)
    return response


# --- the queue ---------------------------------------------------------------------------------------------------

def test_the_queue_lists_what_the_reviewer_may_open_by_its_clear_classification_only(
        app: Flask, client: FlaskClient, people: dict[str, TestUser]) -> None:
    assigned = _assigned(app, people)
    _interview(app, people["amira"], key="u" * 24)  # not assigned: never listed
    token = bearer(app, people["rafael"])
    response = client.get(RECORDS, headers=token)
    assert response.status_code == 200, response.get_json()
    _shows_no_identity(response)
    assert f.SENTINEL_NARRATIVE not in response.get_data(as_text=True)
    [entry] = response.get_json()["records"]
    assert response.get_json()["next"] is None
    assert set(entry) == {"id", "pseudonym", "submitted_at", "language", "status", "incident_types", "attachments"}
    assert (entry["id"], entry["pseudonym"], entry["language"], entry["status"]) == \
        (assigned, _pseudonym(app, assigned), "hy", "submitted")
    assert entry["incident_types"] == ["shelling", "checkpoint_detention"] and entry["attachments"] == 1
    assert entry["submitted_at"]
    assert _events(app, "record_viewed") == []  # nothing was opened


def test_the_queue_filters_as_the_page_does_and_refuses_bad_filters_by_name(
        app: Flask, client: FlaskClient, people: dict[str, TestUser]) -> None:
    testimony_id = _assigned(app, people)
    token = bearer(app, people["rafael"])

    def listed(query: str) -> list[int]:
        response = client.get(f"{RECORDS}?{query}", headers=token)
        assert response.status_code == 200, response.get_json()
        return [entry["id"] for entry in response.get_json()["records"]]

    assert listed("incident_type=checkpoint_detention&month=2023-10&region=azerbaijan") == [testimony_id]
    assert listed("status=submitted&language=hy&incident_type=") == [testimony_id]
    # One incident must match every incident filter.
    assert listed("incident_type=shelling&month=2023-10") == []
    assert listed("incident_type=checkpoint_detention&region=nagorno-karabakh") == []
    assert listed("language=ru") == []

    refused = client.get(f"{RECORDS}?month=2023-13&region=mars&status=draft&colour=red", headers=token)
    assert refused.status_code == 422 and refused.mimetype == PROBLEM
    errors = refused.get_json()["errors"]
    assert errors["month"] == ["Enter a month as year-month, for example 2023-09."]
    assert errors["region"] == errors["status"] == ["Choose one of the listed values."]
    assert set(errors) == {"month", "region", "status", "colour"}  # a misspelt filter is never a wider list
    assert set(client.get(f"{RECORDS}?before=abc", headers=token).get_json()["errors"]) == {"before"}


def test_the_queue_filters_on_the_interviewers_team(
        app: Flask, client: FlaskClient, people: dict[str, TestUser], create_user: Callable[..., TestUser]) -> None:
    levon = create_user("levon", ["interviewer"])
    with app.app_context():
        f.account(people["amira"]).team = "north"
        f.account(levon).team = "south"
        db.session.commit()
    north = _assigned(app, people)
    south = _interview(app, levon, key="s" * 24)
    _assign(app, people, south)
    token = bearer(app, people["rafael"])

    def listed(query: str) -> list[int]:
        response = client.get(f"{RECORDS}?{query}", headers=token)
        assert response.status_code == 200, response.get_json()
        return [entry["id"] for entry in response.get_json()["records"]]

    assert listed("") == [south, north]
    assert listed("team=north") == [north]
    assert listed("team=south&incident_type=checkpoint_detention") == [south]
    assert listed("team=south&language=ru") == []
    refused = client.get(f"{RECORDS}?team=west", headers=token)
    assert refused.status_code == 422 and refused.get_json()["errors"] == {"team": ["Choose one of the listed values."]}


def test_the_queue_pages_newest_first_with_a_next_cursor(
        app: Flask, client: FlaskClient, people: dict[str, TestUser], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "PAGE_SIZE", 2)
    ids = [_assigned(app, people, key=c * 24) for c in "abc"]
    token = bearer(app, people["rafael"])
    first = client.get(RECORDS, headers=token).get_json()
    assert [e["id"] for e in first["records"]] == sorted(ids, reverse=True)[:2]
    assert first["next"] == sorted(ids, reverse=True)[1]
    second = client.get(f"{RECORDS}?before={first['next']}", headers=token).get_json()
    assert [e["id"] for e in second["records"]] == [min(ids)] and second["next"] is None


# --- a record ----------------------------------------------------------------------------------------------------

def test_a_record_reads_as_the_testimony_told_never_who_told_it_and_each_reading_is_recorded(
        app: Flask, client: FlaskClient, people: dict[str, TestUser]) -> None:
    testimony_id = _assigned(app, people)
    token = bearer(app, people["rafael"])
    body = _record(client, token, testimony_id)
    assert (body["id"], body["pseudonym"], body["status"]) == (testimony_id, _pseudonym(app, testimony_id),
                                                               "submitted")
    assert body["testimony"] == {"narrative": f.SENTINEL_NARRATIVE, "narrative_declined": False}
    assert body["declined"] == []
    assert not {"person", "identity", "consent", "readiness", "referral"} & set(body)
    shelling, detention = body["incidents"]
    assert (shelling["type"], shelling["region"], shelling["month"]) == ("shelling", "nagorno-karabakh", "2023-09")
    assert shelling["victims"] == {"count": 2, "description": "two neighbours"}
    assert shelling["source_relation"] == "saw" and shelling["codings"] == []
    assert detention["perpetrators"] is None and detention["declined"] == ["perpetrators"]
    [attachment] = body["attachments"]
    assert set(attachment) == {"id", "medium", "graphic", "created_at", "sha256", "size"}
    assert (attachment["medium"], attachment["graphic"]) == ("photo", True)
    assert attachment["sha256"] == hashlib.sha256(f.PIXEL_PNG).hexdigest() and attachment["size"] == len(f.PIXEL_PNG)
    assert body["analysis"] == {"current": {}, "history": [], "links": [], "spans": [], "notes": []}

    _record(client, token, testimony_id)
    viewed = _events(app, "record_viewed")
    assert [(e.actor_id, e.target_ids, e.details["parts"], e.details["purpose"]) for e in viewed] == \
        [(people["rafael"].id, [testimony_id], ["attachments", "content", "notes"], "review")] * 2
    assert client.get(f"{RECORDS}/999999", headers=token).status_code == 404


# --- the reviewer's actions --------------------------------------------------------------------------------------

def test_an_assigned_reviewer_can_do_each_action_and_reads_it_back_in_the_record(
        app: Flask, client: FlaskClient, people: dict[str, TestUser]) -> None:
    testimony_id = _assigned(app, people)
    other_id = _assigned(app, people, key="o" * 24)
    token = bearer(app, people["rafael"])
    url = f"{RECORDS}/{testimony_id}"
    incident_id = _record(client, token, testimony_id)["incidents"][0]["id"]

    graded = _sent(client, "POST", f"{url}/assessments", token,
                   {"kind": "reliability", "value": "B", "reason": "  Consistent with the other accounts. "})
    assert graded.status_code == 201, graded.get_json()
    assert {k: graded.get_json()[k] for k in ("kind", "value", "reason", "reviewer_id")} == \
        {"kind": "reliability", "value": "B", "reason": "Consistent with the other accounts.",
         "reviewer_id": people["rafael"].id}
    for kind, value in (("credibility", "2"), ("verification", "corroborated"), ("reliability", "C")):
        assert _sent(client, "POST", f"{url}/assessments", token,
                     {"kind": kind, "value": value, "reason": "On a second reading."}).status_code == 201
    coded = _sent(client, "POST", f"{url}/incidents/{incident_id}/codings", token,
                  {"type": "drone_strike", "month": "2023-09", "region": "nagorno-karabakh",
                   "reason": "The sound described is a drone's."})
    assert coded.status_code == 201, coded.get_json()
    assert (coded.get_json()["type"], coded.get_json()["incident_id"]) == ("drone_strike", incident_id)
    linked = _sent(client, "POST", f"{url}/links", token,
                   {"other": _pseudonym(app, other_id).lower(), "kind": "corroborates", "reason": "Same shelling."})
    assert linked.status_code == 201, linked.get_json()
    assert (linked.get_json()["other_id"], linked.get_json()["outgoing"]) == (other_id, True)
    marked = _sent(client, "POST", f"{url}/identifying-spans", token, {"phrase": "near  kornidzor", "kind": "address"})
    assert marked.status_code == 201, marked.get_json()
    [span] = marked.get_json()
    assert f.SENTINEL_NARRATIVE[span["start"]:span["stop"]] == "near Kornidzor" and span["kind"] == "address"
    noted = _sent(client, "POST", f"{url}/notes", token, {"text": "Ask for the hospital's records."})
    assert noted.status_code == 201 and noted.get_json()["text"] == "Ask for the hospital's records."

    analysis = _record(client, token, testimony_id)["analysis"]
    assert {kind: e["value"] for kind, e in analysis["current"].items()} == \
        {"reliability": "C", "credibility": "2", "verification": "corroborated"}
    assert [e["value"] for e in analysis["history"]] == ["C", "corroborated", "2", "B"]
    assert [(e["id"], e["kind"], e["other_pseudonym"], e["reason"]) for e in analysis["links"]] == \
        [(linked.get_json()["id"], "corroborates", _pseudonym(app, other_id), "Same shelling.")]
    assert [(s["id"], s["start"], s["stop"], s["stale"]) for s in analysis["spans"]] == \
        [(span["id"], span["start"], span["stop"], False)]
    assert [n["text"] for n in analysis["notes"]] == ["Ask for the hospital's records."]
    codings = _record(client, token, testimony_id)["incidents"][0]["codings"]
    assert [(c["type"], c["reason"]) for c in codings] == [("drone_strike", "The sound described is a drone's.")]
    # The other record shows the link too, without the reason sealed under this record's key.
    [seen_there] = _record(client, token, other_id)["analysis"]["links"]
    assert (seen_there["other_id"], seen_there["outgoing"], seen_there["reason"]) == (testimony_id, False, "")

    # Marking words again marks nothing new.
    again = _sent(client, "POST", f"{url}/identifying-spans", token, {"phrase": "near Kornidzor", "kind": "address"})
    assert again.status_code == 201 and again.get_json() == []

    assert _sent(client, "DELETE", f"{url}/links/{linked.get_json()['id']}", token).status_code == 204
    assert _sent(client, "DELETE", f"{url}/identifying-spans/{span['id']}", token).status_code == 204
    analysis = _record(client, token, testimony_id)["analysis"]
    assert analysis["links"] == [] and analysis["spans"] == []
    # Removed already: refused, and nothing more is recorded; an id of no link or mark of this record is a 404.
    gone = _sent(client, "DELETE", f"{url}/links/{linked.get_json()['id']}", token)
    assert gone.status_code == 422 and gone.mimetype == PROBLEM
    assert gone.get_json()["detail"] == "This link is not in force on this record."
    unmarked = _sent(client, "DELETE", f"{url}/identifying-spans/{span['id']}", token)
    assert unmarked.status_code == 422 and unmarked.get_json()["detail"] == "This mark is not in force on this record."
    assert _sent(client, "DELETE", f"{url}/links/999999", token).status_code == 404
    assert _sent(client, "DELETE", f"{RECORDS}/{other_id}/identifying-spans/{span['id']}", token).status_code == 404

    analysed = _events(app, "record_analysed")
    assert [e.details["analysis"] for e in analysed] == [
        "reliability", "credibility", "verification", "reliability", "coding", "corroborates", "identifying_span",
        "note", "identifying_span", "corroborates_removed", "identifying_span_removed"]
    assert all(e.actor_id == people["rafael"].id and e.target_ids == [testimony_id] for e in analysed)
    logged = " ".join(f"{e.details} {e.reason}" for e in analysed)
    assert "Kornidzor" not in logged and "hospital" not in logged and "drone's" not in logged


def test_an_unassigned_record_is_refused_audited_and_nothing_is_stored(
        app: Flask, client: FlaskClient, people: dict[str, TestUser]) -> None:
    testimony_id = _interview(app, people["amira"], key="u" * 24)
    incident_id = _first_incident(app, testimony_id)
    token = bearer(app, people["rafael"])
    url = f"{RECORDS}/{testimony_id}"
    attempts = [
        ("GET", url, None),
        ("POST", f"{url}/assessments", {"kind": "reliability", "value": "B", "reason": "Seems right."}),
        ("POST", f"{url}/incidents/{incident_id}/codings", {"type": "shelling", "reason": "Seems right."}),
        ("POST", f"{url}/links", {"other": "KB-0000-00", "kind": "duplicate", "reason": "Seems right."}),
        ("DELETE", f"{url}/links/1", None),
        ("POST", f"{url}/identifying-spans", {"phrase": "Kornidzor", "kind": "address"}),
        ("DELETE", f"{url}/identifying-spans/1", None),
        ("POST", f"{url}/notes", {"text": "A note."}),
    ]
    for method, address, body in attempts:
        response = _sent(client, method, address, token, body)
        assert response.status_code == 403, f"{method} {address}: {response.get_json()}"
        assert response.mimetype == PROBLEM
        assert response.get_json()["detail"] == ("This record is not assigned to you. Ask a coordinator if you "
                                                 "need it for your work.")
        assert f.SENTINEL_NARRATIVE not in response.get_data(as_text=True)
    refused = _events(app, "record_access_refused")
    assert [(e.actor_id, e.target_ids, e.details["why"]) for e in refused] == \
        [(people["rafael"].id, [testimony_id], "not_assigned")] * len(attempts)
    assert _analysis_rows(app) == NOTHING_ANALYSED
    assert _events(app, "record_viewed") == [] and _events(app, "record_analysed") == []


def test_a_withdrawn_record_is_refused_and_leaves_the_queue(
        app: Flask, client: FlaskClient, people: dict[str, TestUser]) -> None:
    testimony_id = _assigned(app, people)
    token = bearer(app, people["rafael"])
    with app.app_context():
        consents.record_withdrawal(db.session.get(StoredTestimony, testimony_id), purposes=[], received_how="phone",
                                   erasure=False, actor=f.account(people["sona"]), config=app.config)
        db.session.commit()
    assert client.get(RECORDS, headers=token).get_json()["records"] == []
    read = client.get(f"{RECORDS}/{testimony_id}", headers=token)
    noted = _sent(client, "POST", f"{RECORDS}/{testimony_id}/notes", token, {"text": "A note."})
    for response in (read, noted):
        assert response.status_code == 403 and response.mimetype == PROBLEM
        assert "withdrew their consent" in response.get_json()["detail"]
        assert f.SENTINEL_NARRATIVE not in response.get_data(as_text=True)
    assert [e.details["why"] for e in _events(app, "record_access_refused")] == ["consent_withdrawn"] * 2
    assert _analysis_rows(app) == NOTHING_ANALYSED and _events(app, "record_viewed") == []


@pytest.mark.parametrize(("path", "body", "expected"), [
    ("assessments", {}, {"kind", "value", "reason"}),
    ("assessments", {"kind": "reliability", "value": "Z", "reason": "  "}, {"value", "reason"}),
    ("assessments", {"kind": "mood", "value": "A", "reason": "Seems right."}, {"kind"}),
    ("assessments", {"kind": "reliability", "value": "A", "reason": "Fine.", "score": 3}, {"score"}),
    ("assessments", {"kind": "credibility", "value": 2, "reason": "Fine."}, {"value"}),
    ("assessments", {"kind": "credibility", "value": "2", "reason": "x" * 2001}, {"reason"}),
    ("incidents/{incident}/codings", {"type": "picnic", "month": "2023-13", "region": "mars", "reason": "Why."},
     {"type", "month", "region"}),
    ("incidents/{incident}/codings", {"type": "shelling"}, {"reason"}),
    ("links", {"other": "KB-NONE-00", "kind": "friends", "reason": ""}, {"other", "kind", "reason"}),
    ("links", {"other": "{own}", "kind": "duplicate", "reason": "Itself."}, {"other"}),
    ("identifying-spans", {}, {"phrase", "kind"}),
    ("identifying-spans", {"phrase": "words not in the narrative", "kind": "name"}, {"phrase"}),
    ("identifying-spans", {"phrase": "Kornidzor", "kind": "shoe size"}, {"kind"}),
    ("identifying-spans", {"phrase": "  ", "kind": "name"}, {"phrase"}),
    ("notes", {"text": "   "}, {"text"}),
    ("notes", {"text": "x" * 10_001}, {"text"}),
])
def test_bad_input_is_refused_naming_each_field_and_nothing_is_stored(
        app: Flask, client: FlaskClient, people: dict[str, TestUser], path: str, body: dict[str, Any],
        expected: set[str]) -> None:
    testimony_id = _assigned(app, people)
    token = bearer(app, people["rafael"])
    incident_id = _first_incident(app, testimony_id)
    if body.get("other") == "{own}":
        body = {**body, "other": _pseudonym(app, testimony_id)}
    response = _sent(client, "POST", f"{RECORDS}/{testimony_id}/{path.format(incident=incident_id)}", token, body)
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == PROBLEM
    errors = response.get_json()["errors"]
    assert set(errors) == expected, errors
    assert all(messages and all(isinstance(m, str) and m for m in messages) for messages in errors.values())
    assert _analysis_rows(app) == NOTHING_ANALYSED and _events(app, "record_analysed") == []
    # Looking for the words reads the narrative, and that reading stays recorded though nothing is marked.
    viewed = [e.details["parts"] for e in _events(app, "record_viewed")]
    assert viewed == ([["content"]] if path == "identifying-spans" and body else [])


def test_requests_that_are_not_json_or_name_another_records_incident_store_nothing(
        app: Flask, client: FlaskClient, people: dict[str, TestUser]) -> None:
    testimony_id = _assigned(app, people)
    other_id = _assigned(app, people, key="o" * 24)
    token = bearer(app, people["rafael"])
    others_incident = _first_incident(app, other_id)
    form = client.post(f"{RECORDS}/{testimony_id}/notes", data={"text": "A note."}, headers=token)
    assert form.status_code == 415 and form.mimetype == PROBLEM
    wrong = _sent(client, "POST", f"{RECORDS}/{testimony_id}/incidents/{others_incident}/codings", token,
                  {"type": "shelling", "reason": "Why."})
    assert wrong.status_code == 404 and wrong.get_json()["detail"] == "This record has no incident with this id."
    assert _analysis_rows(app) == NOTHING_ANALYSED


@pytest.mark.parametrize("role", ["interviewer", "coordinator", "legal", "auditor", "admin"])
def test_other_roles_are_refused_every_route(
        app: Flask, client: FlaskClient, people: dict[str, TestUser], create_user: Callable[..., TestUser],
        role: str) -> None:
    testimony_id = _assigned(app, people)
    caller = people["amira"] if role == "interviewer" else create_user(f"someone-{role}", [role])
    token = bearer(app, caller)
    url = f"{RECORDS}/{testimony_id}"
    attempts = [("GET", RECORDS, None), ("GET", url, None), ("POST", f"{url}/notes", {"text": "A note."}),
                ("POST", f"{url}/assessments", {"kind": "reliability", "value": "A", "reason": "Why."}),
                ("DELETE", f"{url}/links/1", None)]
    for method, address, body in attempts:
        response = _sent(client, method, address, token, body)
        assert response.status_code == 403, f"{role}: {method} {address}"
        assert response.mimetype == PROBLEM
        assert f.SENTINEL_NARRATIVE not in response.get_data(as_text=True)
    denied = _events(app, "access_denied")
    assert [(e.actor_id, e.details["endpoint"]) for e in denied][-len(attempts):] == [
        (caller.id, endpoint) for endpoint in ("api_review.Records", "api_review.RecordItem", "api_review.Notes",
                                               "api_review.Assessments", "api_review.LinkItem")]
    assert _analysis_rows(app) == NOTHING_ANALYSED and _events(app, "record_viewed") == []


def test_without_a_token_the_api_answers_401_and_the_routes_are_documented(
        app: Flask, client: FlaskClient, people: dict[str, TestUser]) -> None:
    testimony_id = _assigned(app, people)
    for response in (client.get(RECORDS), client.get(f"{RECORDS}/{testimony_id}"),
                     client.post(f"{RECORDS}/{testimony_id}/notes", json={"text": "A note."})):
        assert response.status_code == 401 and response.mimetype == PROBLEM
    assert _analysis_rows(app) == NOTHING_ANALYSED
    spec = client.get("/api/v1/openapi.json", headers=bearer(app, people["rafael"])).get_json()
    documented = {path for path in spec["paths"] if path.startswith("/api/v1/review/")}
    assert documented == {
        "/api/v1/review/records", "/api/v1/review/records/{testimony_id}",
        "/api/v1/review/records/{testimony_id}/assessments",
        "/api/v1/review/records/{testimony_id}/incidents/{incident_id}/codings",
        "/api/v1/review/records/{testimony_id}/links", "/api/v1/review/records/{testimony_id}/links/{link_id}",
        "/api/v1/review/records/{testimony_id}/identifying-spans",
        "/api/v1/review/records/{testimony_id}/identifying-spans/{span_id}",
        "/api/v1/review/records/{testimony_id}/notes"}
