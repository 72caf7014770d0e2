"""The interview through the API, as a script on an interviewer's laptop drives it: the whole interview in one
request or step by step, what is stored, what is refused and what a refusal leaves behind (nothing)."""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from intake.consents.models import ConsentRecord, ConsentWithdrawal
from intake.core.audit.models import AuditEvent
from intake.core.db import db, utcnow
from intake.identities.models import Person
from intake.interviews import operations as ops
from intake.interviews.models import InterviewNotHeld
from intake.testimonies.models import Attachment, Incident
from intake.testimonies.models import Testimony as StoredTestimony
from tests.api.test_api import bearer, make_token
from tests.conftest import TestUser
from tests.interviews import factories as f

PROBLEM = "application/problem+json"
INTERVIEWS = "/api/v1/interviews"
KEY = "interview-key-0001"
ONLY_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
ONLY_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
# The smallest PNG: one transparent pixel.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d4944415478da63f80f00000101000518d84e0000000049454e44ae426082")
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def whole_interview(**changes: Any) -> dict[str, Any]:
    """The request body of a whole interview (the factories' values), with `changes` at the top level."""
    consent = f.consent()
    incident = f.incident()
    body: dict[str, Any] = {
        "readiness": {"private_place": True, "no_observers": True, "interpreter": "not_needed",
                      "support_available": True, "risk": "low", "risk_mitigated": False},
        "consent": {"script_language": consent.script_language, "items_confirmed": sorted(consent.items_confirmed),
                    "method": consent.method, "capacity_confirmed": True, "voluntariness_confirmed": True,
                    "grants": dict(consent.grants), "media": sorted(consent.media), "witness": "", "interpreter": "",
                    "minor": None, "follow_up": None, "exclusions": [{"kind": "authorities_of", "value": "AZ"}],
                    "review_date": None},
        "person": {"name": f.SENTINEL_NAME, "birth_year": 1980, "contact": "", "relatives": "", "address": ""},
        "testimony": {"narrative": f.SENTINEL_NARRATIVE, "narrative_declined": False},
        "incidents": [
            {"type": incident.type, "description": "",
             "date": {"precision": incident.date_precision, "start": incident.date_start, "end": None},
             "place": {"id": incident.place_id, "description": ""},
             "victims": {"count": incident.victims_count, "description": incident.victims_description},
             "perpetrators": [{"description": "artillery", "unit": "", "involvement": "carried_out"}],
             "source_relation": incident.source_relation},
            {"type": "checkpoint_detention", "description": "held at the checkpoint",
             "date": {"precision": "month", "start": "2023-10"}, "place": {"id": "lachin-corridor"},
             "victims": {"count": 1, "description": "the husband"}, "perpetrators": None, "source_relation": "saw"},
        ],
        "referral": {"outcome": "accepted", "services": ["psychosocial"], "wellbeing": "settled", "note": ""},
        "submit": True,
    }
    body.update(changes)
    return body


def draft(**changes: Any) -> dict[str, Any]:
    """The beginning of an interview: readiness, consent and the anonymous person, nothing else yet."""
    return whole_interview(**{"person": None, "testimony": None, "incidents": [], "referral": None, "submit": False,
                              **changes})


