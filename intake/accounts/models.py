"""Accounts and what hangs off them: roles, enrolment links, recovery codes, API tokens, sign-in throttles."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from intake.core.crypto.fields import sealed_column
from intake.core.crypto.models import DataKey
from intake.core.db import Base, UTCDateTime, utcnow
from intake.core.security import Permission, Role, permissions_for


class Account(Base):
    """A person who signs in. Usable only once a password is set and an authenticator is confirmed."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    data_key_id: Mapped[int | None] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), sa.ForeignKey("data_keys.id"), unique=True
    )
    totp_secret: Mapped[bytes | None] = sealed_column("accounts", "totp_secret")
    totp_last_counter: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    mfa_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    is_active: Mapped[bool] = mapped_column(default=True)
    auth_epoch: Mapped[int] = mapped_column(default=1)
    locale: Mapped[str | None] = mapped_column(sa.String(8))
    team: Mapped[str | None] = mapped_column(sa.String(64))  # the field team, shown where work is attributed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Loaded only when the seed is used (sign-in, enrolment), not with every request's account.
    data_key: Mapped[DataKey | None] = relationship()
    roles: Mapped[list[AccountRole]] = relationship(
        back_populates="account", cascade="all, delete-orphan", lazy="selectin", order_by="AccountRole.role"
    )

    @property
    def sealing_key(self) -> DataKey | None:
        """The account's data key, which seals its two-factor seed."""
        return self.data_key

    @property
    def role_names(self) -> list[str]:
        return [r.role for r in self.roles]

    @property
    def permissions(self) -> frozenset[Permission]:
        return permissions_for(self.role_names)

    def has_permission(self, permission: Permission) -> bool:
        return permission in self.permissions

    @property
    def can_sign_in(self) -> bool:
        """True when the account is active and fully enrolled (password and confirmed authenticator)."""
        return (
            self.is_active
            and self.password_hash is not None
            and self.totp_secret is not None
            and self.mfa_confirmed_at is not None
        )

    def __repr__(self) -> str:
        return f"<Account {self.id} {self.username!r}>"


class AccountRole(Base):
    __tablename__ = "account_roles"
    __table_args__ = (
        sa.CheckConstraint("role IN ({})".format(", ".join(f"'{r.value}'" for r in Role)), name="known_role"),
    )

    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(32), primary_key=True)

    account: Mapped[Account] = relationship(back_populates="roles")


class InvitationKind(enum.StrEnum):
    SETUP = "setup"  # creates the first admin; the person chooses the username
    INVITE = "invite"  # enrols an account an admin created
    RESET_MFA = "reset_mfa"  # enrols a new authenticator after an admin reset two-factor


class Invitation(Base):
    """A one-time link. Only the SHA-256 of its token is stored; the link is spent the first time it is opened."""

    __tablename__ = "invitations"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('setup', 'invite', 'reset_mfa')", name="known_kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    account_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    account: Mapped[Account | None] = relationship(foreign_keys=[account_id])


class RecoveryCode(Base):
    """A single-use code that stands in for an authenticator code. Stored as a keyed hash."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiToken(Base):
    """A personal API token. Shown once; only its keyed hash is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    account: Mapped[Account] = relationship()


class SignInThrottle(Base):
    """Failed sign-ins per account name, known or not (so a lockout reveals nothing about which names exist)."""

    __tablename__ = "sign_in_throttles"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)  # keyed hash of the normalised name
    failures: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
