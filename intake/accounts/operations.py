"""Everything that changes accounts. Operations write audit events and never commit: the caller's single
transaction (the request pipeline or a CLI command) commits or rolls back the change and its events together."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from intake.accounts import passwords, totp
from intake.accounts.models import (
    Account,
    AccountRole,
    ApiToken,
    Invitation,
    InvitationKind,
    RecoveryCode,
    SignInThrottle,
)
from intake.core.audit import AuditAction, record_event
from intake.core.crypto import account_secrets, current_keyring
from intake.core.crypto.account_secrets import SecretUnreadable
from intake.core.crypto.datakeys import create_data_key
from intake.core.crypto.envelope import Unreadable
from intake.core.crypto.fields import Tombstone, open_value, seal_value
from intake.core.db import db, transactions_write, utcnow
from intake.core.security import Role, roles_are_compatible
from intake.core.sessions import WebSession

log = logging.getLogger("intake.accounts")

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
API_TOKEN_PREFIX = "intk_"  # noqa: S105 - a public prefix that makes leaked tokens recognisable
RECOVERY_CODE_COUNT = 10
# Failed sign-ins older than this no longer count towards a lockout.
FAILURES_REMEMBERED = timedelta(days=1)


class AccountError(Exception):
    """A request about an account cannot be carried out; the message is translated and safe to show."""

    def __init__(self, message: object, *, field: str | None = None) -> None:
        super().__init__(str(message))
        self.message = str(message)
        self.field = field


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def normalise_username(username: str) -> str:
    return unicodedata.normalize("NFKC", username).strip().casefold()


def _validate_new_username(username: str) -> str:
    name = normalise_username(username)
    if not USERNAME_PATTERN.match(name):
        raise AccountError(
            _l("Use 2 to 64 characters: lowercase Latin letters, digits, dots, hyphens or underscores."),
            field="username",
        )
    if db.session.scalar(sa.select(Account.id).where(Account.username == name)) is not None:
        raise AccountError(_l("That username is taken."), field="username")
    return name


def _add_new_account(account: Account) -> None:
    """Insert `account`; a name taken meanwhile by a concurrent request is refused like any taken name."""
    try:
        with db.session.begin_nested():
            db.session.add(account)
            db.session.flush()
    except sa.exc.IntegrityError:
        raise AccountError(_l("That username is taken."), field="username") from None


def _validate_roles(roles: Iterable[str]) -> list[Role]:
    try:
        chosen = sorted({Role(r) for r in roles})
    except ValueError:
        raise AccountError(_l("Unknown role."), field="roles") from None
    if not chosen:
        raise AccountError(_l("Choose at least one role."), field="roles")
    if not roles_are_compatible(chosen):
        raise AccountError(_l("These roles cannot be held by one account."), field="roles")
    return chosen


def _keyed_hash(purpose: str, value: str) -> str:
    key = current_keyring().subkey(purpose)
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _link(path: str) -> str:
    return current_app.config["BASE_URL"].rstrip("/") + path


def end_all_sessions(account: Account) -> None:
    """Sign the account out everywhere: database sessions are deleted, Redis ones fail the epoch check."""
    account.auth_epoch += 1
    db.session.execute(sa.delete(WebSession).where(WebSession.account_id == account.id))


def active_admin_count() -> int:
    return db.session.scalar(
        sa.select(sa.func.count(Account.id))
        .join(AccountRole)
        .where(AccountRole.role == Role.ADMIN.value, Account.is_active.is_(True), Account.mfa_confirmed_at.is_not(None))
    ) or 0


def _is_last_admin(account: Account) -> bool:
    """True when `account` is the only admin able to sign in (an invitee who never enrolled does not count)."""
    return (
        Role.ADMIN.value in account.role_names and account.is_active and account.mfa_confirmed_at is not None
        and active_admin_count() <= 1
    )


# ---------------------------------------------------------------------------------------------------------------
# Accounts created directly (tests, benchmarks); people enrol through invitations instead.


def create_account(
    *,
    username: str,
    roles: Sequence[str],
    password: str | None = None,
    totp_secret: str | None = None,
    actor: Account | None = None,
) -> Account:
    """Create an enrolled account directly (for scripts and tests; people enrol through a link instead).

    With a password the account can sign in; its TOTP secret is `totp_secret`, or a new random one.
    """
    name = _validate_new_username(username)
    account = Account(username=name, roles=[AccountRole(role=r.value) for r in _validate_roles(roles)])
    if password is not None:
        account.password_hash = passwords.hash_password(password)
        account.password_changed_at = utcnow()
    _add_new_account(account)
    if password is not None:
        _store_totp_secret(account, totp_secret or totp.new_secret())
        account.mfa_confirmed_at = utcnow()
    record_event(AuditAction.ACCOUNT_CREATED, actor=actor, target_type="account", target_ids=[account.id],
                 details={"roles": account.role_names})
    return account


def _store_totp_secret(account: Account, secret: str) -> None:
    """Seal the two-factor seed under the account's data key (created with the first secret it holds)."""
    key = None
    if account.data_key is None:
        account.data_key, key = create_data_key("account")
    seal_value(account, "totp_secret", secret.encode(), key=key)


