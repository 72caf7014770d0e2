"""A case's export pages as its members meet them: the preview (which records would go, at which disclosure, and why
the others would not), the build behind a fresh two-factor code, the file's page and its download, cancelling, and
what outsiders get. Builds run before the answer (`EXPORT_RUNNER=inline`), except where the worker is the point."""

from __future__ import annotations

import hashlib
import html
import io
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pyrage
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from intake.cases import operations as cases
from intake.core.audit import AuditAction
from intake.core.audit.models import AuditEvent
from intake.core.db import db, utcnow
from intake.exports.models import Export, ExportStatus
from intake.interviews import operations as interviews
from intake.recipients import operations as recipients
from intake.testimonies.models import Testimony as StoredTestimony
from intake.withdrawals import withdraw
from tests.conftest import Auth, TestUser, TotpClock, csrf_token, post_form
from tests.interviews import factories as f

AGE_HEADER = b"age-encryption.org/v1"
NOT_GRANTED = "The person did not consent to this purpose."
WITHDRAWN_FOR_PURPOSE = "The person withdrew their consent for this purpose."
REFRESH = '<meta http-equiv="refresh" content="3">'


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(EXPORT_RUNNER="inline")


@pytest.fixture
def lena(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("lena", ["legal"])


@dataclass
class CaseFile:
    """A case holding three records, and a recipient whose age identity the test keeps."""

    case_id: int
    recipient_id: int
    identity: pyrage.x25519.Identity
    included: str  # pseudonyms
    not_granted: str
    withdrawn: str

    @property
    def choice(self) -> str:
        return f"{self.recipient_id}-un_mechanisms"

    @property
    def page(self) -> str:
        return f"/cases/{self.case_id}/exports"


def _interview(app: Flask, user: TestUser, *, key: str, **consent: Any) -> int:
    with app.app_context():
        actor = f.account(user)
        testimony = interviews.start_interview(f.readiness(), f.consent(**consent), actor=actor, config=app.config)
        interviews.save_narrative(testimony, f.SENTINEL_NARRATIVE, declined=False, actor=actor, config=app.config)
        interviews.add_incident(testimony, f.incident(), actor=actor, config=app.config)
        interviews.save_referral(testimony, f.referral(), actor=actor, config=app.config)
        assert interviews.submit(testimony, idempotency_key=key, actor=actor, config=app.config) is True
        db.session.commit()
        return int(testimony.id)


def _pseudonym(app: Flask, testimony_id: int) -> str:
    with app.app_context():
        return str(db.session.get_one(StoredTestimony, testimony_id).pseudonym)


def _register(app: Flask, admin: TestUser, *, key: str, category: str, identity: pyrage.x25519.Identity) -> int:
    with app.app_context():
        recipient = recipients.register(recipients.RecipientInput(
            key=key, name=f"Recipient {key}", category=category, country=None, is_authority=False,
            agreement_reference="MoU-2024-1", agreement_date=date(2024, 1, 15), contact="desk@example.org",
            age_recipients=[str(identity.to_public())]), actor=f.account(admin))
        db.session.commit()
        return int(recipient.id)


@pytest.fixture
def case_file(app: Flask, create_user: Callable[..., TestUser], lena: TestUser) -> CaseFile:
    """Lena's case: a planted interview consented for UN mechanisms (anonymous), one consented only for
    international justice, one whose UN consent was withdrawn after it was added; and a UN recipient."""
    amira = create_user("amira", ["interviewer"])
    admin = create_user("ada", ["admin"])
    identity = pyrage.x25519.Identity.generate()
    recipient_id = _register(app, admin, key="un-coi", category="un_mechanism", identity=identity)
    included = f.planted_interview(app, amira)
    elsewhere = _interview(app, amira, key="e" * 24, grants={"documentation": "pseudonymous",
                                                             "international_justice": "pseudonymous"})
    withdrawn = _interview(app, amira, key="d" * 24)
    with app.app_context():
        owner = f.account(lena)
        case = cases.create_case("LC-2024-07", "Shelling of Stepanakert", recipient=None, actor=owner)
        for testimony_id in (included, elsewhere, withdrawn):
            cases.add_testimony(case, db.session.get(StoredTestimony, testimony_id), actor=owner)
        withdraw(db.session.get_one(StoredTestimony, withdrawn), purposes=["un_mechanisms"], received_how="phone",
                 erasure=False, actor=f.account(amira), config=app.config)
        db.session.commit()
        case_id = case.id
    return CaseFile(case_id, recipient_id, identity, _pseudonym(app, included), _pseudonym(app, elsewhere),
                    _pseudonym(app, withdrawn))


def _text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def _row(page: str, pseudonym: str) -> str:
    """The text of the table row naming `pseudonym`, tags removed."""
    for row in re.findall(r"<tr>(.*?)</tr>", page, flags=re.S):
        if pseudonym in row:
            return " ".join(re.sub(r"<[^>]+>", " ", row).split())
    raise AssertionError(f"no row for {pseudonym}")


def _events(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        events = list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)
                                         .order_by(AuditEvent.seq)))
        db.session.expunge_all()
        return events


