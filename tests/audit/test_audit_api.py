"""The audit API as an auditor's script uses it: the same searches, histories, extracts, verification and
checkpoints as the pages, with a bearer token, each look recorded, and clear problem+json refusals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from intake.core.audit import AuditAction, AuditEvent
from intake.core.audit.note import Verifier, open_checkpoint
from tests.api.test_api import PROBLEM, bearer, make_token
from tests.audit.test_auditor_pages import (
    SENTINEL,
    SENTINEL_NAME,
    check_extract,
    event_count,
    events_of,
    make_checkpoint,
    make_testimony,
    plant,
    seqs_where,
    tampered,
)
from tests.conftest import TestUser

EVENTS = "/api/v1/audit/events"


@pytest.fixture
def auditor(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("hasmik", ["auditor"])


@pytest.fixture
def token(app: Flask, auditor: TestUser) -> dict[str, str]:
    _id, plaintext = make_token(app, auditor)
    return bearer(plaintext)


@pytest.fixture
def amira(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("amira", ["interviewer"])


def get_events(client: FlaskClient, token: dict[str, str], **query: Any) -> Any:
    response = client.get(EVENTS, query_string=query, headers=token)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def seqs(body: dict[str, Any]) -> list[int]:
    return [e["seq"] for e in body["events"]]


def test_the_search_matches_actor_record_action_and_days(
    app: Flask, client: FlaskClient, token: dict[str, str], auditor: TestUser, amira: TestUser,
    create_user: Callable[..., TestUser]
) -> None:
    narine = create_user("narine", ["reviewer"])
    viewed = plant(app, AuditAction.RECORD_VIEWED, by=amira, target_type="testimony", target_ids=(7,),
                   details={"parts": ["content"]})
    plant(app, AuditAction.RECORD_VIEWED, by=narine, target_type="testimony", target_ids=(17,))
    old = plant(app, AuditAction.CONSENT_RECORDED, by=amira, target_type="testimony", target_ids=(7,),
                at=datetime(2024, 3, 1, 12, tzinfo=UTC))

    by_amira = get_events(client, token, actor="amira")
    assert seqs(by_amira) == seqs_where(app, AuditEvent.actor_id == amira.id)
    assert by_amira["next_before"] is None
    first = by_amira["events"][seqs(by_amira).index(viewed)]
    assert first["actor_username"] == "amira" and first["actor_roles"] == "interviewer"
    assert first["details"] == {"parts": ["content"]} and first["target_ids"] == [7]
    assert seqs(get_events(client, token, target_type="testimony", target_id="7")) == [old, viewed]
    assert seqs(get_events(client, token, action="record_viewed", actor="narine")) == seqs_where(
        app, AuditEvent.actor_id == narine.id, AuditEvent.action == "record_viewed")
    assert seqs(get_events(client, token, since="2024-03-01", until="2024-03-01")) == [old]

    searched = events_of(app, AuditAction.AUDIT_SEARCHED)
    assert len(searched) == 4 and all(e.actor_id == auditor.id for e in searched)
    assert searched[-1].details == {"since": "2024-03-01T00:00:00.000000Z", "until": "2024-03-02T00:00:00.000000Z"}


def test_pages_follow_next_before_without_overlap(
    app: Flask, client: FlaskClient, token: dict[str, str], amira: TestUser
) -> None:
    planted = [plant(app, AuditAction.LOGOUT, by=amira) for _ in range(7)]
    seen: list[int] = []
    before = None
    while True:
        query: dict[str, Any] = {"action": "logout", "limit": 3, **({"before": before} if before else {})}
        body = get_events(client, token, **query)
        assert len(body["events"]) <= 3
        seen += seqs(body)
        before = body["next_before"]
        if before is None:
            break
        plant(app, AuditAction.LOGOUT, by=amira)  # new events do not shift the pages already fetched
    assert seen == sorted(planted, reverse=True)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": 201}, "limit"),
        ({"limit": 0}, "limit"),
        ({"since": "2024-02-30"}, "since"),
        ({"since": "2024-03-02", "until": "2024-03-01"}, "until"),
        ({"actor": "nobody-here"}, "actor"),
        ({"action": "made_up"}, "action"),
        ({"before": "abc"}, "before"),
        ({"target_id": "7 OR 1=1"}, "target_id"),
        ({"narrative": "x"}, "narrative"),
    ],
    ids=["limit-too-large", "limit-zero", "impossible-date", "days-reversed", "unknown-actor", "unknown-action",
         "bad-before", "bad-record-id", "unknown-parameter"],
)
def test_a_search_that_cannot_run_is_a_422_problem_naming_the_parameter_and_records_nothing(
    app: Flask, client: FlaskClient, token: dict[str, str], query: dict[str, Any], field: str
) -> None:
    before = event_count(app)
    response = client.get(EVENTS, query_string=query, headers=token)
    assert response.status_code == 422
    assert response.mimetype == PROBLEM
    problem = response.get_json()
    assert problem["title"] == "Some of what you sent is not valid"
    assert field in problem["errors"]["query"], problem["errors"]
    assert event_count(app) == before


def test_refusals_are_translated_for_the_callers_language(
    app: Flask, client: FlaskClient, token: dict[str, str]
) -> None:
    response = client.get(EVENTS, query_string={"actor": "nobody-here"}, headers={**token, "Accept-Language": "ru"})
    assert response.status_code == 422
    problem = response.get_json()
    assert problem["title"] != "Some of what you sent is not valid"
    assert problem["errors"]["query"]["actor"] == ["Нет учётной записи с таким именем пользователя."]
    reversed_days = client.get(EVENTS, query_string={"since": "2024-03-02", "until": "2024-03-01"},
                               headers={**token, "Accept-Language": "ru"}).get_json()
    assert reversed_days["errors"]["query"]["until"] == ["Дата окончания раньше даты начала."]


def test_the_record_history_lists_viewers_with_parts_and_every_event(
    app: Flask, client: FlaskClient, token: dict[str, str], auditor: TestUser, amira: TestUser
) -> None:
    testimony_id = make_testimony(app)
    plant(app, AuditAction.RECORD_VIEWED, by=amira, target_type="testimony", target_ids=(testimony_id,),
          details={"parts": ["content"]})
    plant(app, AuditAction.RECORD_VIEWED, by=amira, target_type="testimony", target_ids=(testimony_id,),
          details={"parts": ["attachment"]})

    response = client.get(f"/api/v1/audit/records/testimony/{testimony_id}", headers=token)
    assert response.status_code == 200
    body = response.get_json()
    assert body["record"] == {"type": "testimony", "id": str(testimony_id)}
    [viewer] = body["viewers"]
    assert (viewer["actor_username"], viewer["actor_roles"], viewer["views"], viewer["parts"]) == (
        "amira", "interviewer", 2, ["attachment", "content"])
    assert viewer["first"] < viewer["last"]
    assert [e["action"] for e in body["events"]] == ["testimony_created", "record_viewed", "record_viewed"]
    viewed = events_of(app, AuditAction.AUDIT_HISTORY_VIEWED)
    assert [(e.actor_id, e.target_type, e.target_ids) for e in viewed] == [(auditor.id, "testimony",
                                                                            [testimony_id])]


def test_the_extract_carries_proofs_that_verify(
    app: Flask, client: FlaskClient, token: dict[str, str], auditor: TestUser, amira: TestUser
) -> None:
    testimony_id = make_testimony(app)
    plant(app, AuditAction.RECORD_VIEWED, by=amira, target_type="testimony", target_ids=(testimony_id,),
          details={"parts": ["content"]})
    make_checkpoint(app)
    response = client.get(f"/api/v1/audit/records/testimony/{testimony_id}/extract", headers=token)
    assert response.status_code == 200
    check_extract(response.get_json(), target_type="testimony", target_id=str(testimony_id))
    exported = events_of(app, AuditAction.AUDIT_EXTRACT_EXPORTED)
    assert [(e.actor_id, e.target_ids) for e in exported] == [(auditor.id, [testimony_id])]
    assert client.get("/api/v1/audit/records/testimony/a%20b/extract", headers=token).status_code == 404


def test_verify_reports_ok_then_the_changed_event(
    app: Flask, client: FlaskClient, token: dict[str, str], auditor: TestUser, amira: TestUser
) -> None:
    changed = plant(app, AuditAction.RECORD_VIEWED, by=amira, target_type="testimony", target_ids=(1,))
    make_checkpoint(app)
    good = client.post("/api/v1/audit/verify", json={}, headers=token)
    assert good.status_code == 200
    report = good.get_json()
    assert report["ok"] is True and report["problems"] == [] and report["first_bad_seq"] is None
    assert report["events"] == event_count(app) - 1  # the verification's own event came after
    assert report["checkpoints"] == 1 and report["seconds"] >= 0 and report["events_per_second"] >= 0
    assert set(report) >= {"file_checkpoints", "latest_checkpoint_size"}

    with tampered(app, changed):
        bad = client.post("/api/v1/audit/verify", json={}, headers=token).get_json()
    assert bad["ok"] is False and bad["first_bad_seq"] == changed
    assert {"code": "changed", "seq": changed} in [{"code": p["code"], "seq": p["seq"]} for p in bad["problems"]]
    assert all(set(p) == {"code", "seq", "checkpoint", "message"} for p in bad["problems"])
    verified = events_of(app, AuditAction.AUDIT_VERIFIED)
    assert [(e.actor_id, e.details["ok"]) for e in verified] == [(auditor.id, True), (auditor.id, False)]
    assert client.post("/api/v1/audit/verify", data="", headers=token).status_code == 415


def test_checkpoints_come_with_the_key_that_opens_them(
    app: Flask, client: FlaskClient, token: dict[str, str]
) -> None:
    make_checkpoint(app)
    body = client.get("/api/v1/audit/checkpoints", headers=token).get_json()
    [checkpoint] = body["checkpoints"]
    opened, _ = open_checkpoint(checkpoint["note"], [Verifier.from_string(body["verifier_key"])])
    assert (opened.size, opened.root_hash.hex()) == (checkpoint["tree_size"], checkpoint["root_hash"])


def test_other_roles_are_refused(app: Flask, client: FlaskClient, amira: TestUser) -> None:
    _id, plaintext = make_token(app, amira)
    for path in (EVENTS, "/api/v1/audit/records/testimony/1", "/api/v1/audit/checkpoints"):
        assert client.get(path, headers=bearer(plaintext)).status_code == 403
    assert client.post("/api/v1/audit/verify", json={}, headers=bearer(plaintext)).status_code == 403
    assert events_of(app, AuditAction.AUDIT_SEARCHED) == []


def test_no_answer_carries_testimony_content_or_identity(
    app: Flask, client: FlaskClient, token: dict[str, str], amira: TestUser
) -> None:
    testimony_id = make_testimony(app)
    plant(app, AuditAction.RECORD_VIEWED, by=amira, target_type="testimony", target_ids=(testimony_id,),
          details={"parts": ["content", "identity"]})
    make_checkpoint(app)
    answers = [
        client.get(EVENTS, headers=token),
        client.get(f"/api/v1/audit/records/testimony/{testimony_id}", headers=token),
        client.get(f"/api/v1/audit/records/testimony/{testimony_id}/extract", headers=token),
        client.post("/api/v1/audit/verify", json={}, headers=token),
        client.get("/api/v1/audit/checkpoints", headers=token),
    ]
    for response in answers:
        assert response.status_code == 200
        body = response.get_data(as_text=True)
        for secret in (SENTINEL, SENTINEL_NAME, "Ракетный", "Անի"):
            assert secret not in body
            assert secret.encode("unicode_escape").decode() not in body
