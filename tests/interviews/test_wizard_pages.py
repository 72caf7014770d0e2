"""The interview wizard's pages, used as a field interviewer's browser without JavaScript would (real CSRF tokens,
forms posted as they are shown), and its autosave as interview.js sends it: what each page shows, where it goes,
and what is stored or, on refusal, not stored."""

from __future__ import annotations

import hashlib
import html
import io
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from consent import scripts
from consent.records import ScriptItem
from intake.consents.models import ConsentRecord
from intake.core.audit.models import AuditEvent
from intake.core.db import db, utcnow
from intake.identities.models import Person
from intake.interviews.models import InterviewNotHeld
from intake.testimonies.models import Attachment, Incident
from intake.testimonies.models import Testimony as StoredTestimony
from tests.conftest import CSRF_PATTERN, Auth, TestUser, TotpClock

# The smallest valid PNG (1x1 pixel) and a minimal PDF.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
NARRATIVE = "They shelled the street at dawn; we hid in the cellar of the school."
REVISION = re.compile(r'name="revision"[^>]*value="(\d+)"|value="(\d+)"[^>]*name="revision"')
KEY = re.compile(r'name="idempotency_key"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="idempotency_key"')
START_KEY = re.compile(r'name="start_key"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="start_key"')


# ---------------------------------------------------------------------------------------------------------------
# Helpers: a browser without JavaScript


def _found(pattern: re.Pattern[str], page: str) -> str:
    match = pattern.search(page)
    assert match, f"not on the page: {pattern.pattern}"
    return match.group(1) or match.group(2)


def _get(client: FlaskClient, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, (path, response.status_code, response.get_data(as_text=True)[:2000])
    return response.get_data(as_text=True)


def _send(client: FlaskClient, path: str, data: dict[str, Any], *, page: str | None = None,
          revision: bool = True, **kwargs: Any) -> Any:
    """POST a form as the page `page` (default: the page at `path`) shows it: its CSRF token and revision."""
    shown = page if page is not None else _get(client, path)
    fields = {"csrf_token": _found(CSRF_PATTERN, shown), **data}
    if revision and "revision" not in data:
        fields["revision"] = _found(REVISION, shown)
    return client.post(path, data=fields, **kwargs)


def _error_of(page: str, field_id: str) -> str:
    """The message shown next to a field (the error paragraph the field is described by)."""
    match = re.search(rf'<p class="error" id="{re.escape(field_id)}-error">([^<]*)</p>', page)
    assert match, f"no error next to {field_id}"
    return html.unescape(match.group(1))


def _summary(page: str) -> str:
    match = re.search(r'<div class="error-summary".*?</div>', page, re.S)
    assert match, "no error summary"
    return html.unescape(match.group(0))


READY = {"private_place": "yes", "no_observers": "yes", "interpreter": "not_needed", "support_available": "yes",
         "risk": "low", "language": "en"}


def consent_answers(**changes: Any) -> dict[str, Any]:
    answers: dict[str, Any] = {
        "decision": "consent", "items": [i.value for i in ScriptItem], "capacity_confirmed": "y",
        "voluntariness_confirmed": "y", "method": "oral_witnessed", "witness": "Witness Person",
        "interpreter": "", "grant_documentation": "yes", "disclosure_documentation": "pseudonymous",
        "grant_un_mechanisms": "yes", "disclosure_un_mechanisms": "anonymous", "media": ["photo", "document"],
        "follow_up_permitted": "y", "follow_up_method": "Call the aunt's phone", "follow_up_times": "Evenings",
        "excluded_authorities": "az", "excluded_recipients": "",
    }
    answers.update(changes)
    return {k: v for k, v in answers.items() if v is not None}


def begin(client: FlaskClient, *, language: str = "en", **consent: Any) -> int:
    """Readiness and consent, as the pages take them: the new interview's id."""
    response = _send(client, "/interviews/new", {**READY, "language": language}, revision=False)
    assert response.status_code == 303 and response.headers["Location"] == "/interviews/new/consent"
    response = _send(client, "/interviews/new/consent", consent_answers(**consent), revision=False)
    assert response.status_code == 303, response.get_data(as_text=True)[:3000]
    match = re.fullmatch(r"/interviews/(\d+)/person", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def counts(app: Flask) -> dict[str, int]:
    with app.app_context():
        return {name: db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0
                for name, model in (("Person", Person), ("StoredTestimony", StoredTestimony),
                                    ("ConsentRecord", ConsentRecord), ("Incident", Incident),
                                    ("Attachment", Attachment), ("InterviewNotHeld", InterviewNotHeld))}


def stored(app: Flask, testimony_id: int) -> StoredTestimony:
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        assert testimony is not None
        db.session.expunge(testimony)
        return testimony


def events(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)
                                       .order_by(AuditEvent.seq)))


