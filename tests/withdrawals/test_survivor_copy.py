"""A survivor's copy of their own data, as a coordinator makes it for them: a fresh two-factor code and a written
reason, one audited opening, a readable self-contained page (or the same file to download) that holds what the
person gave and none of other people's details nor the reviewers' analysis; possible after a withdrawal, not after
erasure."""

from __future__ import annotations

import hashlib
import html
import io
import re
from base64 import b64encode
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from intake.core.access import Part, open_record
from intake.core.access import assignments as access
from intake.core.audit import AuditAction
from intake.core.audit.models import AuditEvent
from intake.core.db import db
from intake.interviews import operations as ops
from intake.review import operations as review
from intake.testimonies.models import Testimony as StoredTestimony
from intake.withdrawals import withdraw
from tests.conftest import Auth, TestUser, csrf_token, post_form
from tests.interviews import factories as f
from tests.withdrawals import account

REASON = "The person asked for a copy of what they told us, by phone."
REMOVED = "[removed: another person's details]"
MARKED = "Aram Sargsyan-Q7"
NARRATIVE = f"{f.SENTINEL_NARRATIVE}. {MARKED} drove us there in his car; we waited until dawn."
# Other people's details, each of which must stay out of the copy.
WITNESS = "Hovsep Witness-4e2a"
INTERPRETER = "Gayane Interpreter-8d1c"
RELATIVES = "Mariam Relative-90bb, my sister"
VICTIMS = "VICTIMS-DESCRIPTION-61f0 the Avetisyan twins"
PERPETRATOR = "PERPETRATOR-DESCRIPTION-a9d3 men in green uniforms"
UNIT = "UNIT-7c55 third battalion"
NOTE = "ANALYST-NOTE-3b7e compare with the hospital list"
PLACE = "PLACE-DESCRIPTION-2d4b at the house of Vardan Hakobyan"
OTHERS = (WITNESS, INTERPRETER, RELATIVES, "Mariam", VICTIMS, "Avetisyan", PERPETRATOR, UNIT, MARKED, "Sargsyan",
          NOTE, PLACE, "Hakobyan")
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"photo-of-the-shelter" * 20


