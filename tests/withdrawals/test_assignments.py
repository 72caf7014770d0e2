"""A coordinator assigns reviewers to a record and grants or revokes access to it from the record page: what the
reviewer can then open, what is audited, and what is refused."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from intake.core.access import Part, decide
from intake.core.access.models import AccessGrant, Assignment
from intake.core.audit import AuditAction
from intake.core.audit.models import AuditEvent
from intake.core.db import db
from intake.testimonies.models import Testimony as StoredTestimony
from tests.conftest import Auth, TestUser, csrf_token, post_form
from tests.interviews import factories as f
from tests.withdrawals import account, full_interview


@pytest.fixture
def amira(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("amira", ["interviewer"])


@pytest.fixture
def nadia(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("nadia", ["coordinator"])


@pytest.fixture
def rustam(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("rustam", ["reviewer"])


def _text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def _error_of(page: str, field: str) -> str:
    found = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', page)
    return found.group(1) if found else ""


def _record(testimony_id: int) -> str:
    return f"/coordination/records/{testimony_id}"


def _events(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)
                                       .order_by(AuditEvent.seq)))


def _count(app: Flask, model: Any) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def _may_open(app: Flask, user: TestUser, testimony_id: int) -> bool:
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        return decide(account(user), testimony, {Part.CONTENT}, config=app.config).allowed


def _in_days(days: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


def _grant_data(reviewer: TestUser, **changes: str) -> dict[str, str]:
    return {"grant-account": str(reviewer.id), "grant-reason": "Second reading of the incident list",
            "grant-expires_at": _in_days(14), **changes}


def test_assigning_a_reviewer_lets_them_open_the_record_and_unassigning_takes_it_back(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser, rustam: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    auth.sign_in(nadia)
    page = _text(client.get(_record(testimony_id)))
    assert "Reviewers" in page and "No reviewer is assigned to this record." in page
    assert f'<option value="{rustam.id}">rustam</option>' in page
    assert f'value="{amira.id}"' not in page  # only reviewers are offered
    assert f.SENTINEL_NARRATIVE not in page and f.SENTINEL_NAME not in page
    assert not _may_open(app, rustam, testimony_id)

    done = post_form(client, f"{_record(testimony_id)}/reviewers", {"assign-reviewer": str(rustam.id)})
    assert done.status_code == 303 and done.headers["Location"] == _record(testimony_id)
    assert _may_open(app, rustam, testimony_id)
    [assigned] = _events(app, AuditAction.RECORD_ASSIGNED)
    assert assigned.actor_id == nadia.id and assigned.target_ids == [testimony_id]
    assert assigned.details == {"reviewer": rustam.id}
    page = _text(client.get(_record(testimony_id)))
    assert "assigned to rustam" in page  # the flash
    assert "No reviewer is assigned to this record." not in page
    assert f"/reviewers/{rustam.id}/unassign" in page
    assert f.SENTINEL_NARRATIVE not in page and f.SENTINEL_NAME not in page

    undone = post_form(client, f"{_record(testimony_id)}/reviewers/{rustam.id}/unassign", {},
                       token_from=_record(testimony_id))
    assert undone.status_code == 303 and undone.headers["Location"] == _record(testimony_id)
    assert not _may_open(app, rustam, testimony_id)
    assert _count(app, Assignment) == 0
    [unassigned] = _events(app, AuditAction.RECORD_UNASSIGNED)
    assert unassigned.actor_id == nadia.id and unassigned.details == {"reviewer": rustam.id}
    assert "No reviewer is assigned to this record." in _text(client.get(_record(testimony_id)))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_only_an_active_reviewer_can_be_assigned(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser, rustam: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    auth.sign_in(nadia)
    refused = post_form(client, f"{_record(testimony_id)}/reviewers", {"assign-reviewer": str(amira.id)})
    assert refused.status_code == 422
    assert _error_of(_text(refused), "assign-reviewer") == "Choose an active reviewer."
    assert _count(app, Assignment) == 0 and _events(app, AuditAction.RECORD_ASSIGNED) == []


def test_granting_access_needs_a_fresh_code_and_revoking_ends_it(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser, rustam: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    grants = f"{_record(testimony_id)}/grants"
    auth.sign_in(nadia)
    page = _text(client.get(_record(testimony_id)))
    assert "Access grants" in page and "No access grant is in force for this record." in page
    assert "Do not put names or other identifying details in it." in page

    # Without a fresh two-factor code: sent to step-up, back to the record page after, and nothing stored.
    token = csrf_token(client, _record(testimony_id))
    unstepped = client.post(grants, data={"csrf_token": token, "next": _record(testimony_id),
                                          **_grant_data(rustam)})
    assert unstepped.status_code == 302
    assert unstepped.headers["Location"] == f"/step-up?next={_record(testimony_id)}"
    assert _count(app, AccessGrant) == 0 and _events(app, AuditAction.ACCESS_GRANTED) == []
    assert not _may_open(app, rustam, testimony_id)

    auth.step_up(nadia)
    done = post_form(client, grants, _grant_data(rustam), token_from=_record(testimony_id))
    assert done.status_code == 303 and done.headers["Location"] == _record(testimony_id)
    assert _may_open(app, rustam, testimony_id)
    [granted] = _events(app, AuditAction.ACCESS_GRANTED)
    assert granted.actor_id == nadia.id and granted.target_ids == [testimony_id]
    assert granted.reason == "Second reading of the incident list"
    with app.app_context():
        [grant] = db.session.scalars(sa.select(AccessGrant)).all()
        grant_id = grant.id
        assert grant.account_id == rustam.id and grant.granted_by_id == nadia.id
        assert grant.expires_at.date().isoformat() == _in_days(14)
    page = _text(client.get(_record(testimony_id)))
    assert "may review record" in page  # the flash
    assert "Second reading of the incident list" in page and _in_days(14) in page
    assert f.SENTINEL_NARRATIVE not in page and f.SENTINEL_NAME not in page

    revoke = f"{_record(testimony_id)}/grants/{grant_id}/revoke"
    no_reason = post_form(client, revoke, {f"revoke-{grant_id}-reason": "  "}, token_from=_record(testimony_id))
    assert no_reason.status_code == 422
    assert "Give the reason" in _error_of(_text(no_reason), f"revoke-{grant_id}-reason")
    assert _may_open(app, rustam, testimony_id)

    ended = post_form(client, revoke, {f"revoke-{grant_id}-reason": "Second reading finished"},
                      token_from=_record(testimony_id))
    assert ended.status_code == 303 and ended.headers["Location"] == _record(testimony_id)
    assert not _may_open(app, rustam, testimony_id)
    [revoked] = _events(app, AuditAction.ACCESS_REVOKED)
    assert revoked.actor_id == nadia.id and revoked.reason == "Second reading finished"
    assert "No access grant is in force for this record." in _text(client.get(_record(testimony_id)))


@pytest.mark.parametrize("changes, field, message", [
    ({"grant-reason": "   "}, "grant-reason", "Give the reason for this access. Do not put names or other "
                                                "identifying details in it: it is kept in the audit log."),
    ({"grant-reason": ""}, "grant-reason", "Give the reason for this access. Do not put names or other "
                                           "identifying details in it: it is kept in the audit log."),
    ({"grant-expires_at": _in_days(-1)}, "grant-expires_at",
     "The access must end in the future: choose a date after today."),
    ({"grant-expires_at": _in_days(0)}, "grant-expires_at",
     "The access must end in the future: choose a date after today."),
    ({"grant-expires_at": "next week"}, "grant-expires_at", "Enter the date the access ends, as YYYY-MM-DD."),
    ({"grant-expires_at": ""}, "grant-expires_at", "Enter the date the access ends, as YYYY-MM-DD."),
    ({"grant-account": ""}, "grant-account", "Choose an active reviewer."),
])
def test_a_grant_without_a_reason_or_a_future_date_is_refused_next_to_its_field(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser, rustam: TestUser,
        changes: dict[str, str], field: str, message: str) -> None:
    testimony_id = full_interview(app, amira)
    auth.sign_in(nadia)
    auth.step_up(nadia)
    refused = post_form(client, f"{_record(testimony_id)}/grants", _grant_data(rustam, **changes),
                        token_from=_record(testimony_id))
    assert refused.status_code == 422
    page = _text(refused)
    assert _error_of(page, field) == message
    assert f'href="#{field}"' in page
    assert _count(app, AccessGrant) == 0 and _events(app, AuditAction.ACCESS_GRANTED) == []
    assert not _may_open(app, rustam, testimony_id)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_changes_without_the_csrf_token_are_refused(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser, rustam: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    auth.sign_in(nadia)
    auth.step_up(nadia)
    assert client.post(f"{_record(testimony_id)}/reviewers",
                       data={"assign-reviewer": str(rustam.id)}).status_code == 400
    assert client.post(f"{_record(testimony_id)}/reviewers", data={"assign-reviewer": str(rustam.id),
                                                                   "csrf_token": "forged"}).status_code == 400
    assert client.post(f"{_record(testimony_id)}/grants", data=_grant_data(rustam)).status_code == 400
    assert _count(app, Assignment) == 0 and _count(app, AccessGrant) == 0

    assert post_form(client, f"{_record(testimony_id)}/reviewers", {"assign-reviewer": str(rustam.id)}
                     ).status_code == 303
    assert client.post(f"{_record(testimony_id)}/reviewers/{rustam.id}/unassign").status_code == 400
    assert _count(app, Assignment) == 1
    assert post_form(client, f"{_record(testimony_id)}/grants", _grant_data(rustam),
                     token_from=_record(testimony_id)).status_code == 303
    with app.app_context():
        grant_id = db.session.scalars(sa.select(AccessGrant.id)).one()
    assert client.post(f"{_record(testimony_id)}/grants/{grant_id}/revoke",
                       data={f"revoke-{grant_id}-reason": "done"}).status_code == 400
    assert _may_open(app, rustam, testimony_id)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_one_but_a_coordinator_may_assign_or_grant(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser, rustam: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    for user in (amira, rustam):
        auth.sign_in(user)
        auth.step_up(user)
        assert post_form(client, f"{_record(testimony_id)}/reviewers", {"assign-reviewer": str(rustam.id)},
                         token_from="/").status_code == 403
        assert post_form(client, f"{_record(testimony_id)}/grants", _grant_data(rustam),
                         token_from="/").status_code == 403
        assert post_form(client, f"{_record(testimony_id)}/reviewers/{rustam.id}/unassign", {},
                         token_from="/").status_code == 403
        assert post_form(client, f"{_record(testimony_id)}/grants/1/revoke", {"revoke-1-reason": "x"},
                         token_from="/").status_code == 403
        auth.sign_out()
    assert _count(app, Assignment) == 0 and _count(app, AccessGrant) == 0
    assert not _may_open(app, rustam, testimony_id)
    auth.sign_in(nadia)
    assert post_form(client, f"{_record(testimony_id)}/grants/999999/revoke", {"revoke-999999-reason": "x"},
                     token_from=_record(testimony_id)).status_code == 404
