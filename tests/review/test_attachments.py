"""Reviewers see and hear attachments: the original, streamed as it is decrypted, with its sniffed type and headers
that keep any file from running; each fetch audited; refused (and the refusal audited) whenever the record is; and
on the record page, a graphic one stays behind its warning until the reviewer opens it."""

from __future__ import annotations

import io
import os
import sqlite3
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from intake.consents import operations as consents
from intake.core.access import assignments as access
from intake.core.audit.models import AuditEvent
from intake.core.db import db
from intake.interviews import operations as ops
from intake.review import controllers
from intake.testimonies.models import Attachment
from intake.testimonies.models import Testimony as StoredTestimony
from intake.testimonies.operations import ACCEPTED_MEDIA
from tests.conftest import Auth, TestUser, TotpClock
from tests.interviews import factories as f

# The smallest valid PNG: one pixel.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
# A document of several stored chunks (64 KiB each), so that streaming goes past the first one.
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n" + os.urandom(200_000)
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(2000)
ALL_MEDIA = frozenset({"photo", "document", "audio", "video"})


@pytest.fixture
def people(create_user: Callable[..., TestUser]) -> dict[str, TestUser]:
    return {"amira": create_user("amira", ["interviewer"]), "rafael": create_user("rafael", ["reviewer"]),
            "sona": create_user("sona", ["coordinator"])}


def _interview_with(app: Flask, user: TestUser, files: list[tuple[bytes, str, bool]], *, key: str) -> int:
    """A submitted interview with the `files` attached (content, declared medium, graphic), in that order."""
    with app.app_context():
        actor = f.account(user)
        testimony = ops.start_interview(f.readiness(), f.consent(media=ALL_MEDIA), actor=actor, config=app.config)
        ops.save_narrative(testimony, "what happened", declined=False, actor=actor, config=app.config)
        ops.add_incident(testimony, f.incident(), actor=actor, config=app.config)
        for number, (content, medium, graphic) in enumerate(files):
            ops.store_interview_attachment(testimony, io.BytesIO(content), filename=f"Anahit-{number}.original",
                                           declared_medium=medium, graphic=graphic, actor=actor, config=app.config)
        ops.save_referral(testimony, f.referral(), actor=actor, config=app.config)
        assert ops.submit(testimony, idempotency_key=key, actor=actor, config=app.config) is True
        db.session.commit()
        return int(testimony.id)


def _assign(app: Flask, people: dict[str, TestUser], testimony_id: int) -> None:
    with app.app_context():
        access.assign(db.session.get(StoredTestimony, testimony_id), f.account(people["rafael"]),
                      actor=f.account(people["sona"]))
        db.session.commit()


def _attachments(app: Flask, testimony_id: int) -> list[int]:
    with app.app_context():
        return list(db.session.scalars(sa.select(Attachment.id).where(Attachment.testimony_id == testimony_id)
                                       .order_by(Attachment.id)))


def _events(app: Flask, *actions: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action.in_(actions))
                                       .order_by(AuditEvent.seq)))


def _url(testimony_id: int, attachment_id: int) -> str:
    return f"/review/records/{testimony_id}/attachments/{attachment_id}"


