"""A legal team's cases as its members meet them on the pages: opening a case, sharing it with a colleague, adding
records whose consent permits a legal use (and only those), reading a record without who the person is, and what
outsiders and withdrawals of consent change."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import pyrage
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from intake.cases.models import Case, CaseMember, CaseRecord
from intake.core.audit import AuditAction
from intake.core.audit.models import AuditEvent
from intake.core.db import db, utcnow
from intake.exports.models import Export, ExportRecord, ExportStatus
from intake.interviews import operations as interviews
from intake.recipients import operations as recipients
from intake.testimonies.models import Incident
from intake.testimonies.models import Testimony as StoredTestimony
from intake.withdrawals import withdraw
from tests.conftest import Auth, TestUser, TotpClock, csrf_token, post_form
from tests.interviews import factories as f

NOT_FOUND_OR_DRAFT = "No submitted record has this code."
NO_LEGAL_USE = "This person's consent does not permit any legal use of their testimony, so it cannot be added."


@pytest.fixture
def amira(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("amira", ["interviewer"])


@pytest.fixture
def lena(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("lena", ["legal"])


@pytest.fixture
def omar(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("omar", ["legal"])


def _text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def _error_of(page: str, field: str) -> str:
    """The message shown next to `field` (empty when there is none)."""
    found = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', page)
    return found.group(1) if found else ""


def _events(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        events = list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)
                                         .order_by(AuditEvent.seq)))
        db.session.expunge_all()
        return events


def _count(app: Flask, model: Any) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def _stored(testimony_id: int) -> StoredTestimony:
    testimony = db.session.get(StoredTestimony, testimony_id)
    assert testimony is not None
    return testimony


def _pseudonym(app: Flask, testimony_id: int) -> str:
    with app.app_context():
        return _stored(testimony_id).pseudonym


def _interview(app: Flask, user: TestUser, *, key: str, submit: bool = True, **consent: Any) -> int:
    """An interview with a narrative and one incident, given under `consent` (the factory's, changed); its id."""
    with app.app_context():
        actor = f.account(user)
        testimony = interviews.start_interview(f.readiness(), f.consent(**consent), actor=actor, config=app.config)
        interviews.save_narrative(testimony, f.SENTINEL_NARRATIVE, declined=False, actor=actor, config=app.config)
        interviews.add_incident(testimony, f.incident(), actor=actor, config=app.config)
        interviews.save_referral(testimony, f.referral(), actor=actor, config=app.config)
        if submit:
            assert interviews.submit(testimony, idempotency_key=key, actor=actor, config=app.config) is True
        db.session.commit()
        return int(testimony.id)


def _signed_in(app: Flask, user: TestUser, clock: TotpClock) -> FlaskClient:
    client = app.test_client()
    assert Auth(client, clock).sign_in(user).status_code == 303
    return client


def _open_case(client: FlaskClient, reference: str = "KRB-2023-11") -> int:
    response = post_form(client, "/cases", {"reference": reference, "title": "Shelling of Stepanakert, 2023",
                                            "recipient": ""})
    assert response.status_code == 303, _text(response)
    found = re.fullmatch(r"/cases/(\d+)", response.headers["Location"])
    assert found, response.headers["Location"]
    return int(found.group(1))


def _add_record(client: FlaskClient, case_id: int, pseudonym: str) -> Any:
    return post_form(client, f"/cases/{case_id}/records", {"record-pseudonym": pseudonym},
                     token_from=f"/cases/{case_id}")


def test_a_legal_officer_opens_a_case_shares_it_and_adds_a_record(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, lena: TestUser, omar: TestUser) -> None:
    testimony_id = f.planted_interview(app, amira)
    pseudonym = _pseudonym(app, testimony_id)
    auth.sign_in(lena)
    assert 'href="/cases"' in _text(client.get("/"))  # in the navigation
    start = client.get("/cases")
    assert start.status_code == 200 and "You are not a member of any case yet." in _text(start)

    case_id = _open_case(client)
    assert [(e.actor_id, e.target_ids, e.details) for e in _events(app, AuditAction.CASE_CREATED)] == [
        (lena.id, [case_id], {"recipient": None})]
    listed = _text(client.get("/cases"))
    assert "KRB-2023-11" in listed and "Shelling of Stepanakert, 2023" in listed

    shared = post_form(client, f"/cases/{case_id}/members", {"member-username": "omar"},
                       token_from=f"/cases/{case_id}")
    assert shared.status_code == 303 and shared.headers["Location"] == f"/cases/{case_id}#members"
    assert [(e.actor_id, e.target_ids, e.details) for e in _events(app, AuditAction.CASE_MEMBER_ADDED)] == [
        (lena.id, [case_id], {"account": omar.id})]

    added = _add_record(client, case_id, f"  {pseudonym.lower()} ")
    assert added.status_code == 303 and added.headers["Location"] == f"/cases/{case_id}#records"
    assert [(e.actor_id, e.target_ids, e.details) for e in _events(app, AuditAction.CASE_RECORD_ADDED)] == [
        (lena.id, [testimony_id], {"case": case_id})]
    again = _add_record(client, case_id, pseudonym)  # nothing changes, and it says so
    assert again.status_code == 303
    assert f"Record {pseudonym} was in this case already." in _text(client.get(f"/cases/{case_id}"))
    assert len(_events(app, AuditAction.CASE_RECORD_ADDED)) == 1

    page = _text(client.get(f"/cases/{case_id}"))
    for expected in (pseudonym, "Submitted", "Shelling or artillery strike · 2023-09", "2023-10",
                     "The whole testimony", "lena", "omar"):
        assert expected in page, expected
    assert "SENTINEL" not in page  # the case's page shows what is stored in clear, and opens nothing
    assert _events(app, AuditAction.RECORD_VIEWED) == []

    # The record as a member sees it: what the person told, never who they are.
    shown = client.get(f"/cases/{case_id}/records/{testimony_id}")
    assert shown.status_code == 200
    text = _text(shown)
    assert f.SENTINEL_NARRATIVE in text
    for sentinel in (*f.IDENTITY_SENTINELS.values(), *f.CONSENT_SENTINELS.values()):
        assert sentinel not in text, sentinel
    assert "image/png" in text and "No case file holding this record has been delivered yet." in text
    viewed = _events(app, AuditAction.RECORD_VIEWED)
    assert [(e.actor_id, e.target_ids, e.details) for e in viewed] == [
        (lena.id, [testimony_id], {"parts": ["attachments", "content"], "purpose": "case"})]

    # One of its incidents, added on its own from the record's page.
    with app.app_context():
        second = db.session.scalars(sa.select(Incident.id).where(Incident.testimony_id == testimony_id)
                                    .order_by(Incident.id)).all()[1]
    incident = post_form(client, f"/cases/{case_id}/records/{testimony_id}/incidents", {"incident": str(second)},
                         token_from=f"/cases/{case_id}/records/{testimony_id}")
    assert incident.status_code == 303
    assert incident.headers["Location"] == f"/cases/{case_id}/records/{testimony_id}#incident-{second}"
    assert _events(app, AuditAction.CASE_RECORD_ADDED)[-1].details == {"case": case_id, "incident": second}
    page = _text(client.get(f"/cases/{case_id}"))
    assert "Incidents added on their own: Detention at a checkpoint · 2023-10" in page
    unknown = post_form(client, f"/cases/{case_id}/records/{testimony_id}/incidents", {"incident": "999999"},
                        token_from=f"/cases/{case_id}/records/{testimony_id}")
    assert unknown.status_code == 422 and "No incident has this number." in _text(unknown)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(CaseRecord)
                                 .where(CaseRecord.case_id == case_id)) == 2

    # The colleague sees the case among theirs, and opens its record too.
    colleague = app.test_client()
    assert Auth(colleague, auth.clock).sign_in(omar).status_code == 303
    assert "KRB-2023-11" in _text(colleague.get("/cases"))
    assert colleague.get(f"/cases/{case_id}/records/{testimony_id}").status_code == 200


