"""The reviewer's queue and record pages: only records the reviewer may open, never an identity, every open
audited."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from intake.core.access import assignments as access
from intake.core.audit.models import AuditEvent
from intake.core.db import db, utcnow
from intake.interviews import operations as ops
from intake.review import queries
from intake.testimonies.models import Testimony as StoredTestimony
from tests.conftest import Auth, TestUser
from tests.interviews import factories as f


@pytest.fixture
def people(create_user: Callable[..., TestUser]) -> dict[str, TestUser]:
    return {"amira": create_user("amira", ["interviewer"]), "rafael": create_user("rafael", ["reviewer"]),
            "sona": create_user("sona", ["coordinator"])}


def _assign(app: Flask, people: dict[str, TestUser], testimony_id: int) -> None:
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        access.assign(testimony, f.account(people["rafael"]), actor=f.account(people["sona"]))
        db.session.commit()


def _interview_of(app: Flask, user: TestUser, incident: ops.IncidentInput, *, key: str) -> int:
    """A submitted interview with one incident."""
    with app.app_context():
        actor = f.account(user)
        testimony = ops.start_interview(f.readiness(), f.consent(), actor=actor, config=app.config)
        ops.save_narrative(testimony, "what happened", declined=False, actor=actor, config=app.config)
        ops.add_incident(testimony, incident, actor=actor, config=app.config)
        ops.save_referral(testimony, f.referral(), actor=actor, config=app.config)
        assert ops.submit(testimony, idempotency_key=key, actor=actor, config=app.config) is True
        db.session.commit()
        return int(testimony.id)


def _pseudonym(app: Flask, testimony_id: int) -> str:
    with app.app_context():
        return str(db.session.get(StoredTestimony, testimony_id).pseudonym)


def _events(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)))


def test_the_queue_lists_only_assigned_records_and_nothing_sealed(
        app: Flask, client: FlaskClient, auth: Auth, people: dict[str, TestUser]) -> None:
    assigned = f.full_interview(app, people["amira"], key="a" * 24)
    unassigned = f.full_interview(app, people["amira"], key="b" * 24)
    _assign(app, people, assigned)
    auth.sign_in(people["rafael"])
    page = client.get("/review/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert _pseudonym(app, assigned) in html and _pseudonym(app, unassigned) not in html
    assert "Shelling" in html
    assert f.SENTINEL_NARRATIVE not in html and f.SENTINEL_NAME not in html
    assert _events(app, "record_viewed") == []


def test_filters_narrow_the_queue_and_bad_values_are_refused(
        app: Flask, client: FlaskClient, auth: Auth, people: dict[str, TestUser]) -> None:
    shelling = _interview_of(app, people["amira"], f.incident(), key="a" * 24)
    detention = _interview_of(app, people["amira"], f.incident(type="checkpoint_detention", date_precision="month",
                                                               date_start="2023-10", place_id="lachin-corridor"),
                              key="b" * 24)
    for testimony_id in (shelling, detention):
        _assign(app, people, testimony_id)
    auth.sign_in(people["rafael"])

    def listed(query: str) -> set[int]:
        page = client.get(f"/review/?{query}")
        assert page.status_code == 200, page.get_data(as_text=True)
        return {int(n) for n in re.findall(r'href="/review/records/(\d+)"', page.get_data(as_text=True))}

    assert listed("") == {shelling, detention}
    assert listed("incident_type=shelling") == {shelling}
    assert listed("month=2023-10") == {detention}
    assert listed("month=2023-10&incident_type=shelling") == set()
    assert listed("region=nagorno-karabakh&status=submitted&language=hy") >= {shelling}
    assert listed("language=ru") == set()

    refused = client.get("/review/?month=2023-13&region=mars")
    html = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert "Enter a month as year-month, for example 2023-09." in html
    assert "Choose one of the listed values." in html


def test_the_queue_pages_by_id_newest_first(app: Flask, client: FlaskClient, auth: Auth,
                                           people: dict[str, TestUser], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "PAGE_SIZE", 2)
    ids = [_interview_of(app, people["amira"], f.incident(), key=c * 24) for c in "abc"]
    for testimony_id in ids:
        _assign(app, people, testimony_id)
    auth.sign_in(people["rafael"])
    first = client.get("/review/").get_data(as_text=True)
    shown = [int(n) for n in re.findall(r'href="/review/records/(\d+)"', first)]
    assert shown == sorted(ids, reverse=True)[:2]
    older = re.search(r'href="(/review/\?before=\d+)"', first)
    assert older is not None
    second = client.get(older.group(1)).get_data(as_text=True)
    assert [int(n) for n in re.findall(r'href="/review/records/(\d+)"', second)] == [min(ids)]
    assert "Older records" not in second and "Newest records" in second
    assert client.get("/review/?before=abc").status_code == 400


def test_a_record_shows_the_testimony_without_the_identity_and_is_audited_once(
        app: Flask, client: FlaskClient, auth: Auth, people: dict[str, TestUser]) -> None:
    testimony_id = f.full_interview(app, people["amira"])
    _assign(app, people, testimony_id)
    auth.sign_in(people["rafael"])
    page = client.get(f"/review/records/{testimony_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f.SENTINEL_NARRATIVE in html and f.SENTINEL_NAME not in html
    assert "1980" not in html
    viewed = _events(app, "record_viewed")
    assert [(e.target_ids, e.details["parts"], e.actor_id) for e in viewed] == \
        [([testimony_id], ["attachments", "content", "notes"], people["rafael"].id)]


def test_an_unassigned_record_is_refused_and_the_refusal_audited(
        app: Flask, client: FlaskClient, auth: Auth, people: dict[str, TestUser]) -> None:
    testimony_id = f.full_interview(app, people["amira"])
    auth.sign_in(people["rafael"])
    page = client.get(f"/review/records/{testimony_id}")
    assert page.status_code == 403
    assert f.SENTINEL_NARRATIVE not in page.get_data(as_text=True)
    refused = _events(app, "record_access_refused")
    assert [(e.target_ids, e.details["why"]) for e in refused] == [([testimony_id], "not_assigned")]
    assert _events(app, "record_viewed") == []
    assert client.get("/review/records/999999").status_code == 404


@pytest.mark.parametrize("role", ["interviewer", "coordinator", "auditor", "admin", "legal"])
def test_other_roles_may_not_review(app: Flask, client: FlaskClient, auth: Auth, create_user: Callable[..., TestUser],
                                    people: dict[str, TestUser], role: str) -> None:
    testimony_id = f.full_interview(app, people["amira"])
    auth.sign_in(create_user("other", [role]))
    assert client.get("/review/").status_code == 403
    assert client.get(f"/review/records/{testimony_id}").status_code == 403
    assert f.SENTINEL_NARRATIVE not in client.get(f"/review/records/{testimony_id}").get_data(as_text=True)


def test_the_queue_follows_grants_and_the_team_policy(app: Flask, client: FlaskClient, auth: Auth,
                                                      people: dict[str, TestUser]) -> None:
    granted, revoked, of_team = (f.full_interview(app, people["amira"], key=c * 24) for c in "abc")
    with app.app_context():
        reviewer, coordinator = f.account(people["rafael"]), f.account(people["sona"])
        until = utcnow() + timedelta(days=7)
        for testimony_id in (granted, revoked):
            grant = access.grant_access(db.session.get(StoredTestimony, testimony_id), reviewer,
                                        reason="corroboration", expires_at=until, actor=coordinator)
        access.revoke_access(grant, reason="no longer needed", actor=coordinator)
        reviewer.team = f.account(people["amira"]).team = "north"
        db.session.commit()
    auth.sign_in(people["rafael"])

    def listed() -> set[int]:
        html = client.get("/review/").get_data(as_text=True)
        return {int(n) for n in re.findall(r'href="/review/records/(\d+)"', html)}

    assert listed() == {granted}
    app.config["REVIEW_ASSIGNMENT_POLICY"] = "team"
    assert listed() == {granted, revoked, of_team}