def _totp_secret(account: Account) -> str:
    if account.totp_secret is None:
        raise AccountError(_l("No authenticator is set up for this account."))
    if account_secrets.is_legacy(account.totp_secret):
        return account_secrets.open_sealed(current_keyring(), account.totp_secret, table="accounts",
                                           row_id=account.id, field="totp_secret").decode()
    try:
        value = open_value(account, "totp_secret")
    except (Unreadable, LookupError):
        raise SecretUnreadable("the two-factor seed does not open") from None
    if isinstance(value, Tombstone) or value is None:
        raise SecretUnreadable("the account's data key was destroyed")
    return bytes(value).decode()


def reseal_legacy_secrets() -> int:
    """Move two-factor seeds sealed in the earlier format (a keyring subkey) onto the account's data key.

    Run by `intake db upgrade`; returns how many were moved. A seed that does not open is left as it is (sign-in
    refuses it as a wrong code would, and logs why).
    """
    moved = 0
    for account in db.session.scalars(sa.select(Account).where(Account.totp_secret.is_not(None))):
        if account.totp_secret is None or not account_secrets.is_legacy(account.totp_secret):
            continue
        try:
            secret = _totp_secret(account)
        except SecretUnreadable:
            log.error("an account's two-factor secret cannot be opened", extra={"account_id": account.id})
            continue
        _store_totp_secret(account, secret)
        moved += 1
    return moved


# ---------------------------------------------------------------------------------------------------------------
# One-time links


@dataclass(frozen=True)
class IssuedLink:
    invitation: Invitation
    url: str


def _issue(kind: InvitationKind, *, lifetime: timedelta, account: Account | None, actor: Account | None) -> IssuedLink:
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        token_hash=_token_hash(token),
        kind=kind.value,
        account_id=account.id if account else None,
        created_by_id=actor.id if actor else None,
        expires_at=utcnow() + lifetime,
    )
    db.session.add(invitation)
    db.session.flush()
    path = "/setup/" if kind is InvitationKind.SETUP else "/enrol/"
    return IssuedLink(invitation, _link(path + token))


def setup_is_complete() -> bool:
    """True once any account has finished enrolling: from then on admins invite people, not setup links."""
    return db.session.scalar(sa.select(Account.id).where(Account.mfa_confirmed_at.is_not(None)).limit(1)) is not None


