"""The retention schedule: `intake retention run` shreds what expired, exactly once, with a disposal record that
names the rule and the method and carries no content; what is fresh, held by a case or under a rule set to 0 stays
readable; a dry run changes nothing; one record that cannot be disposed of costs only itself."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from config import ConfigError, load_settings
from intake.cases.models import Case, CaseRecord
from intake.consents import operations as consents
from intake.consents.models import ConsentRecord, ConsentWithdrawal
from intake.core.audit import AuditAction
from intake.core.audit import service as audit_service
from intake.core.audit.models import AuditEvent, format_time
from intake.core.crypto.fields import Tombstone
from intake.core.db import db, utcnow
from intake.identities.models import Person
from intake.identities.operations import read_identity
from intake.interviews import operations as interviews
from intake.retention import operations as retention
from intake.retention.cli import retention_group
from intake.retention.runner import run
from intake.testimonies.models import Testimony as StoredTestimony
from intake.testimonies.operations import read_attachment_details, read_narrative
from tests.conftest import TestUser
from tests.interviews import factories as f

# Every string planted in a record: none may appear in what the audit log says about its disposal.
PLANTED = [f.SENTINEL_NARRATIVE, f.SENTINEL_FILENAME, *f.IDENTITY_SENTINELS.values(), *f.CONSENT_SENTINELS.values()]


@pytest.fixture
def amira(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("amira", ["interviewer"])


@pytest.fixture
def with_cli(app: Flask) -> Flask:
    app.cli.add_command(retention_group)
    return app


class Planter:
    """Records of every category, planted through the interview's operations and then aged by setting their times."""

    def __init__(self, app: Flask, user: TestUser) -> None:
        self.app, self.user, self.count = app, user, 0
        self.times: dict[int, datetime] = {}  # when each record's period began, as planted

    def _key(self) -> str:
        self.count += 1
        return f"retention-key-{self.count:04d}"

    def draft(self, *, changed_days_ago: float) -> int:
        testimony_id = f.planted_interview(self.app, self.user, key=self._key(), submit=False)
        self.times[testimony_id] = utcnow() - timedelta(days=changed_days_ago)
        self._set(testimony_id, updated_at=self.times[testimony_id])
        return testimony_id

    def submitted(self, *, days_ago: float = 1) -> int:
        testimony_id = f.planted_interview(self.app, self.user, key=self._key())
        moment = utcnow() - timedelta(days=days_ago)
        self._set(testimony_id, submitted_at=moment, updated_at=moment)
        return testimony_id

    def withdrawn(self, *, days_ago: float, purposes: tuple[str, ...] = (), erasure: bool = False) -> int:
        testimony_id = self.submitted(days_ago=days_ago + 10)
        self.times[testimony_id] = utcnow() - timedelta(days=days_ago)
        with self.app.app_context():
            consents.record_withdrawal(db.session.get(StoredTestimony, testimony_id), purposes=list(purposes),
                                       received_how="phone", erasure=erasure, actor=f.account(self.user),
                                       config=self.app.config)
            db.session.execute(sa.update(ConsentWithdrawal).where(ConsentWithdrawal.testimony_id == testimony_id)
                               .values(at=self.times[testimony_id]))
            db.session.commit()
        return testimony_id

    def review_passed(self, *, days_ago: int) -> int:
        testimony_id = self.submitted(days_ago=days_ago + 30)
        with self.app.app_context():
            db.session.execute(sa.update(ConsentRecord).where(ConsentRecord.testimony_id == testimony_id)
                               .values(review_date=utcnow().date() - timedelta(days=days_ago)))
            db.session.commit()
        return testimony_id

    def in_case(self, testimony_id: int) -> None:
        with self.app.app_context():
            case = Case(reference=f"LC-{testimony_id}", title="Shelling of Stepanakert, September 2023")
            db.session.add(case)
            db.session.flush()
            db.session.add(CaseRecord(case_id=case.id, testimony_id=testimony_id))
            db.session.commit()

    def _set(self, testimony_id: int, **values: Any) -> None:
        with self.app.app_context():
            db.session.execute(sa.update(StoredTestimony).where(StoredTestimony.id == testimony_id).values(**values))
            db.session.commit()