def read(app: Flask, testimony_id: int, user: TestUser) -> Any:
    from intake.accounts.models import Account
    from intake.core.access import ALL_PARTS, open_record

    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        view = open_record(db.session.get(Account, user.id), testimony, ALL_PARTS, config=app.config)
        db.session.commit()
        return view


INCIDENT = {"type": "shelling", "date_precision": "day", "date_start": "2023-09-19", "place_id": "stepanakert",
            "victims_count": "2", "victims_description": "two neighbours", "perpetrator_description": "artillery",
            "perpetrator_involvement": "carried_out", "source_relation": "saw"}


def upload(client: FlaskClient, testimony_id: int, content: bytes, name: str, medium: str, **extra: Any) -> Any:
    """Send a file as the attachments page's form does. The body is encoded in memory: the test client would
    spool a large one to a temporary file it never closes."""
    path = f"/interviews/{testimony_id}/attachments"
    page = _get(client, path)
    fields = {"csrf_token": _found(CSRF_PATTERN, page), "revision": _found(REVISION, page), "medium": medium,
              "file": FileStorage(io.BytesIO(content), filename=name), **extra}
    boundary, body = encode_multipart(fields)
    return client.post(path, data=body, content_type=f"multipart/form-data; boundary={boundary}")


@pytest.fixture
def amira(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("amira", ["interviewer"])


@pytest.fixture
def signed_in(client: FlaskClient, auth: Auth, amira: TestUser) -> FlaskClient:
    assert auth.sign_in(amira).status_code == 303
    return client


def other_interviewer(app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock,
                      name: str = "bob") -> FlaskClient:
    user = create_user(name, ["interviewer"])
    client = app.test_client()
    assert Auth(client, totp_clock).sign_in(user).status_code == 303
    return client


# ---------------------------------------------------------------------------------------------------------------
# The whole interview


def test_a_whole_interview_without_javascript_from_readiness_to_submit(
        app: Flask, signed_in: FlaskClient, amira: TestUser) -> None:
    client = signed_in
    assert "Interviews" in _get(client, "/") and 'href="/interviews/new"' in _get(client, "/")
    page = _get(client, "/interviews/new")
    assert "Step 1 of 7" in page and 'aria-current="step"' in page
    response = _send(client, "/interviews/new", READY, revision=False)
    assert response.status_code == 303 and response.headers["Location"] == "/interviews/new/consent"
    assert counts(app)["StoredTestimony"] == 0 and counts(app)["InterviewNotHeld"] == 0
    page = _get(client, "/interviews/new/consent")
    script = scripts.latest("en")
    assert html.escape(script.items["right_to_withdraw"], quote=True) in page
    assert "Step 2 of 7" in page

    testimony_id = begin(client)
    assert counts(app) | {"InterviewNotHeld": 0} == {"Person": 1, "StoredTestimony": 1, "ConsentRecord": 1,
                                                     "Incident": 0, "Attachment": 0, "InterviewNotHeld": 0}
    base = f"/interviews/{testimony_id}"
    page = _get(client, f"{base}/person")
    assert "Step 3 of 7" in page and re.search(r'<input checked[^>]*value="anonymous"', page)
    response = _send(client, f"{base}/person", {"keep_anonymous": "identified", "name": "Anahit Petrosyan",
                                                 "birth_year": "1980", "contact": "", "relatives": "",
                                                 "address": ""})
    assert response.status_code == 303 and response.headers["Location"] == f"{base}/testimony"

    page = _get(client, f"{base}/testimony")
    assert "Step 4 of 7" in page and "/static/interview.js" in page and "data-autosave" in page
    response = _send(client, f"{base}/testimony", {"narrative": NARRATIVE, "then": "continue"})
    assert response.status_code == 303 and response.headers["Location"] == f"{base}/incidents"

    response = _send(client, f"{base}/incidents", INCIDENT)
    assert response.status_code == 303 and response.headers["Location"] == f"{base}/incidents"
    response = _send(client, f"{base}/incidents", {
        "type": "checkpoint_detention", "date_precision": "month", "date_start": "2023-10",
        "place_id": "lachin-corridor", "declined_perpetrators": "y", "source_relation": "lived"})
    assert response.status_code == 303
    page = _get(client, f"{base}/incidents")
    assert "Shelling or artillery strike" in page and "Stepanakert" in page
    with app.app_context():
        first, second = db.session.scalars(sa.select(Incident.id).order_by(Incident.id)).all()
    edit = _get(client, f"{base}/incidents/{first}")
    assert 'value="2023-09-19"' in edit and '<option value="stepanakert" data-names' in edit
    response = _send(client, f"{base}/incidents/{first}", {**INCIDENT, "victims_count": "3"}, page=edit)
    assert response.status_code == 303
    response = _send(client, f"{base}/incidents", {"type": "looting_pillage", "date_precision": "unknown"})
    assert response.status_code == 303
    with app.app_context():
        third = db.session.scalars(sa.select(Incident.id).order_by(Incident.id.desc())).first()
    response = _send(client, f"{base}/incidents/{third}/remove", {}, page=_get(client, f"{base}/incidents"))
    assert response.status_code == 303

    page = _get(client, f"{base}/attachments")
    assert 'value="photo"' in page and 'value="document"' in page and 'value="audio"' not in page
    assert upload(client, testimony_id, PNG, "DCIM/photos/street.png", "photo", graphic="y").status_code == 303
    page = _get(client, f"{base}/attachments")
    assert "street.png" in page and hashlib.sha256(PNG).hexdigest() in page and "photos" not in page

    page = _get(client, f"{base}/referral")
    assert "Call the aunt&#39;s phone" in page and "Evenings" in page
    response = _send(client, f"{base}/referral", {"wellbeing": "settled", "outcome": "accepted",
                                                   "services": ["psychosocial", "legal_aid"], "note": ""})
    assert response.status_code == 303 and response.headers["Location"] == f"{base}/review"

    page = _get(client, f"{base}/review")
    assert "Step 7 of 7" in page and "Anahit Petrosyan" in page and html.escape(NARRATIVE) in page
    assert hashlib.sha256(PNG).hexdigest() in page and "Legal aid" in page
    response = _send(client, f"{base}/review", {"idempotency_key": _found(KEY, page)}, page=page)
    assert response.status_code == 303 and response.headers["Location"] == base
    page = _get(client, base)
    assert "Submitted" in page and "Correct until" in page and "UTC" in page
    listing = _get(client, "/interviews/")
    assert stored(app, testimony_id).pseudonym in listing and "Correct" in listing

    view = read(app, testimony_id, amira)
    assert view.status == "submitted" and view.narrative == NARRATIVE
    assert view.identity == {"name": "Anahit Petrosyan", "birth_year": 1980}
    assert [i.type for i in view.incidents] == ["shelling", "checkpoint_detention"]
    assert view.incidents[0].details["victims"] == {"count": 3, "description": "two neighbours"}
    assert view.incidents[0].details["place"]["id"] == "stepanakert"
    assert view.incidents[1].details["perpetrators"] is None
    assert view.attachments[0].details["filename"] == "street.png" and view.attachments[0].graphic
    assert view.details["referral"]["services"] == ["legal_aid", "psychosocial"]
    assert view.consent is not None and view.consent.exclusions == [["authorities_of", "AZ"]]
    assert view.consent.particulars is not None and view.consent.particulars["witness"] == "Witness Person"
    testimony = stored(app, testimony_id)
    assert NARRATIVE.encode() not in (testimony.narrative or b"")


def test_the_steps_of_a_submitted_interview_keep_working_for_corrections_until_the_deadline(
        app: Flask, signed_in: FlaskClient) -> None:
    client = signed_in
    testimony_id = begin(client)
    base = f"/interviews/{testimony_id}"
    _send(client, f"{base}/referral", {"wellbeing": "settled", "outcome": "not_needed"})
    page = _get(client, f"{base}/review")
    assert _send(client, f"{base}/review", {"idempotency_key": _found(KEY, page)}, page=page).status_code == 303
    response = _send(client, f"{base}/testimony", {"narrative": "A correction.", "then": "stay"})
    assert response.status_code == 303
    assert "A correction." in _get(client, f"{base}/testimony")
    assert stored(app, testimony_id).status == "submitted"


# ---------------------------------------------------------------------------------------------------------------
# Nothing personal without consent


def test_an_unsafe_interview_is_advised_against_and_only_its_not_being_held_is_recorded(
        app: Flask, signed_in: FlaskClient, amira: TestUser) -> None:
    client = signed_in
    response = _send(client, "/interviews/new", {**READY, "no_observers": "no", "risk": "high"}, revision=False)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Do not hold this interview now" in page
    assert "Other people can see or hear the interview." in page
    assert "the risk has not been reduced" in page
    assert counts(app) == {"Person": 0, "StoredTestimony": 0, "ConsentRecord": 0, "Incident": 0, "Attachment": 0,
                           "InterviewNotHeld": 1}
    with app.app_context():
        row = db.session.scalars(sa.select(InterviewNotHeld)).one()
        assert (row.stage, row.reasons, row.interviewer_id) == ("readiness", ["observers_present",
                                                                              "risk_unmitigated"], amira.id)
    # Nothing is carried on to the consent step.
    response = client.get("/interviews/new/consent")
    assert response.status_code == 303 and response.headers["Location"] == "/interviews/new"
    # A medium risk that is mitigated may go ahead, and records nothing yet.
    response = _send(client, "/interviews/new", {**READY, "risk": "medium", "risk_mitigated": "y"}, revision=False)
    assert response.status_code == 303 and counts(app)["InterviewNotHeld"] == 1


def test_unanswered_readiness_questions_are_named_next_to_them(app: Flask, signed_in: FlaskClient) -> None:
    response = _send(signed_in, "/interviews/new", {"language": "en"}, revision=False)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert _error_of(page, "private_place") == "Answer this question."
    assert _error_of(page, "risk") == "Answer this question."
    assert counts(app)["InterviewNotHeld"] == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_person_who_does_not_consent_leaves_nothing_about_them(app: Flask, signed_in: FlaskClient) -> None:
    client = signed_in
    assert _send(client, "/interviews/new", READY, revision=False).status_code == 303
    response = _send(client, "/interviews/new/consent",
                     consent_answers(decision="refuse", witness="Refusing Witness-7c1"), revision=False)
    assert response.status_code == 200
    assert "Nothing about this person was recorded" in response.get_data(as_text=True)
    assert counts(app) == {"Person": 0, "StoredTestimony": 0, "ConsentRecord": 0, "Incident": 0, "Attachment": 0,
                           "InterviewNotHeld": 1}
    with app.app_context():
        row = db.session.scalars(sa.select(InterviewNotHeld)).one()
        assert (row.stage, row.reasons) == ("consent", ["consent_refused"])
        texts = [e.entry for e in db.session.scalars(sa.select(AuditEvent))]
        assert not any("Refusing Witness-7c1" in t for t in texts)
    assert client.get("/interviews/new/consent").status_code == 303


def test_consent_that_is_not_informed_is_refused_next_to_its_fields_and_nothing_is_stored(
        app: Flask, signed_in: FlaskClient) -> None:
    client = signed_in
    assert _send(client, "/interviews/new", READY, revision=False).status_code == 303
    response = _send(client, "/interviews/new/consent",
                     consent_answers(items=["uses"], grant_documentation="no", witness="", capacity_confirmed=None,
                                     excluded_countries="Armenia", review_date="2001-01-01"), revision=False)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert _error_of(page, "excluded_countries").startswith("A country is named by its two-letter code")
    # The form's own check went first; with it fixed, the consent rules speak next to their fields.
    response = _send(client, "/interviews/new/consent",
                     consent_answers(items=["uses"], grant_documentation="no", witness="", capacity_confirmed=None,
                                     review_date="2001-01-01"), revision=False)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert _error_of(page, "items") == "Every part of the consent script must be read and confirmed."
    assert _error_of(page, "grant_documentation").startswith("Without consent to keep the testimony nothing")
    assert _error_of(page, "witness") == "Oral consent needs a witness: give the witness's name."
    assert _error_of(page, "capacity_confirmed").startswith("Consent needs the person to be well enough")
    assert _error_of(page, "review_date") == "The review date must be in the future."
    assert counts(app) == {"Person": 0, "StoredTestimony": 0, "ConsentRecord": 0, "Incident": 0, "Attachment": 0,
                           "InterviewNotHeld": 0}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_pressing_record_consent_twice_begins_one_interview(app: Flask, signed_in: FlaskClient) -> None:
    client = signed_in
    assert _send(client, "/interviews/new", READY, revision=False).status_code == 303
    page = _get(client, "/interviews/new/consent")
    fields = {"csrf_token": _found(CSRF_PATTERN, page), "start_key": _found(START_KEY, page), **consent_answers()}
    first = client.post("/interviews/new/consent", data=fields)
    assert first.status_code == 303
    # The second press finds the readiness answers gone; sent again with them, it still begins nothing new.
    assert _send(client, "/interviews/new", READY, revision=False).status_code == 303
    second = client.post("/interviews/new/consent", data=fields)
    assert second.status_code == 303 and second.headers["Location"] == first.headers["Location"]
    assert counts(app)["StoredTestimony"] == 1 and counts(app)["ConsentRecord"] == 1


def test_no_testimony_page_exists_before_consent_and_others_records_are_refused_and_audited(
        app: Flask, signed_in: FlaskClient, amira: TestUser, create_user: Callable[..., TestUser],
        totp_clock: TotpClock) -> None:
    client = signed_in
    response = client.get("/interviews/new/consent")
    assert response.status_code == 303 and response.headers["Location"] == "/interviews/new"
    assert client.get("/interviews/1/testimony").status_code == 404  # no testimony exists before consent
    assert counts(app)["StoredTestimony"] == 0

    bob = other_interviewer(app, create_user, totp_clock)
    theirs = begin(bob)
    _send(bob, f"/interviews/{theirs}/testimony", {"narrative": "Bob's notes", "then": "stay"})
    revision = stored(app, theirs).revision
    response = client.get(f"/interviews/{theirs}/testimony")
    assert response.status_code == 403
    assert "Only the interviewer who recorded this interview can open it." in response.get_data(as_text=True)
    assert "Bob&#39;s notes" not in response.get_data(as_text=True)
    refused = events(app, "record_access_refused")
    assert [(e.actor_id, e.target_ids, e.details["why"]) for e in refused] == [(amira.id, [theirs], "not_own")]
    page = _get(client, "/interviews/")
    response = _send(client, f"/interviews/{theirs}/testimony", {"narrative": "overwritten", "revision":
                                                                  str(revision)}, page=page)
    assert response.status_code == 403
    assert stored(app, theirs).revision == revision
    assert len(events(app, "record_access_refused")) == 2
    assert client.get("/interviews/").get_data(as_text=True).count(stored(app, theirs).pseudonym) == 0
    for step in ("person", "incidents", "attachments", "referral", "review", ""):
        assert client.get(f"/interviews/{theirs}/{step}".rstrip("/")).status_code == 403, step


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_wizard_needs_the_interviewer_permission(app: Flask, client: FlaskClient, auth: Auth,
                                                     create_user: Callable[..., TestUser]) -> None:
    reviewer = create_user("rita", ["reviewer"])
    assert auth.sign_in(reviewer).status_code == 303
    assert client.get("/interviews/").status_code == 403
    assert client.get("/interviews/new").status_code == 403
    assert 'href="/interviews/"' not in _get(client, "/")


# ---------------------------------------------------------------------------------------------------------------
# Bad input: a message next to the field, nothing stored


@pytest.mark.parametrize("changes, field_id, message", [
    ({"date_start": "2999-01-01"}, "date_start", "This date is in the future."),
    ({"date_precision": "range", "date_start": "2023-09-20", "date_end": "2023-09-19"}, "date_end",
     "The end of the period is before its start."),
    ({"type": "no_such_type"}, "type", "Choose a type of incident from the list."),
    ({"place_id": "atlantis"}, "place_id", "Choose a place from the list, or describe it in words."),
    ({"victims_count": "many"}, "victims_count", "Give the number of victims as a whole number, or leave it empty."),
    ({"date_precision": "unknown", "date_start": "someday"}, "date_start",
     "You chose that the date is not known: clear the date, or say how precisely it is known."),
])
def test_a_bad_incident_gets_its_message_next_to_the_field_and_nothing_is_stored(
        app: Flask, signed_in: FlaskClient, changes: dict[str, str], field_id: str, message: str) -> None:
    testimony_id = begin(signed_in)
    revision = stored(app, testimony_id).revision
    response = _send(signed_in, f"/interviews/{testimony_id}/incidents", {**INCIDENT, **changes})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert _error_of(page, field_id) == message
    assert message in _summary(page)
    assert counts(app)["Incident"] == 0 and stored(app, testimony_id).revision == revision


def test_a_file_larger_than_the_limit_is_refused_next_to_the_field_and_nothing_is_kept(
        make_app: Callable[..., Flask], create_user: Callable[..., TestUser], totp_clock: TotpClock) -> None:
    app = make_app(ATTACHMENT_MAX_BYTES=2048)
    client = other_interviewer(app, create_user, totp_clock, "amira")
    testimony_id = begin(client)
    revision = stored(app, testimony_id).revision
    response = upload(client, testimony_id, PNG + bytes(4096), "big.png", "photo")
    assert response.status_code == 422
    assert _error_of(response.get_data(as_text=True), "file").startswith("This file is larger than the limit")
    assert counts(app)["Attachment"] == 0 and stored(app, testimony_id).revision == revision
    with app.app_context():
        assert db.session.scalar(sa.text("SELECT count(*) FROM attachment_chunks")) == 0
    # A body far beyond the limit is refused before it is read.
    response = upload(client, testimony_id, PNG + bytes(2 * 1024 * 1024), "huge.png", "photo")
    assert response.status_code == 413
    assert counts(app)["Attachment"] == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_upload_page_takes_files_larger_than_the_applications_request_limit(
        app: Flask, signed_in: FlaskClient) -> None:
    testimony_id = begin(signed_in)
    content = PNG + bytes(int(1.5 * 1024 * 1024))
    assert len(content) > app.config["MAX_CONTENT_LENGTH"]
    assert upload(signed_in, testimony_id, content, "large.png", "photo").status_code == 303
    assert hashlib.sha256(content).hexdigest() in _get(signed_in, f"/interviews/{testimony_id}/attachments")
    # Elsewhere the application's limit stands.
    page = _get(signed_in, f"/interviews/{testimony_id}/testimony")
    response = _send(signed_in, f"/interviews/{testimony_id}/testimony",
                     {"narrative": "x" * (1024 * 1024 + 10)}, page=page)
    assert response.status_code == 413


@pytest.mark.parametrize("consented, content, name, medium, message", [
    (["photo", "document"], PDF, "scan.pdf", "photo",
     "This file is a document, not a photo. Choose what it really is."),
    (["document"], PNG, "face.png", "photo",
     "The person did not consent to a photo being kept, so this file cannot be added."),
    (["photo"], b"MZ\x90\x00 not a photo", "run.exe", "photo", "This kind of file is not accepted."),
])
def test_a_file_the_consent_does_not_cover_or_that_is_not_what_it_says_is_refused(
        app: Flask, signed_in: FlaskClient, consented: list[str], content: bytes, name: str, medium: str,
        message: str) -> None:
    testimony_id = begin(signed_in, media=consented)
    page = _get(signed_in, f"/interviews/{testimony_id}/attachments")
    for m in ("audio", "photo", "video", "document"):
        assert (f'value="{m}"' in page) == (m in consented)
    revision = stored(app, testimony_id).revision
    response = upload(signed_in, testimony_id, content, name, medium)
    assert response.status_code == 422
    assert _error_of(response.get_data(as_text=True), "file").startswith(message)
    assert counts(app)["Attachment"] == 0 and stored(app, testimony_id).revision == revision


def test_a_draft_open_in_two_tabs_keeps_the_first_save_and_refuses_the_stale_one(
        app: Flask, signed_in: FlaskClient) -> None:
    testimony_id = begin(signed_in)
    path = f"/interviews/{testimony_id}/testimony"
    first_tab = _get(signed_in, path)
    second_tab = _get(signed_in, path)
    assert _send(signed_in, path, {"narrative": "From the first tab", "then": "stay"}, page=first_tab)\
        .status_code == 303
    revision = stored(app, testimony_id).revision
    response = _send(signed_in, path, {"narrative": "From the second tab", "then": "stay"}, page=second_tab)
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "changed in another window or tab" in _summary(page)
    assert "From the second tab" in page  # what was typed is still there to copy
    assert stored(app, testimony_id).revision == revision
    assert "From the first tab" in _get(signed_in, path)
    # The same for an incident added from a stale page.
    incidents = f"/interviews/{testimony_id}/incidents"
    stale = _get(signed_in, incidents)
    assert _send(signed_in, incidents, INCIDENT).status_code == 303
    response = _send(signed_in, incidents, INCIDENT, page=stale)
    assert response.status_code == 409 and counts(app)["Incident"] == 1


def _submitted(client: FlaskClient, testimony_id: int) -> None:
    base = f"/interviews/{testimony_id}"
    assert _send(client, f"{base}/referral", {"wellbeing": "settled", "outcome": "declined"}).status_code == 303
    page = _get(client, f"{base}/review")
    assert _send(client, f"{base}/review", {"idempotency_key": _found(KEY, page)}, page=page).status_code == 303


def test_after_the_correction_window_the_interview_is_locked_for_its_interviewer(
        app: Flask, signed_in: FlaskClient) -> None:
    testimony_id = begin(signed_in)
    _submitted(signed_in, testimony_id)
    path = f"/interviews/{testimony_id}/testimony"
    page = _get(signed_in, path)
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        assert testimony is not None
        testimony.submitted_at = utcnow() - timedelta(hours=app.config["CORRECTION_HOURS"] + 1)
        db.session.commit()
    revision = stored(app, testimony_id).revision
    response = _send(signed_in, path, {"narrative": "Too late", "then": "stay"}, page=page)
    assert response.status_code == 403
    assert "The time for corrections has ended" in response.get_data(as_text=True)
    assert stored(app, testimony_id).revision == revision
    response = signed_in.get(path)
    assert response.status_code == 403 and "The time for corrections has ended" in response.get_data(as_text=True)
    assert "Locked" in _get(signed_in, "/interviews/")
    assert [e.details["why"] for e in events(app, "record_access_refused")] == ["correction_window_closed"] * 2


# ---------------------------------------------------------------------------------------------------------------
# Languages, the person, pauses, submission, autosave


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_consent_page_shows_the_armenian_script_after_choosing_armenian(
        app: Flask, signed_in: FlaskClient) -> None:
    assert _send(signed_in, "/interviews/new", {**READY, "language": "hy"}, revision=False).status_code == 303
    page = _get(signed_in, "/interviews/new/consent")
    script = scripts.latest("hy")
    assert f'<p lang="hy" id="script-who_collects_and_why">{html.escape(script.items["who_collects_and_why"])}' \
        in page
    assert f'lang="hy">{html.escape(script.title)}' in page
    assert html.escape(script.purposes["documentation"]) in page
    testimony_id = begin(signed_in, language="hy")
    with app.app_context():
        record = db.session.scalars(sa.select(ConsentRecord).where(ConsentRecord.testimony_id == testimony_id)).one()
        assert (record.script_language, record.script_hash) == ("hy", script.hash)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_pages_speak_the_interviewers_language(app: Flask, signed_in: FlaskClient) -> None:
    response = signed_in.post("/language", data={"csrf_token": _found(CSRF_PATTERN, _get(signed_in, "/")),
                                                 "lang": "ru", "next": "/interviews/new"})
    assert response.status_code == 303
    page = _get(signed_in, "/interviews/new")
    assert 'lang="ru"' in page
    testimony_id = begin(signed_in)
    page = _get(signed_in, f"/interviews/{testimony_id}/incidents")
    assert "Обстрел или артиллерийский удар" in page and "Степанакерт" in page


def test_a_person_interviewed_before_is_flagged_without_showing_who(
        app: Flask, signed_in: FlaskClient, create_user: Callable[..., TestUser], totp_clock: TotpClock) -> None:
    bob = other_interviewer(app, create_user, totp_clock)
    earlier = begin(bob)
    identity = {"keep_anonymous": "identified", "name": "Narine Hakobyan", "birth_year": "1975"}
    assert _send(bob, f"/interviews/{earlier}/person", identity).status_code == 303
    testimony_id = begin(signed_in)
    response = _send(signed_in, f"/interviews/{testimony_id}/person",
                     {**identity, "name": "narine  HAKOBYAN"}, follow_redirects=True)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "This person may already have been interviewed on" in page
    assert stored(app, earlier).pseudonym not in page and "bob" not in page


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_anonymous_is_the_default_and_contradicting_it_is_refused(app: Flask, signed_in: FlaskClient) -> None:
    testimony_id = begin(signed_in)
    path = f"/interviews/{testimony_id}/person"
    response = _send(signed_in, path, {"keep_anonymous": "anonymous", "name": "Someone"})
    assert response.status_code == 422
    assert _error_of(response.get_data(as_text=True), "keep_anonymous").startswith("You chose to keep the person")
    assert _send(signed_in, path, {"keep_anonymous": "anonymous"}).status_code == 303
    with app.app_context():
        person = db.session.scalars(sa.select(Person)).one()
        assert person.identity is None and person.name_tag is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_pausing_keeps_what_was_written_and_a_paused_interview_cannot_be_submitted(
        app: Flask, amira: TestUser, signed_in: FlaskClient) -> None:
    testimony_id = begin(signed_in)
    base = f"/interviews/{testimony_id}"
    page = _get(signed_in, f"{base}/testimony")
    assert f'formaction="{base}/pause"' in page
    response = _send(signed_in, f"{base}/pause", {"narrative": "Written before the pause", "action": "pause"},
                     page=page)
    assert response.status_code == 303 and response.headers["Location"] == f"{base}/testimony"
    page = _get(signed_in, f"{base}/testimony")
    assert "The interview is paused" in page and "Written before the pause" in page
    _send(signed_in, f"{base}/referral", {"wellbeing": "settled", "outcome": "not_needed"})
    review = _get(signed_in, f"{base}/review")
    response = _send(signed_in, f"{base}/review", {"idempotency_key": _found(KEY, review)}, page=review)
    assert response.status_code == 422
    assert "resume it before submitting" in _summary(response.get_data(as_text=True))
    assert stored(app, testimony_id).status == "draft"
    page = _get(signed_in, f"{base}/testimony")
    assert _send(signed_in, f"{base}/pause", {"narrative": "Written before the pause", "action": "resume"},
                 page=page).status_code == 303
    view = read(app, testimony_id, amira)
    assert [p["ended"] is not None for p in view.details["pauses"]] == [True]


def test_a_double_clicked_or_retried_submit_submits_once(app: Flask, signed_in: FlaskClient) -> None:
    testimony_id = begin(signed_in)
    base = f"/interviews/{testimony_id}"
    review = _get(signed_in, f"{base}/review")
    response = _send(signed_in, f"{base}/review", {"idempotency_key": _found(KEY, review)}, page=review)
    assert response.status_code == 422  # no referral step yet
    assert "Complete the wellbeing and referral step" in _summary(response.get_data(as_text=True))
    _send(signed_in, f"{base}/referral", {"wellbeing": "settled", "outcome": "not_needed"})
    review = _get(signed_in, f"{base}/review")
    fields = {"idempotency_key": _found(KEY, review)}
    first = _send(signed_in, f"{base}/review", fields, page=review)
    second = _send(signed_in, f"{base}/review", fields, page=review)
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"] == base
    assert len(events(app, "testimony_submitted")) == 1
    assert counts(app)["StoredTestimony"] == 1
    page = _get(signed_in, base)
    assert "Submitted" in page
    # Another key for the submitted interview is refused.
    response = _send(signed_in, f"{base}/review", {"idempotency_key": "another-key-" + "x" * 20}, page=review)
    assert response.status_code == 403 and "already submitted" in response.get_data(as_text=True)


def test_autosave_answers_204_with_the_new_revision_and_refuses_a_stale_page_without_a_body(
        app: Flask, amira: TestUser, signed_in: FlaskClient) -> None:
    testimony_id = begin(signed_in)
    path = f"/interviews/{testimony_id}/testimony"
    page = _get(signed_in, path)
    shown = int(_found(REVISION, page))
    response = _send(signed_in, path, {"narrative": "Saved in the background"}, page=page,
                     headers={"X-Autosave": "1"})
    assert response.status_code == 204 and response.get_data() == b""
    assert response.headers["X-Revision"] == str(shown + 1) == str(stored(app, testimony_id).revision)
    assert read(app, testimony_id, amira).narrative == "Saved in the background"
    # The next autosave from the same page sends the revision it was given.
    response = _send(signed_in, path, {"narrative": "And again", "revision": str(shown + 1)}, page=page,
                     headers={"X-Autosave": "1"})
    assert response.status_code == 204 and response.headers["X-Revision"] == str(shown + 2)
    # A page that missed a save is refused, with nothing stored and no page in answer.
    response = _send(signed_in, path, {"narrative": "Stale", "revision": str(shown)}, page=page,
                     headers={"X-Autosave": "1"})
    assert response.status_code == 409 and response.get_data() == b""
    assert read(app, testimony_id, amira).narrative == "And again"
    # The referral step autosaves too; an incomplete form is refused the same way.
    referral = f"/interviews/{testimony_id}/referral"
    page = _get(signed_in, referral)
    assert "data-autosave" in page
    response = _send(signed_in, referral, {"wellbeing": "settled", "outcome": "accepted"}, page=page,
                     headers={"X-Autosave": "1"})
    assert response.status_code == 422 and response.get_data() == b""
    response = _send(signed_in, referral, {"wellbeing": "settled", "outcome": "accepted",
                                           "services": ["health"]}, page=page, headers={"X-Autosave": "1"})
    assert response.status_code == 204
    assert read(app, testimony_id, amira).details["referral"]["services"] == ["health"]