def _exports(app: Flask) -> list[Export]:
    with app.app_context():
        exports = list(db.session.scalars(sa.select(Export).order_by(Export.id)))
        db.session.expunge_all()
        return exports


def _time_is_up(app: Flask) -> None:
    """The time to download the (only) export ran out a minute ago."""
    with app.app_context():
        export = db.session.scalars(sa.select(Export)).one()
        export.expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()


def _signed_in(auth: Auth, user: TestUser, *, step_up: bool = True) -> None:
    assert auth.sign_in(user).status_code == 303
    if step_up:
        assert auth.step_up(user).status_code == 303


def _build(client: FlaskClient, case_file: CaseFile) -> Any:
    preview = f"{case_file.page}?to={case_file.choice}"
    return post_form(client, case_file.page, {"to": case_file.choice, "next": preview}, token_from=preview)


def _built(app: Flask, client: FlaskClient, case_file: CaseFile) -> str:
    """Build the case file; the address of its page."""
    built = _build(client, case_file)
    assert built.status_code == 303, _text(built)
    return str(built.headers["Location"])


def test_the_preview_lists_each_record_with_its_disclosure_or_why_it_stays_out(
        app: Flask, client: FlaskClient, auth: Auth, lena: TestUser, case_file: CaseFile) -> None:
    _signed_in(auth, lena, step_up=False)
    chooser = _text(client.get(case_file.page))
    assert "Recipient un-coi — United Nations bodies" in chooser
    assert "No case file has been built from this case yet." in chooser

    page = client.get(case_file.page, query_string={"to": case_file.choice})
    assert page.status_code == 200
    text = _text(page)
    counts = " ".join(re.sub(r"<[^>]+>", " ", text.split('id="preview-counts">')[1].split("</dl>")[0]).split())
    assert counts == "Records included 1 Records excluded 2 Attachments that go 0 Attachments withheld 1"
    # The planted interview goes anonymous, so its photo stays behind.
    assert _row(text, case_file.included) == f"{case_file.included} Yes Anonymous 0 go, 1 withheld"
    assert _row(text, case_file.not_granted) == f"{case_file.not_granted} No — — {NOT_GRANTED}"
    assert _row(text, case_file.withdrawn) == f"{case_file.withdrawn} No — — {WITHDRAWN_FOR_PURPOSE}"
    assert "Build the case file" in text
    # Nothing was decrypted to say so.
    for sentinel in (f.SENTINEL_NARRATIVE, *f.IDENTITY_SENTINELS.values()):
        assert sentinel not in text
    assert _exports(app) == []


def test_a_choice_that_is_not_offered_is_refused(
        client: FlaskClient, auth: Auth, lena: TestUser, case_file: CaseFile) -> None:
    _signed_in(auth, lena, step_up=False)
    for wrong in (f"{case_file.recipient_id}-media", "999-un_mechanisms", "nonsense"):
        page = client.get(case_file.page, query_string={"to": wrong})
        assert page.status_code == 400
        assert "Choose an active recipient and one of its purposes." in _text(page)
        assert "Build the case file" not in _text(page)