@pytest.fixture
def plant(app: Flask, amira: TestUser) -> Planter:
    return Planter(app, amira)


def state(app: Flask, testimony_id: int) -> dict[str, bool]:
    """Which parts of a record can still be read, as a reader of it would find them."""
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        person = db.session.scalar(sa.select(Person).where(Person.pseudonym == testimony.pseudonym))
        found = {
            "narrative": read_narrative(testimony) == f.SENTINEL_NARRATIVE,
            "identity": isinstance(identity := read_identity(person), dict) and identity["name"] == f.SENTINEL_NAME,
            "attachment": all(isinstance(read_attachment_details(a), dict) for a in testimony.attachments),
        }
        if not any(found.values()):
            assert isinstance(read_narrative(testimony), Tombstone)
            assert isinstance(read_identity(person), Tombstone)
            assert all(isinstance(read_attachment_details(a), Tombstone) for a in testimony.attachments)
        db.session.rollback()
        return found


READABLE = {"narrative": True, "identity": True, "attachment": True}
SHREDDED = {"narrative": False, "identity": False, "attachment": False}


def events(app: Flask, action: AuditAction) -> list[AuditEvent]:
    with app.app_context():
        found = list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action.value)
                                        .order_by(AuditEvent.seq)))
        db.session.expunge_all()
        return found


def disposals_of(app: Flask) -> dict[int, list[AuditEvent]]:
    by_record: dict[int, list[AuditEvent]] = {}
    for event in events(app, AuditAction.RETENTION_DISPOSED):
        assert event.target_type == "testimony" and len(event.target_ids) == 1
        by_record.setdefault(int(event.target_ids[0]), []).append(event)
    return by_record


def audit_verifies(app: Flask) -> bool:
    with app.app_context():
        return audit_service.verify().ok


def test_run_shreds_exactly_what_expired_records_each_disposal_once_and_a_second_run_finds_nothing(
        app: Flask, plant: Planter) -> None:
    old_draft = plant.draft(changed_days_ago=31)
    fresh_draft = plant.draft(changed_days_ago=29)
    old_withdrawal = plant.withdrawn(days_ago=91)
    plant.in_case(old_withdrawal)  # a case never holds a record against the survivor's withdrawal
    fresh_withdrawal = plant.withdrawn(days_ago=89)
    other_purpose_withdrawn = plant.withdrawn(days_ago=400, purposes=("un_mechanisms",))
    old_submission = plant.submitted(days_ago=3 * 365)  # RETENTION_TESTIMONY_DAYS is 0: kept until someone acts
    erased = plant.withdrawn(days_ago=400, erasure=True)

    with app.app_context():
        report = run(app.config)
    assert report.ok and not report.held and not report.skipped
    assert sorted((d.testimony_id, d.category) for d in report.disposed) == sorted(
        [(old_withdrawal, "withdrawn"), (old_draft, "draft")])

    for shredded in (old_draft, old_withdrawal):
        assert state(app, shredded) == SHREDDED
    for kept in (fresh_draft, fresh_withdrawal, other_purpose_withdrawn, old_submission):
        assert state(app, kept) == READABLE

    recorded = disposals_of(app)
    assert sorted(recorded) == sorted([old_draft, old_withdrawal])
    (draft_event,) = recorded[old_draft]
    (withdrawal_event,) = recorded[old_withdrawal]
    assert draft_event.actor_id is None
    assert draft_event.reason == "RETENTION_DRAFT_DAYS=30: an interview never submitted and not changed for 30 days"
    assert draft_event.details["category"] == "draft"
    assert draft_event.details["rule"] == "RETENTION_DRAFT_DAYS"
    assert draft_event.details["days"] == 30
    assert draft_event.details["method"] == "crypto_shred"
    assert draft_event.details["parts"] == ["testimony", "identity"]
    assert draft_event.details["attachments"] == 1
    assert withdrawal_event.reason.startswith("RETENTION_WITHDRAWN_DAYS=90: ")
    assert withdrawal_event.details["rule"] == "RETENTION_WITHDRAWN_DAYS"
    assert draft_event.details["expired_at"] == format_time(plant.times[old_draft] + timedelta(days=30))
    assert withdrawal_event.details["expired_at"] == format_time(plant.times[old_withdrawal] + timedelta(days=90))
    for event in (draft_event, withdrawal_event):
        said = json.dumps({"reason": event.reason, "details": event.details}, ensure_ascii=False)
        assert not [planted for planted in PLANTED if planted in said]

    # The shredding wrote its own events too, under the same rule; the erased record was not shredded again.
    shred_events = [e for e in events(app, AuditAction.RECORD_SHREDDED) if e.reason and "RETENTION_" in e.reason]
    assert sorted(e.target_type for e in shred_events) == ["person", "person", "testimony", "testimony"]
    assert erased not in recorded
    assert audit_verifies(app)

    with app.app_context():
        again = run(app.config)
    assert again.disposed == [] and again.due == [] and again.ok
    assert {k: [e.seq for e in v] for k, v in disposals_of(app).items()} == {
        k: [e.seq for e in v] for k, v in recorded.items()}
    assert audit_verifies(app)


