"""What a consent version records (DESIGN "Consent", after the ICRC handbook and the IPSVC).

A consent version is immutable: a change of mind is a new version, or a withdrawal appended to it. Every use of
a testimony is decided from it by `consent.policy.decide`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime


class Purpose(enum.StrEnum):
    """What a testimony may be used for. `documentation` (store and analyse) is needed for anything to be kept."""

    DOCUMENTATION = "documentation"
    REFERRAL = "referral"
    UN_MECHANISMS = "un_mechanisms"
    INTERNATIONAL_JUSTICE = "international_justice"
    DOMESTIC_PROSECUTION = "domestic_prosecution"
    ADVOCACY = "advocacy"
    MEDIA = "media"


class Disclosure(enum.StrEnum):
    """How much of who the person is may go with their testimony, least to most."""

    ANONYMOUS = "anonymous"  # no identity, identifying details redacted
    PSEUDONYMOUS = "pseudonymous"  # the pseudonym code only
    CONFIDENTIAL = "confidential"  # identity shared with the recipient under confidentiality
    PUBLIC = "public"

    @property
    def rank(self) -> int:
        return _DISCLOSURE_ORDER.index(self)

    def at_most(self, other: Disclosure) -> Disclosure:
        """The lesser of the two levels."""
        return self if self.rank <= other.rank else other


_DISCLOSURE_ORDER = (Disclosure.ANONYMOUS, Disclosure.PSEUDONYMOUS, Disclosure.CONFIDENTIAL, Disclosure.PUBLIC)


class Method(enum.StrEnum):
    """How consent was given. There is no fingerprint: a mark is the alternative to a signature."""

    WRITTEN = "written"
    ORAL_WITNESSED = "oral_witnessed"
    MARK = "mark"


class Medium(enum.StrEnum):
    AUDIO = "audio"
    PHOTO = "photo"
    VIDEO = "video"
    DOCUMENT = "document"


class ScriptItem(enum.StrEnum):
    """The items of the consent script, each read and confirmed before anything is recorded."""

    WHO_COLLECTS_AND_WHY = "who_collects_and_why"
    USES = "uses"
    RECIPIENTS = "recipients"
    RISKS_AND_BENEFITS = "risks_and_benefits"
    RIGHT_TO_REFUSE = "right_to_refuse"
    RIGHT_TO_SKIP_PAUSE_STOP = "right_to_skip_pause_stop"
    RIGHT_TO_WITHDRAW = "right_to_withdraw"
    WHAT_WE_CAN_AND_CANNOT_DO = "what_we_can_and_cannot_do"
    CONTACT = "contact"


@dataclass(frozen=True)
class Grant:
    """A purpose's grant: no unless the person said yes, and then at the level of disclosure they chose."""

    granted: bool = False
    disclosure: Disclosure = Disclosure.ANONYMOUS


@dataclass(frozen=True)
class MinorConsent:
    """For a child: the guardian's consent, the child's own assent, and why taking part is in their interest."""

    guardian_consented: bool
    child_assented: bool
    best_interests_note: str


@dataclass(frozen=True)
class FollowUp:
    """Whether the person may be contacted again, and only how and when they said is safe."""

    permitted: bool = False
    safe_method: str = ""
    safe_times: str = ""


@dataclass(frozen=True)
class Recipient:
    """Who would receive a use of the testimony: an organisation, its country, and whether it is a state authority."""

    key: str
    country: str | None = None
    is_authority: bool = False


class ExclusionKind(enum.StrEnum):
    RECIPIENT = "recipient"  # this organisation
    COUNTRY = "country"  # anyone in this country
    AUTHORITIES_OF = "authorities_of"  # the state authorities of this country (e.g. "authorities of state X")


@dataclass(frozen=True)
class Exclusion:
    """A recipient the person refused, whatever purposes they granted."""

    kind: ExclusionKind
    value: str

    def matches(self, recipient: Recipient) -> bool:
        wanted = self.value.casefold()
        if self.kind is ExclusionKind.RECIPIENT:
            return recipient.key.casefold() == wanted
        country = (recipient.country or "").casefold()
        if self.kind is ExclusionKind.COUNTRY:
            return country == wanted
        return recipient.is_authority and country == wanted


@dataclass(frozen=True)
class Withdrawal:
    """Consent taken back from `at` on: for every purpose (`purposes` empty) or for those named."""

    at: datetime
    purposes: frozenset[Purpose] = frozenset()
    received_how: str = ""

    @property
    def whole(self) -> bool:
        return not self.purposes


@dataclass(frozen=True)
class ConsentVersion:
    """One consent, as given: the script read, who was there, what was confirmed and what was granted."""

    script_language: str
    script_hash: str
    items_confirmed: frozenset[ScriptItem]
    method: Method
    interviewer: str
    recorded_at: datetime
    capacity_confirmed: bool
    voluntariness_confirmed: bool
    grants: Mapping[Purpose, Grant] = field(default_factory=dict)
    media: frozenset[Medium] = frozenset()
    witness: str | None = None
    interpreter: str | None = None
    minor: MinorConsent | None = None
    follow_up: FollowUp = FollowUp()
    excluded: frozenset[Exclusion] = frozenset()
    review_date: date | None = None
    withdrawals: tuple[Withdrawal, ...] = ()

    def grant(self, purpose: Purpose) -> Grant:
        """The grant for `purpose`: no, unless one was given."""
        return self.grants.get(purpose, Grant())

    def problems(self) -> list[str]:
        """Why this consent is not informed and valid (empty when it is)."""
        found = []
        missing = set(ScriptItem) - set(self.items_confirmed)
        if missing:
            found.append("script items not confirmed: " + ", ".join(sorted(missing)))
        if not self.capacity_confirmed:
            found.append("capacity not confirmed")
        if not self.voluntariness_confirmed:
            found.append("voluntariness not confirmed")
        if self.method is Method.ORAL_WITNESSED and not (self.witness or "").strip():
            found.append("oral consent without a witness")
        if self.minor is not None:
            if not self.minor.guardian_consented:
                found.append("no guardian consent for a child")
            if not self.minor.child_assented:
                found.append("the child did not assent")
            if not self.minor.best_interests_note.strip():
                found.append("no best-interests note for a child")
        if self.follow_up.permitted and not self.follow_up.safe_method.strip():
            found.append("follow-up permitted without a safe method")
        return found

    def withdrawn(self, purpose: Purpose, at: datetime) -> Withdrawal | None:
        """The withdrawal in force for `purpose` at `at`, if any."""
        for withdrawal in self.withdrawals:
            if withdrawal.at <= at and (withdrawal.whole or purpose in withdrawal.purposes):
                return withdrawal
        return None