def test_records_that_cannot_go_into_a_case_are_refused_with_a_clear_message(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, lena: TestUser) -> None:
    no_legal_use = _interview(app, amira, key="n" * 24, grants={"documentation": "pseudonymous"})
    draft = _interview(app, amira, key="d" * 24, submit=False)
    auth.sign_in(lena)
    case_id = _open_case(client)

    refused = _add_record(client, case_id, _pseudonym(app, no_legal_use))
    assert refused.status_code == 422
    assert _error_of(_text(refused), "record-pseudonym") == NO_LEGAL_USE
    # A draft and a code nobody was given are told apart by nothing.
    for code in (_pseudonym(app, draft), "KB-0000-00"):
        answer = _add_record(client, case_id, code)
        assert answer.status_code == 422
        assert _error_of(_text(answer), "record-pseudonym") == NOT_FOUND_OR_DRAFT
    malformed = _add_record(client, case_id, "<script>")
    assert malformed.status_code == 422 and "for example KB-7F3Q-2K" in _error_of(_text(malformed), "record-pseudonym")
    assert _count(app, CaseRecord) == 0
    assert _events(app, AuditAction.CASE_RECORD_ADDED) == []
    # Nor can such records be opened through a case.
    assert client.get(f"/cases/{case_id}/records/{no_legal_use}").status_code == 403
    assert [e.details["why"] for e in _events(app, AuditAction.RECORD_ACCESS_REFUSED)] == ["not_in_case"]