@pytest.fixture
def amira(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("amira", ["interviewer"])


@pytest.fixture
def nadia(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("nadia", ["coordinator"])


@pytest.fixture
def rafael(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("rafael", ["reviewer"])


def _recorded(app: Flask, interviewer: TestUser, reviewer: TestUser, coordinator: TestUser) -> int:
    """A submitted interview whose consent was witnessed and interpreted, with relatives, victims and perpetrators
    described and a photo; a reviewer marked a name in the narrative and wrote a note. Its id."""
    with app.app_context():
        actor = account(interviewer)
        testimony = ops.start_interview(
            f.readiness(), f.consent(method="oral_witnessed", witness=WITNESS, interpreter=INTERPRETER,
                                     follow_up_permitted=True, follow_up_method="Through the shelter's office",
                                     follow_up_times="Weekday mornings"),
            actor=actor, config=app.config)
        ops.save_person(testimony, ops.PersonInput(name=f.SENTINEL_NAME, birth_year=1980, contact="+374 55 000000",
                                                   relatives=RELATIVES), actor=actor, config=app.config)
        ops.save_narrative(testimony, NARRATIVE, declined=False, actor=actor, config=app.config)
        ops.add_incident(testimony, f.incident(victims_description=VICTIMS, perpetrators=(
            ops.Perpetrator(description=PERPETRATOR, unit=UNIT, involvement="carried_out"),)),
            actor=actor, config=app.config)
        ops.add_incident(testimony, f.incident(type="checkpoint_detention", date_precision="month",
                                               date_start="2023-10", place_id="lachin-corridor",
                                               declined=frozenset({"perpetrators"})), actor=actor, config=app.config)
        ops.add_incident(testimony, f.incident(place_id="", place_description=PLACE), actor=actor,
                         config=app.config)
        ops.store_interview_attachment(testimony, io.BytesIO(JPEG), filename="shelter-Mariam.jpg",
                                       declared_medium="photo", graphic=False, actor=actor, config=app.config)
        ops.save_referral(testimony, f.referral(), actor=actor, config=app.config)
        assert ops.submit(testimony, idempotency_key="c" * 24, actor=actor, config=app.config) is True
        analyst = account(reviewer)
        access.assign(testimony, analyst, actor=account(coordinator))
        view = open_record(analyst, testimony, {Part.CONTENT}, config=app.config, purpose="review")
        assert len(review.mark_identifying(view, testimony, MARKED, "name", actor=analyst, config=app.config)) == 1
        review.add_note(testimony, NOTE, actor=analyst, config=app.config)
        db.session.commit()
        return int(testimony.id)


def _text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def _error_of(page: str, field: str) -> str:
    found = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', page)
    return found.group(1) if found else ""


def _events(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)
                                       .order_by(AuditEvent.seq)))


def _opened_by(app: Flask, user: TestUser) -> list[AuditEvent]:
    return [e for e in _events(app, AuditAction.RECORD_VIEWED) if e.actor_id == user.id]


def _page(testimony_id: int) -> str:
    return f"/coordination/records/{testimony_id}/survivor-copy"


def _pseudonym(app: Flask, testimony_id: int) -> str:
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        assert testimony is not None
        return testimony.pseudonym


def _withdraw(app: Flask, testimony_id: int, coordinator: TestUser, *, received_how: str, erasure: bool) -> None:
    """Record the person's withdrawal of everything (and erasure, when asked), as the coordinator."""
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        assert testimony is not None
        withdraw(testimony, purposes=[], received_how=received_how, erasure=erasure, actor=account(coordinator),
                 config=app.config)
        db.session.commit()


def _signed_in_with_fresh_code(auth: Auth, user: TestUser) -> None:
    assert auth.sign_in(user).status_code == 303
    assert auth.step_up(user).status_code == 303


def _assert_is_the_persons_own_data_only(document: str) -> None:
    assert f.SENTINEL_NAME in document and "1980" in document and "+374 55 000000" in document
    assert f.SENTINEL_NARRATIVE in document and "drove us there in his car; we waited until dawn." in document
    assert REMOVED in document
    assert document.count(REMOVED) >= 6  # witness, interpreter, relatives, victims, perpetrator, marked name
    for other in OTHERS:
        assert other not in document, other
    # The incidents as told, the consent as given, the photo by its fingerprint.
    for expected in ("Shelling", "Stepanakert", "2023-09-19", "Number: 2", "Lachin", "2023-10",
                     "You chose not to answer", "Keep and study the testimony", "United Nations bodies",
                     "Anonymous", "Code instead of the name", "Photo", "Through the shelter's office",
                     "Weekday mornings", hashlib.sha256(JPEG).hexdigest()):
        assert expected in document, expected
    assert "shelter-" not in document  # the file's name is not needed to recognise it


def _assert_self_contained(raw: str, policy: str) -> None:
    assert raw.lstrip().lower().startswith("<!doctype html>")
    assert "<script" not in raw.lower()
    assert 'rel="stylesheet"' not in raw and " src=" not in raw
    assert re.findall(r'href="([^"]*)"', raw) == ["data:,"]  # no link leads anywhere
    assert "<form" not in raw and "csrf" not in raw.lower()
    [style] = re.findall(r"<style>(.*?)</style>", raw, flags=re.S)
    digest = "'sha256-" + b64encode(hashlib.sha256(style.encode()).digest()).decode() + "'"
    assert f"style-src {digest}" in policy  # the page's own styles are the only ones allowed
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy


def test_the_record_page_leads_to_the_survivors_copy(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser, rafael: TestUser) -> None:
    testimony_id = _recorded(app, amira, rafael, nadia)
    auth.sign_in(nadia)
    page = _text(client.get(f"/coordination/records/{testimony_id}"))
    assert f'href="{_page(testimony_id)}"' in page and "A copy of their own data for the person" in page


def test_without_a_fresh_code_the_coordinator_is_sent_to_step_up_and_nothing_is_opened(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser, rafael: TestUser) -> None:
    testimony_id = _recorded(app, amira, rafael, nadia)
    auth.sign_in(nadia)
    form = client.get(_page(testimony_id))
    assert form.status_code == 302 and form.headers["Location"] == f"/step-up?next={_page(testimony_id)}"
    token = csrf_token(client, f"/coordination/records/{testimony_id}")
    sent = client.post(_page(testimony_id), data={"csrf_token": token, "reason": REASON, "download": "y"})
    assert sent.status_code == 302 and sent.headers["Location"].startswith("/step-up?next=")
    assert "Content-Disposition" not in sent.headers
    assert f.SENTINEL_NAME not in _text(sent)
    assert _opened_by(app, nadia) == []


def test_the_copy_holds_what_the_person_gave_without_other_peoples_details_and_is_opened_once(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser, rafael: TestUser) -> None:
    testimony_id = _recorded(app, amira, rafael, nadia)
    _signed_in_with_fresh_code(auth, nadia)
    form = client.get(_page(testimony_id))
    assert form.status_code == 200
    assert "Kept in the audit log. Do not put names or other identifying details in it." in _text(form)
    assert f.SENTINEL_NAME not in _text(form) and _opened_by(app, nadia) == []

    shown = post_form(client, _page(testimony_id), {"reason": REASON, "show": "y"})
    assert shown.status_code == 200 and shown.mimetype == "text/html"
    assert "Content-Disposition" not in shown.headers
    assert shown.headers["Cache-Control"] == "no-store"
    _assert_is_the_persons_own_data_only(_text(shown))
    _assert_self_contained(shown.get_data(as_text=True), shown.headers["Content-Security-Policy"])

    [event] = _opened_by(app, nadia)
    assert event.target_ids == [testimony_id] and event.reason == REASON
    assert event.details == {"parts": ["attachments", "consent", "content", "identity"], "purpose": "survivor_copy"}
    assert _events(app, AuditAction.REIDENTIFIED) == []


def test_the_copy_can_be_downloaded_as_the_same_self_contained_file(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser, rafael: TestUser) -> None:
    testimony_id = _recorded(app, amira, rafael, nadia)
    pseudonym = _pseudonym(app, testimony_id)
    _signed_in_with_fresh_code(auth, nadia)
    shown = post_form(client, _page(testimony_id), {"reason": REASON, "show": "y"})
    downloaded = post_form(client, _page(testimony_id), {"reason": REASON, "download": "y"})
    assert downloaded.status_code == 200 and downloaded.mimetype == "text/html"
    assert downloaded.headers["Content-Disposition"] == f"attachment; filename=record-{pseudonym}.html"
    assert downloaded.headers["Cache-Control"] == "no-store"
    document = _text(downloaded)
    _assert_is_the_persons_own_data_only(document)
    _assert_self_contained(downloaded.get_data(as_text=True), downloaded.headers["Content-Security-Policy"])
    # The same document as the page shown, but for the minute it was made.
    made = re.compile(r"copy made on [^<]*")
    assert made.sub("", document) == made.sub("", _text(shown))
    assert [e.reason for e in _opened_by(app, nadia)] == [REASON, REASON]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_empty_reason_is_refused_next_to_the_field_and_nothing_is_opened(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser, rafael: TestUser) -> None:
    testimony_id = _recorded(app, amira, rafael, nadia)
    _signed_in_with_fresh_code(auth, nadia)
    for data in ({"reason": "", "show": "y"}, {"reason": "  \n ", "download": "y"}):
        refused = post_form(client, _page(testimony_id), data)
        assert refused.status_code == 422 and "Content-Disposition" not in refused.headers
        page = _text(refused)
        assert _error_of(page, "reason") == (
            "Write down why you need to open this record. Do not put names or other identifying details in it: it "
            "is kept in the audit log.")
        assert f.SENTINEL_NAME not in page and f.SENTINEL_NARRATIVE not in page
    assert _opened_by(app, nadia) == []
    assert _events(app, AuditAction.RECORD_ACCESS_REFUSED) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_form_needs_its_csrf_token(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser, rafael: TestUser) -> None:
    testimony_id = _recorded(app, amira, rafael, nadia)
    _signed_in_with_fresh_code(auth, nadia)
    missing = client.post(_page(testimony_id), data={"reason": REASON, "download": "y"})
    wrong = client.post(_page(testimony_id), data={"reason": REASON, "show": "y", "csrf_token": "not-the-token"})
    assert missing.status_code == 400 and wrong.status_code == 400
    assert f.SENTINEL_NAME not in _text(missing) + _text(wrong)
    assert _opened_by(app, nadia) == []


@pytest.mark.parametrize("role", ["reviewer", "interviewer", "auditor", "admin"])
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_other_role_may_make_the_copy(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser, rafael: TestUser,
        create_user: Callable[..., TestUser], role: str) -> None:
    testimony_id = _recorded(app, amira, rafael, nadia)
    someone = {"interviewer": amira, "reviewer": rafael}.get(role) or create_user(f"someone-{role}", [role])
    opened_before = len(_opened_by(app, someone))  # the reviewer opened it to mark a name
    _signed_in_with_fresh_code(auth, someone)
    assert client.get(_page(testimony_id)).status_code == 403
    refused = post_form(client, _page(testimony_id), {"reason": REASON, "download": "y"}, token_from="/")
    assert refused.status_code == 403 and "Content-Disposition" not in refused.headers
    assert f.SENTINEL_NAME not in _text(refused)
    assert len(_opened_by(app, someone)) == opened_before
    denied = _events(app, AuditAction.ACCESS_DENIED)
    assert [(e.actor_id, e.details["endpoint"]) for e in denied] == [(someone.id, "withdrawals.survivor_copy")] * 2


def test_after_a_withdrawal_the_copy_is_still_given_but_re_identification_is_refused(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser, rafael: TestUser) -> None:
    testimony_id = _recorded(app, amira, rafael, nadia)
    _withdraw(app, testimony_id, nadia, received_how="letter", erasure=False)
    _signed_in_with_fresh_code(auth, nadia)
    copy = post_form(client, _page(testimony_id), {"reason": REASON, "show": "y"})
    assert copy.status_code == 200
    document = _text(copy)
    _assert_is_the_persons_own_data_only(document)
    assert "Your withdrawals of consent" in document and "every use" in document
    assert len(_opened_by(app, nadia)) == 1

    refused = post_form(client, f"/coordination/records/{testimony_id}/reidentification", {"reason": REASON})
    assert refused.status_code == 403
    assert "The person withdrew their consent" in _text(refused) and f.SENTINEL_NAME not in _text(refused)
    assert _events(app, AuditAction.REIDENTIFIED) == []


def test_after_erasure_the_copy_is_refused_with_the_reason(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser, rafael: TestUser) -> None:
    testimony_id = _recorded(app, amira, rafael, nadia)
    _withdraw(app, testimony_id, nadia, received_how="in_person", erasure=True)
    _signed_in_with_fresh_code(auth, nadia)
    page = _text(client.get(_page(testimony_id)))
    assert "nothing left to copy" in page and 'name="reason"' not in page
    refused = post_form(client, _page(testimony_id), {"reason": REASON, "download": "y"}, token_from="/")
    assert refused.status_code == 403 and "Content-Disposition" not in refused.headers
    assert "This record was erased at the person's request." in _text(refused)
    assert _opened_by(app, nadia) == []
    [event] = _events(app, AuditAction.RECORD_ACCESS_REFUSED)
    assert event.actor_id == nadia.id
    assert event.details == {"parts": ["attachments", "consent", "content", "identity"], "why": "erased",
                             "purpose": "survivor_copy"}


def test_marks_made_before_a_correction_shortened_the_narrative_are_still_removed() -> None:
    from intake.withdrawals.own_data import redacted_narrative

    text = "We hid with Karen Q. until noon"
    assert redacted_narrative(text, [(12, 20)], "[x]") == "We hid with [x] until noon"
    assert redacted_narrative(text, [(12, 80), (90, 95)], "[x]") == "We hid with [x]"  # past the end: cut, kept
    assert redacted_narrative(text, [(12, 16), (15, 20)], "[x]") == "We hid with [x] until noon"  # overlapping


def test_marks_made_before_a_later_correction_stop_the_copy_until_a_reviewer_checks_them(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser, rafael: TestUser) -> None:
    testimony_id = _recorded(app, amira, rafael, nadia)
    with app.app_context():  # the interviewer corrects the narrative within the correction window
        testimony = db.session.get(StoredTestimony, testimony_id)
        ops.save_narrative(testimony, "Corrected: " + NARRATIVE, declined=False, actor=account(amira),
                           config=app.config)
        db.session.commit()
    _signed_in_with_fresh_code(auth, nadia)
    refused = post_form(client, _page(testimony_id), {"reason": REASON, "show": "y"})
    assert refused.status_code == 422
    assert "Ask a reviewer to check the marks on its narrative before giving the copy." in _text(refused)
    assert MARKED not in _text(refused) and _opened_by(app, nadia) == []
