"""The coordination API as a script author meets it: a record's clear metadata, and withdrawals recorded with a
bearer token; erasure is refused there, as it needs a fresh two-factor code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from consent.policy import Reason as PolicyReason
from consent.records import Purpose, Recipient
from intake.accounts import operations as accounts
from intake.consents import operations as consents
from intake.consents.models import ConsentWithdrawal
from intake.core.audit import AuditAction
from intake.core.audit.models import AuditEvent
from intake.core.db import db
from intake.testimonies.models import Testimony as StoredTestimony
from tests.conftest import TestUser
from tests.interviews import factories as f
from tests.withdrawals import account, full_interview

PROBLEM = "application/problem+json"


@pytest.fixture
def amira(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("amira", ["interviewer"])


@pytest.fixture
def nadia(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("nadia", ["coordinator"])


def bearer(app: Flask, user: TestUser) -> dict[str, str]:
    with app.app_context():
        _, plaintext = accounts.create_api_token(account(user), name="script")
        db.session.commit()
    return {"Authorization": f"Bearer {plaintext}"}


def _url(testimony_id: int) -> str:
    return f"/api/v1/coordination/testimonies/{testimony_id}"


def _withdrawals(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(ConsentWithdrawal)) or 0


def test_a_record_reads_as_its_clear_metadata_with_no_content_or_identity(
        app: Flask, client: FlaskClient, amira: TestUser, nadia: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    response = client.get(_url(testimony_id), headers=bearer(app, nadia))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    with app.app_context():
        pseudonym = db.session.get(StoredTestimony, testimony_id).pseudonym
    assert body["id"] == testimony_id and body["pseudonym"] == pseudonym
    assert body["status"] == "submitted" and body["language"] == "hy" and body["interviewer"] == "amira"
    assert body["erased"] is False and body["erased_at"] is None and body["interviewed_on"]
    [consent] = body["consents"]
    assert consent["number"] == 1 and consent["media"] == ["document", "photo"]
    assert consent["grants"] == [{"purpose": "documentation", "disclosure": "pseudonymous"},
                                 {"purpose": "un_mechanisms", "disclosure": "anonymous"}]
    assert body["withdrawals"] == [] and body["exports"] == []
    assert body["purposes_in_force"] == ["documentation", "un_mechanisms"]
    text = response.get_data(as_text=True)
    assert f.SENTINEL_NARRATIVE not in text and f.SENTINEL_NAME not in text
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
            AuditEvent.action == AuditAction.RECORD_VIEWED.value, AuditEvent.actor_id == nadia.id)) == 0


def test_a_withdrawal_for_a_purpose_is_recorded_audited_and_denies_that_use_at_once(
        app: Flask, client: FlaskClient, amira: TestUser, nadia: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    headers = bearer(app, nadia)
    response = client.post(f"{_url(testimony_id)}/withdrawals", headers=headers,
                           json={"purposes": ["un_mechanisms"], "received_how": "phone"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) == {"id", "at", "purposes", "received_how", "erasure"}
    assert body["purposes"] == ["un_mechanisms"] and body["received_how"] == "phone" and body["erasure"] is False
    with app.app_context():
        denied = consents.decide_use(testimony_id, Purpose.UN_MECHANISMS, Recipient("ohchr"))
        assert not denied.allowed and denied.reason == PolicyReason.WITHDRAWN_FOR_PURPOSE
        assert consents.documentation_allowed(testimony_id).allowed
        event = db.session.scalars(sa.select(AuditEvent).where(
            AuditEvent.action == AuditAction.CONSENT_WITHDRAWN.value)).one()
        assert event.actor_id == nadia.id and event.target_ids == [testimony_id]
        assert event.details == {"purposes": ["un_mechanisms"], "received_how": "phone", "erasure": False}
    after = client.get(_url(testimony_id), headers=headers).get_json()
    assert after["purposes_in_force"] == ["documentation"]
    assert [(w["purposes"], w["received_how"], w["recorded_by"]) for w in after["withdrawals"]] == [
        (["un_mechanisms"], "phone", "nadia")]

    whole = client.post(f"{_url(testimony_id)}/withdrawals", headers=headers, json={"received_how": "letter"})
    assert whole.status_code == 201 and whole.get_json()["purposes"] == []
    with app.app_context():
        assert not consents.documentation_allowed(testimony_id).allowed


def test_erasure_is_refused_through_the_api_and_nothing_changes(
        app: Flask, client: FlaskClient, amira: TestUser, nadia: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    response = client.post(f"{_url(testimony_id)}/withdrawals", headers=bearer(app, nadia),
                           json={"received_how": "phone", "erasure": True})
    assert response.status_code == 403 and response.mimetype == PROBLEM
    assert "fresh two-factor code" in response.get_json()["detail"]
    assert _withdrawals(app) == 0
    with app.app_context():
        assert db.session.get(StoredTestimony, testimony_id).data_key.destroyed_at is None


@pytest.mark.parametrize("payload, field, message", [
    ({"purposes": []}, "received_how", "Say how the request reached you."),
    ({"received_how": "pigeon"}, "received_how", "Say how the request reached you."),
    ({"purposes": ["no_such_purpose"], "received_how": "phone"}, "purposes",
     "Choose among the purposes the consent covers."),
    ({"purposes": ["media"], "received_how": "phone"}, "purposes", "Choose among the purposes the consent covers."),
])
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_input_is_a_422_naming_the_field_and_stores_nothing(
        app: Flask, client: FlaskClient, amira: TestUser, nadia: TestUser, payload: dict[str, Any], field: str,
        message: str) -> None:
    testimony_id = full_interview(app, amira)
    response = client.post(f"{_url(testimony_id)}/withdrawals", headers=bearer(app, nadia), json=payload)
    assert response.status_code == 422 and response.mimetype == PROBLEM
    assert response.get_json()["errors"]["json"][field] == [message]
    assert _withdrawals(app) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_unknown_fields_ids_roles_and_erased_records(
        app: Flask, client: FlaskClient, amira: TestUser, nadia: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    headers = bearer(app, nadia)
    misspelt = client.post(f"{_url(testimony_id)}/withdrawals", headers=headers,
                           json={"purpose": ["un_mechanisms"], "received_how": "phone"})
    assert misspelt.status_code == 422 and "purpose" in misspelt.get_json()["errors"]["json"]
    assert client.get(_url(999999), headers=headers).status_code == 404
    assert client.post(f"{_url(999999)}/withdrawals", headers=headers,
                       json={"received_how": "phone"}).status_code == 404
    interviewer = bearer(app, amira)
    assert client.get(_url(testimony_id), headers=interviewer).status_code == 403
    assert client.post(f"{_url(testimony_id)}/withdrawals", headers=interviewer,
                       json={"received_how": "phone"}).status_code == 403
    assert client.get(_url(testimony_id)).status_code == 401
    assert _withdrawals(app) == 0

    with app.app_context():
        consents.record_withdrawal(db.session.get(StoredTestimony, testimony_id), purposes=[], received_how="phone",
                                   erasure=True, actor=account(nadia), config=app.config)
        db.session.commit()
    erased = client.get(_url(testimony_id), headers=headers).get_json()
    assert erased["erased"] is True and erased["erased_at"] and erased["purposes_in_force"] == []
    again = client.post(f"{_url(testimony_id)}/withdrawals", headers=headers, json={"received_how": "phone"})
    assert again.status_code == 409 and "nothing left to withdraw" in again.get_json()["detail"]
    assert _withdrawals(app) == 1
