"""The recipients pages as an administrator uses them: register, edit, deactivate and reactivate the organisations
case files go to, and hand out the public key case files are signed with.

Registering and editing ask for a fresh two-factor code; a refused detail is shown next to its field and nothing is
saved; every change is audited with the names of the fields changed, never their values; only admins get in."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from pyrage import x25519

from intake.core.audit import AuditEvent
from intake.core.db import db
from intake.core.keys import Keyring
from intake.exports import minisign
from intake.exports.signing import signing_key
from intake.recipients.models import Recipient
from tests.conftest import Auth, TestUser, missing, post_form

LIST = "/admin/recipients"
NEW = "/admin/recipients/new"
SIGNING_KEY = "/admin/recipients/signing-key"


def age_key() -> str:
    return str(x25519.Identity.generate().to_public())


def details(**changes: Any) -> dict[str, Any]:
    """A complete registration as the form sends it, with `changes` applied."""
    return {
        "name": "International Criminal Court, Office of the Prosecutor", "key": "icc-otp",
        "category": "international_court", "country": "", "agreement_reference": "ICC-OTP/DSA/2024-017",
        "agreement_date": "2024-03-15", "contact": "Evidence unit, evidence@example.org",
        "age_recipients": f"{age_key()}\n# the unit's second key\n\n{age_key()}\n", **changes,
    }


@pytest.fixture
def admin(create_user: Callable[..., TestUser], auth: Auth) -> TestUser:
    """An enrolled admin, signed in on `client` with a fresh two-factor code."""
    user = create_user("lusine", ["admin"])
    assert auth.sign_in(user).status_code == 303
    assert auth.step_up(user).status_code == 303
    return user


def recipients(app: Flask) -> list[Recipient]:
    with app.app_context():
        found = list(db.session.scalars(sa.select(Recipient).order_by(Recipient.id)))
        for r in found:
            db.session.expunge(r)
        return found


def events(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)
                                       .order_by(AuditEvent.seq)))


def register(client: FlaskClient, **changes: Any) -> Any:
    return post_form(client, NEW, details(**changes))


def button(client: FlaskClient, path: str) -> Any:
    return post_form(client, path, {"next": LIST}, token_from=LIST)


def error_of(page: str, field: str) -> str:
    """The error shown next to a field (empty when there is none)."""
    start = page.find(f'id="{field}-error">')
    if start < 0:
        return ""
    return page[start:page.index("</p>", start)]


# ---------------------------------------------------------------------------------------------------------------
# Register, edit, deactivate


def test_registering_asks_for_a_fresh_code_first(
    app: Flask, client: FlaskClient, auth: Auth, create_user: Callable[..., TestUser]
) -> None:
    user = create_user("lusine", ["admin"])
    auth.sign_in(user)
    response = client.get(NEW)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/step-up?next=")
    assert auth.step_up(user).status_code == 303
    assert client.get(NEW).status_code == 200


def test_an_admin_registers_a_recipient_and_sees_it_listed(app: Flask, client: FlaskClient, admin: TestUser) -> None:
    response = register(client, country="nl", is_authority="y", category="domestic_prosecutor",
                        name="Landelijk Parket", key="  NL-OM ")
    assert response.status_code == 303
    assert response.headers["Location"] == LIST

    [stored] = recipients(app)
    assert (stored.key, stored.country, stored.is_authority) == ("nl-om", "NL", True)
    assert len(stored.age_recipients) == 2  # the comment and the blank line are not keys
    assert stored.agreement_date == date(2024, 3, 15)

    page = client.get(LIST).get_data(as_text=True)
    assert "Landelijk Parket is registered" in page
    for shown in ("Landelijk Parket", "nl-om", "Domestic prosecutor", "NL (state authority)",
                  "ICC-OTP/DSA/2024-017 of 2024-03-15", "<td data-label=\"Keys\">2</td>", "active"):
        assert shown in page

    [event] = events(app, "recipient_registered")
    assert event.actor_id == admin.id and event.target_ids == [stored.id]
    assert event.details == {"category": "domestic_prosecutor", "keys": 2}


def test_an_admin_edits_a_recipient_and_the_audit_names_only_the_fields(
    app: Flask, client: FlaskClient, admin: TestUser
) -> None:
    register(client)
    [stored] = recipients(app)
    edit = f"{LIST}/{stored.id}"
    form = client.get(edit).get_data(as_text=True)
    assert 'value="International Criminal Court, Office of the Prosecutor"' in form
    assert stored.age_recipients[0] in form

    new_key = age_key()
    response = post_form(client, edit, details(contact="Registry, registry@example.org", country="NL",
                                               age_recipients=new_key, key="someone-else"))
    assert response.status_code == 303
    [changed] = recipients(app)
    assert changed.contact == "Registry, registry@example.org"
    assert changed.country == "NL" and changed.age_recipients == [new_key]
    assert changed.key == "icc-otp"  # the short name consent records use stays what it was
    assert "The details of International Criminal Court" in client.get(LIST).get_data(as_text=True)

    [event] = events(app, "recipient_changed")
    assert event.actor_id == admin.id and event.target_ids == [stored.id]
    assert sorted(event.details["fields"]) == ["age_recipients", "contact", "country"]
    written = json.dumps(event.details)
    assert "registry@example.org" not in written and new_key not in written and "NL" not in written

    # Sending the same details again changes nothing and records nothing.
    post_form(client, edit, details(contact="Registry, registry@example.org", country="NL",
                                    age_recipients=new_key))
    assert "Nothing was changed" in client.get(LIST).get_data(as_text=True)
    assert len(events(app, "recipient_changed")) == 1


def test_a_deactivated_recipient_is_listed_after_the_active_ones_and_can_come_back(
    app: Flask, client: FlaskClient, admin: TestUser
) -> None:
    register(client, name="Alpha Mechanism", key="alpha", category="un_mechanism")
    register(client, name="Beta Court", key="beta")
    alpha, _beta = recipients(app)

    response = button(client, f"{LIST}/{alpha.id}/deactivate")
    assert response.status_code == 303
    assert not recipients(app)[0].active
    page = client.get(LIST).get_data(as_text=True)
    assert "Alpha Mechanism is deactivated" in page
    assert page.index("Beta Court") < page.index("Alpha Mechanism", page.index("<tbody>"))
    assert "deactivated</td>" in page
    assert events(app, "recipient_changed")[-1].details == {"fields": ["active"], "active": False}

    assert button(client, f"{LIST}/{alpha.id}/reactivate").status_code == 303
    assert recipients(app)[0].active
    assert "Alpha Mechanism can receive case files again" in client.get(LIST).get_data(as_text=True)
    assert events(app, "recipient_changed")[-1].details == {"fields": ["active"], "active": True}


def test_a_button_without_its_token_changes_nothing(app: Flask, client: FlaskClient, admin: TestUser) -> None:
    register(client)
    [stored] = recipients(app)
    assert client.post(f"{LIST}/{stored.id}/deactivate", data={}).status_code == 400
    assert recipients(app)[0].active


# ---------------------------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"age_recipients": "age1notakey"}, "age_recipients", "This is not an age public key"),
    ({"age_recipients": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"}, "age_recipients", "This is not an age public key"),
    ({"age_recipients": ""}, "age_recipients", "Give at least one age public key"),
    ({"country": "Netherlands"}, "country", "two-letter country code"),
    ({"country": "N1"}, "country", "two-letter country code"),
    ({"is_authority": "y", "country": ""}, "country", "A state authority needs the country"),
    ({"agreement_date": (date.today() + timedelta(days=30)).isoformat()}, "agreement_date",
     "cannot be in the future"),
    ({"agreement_date": "15/03/2024"}, "agreement_date", "Enter the date as YYYY-MM-DD"),
    ({"agreement_date": ""}, "agreement_date", "Give the date the agreement was signed"),
    ({"category": "friends"}, "category", "Choose what kind of organisation"),
    ({"key": "ICC OTP!"}, "key", "lower-case letters"),
])
def test_a_detail_that_cannot_be_recorded_is_shown_next_to_its_field_and_nothing_is_saved(
    app: Flask, client: FlaskClient, admin: TestUser, changes: dict[str, str], field: str, message: str
) -> None:
    response = register(client, **changes)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in error_of(page, field)
    assert "There is a problem" in page
    assert recipients(app) == []
    assert events(app, "recipient_registered") == []


def test_a_short_name_already_taken_is_refused(app: Flask, client: FlaskClient, admin: TestUser) -> None:
    register(client)
    response = register(client, name="Another court")
    assert response.status_code == 422
    assert "Another recipient already has this short name" in error_of(response.get_data(as_text=True), "key")
    assert len(recipients(app)) == 1


def test_a_refused_edit_keeps_the_recipient_as_it_was(app: Flask, client: FlaskClient, admin: TestUser) -> None:
    register(client)
    [before] = recipients(app)
    edit = f"{LIST}/{before.id}"
    response = post_form(client, edit, details(age_recipients="age1broken", contact="Someone new",
                                               agreement_date=(date.today() + timedelta(days=30)).isoformat()))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "This is not an age public key" in error_of(page, "age_recipients")
    assert "cannot be in the future" in error_of(page, "agreement_date")
    assert "Someone new" in page  # what was typed is shown again, to be corrected
    [after] = recipients(app)
    assert (after.contact, after.age_recipients, after.agreement_date) == (
        before.contact, before.age_recipients, before.agreement_date)
    assert events(app, "recipient_changed") == []


def test_an_unknown_recipient_is_not_found(client: FlaskClient, admin: TestUser) -> None:
    assert client.get(f"{LIST}/999").status_code == 404


# ---------------------------------------------------------------------------------------------------------------
# Who gets in


@pytest.mark.parametrize("role", ["legal", "coordinator", "interviewer", "reviewer", "auditor"])
def test_only_admins_reach_the_recipients_pages(
    app: Flask, client: FlaskClient, auth: Auth, create_user: Callable[..., TestUser], role: str
) -> None:
    user = create_user("narine", [role])
    auth.sign_in(user)
    auth.step_up(user)
    assert client.get(LIST).status_code == 403
    assert client.get(SIGNING_KEY).status_code == 403
    assert client.get(NEW).status_code == 403
    assert post_form(client, NEW, details(), token_from="/").status_code == 403
    assert recipients(app) == []


# ---------------------------------------------------------------------------------------------------------------
# The signing key


def test_the_downloaded_signing_key_verifies_what_the_service_signs(
    client: FlaskClient, admin: TestUser, keyring: Keyring, tmp_path: Path
) -> None:
    response = client.get(SIGNING_KEY)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.headers["Content-Disposition"] == 'attachment; filename="minisign.pub"'
    text = response.get_data(as_text=True)
    public = minisign.PublicKey.parse(text)
    assert text.startswith(f"untrusted comment: minisign public key {public.key_id_hex}\n")

    data = b'{"bundle": "a case file manifest"}\n'
    signature = minisign.sign(signing_key(keyring), data, trusted_comment="bundle:test")
    assert minisign.verify(text, signature, data) == "bundle:test"
    with pytest.raises(minisign.SignatureError):
        minisign.verify(text, signature, data + b" ")

    # The list page shows the same key, and says what it is for.
    page = client.get(LIST).get_data(as_text=True)
    assert public.line() in page
    assert "verify with minisign" in page

    tool = shutil.which("minisign")
    if tool is None:
        missing("minisign", "there is no minisign executable on PATH (Debian package minisign)")
    assert tool is not None
    (tmp_path / "minisign.pub").write_text(text)
    (tmp_path / "manifest.json").write_bytes(data)
    (tmp_path / "manifest.json.minisig").write_text(signature)
    checked = subprocess.run(  # noqa: S603 - a fixed tool on files this test wrote
        [tool, "-V", "-p", str(tmp_path / "minisign.pub"), "-m", str(tmp_path / "manifest.json")],
        capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stderr
    assert "bundle:test" in checked.stdout