def with_change(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `body` with the value at dotted `path` (list indexes as numbers) replaced."""
    changed = copy.deepcopy(body)
    *parents, last = path.split(".")
    node: Any = changed
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return changed


@pytest.fixture
def amira(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("amira", ["interviewer"])


@pytest.fixture
def token(app: Flask, amira: TestUser) -> dict[str, str]:
    return bearer(make_token(app, amira)[1])


def create(client: FlaskClient, token: dict[str, str], body: dict[str, Any], key: str = KEY,
           **headers: str) -> Any:
    return client.post(INTERVIEWS, json=body, headers={**token, "Idempotency-Key": key, **headers})


def count(app: Flask, model: Any) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def nothing_personal_stored(app: Flask) -> bool:
    return all(count(app, model) == 0 for model in (Person, StoredTestimony, ConsentRecord, Incident, Attachment))


def audit_actions(app: Flask) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.seq)))


def refused(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def upload(client: FlaskClient, token: dict[str, str], interview: int, content: bytes, *, revision: int,
           medium: str = "photo", graphic: bool = False, name: str = "pixel.png") -> Any:
    return client.post(f"{INTERVIEWS}/{interview}/attachments", data=content,
                       query_string={"revision": revision, "medium": medium, "graphic": str(graphic).lower()},
                       headers={**token, "Content-Type": "application/octet-stream", "X-Filename": name})


# ---------------------------------------------------------------------------------------------------------------
# The whole interview in one request


def test_a_whole_interview_in_one_request_is_stored_and_opens_for_its_interviewer_only(
        app: Flask, client: FlaskClient, token: dict[str, str], create_user: Callable[..., TestUser]) -> None:
    response = create(client, token, whole_interview())
    assert response.status_code == 201, response.get_data(as_text=True)
    created = response.get_json()
    assert created["status"] == "submitted"
    assert created["pseudonym"].startswith("KB-")
    assert created["correctable_until"] is not None
    assert created["possible_previous_interviews"] == []

    record = client.get(f"{INTERVIEWS}/{created['id']}", headers=token)
    assert record.status_code == 200
    shown = record.get_json()
    assert shown["testimony"] == {"narrative": f.SENTINEL_NARRATIVE, "narrative_declined": False}
    assert shown["person"] == {"name": f.SENTINEL_NAME, "birth_year": 1980}
    assert [i["type"] for i in shown["incidents"]] == ["shelling", "checkpoint_detention"]
    assert shown["incidents"][0]["date"] == {"precision": "day", "start": "2023-09-19", "end": None}
    assert shown["incidents"][0]["place"]["id"] == "stepanakert"
    # A question sent as null was declined, which is not the same as left blank.
    assert shown["incidents"][1]["perpetrators"] is None and shown["incidents"][1]["declined"] == ["perpetrators"]
    assert shown["consent"]["grants"] == {"documentation": "pseudonymous", "un_mechanisms": "anonymous"}
    assert shown["consent"]["exclusions"] == [{"kind": "authorities_of", "value": "AZ"}]
    assert shown["referral"]["services"] == ["psychosocial"]
    assert shown["revision"] == created["revision"]

    with app.app_context():
        testimony = db.session.get(StoredTestimony, created["id"])
        assert f.SENTINEL_NARRATIVE.encode() not in (testimony.narrative or b"")
        assert [i.month for i in testimony.incidents] == ["2023-09", "2023-10"]

    narine = create_user("narine", ["interviewer"])
    other = bearer(make_token(app, narine)[1])
    body = refused(client.get(f"{INTERVIEWS}/{created['id']}", headers=other), 403)
    assert body["detail"] == "Only the interviewer who recorded this interview can open it."
    assert f.SENTINEL_NARRATIVE not in json.dumps(body)
    with app.app_context():
        last = db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
        assert (last.action, last.actor_id, last.details["why"]) == ("record_access_refused", narine.id, "not_own")
    assert client.get(f"{INTERVIEWS}", headers=other).get_json() == []


def test_the_interviewers_list_shows_their_interviews_newest_first_without_content(
        client: FlaskClient, token: dict[str, str]) -> None:
    first = create(client, token, whole_interview()).get_json()
    second = create(client, token, draft(), key="interview-key-0002").get_json()
    listed = client.get(INTERVIEWS, headers=token)
    assert listed.status_code == 200
    rows = listed.get_json()
    assert [(r["id"], r["status"], r["incidents"]) for r in rows] == [
        (second["id"], "draft", 0), (first["id"], "submitted", 2)]
    assert f.SENTINEL_NARRATIVE not in listed.get_data(as_text=True)


def test_no_audit_event_carries_the_narrative_or_the_name(
        app: Flask, client: FlaskClient, token: dict[str, str]) -> None:
    created = create(client, token, whole_interview()).get_json()
    client.get(f"{INTERVIEWS}/{created['id']}", headers=token)
    client.patch(f"{INTERVIEWS}/{created['id']}", headers=token,
                 json={"revision": created["revision"], "narrative": f.SENTINEL_NARRATIVE + " again"})
    with app.app_context():
        events = db.session.scalars(sa.select(AuditEvent)).all()
        assert {"testimony_created", "consent_recorded", "testimony_submitted", "record_viewed"} <= {
            e.action for e in events}
        for event in events:
            stored = " ".join([event.entry or "", json.dumps(event.details), event.reason or ""])
            for sentinel in (f.SENTINEL_NARRATIVE, f.SENTINEL_NAME, "Sentinelyan"):
                assert sentinel not in stored, event.action


# ---------------------------------------------------------------------------------------------------------------
# Step by step


def test_an_interview_step_by_step_with_an_attachment(app: Flask, client: FlaskClient, token: dict[str, str]) -> None:
    started = create(client, token, draft())
    assert started.status_code == 201, started.get_data(as_text=True)
    interview = started.get_json()
    assert interview["status"] == "draft" and interview["correctable_until"] is None
    revision = interview["revision"]
    where = f"{INTERVIEWS}/{interview['id']}"

    incident = whole_interview()["incidents"][0]
    added = client.post(f"{where}/incidents", json={"revision": revision, "incident": incident}, headers=token)
    assert added.status_code == 201, added.get_data(as_text=True)
    assert added.get_json()["revision"] == revision + 1
    revision = added.get_json()["revision"]

    stored = upload(client, token, interview["id"], PNG, revision=revision, graphic=True)
    assert stored.status_code == 201, stored.get_data(as_text=True)
    attachment = stored.get_json()
    assert attachment["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert (attachment["medium"], attachment["graphic"], attachment["size"]) == ("photo", True, len(PNG))
    revision = attachment["revision"]

    changed = client.patch(where, headers=token, json={
        "revision": revision, "narrative": f.SENTINEL_NARRATIVE, "person": {"name": f.SENTINEL_NAME},
        "referral": {"outcome": "declined"}})
    assert changed.status_code == 200, changed.get_data(as_text=True)
    assert changed.get_json()["revision"] == revision + 3  # three steps saved
    revision = changed.get_json()["revision"]

    submit_key = {"Idempotency-Key": "submit-key-000001"}
    submitted = client.post(f"{where}/submit", json={"revision": revision}, headers={**token, **submit_key})
    assert submitted.status_code == 200, submitted.get_data(as_text=True)
    assert submitted.get_json()["status"] == "submitted" and submitted.get_json()["correctable_until"]
    again = client.post(f"{where}/submit", json={"revision": revision}, headers={**token, **submit_key})
    assert again.status_code == 200 and again.get_json() == submitted.get_json()

    shown = client.get(where, headers=token).get_json()
    assert shown["status"] == "submitted"
    assert shown["testimony"]["narrative"] == f.SENTINEL_NARRATIVE
    assert shown["person"] == {"name": f.SENTINEL_NAME}
    assert shown["referral"]["outcome"] == "declined"
    assert [(a["medium"], a["filename"], a["sha256"]) for a in shown["attachments"]] == [
        ("photo", "pixel.png", hashlib.sha256(PNG).hexdigest())]
    assert count(app, StoredTestimony) == 1


def test_incidents_can_be_changed_and_removed(app: Flask, client: FlaskClient, token: dict[str, str]) -> None:
    interview = create(client, token, draft(incidents=whole_interview()["incidents"])).get_json()
    where = f"{INTERVIEWS}/{interview['id']}"
    first, second = (i["id"] for i in client.get(where, headers=token).get_json()["incidents"])
    changed = client.put(f"{where}/incidents/{first}", headers=token, json={
        "revision": interview["revision"], "incident": {"type": "drone_strike", "place": None}})
    assert changed.status_code == 200, changed.get_data(as_text=True)
    removed = client.delete(f"{where}/incidents/{second}", headers=token,
                            query_string={"revision": changed.get_json()["revision"]})
    assert removed.status_code == 204
    incidents = client.get(where, headers=token).get_json()["incidents"]
    assert [(i["id"], i["type"], i["place"], i["declined"]) for i in incidents] == [
        (first, "drone_strike", None, ["place"])]
    assert refused(client.delete(f"{where}/incidents/{second}", headers=token,
                                 query_string={"revision": 1}), 404)["detail"]


# ---------------------------------------------------------------------------------------------------------------
# Idempotency


def test_the_same_request_sent_again_answers_the_first_result_and_stores_nothing_new(
        app: Flask, client: FlaskClient, token: dict[str, str]) -> None:
    first = create(client, token, whole_interview())
    assert first.status_code == 201
    events = audit_actions(app)
    again = create(client, token, whole_interview())
    assert again.status_code == 200
    assert {k: v for k, v in again.get_json().items() if k != "possible_previous_interviews"} == {
        k: v for k, v in first.get_json().items() if k != "possible_previous_interviews"}
    assert count(app, StoredTestimony) == 1 and count(app, Person) == 1 and count(app, Incident) == 2
    assert audit_actions(app) == events


def test_a_draft_submitted_with_the_key_it_was_created_with_still_answers_its_first_request(
        app: Flask, client: FlaskClient, token: dict[str, str]) -> None:
    body = draft(referral=whole_interview()["referral"])
    interview = create(client, token, body).get_json()
    submitted = client.post(f"{INTERVIEWS}/{interview['id']}/submit", json={"revision": interview["revision"]},
                            headers={**token, "Idempotency-Key": KEY})
    assert submitted.status_code == 200 and submitted.get_json()["status"] == "submitted"
    again = create(client, token, body)
    assert again.status_code == 200
    assert (again.get_json()["id"], again.get_json()["status"]) == (interview["id"], "submitted")
    assert count(app, StoredTestimony) == 1


def test_the_same_key_with_another_request_is_a_409_and_stores_nothing(
        app: Flask, client: FlaskClient, token: dict[str, str]) -> None:
    assert create(client, token, whole_interview()).status_code == 201
    other = whole_interview(testimony={"narrative": "something else", "narrative_declined": False})
    body = refused(create(client, token, other), 409)
    assert body["detail"] == "This Idempotency-Key was already used for a different request."
    assert count(app, StoredTestimony) == 1


def test_the_same_key_of_another_interviewer_is_theirs(
        app: Flask, client: FlaskClient, token: dict[str, str], create_user: Callable[..., TestUser]) -> None:
    narine = bearer(make_token(app, create_user("narine", ["interviewer"]))[1])
    assert create(client, token, whole_interview()).status_code == 201
    assert create(client, narine, whole_interview()).status_code == 201
    assert count(app, StoredTestimony) == 2


@pytest.mark.parametrize("key", [None, "short", "x" * 65, "has spaces in it!"])
@ONLY_SQLITE
def test_a_missing_or_malformed_idempotency_key_is_refused(
        app: Flask, client: FlaskClient, token: dict[str, str], key: str | None) -> None:
    headers = {**token} if key is None else {**token, "Idempotency-Key": key}
    body = refused(client.post(INTERVIEWS, json=whole_interview(), headers=headers), 422)
    assert list(body["errors"]) == ["Idempotency-Key"]
    assert nothing_personal_stored(app)


@ONLY_POSTGRESQL
def test_two_requests_with_one_key_at_once_create_one_interview(
        app: Flask, token: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    # Both requests look the key up before either has stored anything, then both create: the unique key makes
    # the second wait for the first and fail when it commits, and the second answers as a replay.
    looked_up = threading.Barrier(2, timeout=30)
    seen: set[int] = set()
    lookup = ops.created_with_key

    def lookup_together(actor: Any, key: str) -> Any:
        found = lookup(actor, key)
        if threading.get_ident() not in seen:
            seen.add(threading.get_ident())
            looked_up.wait()
        return found

    # A token's first use notes the time in the request's transaction; that row lock would hold the second
    # request back before its lookup, so the token is used once beforehand.
    assert app.test_client().get(INTERVIEWS, headers=token).status_code == 200
    monkeypatch.setattr(ops, "created_with_key", lookup_together)
    answers: list[Any] = []
    failures: list[BaseException] = []

    def send() -> None:
        try:
            answers.append(create(app.test_client(), token, whole_interview()))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert len(seen) == 2  # both looked the key up before either stored anything
    assert sorted(a.status_code for a in answers) == [200, 201], [a.get_data(as_text=True) for a in answers]
    assert answers[0].get_json()["id"] == answers[1].get_json()["id"]
    assert count(app, StoredTestimony) == 1 and count(app, Person) == 1 and count(app, ConsentRecord) == 1


# ---------------------------------------------------------------------------------------------------------------
# Refusals: nothing is stored


def test_testimony_without_consent_to_documentation_is_refused_and_stores_nothing(
        app: Flask, client: FlaskClient, token: dict[str, str]) -> None:
    body = whole_interview()
    body["consent"]["grants"] = {"un_mechanisms": "anonymous"}
    events = audit_actions(app)
    problem = refused(create(client, token, body), 422)
    assert "Without consent to keep the testimony nothing can be recorded" in problem["errors"]["consent.grants"][0]
    assert nothing_personal_stored(app)
    assert audit_actions(app) == events


def test_an_unsafe_interview_is_refused_with_its_reasons_and_stores_nothing(
        app: Flask, client: FlaskClient, token: dict[str, str]) -> None:
    body = whole_interview()
    body["readiness"].update(no_observers=False, risk="high")
    problem = refused(create(client, token, body), 422)
    assert problem["reasons"] == ["observers_present", "risk_unmitigated"]
    assert set(problem["errors"]) == {"readiness.no_observers", "readiness.risk_mitigated"}
    assert "/api/v1/interviews/not-held" in problem["detail"]
    assert nothing_personal_stored(app)

    held = client.post(f"{INTERVIEWS}/not-held", headers=token,
                       json={"stage": "readiness", "reasons": problem["reasons"]})
    assert held.status_code == 201
    with app.app_context():
        row = db.session.get(InterviewNotHeld, held.get_json()["id"])
        assert (row.stage, row.reasons) == ("readiness", ["observers_present", "risk_unmitigated"])
    assert nothing_personal_stored(app)
    assert list(refused(client.post(f"{INTERVIEWS}/not-held", headers=token,
                                    json={"stage": "consent", "reasons": ["felt_like_it"]}), 422)["errors"]) == [
        "reasons"]


@pytest.mark.parametrize(("path", "value", "field"), [
    ("incidents.0.date.start", "2999-01-01", "incidents.0.date.start"),
    ("incidents.1.date", {"precision": "range", "start": "2023-09-20", "end": "2023-09-19"}, "incidents.1.date.end"),
    ("incidents.1.type", "no_such_type", "incidents.1.type"),
    ("incidents.0.place", {"id": "atlantis"}, "incidents.0.place.id"),
    ("incidents.0.victims.count", "two", "incidents.0.victims.count"),
    ("incidents.0.perpetrators.0.involvement", "watched", "incidents.0.perpetrators"),
    ("consent.items_confirmed", ["uses"], "consent.items_confirmed"),
    ("consent.minor", {"guardian_consented": True, "child_assented": False}, "consent.minor.child_assented"),
    ("consent.bogus", True, "consent.bogus"),
    ("person.birth_year", 1850, "person.birth_year"),
    ("referral.outcome", "maybe", "referral.outcome"),
    ("referral", None, "referral"),
    ("incidents.1.date", {"precision": "month", "start": "0000-05", "end": None}, "incidents.1.date.start"),
    ("incidents.0.date.start", "1850-01-01", "incidents.0.date.start"),
], ids=["future-date", "end-before-start", "unknown-type", "unknown-place", "count-not-a-number",
        "unknown-involvement", "script-not-read", "child-not-assenting", "unknown-field", "birth-year",
        "referral-outcome", "submitted-without-referral", "year-zero", "before-1900"])
@ONLY_SQLITE
def test_bad_input_is_refused_on_its_field_and_stores_nothing(
        app: Flask, client: FlaskClient, token: dict[str, str], path: str, value: Any, field: str) -> None:
    problem = refused(create(client, token, with_change(whole_interview(), path, value)), 422)
    assert field in problem["errors"], problem["errors"]
    assert all(isinstance(m, str) and m for m in problem["errors"][field])
    assert nothing_personal_stored(app)


@ONLY_SQLITE
def test_a_request_of_the_wrong_shape_is_refused_by_path_in_the_callers_words(
        app: Flask, client: FlaskClient, token: dict[str, str]) -> None:
    assert refused(create(client, token, ["not", "an", "object"]), 422)["errors"] == {"": ["Give an object here."]}
    body = with_change(whole_interview(), "consent.bogus", True)
    body = with_change(body, "incidents.1.victims", {"count": 1.5})
    del body["readiness"]["risk"]
    assert refused(create(client, token, body), 422)["errors"] == {
        "consent.bogus": ["This field is not part of the request."],
        "incidents.1.victims.count": ["Give a whole number."],
        "readiness.risk": ["This field is required."],
    }
    assert nothing_personal_stored(app)


def test_every_bad_incident_is_named_in_one_answer(app: Flask, client: FlaskClient, token: dict[str, str]) -> None:
    body = with_change(whole_interview(), "incidents.0.date.start", "2999-01-01")
    body = with_change(body, "incidents.1.place", {"id": "atlantis"})
    problem = refused(create(client, token, body, **{"Accept-Language": "ru"}), 422)
    assert {"incidents.0.date.start", "incidents.1.place.id"} <= set(problem["errors"])
    assert problem["title"] == "Часть отправленных данных неверна"  # the caller's language
    assert nothing_personal_stored(app)


@ONLY_SQLITE
def test_a_bad_incident_added_to_a_draft_changes_nothing(app: Flask, client: FlaskClient,
                                                         token: dict[str, str]) -> None:
    interview = create(client, token, draft()).get_json()
    incident = with_change(whole_interview()["incidents"][0], "date.start", "2999-01-01")
    problem = refused(client.post(f"{INTERVIEWS}/{interview['id']}/incidents", headers=token,
                                  json={"revision": interview["revision"], "incident": incident}), 422)
    assert problem["errors"] == {"incident.date.start": ["This date is in the future."]}
    assert count(app, Incident) == 0
    assert client.get(f"{INTERVIEWS}/{interview['id']}", headers=token).get_json()["revision"] == interview["revision"]


def test_a_file_larger_than_the_limit_is_a_413_and_stores_nothing(make_app: Callable[..., Flask],
                                                                  create_user: Callable[..., TestUser]) -> None:
    app = make_app(ATTACHMENT_MAX_BYTES=2048)
    client = app.test_client()
    token = bearer(make_token(app, create_user("amira", ["interviewer"]))[1])
    interview = create(client, token, draft()).get_json()
    refused(upload(client, token, interview["id"], PNG + b"\x00" * 4096, revision=interview["revision"]), 413)
    assert count(app, Attachment) == 0
    assert client.get(f"{INTERVIEWS}/{interview['id']}", headers=token).get_json()["revision"] == interview["revision"]
    assert upload(client, token, interview["id"], PNG, revision=interview["revision"]).status_code == 201


@pytest.mark.parametrize(("content", "medium", "media", "fragment"), [
    (PNG, "document", ["photo", "document"], "This file is a photo, not a document."),
    (PDF, "document", ["photo"], "did not consent to a document being kept"),
    (b"MZ\x90\x00 not a file we take", "document", ["photo", "document"], "This kind of file is not accepted."),
], ids=["mislabelled", "medium-not-consented", "unknown-type"])
@ONLY_SQLITE
def test_a_refused_file_is_a_422_saying_why_and_stores_nothing(
        app: Flask, client: FlaskClient, token: dict[str, str], content: bytes, medium: str, media: list[str],
        fragment: str) -> None:
    body = draft()
    body["consent"]["media"] = media
    interview = create(client, token, body).get_json()
    problem = refused(upload(client, token, interview["id"], content, revision=interview["revision"],
                             medium=medium, name="evidence.pdf"), 422)
    assert fragment in problem["detail"] and fragment in problem["errors"]["file"][0]
    assert count(app, Attachment) == 0
    assert client.get(f"{INTERVIEWS}/{interview['id']}", headers=token).get_json()["revision"] == interview["revision"]


def test_a_change_from_a_stale_revision_is_a_409_and_changes_nothing(
        app: Flask, client: FlaskClient, token: dict[str, str]) -> None:
    interview = create(client, token, draft()).get_json()
    where = f"{INTERVIEWS}/{interview['id']}"
    seen = interview["revision"]
    assert client.patch(where, headers=token, json={"revision": seen, "narrative": "first tab"}).status_code == 200
    problem = refused(client.patch(where, headers=token, json={"revision": seen, "narrative": "second tab"}), 409)
    assert "changed in another window or tab" in problem["detail"]
    assert refused(upload(client, token, interview["id"], PNG, revision=seen), 409)
    assert client.get(where, headers=token).get_json()["testimony"]["narrative"] == "first tab"
    assert count(app, Attachment) == 0


def test_after_the_correction_window_the_interview_is_locked_for_its_interviewer(
        app: Flask, client: FlaskClient, token: dict[str, str]) -> None:
    interview = create(client, token, whole_interview()).get_json()
    where = f"{INTERVIEWS}/{interview['id']}"
    assert client.patch(where, headers=token, json={"revision": interview["revision"],
                                                    "narrative": "a correction"}).status_code == 200
    with app.app_context():
        testimony = db.session.get(StoredTestimony, interview["id"])
        testimony.submitted_at = utcnow() - timedelta(hours=73)
        db.session.commit()
        revision = testimony.revision
    problem = refused(client.patch(where, headers=token, json={"revision": revision, "narrative": "too late"}), 403)
    assert "The time for corrections has ended" in problem["detail"]
    refused(client.post(f"{where}/incidents", headers=token,
                        json={"revision": revision, "incident": {"type": "shelling"}}), 403)
    refused(client.get(where, headers=token), 403)
    with app.app_context():
        assert db.session.get(StoredTestimony, interview["id"]).revision == revision
        refusals = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "record_access_refused")
                                      .order_by(AuditEvent.seq)).all()
        # The correction, the new incident and the read: each refusal is in the log, saying why.
        assert [(e.details["purpose"], e.details["why"]) for e in refusals] == [
            ("change", "correction_window_closed"), ("change", "correction_window_closed"),
            ("interview", "correction_window_closed")]


def test_only_the_interviewer_who_recorded_an_interview_may_change_it(
        app: Flask, client: FlaskClient, token: dict[str, str], create_user: Callable[..., TestUser]) -> None:
    interview = create(client, token, draft()).get_json()
    other = bearer(make_token(app, create_user("narine", ["interviewer"]))[1])
    where = f"{INTERVIEWS}/{interview['id']}"
    refused(client.patch(where, headers=other, json={"revision": interview["revision"], "narrative": "mine"}), 403)
    refused(upload(client, other, interview["id"], PNG, revision=interview["revision"]), 403)
    refused(client.post(f"{where}/withdrawals", headers=other, json={"received_how": "phone"}), 403)
    assert count(app, ConsentWithdrawal) == 0 and count(app, Attachment) == 0
    assert audit_actions(app).count("record_access_refused") == 3
    refused(client.get(f"{INTERVIEWS}/987654", headers=token), 404)


# ---------------------------------------------------------------------------------------------------------------
# Withdrawal


def test_a_withdrawal_for_one_purpose_leaves_the_interview_open(
        app: Flask, client: FlaskClient, token: dict[str, str]) -> None:
    interview = create(client, token, whole_interview()).get_json()
    where = f"{INTERVIEWS}/{interview['id']}"
    withdrawn = client.post(f"{where}/withdrawals", headers=token,
                            json={"purposes": ["un_mechanisms"], "received_how": "phone"})
    assert withdrawn.status_code == 201, withdrawn.get_data(as_text=True)
    assert (withdrawn.get_json()["purposes"], withdrawn.get_json()["erasure"]) == (["un_mechanisms"], False)
    assert client.get(where, headers=token).status_code == 200
    problem = refused(client.post(f"{where}/withdrawals", headers=token,
                                  json={"purposes": ["media"], "received_how": "phone"}), 422)
    assert list(problem["errors"]) == ["purposes"]  # never granted
    assert count(app, ConsentWithdrawal) == 1


def test_a_whole_withdrawal_closes_the_interview_at_once(app: Flask, client: FlaskClient,
                                                         token: dict[str, str]) -> None:
    interview = create(client, token, whole_interview()).get_json()
    where = f"{INTERVIEWS}/{interview['id']}"
    assert client.post(f"{where}/withdrawals", headers=token,
                       json={"received_how": "letter"}).status_code == 201
    assert "withdrew their consent" in refused(client.get(where, headers=token), 403)["detail"]
    refused(client.patch(where, headers=token, json={"revision": interview["revision"], "narrative": "x"}), 403)
    with app.app_context():
        assert db.session.get(StoredTestimony, interview["id"]).data_key.destroyed_at is None


def test_erasure_needs_the_web_interface_and_a_fresh_code_so_the_api_refuses_it_and_shreds_nothing(
        app: Flask, client: FlaskClient, token: dict[str, str]) -> None:
    interview = create(client, token, whole_interview()).get_json()
    where = f"{INTERVIEWS}/{interview['id']}"
    erased = client.post(f"{where}/withdrawals", headers=token,
                         json={"purposes": [], "received_how": "in_person", "erasure": True})
    assert "fresh two-factor code" in refused(erased, 403)["detail"]
    assert client.get(where, headers=token).status_code == 200
    with app.app_context():
        testimony = db.session.get(StoredTestimony, interview["id"])
        person = db.session.scalar(sa.select(Person).where(Person.pseudonym == testimony.pseudonym))
        assert testimony.data_key.destroyed_at is None and person.data_key.destroyed_at is None
        assert "record_shredded" not in audit_actions(app) and "consent_withdrawn" not in audit_actions(app)


# ---------------------------------------------------------------------------------------------------------------
# The API's manners


def test_without_a_token_every_interview_route_is_a_401(app: Flask, client: FlaskClient) -> None:
    for method, path in [("GET", INTERVIEWS), ("POST", INTERVIEWS), ("GET", f"{INTERVIEWS}/1"),
                         ("POST", f"{INTERVIEWS}/1/attachments"), ("POST", f"{INTERVIEWS}/not-held")]:
        response = client.open(path, method=method, json={} if method == "POST" else None)
        refused(response, 401)
    assert nothing_personal_stored(app)


def test_a_body_that_is_not_json_is_a_415_and_a_file_must_be_sent_as_octet_stream(
        app: Flask, client: FlaskClient, token: dict[str, str]) -> None:
    response = client.post(INTERVIEWS, data="readiness=yes", headers={
        **token, "Idempotency-Key": KEY, "Content-Type": "application/x-www-form-urlencoded"})
    assert "application/json" in refused(response, 415)["detail"]
    interview = create(client, token, draft()).get_json()
    response = client.post(f"{INTERVIEWS}/{interview['id']}/attachments", json={"file": "x"}, headers=token,
                           query_string={"revision": interview["revision"], "medium": "photo"})
    assert "application/octet-stream" in refused(response, 415)["detail"]
    assert count(app, StoredTestimony) == 1 and count(app, Attachment) == 0


def test_the_openapi_document_describes_the_interview_routes(client: FlaskClient, token: dict[str, str]) -> None:
    spec = client.get("/api/v1/openapi.json", headers=token).get_json()
    assert {"/api/v1/interviews", "/api/v1/interviews/{testimony_id}",
            "/api/v1/interviews/{testimony_id}/attachments"} <= set(spec["paths"])
    upload_doc = spec["paths"]["/api/v1/interviews/{testimony_id}/attachments"]["post"]
    assert "application/octet-stream" in upload_doc["requestBody"]["content"]


def test_a_patch_without_the_narrative_never_empties_it(
        app: Flask, client: FlaskClient, token: dict[str, str]) -> None:
    interview = create(client, token, whole_interview(submit=False)).get_json()
    where = f"{INTERVIEWS}/{interview['id']}"
    problem = refused(client.patch(where, headers=token, json={"revision": interview["revision"],
                                                               "narrative_declined": False}), 422)
    assert "narrative" in problem["errors"]
    assert client.get(where, headers=token).get_json()["testimony"]["narrative"] == f.SENTINEL_NARRATIVE


def test_a_person_who_withdrew_is_left_out_of_the_already_interviewed_warning(
        app: Flask, client: FlaskClient, token: dict[str, str]) -> None:
    first = create(client, token, whole_interview()).get_json()
    second = create(client, token, whole_interview(), key="second-" + KEY).get_json()
    assert len(second["possible_previous_interviews"]) == 1
    assert client.post(f"{INTERVIEWS}/{first['id']}/withdrawals", headers=token,
                       json={"received_how": "phone"}).status_code == 201
    assert client.post(f"{INTERVIEWS}/{second['id']}/withdrawals", headers=token,
                       json={"received_how": "phone"}).status_code == 201
    third = create(client, token, whole_interview(), key="third-" + KEY).get_json()
    assert third["possible_previous_interviews"] == []