def test_building_needs_a_fresh_two_factor_code_and_comes_back_to_the_preview(
        app: Flask, client: FlaskClient, auth: Auth, lena: TestUser, totp_clock: TotpClock,
        case_file: CaseFile) -> None:
    _signed_in(auth, lena, step_up=False)
    refused = _build(client, case_file)
    assert refused.status_code == 302
    location = refused.headers["Location"]
    assert location.startswith("/step-up?next=")
    assert _exports(app) == []
    assert _events(app, AuditAction.EXPORT_REQUESTED) == []
    # With the code, back to the same preview, to press the button again.
    stepped = post_form(client, location, {"code": totp_clock.code(lena.totp_secret)})
    assert stepped.status_code == 303
    assert stepped.headers["Location"] == f"{case_file.page}?to={case_file.choice}"
    assert _exports(app) == []
    assert _build(client, case_file).status_code == 303
    assert len(_exports(app)) == 1


def test_a_built_case_file_is_ready_and_downloads_as_an_age_file_audited_as_a_share(
        app: Flask, client: FlaskClient, auth: Auth, lena: TestUser, case_file: CaseFile) -> None:
    _signed_in(auth, lena)
    page_url = _built(app, client, case_file)
    (export,) = _exports(app)
    assert page_url == f"{case_file.page}/{export.id}"
    assert export.status == ExportStatus.READY

    page = client.get(page_url)
    assert page.status_code == 200
    text = _text(page)
    assert "Ready to download" in text
    assert REFRESH not in text
    assert export.sha256 is not None and export.sha256 in text
    assert "VERIFY.txt" in text
    assert _row(text, case_file.included).startswith(f"{case_file.included} Yes Anonymous record-")
    assert _row(text, case_file.not_granted).endswith(NOT_GRANTED)

    download = client.get(f"{page_url}/download")
    assert download.status_code == 200
    body = download.get_data()
    assert body.startswith(AGE_HEADER)
    assert hashlib.sha256(body).hexdigest() == export.sha256
    assert download.mimetype == "application/octet-stream"
    assert download.headers["Cache-Control"] == "no-store"
    disposition = download.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and "LC-2024-07-" in disposition and ".tar.age" in disposition
    with tarfile.open(fileobj=io.BytesIO(pyrage.decrypt(body, [case_file.identity]))) as archive:
        assert "manifest.json" in {name.rsplit("/", 1)[-1] for name in archive.getnames()}

    with app.app_context():
        included_id = db.session.scalar(sa.select(StoredTestimony.id).where(
            StoredTestimony.pseudonym == case_file.included))
    (requested,) = _events(app, AuditAction.EXPORT_REQUESTED)
    (downloaded,) = _events(app, AuditAction.EXPORT_DOWNLOADED)
    assert requested.actor_id == downloaded.actor_id == lena.id
    assert downloaded.target_ids == [included_id]
    assert downloaded.details["recipient"] == case_file.recipient_id
    assert len(_events(app, AuditAction.EXPORT_BUILT)) == 1
    assert "Downloaded" in _text(client.get(page_url))