@pytest.mark.parametrize("storage", ["database", "files"])
def test_the_assigned_reviewer_gets_the_original_with_its_type_and_safe_headers(
        make_app: Callable[..., Flask], create_user: Callable[..., TestUser], totp_clock: TotpClock,
        storage: str) -> None:
    app = make_app(BLOB_STORAGE=storage)
    people = {"amira": create_user("amira", ["interviewer"]), "rafael": create_user("rafael", ["reviewer"]),
              "sona": create_user("sona", ["coordinator"])}
    testimony_id = _interview_with(app, people["amira"], [(PNG, "photo", False), (PDF, "document", False)],
                                   key="a" * 24)
    _assign(app, people, testimony_id)
    photo, document = _attachments(app, testimony_id)
    client = app.test_client()
    Auth(client, totp_clock).sign_in(people["rafael"])

    got = client.get(_url(testimony_id, photo))
    assert got.status_code == 200
    assert got.is_streamed  # sent as it is decrypted, never read whole into memory
    assert got.get_data() == PNG
    assert got.mimetype == "image/png"
    assert got.headers["Content-Disposition"] == f'inline; filename="attachment-{photo}.png"'
    assert got.headers["Content-Length"] == str(len(PNG))
    assert got.headers["Cache-Control"] == "no-store"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    policy = [d.strip() for d in got.headers["Content-Security-Policy"].split(";")]
    assert "default-src 'none'" in policy and "sandbox" in policy
    assert not any(d.startswith("script-src") for d in policy)

    long = client.get(_url(testimony_id, document))
    assert long.status_code == 200
    assert long.get_data() == PDF  # every chunk, in order
    assert long.mimetype == "application/pdf"
    assert long.headers["Content-Disposition"] == f'inline; filename="attachment-{document}.pdf"'
    assert "Anahit" not in str(long.headers) and "original" not in str(long.headers)
    assert "default-src 'none'" in long.headers["Content-Security-Policy"]

    assert client.get(_url(testimony_id, photo)).get_data() == PNG
    viewed = _events(app, "record_viewed")
    assert [(e.actor_id, e.target_ids, e.details) for e in viewed] == [
        (people["rafael"].id, [testimony_id], {"parts": ["attachments"], "purpose": "review", "attachment": photo}),
        (people["rafael"].id, [testimony_id], {"parts": ["attachments"], "purpose": "review",
                                               "attachment": document}),
        (people["rafael"].id, [testimony_id], {"parts": ["attachments"], "purpose": "review", "attachment": photo}),
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_download_in_progress_holds_up_no_writer(app: Flask, client: FlaskClient, auth: Auth,
                                                   people: dict[str, TestUser], database_url: str) -> None:
    testimony_id = _interview_with(app, people["amira"], [(PDF, "document", False)], key="a" * 24)
    _assign(app, people, testimony_id)
    (document,) = _attachments(app, testimony_id)
    auth.sign_in(people["rafael"])
    response = client.get(_url(testimony_id, document), buffered=False)
    try:
        pieces = iter(response.response)
        first = next(pieces)  # the client has the first chunk, and is slow to take the rest
        writer = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=0.5, isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")  # "database is locked" if the download held the write lock
            writer.execute("ROLLBACK")
        finally:
            writer.close()
        assert first + b"".join(pieces) == PDF
    finally:
        response.close()
    assert len(_events(app, "record_viewed")) == 1


def _refused_without_bytes(client: FlaskClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 403
    assert PDF[-64:] not in response.get_data()
    assert response.mimetype == "text/html"


def test_an_unassigned_reviewer_is_refused_and_the_refusal_audited(
        app: Flask, client: FlaskClient, auth: Auth, people: dict[str, TestUser]) -> None:
    testimony_id = _interview_with(app, people["amira"], [(PDF, "document", False)], key="a" * 24)
    (document,) = _attachments(app, testimony_id)
    auth.sign_in(people["rafael"])
    _refused_without_bytes(client, _url(testimony_id, document))
    refused = _events(app, "record_access_refused")
    assert [(e.actor_id, e.target_ids, e.details["parts"], e.details["why"]) for e in refused] == \
        [(people["rafael"].id, [testimony_id], ["attachments"], "not_assigned")]
    assert _events(app, "record_viewed") == []


@pytest.mark.parametrize("erasure", [False, True], ids=["withdrawn", "erased"])
def test_a_withdrawn_or_erased_record_gives_no_attachment(
        app: Flask, client: FlaskClient, auth: Auth, people: dict[str, TestUser], erasure: bool) -> None:
    testimony_id = _interview_with(app, people["amira"], [(PDF, "document", False)], key="a" * 24)
    _assign(app, people, testimony_id)
    (document,) = _attachments(app, testimony_id)
    auth.sign_in(people["rafael"])
    assert client.get(_url(testimony_id, document)).get_data() == PDF
    with app.app_context():
        consents.record_withdrawal(db.session.get(StoredTestimony, testimony_id), purposes=[], received_how="phone",
                                   erasure=erasure, actor=f.account(people["sona"]), config=app.config)
        db.session.commit()
    _refused_without_bytes(client, _url(testimony_id, document))
    refused = _events(app, "record_access_refused")
    assert [(e.details["parts"], e.details["why"]) for e in refused] == \
        [(["attachments"], "erased" if erasure else "consent_withdrawn")]
    assert len(_events(app, "record_viewed")) == 1  # the fetch before the withdrawal only


@pytest.mark.parametrize("role", ["interviewer", "coordinator", "auditor", "admin", "legal"])
def test_other_roles_get_no_attachment(app: Flask, client: FlaskClient, auth: Auth,
                                       create_user: Callable[..., TestUser], people: dict[str, TestUser],
                                       role: str) -> None:
    testimony_id = _interview_with(app, people["amira"], [(PDF, "document", False)], key="a" * 24)
    _assign(app, people, testimony_id)
    (document,) = _attachments(app, testimony_id)
    other = create_user("other", [role])
    auth.sign_in(other)
    _refused_without_bytes(client, _url(testimony_id, document))
    denied = _events(app, "access_denied")
    assert [(e.actor_id, e.details["endpoint"]) for e in denied] == [(other.id, "review.attachment")]
    assert _events(app, "record_viewed") == []


def test_an_attachment_of_another_record_is_not_found_under_this_one(
        app: Flask, client: FlaskClient, auth: Auth, people: dict[str, TestUser]) -> None:
    first = _interview_with(app, people["amira"], [(PNG, "photo", False)], key="a" * 24)
    second = _interview_with(app, people["amira"], [(PDF, "document", False)], key="b" * 24)
    for testimony_id in (first, second):
        _assign(app, people, testimony_id)
    (of_second,) = _attachments(app, second)
    auth.sign_in(people["rafael"])
    crossed = client.get(_url(first, of_second))
    assert crossed.status_code == 404
    assert PDF[-64:] not in crossed.get_data()
    assert client.get(_url(first, 999_999)).status_code == 404
    assert client.get(_url(999_999, of_second)).status_code == 404
    assert _events(app, "record_viewed") == []
    assert client.get(_url(second, of_second)).get_data() == PDF


class _Attachments(HTMLParser):
    """Each element pointing at an attachment (tag, attributes), with the <details> it sits in: whether that is
    open, and its summary's text (None when in none)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None], tuple[bool, str] | None]] = []
        self._details: list[dict[str, Any]] = []
        self._in_summary = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        given = dict(attrs)
        if tag == "details":
            self._details.append({"open": "open" in given, "summary": ""})
        elif tag == "summary":
            self._in_summary = True
        target = given.get("src") or given.get("href") or ""
        if "/attachments/" in target:
            inside = self._details[-1] if self._details else None
            self.found.append((tag, given, (inside["open"], inside["summary"].strip()) if inside else None))

    def handle_endtag(self, tag: str) -> None:
        if tag == "details" and self._details:
            self._details.pop()
        elif tag == "summary":
            self._in_summary = False

    def handle_data(self, data: str) -> None:
        if self._in_summary and self._details:
            self._details[-1]["summary"] += data


def test_the_record_page_keeps_graphic_attachments_behind_a_closed_warning(
        app: Flask, client: FlaskClient, auth: Auth, people: dict[str, TestUser]) -> None:
    testimony_id = _interview_with(app, people["amira"], [(PNG, "photo", True), (PNG, "photo", False),
                                                          (MP3, "audio", False), (PDF, "document", False)],
                                   key="a" * 24)
    _assign(app, people, testimony_id)
    graphic, photo, audio, document = _attachments(app, testimony_id)
    auth.sign_in(people["rafael"])
    page = client.get(f"/review/records/{testimony_id}")
    assert page.status_code == 200
    parser = _Attachments()
    parser.feed(page.get_data(as_text=True))
    shown = {(tag, given.get("src") or given.get("href")): (given, inside) for tag, given, inside in parser.found}

    given, inside = shown[("img", _url(testimony_id, graphic))]
    assert inside == (False, "Warning: graphic content. Show it")
    assert given["loading"] == "lazy"
    given, inside = shown[("img", _url(testimony_id, photo))]
    assert inside is None and given["loading"] == "lazy"
    given, inside = shown[("audio", _url(testimony_id, audio))]
    assert inside is None and given["preload"] == "none" and "controls" in given
    assert shown[("a", _url(testimony_id, document))][1] is None
    assert not any(tag == "img" for tag, _src in shown if _src == _url(testimony_id, document))
    # Showing the page opened the record, not one of its files.
    viewed = _events(app, "record_viewed")
    assert len(viewed) == 1 and "attachment" not in viewed[0].details


def test_every_accepted_media_type_is_sent_under_an_extension_of_its_own() -> None:
    # A type without one would only ever be offered as a download.
    assert set(ACCEPTED_MEDIA) <= set(controllers.ATTACHMENT_EXTENSIONS)


def test_an_attachment_whose_medium_the_consent_no_longer_covers_is_neither_listed_nor_sent(
        app: Flask, client: FlaskClient, auth: Auth, people: dict[str, TestUser]) -> None:
    testimony_id = _interview_with(app, people["amira"], [(PNG, "photo", False), (PDF, "document", False)],
                                   key="m" * 24)
    _assign(app, people, testimony_id)
    photo, document = _attachments(app, testimony_id)
    with app.app_context():  # a new consent version that no longer covers photos
        consents.record_consent(db.session.get(StoredTestimony, testimony_id), f.consent(media=frozenset({"document"})),
                                actor=f.account(people["sona"]))
        db.session.commit()
    auth.sign_in(people["rafael"])
    page = client.get(f"/review/records/{testimony_id}").get_data(as_text=True)
    assert _url(testimony_id, document) in page and _url(testimony_id, photo) not in page
    refused = client.get(_url(testimony_id, photo))
    assert refused.status_code == 403 and PNG not in refused.get_data()
    assert "no longer covers this kind of file" in refused.get_data(as_text=True)
    assert _events(app, "record_access_refused")[-1].details["why"] == "medium_not_consented"
    assert client.get(_url(testimony_id, document)).get_data() == PDF