def test_a_case_holds_a_record_against_the_rules_of_time_and_the_review_date_counts_from_the_day_after(
        make_app: Callable[..., Flask], create_user: Callable[..., TestUser]) -> None:
    app = make_app(RETENTION_TESTIMONY_DAYS=365, RETENTION_REVIEW_LAPSED_DAYS=10)
    plant = Planter(app, create_user("amira", ["interviewer"]))
    old = plant.submitted(days_ago=400)
    old_in_case = plant.submitted(days_ago=400)
    plant.in_case(old_in_case)
    recent = plant.submitted(days_ago=300)
    review_long_passed = plant.review_passed(days_ago=11)  # lapsed 10 days ago, on the day after the review date
    review_just_passed = plant.review_passed(days_ago=10)  # lapsed 9 days ago
    review_in_case = plant.review_passed(days_ago=100)
    plant.in_case(review_in_case)

    with app.app_context():
        report = run(app.config)
    assert report.ok
    assert sorted((d.testimony_id, d.category) for d in report.disposed) == sorted(
        [(old, "testimony"), (review_long_passed, "review_lapsed")])
    assert sorted((c.testimony_id, c.rule.category) for c in report.held) == sorted(
        [(old_in_case, "testimony"), (review_in_case, "review_lapsed")])
    for shredded in (old, review_long_passed):
        assert state(app, shredded) == SHREDDED
    for kept in (old_in_case, recent, review_just_passed, review_in_case):
        assert state(app, kept) == READABLE
    (review_event,) = disposals_of(app)[review_long_passed]
    assert review_event.reason == ("RETENTION_REVIEW_LAPSED_DAYS=10: the consent's review date passed at least "
                                   "10 days ago")
    lapsed = utcnow().date() - timedelta(days=11) + timedelta(days=1)
    assert review_event.details["expired_at"] == f"{lapsed + timedelta(days=10)}T00:00:00.000000Z"
    assert disposals_of(app)[old][0].details["rule"] == "RETENTION_TESTIMONY_DAYS"
    assert audit_verifies(app)

    # Once no case holds it, the next run disposes of it.
    with app.app_context():
        db.session.execute(sa.delete(CaseRecord).where(CaseRecord.testimony_id == old_in_case))
        db.session.commit()
        assert [d.testimony_id for d in run(app.config).disposed] == [old_in_case]
    assert state(app, old_in_case) == SHREDDED


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_rule_set_to_zero_keeps_its_records(make_app: Callable[..., Flask],
                                              create_user: Callable[..., TestUser]) -> None:
    app = make_app(RETENTION_DRAFT_DAYS=0, RETENTION_WITHDRAWN_DAYS=0)
    plant = Planter(app, create_user("amira", ["interviewer"]))
    draft = plant.draft(changed_days_ago=5000)
    withdrawn = plant.withdrawn(days_ago=5000)
    with app.app_context():
        assert retention.expired(app.config, utcnow() + timedelta(days=36_500)) == []
        report = run(app.config)
    assert report.disposed == [] and report.due == []
    assert state(app, draft) == READABLE and state(app, withdrawn) == READABLE
    assert events(app, AuditAction.RETENTION_DISPOSED) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_draft_counts_from_its_last_saved_change(app: Flask, amira: TestUser, plant: Planter) -> None:
    draft = plant.draft(changed_days_ago=40)
    with app.app_context():
        testimony = db.session.get(StoredTestimony, draft)
        interviews.save_narrative(testimony, f.SENTINEL_NARRATIVE, declined=False, actor=f.account(amira),
                                  config=app.config, revision=testimony.revision)
        db.session.commit()
        assert retention.due(app.config, utcnow()) == []
        later = retention.due(app.config, utcnow() + timedelta(days=31))
        assert [c.testimony_id for c in later] == [draft]
        db.session.rollback()
    assert state(app, draft) == READABLE