def issue_setup_link() -> IssuedLink:
    """A single-use link that creates the first admin. Refused once an account has finished enrolling.

    Earlier unused setup links are revoked, so only the newest printed link works, and an admin account begun
    through one of them but never finished is removed, so that abandoning the setup half-way loses nothing.
    """
    if setup_is_complete():
        raise AccountError(_l("An account already exists; the first admin has been set up."))
    now = utcnow()
    for old in db.session.scalars(
        sa.select(Invitation).where(Invitation.kind == InvitationKind.SETUP.value, Invitation.completed_at.is_(None))
    ):
        old.revoked_at = old.revoked_at or now
        unfinished = old.account
        if unfinished is not None and unfinished.mfa_confirmed_at is None:
            old.account_id = None
            db.session.delete(unfinished)
    link = _issue(
        InvitationKind.SETUP, lifetime=timedelta(minutes=current_app.config["SETUP_LINK_MINUTES"]), account=None,
        actor=None,
    )
    record_event(AuditAction.SETUP_LINK_ISSUED, target_type="invitation", target_ids=[link.invitation.id])
    return link


def _team(team: str | None) -> str | None:
    value = " ".join((team or "").split())
    if len(value) > 64:
        raise AccountError(_l("A team name is at most 64 characters."), field="team")
    return value or None


def invite_account(*, username: str, roles: Sequence[str], actor: Account | None,
                   team: str | None = None) -> IssuedLink:
    """Create a not-yet-enrolled account and a single-use enrolment link for it."""
    name = _validate_new_username(username)
    chosen = _validate_roles(roles)
    account = Account(username=name, roles=[AccountRole(role=r.value) for r in chosen], team=_team(team))
    _add_new_account(account)
    link = _issue(
        InvitationKind.INVITE, lifetime=timedelta(hours=current_app.config["INVITATION_HOURS"]), account=account,
        actor=actor,
    )
    record_event(AuditAction.INVITATION_ISSUED, actor=actor, target_type="account", target_ids=[account.id],
                 details={"roles": [r.value for r in chosen], "invitation_id": link.invitation.id})
    return link


def check_link(token: str, *, kind: InvitationKind | None = None) -> Invitation:
    """The invitation behind a one-time link if it can still be used; AccountError saying why not otherwise.

    Looking does not spend the link (mail scanners and link previews fetch links); `open_link` does.
    """
    invitation = db.session.scalar(sa.select(Invitation).where(Invitation.token_hash == _token_hash(token)))
    if invitation is None or (kind is not None and invitation.kind != kind.value) or (
        kind is None and invitation.kind == InvitationKind.SETUP.value
    ):
        raise AccountError(_l("This link is not valid. Ask an administrator for a new one."))
    if invitation.account is not None and not invitation.account.is_active:
        raise AccountError(_l("This account has been deactivated. Ask an administrator."))
    if invitation.revoked_at is not None:
        raise AccountError(_l("This link has been replaced by a newer one. Use the newest link you were given."))
    if invitation.opened_at is not None:
        raise AccountError(_l("This link has already been used. Ask an administrator for a new one."))
    if invitation.expires_at <= utcnow():
        raise AccountError(_l("This link has expired. Ask an administrator for a new one."))
    if invitation.kind == InvitationKind.SETUP.value and setup_is_complete():
        raise AccountError(_l("The first admin has already been set up. Sign in instead."))
    return invitation


