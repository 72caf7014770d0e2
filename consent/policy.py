"""Every use of a testimony is decided here: `decide(consent, purpose, recipient, at)`.

Default deny: a use is allowed only if a valid consent granted the purpose, has not been withdrawn for it, has not
passed its review date, includes documentation (without which nothing may be kept), and does not exclude the
recipient. An allowed use carries the disclosure level granted for that purpose, never more; the decision always
says why.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from consent.records import ConsentVersion, Disclosure, Purpose, Recipient


class Reason(enum.StrEnum):
    ALLOWED = "allowed"
    NO_CONSENT = "no_consent"
    NOT_YET_GIVEN = "not_yet_given"
    INVALID = "invalid"
    WITHDRAWN = "withdrawn"
    WITHDRAWN_FOR_PURPOSE = "withdrawn_for_purpose"
    EXPIRED = "expired"
    NO_DOCUMENTATION = "no_documentation"
    NOT_GRANTED = "not_granted"
    EXCLUDED_RECIPIENT = "excluded_recipient"
    NO_RECIPIENT = "no_recipient"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    disclosure: Disclosure | None
    reason: Reason
    detail: str = ""


def _deny(reason: Reason, detail: str = "") -> Decision:
    return Decision(False, None, reason, detail)


def decide(
    consent: ConsentVersion | None, purpose: Purpose, recipient: Recipient | None, at: datetime,
    *, wanted: Disclosure | None = None,
) -> Decision:
    """Whether `purpose` (for `recipient`, if the use goes to someone) is allowed at `at`, and at what disclosure.

    `wanted` is the level the use asks for: the decision grants the lesser of it and the consent's level. Every
    purpose but documentation goes to someone, so it needs a recipient.
    """
    if consent is None:
        return _deny(Reason.NO_CONSENT)
    if at < consent.recorded_at:
        return _deny(Reason.NOT_YET_GIVEN, f"consent was given at {consent.recorded_at.isoformat()}")
    problems = consent.problems()
    if problems:
        return _deny(Reason.INVALID, "; ".join(problems))
    withdrawal = consent.withdrawn(purpose, at)
    if withdrawal is not None:
        reason = Reason.WITHDRAWN if withdrawal.whole else Reason.WITHDRAWN_FOR_PURPOSE
        return _deny(reason, f"withdrawn at {withdrawal.at.isoformat()}")
    if consent.review_date is not None and at.date() > consent.review_date:
        return _deny(Reason.EXPIRED, f"review date {consent.review_date.isoformat()} passed")
    documentation = consent.grant(Purpose.DOCUMENTATION)
    if not documentation.granted or consent.withdrawn(Purpose.DOCUMENTATION, at) is not None:
        return _deny(Reason.NO_DOCUMENTATION)
    grant = consent.grant(purpose)
    if not grant.granted:
        return _deny(Reason.NOT_GRANTED, f"{purpose} was not granted")
    if purpose is not Purpose.DOCUMENTATION and recipient is None:
        return _deny(Reason.NO_RECIPIENT, f"{purpose} needs a recipient")
    if recipient is not None:
        for exclusion in consent.excluded:
            if exclusion.matches(recipient):
                return _deny(Reason.EXCLUDED_RECIPIENT, f"excluded: {exclusion.kind} {exclusion.value}")
    level = grant.disclosure if wanted is None else grant.disclosure.at_most(wanted)
    return Decision(True, level, Reason.ALLOWED)
