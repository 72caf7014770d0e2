"""Withdrawal and erasure as a coordinator and as the interviewer meet them on the pages: what takes effect at
once, what is audited, what erasure leaves behind, and what is refused."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from consent.policy import Reason as PolicyReason
from consent.records import Purpose, Recipient
from intake.consents import operations as consents
from intake.consents.models import ConsentRecord, ConsentWithdrawal
from intake.core.access import AccessRefused, Part, open_record
from intake.core.audit import AuditAction, record_event
from intake.core.audit.models import AuditEvent
from intake.core.audit.service import verify
from intake.core.crypto.models import DataKey
from intake.core.db import db
from intake.identities.models import Person
from intake.testimonies.models import Incident
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


def _text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def _error_of(page: str, field: str) -> str:
    """The message shown next to `field` (empty when there is none)."""
    found = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', page)
    return found.group(1) if found else ""


def _events(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)
                                       .order_by(AuditEvent.seq)))


def _withdrawals(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(ConsentWithdrawal)) or 0


def _record(testimony_id: int) -> str:
    return f"/coordination/records/{testimony_id}"


def _no_sentinels(page: str) -> None:
    assert f.SENTINEL_NARRATIVE not in page and "SENTINEL" not in page
    assert f.SENTINEL_NAME not in page and "Sentinelyan" not in page


def test_a_coordinator_finds_a_record_by_its_pseudonym_and_sees_only_its_clear_metadata(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    with app.app_context():
        pseudonym = db.session.get(StoredTestimony, testimony_id).pseudonym
    auth.sign_in(nadia)
    start = client.get("/coordination/records")
    assert start.status_code == 200 and "Survivor requests" in _text(start)
    assert 'href="/coordination/records"' in _text(client.get("/"))  # in the navigation

    found = client.get("/coordination/records", query_string={"pseudonym": f"  {pseudonym.lower()} "})
    assert found.status_code == 303 and found.headers["Location"] == _record(testimony_id)
    searches = _events(app, AuditAction.RECORDS_SEARCHED)
    assert [(e.actor_id, e.target_ids, e.details) for e in searches] == [
        (nadia.id, [testimony_id], {"by": "pseudonym", "found": 1})]

    page = client.get(_record(testimony_id))
    assert page.status_code == 200
    text = _text(page)
    for expected in (pseudonym, "Submitted", "Հայերեն", "amira", "Version 1", "Keep and study the testimony",
                     "Code instead of the name", "United Nations bodies", "Anonymous", "Photo", "Document",
                     "No withdrawal has been recorded.", "Exports that included this record",
                     "No export has included this record.", "Erasure cannot be undone."):
        assert expected in text, expected
    _no_sentinels(text)
    # Nothing was decrypted for the coordinator.
    assert [e for e in _events(app, AuditAction.RECORD_VIEWED) if e.actor_id == nadia.id] == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_unknown_or_malformed_pseudonym_is_said_next_to_the_field(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser) -> None:
    full_interview(app, amira)
    auth.sign_in(nadia)
    unknown = client.get("/coordination/records", query_string={"pseudonym": "KB-0000-00"})
    assert unknown.status_code == 400
    assert _error_of(_text(unknown), "pseudonym") == "No record has this pseudonym code."
    assert _events(app, AuditAction.RECORDS_SEARCHED)[-1].details == {"by": "pseudonym", "found": 0}
    malformed = client.get("/coordination/records", query_string={"pseudonym": "<script>"})
    assert malformed.status_code == 400
    assert "for example KB-7F3Q-2K" in _error_of(_text(malformed), "pseudonym")
    assert client.get("/coordination/records/999999").status_code == 404


def test_a_whole_withdrawal_takes_effect_on_the_next_request_and_is_audited(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    auth.sign_in(nadia)
    response = post_form(client, _record(testimony_id), {"scope": "whole", "received_how": "phone"})
    assert response.status_code == 303 and response.headers["Location"] == _record(testimony_id)
    page = _text(client.get(_record(testimony_id)))
    assert "withdrawn for every use" in page
    assert "By phone" in page and "Everything" in page and "nadia" in page
    assert "Consent is withdrawn for every purpose already." in page

    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        with pytest.raises(AccessRefused):
            open_record(account(amira), testimony, {Part.CONTENT}, config=app.config)
        for purpose in (Purpose.DOCUMENTATION, Purpose.UN_MECHANISMS):
            decision = consents.decide_use(testimony_id, purpose, Recipient("ohchr"))
            assert not decision.allowed and decision.reason == PolicyReason.WITHDRAWN
    [withdrawn] = _events(app, AuditAction.CONSENT_WITHDRAWN)
    assert withdrawn.actor_id == nadia.id and withdrawn.target_ids == [testimony_id]
    assert withdrawn.details == {"purposes": [], "received_how": "phone", "erasure": False}


def test_a_withdrawal_for_one_purpose_denies_that_purpose_and_keeps_the_others(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    auth.sign_in(nadia)
    page = _text(client.get(_record(testimony_id)))
    assert 'value="un_mechanisms"' in page and 'value="documentation"' in page
    assert 'value="media"' not in page  # only purposes the consent granted are offered
    response = post_form(client, _record(testimony_id),
                         {"scope": "some", "purposes": ["un_mechanisms"], "received_how": "letter"})
    assert response.status_code == 303
    assert "withdrawn for: United Nations bodies" in _text(client.get(_record(testimony_id)))
    with app.app_context():
        denied = consents.decide_use(testimony_id, Purpose.UN_MECHANISMS, Recipient("ohchr"))
        assert not denied.allowed and denied.reason == PolicyReason.WITHDRAWN_FOR_PURPOSE
        assert consents.documentation_allowed(testimony_id).allowed
        testimony = db.session.get(StoredTestimony, testimony_id)
        open_record(account(amira), testimony, {Part.CONTENT}, config=app.config)  # still readable
        db.session.rollback()
    assert _events(app, AuditAction.CONSENT_WITHDRAWN)[-1].details == {
        "purposes": ["un_mechanisms"], "received_how": "letter", "erasure": False}
    page = _text(client.get(_record(testimony_id)))
    assert 'value="un_mechanisms"' not in page and 'value="documentation"' in page


@pytest.mark.parametrize("data, field, message", [
    ({"scope": "whole"}, "received_how", "Say how the request reached you."),
    ({"scope": "whole", "received_how": "carrier_pigeon"}, "received_how", "Say how the request reached you."),
    ({"scope": "some", "purposes": ["no_such_purpose"], "received_how": "phone"}, "purposes",
     "Choose among the purposes the consent covers."),
    ({"scope": "some", "purposes": ["media"], "received_how": "phone"}, "purposes",
     "Choose among the purposes the consent covers."),
    ({"scope": "some", "received_how": "phone"}, "purposes", "Tick the purposes the person withdraws."),
    ({"received_how": "phone"}, "scope", "Choose whether the person withdraws everything or only some purposes."),
])
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_input_is_refused_next_to_its_field_and_nothing_is_stored(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser, data: dict[str, Any],
        field: str, message: str) -> None:
    testimony_id = full_interview(app, amira)
    auth.sign_in(nadia)
    response = post_form(client, _record(testimony_id), data)
    assert response.status_code == 422
    page = _text(response)
    assert _error_of(page, field) == message
    assert f'href="#{field}' in page  # the error summary leads to the field
    assert _withdrawals(app) == 0 and _events(app, AuditAction.CONSENT_WITHDRAWN) == []
    with app.app_context():
        assert consents.decide_use(testimony_id, Purpose.UN_MECHANISMS, Recipient("ohchr")).allowed


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_withdrawal_without_the_csrf_token_is_refused(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    auth.sign_in(nadia)
    refused = client.post(_record(testimony_id), data={"scope": "whole", "received_how": "phone"})
    assert refused.status_code == 400
    wrong = client.post(_record(testimony_id), data={"scope": "whole", "received_how": "phone",
                                                      "csrf_token": "not-the-token"})
    assert wrong.status_code == 400
    assert _withdrawals(app) == 0


def _sealed_state(app: Flask, testimony_id: int) -> dict[str, Any]:
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        person = db.session.scalar(sa.select(Person).where(Person.pseudonym == testimony.pseudonym))
        keys = db.session.scalars(sa.select(DataKey).where(DataKey.id.in_([testimony.data_key_id,
                                                                            person.data_key_id]))).all()
        return {
            "destroyed": sorted(k.destroyed_at is not None for k in keys),
            "wrapped": sorted(k.wrapped is not None for k in keys),
            "identity": person.identity is not None,
            "narrative": testimony.narrative is not None,
            "details": testimony.details is not None,
            "incidents": [i.details is not None for i in db.session.scalars(
                sa.select(Incident).where(Incident.testimony_id == testimony_id).order_by(Incident.id))],
            "particulars": [c.particulars is not None for c in db.session.scalars(
                sa.select(ConsentRecord).where(ConsentRecord.testimony_id == testimony_id))],
            "withdrawals": db.session.scalar(sa.select(sa.func.count()).select_from(ConsentWithdrawal)),
        }


INTACT = {"destroyed": [False, False], "wrapped": [True, True], "identity": True, "narrative": True,
          "details": True, "incidents": [True, True], "particulars": [True], "withdrawals": 0}


def test_erasure_needs_a_fresh_code_then_shreds_both_keys_and_leaves_a_tombstone_and_the_audit_trail(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    erasure = f"{_record(testimony_id)}/erasure"
    auth.sign_in(nadia)
    assert _sealed_state(app, testimony_id) == INTACT
    with app.app_context():
        earlier = [e.seq for e in db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq))]

    # Without a fresh two-factor code: sent to step-up, and nothing changes.
    page = client.get(erasure)
    assert page.status_code == 302 and page.headers["Location"] == f"/step-up?next={erasure}"
    token = csrf_token(client, _record(testimony_id))
    refused = client.post(erasure, data={"csrf_token": token, "received_how": "in_person", "confirm": "y"})
    assert refused.status_code == 302 and refused.headers["Location"].startswith("/step-up?next=")
    assert _sealed_state(app, testimony_id) == INTACT

    auth.step_up(nadia)
    form = client.get(erasure)
    assert form.status_code == 200
    text = _text(form)
    assert "Erasure cannot be undone." in text and "cannot be undone" in text
    _no_sentinels(text)
    unconfirmed = post_form(client, erasure, {"received_how": "in_person"})
    assert unconfirmed.status_code == 422
    assert _error_of(_text(unconfirmed), "confirm") == "Tick this box to confirm that the person asked for erasure."
    assert _sealed_state(app, testimony_id) == INTACT

    done = post_form(client, erasure, {"received_how": "in_person", "confirm": "y"})
    assert done.status_code == 303 and done.headers["Location"] == _record(testimony_id)
    assert _sealed_state(app, testimony_id) == {
        "destroyed": [True, True], "wrapped": [False, False], "identity": False, "narrative": False,
        "details": False, "incidents": [False, False], "particulars": [False], "withdrawals": 1}
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        assert testimony.status == "submitted" and testimony.pseudonym  # the tombstone keeps its clear fields
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Incident)) == 2
        still = [e.seq for e in db.session.scalars(sa.select(AuditEvent).where(AuditEvent.seq.in_(earlier)))]
        assert still == earlier
        report = verify(use_configured_file=False)
        assert report.ok, report.problems
        with pytest.raises(AccessRefused):
            open_record(account(amira), testimony, {Part.CONTENT}, config=app.config)
    [withdrawn] = _events(app, AuditAction.CONSENT_WITHDRAWN)
    assert withdrawn.details == {"purposes": [], "received_how": "in_person", "erasure": True}
    shredded = _events(app, AuditAction.RECORD_SHREDDED)
    assert sorted(e.target_type for e in shredded) == ["person", "testimony"]
    assert all(e.actor_id == nadia.id for e in shredded)

    after = _text(client.get(_record(testimony_id)))
    assert "erased at the person's request on" in after
    assert "nothing left to withdraw" in after and "Record the withdrawal" not in after
    again = post_form(client, _record(testimony_id), {"scope": "whole", "received_how": "phone"},
                      token_from="/")
    assert again.status_code == 422 and _withdrawals(app) == 1
    assert "nothing left to withdraw" in _text(again)
    repeated = post_form(client, erasure, {"received_how": "phone", "confirm": "y"}, token_from="/")
    assert repeated.status_code == 422 and _withdrawals(app) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_exports_that_included_the_record_are_listed_so_their_recipients_can_be_told(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    other_id = full_interview(app, amira, key="o" * 24)
    with app.app_context():
        record_event(AuditAction.EXPORT_BUILT, actor=account(nadia), target_type="testimony",
                     target_ids=[testimony_id, other_id], details={"recipient": "ohchr", "bundle": "b-17"})
        record_event(AuditAction.EXPORT_BUILT, actor=account(nadia), target_type="testimony",
                     target_ids=[other_id], details={"recipient": "icc", "bundle": "b-18"})
        db.session.commit()
    auth.sign_in(nadia)
    page = _text(client.get(_record(testimony_id)))
    assert "No export has included this record." not in page
    assert "Export built" in page and "recipient=ohchr" in page and "bundle=b-17" in page
    assert "b-18" not in page
    response = post_form(client, _record(testimony_id), {"scope": "whole", "received_how": "message"})
    assert response.status_code == 303
    assert "tell the recipients" in _text(client.get(_record(testimony_id)))


def test_an_interviewer_records_a_withdrawal_for_their_own_interview_only(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, create_user: Callable[..., TestUser]) -> None:
    testimony_id = full_interview(app, amira)
    other = create_user("hovik", ["interviewer"])
    others_id = full_interview(app, other, key="h" * 24)
    path = f"/interviews/{testimony_id}/withdrawal"
    auth.sign_in(amira)
    page = client.get(path)
    assert page.status_code == 200
    text = _text(page)
    assert "Record the withdrawal" in text and "Exports that included this record" not in text
    _no_sentinels(text)
    assert client.get(f"/interviews/{others_id}/withdrawal").status_code == 403
    assert post_form(client, f"/interviews/{others_id}/withdrawal", {"scope": "whole", "received_how": "phone"},
                     token_from=path).status_code == 403
    assert client.get("/interviews/999999/withdrawal").status_code == 404
    assert client.get(f"/coordination/records/{testimony_id}").status_code == 403

    response = post_form(client, path, {"scope": "some", "purposes": ["un_mechanisms"],
                                        "received_how": "through_someone"})
    assert response.status_code == 303 and response.headers["Location"] == path
    assert "Through someone else" in _text(client.get(path))
    [withdrawn] = _events(app, AuditAction.CONSENT_WITHDRAWN)
    assert withdrawn.actor_id == amira.id and withdrawn.target_ids == [testimony_id]
    with app.app_context():
        assert consents.decide_use(others_id, Purpose.UN_MECHANISMS, Recipient("ohchr")).allowed
        assert not consents.decide_use(testimony_id, Purpose.UN_MECHANISMS, Recipient("ohchr")).allowed

    erasure = f"/interviews/{testimony_id}/erasure"
    assert client.get(erasure).headers["Location"] == f"/step-up?next={erasure}"
    auth.step_up(amira)
    assert client.get(f"/interviews/{others_id}/erasure").status_code == 403
    done = post_form(client, erasure, {"received_how": "phone", "confirm": "y"})
    assert done.status_code == 303 and done.headers["Location"] == path
    with app.app_context():
        assert db.session.get(StoredTestimony, testimony_id).data_key.destroyed_at is not None
        assert db.session.get(StoredTestimony, others_id).data_key.destroyed_at is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_coordinator_cannot_use_the_interviewers_pages(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    auth.sign_in(nadia)
    assert client.get(f"/interviews/{testimony_id}/withdrawal").status_code == 403