def test_the_command_lists_a_dry_run_changes_nothing_then_runs_and_then_has_nothing_left(
        with_cli: Flask, plant: Planter) -> None:
    app = with_cli
    old_draft = plant.draft(changed_days_ago=45)
    fresh_draft = plant.draft(changed_days_ago=2)
    held = plant.submitted(days_ago=10)
    with app.app_context():
        before = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
    cli = app.test_cli_runner()

    dry = cli.invoke(args=["retention", "run", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"Would dispose of testimony {old_draft} (draft, RETENTION_DRAFT_DAYS=30, expired " in dry.output
    assert f"testimony {fresh_draft} " not in dry.output and f"testimony {held} " not in dry.output
    assert "Dry run, nothing changed: 1 record(s) would be disposed of; 0 held by a case." in dry.output
    assert state(app, old_draft) == READABLE
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == before

    done = cli.invoke(args=["retention", "run"])
    assert done.exit_code == 0, done.output
    assert f"Disposed of testimony {old_draft} (draft, RETENTION_DRAFT_DAYS=30, expired " in done.output
    assert "shredded testimony and identity." in done.output
    assert "Disposed of 1 record(s) by crypto-shredding; 0 held by a case; 0 failed." in done.output
    assert state(app, old_draft) == SHREDDED and state(app, fresh_draft) == READABLE
    for planted in PLANTED:
        assert planted not in dry.output + done.output

    again = cli.invoke(args=["retention", "run"])
    assert again.exit_code == 0
    assert "Disposed of 0 record(s) by crypto-shredding" in again.output
    assert list(disposals_of(app)) == [old_draft]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_show_prints_the_schedule_in_force_and_what_is_due(make_app: Callable[..., Flask],
                                                           create_user: Callable[..., TestUser]) -> None:
    app = make_app(RETENTION_TESTIMONY_DAYS=365)
    app.cli.add_command(retention_group)
    plant = Planter(app, create_user("amira", ["interviewer"]))
    plant.draft(changed_days_ago=31)
    plant.in_case(plant.submitted(days_ago=366))
    shown = app.test_cli_runner().invoke(args=["retention", "show"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert any(line.split()[:3] == ["RETENTION_DRAFT_DAYS", "30", "days"] for line in lines)
    assert any(line.split()[:3] == ["RETENTION_WITHDRAWN_DAYS", "90", "days"] for line in lines)
    assert any(line.split()[:3] == ["RETENTION_TESTIMONY_DAYS", "365", "days"] for line in lines)
    assert any(line.split()[:2] == ["RETENTION_REVIEW_LAPSED_DAYS", "kept"] for line in lines)
    assert "Due now: 1 record(s); held by a case: 1." in shown.output
    assert events(app, AuditAction.RETENTION_DISPOSED) == []


@pytest.fixture
def failing_for(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[int]]:
    """Testimony ids whose shredding fails half-way: after the data key went, before the disposal was recorded."""
    failing: set[int] = set()
    real = retention.shred_testimony

    def shred(testimony: StoredTestimony, **kwargs: Any) -> None:
        real(testimony, **kwargs)
        if testimony.id in failing:
            raise RuntimeError("the disk is full")

    monkeypatch.setattr(retention, "shred_testimony", shred)
    yield failing


def test_a_record_that_cannot_be_disposed_of_is_left_whole_and_the_others_are_disposed_of(
        with_cli: Flask, plant: Planter, failing_for: set[int]) -> None:
    app = with_cli
    first = plant.draft(changed_days_ago=60)
    broken = plant.draft(changed_days_ago=50)
    last = plant.draft(changed_days_ago=40)
    failing_for.add(broken)

    result = app.test_cli_runner().invoke(args=["retention", "run"])
    assert result.exit_code == 1
    assert f"FAILED: testimony {broken} could not be disposed of (RuntimeError); nothing of it was changed." \
        in result.output
    assert "Disposed of 2 record(s) by crypto-shredding; 0 held by a case; 1 failed." in result.output
    assert state(app, first) == SHREDDED and state(app, last) == SHREDDED
    assert state(app, broken) == READABLE
    assert sorted(disposals_of(app)) == sorted([first, last])
    shredded = {int(e.target_ids[0]) for e in events(app, AuditAction.RECORD_SHREDDED) if e.target_type == "testimony"}
    assert broken not in shredded
    assert audit_verifies(app)

    failing_for.clear()
    with app.app_context():
        assert [d.testimony_id for d in run(app.config).disposed] == [broken]
    assert state(app, broken) == SHREDDED


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_record_changed_after_the_schedule_was_read_is_left_alone(app: Flask, amira: TestUser,
                                                                    plant: Planter) -> None:
    draft = plant.draft(changed_days_ago=31)
    with app.app_context():
        (candidate,) = retention.due(app.config, utcnow())
        db.session.rollback()
        testimony = db.session.get(StoredTestimony, draft)
        interviews.record_pause(testimony, resume=False, actor=f.account(amira), config=app.config)
        db.session.commit()
        assert retention.dispose(candidate, config=app.config, now=utcnow()) is None
        db.session.rollback()
    assert state(app, draft) == READABLE
    assert events(app, AuditAction.RETENTION_DISPOSED) == []


def test_a_negative_period_is_refused_at_start_up() -> None:
    with pytest.raises(ConfigError, match="INTAKE_RETENTION_DRAFT_DAYS"):
        load_settings(environ={"INTAKE_RETENTION_DRAFT_DAYS": "-1"})



@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_attachment_files_of_a_disposed_record_are_removed(make_app: Callable[..., Flask],
                                                          create_user: Callable[..., TestUser]) -> None:
    app = make_app(BLOB_STORAGE="files")
    plant = Planter(app, create_user("amira", ["interviewer"]))
    old = plant.draft(changed_days_ago=31)
    fresh = plant.draft(changed_days_ago=1)
    blobs = Path(app.config["BLOB_PATH"])
    with app.app_context():
        names = {t: [a.blob_name for a in db.session.get(StoredTestimony, t).attachments] for t in (old, fresh)}
        db.session.rollback()
    files = {path.name for path in blobs.rglob("*") if path.is_file()}
    assert files == {*names[old], *names[fresh]}
    with app.app_context():
        assert [d.testimony_id for d in run(app.config).disposed] == [old]
    assert {path.name for path in blobs.rglob("*") if path.is_file()} == set(names[fresh])
    assert state(app, fresh) == READABLE
