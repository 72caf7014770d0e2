"""`record_withdrawal` as every caller meets it: refusals store nothing, and erasing twice shreds once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask

from intake.consents import operations as consents
from intake.consents.models import ConsentWithdrawal
from intake.core.audit import AuditAction
from intake.core.audit.models import AuditEvent
from intake.core.db import db
from intake.testimonies.models import Testimony as StoredTestimony
from tests.conftest import TestUser
from tests.withdrawals import account, full_interview


@pytest.fixture
def amira(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("amira", ["interviewer"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_erasure_together_with_a_purpose_list_is_refused_on_the_erasure_field_and_stores_nothing(
        app: Flask, amira: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        with pytest.raises(consents.InputRefused) as refused:
            consents.record_withdrawal(testimony, purposes=["un_mechanisms"], received_how="phone", erasure=True,
                                       actor=account(amira), config=app.config)
        assert [str(m) for m in refused.value.problems["erasure"]] == [
            "Erasure withdraws consent for everything: leave the purposes unticked."]
        db.session.rollback()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ConsentWithdrawal)) == 0
        assert db.session.get(StoredTestimony, testimony_id).data_key.destroyed_at is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_second_erasure_does_not_shred_again_or_move_the_time_of_the_first(app: Flask, amira: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        consents.record_withdrawal(testimony, purposes=[], received_how="phone", erasure=True,
                                   actor=account(amira), config=app.config)
        db.session.commit()
        first = testimony.data_key.destroyed_at
        assert first is not None
        testimony.data_key.destroyed_at = first - timedelta(days=1)  # as if erased yesterday
        db.session.commit()
        consents.record_withdrawal(db.session.get(StoredTestimony, testimony_id), purposes=[], received_how="letter",
                                   erasure=True, actor=account(amira), config=app.config)
        db.session.commit()
        assert db.session.get(StoredTestimony, testimony_id).data_key.destroyed_at == first - timedelta(days=1)
        shredded = db.session.scalars(sa.select(AuditEvent).where(
            AuditEvent.action == AuditAction.RECORD_SHREDDED.value)).all()
        assert sorted(e.target_type for e in shredded) == ["person", "testimony"]
