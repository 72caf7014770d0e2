"""From case to downloaded case file in a real browser, on a phone: a legal officer opens a case, adds a record by
its pseudonym code, previews the export, builds it behind a fresh two-factor code, follows the build on its page
(which reloads itself, without script) and downloads the file; the recipient's age key decrypts it to a tar holding
the manifest. The build runs in a background thread of the server, as it does in production by default."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pyrage
import pytest
from flask import Flask
from playwright.sync_api import expect

from intake.core.db import db
from intake.recipients import operations as recipients
from intake.testimonies.models import Testimony as StoredTestimony
from tests.browser.conftest import PHONE, LiveServer
from tests.browser.test_accessibility import assert_accessible, console_errors, sign_in
from tests.conftest import TestUser, TotpClock
from tests.interviews import factories as f

pytestmark = pytest.mark.browser
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
BUILD_TIMEOUT_MS = 60_000  # a generous bound for the background build; the page reloads itself meanwhile


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(EXPORT_RUNNER="thread")


def _recipient(app: Flask, admin: TestUser, identity: pyrage.x25519.Identity) -> str:
    """A UN mechanism registered with the public key of `identity`; its name."""
    with app.app_context():
        recipient = recipients.register(recipients.RecipientInput(
            key="un-coi", name="UN Commission of Inquiry", category="un_mechanism", country=None,
            is_authority=False, agreement_reference="MoU-2024-1", agreement_date=date(2024, 1, 15),
            contact="desk@example.org", age_recipients=[str(identity.to_public())]), actor=f.account(admin))
        db.session.commit()
        return str(recipient.name)


@SQLITE_ONLY
def test_a_legal_officer_goes_from_case_to_a_downloaded_case_file_the_recipient_can_decrypt(
        live_server: LiveServer, new_person: Any, create_user: Callable[..., TestUser], totp_clock: TotpClock,
        tmp_path: Path, screenshot: Any) -> None:
    app = live_server.app
    lena = create_user("lena", ["legal"])
    amira = create_user("amira", ["interviewer"])
    identity = pyrage.x25519.Identity.generate()
    recipient = _recipient(app, create_user("ada", ["admin"]), identity)
    testimony_id = f.planted_interview(app, amira)
    with app.app_context():
        pseudonym = db.session.get_one(StoredTestimony, testimony_id).pseudonym

    person = new_person(viewport=PHONE)
    page = person.page
    page.goto(f"{live_server.url}/sign-in")
    sign_in(person, totp_clock, lena)

    page.get_by_role("link", name="Cases", exact=True).click()
    page.get_by_label("Case reference", exact=True).fill("LC-2024-07")
    page.get_by_label("Title", exact=True).fill("Shelling of Stepanakert, September 2023")
    page.get_by_label("Intended recipient (optional)", exact=True).select_option(label=recipient)
    page.get_by_role("button", name="Open the case", exact=True).click()
    expect(page.get_by_role("heading", name="Case LC-2024-07", level=1)).to_be_visible()
    page.get_by_label("Pseudonym code", exact=True).fill(pseudonym)
    page.get_by_role("button", name="Add to the case", exact=True).last.click()
    expect(page.get_by_role("link", name=pseudonym, exact=True)).to_be_visible()

    page.get_by_role("link", name="Prepare an export", exact=True).click()
    expect(page.get_by_role("heading", name="Case files of LC-2024-07", level=1)).to_be_visible()
    # The case's intended recipient is chosen already.
    choice = page.get_by_label("Recipient and purpose", exact=True)
    expect(choice.locator("option:checked")).to_have_text(f"{recipient} — United Nations bodies")
    page.get_by_role("button", name="Preview", exact=True).click()
    row = page.locator("table.records tbody tr", has_text=pseudonym)
    expect(row).to_contain_text("Anonymous")
    expect(row).to_contain_text("0 go, 1 withheld")
    assert_accessible(person, "the export preview")
    screenshot(page, "export-preview")

    page.get_by_role("button", name="Build the case file", exact=True).click()
    expect(page.get_by_role("heading", name="Confirm it is you", level=1)).to_be_visible()
    page.get_by_label("Two-factor code", exact=True).fill(totp_clock.code(lena.totp_secret))
    page.get_by_role("button", name="Confirm", exact=True).click()
    # Back at the same preview: the choice was kept.
    expect(page.locator("table.records tbody tr", has_text=pseudonym)).to_contain_text("Anonymous")
    page.get_by_role("button", name="Build the case file", exact=True).click()

    expect(page.get_by_role("heading", name=f"Case file for {recipient}", level=1)).to_be_visible()
    expect(page.locator("#export-status")).to_have_text("Ready to download", timeout=BUILD_TIMEOUT_MS)
    assert_accessible(person, "a case file ready to download")
    screenshot(page, "export-ready")
    shown_digest = page.locator("code.digest").inner_text().strip()

    with page.expect_download() as started:
        page.get_by_role("link", name="Download the case file", exact=True).click()
    download = started.value
    assert download.suggested_filename.startswith("LC-2024-07-") and download.suggested_filename.endswith(".tar.age")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    encrypted = saved.read_bytes()
    assert encrypted.startswith(b"age-encryption.org/v1")
    assert hashlib.sha256(encrypted).hexdigest() == shown_digest

    with tarfile.open(fileobj=io.BytesIO(pyrage.decrypt(encrypted, [identity]))) as archive:
        names = {name.rsplit("/", 1)[-1] for name in archive.getnames()}
    assert "manifest.json" in names and "VERIFY.txt" in names

    page.reload()
    expect(page.locator("#export-status")).to_have_text("Downloaded")
    assert console_errors(person) == []
