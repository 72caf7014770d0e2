"""The interview's operations, as the web wizard and the API call them: what is stored, what is refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from intake.consents import operations as consents
from intake.consents.models import ConsentRecord, ConsentWithdrawal
from intake.core.access import AccessRefused, Part, open_record
from intake.core.audit.models import AuditEvent
from intake.core.db import db, utcnow
from intake.identities.models import Person
from intake.interviews import operations as ops
from intake.interviews.models import InterviewNotHeld
from intake.testimonies.models import Incident
from intake.testimonies.models import Testimony as StoredTestimony
from tests.conftest import TestUser
from tests.interviews import factories as f

KEY = "k" * 24


@pytest.fixture
def amira(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("amira", ["interviewer"])


def test_a_whole_interview_is_stored_sealed_with_its_consent_and_reads_back_through_access(
        app: Flask, amira: TestUser) -> None:
    testimony_id = f.full_interview(app, amira, key=KEY)
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        assert testimony.status == "submitted" and testimony.submitted_at is not None
        assert [i.type for i in testimony.incidents] == ["shelling", "checkpoint_detention"]
        assert [i.month for i in testimony.incidents] == ["2023-09", "2023-10"]
        assert f.SENTINEL_NARRATIVE.encode() not in (testimony.narrative or b"")
        view = open_record(f.account(amira), testimony, {Part.CONTENT, Part.IDENTITY}, config=app.config)
        db.session.commit()
        assert view.narrative == f.SENTINEL_NARRATIVE
        assert view.identity == {"name": f.SENTINEL_NAME, "birth_year": 1980}
        assert view.incidents[1].details["perpetrators"] is None
        assert view.incidents[1].details["declined"] == ["perpetrators"]
        assert view.details["referral"]["services"] == ["psychosocial"]
        assert view.consent is not None and view.consent.grants["documentation"] == "pseudonymous"
        last = db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
        assert last.action == "record_viewed" and last.details["parts"] == ["content", "identity"]


def test_a_retried_submit_with_the_same_key_changes_nothing_and_another_key_is_refused(
        app: Flask, amira: TestUser) -> None:
    testimony_id = f.full_interview(app, amira, key=KEY)
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        revision = testimony.revision
        assert ops.submit(testimony, idempotency_key=KEY, actor=f.account(amira), config=app.config) is False
        assert testimony.revision == revision
        with pytest.raises(ops.Locked):
            ops.submit(testimony, idempotency_key="z" * 24, actor=f.account(amira), config=app.config)


def test_unready_interviews_and_refusals_store_nothing_about_the_person(app: Flask, amira: TestUser) -> None:
    with app.app_context():
        actor = f.account(amira)
        with pytest.raises(ops.NotReady) as not_ready:
            ops.start_interview(f.readiness(no_observers=False, risk=ops.Risk.HIGH), f.consent(), actor=actor,
                                config=app.config)
        assert not_ready.value.reasons == ["observers_present", "risk_unmitigated"]
        ops.record_not_held(stage="readiness", reasons=not_ready.value.reasons, actor=actor)
        db.session.commit()
        with pytest.raises(ops.InputRefused) as refused:
            ops.start_interview(f.readiness(), f.consent(grants={}), actor=actor, config=app.config)
        assert "grants" in refused.value.problems
        db.session.rollback()
        ops.record_not_held(stage="consent", reasons=["consent_refused"], actor=actor)
        db.session.commit()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Person)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(StoredTestimony)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ConsentRecord)) == 0
        rows = db.session.scalars(sa.select(InterviewNotHeld).order_by(InterviewNotHeld.id)).all()
        assert [(r.stage, r.reasons) for r in rows] == [
            ("readiness", ["observers_present", "risk_unmitigated"]), ("consent", ["consent_refused"])]


@pytest.mark.parametrize("changes, field", [
    ({"type": "no_such_type"}, "type"),
    ({"date_start": "2999-01-01"}, "date_start"),
    ({"date_precision": "range", "date_start": "2023-09-20", "date_end": "2023-09-19"}, "date_end"),
    ({"date_precision": "month", "date_start": "2023-13"}, "date_start"),
    ({"place_id": "atlantis"}, "place_id"),
    ({"type": "other", "description": ""}, "description"),
    ({"source_relation": "dreamt"}, "source_relation"),
])
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_bad_incident_is_refused_on_its_field_and_nothing_changes(
        app: Flask, amira: TestUser, changes: dict[str, Any], field: str) -> None:
    with app.app_context():
        actor = f.account(amira)
        testimony = ops.start_interview(f.readiness(), f.consent(), actor=actor, config=app.config)
        db.session.commit()
        revision = testimony.revision
        with pytest.raises(ops.InputRefused) as refused:
            ops.add_incident(testimony, f.incident(**changes), actor=actor, config=app.config, revision=revision)
        assert field in refused.value.problems
        db.session.rollback()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Incident)) == 0
        assert db.session.get(StoredTestimony, testimony.id).revision == revision


def test_a_form_from_an_older_revision_is_refused(app: Flask, amira: TestUser) -> None:
    with app.app_context():
        actor = f.account(amira)
        testimony = ops.start_interview(f.readiness(), f.consent(), actor=actor, config=app.config)
        db.session.commit()
        seen = testimony.revision
        ops.save_narrative(testimony, "first tab", declined=False, actor=actor, config=app.config, revision=seen)
        db.session.commit()
        with pytest.raises(ops.StaleDraft):
            ops.save_narrative(testimony, "second tab", declined=False, actor=actor, config=app.config,
                               revision=seen)


def test_the_correction_window_locks_the_record_for_its_interviewer(app: Flask, amira: TestUser) -> None:
    testimony_id = f.full_interview(app, amira, key=KEY)
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        testimony.submitted_at = utcnow() - timedelta(hours=73)
        db.session.commit()
        with pytest.raises(ops.Locked):
            ops.save_narrative(testimony, "late", declined=False, actor=f.account(amira), config=app.config)
        with pytest.raises(AccessRefused):
            open_record(f.account(amira), testimony, {Part.CONTENT}, config=app.config)
        db.session.commit()
        last = db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
        assert last.action == "record_access_refused" and last.details["why"] == "correction_window_closed"


def test_withdrawal_with_erasure_shreds_identity_and_content_and_denies_the_next_read(
        app: Flask, amira: TestUser) -> None:
    testimony_id = f.full_interview(app, amira, key=KEY)
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        consents.record_withdrawal(testimony, purposes=[], received_how="phone", erasure=True,
                                   actor=f.account(amira), config=app.config)
        db.session.commit()
        testimony = db.session.get(StoredTestimony, testimony_id)
        person = db.session.scalar(sa.select(Person).where(Person.pseudonym == testimony.pseudonym))
        assert testimony.data_key.destroyed_at is not None and person.data_key.destroyed_at is not None
        assert testimony.narrative is None and all(i.details is None for i in testimony.incidents)
        assert (testimony.idempotency_key, testimony.submission_key, testimony.submission_digest) == (None,) * 3
        assert person.identity is None and person.name_tag is None
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ConsentWithdrawal)) == 1
        with pytest.raises(AccessRefused):
            open_record(f.account(amira), testimony, {Part.CONTENT}, config=app.config)