def test_a_cancelled_case_file_cannot_be_downloaded(
        app: Flask, client: FlaskClient, auth: Auth, lena: TestUser, case_file: CaseFile) -> None:
    _signed_in(auth, lena)
    page_url = _built(app, client, case_file)
    cancelled = post_form(client, f"{page_url}/cancel", {}, token_from=page_url)
    assert cancelled.status_code == 303 and cancelled.headers["Location"] == page_url
    text = _text(client.get(page_url))
    assert "This case file was cancelled on" in text and "A member of the case cancelled it." in text
    assert "Download the case file" not in text and "Cancel this case file" not in text

    refused = client.get(f"{page_url}/download")
    assert refused.status_code == 410
    assert "This case file cannot be downloaded: it was cancelled." in _text(refused)
    assert _events(app, AuditAction.EXPORT_DOWNLOADED) == []
    (event,) = _events(app, AuditAction.EXPORT_CANCELLED)
    assert event.actor_id == lena.id and event.details["why"] == "by_member"
    # Once cancelled, it cannot be cancelled again.
    again = post_form(client, f"{page_url}/cancel", {}, token_from=page_url)
    assert again.status_code == 422
    assert "Only an export that has not been downloaded yet can be cancelled." in _text(again)
    assert len(_events(app, AuditAction.EXPORT_CANCELLED)) == 1


def test_a_downloaded_case_file_can_no_longer_be_cancelled(
        app: Flask, client: FlaskClient, auth: Auth, lena: TestUser, case_file: CaseFile) -> None:
    _signed_in(auth, lena)
    page_url = _built(app, client, case_file)
    assert client.get(f"{page_url}/download").status_code == 200
    assert "Cancel this case file" not in _text(client.get(page_url))
    refused = post_form(client, f"{page_url}/cancel", {}, token_from=page_url)
    assert refused.status_code == 422
    assert "Only an export that has not been downloaded yet can be cancelled." in _text(refused)
    assert _exports(app)[0].status == ExportStatus.DOWNLOADED


def test_an_expired_case_file_is_refused_and_marked_expired(
        app: Flask, client: FlaskClient, auth: Auth, lena: TestUser, case_file: CaseFile) -> None:
    _signed_in(auth, lena)
    page_url = _built(app, client, case_file)
    _time_is_up(app)
    refused = client.get(f"{page_url}/download")
    assert refused.status_code == 410
    assert "This case file has expired and was deleted." in _text(refused)
    (export,) = _exports(app)
    assert export.status == ExportStatus.EXPIRED and export.deleted_at is not None
    assert "its stored file has been deleted" in _text(client.get(page_url))


def test_nothing_is_built_when_no_record_may_go(
        app: Flask, client: FlaskClient, auth: Auth, lena: TestUser, create_user: Callable[..., TestUser],
        case_file: CaseFile) -> None:
    court = _register(app, create_user("adrian", ["admin"]), key="icc-otp", category="international_court",
                      identity=pyrage.x25519.Identity.generate())
    _signed_in(auth, lena)
    choice = f"{court}-international_justice"
    preview = _text(client.get(case_file.page, query_string={"to": choice}))
    # For this court, the record consented for international justice would go, and the others not.
    assert _row(preview, case_file.not_granted).startswith(f"{case_file.not_granted} Yes")
    assert _row(preview, case_file.included).endswith(NOT_GRANTED)
    media = _text(client.get(case_file.page, query_string={"to": f"{court}-media"}))
    assert "Choose an active recipient and one of its purposes." in media

    with app.app_context():
        owner = f.account(lena)
        case = cases.case_for_member(case_file.case_id, owner)
        not_granted = db.session.scalars(sa.select(StoredTestimony.id).where(
            StoredTestimony.pseudonym == case_file.not_granted)).one()
        cases.remove_testimony(case, not_granted, actor=owner)
        db.session.commit()
    empty = _text(client.get(case_file.page, query_string={"to": choice}))
    assert "there is nothing to build" in empty and "Build the case file" not in empty
    refused = post_form(client, case_file.page, {"to": choice}, token_from=case_file.page)
    assert refused.status_code == 422
    assert "No record in this case may go to this recipient for this purpose." in _text(refused)
    assert _exports(app) == []