def test_case_changes_that_are_refused_say_why_and_save_nothing(
        app: Flask, client: FlaskClient, auth: Auth, lena: TestUser, omar: TestUser) -> None:
    auth.sign_in(lena)
    case_id = _open_case(client)
    duplicate = post_form(client, "/cases", {"reference": "KRB-2023-11", "title": "Another", "recipient": ""})
    assert duplicate.status_code == 422
    assert _error_of(_text(duplicate), "reference") == "Another case already has this reference."
    empty = post_form(client, "/cases", {"reference": " ", "title": "", "recipient": "12345"})
    assert empty.status_code == 422
    page = _text(empty)
    assert _error_of(page, "reference") == "Give the case a reference."
    assert _error_of(page, "title") == "Give the case a title."
    assert _error_of(page, "recipient") == "Choose one of the active recipients, or none."
    assert _count(app, Case) == 1

    # The last member cannot leave; a colleague who is not a legal officer cannot join.
    last = post_form(client, f"/cases/{case_id}/members/{lena.id}/remove", {}, token_from=f"/cases/{case_id}")
    assert last.status_code == 422 and "A case needs at least one member." in _text(last)
    outsider = post_form(client, f"/cases/{case_id}/members", {"member-username": "amira"},
                         token_from=f"/cases/{case_id}")
    assert outsider.status_code == 422
    assert _error_of(_text(outsider), "member-username") == "Choose an active member of a legal team."
    assert _count(app, CaseMember) == 1
    # Without the form's token, nothing is done.
    assert client.post("/cases", data={"reference": "LC-X", "title": "T", "recipient": ""}).status_code == 400
    assert _count(app, Case) == 1

    # Sharing and unsharing.
    assert post_form(client, f"/cases/{case_id}/members", {"member-username": "omar"},
                     token_from=f"/cases/{case_id}").status_code == 303
    removed = post_form(client, f"/cases/{case_id}/members/{omar.id}/remove", {}, token_from=f"/cases/{case_id}")
    assert removed.status_code == 303
    assert [(e.target_ids, e.details) for e in _events(app, AuditAction.CASE_MEMBER_REMOVED)] == [
        ([case_id], {"account": omar.id})]
    assert _count(app, CaseMember) == 1


def test_an_outsider_learns_nothing_of_a_case_and_is_refused_its_records(
        app: Flask, client: FlaskClient, auth: Auth, totp_clock: TotpClock, amira: TestUser, lena: TestUser,
        omar: TestUser) -> None:
    testimony_id = f.planted_interview(app, amira)
    auth.sign_in(lena)
    case_id = _open_case(client)
    assert _add_record(client, case_id, _pseudonym(app, testimony_id)).status_code == 303

    outsider = _signed_in(app, omar, totp_clock)
    assert "KRB-2023-11" not in _text(outsider.get("/cases"))
    # The case: the same answer as for one that does not exist.
    assert outsider.get(f"/cases/{case_id}").status_code == 404
    assert outsider.get("/cases/999999").status_code == 404
    token = csrf_token(outsider, "/cases")
    for path, data in ((f"/cases/{case_id}/members", {"member-username": "omar"}),
                       (f"/cases/{case_id}/records", {"record-pseudonym": _pseudonym(app, testimony_id)}),
                       (f"/cases/{case_id}/members/{lena.id}/remove", {}),
                       (f"/cases/{case_id}/records/{testimony_id}/remove", {})):
        assert outsider.post(path, data={"csrf_token": token, **data}).status_code == 404, path
    assert _count(app, CaseMember) == 1 and _count(app, CaseRecord) == 1

    # The record: refused by the access decision, with its reason, and audited.
    refused = outsider.get(f"/cases/{case_id}/records/{testimony_id}")
    assert refused.status_code == 403
    text = _text(refused)
    assert "This record is not in any case you are a member of." in text
    assert "SENTINEL" not in text
    adding = outsider.post(f"/cases/{case_id}/records/{testimony_id}/incidents",
                           data={"csrf_token": token, "incident": "1"})
    assert adding.status_code == 403
    assert [(e.actor_id, e.target_ids, e.details["why"]) for e in _events(app, AuditAction.RECORD_ACCESS_REFUSED)] \
        == [(omar.id, [testimony_id], "not_in_case")] * 2
    assert _events(app, AuditAction.RECORD_VIEWED) == []
    assert _count(app, CaseRecord) == 1