def open_link(token: str, *, kind: InvitationKind | None = None) -> Invitation:
    """Spend a one-time link: it works exactly once, before it expires, unless revoked.

    Spent with a conditional UPDATE, so of two browsers opening the same link at once only one gets it.
    """
    invitation = check_link(token, kind=kind)
    now = utcnow()
    spent = db.session.execute(
        sa.update(Invitation)
        .where(Invitation.id == invitation.id, Invitation.opened_at.is_(None))
        .values(opened_at=now)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(spent) != 1:
        raise AccountError(_l("This link has already been used. Ask an administrator for a new one."))
    set_committed_value(invitation, "opened_at", now)
    return invitation


def pending_invitation(invitation_id: int | None) -> Invitation | None:
    """The opened, unfinished, unexpired invitation with this id (kept in the session after opening)."""
    if invitation_id is None:
        return None
    invitation = db.session.get(Invitation, invitation_id)
    if (
        invitation is None
        or invitation.completed_at is not None
        or invitation.revoked_at is not None
        or invitation.expires_at <= utcnow()
        or (invitation.account is not None and not invitation.account.is_active)
    ):
        return None
    return invitation


def _invited_account(invitation: Invitation) -> Account:
    if invitation.account is None:
        raise AccountError(_l("Start again from your link."))
    return invitation.account


def set_enrolment_credentials(invitation: Invitation, *, password: str, username: str | None = None) -> Account:
    """First enrolment step. Setup: create the admin. Invite: choose a password. Reset: confirm the password."""
    if invitation.kind == InvitationKind.RESET_MFA.value:
        account = _invited_account(invitation)
        _check_password_guarded(account, password, step="two_factor_reset", field="password")
        return account
    if invitation.kind == InvitationKind.SETUP.value:
        if invitation.account is None:
            name = _validate_new_username(username or "")
            problems = passwords.password_problems(password, username=name)
            if problems:
                raise AccountError(problems[0], field="password")
            account = Account(username=name, roles=[AccountRole(role=Role.ADMIN.value)])
            _add_new_account(account)
            invitation.account_id = account.id
            invitation.account = account
    account = _invited_account(invitation)
    problems = passwords.password_problems(password, username=account.username)
    if problems:
        raise AccountError(problems[0], field="password")
    account.password_hash = passwords.hash_password(password)
    account.password_changed_at = utcnow()
    return account


def start_authenticator(account: Account) -> str:
    """Generate a new TOTP secret for `account` (not yet confirmed) and return it for display."""
    secret = totp.new_secret()
    _store_totp_secret(account, secret)
    account.mfa_confirmed_at = None
    account.totp_last_counter = 0
    return secret


def authenticator_secret(account: Account) -> str:
    return _totp_secret(account)


def confirm_authenticator(invitation: Invitation, code: str) -> Account:
    """Finish enrolment with the first code from the new authenticator."""
    account = invitation.account
    if account is None or account.totp_secret is None or account.password_hash is None:
        raise AccountError(_l("Start again from your link."))
    counter = totp.matching_counter(_totp_secret(account), code, last_counter=account.totp_last_counter)
    if counter is None:
        raise AccountError(_l("That code is not correct. Enter the 6-digit code your app shows now."), field="code")
    account.totp_last_counter = counter
    account.mfa_confirmed_at = utcnow()
    invitation.completed_at = utcnow()
    if invitation.kind == InvitationKind.SETUP.value:
        record_event(AuditAction.ACCOUNT_CREATED, actor=account, target_type="account", target_ids=[account.id],
                     details={"roles": account.role_names, "via": "setup_link"})
    record_event(AuditAction.MFA_ENROLLED, actor=account, target_type="account", target_ids=[account.id],
                 details={"invitation_id": invitation.id, "kind": invitation.kind})
    return account


# ---------------------------------------------------------------------------------------------------------------
# Sign-in


@dataclass(frozen=True)
class SignInResult:
    account: Account | None
    locked_until: datetime | None = None
    deactivated: bool = False
    used_recovery_code: bool = False


def _throttle_key(username: str) -> str:
    return _keyed_hash("sign-in-throttle", normalise_username(username))


def _locked_until(username: str, now: datetime) -> datetime | None:
    throttle = db.session.get(SignInThrottle, _throttle_key(username))
    if throttle is None or throttle.locked_until is None or throttle.locked_until <= now:
        return None
    return throttle.locked_until


def _refuse_if_locked(username: str, now: datetime, *, account: Account | None, step: str) -> datetime | None:
    """When the account name is locked out, record the attempt and return until when; else None."""
    locked_until = _locked_until(username, now)
    if locked_until is not None:
        record_event(AuditAction.LOGIN_LOCKED, target_type="account" if account else None,
                     target_ids=[account.id] if account else [],
                     details={"step": step, "locked_until": locked_until.isoformat()})
    return locked_until


def _record_failure(
    username: str, now: datetime, *, account: Account | None, step: str,
    action: AuditAction = AuditAction.LOGIN_FAILED,
) -> datetime | None:
    """Count a failed attempt against the account name (known or not); return the lockout it causes, if any.

    The row is created if needed and then locked, so concurrent failures each count (SQLite requests that
    write already hold the database's write lock).
    """
    config = current_app.config
    key = _throttle_key(username)
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    db.session.execute(
        insert(SignInThrottle).values(key=key, failures=0, updated_at=now).on_conflict_do_nothing(
            index_elements=["key"]
        )
    )
    throttle = db.session.scalars(
        sa.select(SignInThrottle).where(SignInThrottle.key == key).with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if now - throttle.updated_at > FAILURES_REMEMBERED:
        throttle.failures = 0
    throttle.failures += 1
    throttle.updated_at = now
    over = throttle.failures - config["LOCKOUT_THRESHOLD"]
    if over >= 0:
        seconds = min(config["LOCKOUT_BASE_SECONDS"] * (2 ** min(over, 20)), config["LOCKOUT_MAX_SECONDS"])
        throttle.locked_until = now + timedelta(seconds=seconds)
    record_event(action, actor=account if action is AuditAction.STEP_UP_FAILED else None,
                 target_type="account" if account else None,
                 target_ids=[account.id] if account else [], details={"step": step, "failures": throttle.failures})
    if secrets.randbelow(50) == 0:
        # Forget names whose failures are old and whose lockout is over, so the table does not grow unbounded.
        db.session.execute(
            sa.delete(SignInThrottle).where(
                SignInThrottle.updated_at < now - FAILURES_REMEMBERED,
                sa.or_(SignInThrottle.locked_until.is_(None), SignInThrottle.locked_until < now),
            )
        )
    return throttle.locked_until if throttle.locked_until and throttle.locked_until > now else None


def _clear_failures(username: str) -> None:
    db.session.execute(sa.delete(SignInThrottle).where(SignInThrottle.key == _throttle_key(username)))


@dataclass(frozen=True)
class _SecondFactor:
    """A code that matched, not yet spent: a TOTP time step or an unused recovery code."""

    counter: int | None = None
    recovery_id: int | None = None

    def spend(self, account: Account) -> bool:
        """Make the code unusable from now on; False if a concurrent request spent it first.

        Spent with a conditional UPDATE, so of two requests presenting the same code only one succeeds.
        """
        if self.counter is not None:
            result = db.session.execute(
                sa.update(Account)
                .where(Account.id == account.id, Account.totp_last_counter < self.counter)
                .values(totp_last_counter=self.counter)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(result) != 1:
                return False
            set_committed_value(account, "totp_last_counter", self.counter)
            return True
        result = db.session.execute(
            sa.update(RecoveryCode)
            .where(RecoveryCode.id == self.recovery_id, RecoveryCode.used_at.is_(None))
            .values(used_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0))


def _match_second_factor(account: Account | None, code: str) -> _SecondFactor | None:
    """The matching second factor for `code`, or None. Does the same work for unknown accounts."""
    cleaned = "".join(code.split()).lower()
    if account is None or account.totp_secret is None:
        totp.matching_counter(totp.new_secret(), cleaned, last_counter=0)
        return None
    if len(cleaned) == 6 and cleaned.isdigit():
        try:
            secret = _totp_secret(account)
        except SecretUnreadable:
            # Altered or moved in the database: refuse as a wrong code would, and tell the operators.
            log.error("an account's two-factor secret cannot be opened", extra={"account_id": account.id})
            return None
        counter = totp.matching_counter(secret, cleaned, last_counter=account.totp_last_counter)
        return None if counter is None else _SecondFactor(counter=counter)
    if len(cleaned.replace("-", "")) == 10:
        code_hash = _keyed_hash("recovery-codes", cleaned.replace("-", ""))
        recovery_id = db.session.scalar(
            sa.select(RecoveryCode.id).where(
                RecoveryCode.account_id == account.id, RecoveryCode.code_hash == code_hash,
                RecoveryCode.used_at.is_(None),
            )
        )
        if recovery_id is not None:
            return _SecondFactor(recovery_id=recovery_id)
    return None


def authenticate(username: str, password: str, code: str) -> SignInResult:
    """Check username, password and code together; the same work and answer whichever part is wrong."""
    now = utcnow()
    name = normalise_username(username)
    # The slow password hash is checked before the request's transaction begins, so that on SQLite no other
    # request waits for it behind the database's write lock.
    with db.separate_transaction(writes=False) as reading:
        checked_hash = reading.scalar(
            sa.select(Account.password_hash).where(Account.username == name, Account.mfa_confirmed_at.is_not(None))
        )
    password_ok = passwords.verify_password(checked_hash, password)
    account = db.session.scalar(sa.select(Account).where(Account.username == name))
    enrolled = account is not None and account.password_hash is not None and account.mfa_confirmed_at is not None
    known = account if enrolled else None
    locked_until = _refuse_if_locked(name, now, account=known, step="sign_in")
    if locked_until is not None:
        return SignInResult(None, locked_until=locked_until)
    # A password changed in between counts as wrong: the hash checked must be the one stored now.
    password_ok = password_ok and known is not None and known.password_hash == checked_hash
    factor = _match_second_factor(known, code)
    if known is None or not password_ok or factor is None or not factor.spend(known):
        return SignInResult(None, locked_until=_record_failure(name, now, account=known, step="sign_in"))
    _clear_failures(name)
    used_recovery = factor.recovery_id is not None
    if not known.is_active:
        record_event(AuditAction.LOGIN_FAILED, target_type="account", target_ids=[known.id],
                     details={"step": "sign_in", "deactivated": True})
        return SignInResult(None, deactivated=True)
    record_event(AuditAction.LOGIN, actor=known, target_type="account", target_ids=[known.id],
                 details={"second_factor": "recovery_code" if used_recovery else "totp"})
    if used_recovery:
        record_event(AuditAction.RECOVERY_CODE_USED, actor=known, target_type="account", target_ids=[known.id])
    return SignInResult(known, used_recovery_code=used_recovery)


def step_up(account: Account, code: str) -> bool:
    """Re-check a fresh second-factor code before a sensitive action. Failures count towards the lockout, which
    also refuses step-up while it lasts (a stolen session cannot guess codes without limit)."""
    now = utcnow()
    if _refuse_if_locked(account.username, now, account=account, step="step_up") is not None:
        return False
    factor = _match_second_factor(account, code)
    if factor is None or not factor.spend(account):
        _record_failure(account.username, now, account=account, step="step_up", action=AuditAction.STEP_UP_FAILED)
        return False
    record_event(AuditAction.STEP_UP, actor=account, target_type="account", target_ids=[account.id],
                 details={"second_factor": "recovery_code" if factor.recovery_id is not None else "totp"})
    return True


def _check_password_guarded(account: Account, password: str, *, step: str, field: str) -> None:
    """Verify `account`'s password where a guess could be made, counting failures towards the lockout."""
    now = utcnow()
    if _refuse_if_locked(account.username, now, account=account, step=step) is not None:
        raise AccountError(_l("Too many failed attempts for this account. Try again later."), field=field)
    if not passwords.verify_password(account.password_hash, password):
        _record_failure(account.username, now, account=account, step=step)
        raise AccountError(_l("That password is not correct."), field=field)


def record_sign_out(account: Account) -> None:
    record_event(AuditAction.LOGOUT, actor=account, target_type="account", target_ids=[account.id])


# ---------------------------------------------------------------------------------------------------------------
# Self-service


def change_password(account: Account, *, current_password: str, new_password: str) -> None:
    """Change the password and end every session of the account."""
    _check_password_guarded(account, current_password, step="change_password", field="current_password")
    problems = passwords.password_problems(new_password, username=account.username)
    if problems:
        raise AccountError(problems[0], field="password")
    account.password_hash = passwords.hash_password(new_password)
    account.password_changed_at = utcnow()
    end_all_sessions(account)
    revoked = _revoke_api_tokens(account)
    record_event(AuditAction.PASSWORD_CHANGED, actor=account, target_type="account", target_ids=[account.id],
                 details={"tokens_revoked": revoked})


def create_recovery_codes(account: Account) -> list[str]:
    """Replace the account's recovery codes with new ones and return them (shown once)."""
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.account_id == account.id))
    codes = []
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(alphabet) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        db.session.add(RecoveryCode(account_id=account.id, code_hash=_keyed_hash("recovery-codes", raw)))
    record_event(AuditAction.RECOVERY_CODES_CREATED, actor=account, target_type="account", target_ids=[account.id],
                 details={"count": RECOVERY_CODE_COUNT})
    return codes


def unused_recovery_code_count(account: Account) -> int:
    return db.session.scalar(
        sa.select(sa.func.count(RecoveryCode.id)).where(
            RecoveryCode.account_id == account.id, RecoveryCode.used_at.is_(None)
        )
    ) or 0


# ---------------------------------------------------------------------------------------------------------------
# Administration


def list_accounts() -> list[Account]:
    """Every account, by username, for the administration pages."""
    return list(db.session.scalars(sa.select(Account).order_by(Account.username)))


def set_roles(account: Account, roles: Sequence[str], *, actor: Account) -> None:
    """Replace the account's roles. Sessions of the account end so the new rights apply at once."""
    if account.id == actor.id:
        raise AccountError(_l("Ask another admin to change your own roles."), field="roles")
    chosen = _validate_roles(roles)
    before = account.role_names
    after = [r.value for r in chosen]
    if before == after:
        return
    if Role.ADMIN.value not in after and _is_last_admin(account):
        raise AccountError(_l("This is the last active admin; make another admin first."), field="roles")
    account.roles = [AccountRole(role=r) for r in after]
    end_all_sessions(account)
    record_event(AuditAction.ROLES_CHANGED, actor=actor, target_type="account", target_ids=[account.id],
                 details={"before": before, "after": after})


def set_team(account: Account, team: str | None, *, actor: Account) -> None:
    """Set the field team the account works in (None: no team)."""
    value = _team(team)
    if value == account.team:
        return
    before, account.team = account.team, value
    record_event(AuditAction.TEAM_CHANGED, actor=actor, target_type="account", target_ids=[account.id],
                 details={"before": before, "after": value})


def deactivate(account: Account, *, actor: Account) -> None:
    """Stop the account from signing in or using tokens; its sessions end at once."""
    if not account.is_active:
        return
    if account.id == actor.id:
        raise AccountError(_l("You cannot deactivate your own account."))
    if _is_last_admin(account):
        raise AccountError(_l("This is the last active admin; make another admin first."))
    account.is_active = False
    account.deactivated_at = utcnow()
    end_all_sessions(account)
    _revoke_open_links(account)
    revoked = _revoke_api_tokens(account)
    record_event(AuditAction.ACCOUNT_DEACTIVATED, actor=actor, target_type="account", target_ids=[account.id],
                 details={"tokens_revoked": revoked})


def _revoke_api_tokens(account: Account) -> int:
    """Revoke every live API token of `account` (they would otherwise outlive what ended its sessions)."""
    result = db.session.execute(
        sa.update(ApiToken)
        .where(ApiToken.account_id == account.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    return _rowcount(result)


def _revoke_open_links(account: Account) -> None:
    now = utcnow()
    for link in db.session.scalars(
        sa.select(Invitation).where(
            Invitation.account_id == account.id, Invitation.completed_at.is_(None), Invitation.revoked_at.is_(None)
        )
    ):
        link.revoked_at = now


def reactivate(account: Account, *, actor: Account) -> None:
    if account.is_active:
        return
    account.is_active = True
    account.deactivated_at = None
    record_event(AuditAction.ACCOUNT_REACTIVATED, actor=actor, target_type="account", target_ids=[account.id])


def reset_two_factor(account: Account, *, actor: Account) -> IssuedLink:
    """Remove the account's authenticator and recovery codes and issue a link to enrol a new one."""
    if account.id == actor.id:
        raise AccountError(_l("Ask another admin to reset your own two-factor."))
    account.totp_secret = None
    account.mfa_confirmed_at = None
    account.totp_last_counter = 0
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.account_id == account.id))
    end_all_sessions(account)
    kind = InvitationKind.RESET_MFA if account.password_hash is not None else InvitationKind.INVITE
    _revoke_open_links(account)
    revoked = _revoke_api_tokens(account)
    link = _issue(kind, lifetime=timedelta(hours=current_app.config["INVITATION_HOURS"]), account=account,
                  actor=actor)
    record_event(AuditAction.MFA_RESET, actor=actor, target_type="account", target_ids=[account.id],
                 details={"invitation_id": link.invitation.id, "tokens_revoked": revoked})
    return link


# ---------------------------------------------------------------------------------------------------------------
# Personal API tokens


def create_api_token(account: Account, *, name: str, expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """Create a token carrying the account's permissions; the plaintext is returned once and never stored."""
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise AccountError(_l("Give the token a name of 1 to 100 characters."), field="name")
    days = expires_in_days or current_app.config["API_TOKEN_DEFAULT_DAYS"]
    if not 1 <= days <= 365:
        raise AccountError(_l("Choose a lifetime between 1 and 365 days."), field="expires_in_days")
    plaintext = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        account_id=account.id, name=name, token_hash=_keyed_hash("api-tokens", plaintext),
        expires_at=utcnow() + timedelta(days=days),
    )
    db.session.add(token)
    db.session.flush()
    record_event(AuditAction.TOKEN_CREATED, actor=account, target_type="api_token", target_ids=[token.id],
                 details={"expires_in_days": days})
    return token, plaintext


def api_tokens_of(account: Account) -> list[ApiToken]:
    """The account's API tokens, newest first (never their values, which are not stored)."""
    return list(db.session.scalars(
        sa.select(ApiToken).where(ApiToken.account_id == account.id).order_by(ApiToken.created_at.desc(),
                                                                             ApiToken.id.desc())
    ))


def own_api_token(account: Account, token_id: int) -> ApiToken | None:
    """The token with this id if it belongs to `account`; None otherwise (whoever else's it may be)."""
    token = db.session.get(ApiToken, token_id)
    return token if token is not None and token.account_id == account.id else None


def revoke_api_token(token: ApiToken, *, actor: Account) -> None:
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        record_event(AuditAction.TOKEN_REVOKED, actor=actor, target_type="api_token", target_ids=[token.id])


def account_for_api_token(plaintext: str) -> tuple[Account | None, str | None]:
    """(account, None) for a usable token, else (None, reason) where reason is 'invalid', 'expired', 'revoked' or
    'inactive'."""
    if not plaintext.startswith(API_TOKEN_PREFIX) or len(plaintext) > 200:
        return None, "invalid"
    token = db.session.scalar(
        sa.select(ApiToken)
        .where(ApiToken.token_hash == _keyed_hash("api-tokens", plaintext))
        .options(joinedload(ApiToken.account).joinedload(Account.roles))
    )
    if token is None:
        return None, "invalid"
    if token.revoked_at is not None:
        return None, "revoked"
    now = utcnow()
    if token.expires_at <= now:
        return None, "expired"
    if not token.account.can_sign_in:
        return None, "inactive"
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=5):
        if transactions_write():
            token.last_used_at = now  # the request's transaction writes anyway
        else:
            # A read request notes it in a short write of its own, so that its transaction stays a read (on
            # SQLite a read cannot become a write once another request has written).
            with db.separate_transaction(writes=True) as writing:
                writing.execute(sa.update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
            set_committed_value(token, "last_used_at", now)
    return token.account, None
