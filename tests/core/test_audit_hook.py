"""The audit hook: events join the caller's transaction, carry no secrets, and the table refuses changes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask

from intake.core.audit import AuditAction, AuditEvent, record_event
from intake.core.db import db


def test_an_event_commits_or_rolls_back_with_the_change_it_records(app: Flask) -> None:
    with app.app_context():
        record_event(AuditAction.ACCESS_DENIED, details={"endpoint": "x"})
        db.session.rollback()
        assert db.session.scalar(sa.select(sa.func.count(AuditEvent.seq))) == 0
        record_event(AuditAction.ACCESS_DENIED, details={"endpoint": "x"})
        db.session.commit()
        assert db.session.scalar(sa.select(sa.func.count(AuditEvent.seq))) == 1


@pytest.mark.parametrize("key", ["password", "code", "token", "Secret", "narrative"])
def test_details_that_could_carry_secrets_or_content_are_refused(app: Flask, key: str) -> None:
    with app.app_context(), pytest.raises(ValueError):
        record_event(AuditAction.LOGIN_FAILED, details={key: "anything"})


@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET action = 'login'",
    "DELETE FROM audit_events",
])
def test_the_database_refuses_to_change_or_delete_events(app: Flask, statement: str) -> None:
    with app.app_context():
        record_event(AuditAction.LOGIN_FAILED, details={"failures": 1})
        db.session.commit()
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            db.session.execute(sa.text(statement))
            db.session.commit()
        db.session.rollback()
        assert db.session.scalar(sa.select(AuditEvent.action)) == "login_failed"