def test_a_withdrawal_of_consent_closes_the_record_to_the_case_at_once(
        app: Flask, client: FlaskClient, auth: Auth, create_user: Callable[..., TestUser], amira: TestUser,
        lena: TestUser) -> None:
    nadia = create_user("nadia", ["coordinator"])
    testimony_id = f.planted_interview(app, amira)
    auth.sign_in(lena)
    case_id = _open_case(client)
    assert _add_record(client, case_id, _pseudonym(app, testimony_id)).status_code == 303
    assert client.get(f"/cases/{case_id}/records/{testimony_id}").status_code == 200

    with app.app_context():
        withdraw(_stored(testimony_id), purposes=["un_mechanisms"], received_how="phone",
                 erasure=False, actor=f.account(nadia), config=app.config)
        db.session.commit()
    refused = client.get(f"/cases/{case_id}/records/{testimony_id}")
    assert refused.status_code == 403
    text = _text(refused)
    assert "The person's consent no longer permits any legal use of this record." in text
    assert f.SENTINEL_NARRATIVE not in text
    refusals = _events(app, AuditAction.RECORD_ACCESS_REFUSED)
    assert [(e.actor_id, e.target_ids, e.details["why"], e.details["purpose"]) for e in refusals] == [
        (lena.id, [testimony_id], "no_legal_purpose", "case")]
    assert len(_events(app, AuditAction.RECORD_VIEWED)) == 1  # only the reading before the withdrawal

    # The record stays listed for the team to take out.
    assert _pseudonym(app, testimony_id) in _text(client.get(f"/cases/{case_id}"))
    removed = post_form(client, f"/cases/{case_id}/records/{testimony_id}/remove", {},
                        token_from=f"/cases/{case_id}")
    assert removed.status_code == 303
    assert [(e.target_ids, e.details) for e in _events(app, AuditAction.CASE_RECORD_REMOVED)] == [
        ([testimony_id], {"case": case_id})]
    assert "No record is in this case yet." in _text(client.get(f"/cases/{case_id}"))
    again = post_form(client, f"/cases/{case_id}/records/{testimony_id}/remove", {},
                      token_from=f"/cases/{case_id}")
    assert again.status_code == 422 and "This record is not in the case." in _text(again)


def test_the_case_names_its_recipient_and_the_record_says_where_it_was_delivered(
        app: Flask, client: FlaskClient, auth: Auth, create_user: Callable[..., TestUser], amira: TestUser,
        lena: TestUser) -> None:
    admin = create_user("adele", ["admin"])
    testimony_id = f.planted_interview(app, amira)
    with app.app_context():
        mechanism = recipients.register(recipients.RecipientInput(
            key="un-iimm", name="Independent Investigative Mechanism", category="un_mechanism", country=None,
            is_authority=False, agreement_reference="MoU 2024/3", agreement_date=date(2024, 3, 1),
            contact="evidence@example.org", age_recipients=[str(pyrage.x25519.Identity.generate().to_public())]),
            actor=f.account(admin))
        db.session.commit()
        mechanism_id = mechanism.id
    auth.sign_in(lena)
    opened = post_form(client, "/cases", {"reference": "KRB-2023-12", "title": "Detentions at the corridor",
                                          "recipient": str(mechanism_id)})
    assert opened.status_code == 303
    case_id = int(opened.headers["Location"].rsplit("/", 1)[1])
    assert _events(app, AuditAction.CASE_CREATED)[-1].details == {"recipient": mechanism_id}
    assert "Independent Investigative Mechanism" in _text(client.get("/cases"))
    assert _add_record(client, case_id, _pseudonym(app, testimony_id)).status_code == 303
    page = f"/cases/{case_id}/records/{testimony_id}"
    assert "No case file holding this record has been delivered yet." in _text(client.get(page))

    with app.app_context():  # a case file holding the record, downloaded by the recipient's side
        export = Export(bundle_id=str(uuid.uuid4()), case_id=case_id, recipient_id=mechanism_id,
                        purpose="un_mechanisms", status=ExportStatus.DOWNLOADED.value, requested_by_id=lena.id,
                        downloads=1, first_downloaded_at=utcnow())
        db.session.add(export)
        db.session.flush()
        db.session.add(ExportRecord(export_id=export.id, testimony_id=testimony_id, included=True,
                                    disclosure="anonymous", reason="allowed"))
        db.session.commit()
    text = _text(client.get(page))
    assert "No case file holding this record has been delivered yet." not in text
    delivered = text[text.index('id="shared"'):]
    assert "Independent Investigative Mechanism" in delivered and "United Nations bodies" in delivered
