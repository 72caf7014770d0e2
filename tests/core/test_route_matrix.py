"""Deny by default, proven for every route: generated from `app.url_map`, so a new route is covered the moment
it exists (and fails here until it declares the permission it needs and has an example URL below).

For each route and method: anonymous → sign-in redirect (pages) or 401 (API); a role without the permission →
403; a role with it → success (GET 200; other methods 200, 204, a 303 that is not to sign-in or step-up, or 422
for the empty form). HEAD answers as GET does; OPTIONS is answered for anyone and writes nothing. Every route that
asks for step-up sends a caller without a fresh code there, and writes nothing.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from intake.accounts import operations as ops
from intake.accounts.models import Account
from intake.all_models import metadata
from intake.core.access import assignments
from intake.core.audit import AuditEvent
from intake.core.db import db
from intake.core.security import PUBLIC, Permission, Role, declared_access, permissions_for
from tests.conftest import Auth, TestUser, TotpClock, csrf_token

# Routes whose POST ends the caller's session run last, so they do not disturb the other checks.
RUN_LAST = {"accounts.sign_out"}
# The API's removals of the example link and mark run after the pages' removals of the same ones: the API refuses
# one removed already with 422, where a page answers 404.
RUN_AFTER_PAGES = {"api_review.LinkItem", "api_review.IdentifyingSpanItem", "cases.remove_record"}
# Where a right-role request to these routes legitimately redirects: signing out ends at the sign-in page.
EXPECTED_REDIRECTS = {"accounts.sign_out": "/sign-in"}
# Pages that send a right-role GET elsewhere: consent is read only after the readiness check.
EXPECTED_GET_REDIRECTS = {"interviews.consent": "/interviews/new"}
SUCCESS_STATUSES = {200, 204, 303, 422}
# The photo attached to the example interview: the smallest valid PNG, one pixel.
MATRIX_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
# URL arguments for requests that are refused before any record is looked up (anonymous callers, OPTIONS).
PLACEHOLDER_EXAMPLES: dict[str, Any] = {
    "account_id": 1, "token_id": 1, "token": "not-a-real-link-token", "target_type": "testimony", "target_id": "1",
    "testimony_id": 1, "incident_id": 1, "reviewer_id": 1, "grant_id": 1, "link_id": 1, "span_id": 1,
    "attachment_id": 1, "kind": "reliability", "case_id": 1, "export_id": 1, "recipient_id": 1}

EVERYONE = "public"
SIGNED_IN = frozenset(Role)
# Who may use each route, written out independently of the code's declarations so that a wrong declaration
# fails here. A new route fails until it is added.
EXPECTED: dict[str, str | frozenset[Role]] = {
    "accounts.sign_in": EVERYONE,
    "accounts.open_setup_link": EVERYONE,
    "accounts.open_enrolment_link": EVERYONE,
    "accounts.enrol_password": EVERYONE,
    "accounts.enrol_authenticator": EVERYONE,
    "accounts.choose_language": EVERYONE,
    "home.healthz": EVERYONE,
    "home.index": SIGNED_IN,
    "accounts.sign_out": SIGNED_IN,
    "accounts.step_up": SIGNED_IN,
    "accounts.account_overview": SIGNED_IN,
    "accounts.change_password": SIGNED_IN,
    "accounts.recovery_codes_offer": SIGNED_IN,
    "accounts.create_recovery_codes": SIGNED_IN,
    "accounts.create_token": SIGNED_IN,
    "accounts.revoke_token": SIGNED_IN,
    "admin.list_accounts": frozenset({Role.ADMIN}),
    "admin.invite": frozenset({Role.ADMIN}),
    "admin.change_roles": frozenset({Role.ADMIN}),
    "admin.deactivate": frozenset({Role.ADMIN}),
    "admin.reactivate": frozenset({Role.ADMIN}),
    "admin.reset_two_factor": frozenset({Role.ADMIN}),
    "api_accounts.Me": SIGNED_IN,
    "api_accounts.Tokens": SIGNED_IN,
    "api_accounts.TokenItem": SIGNED_IN,
    "api-docs.openapi_json": SIGNED_IN,
    "audit.search": frozenset({Role.AUDITOR}),
    "audit.verify": frozenset({Role.AUDITOR}),
    "audit.record_history": frozenset({Role.AUDITOR}),
    "audit.record_extract": frozenset({Role.AUDITOR}),
    "audit.checkpoints": frozenset({Role.AUDITOR}),
    "api_audit.Events": frozenset({Role.AUDITOR}),
    "api_audit.RecordHistory": frozenset({Role.AUDITOR}),
    "api_audit.RecordExtract": frozenset({Role.AUDITOR}),
    "api_audit.Verification": frozenset({Role.AUDITOR}),
    "api_audit.Checkpoints": frozenset({Role.AUDITOR}),
    "interviews.mine": frozenset({Role.INTERVIEWER}),
    "interviews.readiness": frozenset({Role.INTERVIEWER}),
    "interviews.consent": frozenset({Role.INTERVIEWER}),
    "interviews.overview": frozenset({Role.INTERVIEWER}),
    "interviews.person": frozenset({Role.INTERVIEWER}),
    "interviews.testimony": frozenset({Role.INTERVIEWER}),
    "interviews.pause": frozenset({Role.INTERVIEWER}),
    "interviews.incidents": frozenset({Role.INTERVIEWER}),
    "interviews.incident": frozenset({Role.INTERVIEWER}),
    "interviews.remove_incident": frozenset({Role.INTERVIEWER}),
    "interviews.attachments": frozenset({Role.INTERVIEWER}),
    "interviews.referral": frozenset({Role.INTERVIEWER}),
    "interviews.review": frozenset({Role.INTERVIEWER}),
    "api_interviews.Interviews": frozenset({Role.INTERVIEWER}),
    "api_interviews.NotHeld": frozenset({Role.INTERVIEWER}),
    "api_interviews.InterviewItem": frozenset({Role.INTERVIEWER}),
    "api_interviews.Incidents": frozenset({Role.INTERVIEWER}),
    "api_interviews.IncidentItem": frozenset({Role.INTERVIEWER}),
    "api_interviews.Attachments": frozenset({Role.INTERVIEWER}),
    "api_interviews.Submission": frozenset({Role.INTERVIEWER}),
    "api_interviews.Withdrawals": frozenset({Role.INTERVIEWER}),
    "withdrawals.find_record": frozenset({Role.COORDINATOR}),
    "withdrawals.record": frozenset({Role.COORDINATOR}),
    "withdrawals.erase": frozenset({Role.COORDINATOR}),
    "withdrawals.interview_withdrawal": frozenset({Role.INTERVIEWER}),
    "withdrawals.interview_erasure": frozenset({Role.INTERVIEWER}),
    "api_withdrawals.CoordinationRecord": frozenset({Role.COORDINATOR}),
    "api_withdrawals.CoordinationWithdrawals": frozenset({Role.COORDINATOR}),
    "withdrawals.assign_reviewer": frozenset({Role.COORDINATOR}),
    "withdrawals.unassign_reviewer": frozenset({Role.COORDINATOR}),
    "withdrawals.grant_access": frozenset({Role.COORDINATOR}),
    "withdrawals.revoke_access": frozenset({Role.COORDINATOR}),
    "withdrawals.reidentify": frozenset({Role.COORDINATOR}),
    "withdrawals.survivor_copy": frozenset({Role.COORDINATOR}),
    "review.queue": frozenset({Role.REVIEWER}),
    "review.record": frozenset({Role.REVIEWER}),
    "review.attachment": frozenset({Role.REVIEWER}),
    "review.overview": frozenset({Role.REVIEWER}),
    "review.assess": frozenset({Role.REVIEWER}),
    "review.code_incident": frozenset({Role.REVIEWER}),
    "review.link": frozenset({Role.REVIEWER}),
    "review.remove_link": frozenset({Role.REVIEWER}),
    "review.mark_span": frozenset({Role.REVIEWER}),
    "review.unmark_span": frozenset({Role.REVIEWER}),
    "review.add_note": frozenset({Role.REVIEWER}),
    "api_review.Records": frozenset({Role.REVIEWER}),
    "api_review.RecordItem": frozenset({Role.REVIEWER}),
    "api_review.Assessments": frozenset({Role.REVIEWER}),
    "api_review.Codings": frozenset({Role.REVIEWER}),
    "api_review.Links": frozenset({Role.REVIEWER}),
    "api_review.LinkItem": frozenset({Role.REVIEWER}),
    "api_review.IdentifyingSpans": frozenset({Role.REVIEWER}),
    "api_review.IdentifyingSpanItem": frozenset({Role.REVIEWER}),
    "api_review.Notes": frozenset({Role.REVIEWER}),
    "cases.list_cases": frozenset({Role.LEGAL}),
    "cases.case": frozenset({Role.LEGAL}),
    "cases.add_member": frozenset({Role.LEGAL}),
    "cases.remove_member": frozenset({Role.LEGAL}),
    "cases.add_record": frozenset({Role.LEGAL}),
    "cases.record": frozenset({Role.LEGAL}),
    "cases.remove_record": frozenset({Role.LEGAL}),
    "cases.add_incident": frozenset({Role.LEGAL}),
    "exports.prepare": frozenset({Role.LEGAL}),
    "exports.build": frozenset({Role.LEGAL}),
    "exports.export": frozenset({Role.LEGAL}),
    "exports.download": frozenset({Role.LEGAL}),
    "exports.cancel": frozenset({Role.LEGAL}),
    "recipients.list_recipients": frozenset({Role.ADMIN}),
    "recipients.signing_key": frozenset({Role.ADMIN}),
    "recipients.new": frozenset({Role.ADMIN}),
    "recipients.edit": frozenset({Role.ADMIN}),
    "recipients.deactivate": frozenset({Role.ADMIN}),
    "recipients.reactivate": frozenset({Role.ADMIN}),
}
# The methods each route answers (besides HEAD and OPTIONS), also written out: a new method on a known route
# fails here until it is added.
EXPECTED_METHODS: dict[str, set[str]] = {
    "accounts.sign_in": {"GET", "POST"},
    "accounts.open_setup_link": {"GET", "POST"},
    "accounts.open_enrolment_link": {"GET", "POST"},
    "accounts.enrol_password": {"GET", "POST"},
    "accounts.enrol_authenticator": {"GET", "POST"},
    "accounts.choose_language": {"POST"},
    "home.healthz": {"GET"},
    "home.index": {"GET"},
    "accounts.sign_out": {"POST"},
    "accounts.step_up": {"GET", "POST"},
    "accounts.account_overview": {"GET"},
    "accounts.change_password": {"GET", "POST"},
    "accounts.recovery_codes_offer": {"GET"},
    "accounts.create_recovery_codes": {"POST"},
    "accounts.create_token": {"GET", "POST"},
    "accounts.revoke_token": {"POST"},
    "admin.list_accounts": {"GET"},
    "admin.invite": {"GET", "POST"},
    "admin.change_roles": {"GET", "POST"},
    "admin.deactivate": {"POST"},
    "admin.reactivate": {"POST"},
    "admin.reset_two_factor": {"POST"},
    "api_accounts.Me": {"GET", "PATCH"},
    "api_accounts.Tokens": {"GET"},
    "api_accounts.TokenItem": {"DELETE"},
    "api-docs.openapi_json": {"GET"},
    "audit.search": {"GET"},
    "audit.verify": {"POST"},
    "audit.record_history": {"GET"},
    "audit.record_extract": {"GET"},
    "audit.checkpoints": {"GET"},
    "api_audit.Events": {"GET"},
    "api_audit.RecordHistory": {"GET"},
    "api_audit.RecordExtract": {"GET"},
    "api_audit.Verification": {"POST"},
    "api_audit.Checkpoints": {"GET"},
    "interviews.mine": {"GET"},
    "interviews.readiness": {"GET", "POST"},
    "interviews.consent": {"GET", "POST"},
    "interviews.overview": {"GET"},
    "interviews.person": {"GET", "POST"},
    "interviews.testimony": {"GET", "POST"},
    "interviews.pause": {"POST"},
    "interviews.incidents": {"GET", "POST"},
    "interviews.incident": {"GET", "POST"},
    "interviews.remove_incident": {"POST"},
    "interviews.attachments": {"GET", "POST"},
    "interviews.referral": {"GET", "POST"},
    "interviews.review": {"GET", "POST"},
    "api_interviews.Interviews": {"GET", "POST"},
    "api_interviews.NotHeld": {"POST"},
    "api_interviews.InterviewItem": {"GET", "PATCH"},
    "api_interviews.Incidents": {"POST"},
    "api_interviews.IncidentItem": {"DELETE", "PUT"},
    "api_interviews.Attachments": {"POST"},
    "api_interviews.Submission": {"POST"},
    "api_interviews.Withdrawals": {"POST"},
    "withdrawals.find_record": {"GET"},
    "withdrawals.record": {"GET", "POST"},
    "withdrawals.erase": {"GET", "POST"},
    "withdrawals.interview_withdrawal": {"GET", "POST"},
    "withdrawals.interview_erasure": {"GET", "POST"},
    "api_withdrawals.CoordinationRecord": {"GET"},
    "api_withdrawals.CoordinationWithdrawals": {"POST"},
    "withdrawals.assign_reviewer": {"POST"},
    "withdrawals.unassign_reviewer": {"POST"},
    "withdrawals.grant_access": {"POST"},
    "withdrawals.revoke_access": {"POST"},
    "withdrawals.reidentify": {"GET", "POST"},
    "withdrawals.survivor_copy": {"GET", "POST"},
    "review.queue": {"GET"},
    "review.record": {"GET"},
    "review.attachment": {"GET"},
    "review.overview": {"GET"},
    "review.assess": {"POST"},
    "review.code_incident": {"POST"},
    "review.link": {"POST"},
    "review.remove_link": {"POST"},
    "review.mark_span": {"POST"},
    "review.unmark_span": {"POST"},
    "review.add_note": {"POST"},
    "api_review.Records": {"GET"},
    "api_review.RecordItem": {"GET"},
    "api_review.Assessments": {"POST"},
    "api_review.Codings": {"POST"},
    "api_review.Links": {"POST"},
    "api_review.LinkItem": {"DELETE"},
    "api_review.IdentifyingSpans": {"POST"},
    "api_review.IdentifyingSpanItem": {"DELETE"},
    "api_review.Notes": {"POST"},
    "cases.list_cases": {"GET", "POST"},
    "cases.case": {"GET"},
    "cases.add_member": {"POST"},
    "cases.remove_member": {"POST"},
    "cases.add_record": {"POST"},
    "cases.record": {"GET"},
    "cases.remove_record": {"POST"},
    "cases.add_incident": {"POST"},
    "exports.prepare": {"GET"},
    "exports.build": {"POST"},
    "exports.export": {"GET"},
    "exports.download": {"GET"},
    "exports.cancel": {"POST"},
    "recipients.list_recipients": {"GET"},
    "recipients.signing_key": {"GET"},
    "recipients.new": {"GET", "POST"},
    "recipients.edit": {"GET", "POST"},
    "recipients.deactivate": {"POST"},
    "recipients.reactivate": {"POST"},
}


def _methods(rule: Any) -> list[str]:
    return sorted(m for m in rule.methods if m not in {"HEAD", "OPTIONS"})


def _url(app: Flask, rule: Any, examples: dict[str, Any]) -> str:
    missing = [arg for arg in rule.arguments if arg not in examples]
    assert not missing, f"{rule.endpoint}: add an example value for {missing} to the route matrix"
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **{arg: examples[arg] for arg in rule.arguments})


def _request(client: FlaskClient, method: str, url: str, token: str | None, bearer: str | None) -> Any:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    if url.startswith("/api/") and method == "POST" and url.endswith("/attachments"):
        return client.open(url, method=method, data=b"", content_type="application/octet-stream", headers=headers)
    if url.startswith("/api/") and method in ("POST", "PUT", "PATCH"):
        return client.open(url, method=method, json={}, headers=headers)  # the API takes JSON bodies only
    data = {"csrf_token": token} if token and method not in ("GET", "HEAD", "OPTIONS") else None
    return client.open(url, method=method, data=data, headers=headers)


def _assert_head_answers_like_get(client: FlaskClient, url: str, got: Any, bearer: str | None, where: str) -> None:
    head = _request(client, "HEAD", url, None, bearer)
    assert head.status_code == got.status_code, f"HEAD {where} -> {head.status_code}"
    assert head.headers.get("Location") == got.headers.get("Location"), f"HEAD {where}"
    assert head.get_data() == b"", f"HEAD {where} has a body"


def audit_count(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count(AuditEvent.seq))) or 0


def database_snapshot(app: Flask) -> dict[str, list[Any]]:
    """Every row of every table except the session store (which records activity on every request)."""
    snapshot: dict[str, list[Any]] = {}
    with app.app_context():
        for table in metadata.sorted_tables:
            if table.name == "web_sessions":
                continue
            rows = db.session.execute(sa.select(table).order_by(*table.primary_key.columns)).all()
            snapshot[table.name] = [tuple(row) for row in rows]
    return snapshot


@pytest.fixture
def people(app: Flask, create_user: Callable[..., TestUser]) -> dict[str, TestUser]:
    return {role.value: create_user(username=f"user-{role.value}", roles=[role.value]) for role in Role}


def _interview_of(app: Flask, username: str, reviewer_name: str) -> tuple[int, int, int, int]:
    """An interview with one incident and one photo, recorded by the account `username` and submitted (still
    correctable), assigned and granted to `reviewer_name` (made once): (testimony, incident, reviewer, grant) ids."""
    from datetime import timedelta

    from intake.core.access.models import AccessGrant
    from intake.core.db import utcnow
    from intake.interviews import operations as interviews
    from intake.testimonies.models import Testimony as StoredTestimony
    from tests.interviews import factories

    with app.app_context():
        interviewer = db.session.query(Account).filter_by(username=username).one()
        reviewer = db.session.query(Account).filter_by(username=reviewer_name).one()
        existing = db.session.scalar(sa.select(StoredTestimony).where(StoredTestimony.interviewer_id == interviewer.id))
        if existing is None:
            existing = interviews.start_interview(factories.readiness(), factories.consent(), actor=interviewer,
                                                  config=app.config)
            interviews.add_incident(existing, factories.incident(), actor=interviewer, config=app.config)
            interviews.save_referral(existing, factories.referral(), actor=interviewer, config=app.config)
            interviews.store_interview_attachment(existing, io.BytesIO(MATRIX_PNG), filename="matrix.png",
                                                  declared_medium="photo", graphic=False, actor=interviewer,
                                                  config=app.config)
            interviews.submit(existing, idempotency_key="matrix-submission-key", actor=interviewer, config=app.config)
            assignments.assign(existing, reviewer, actor=None)
            assignments.grant_access(existing, reviewer, reason="the route matrix", actor=None,
                                     expires_at=utcnow() + timedelta(days=1))
            db.session.commit()
        grant = db.session.scalar(sa.select(AccessGrant.id).where(AccessGrant.testimony_id == existing.id))
        return existing.id, existing.incidents[0].id, reviewer.id, int(grant or 0)


def _analysis_of(app: Flask, testimony_id: int, reviewer_name: str) -> dict[str, int]:
    """A link to another record and an identifying mark on the record, made once: their ids."""
    from intake.core.access import Part, open_record
    from intake.interviews import operations as interviews
    from intake.review import operations as review
    from intake.review.models import IdentifyingSpan, RecordLink
    from intake.testimonies.models import Testimony as StoredTestimony
    from tests.interviews import factories

    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        reviewer = db.session.query(Account).filter_by(username=reviewer_name).one()
        link = db.session.scalar(sa.select(RecordLink).where(RecordLink.testimony_id == testimony_id))
        if link is None:
            interviewer = db.session.get(Account, testimony.interviewer_id)
            other = interviews.start_interview(factories.readiness(), factories.consent(), actor=interviewer,
                                               config=app.config)
            interviews.save_referral(other, factories.referral(), actor=interviewer, config=app.config)
            interviews.submit(other, idempotency_key="matrix-other-record", actor=interviewer, config=app.config)
            assignments.assign(other, reviewer, actor=None)
            interviews.save_narrative(testimony, "matrix narrative", declined=False, actor=interviewer,
                                      config=app.config)
            link = review.link(testimony, other.pseudonym, "corroborates", "the route matrix", actor=reviewer,
                               config=app.config)
            view = open_record(reviewer, testimony, {Part.CONTENT}, config=app.config, purpose="review")
            review.mark_identifying(view, testimony, "matrix", "name", actor=reviewer, config=app.config)
            db.session.commit()
        span = db.session.scalar(sa.select(IdentifyingSpan.id).where(IdentifyingSpan.testimony_id == testimony_id))
        return {"link_id": link.id, "span_id": int(span or 0), "kind": "reliability"}


def _attachment_of(app: Flask, testimony_id: int) -> int:
    """The id of the photo attached to the example interview."""
    from intake.testimonies.models import Attachment

    with app.app_context():
        return int(db.session.scalar(sa.select(Attachment.id).where(Attachment.testimony_id == testimony_id)) or 0)


def _case_file_of(app: Flask, testimony_id: int, legal_name: str) -> dict[str, int]:
    """A case of the legal officer `legal_name` holding the example interview, with a recipient and a case file
    built for it and downloaded once (so that cancelling it is refused and downloading it again answers), made
    once: their ids."""
    from datetime import date

    from intake.cases import operations as cases
    from intake.exports import operations as exports
    from intake.exports.models import Export
    from intake.recipients import operations as recipients
    from intake.testimonies.models import Testimony as StoredTestimony

    with app.app_context():
        export = db.session.scalar(sa.select(Export).limit(1))
        if export is None:
            legal = db.session.query(Account).filter_by(username=legal_name).one()
            recipient = recipients.register(recipients.RecipientInput(
                key="matrix-un", name="Matrix UN body", category="un_mechanism", country=None, is_authority=False,
                agreement_reference="matrix", agreement_date=date(2024, 1, 1), contact="matrix@example.org",
                age_recipients=["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]), actor=legal)
            case = cases.create_case("MATRIX-CASE", "The route matrix", recipient=recipient, actor=legal)
            cases.add_testimony(case, db.session.get(StoredTestimony, testimony_id), actor=legal)
            export = exports.request_export(case, recipient, "un_mechanisms", actor=legal)
            db.session.commit()
            export_id = export.id
            exports.build(export_id, config=app.config)
            export = db.session.get_one(Export, export_id)
            exports.open_download(export, actor=legal, config=app.config)
            db.session.commit()
        return {"case_id": export.case_id, "export_id": export.id, "recipient_id": export.recipient_id}


def _example_values(app: Flask, owner: TestUser) -> dict[str, Any]:
    """URL arguments: a separate account to act upon, a token belonging to `owner`, and an interview recorded by
    the interviewer (so that the interviewer's routes find their own record)."""
    testimony_id, incident_id, reviewer_id, grant_id = _interview_of(app, f"user-{Role.INTERVIEWER.value}",
                                                                     f"user-{Role.REVIEWER.value}")
    with app.app_context():
        victim_name = f"target-of-{owner.username}"
        victim = db.session.query(Account).filter_by(username=victim_name).one_or_none()
        if victim is None:
            victim = ops.create_account(username=victim_name, roles=["reviewer"], password="x" * 12)
        account = db.session.get(Account, owner.id)
        token, _ = ops.create_api_token(account, name="matrix")
        db.session.commit()
        return {"account_id": victim.id, "token_id": token.id, "token": "not-a-real-link-token",
                "target_type": "testimony", "target_id": "1", "testimony_id": testimony_id,
                "incident_id": incident_id, "reviewer_id": reviewer_id, "grant_id": grant_id,
                "attachment_id": _attachment_of(app, testimony_id),
                **_case_file_of(app, testimony_id, f"user-{Role.LEGAL.value}"),
                **_analysis_of(app, testimony_id, f"user-{Role.REVIEWER.value}")}


def _signed_in(app: Flask, auth_factory: Callable[[FlaskClient], Auth], user: TestUser) -> tuple[FlaskClient, str]:
    client = app.test_client()
    auth = auth_factory(client)
    assert auth.sign_in(user).status_code == 303
    assert auth.step_up(user).status_code == 303
    return client, csrf_token(client, "/")


def _rules(app: Flask) -> list[Any]:
    rules = [r for r in app.url_map.iter_rules() if r.endpoint != "static"]
    return sorted(rules, key=lambda r: (r.endpoint in RUN_LAST, r.endpoint in RUN_AFTER_PAGES, r.endpoint))


def test_declarations_match_who_should_have_access(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in _rules(app)}
    assert endpoints == set(EXPECTED), "routes and the expected-access table differ"
    methods: dict[str, set[str]] = {}
    for rule in _rules(app):
        methods.setdefault(rule.endpoint, set()).update(_methods(rule))
    assert methods == EXPECTED_METHODS, "routes' methods and the expected-methods table differ"
    for rule in _rules(app):
        for method in _methods(rule):
            permission, _ = declared_access(app, rule.endpoint, method)
            expected = EXPECTED[rule.endpoint]
            if expected == EVERYONE:
                assert permission is PUBLIC, rule.endpoint
            else:
                assert permission is not PUBLIC and permission is not None, rule.endpoint
                allowed = {role for role in Role if permission in permissions_for([role])}
                assert allowed == set(expected), f"{rule.endpoint} {method}: {sorted(allowed)}"


def test_every_route_declares_its_access(app: Flask) -> None:
    undeclared = [
        f"{rule.endpoint} {method}"
        for rule in _rules(app)
        for method in _methods(rule)
        if declared_access(app, rule.endpoint, method)[0] is None
    ]
    assert undeclared == []


def test_anonymous_callers(app: Flask) -> None:
    client = app.test_client()
    token = csrf_token(client)
    examples = PLACEHOLDER_EXAMPLES
    for rule in _rules(app):
        for method in _methods(rule):
            permission, _ = declared_access(app, rule.endpoint, method)
            url = _url(app, rule, examples)
            response = _request(client, method, url, token, None)
            where = f"{method} {url}"
            if method == "GET":
                _assert_head_answers_like_get(client, url, response, None, where)
            if permission is PUBLIC:
                assert response.status_code not in (401, 403) and response.status_code < 500, where
            elif url.startswith("/api/"):
                assert response.status_code == 401, where
                assert response.mimetype == "application/problem+json", where
            else:
                assert response.status_code == 302, where
                assert response.headers["Location"].startswith("/sign-in"), where


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_each_role(app: Flask, people: dict[str, TestUser], totp_clock: TotpClock, role: str) -> None:
    user = people[role]
    granted = permissions_for([role])
    client, token = _signed_in(app, lambda c: Auth(c, totp_clock), user)
    examples = _example_values(app, user)
    with app.app_context():
        _, bearer = ops.create_api_token(db.session.get(Account, user.id), name="matrix-bearer")
        db.session.commit()
    checked = 0
    for rule in _rules(app):
        for method in _methods(rule):
            permission, _ = declared_access(app, rule.endpoint, method)
            if permission is PUBLIC:
                continue
            url = _url(app, rule, examples)
            is_api = url.startswith("/api/")
            response = _request(client, method, url, None if is_api else token, bearer if is_api else None)
            where = f"{role}: {method} {url} -> {response.status_code}"
            assert isinstance(permission, Permission)
            if permission not in granted:
                assert response.status_code == 403, where
            elif method == "GET" and rule.endpoint in EXPECTED_GET_REDIRECTS:
                assert response.status_code == 303, where
                assert response.headers["Location"] == EXPECTED_GET_REDIRECTS[rule.endpoint], where
            elif method == "GET":
                assert response.status_code == 200, where
            else:
                assert response.status_code in SUCCESS_STATUSES, where
                if response.status_code == 303:
                    location = response.headers["Location"]
                    expected = EXPECTED_REDIRECTS.get(rule.endpoint)
                    if expected is not None:
                        assert location == expected, where
                    else:
                        assert not location.startswith(("/sign-in", "/step-up")), f"{where} to {location}"
            if method == "GET":
                _assert_head_answers_like_get(client, url, response, bearer if is_api else None, where)
            checked += 1
    assert checked > 0


def test_options_is_answered_for_anonymous_callers_and_writes_nothing(app: Flask) -> None:
    client = app.test_client()
    examples = PLACEHOLDER_EXAMPLES
    before = audit_count(app)
    for rule in _rules(app):
        url = _url(app, rule, examples)
        response = client.options(url)
        assert response.status_code in (200, 204), f"OPTIONS {url} -> {response.status_code}"
        allowed = {m.strip() for m in response.headers["Allow"].split(",")}
        assert set(_methods(rule)) <= allowed, f"OPTIONS {url}: {allowed}"
        assert "Location" not in response.headers, f"OPTIONS {url}"
    assert audit_count(app) == before


@pytest.mark.parametrize("role", [Role.ADMIN.value, Role.INTERVIEWER.value, Role.COORDINATOR.value])
def test_every_step_up_route_sends_a_caller_without_a_fresh_code_to_step_up_and_writes_nothing(
    app: Flask, people: dict[str, TestUser], totp_clock: TotpClock, role: str
) -> None:
    user = people[role]
    granted = permissions_for([role])
    client = app.test_client()
    assert Auth(client, totp_clock).sign_in(user).status_code == 303  # signed in, but no step-up yet
    token = csrf_token(client, "/")
    examples = _example_values(app, user)
    checked = 0
    for rule in _rules(app):
        for method in _methods(rule):
            permission, step_up = declared_access(app, rule.endpoint, method)
            if not step_up or permission not in granted:
                continue
            url = _url(app, rule, examples)
            assert not url.startswith("/api/"), f"{rule.endpoint}: step-up is for pages; the API cannot ask for it"
            before = database_snapshot(app)
            response = _request(client, method, url, token, None)
            where = f"{role}: {method} {url} -> {response.status_code}"
            assert response.status_code == 302, where
            location = response.headers["Location"]
            assert location.startswith("/step-up?next="), f"{where} to {location}"
            assert database_snapshot(app) == before, f"{where} wrote to the database"
            checked += 1
    assert checked > 0


def test_a_route_marked_public_but_not_allowlisted_is_refused(app: Flask) -> None:
    from intake.core.security import public

    @public
    def sneaky() -> str:
        return "should not be reachable"

    app.add_url_rule("/sneaky", "sneaky", sneaky)
    response = app.test_client().get("/sneaky")
    assert response.status_code == 403
    assert "should not be reachable" not in response.get_data(as_text=True)


def test_a_route_without_a_declaration_is_refused(app: Flask) -> None:
    def forgotten() -> str:
        return "should not be reachable"

    app.add_url_rule("/forgotten", "forgotten", forgotten)
    response = app.test_client().get("/forgotten")
    assert response.status_code == 403
    assert "should not be reachable" not in response.get_data(as_text=True)


def test_only_refusals_of_signed_in_people_are_audited(
    app: Flask, people: dict[str, TestUser], totp_clock: TotpClock
) -> None:
    def forgotten() -> str:
        return "should not be reachable"

    app.add_url_rule("/forgotten", "forgotten", forgotten, methods=["GET", "POST"])
    anonymous = app.test_client()
    start = audit_count(app)
    for _ in range(3):
        assert anonymous.get("/forgotten").status_code == 403
        assert anonymous.open("/api/v1/tokens/1", method="PROPFIND").status_code == 405
        assert anonymous.get("/admin/accounts").status_code == 302
        assert anonymous.get("/api/v1/me").status_code == 401
    assert audit_count(app) == start  # anonymous callers cannot write to the audit log

    client = app.test_client()
    assert Auth(client, totp_clock).sign_in(people[Role.INTERVIEWER.value]).status_code == 303
    before = audit_count(app)
    assert client.get("/admin/accounts").status_code == 403
    assert client.get("/forgotten").status_code == 403
    with app.app_context():
        refusals = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "access_denied").order_by(AuditEvent.seq)
        ).all()
        assert [(e.actor_id, e.details["endpoint"]) for e in refusals] == [
            (people[Role.INTERVIEWER.value].id, "admin.list_accounts"),
            (people[Role.INTERVIEWER.value].id, "forgotten"),
        ]
    assert audit_count(app) == before + 2
