"""The access decision for reviewers: submitted testimony assigned, granted or (by policy) of their team; content
and attachments only, never an identity; and every open, or refusal, in the audit log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from intake.consents import operations as consents
from intake.core.access import ALL_PARTS, AccessRefused, Part, Reason, decide, open_record
from intake.core.access import assignments as access
from intake.core.audit.models import AuditEvent
from intake.core.db import db, utcnow
from intake.interviews import operations as ops
from intake.testimonies.models import Testimony as StoredTestimony
from tests.conftest import TestUser
from tests.interviews import factories as f


@pytest.fixture
def people(create_user: Callable[..., TestUser]) -> dict[str, TestUser]:
    return {"amira": create_user("amira", ["interviewer"]), "rafael": create_user("rafael", ["reviewer"]),
            "sona": create_user("sona", ["coordinator"])}


def _decision(app: Flask, who: TestUser, testimony_id: int, **config: Any) -> Any:
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        return decide(f.account(who), testimony, ALL_PARTS, config={**app.config, **config})


def test_a_reviewer_sees_only_what_is_assigned_and_never_an_identity(app: Flask, people: dict[str, TestUser]) -> None:
    testimony_id = f.full_interview(app, people["amira"])
    assert _decision(app, people["rafael"], testimony_id).reason is Reason.NOT_ASSIGNED
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        access.assign(testimony, f.account(people["rafael"]), actor=f.account(people["sona"]))
        db.session.commit()
    decision = _decision(app, people["rafael"], testimony_id)
    assert decision.allowed and decision.parts == {Part.CONTENT, Part.ATTACHMENTS, Part.NOTES}
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        view = open_record(f.account(people["rafael"]), testimony, ALL_PARTS, config=app.config, purpose="review")
        db.session.commit()
        assert view.narrative == f.SENTINEL_NARRATIVE and view.identity is None
        assert view.consent is not None and view.consent.particulars is None
        last = db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
        assert (last.action, last.details["parts"]) == ("record_viewed", ["attachments", "content", "notes"])
        assert f.SENTINEL_NAME not in repr(view)


def test_drafts_withdrawn_and_erased_records_are_closed_to_reviewers(app: Flask, people: dict[str, TestUser]) -> None:
    with app.app_context():
        interviewer = f.account(people["amira"])
        draft = ops.start_interview(f.readiness(), f.consent(), actor=interviewer, config=app.config)
        access.assign(draft, f.account(people["rafael"]), actor=f.account(people["sona"]))
        db.session.commit()
        draft_id = draft.id
    assert _decision(app, people["rafael"], draft_id).reason is Reason.NOT_SUBMITTED
    testimony_id = f.full_interview(app, people["amira"])
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        access.assign(testimony, f.account(people["rafael"]), actor=f.account(people["sona"]))
        consents.record_withdrawal(testimony, purposes=[], received_how="phone", erasure=False,
                                   actor=f.account(people["sona"]), config=app.config)
        db.session.commit()
    assert _decision(app, people["rafael"], testimony_id).reason is Reason.CONSENT_WITHDRAWN
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        with pytest.raises(AccessRefused):
            open_record(f.account(people["rafael"]), testimony, {Part.CONTENT}, config=app.config)
        db.session.commit()
        last = db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
        assert (last.action, last.details["why"]) == ("record_access_refused", "consent_withdrawn")


def test_a_grant_opens_a_record_until_it_expires_or_is_revoked(app: Flask, people: dict[str, TestUser]) -> None:
    testimony_id = f.full_interview(app, people["amira"])
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        coordinator, reviewer = f.account(people["sona"]), f.account(people["rafael"])
        with pytest.raises(consents.InputRefused) as refused:
            access.grant_access(testimony, reviewer, reason="  ", expires_at=utcnow() + timedelta(days=1),
                                actor=coordinator)
        assert "reason" in refused.value.problems
        with pytest.raises(consents.InputRefused):
            access.grant_access(testimony, reviewer, reason="corroboration", expires_at=utcnow() - timedelta(1),
                                actor=coordinator)
        with pytest.raises(consents.InputRefused):
            access.grant_access(testimony, coordinator, reason="corroboration",
                                expires_at=utcnow() + timedelta(days=1), actor=coordinator)
        grant = access.grant_access(testimony, reviewer, reason="corroboration of the shelling of 19 September",
                                    expires_at=utcnow() + timedelta(days=1), actor=coordinator)
        db.session.commit()
        grant_id = grant.id
    assert _decision(app, people["rafael"], testimony_id).allowed
    with app.app_context():
        from intake.core.access.models import AccessGrant

        grant = db.session.get(AccessGrant, grant_id)
        grant.expires_at = utcnow() - timedelta(seconds=1)
        grant.granted_at = utcnow() - timedelta(days=2)
        db.session.commit()
    assert _decision(app, people["rafael"], testimony_id).reason is Reason.NOT_ASSIGNED
    with app.app_context():
        grant = db.session.get(AccessGrant, grant_id)
        grant.expires_at = utcnow() + timedelta(days=1)
        access.revoke_access(grant, reason="the corroboration is done", actor=f.account(people["sona"]))
        db.session.commit()
        actions = list(db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.seq)))
        assert actions.count("access_granted") == 1 and actions.count("access_revoked") == 1
    assert _decision(app, people["rafael"], testimony_id).reason is Reason.NOT_ASSIGNED


def test_the_team_policy_opens_the_teams_submissions(app: Flask, people: dict[str, TestUser]) -> None:
    testimony_id = f.full_interview(app, people["amira"])
    assert _decision(app, people["rafael"], testimony_id, REVIEW_ASSIGNMENT_POLICY="team").reason \
        is Reason.NOT_ASSIGNED
    with app.app_context():
        f.account(people["amira"]).team = "Goris team"
        f.account(people["rafael"]).team = "Goris team"
        db.session.commit()
    assert _decision(app, people["rafael"], testimony_id, REVIEW_ASSIGNMENT_POLICY="team").allowed
    assert not _decision(app, people["rafael"], testimony_id).allowed  # the default policy: assignments only


def test_other_roles_open_nothing(app: Flask, people: dict[str, TestUser]) -> None:
    testimony_id = f.full_interview(app, people["amira"])
    assert _decision(app, people["sona"], testimony_id).reason is Reason.NO_PERMISSION


def test_a_reviewer_learns_nothing_of_the_state_of_a_record_not_theirs(
        app: Flask, people: dict[str, TestUser]) -> None:
    testimony_id = f.full_interview(app, people["amira"])
    with app.app_context():
        consents.record_withdrawal(db.session.get(StoredTestimony, testimony_id), purposes=[],
                                   received_how="phone", erasure=True, actor=f.account(people["sona"]),
                                   config=app.config)
        db.session.commit()
    assert _decision(app, people["rafael"], testimony_id).reason is Reason.NOT_ASSIGNED
