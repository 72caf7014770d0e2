"""One-time links: the setup link, enrolment links and two-factor reset links.

Each link works once, before it expires, unless replaced; the token never lingers in an address or a page; a
refused link says why in words a person can act on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from intake.accounts import operations as ops
from intake.accounts.models import Account, Invitation
from intake.core.db import db, utcnow
from tests.conftest import PASSWORD, Auth, TestUser, TotpClock, open_link, post_form

SECRET_PATTERN = re.compile(r'id="totp-secret">([A-Z2-7 ]+)<')
LINK_PATTERN = re.compile(r'id="one-time-link">([^<]+)<')
BASE = "http://localhost"


def setup_link(app: Flask) -> str:
    with app.app_context():
        link = ops.issue_setup_link()
        db.session.commit()
        return link.url.removeprefix(BASE)


def invitation_link(app: Flask, username: str = "amira", roles: tuple[str, ...] = ("interviewer",)) -> str:
    with app.app_context():
        link = ops.invite_account(username=username, roles=list(roles), actor=None)
        db.session.commit()
        return link.url.removeprefix(BASE)


def token_of(path: str) -> str:
    return path.rsplit("/", 1)[1]


def expire(app: Flask, path: str) -> None:
    with app.app_context():
        invitation = db.session.scalar(sa.select(Invitation).where(Invitation.token_hash == ops._token_hash(
            token_of(path))))
        assert invitation is not None
        invitation.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()


def account_named(app: Flask, username: str) -> Account:
    with app.app_context():
        account = db.session.scalar(sa.select(Account).where(Account.username == username))
        assert account is not None
        db.session.expunge(account)
        return account


def deactivate(app: Flask, username: str, *, by: TestUser) -> None:
    with app.app_context():
        target = db.session.scalar(sa.select(Account).where(Account.username == username))
        admin = db.session.get(Account, by.id)
        assert target is not None and admin is not None
        ops.deactivate(target, actor=admin)
        db.session.commit()


def assert_refused(response: object, words: str) -> None:
    assert response.status_code == 410  # type: ignore[attr-defined]
    html = response.get_data(as_text=True)  # type: ignore[attr-defined]
    assert "This link cannot be used" in html
    assert words in html


def choose_password_and_enrol(client: FlaskClient, clock: TotpClock, data: dict[str, str]) -> str:
    """From an opened link: step 1 with `data`, then confirm a code from the new authenticator; return its secret."""
    step1 = post_form(client, "/enrol/password", data)
    assert step1.status_code == 303, step1.get_data(as_text=True)
    page = client.get("/enrol/authenticator").get_data(as_text=True)
    match = SECRET_PATTERN.search(page)
    assert match, page
    secret = match.group(1).replace(" ", "")
    step2 = post_form(client, "/enrol/authenticator", {"code": clock.code(secret)}, token_from="/enrol/password")
    assert step2.status_code == 303, step2.get_data(as_text=True)
    return secret


# ---------------------------------------------------------------------------------------------------------------
# Works once, expires, unknown


def test_an_enrolment_link_works_once(app: Flask) -> None:
    link = invitation_link(app)
    first = open_link(app.test_client(), link)
    assert first.status_code == 303
    assert first.headers["Location"].endswith("/enrol/password")

    again = app.test_client().get(link)
    assert_refused(again, "This link has already been used. Ask an administrator for a new one.")
    # The same browser reopening it is refused too.
    assert_refused(app.test_client().get(link), "already been used")


def test_an_expired_link_says_it_has_expired(app: Flask) -> None:
    link = invitation_link(app)
    expire(app, link)
    assert_refused(app.test_client().get(link), "This link has expired. Ask an administrator for a new one.")


def test_an_expired_setup_link_says_it_has_expired(make_app: Callable[..., Flask]) -> None:
    app = make_app(SETUP_LINK_MINUTES=5)
    link = setup_link(app)
    with app.app_context():
        invitation = db.session.scalar(sa.select(Invitation))
        assert invitation is not None
        lifetime = invitation.expires_at - invitation.created_at
        assert timedelta(minutes=4) < lifetime <= timedelta(minutes=5, seconds=1)
    expire(app, link)
    assert_refused(app.test_client().get(link), "expired")


def test_a_link_that_expires_while_enrolling_stops_the_enrolment(app: Flask) -> None:
    link = invitation_link(app)
    client = app.test_client()
    assert open_link(client, link).status_code == 303
    expire(app, link)
    page = client.get("/enrol/password")
    assert page.status_code == 404
    assert "There is no enrolment in progress here" in page.get_data(as_text=True)


def test_an_unknown_token_is_not_valid(app: Flask) -> None:
    for path in ("/enrol/" + "x" * 43, "/setup/" + "y" * 43):
        assert_refused(app.test_client().get(path), "This link is not valid. Ask an administrator for a new one.")


def test_an_enrolment_token_does_not_work_as_a_setup_link_and_back(app: Flask) -> None:
    invite = invitation_link(app, "amira")
    assert_refused(app.test_client().get("/setup/" + token_of(invite)), "not valid")
    with app.app_context():
        # No account may exist for a setup link; remove the invited one to get a valid setup link.
        db.session.execute(sa.delete(Account))
        db.session.commit()
    setup = setup_link(app)
    assert_refused(app.test_client().get("/enrol/" + token_of(setup)), "not valid")
    # Neither refusal spent the real link.
    assert open_link(app.test_client(), setup).status_code == 303


# ---------------------------------------------------------------------------------------------------------------
# Setup link


def test_a_setup_link_is_refused_once_an_account_exists(app: Flask, create_user: Callable[..., TestUser]) -> None:
    link = setup_link(app)
    create_user("lusine", roles=("admin",))
    assert_refused(app.test_client().get(link), "The first admin has already been set up. Sign in instead.")
    with app.app_context():
        try:
            ops.issue_setup_link()
        except ops.AccountError as exc:
            assert "already exists" in exc.message
        else:
            raise AssertionError("a setup link was issued although an account exists")


def test_a_newer_setup_link_replaces_the_older(app: Flask, totp_clock: TotpClock) -> None:
    older = setup_link(app)
    newer = setup_link(app)
    assert_refused(app.test_client().get(older),
                   "This link has been replaced by a newer one. Use the newest link you were given.")
    client = app.test_client()
    assert open_link(client, newer).status_code == 303
    choose_password_and_enrol(client, totp_clock, {"username": "lusine", "password": PASSWORD,
                                                   "confirm": PASSWORD})
    assert "lusine" in client.get("/").get_data(as_text=True)


def test_a_setup_link_opened_in_two_browsers_creates_one_admin(app: Flask, totp_clock: TotpClock) -> None:
    link = setup_link(app)
    client = app.test_client()
    assert open_link(client, link).status_code == 303
    choose_password_and_enrol(client, totp_clock, {"username": "lusine", "password": PASSWORD, "confirm": PASSWORD})
    assert_refused(app.test_client().get(link), "already been used")
    with app.app_context():
        assert db.session.scalars(sa.select(Account.username)).all() == ["lusine"]


def test_the_command_line_refuses_links_with_a_readable_message(app: Flask,
                                                             create_user: Callable[..., TestUser]) -> None:
    create_user("amira")
    runner = app.test_cli_runner()
    taken = runner.invoke(args=["users", "invite", "--username", "amira", "--role", "interviewer"])
    assert taken.exit_code == 1
    assert "That username is taken." in taken.output
    assert isinstance(taken.exception, SystemExit)  # a clean refusal, not a crash
    refused = runner.invoke(args=["setup-link"])
    assert refused.exit_code == 1
    assert "Accounts exist already" in refused.output


# ---------------------------------------------------------------------------------------------------------------
# The token stays out of addresses and pages


def test_the_token_leaves_the_address_at_once_and_never_shows_again(app: Flask) -> None:
    link = invitation_link(app)
    token = token_of(link)
    client = app.test_client()
    opened = open_link(client, link)
    assert opened.status_code == 303
    assert token not in opened.headers["Location"]
    assert token not in opened.get_data(as_text=True)
    assert opened.headers["Referrer-Policy"] == "no-referrer"
    assert opened.headers["Cache-Control"] == "no-store"

    page = client.get(opened.headers["Location"])
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Choose a password for amira" in html
    assert token not in html
    assert all(token not in value for _, value in page.headers.items())


def test_a_refused_link_does_not_echo_the_token(app: Flask) -> None:
    link = invitation_link(app)
    open_link(app.test_client(), link)
    refused = app.test_client().get(link)
    assert refused.status_code == 410
    assert token_of(link) not in refused.get_data(as_text=True)


# ---------------------------------------------------------------------------------------------------------------
# Enrolment needs an opened link


def test_enrolment_without_an_opened_link_is_not_found(app: Flask) -> None:
    invitation_link(app)  # a link exists, but this browser never opened it
    client = app.test_client()
    for path in ("/enrol/password", "/enrol/authenticator"):
        page = client.get(path)
        assert page.status_code == 404
        html = page.get_data(as_text=True)
        assert "There is no enrolment in progress here. Open the link you were given again" in html
        assert "Traceback" not in html


def test_posting_to_enrolment_without_an_opened_link_changes_nothing(app: Flask) -> None:
    invitation_link(app)
    client = app.test_client()
    response = post_form(client, "/enrol/password", {"password": PASSWORD, "confirm": PASSWORD},
                         token_from="/sign-in")
    assert response.status_code == 404
    assert account_named(app, "amira").password_hash is None


def test_the_authenticator_step_needs_the_password_step_first(app: Flask) -> None:
    link = invitation_link(app)
    client = app.test_client()
    open_link(client, link)
    skipped = client.get("/enrol/authenticator")
    assert skipped.status_code == 303
    assert skipped.headers["Location"].endswith("/enrol/password")
    assert account_named(app, "amira").totp_secret is None


# ---------------------------------------------------------------------------------------------------------------
# Deactivated accounts


def test_a_deactivated_accounts_invitation_link_is_refused(app: Flask, create_user: Callable[..., TestUser]) -> None:
    admin = create_user("lusine", roles=("admin",))
    link = invitation_link(app, "amira")
    deactivate(app, "amira", by=admin)
    assert_refused(app.test_client().get(link), "This account has been deactivated. Ask an administrator.")
    assert account_named(app, "amira").password_hash is None


# ---------------------------------------------------------------------------------------------------------------
# Two-factor reset


def reset_two_factor_through_admin_page(app: Flask, clock: TotpClock, admin: TestUser, target: TestUser) -> str:
    admin_client = app.test_client()
    Auth(admin_client, clock).sign_in(admin)
    Auth(admin_client, clock).step_up(admin)
    issued = post_form(admin_client, f"/admin/accounts/{target.id}/reset-two-factor", {},
                       token_from="/admin/accounts")
    assert issued.status_code == 200, issued.get_data(as_text=True)
    html = issued.get_data(as_text=True)
    assert "Two-factor reset for" in html
    match = LINK_PATTERN.search(html)
    assert match
    return match.group(1).removeprefix(BASE)


def test_two_factor_reset_confirms_the_password_then_replaces_the_authenticator(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    admin = create_user("lusine", roles=("admin",))
    user = create_user("amira")
    before = account_named(app, "amira")
    link = reset_two_factor_through_admin_page(app, totp_clock, admin, user)

    client = app.test_client()
    assert open_link(client, link).status_code == 303
    page = client.get("/enrol/password").get_data(as_text=True)
    assert "Set up a new authenticator" in page and "Confirm your password for amira" in page

    wrong = post_form(client, "/enrol/password", {"password": "not the password at all"})
    assert wrong.status_code == 422
    html = wrong.get_data(as_text=True)
    assert "That password is not correct." in html
    assert 'href="#password"' in html
    after_wrong = account_named(app, "amira")
    assert after_wrong.password_hash == before.password_hash
    assert after_wrong.totp_secret is None and after_wrong.mfa_confirmed_at is None
    # Without the password step the authenticator step sends the person back.
    assert client.get("/enrol/authenticator").status_code == 303

    new_secret = choose_password_and_enrol(client, totp_clock, {"password": user.password})
    assert new_secret != user.totp_secret
    assert client.get("/").status_code == 200
    after = account_named(app, "amira")
    assert after.password_hash == before.password_hash  # confirming the password did not change it
    assert after.mfa_confirmed_at is not None

    # The old authenticator no longer signs in; the new one does.
    old = Auth(app.test_client(), totp_clock).sign_in(user)
    assert old.status_code == 422
    assert "The username, password or code is not correct." in old.get_data(as_text=True)
    new_user = TestUser(user.id, user.username, user.password, new_secret, user.roles)
    assert Auth(app.test_client(), totp_clock).sign_in(new_user).status_code == 303
    # And the reset link is spent.
    assert_refused(app.test_client().get(link), "already been used")


def test_two_factor_reset_signs_the_person_out_and_their_old_code_stops_working_at_once(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    admin = create_user("lusine", roles=("admin",))
    user = create_user("amira")
    user_client = app.test_client()
    Auth(user_client, totp_clock).sign_in(user)
    assert user_client.get("/").status_code == 200

    reset_two_factor_through_admin_page(app, totp_clock, admin, user)
    assert user_client.get("/").status_code == 302
    refused = Auth(app.test_client(), totp_clock).sign_in(user)
    assert refused.status_code == 422


def test_a_newer_reset_link_replaces_the_older(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    admin = create_user("lusine", roles=("admin",))
    user = create_user("amira")
    older = reset_two_factor_through_admin_page(app, totp_clock, admin, user)
    newer = reset_two_factor_through_admin_page(app, totp_clock, admin, user)
    assert_refused(app.test_client().get(older), "replaced by a newer one")
    assert open_link(app.test_client(), newer).status_code == 303


def test_a_deactivated_accounts_reset_link_is_refused(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    admin = create_user("lusine", roles=("admin",))
    user = create_user("amira")
    link = reset_two_factor_through_admin_page(app, totp_clock, admin, user)
    deactivate(app, "amira", by=admin)
    assert_refused(app.test_client().get(link), "deactivated")


def test_deactivation_stops_an_enrolment_already_under_way(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    admin = create_user("lusine", roles=("admin",))
    link = invitation_link(app, "amira")
    client = app.test_client()
    assert open_link(client, link).status_code == 303
    deactivate(app, "amira", by=admin)
    refused = post_form(client, "/enrol/password", {"password": PASSWORD, "confirm": PASSWORD},
                        token_from="/sign-in")
    assert refused.status_code == 404
    assert "There is no enrolment in progress here" in refused.get_data(as_text=True)
    assert account_named(app, "amira").password_hash is None


def test_wrong_passwords_on_a_reset_link_count_towards_the_lockout(
    make_app: Callable[..., Flask], create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    app = make_app(LOCKOUT_THRESHOLD=2)
    with app.app_context():
        admin = ops.create_account(username="lusine", roles=["admin"], password=PASSWORD)
        target = ops.create_account(username="amira", roles=["interviewer"], password=PASSWORD)
        link = ops.reset_two_factor(target, actor=admin).url.removeprefix(BASE)
        db.session.commit()
    client = app.test_client()
    assert open_link(client, link).status_code == 303
    for _ in range(2):
        wrong = post_form(client, "/enrol/password", {"password": "not the password at all"})
        assert "That password is not correct." in wrong.get_data(as_text=True)
    locked = post_form(client, "/enrol/password", {"password": PASSWORD})
    assert locked.status_code == 422
    assert "Too many failed attempts for this account." in locked.get_data(as_text=True)
    with app.app_context():
        from intake.core.audit import AuditEvent

        failures = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "login_failed")).all()
        assert [e.details["step"] for e in failures] == ["two_factor_reset", "two_factor_reset"]


def test_links_of_a_deactivated_account_stay_dead_after_reactivation(
    app: Flask, create_user: Callable[..., TestUser]
) -> None:
    admin = create_user("lusine", roles=("admin",))
    link = invitation_link(app, "amira")
    deactivate(app, "amira", by=admin)
    with app.app_context():
        target = db.session.scalar(sa.select(Account).where(Account.username == "amira"))
        ops.reactivate(target, actor=db.session.get(Account, admin.id))
        db.session.commit()
    assert_refused(app.test_client().get(link), "replaced by a newer one")
    assert account_named(app, "amira").password_hash is None


def test_looking_at_a_link_does_not_spend_it(app: Flask) -> None:
    link = invitation_link(app)
    for _ in range(2):  # a mail scanner, then the person
        landing = app.test_client().get(link)
        assert landing.status_code == 200
        assert "You have been invited as amira." in landing.get_data(as_text=True)
        assert token_of(link) not in landing.get_data(as_text=True)
    assert open_link(app.test_client(), link).status_code == 303


def test_continuing_from_a_link_needs_the_pages_csrf_token(app: Flask) -> None:
    link = invitation_link(app)
    client = app.test_client()
    client.get(link)
    assert client.post(link, data={}).status_code == 400
    assert open_link(app.test_client(), link).status_code == 303  # the refused attempt did not spend it


def test_an_abandoned_first_admin_setup_can_be_started_again(app: Flask, totp_clock: TotpClock) -> None:
    first = setup_link(app)
    client = app.test_client()
    open_link(client, first)
    step1 = post_form(client, "/enrol/password", {"username": "lusine", "password": PASSWORD, "confirm": PASSWORD})
    assert step1.status_code == 303  # … and then the browser was closed before the authenticator step

    result = app.test_cli_runner().invoke(args=["setup-link", "--if-no-accounts"])
    assert result.exit_code == 0 and "/setup/" in result.output
    again = re.search(r"http://localhost(/setup/\S+)", result.output).group(1)
    assert_refused(app.test_client().get(first), "replaced by a newer one")
    fresh = app.test_client()
    assert open_link(fresh, again).status_code == 303
    choose_password_and_enrol(fresh, totp_clock, {"username": "lusine", "password": PASSWORD, "confirm": PASSWORD})
    with app.app_context():
        assert db.session.scalars(sa.select(Account.username)).all() == ["lusine"]


def test_reloading_the_authenticator_page_keeps_the_secret_already_scanned(app: Flask) -> None:
    client = app.test_client()
    open_link(client, invitation_link(app))
    post_form(client, "/enrol/password", {"password": PASSWORD, "confirm": PASSWORD})
    first = SECRET_PATTERN.search(client.get("/enrol/authenticator").get_data(as_text=True)).group(1)
    second = SECRET_PATTERN.search(client.get("/enrol/authenticator").get_data(as_text=True)).group(1)
    assert first == second
