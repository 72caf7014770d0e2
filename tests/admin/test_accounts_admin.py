"""Account administration as an admin uses it: list, invite, change roles, deactivate, reactivate, reset two-factor.
Every action that grants access (invite, roles, reactivate, two-factor reset) asks for a fresh code first;
deactivation, which only takes rights away, does not. Every action is audited with the admin as actor; admins
hold no content rights."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from intake.accounts import operations as ops
from intake.accounts.models import Account, Invitation
from intake.core.audit import AuditEvent
from intake.core.db import db
from intake.core.security import COMPATIBLE_ROLE_SETS, ROLE_PERMISSIONS, Permission, Role
from tests.accounts.test_enrolment_flow import enrol
from tests.conftest import Auth, TestUser, TotpClock, open_link, post_form

LINK_PATTERN = re.compile(r'id="one-time-link">([^<]+)<')
ACCOUNTS = "/admin/accounts"


@pytest.fixture
def admin(create_user: Callable[..., TestUser], auth: Auth) -> TestUser:
    """An enrolled admin, signed in on `client`."""
    user = create_user("lusine", ["admin"])
    assert auth.sign_in(user).status_code == 303
    return user


def account_count(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count(Account.id))) or 0


def account_named(app: Flask, username: str) -> Account | None:
    with app.app_context():
        account = db.session.scalar(sa.select(Account).where(Account.username == username))
        if account is not None:
            db.session.expunge(account)
        return account


def roles_of(app: Flask, user_id: int) -> list[str]:
    with app.app_context():
        return db.session.get(Account, user_id).role_names


def events(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        found = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq))
        return list(found)


def flash_text(client: FlaskClient) -> str:
    return client.get(ACCOUNTS).get_data(as_text=True)


def button(client: FlaskClient, path: str, **kwargs: Any) -> Any:
    return post_form(client, path, {}, token_from=ACCOUNTS, **kwargs)


def link_path(response: Any) -> str:
    return LINK_PATTERN.search(response.get_data(as_text=True)).group(1).removeprefix("http://localhost")


# ---------------------------------------------------------------------------------------------------------------
# List and invite


def test_the_admin_sees_every_account_with_roles_and_state(
    app: Flask, client: FlaskClient, admin: TestUser, create_user: Callable[..., TestUser]
) -> None:
    create_user("amira", ["interviewer", "coordinator"])
    with app.app_context():
        ops.invite_account(username="narine", roles=["reviewer"], actor=None)
        db.session.commit()
    response = client.get(ACCOUNTS)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert page.index("amira") < page.index("lusine") < page.index("narine")  # sorted by username
    assert "coordinator, interviewer" in page
    assert "not enrolled yet" in page
    assert response.headers["Cache-Control"] == "no-store"


def test_an_admin_invites_a_colleague_and_gets_a_working_link(
    app: Flask, client: FlaskClient, auth: Auth, admin: TestUser, totp_clock: TotpClock
) -> None:
    auth.step_up(admin)
    response = post_form(client, "/admin/accounts/invite", {"username": "  Amira.K ", "roles": ["reviewer"]})
    assert response.status_code == 200
    assert "Enrolment link for amira.k" in response.get_data(as_text=True)
    path = link_path(response)
    assert path.startswith("/enrol/")

    created = account_named(app, "amira.k")
    assert created is not None and not created.can_sign_in
    assert roles_of(app, created.id) == ["reviewer"]
    colleague = app.test_client()
    enrol(colleague, totp_clock, path)
    assert colleague.get("/").status_code == 200
    assert colleague.get("/api/v1/me").status_code == 401  # the browser session is not an API credential


@pytest.mark.parametrize("username", ["a", "amira k", "amira!", "-amira", "амира", "x" * 65])
def test_a_username_that_breaks_the_rules_is_refused_next_to_the_field(
    app: Flask, client: FlaskClient, auth: Auth, admin: TestUser, username: str
) -> None:
    auth.step_up(admin)
    before = account_count(app)
    response = post_form(client, "/admin/accounts/invite", {"username": username, "roles": ["interviewer"]})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="username-error"' in page
    assert 'id="one-time-link"' not in page
    assert account_count(app) == before


def test_a_duplicate_username_is_a_field_error_and_creates_nothing(
    app: Flask, client: FlaskClient, auth: Auth, admin: TestUser, create_user: Callable[..., TestUser]
) -> None:
    create_user("amira")
    auth.step_up(admin)
    before = account_count(app)
    invitations_before = len(events(app, "invitation_issued"))
    response = post_form(client, "/admin/accounts/invite", {"username": "AMIRA", "roles": ["reviewer"]})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert re.search(r'id="username-error">[^<]*That username is taken', page)
    assert account_count(app) == before
    assert len(events(app, "invitation_issued")) == invitations_before


@pytest.mark.parametrize("roles", [["admin", "interviewer"], ["auditor", "coordinator"], ["reviewer", "legal"],
                                   ["interviewer", "legal"], []])
def test_roles_that_cannot_be_combined_are_refused_and_nothing_is_created(
    app: Flask, client: FlaskClient, auth: Auth, admin: TestUser, roles: list[str]
) -> None:
    auth.step_up(admin)
    before = account_count(app)
    response = post_form(client, "/admin/accounts/invite", {"username": "amira", "roles": roles})
    assert response.status_code == 422
    assert 'id="roles-error"' in response.get_data(as_text=True)
    assert account_count(app) == before
    assert account_named(app, "amira") is None
    assert events(app, "invitation_issued") == []


def test_invite_needs_a_csrf_token(app: Flask, client: FlaskClient, auth: Auth, admin: TestUser) -> None:
    auth.step_up(admin)
    response = client.post("/admin/accounts/invite", data={"username": "amira", "roles": ["interviewer"]})
    assert response.status_code == 400
    assert "This form has expired" in response.get_data(as_text=True)
    assert account_named(app, "amira") is None


# ---------------------------------------------------------------------------------------------------------------
# Roles


def test_changing_roles_asks_for_a_fresh_code_first_then_works(
    app: Flask, client: FlaskClient, auth: Auth, admin: TestUser, create_user: Callable[..., TestUser]
) -> None:
    amira = create_user("amira", ["interviewer"])
    path = f"/admin/accounts/{amira.id}/roles"
    first = client.get(path)
    assert first.status_code == 302
    assert first.headers["Location"].endswith(f"/step-up?next={path}")
    # A POST without step-up changes nothing either.
    refused = post_form(client, path, {"roles": ["reviewer"]}, token_from=ACCOUNTS)
    assert refused.status_code == 302 and "/step-up" in refused.headers["Location"]
    assert roles_of(app, amira.id) == ["interviewer"]

    stepped = post_form(client, f"/step-up?next={path}", {"code": auth.clock.code(admin.totp_secret)})
    assert stepped.status_code == 303 and stepped.headers["Location"].endswith(path)
    form = client.get(path)
    assert form.status_code == 200
    assert re.search(r'value="interviewer"[^>]*checked|checked[^>]*value="interviewer"', form.get_data(as_text=True))
    changed = post_form(client, path, {"roles": ["interviewer", "coordinator"]})
    assert changed.status_code == 303 and changed.headers["Location"].endswith(ACCOUNTS)
    assert sorted(roles_of(app, amira.id)) == ["coordinator", "interviewer"]
    assert "Roles of amira changed" in flash_text(client)


def test_a_role_change_signs_the_person_out_so_new_rights_apply_at_once(
    app: Flask, client: FlaskClient, auth: Auth, admin: TestUser, create_user: Callable[..., TestUser],
    totp_clock: TotpClock,
) -> None:
    amira = create_user("amira", ["interviewer"])
    theirs = app.test_client()
    Auth(theirs, totp_clock).sign_in(amira)
    assert theirs.get("/").status_code == 200
    auth.step_up(admin)
    assert post_form(client, f"/admin/accounts/{amira.id}/roles", {"roles": ["reviewer"]}).status_code == 303
    assert theirs.get("/").status_code == 302


def test_incompatible_roles_are_refused_on_change(
    app: Flask, client: FlaskClient, auth: Auth, admin: TestUser, create_user: Callable[..., TestUser]
) -> None:
    amira = create_user("amira", ["interviewer"])
    auth.step_up(admin)
    response = post_form(client, f"/admin/accounts/{amira.id}/roles", {"roles": ["interviewer", "admin"]})
    assert response.status_code == 422
    assert "cannot be held by one account" in response.get_data(as_text=True)
    assert roles_of(app, amira.id) == ["interviewer"]
    assert events(app, "roles_changed") == []


@pytest.mark.parametrize("roles", [["auditor"], ["coordinator"], ["legal", "coordinator"]])
def test_an_admin_cannot_change_their_own_roles(
    app: Flask, client: FlaskClient, auth: Auth, admin: TestUser, roles: list[str]
) -> None:
    """Not even to give up admin: an admin granting themselves a content role is exactly what must not happen."""
    auth.step_up(admin)
    response = post_form(client, f"/admin/accounts/{admin.id}/roles", {"roles": roles})
    assert response.status_code == 422
    assert "Ask another admin to change your own roles." in response.get_data(as_text=True)
    assert roles_of(app, admin.id) == ["admin"]
    assert client.get(ACCOUNTS).status_code == 200  # still an admin, still signed in


def test_with_a_second_admin_one_can_take_the_admin_role_from_the_other(
    app: Flask, client: FlaskClient, auth: Auth, admin: TestUser, create_user: Callable[..., TestUser],
    totp_clock: TotpClock,
) -> None:
    vardan = create_user("vardan", ["admin"])
    theirs = app.test_client()
    Auth(theirs, totp_clock).sign_in(vardan)
    auth.step_up(admin)
    response = post_form(client, f"/admin/accounts/{vardan.id}/roles", {"roles": ["auditor"]})
    assert response.status_code == 303
    assert roles_of(app, vardan.id) == ["auditor"]
    assert theirs.get(ACCOUNTS).status_code == 302  # their session ended with the change


def test_admin_role_can_be_taken_from_an_invitee_who_never_enrolled(
    app: Flask, client: FlaskClient, auth: Auth, admin: TestUser
) -> None:
    with app.app_context():
        link = ops.invite_account(username="vardan", roles=["admin"], actor=None)
        db.session.commit()
        vardan_id = link.invitation.account_id
    auth.step_up(admin)
    response = post_form(client, f"/admin/accounts/{vardan_id}/roles", {"roles": ["auditor"]})
    assert response.status_code == 303, response.get_data(as_text=True)
    assert roles_of(app, vardan_id) == ["auditor"]


# ---------------------------------------------------------------------------------------------------------------
# Deactivate and reactivate


def test_deactivating_signs_the_person_out_and_reactivating_lets_them_back(
    app: Flask, client: FlaskClient, auth: Auth, admin: TestUser, create_user: Callable[..., TestUser],
    totp_clock: TotpClock,
) -> None:
    amira = create_user("amira", ["interviewer"])
    theirs = app.test_client()
    their_auth = Auth(theirs, totp_clock)
    their_auth.sign_in(amira)
    assert theirs.get("/").status_code == 200

    response = button(client, f"/admin/accounts/{amira.id}/deactivate")
    assert response.status_code == 303 and response.headers["Location"].endswith(ACCOUNTS)
    assert "amira is deactivated and signed out" in flash_text(client)
    assert theirs.get("/").status_code == 302
    refused = their_auth.sign_in(amira)
    assert refused.status_code == 422
    assert "deactivated" in refused.get_data(as_text=True)

    auth.step_up(admin)  # unlike deactivation, reactivation gives access back
    response = button(client, f"/admin/accounts/{amira.id}/reactivate")
    assert response.status_code == 303
    assert "amira can sign in again" in flash_text(client)
    assert their_auth.sign_in(amira).status_code == 303
    assert theirs.get("/").status_code == 200


def test_an_admin_cannot_deactivate_themselves(app: Flask, client: FlaskClient, admin: TestUser) -> None:
    response = button(client, f"/admin/accounts/{admin.id}/deactivate", follow_redirects=True)
    assert response.status_code == 200
    assert "You cannot deactivate your own account" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Account, admin.id).is_active
    assert events(app, "account_deactivated") == []


def test_the_last_active_admin_cannot_be_deactivated(
    app: Flask, create_user: Callable[..., TestUser]
) -> None:
    only_admin = create_user("lusine", ["admin"])
    other = create_user("amira", ["coordinator"])
    with app.app_context():
        with pytest.raises(ops.AccountError, match="last active admin"):
            ops.deactivate(db.session.get(Account, only_admin.id), actor=db.session.get(Account, other.id))
        db.session.rollback()
        assert db.session.get(Account, only_admin.id).is_active


def test_another_admin_can_be_deactivated(
    app: Flask, client: FlaskClient, admin: TestUser, create_user: Callable[..., TestUser]
) -> None:
    vardan = create_user("vardan", ["admin"])
    assert button(client, f"/admin/accounts/{vardan.id}/deactivate").status_code == 303
    with app.app_context():
        assert not db.session.get(Account, vardan.id).is_active


def test_an_invited_admin_who_never_enrolled_can_be_deactivated(
    app: Flask, client: FlaskClient, admin: TestUser
) -> None:
    with app.app_context():
        link = ops.invite_account(username="vardan", roles=["admin"], actor=None)
        db.session.commit()
        vardan_id = link.invitation.account_id
    response = button(client, f"/admin/accounts/{vardan_id}/deactivate", follow_redirects=True)
    assert "vardan is deactivated" in response.get_data(as_text=True)
    with app.app_context():
        assert not db.session.get(Account, vardan_id).is_active


def test_action_buttons_need_a_csrf_token(
    app: Flask, client: FlaskClient, admin: TestUser, create_user: Callable[..., TestUser]
) -> None:
    amira = create_user("amira")
    for action in ("deactivate", "reset-two-factor"):
        response = client.post(f"/admin/accounts/{amira.id}/{action}")
        assert response.status_code == 400
        assert "This form has expired" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Account, amira.id).can_sign_in


def test_actions_on_a_missing_account_are_404(client: FlaskClient, auth: Auth, admin: TestUser) -> None:
    assert button(client, "/admin/accounts/987654/deactivate").status_code == 404
    for action in ("reactivate", "reset-two-factor"):  # step-up comes first
        assert button(client, f"/admin/accounts/987654/{action}").status_code == 302
    assert client.get("/admin/accounts/987654/roles").status_code == 302
    auth.step_up(admin)
    for action in ("reactivate", "reset-two-factor"):
        assert button(client, f"/admin/accounts/987654/{action}").status_code == 404
    missing = client.get("/admin/accounts/987654/roles")
    assert missing.status_code == 404 and "Page not found" in missing.get_data(as_text=True)


# ---------------------------------------------------------------------------------------------------------------
# Step-up before actions that grant access


def invitations(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count(Invitation.id))) or 0


def test_invite_reactivate_and_reset_ask_for_a_fresh_code_and_change_nothing_without_one(
    app: Flask, client: FlaskClient, admin: TestUser, create_user: Callable[..., TestUser]
) -> None:
    amira = create_user("amira", ["interviewer"])
    narine = create_user("narine", ["reviewer"])
    with app.app_context():
        ops.deactivate(db.session.get(Account, narine.id), actor=db.session.get(Account, admin.id))
        db.session.commit()
    accounts_before, invitations_before = account_count(app), invitations(app)
    events_before = {action: len(events(app, action)) for action in
                     ("invitation_issued", "account_reactivated", "mfa_reset")}

    page = client.get("/admin/accounts/invite")
    assert page.status_code == 302
    assert page.headers["Location"].endswith("/step-up?next=/admin/accounts/invite")
    attempts = {
        "/admin/accounts/invite": {"username": "vardan", "roles": ["admin"]},
        f"/admin/accounts/{narine.id}/reactivate": {},
        f"/admin/accounts/{amira.id}/reset-two-factor": {},
    }
    for path, data in attempts.items():
        response = post_form(client, path, data, token_from=ACCOUNTS)
        assert response.status_code == 302, path
        assert "/step-up?next=" in response.headers["Location"], path

    assert account_count(app) == accounts_before and account_named(app, "vardan") is None
    assert invitations(app) == invitations_before
    with app.app_context():
        assert not db.session.get(Account, narine.id).is_active
        assert db.session.get(Account, amira.id).can_sign_in
    assert {action: len(events(app, action)) for action in events_before} == events_before


def test_after_step_up_an_action_button_comes_back_to_the_accounts_list(
    app: Flask, client: FlaskClient, auth: Auth, admin: TestUser, create_user: Callable[..., TestUser]
) -> None:
    narine = create_user("narine", ["reviewer"])
    with app.app_context():
        ops.deactivate(db.session.get(Account, narine.id), actor=db.session.get(Account, admin.id))
        db.session.commit()
    page = client.get(ACCOUNTS).get_data(as_text=True)
    form = re.search(rf'<form method="post" action="/admin/accounts/{narine.id}/reactivate".*?</form>', page, re.S)
    assert form, "no reactivate button on the accounts page"
    fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form.group(0)))
    assert fields["next"] == ACCOUNTS

    pressed = client.post(f"/admin/accounts/{narine.id}/reactivate", data=fields)
    assert pressed.status_code == 302
    assert pressed.headers["Location"].endswith(f"/step-up?next={ACCOUNTS}")
    stepped = post_form(client, pressed.headers["Location"], {"code": auth.clock.code(admin.totp_secret)})
    assert stepped.status_code == 303 and stepped.headers["Location"].endswith(ACCOUNTS)
    # The person presses the button again, now with a fresh code.
    again = button(client, f"/admin/accounts/{narine.id}/reactivate")
    assert again.status_code == 303
    assert "narine can sign in again" in flash_text(client)


@pytest.mark.parametrize(
    ("action", "data", "expected_next"),
    [
        ("roles", {"roles": ["reviewer"]}, "/admin/accounts/{id}/roles"),  # the form's own page
        ("reset-two-factor", {}, "/"),  # no page of its own, no next: the start page
        ("reset-two-factor", {"next": "https://evil.example/admin/accounts"}, "/"),  # never elsewhere
        ("reset-two-factor", {"next": "//evil.example/"}, "/"),
        ("reset-two-factor", {"next": "/account"}, "/account"),
    ],
    ids=["own-page", "no-next", "foreign-next", "scheme-relative-next", "local-next"],
)
def test_after_a_form_the_step_up_returns_to_a_safe_local_page(
    app: Flask, client: FlaskClient, admin: TestUser, create_user: Callable[..., TestUser],
    action: str, data: dict[str, Any], expected_next: str,
) -> None:
    amira = create_user("amira", ["interviewer"])
    response = post_form(client, f"/admin/accounts/{amira.id}/{action}", data, token_from=ACCOUNTS,
                         headers={"Referer": "http://localhost/admin/accounts"})  # never sent, never used
    assert response.status_code == 302
    assert response.headers["Location"] == "/step-up?next=" + expected_next.format(id=amira.id)


# ---------------------------------------------------------------------------------------------------------------
# Two-factor reset


def test_resetting_two_factor_issues_a_link_and_the_old_code_stops_working(
    app: Flask, client: FlaskClient, auth: Auth, admin: TestUser, create_user: Callable[..., TestUser],
    totp_clock: TotpClock,
) -> None:
    amira = create_user("amira", ["interviewer"])
    theirs = app.test_client()
    their_auth = Auth(theirs, totp_clock)
    their_auth.sign_in(amira)
    auth.step_up(admin)

    response = button(client, f"/admin/accounts/{amira.id}/reset-two-factor")
    assert response.status_code == 200
    assert "Two-factor reset for amira" in response.get_data(as_text=True)
    path = link_path(response)
    assert path.startswith("/enrol/")
    assert theirs.get("/").status_code == 302  # their sessions ended

    old_code = their_auth.sign_in(amira)  # password right, code from the old authenticator
    assert old_code.status_code == 422
    assert "not correct" in old_code.get_data(as_text=True)

    # The link lets them confirm their password and set up a new authenticator.
    opened = open_link(theirs, path)
    assert opened.status_code == 303
    step1 = post_form(theirs, "/enrol/password", {"password": amira.password})
    assert step1.status_code == 303
    page = theirs.get("/enrol/authenticator").get_data(as_text=True)
    new_secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    assert new_secret != amira.totp_secret
    done = post_form(theirs, "/enrol/authenticator", {"code": totp_clock.code(new_secret)},
                     token_from="/enrol/password")
    assert done.status_code == 303
    post_form(theirs, "/sign-out", {}, token_from="/")
    assert their_auth.sign_in(amira).status_code == 422  # old secret, still refused
    assert their_auth.sign_in(amira, code=totp_clock.code(new_secret)).status_code == 303
    assert theirs.get(path).status_code == 410  # the link worked once


def test_a_newer_reset_link_replaces_the_older_one(
    app: Flask, client: FlaskClient, auth: Auth, admin: TestUser, create_user: Callable[..., TestUser]
) -> None:
    amira = create_user("amira")
    auth.step_up(admin)
    first = link_path(button(client, f"/admin/accounts/{amira.id}/reset-two-factor"))
    second = link_path(button(client, f"/admin/accounts/{amira.id}/reset-two-factor"))
    other = app.test_client()
    assert other.get(first).status_code == 410
    assert open_link(other, second).status_code == 303


def test_an_admin_cannot_reset_their_own_two_factor(
    app: Flask, client: FlaskClient, auth: Auth, admin: TestUser
) -> None:
    auth.step_up(admin)
    response = button(client, f"/admin/accounts/{admin.id}/reset-two-factor", follow_redirects=True)
    assert "Ask another admin" in response.get_data(as_text=True)
    assert 'id="one-time-link"' not in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Account, admin.id).can_sign_in
        assert db.session.scalar(sa.select(sa.func.count(Invitation.id))) == 0


# ---------------------------------------------------------------------------------------------------------------
# Audit and separation of duties


def test_every_admin_action_is_audited_with_the_admin_as_actor(
    app: Flask, client: FlaskClient, auth: Auth, admin: TestUser, create_user: Callable[..., TestUser]
) -> None:
    amira = create_user("amira", ["interviewer"])
    auth.step_up(admin)
    invited = post_form(client, "/admin/accounts/invite", {"username": "narine", "roles": ["reviewer"]})
    narine = account_named(app, "narine")
    post_form(client, f"/admin/accounts/{amira.id}/roles", {"roles": ["interviewer", "coordinator"]})
    button(client, f"/admin/accounts/{amira.id}/deactivate")
    button(client, f"/admin/accounts/{amira.id}/reactivate")
    button(client, f"/admin/accounts/{amira.id}/reset-two-factor")
    assert invited.status_code == 200 and narine is not None

    expected = {
        "invitation_issued": narine.id,
        "roles_changed": amira.id,
        "account_deactivated": amira.id,
        "account_reactivated": amira.id,
        "mfa_reset": amira.id,
    }
    for action, target in expected.items():
        found = events(app, action)
        assert len(found) == 1, action
        event = found[0]
        assert event.actor_id == admin.id, action
        assert event.actor_roles == "admin"
        assert event.target_type == "account" and event.target_ids == [target], action
        assert event.request_id
    roles_event = events(app, "roles_changed")[0]
    assert roles_event.details == {"before": ["interviewer"], "after": ["coordinator", "interviewer"]}
    with app.app_context():
        link_text = invited.get_data(as_text=True)
        for event in db.session.scalars(sa.select(AuditEvent)):
            assert link_path(invited).removeprefix("/enrol/") not in str(event.details)
        assert "narine" in link_text


CONTENT_PERMISSIONS = frozenset({Permission.RECORD_INTERVIEWS, Permission.REVIEW_RECORDS,
                                 Permission.BUILD_CASE_FILES, Permission.COORDINATE})


def test_admins_hold_no_content_permissions_and_cannot_gain_any() -> None:
    assert ROLE_PERMISSIONS[Role.ADMIN] == {Permission.OWN_ACCOUNT, Permission.MANAGE_ACCOUNTS,
                                        Permission.MANAGE_RECIPIENTS}
    assert not ROLE_PERMISSIONS[Role.ADMIN] & CONTENT_PERMISSIONS
    assert not ROLE_PERMISSIONS[Role.AUDITOR] & CONTENT_PERMISSIONS
    assert all(Role.ADMIN not in combination for combination in COMPATIBLE_ROLE_SETS)
    assert all(Role.AUDITOR not in combination for combination in COMPATIBLE_ROLE_SETS)
    # Only admins manage accounts.
    assert [r for r, perms in ROLE_PERMISSIONS.items() if Permission.MANAGE_ACCOUNTS in perms] == [Role.ADMIN]


def test_people_without_the_admin_role_cannot_reach_the_admin_pages(
    client: FlaskClient, auth: Auth, create_user: Callable[..., TestUser]
) -> None:
    coordinator = create_user("amira", ["coordinator"])
    auth.sign_in(coordinator)
    assert client.get(ACCOUNTS).status_code == 403
    assert post_form(client, "/admin/accounts/invite", {"username": "x1", "roles": ["admin"]},
                     token_from="/").status_code == 403


def test_an_admin_sets_a_team_which_the_account_list_shows_and_the_log_records(
    app: Flask, client: FlaskClient, auth: Auth, admin: TestUser, create_user: Callable[..., TestUser]
) -> None:
    amira = create_user("amira", ["interviewer"])
    path = f"/admin/accounts/{amira.id}/roles"
    assert post_form(client, f"/step-up?next={path}", {"code": auth.clock.code(admin.totp_secret)}).status_code == 303
    too_long = post_form(client, path, {"roles": ["interviewer"], "team": "x" * 65})
    assert too_long.status_code == 422
    assert account_named(app, "amira").team is None
    changed = post_form(client, path, {"roles": ["interviewer"], "team": "  Goris   team "})
    assert changed.status_code == 303
    assert account_named(app, "amira").team == "Goris team"
    assert "Goris team" in client.get(ACCOUNTS).get_data(as_text=True)
    assert [e.details for e in events(app, "team_changed")] == [{"before": None, "after": "Goris team"}]
