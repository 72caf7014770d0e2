"""Re-identification as a coordinator meets it: a fresh two-factor code, a written reason, the identity shown in the
answer to the form (never in an address), one `reidentified` event per look, and refusals for everyone else, after a
withdrawal and after erasure."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from intake.core.audit import AuditAction
from intake.core.audit.models import AuditEvent
from intake.core.db import db
from intake.testimonies.models import Testimony as StoredTestimony
from intake.withdrawals import withdraw
from tests.conftest import Auth, TestUser, csrf_token, post_form
from tests.interviews import factories as f
from tests.withdrawals import account, full_interview

REASON = "The person asked us to call them back about their request."
EMPTY_REASON = ("Write down why you need to open this record. Do not put names or other identifying details in it: "
                "it is kept in the audit log.")


@pytest.fixture
def amira(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("amira", ["interviewer"])


@pytest.fixture
def nadia(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("nadia", ["coordinator"])


def _text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def _error_of(page: str, field: str) -> str:
    found = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', page)
    return found.group(1) if found else ""


def _events(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)
                                       .order_by(AuditEvent.seq)))


def _page(testimony_id: int) -> str:
    return f"/coordination/records/{testimony_id}/reidentification"


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


def test_the_record_page_leads_to_re_identification(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    auth.sign_in(nadia)
    page = _text(client.get(f"/coordination/records/{testimony_id}"))
    assert f'href="{_page(testimony_id)}"' in page and "Re-identify the person" in page


def test_without_a_fresh_code_the_coordinator_is_sent_to_step_up_and_nothing_is_shown_or_recorded(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    auth.sign_in(nadia)
    form = client.get(_page(testimony_id))
    assert form.status_code == 302 and form.headers["Location"] == f"/step-up?next={_page(testimony_id)}"
    token = csrf_token(client, f"/coordination/records/{testimony_id}")
    sent = client.post(_page(testimony_id), data={"csrf_token": token, "reason": REASON})
    assert sent.status_code == 302 and sent.headers["Location"].startswith("/step-up?next=")
    assert f.SENTINEL_NAME not in _text(sent)
    assert _events(app, AuditAction.REIDENTIFIED) == []


def test_the_form_asks_for_a_reason_that_is_kept_in_the_audit_log(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    _signed_in_with_fresh_code(auth, nadia)
    form = client.get(_page(testimony_id))
    assert form.status_code == 200
    page = _text(form)
    assert '<textarea' in page and 'name="reason"' in page and 'maxlength="2000"' in page
    assert "Kept in the audit log. Do not put names or other identifying details in it." in page
    assert f.SENTINEL_NAME not in page
    assert _events(app, AuditAction.REIDENTIFIED) == []  # showing the form opens nothing


def test_with_a_reason_the_identity_is_shown_in_the_answer_and_each_look_is_one_reidentified_event(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    _signed_in_with_fresh_code(auth, nadia)
    shown = post_form(client, _page(testimony_id), {"reason": f"  {REASON}\r\n "})
    assert shown.status_code == 200  # the answer itself, not a redirect to an address holding it
    assert shown.headers["Cache-Control"] == "no-store"
    page = _text(shown)
    assert f.SENTINEL_NAME in page and "1980" in page
    assert f.SENTINEL_NARRATIVE not in page  # the identity alone
    assert "recorded in the audit log as a re-identification" in page

    [event] = _events(app, AuditAction.REIDENTIFIED)
    assert event.actor_id == nadia.id and event.target_type == "testimony" and event.target_ids == [testimony_id]
    assert event.reason == REASON
    assert event.details == {"parts": ["identity"], "purpose": "reidentification"}
    assert f.SENTINEL_NAME not in str(event.details)
    assert [e for e in _events(app, AuditAction.RECORD_VIEWED) if e.actor_id == nadia.id] == []

    again = post_form(client, _page(testimony_id), {"reason": "A second call, as the first one failed."})
    assert again.status_code == 200 and f.SENTINEL_NAME in _text(again)
    events = _events(app, AuditAction.REIDENTIFIED)
    assert [e.reason for e in events] == [REASON, "A second call, as the first one failed."]
    assert all(e.details["parts"] == ["identity"] for e in events)


@pytest.mark.parametrize("reason, message", [
    ("", EMPTY_REASON),
    ("   \r\n  ", EMPTY_REASON),
    ("x" * 2001, "Use at most 2000 characters."),
    ("a reason with a \x07 bell", "Use plain text: this contains characters that cannot be kept."),
])
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_missing_or_unusable_reason_is_refused_next_to_the_field_and_nothing_is_opened(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser, reason: str,
        message: str) -> None:
    testimony_id = full_interview(app, amira)
    _signed_in_with_fresh_code(auth, nadia)
    refused = post_form(client, _page(testimony_id), {"reason": reason})
    assert refused.status_code == 422
    page = _text(refused)
    assert _error_of(page, "reason") == message
    assert 'href="#reason"' in page  # the error summary leads to the field
    assert f.SENTINEL_NAME not in page
    assert _events(app, AuditAction.REIDENTIFIED) == []
    assert _events(app, AuditAction.RECORD_ACCESS_REFUSED) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_form_needs_its_csrf_token(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    _signed_in_with_fresh_code(auth, nadia)
    missing = client.post(_page(testimony_id), data={"reason": REASON})
    assert missing.status_code == 400
    wrong = client.post(_page(testimony_id), data={"reason": REASON, "csrf_token": "not-the-token"})
    assert wrong.status_code == 400
    assert f.SENTINEL_NAME not in _text(missing) + _text(wrong)
    assert _events(app, AuditAction.REIDENTIFIED) == []


@pytest.mark.parametrize("role", ["reviewer", "interviewer", "auditor", "admin"])
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_other_role_may_re_identify(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, create_user: Callable[..., TestUser],
        role: str) -> None:
    testimony_id = full_interview(app, amira)
    someone = amira if role == "interviewer" else create_user(f"someone-{role}", [role])
    _signed_in_with_fresh_code(auth, someone)
    assert client.get(_page(testimony_id)).status_code == 403
    refused = post_form(client, _page(testimony_id), {"reason": REASON}, token_from="/")
    assert refused.status_code == 403
    assert f.SENTINEL_NAME not in _text(refused)
    assert _events(app, AuditAction.REIDENTIFIED) == []
    denied = _events(app, AuditAction.ACCESS_DENIED)
    assert [(e.actor_id, e.details["endpoint"]) for e in denied] == [(someone.id, "withdrawals.reidentify")] * 2


def test_after_a_withdrawal_re_identification_is_refused_and_the_refusal_recorded(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    _withdraw(app, testimony_id, nadia, received_how="phone", erasure=False)
    _signed_in_with_fresh_code(auth, nadia)
    refused = post_form(client, _page(testimony_id), {"reason": REASON})
    assert refused.status_code == 403
    page = _text(refused)
    assert "The person withdrew their consent, so this record can no longer be opened." in page
    assert f.SENTINEL_NAME not in page
    assert _events(app, AuditAction.REIDENTIFIED) == []
    [event] = _events(app, AuditAction.RECORD_ACCESS_REFUSED)
    assert event.actor_id == nadia.id and event.target_ids == [testimony_id]
    assert event.details == {"parts": ["identity"], "why": "consent_withdrawn", "purpose": "reidentification"}


def test_after_erasure_there_is_no_one_left_to_re_identify(
        app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, nadia: TestUser) -> None:
    testimony_id = full_interview(app, amira)
    _withdraw(app, testimony_id, nadia, received_how="in_person", erasure=True)
    _signed_in_with_fresh_code(auth, nadia)
    page = _text(client.get(_page(testimony_id)))
    assert "erased at the person's request" in page and 'name="reason"' not in page
    assert _page(testimony_id) not in _text(client.get(f"/coordination/records/{testimony_id}"))
    refused = post_form(client, _page(testimony_id), {"reason": REASON}, token_from="/")
    assert refused.status_code == 403
    assert "This record was erased at the person's request." in _text(refused)
    assert _events(app, AuditAction.REIDENTIFIED) == []
    [event] = _events(app, AuditAction.RECORD_ACCESS_REFUSED)
    assert event.details == {"parts": ["identity"], "why": "erased", "purpose": "reidentification"}