def test_with_a_separate_worker_the_page_shows_progress_until_the_file_is_ready(
        make_app: Callable[..., Flask], app: Flask, lena: TestUser, totp_clock: TotpClock,
        case_file: CaseFile) -> None:
    worker = make_app(EXPORT_RUNNER="worker")
    client = worker.test_client()
    _signed_in(Auth(client, totp_clock), lena)
    page_url = _built(worker, client, case_file)
    waiting = _text(client.get(page_url))
    assert "Waiting to be built" in waiting and REFRESH in waiting and "<progress" in waiting
    assert client.get(f"{page_url}/download").status_code == 409

    result = worker.test_cli_runner().invoke(args=["export", "work", "--once"])
    assert result.exit_code == 0, result.output
    assert "Built 1 case file(s)." in result.output
    ready = _text(client.get(page_url))
    assert "Ready to download" in ready and REFRESH not in ready and "<progress" not in ready


def test_the_export_commands(app: Flask, client: FlaskClient, auth: Auth, lena: TestUser,
                             case_file: CaseFile) -> None:
    key = app.test_cli_runner().invoke(args=["export", "public-key"])
    assert key.exit_code == 0
    assert key.output.startswith("untrusted comment: minisign public key ")
    assert len(key.output.splitlines()) == 2

    _signed_in(auth, lena)
    _built(app, client, case_file)
    _time_is_up(app)
    purged = app.test_cli_runner().invoke(args=["export", "purge"])
    assert purged.exit_code == 0, purged.output
    assert "Deleted 1 expired case file(s)" in purged.output
    assert _exports(app)[0].status == ExportStatus.EXPIRED


def test_someone_who_is_not_a_member_of_the_case_gets_404_everywhere(
        app: Flask, client: FlaskClient, auth: Auth, lena: TestUser, create_user: Callable[..., TestUser],
        totp_clock: TotpClock, case_file: CaseFile) -> None:
    _signed_in(auth, lena)
    page_url = _built(app, client, case_file)
    omar = create_user("omar", ["legal"])
    outsider = app.test_client()
    _signed_in(Auth(outsider, totp_clock), omar)
    token = csrf_token(outsider, "/")
    for url in (case_file.page, f"{case_file.page}?to={case_file.choice}", page_url, f"{page_url}/download"):
        assert outsider.get(url).status_code == 404, url
    assert outsider.post(case_file.page, data={"csrf_token": token, "to": case_file.choice}).status_code == 404
    assert outsider.post(f"{page_url}/cancel", data={"csrf_token": token}).status_code == 404
    assert len(_exports(app)) == 1 and _exports(app)[0].status == ExportStatus.READY
    assert _events(app, AuditAction.EXPORT_DOWNLOADED) == []
    # Nor is a case file reachable through another case, even of the same member.
    with app.app_context():
        other = cases.create_case("LC-2024-08", "Another case", recipient=None, actor=f.account(lena))
        db.session.commit()
        other_id = other.id
    export_id = _exports(app)[0].id
    assert client.get(f"/cases/{other_id}/exports/{export_id}").status_code == 404
    assert client.get(f"/cases/{other_id}/exports/{export_id}/download").status_code == 404


def test_the_page_of_a_build_in_progress_shows_how_far_it_is_and_a_failed_one_says_so(
        make_app: Callable[..., Flask], app: Flask, lena: TestUser, totp_clock: TotpClock,
        case_file: CaseFile) -> None:
    worker = make_app(EXPORT_RUNNER="worker")  # nothing builds it: its state is set here as a build would
    client = worker.test_client()
    _signed_in(Auth(client, totp_clock), lena)
    page_url = _built(worker, client, case_file)

    def moved(**state: Any) -> str:
        with worker.app_context():
            export = db.session.scalars(sa.select(Export)).one()
            for name, value in state.items():
                setattr(export, name, value)
            db.session.commit()
        return _text(client.get(page_url))

    building = moved(status=ExportStatus.BUILDING.value, progress_done=1, progress_total=3)
    assert "Being built" in building and "Records written: 1 of 3." in building
    assert '<progress max="3" value="1">' in building and REFRESH in building
    failed = moved(status=ExportStatus.FAILED.value, failure="interrupted")
    assert "This case file could not be built: the build stopped before it was finished." in failed
    assert REFRESH not in failed and "<progress" not in failed and "Cancel this case file" not in failed
