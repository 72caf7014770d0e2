"""Forms of the export pages, and the names shown for an export's states, the policy's reasons and the rest.

A case file goes to one recipient for one of its purposes: the pages offer the pairs as one choice, whose value is
`<recipient id>-<purpose>` (neither is sensitive, so the preview is a GET address that can be reloaded).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import Field, HiddenField, SelectField
from wtforms.validators import ValidationError

from consent.policy import Reason
from intake.core.access.exports import ERASED, NOT_SUBMITTED, PURPOSE_NOT_FOR_RECIPIENT
from intake.exports.models import CancelReason, ExportStatus
from intake.interviews.forms import PURPOSE_LABELS
from intake.withdrawals.forms import label_of

CHOICE = re.compile(r"([1-9][0-9]{0,17})-([a-z_]{1,32})\Z")

STATUS_LABELS: dict[str, Any] = {
    ExportStatus.QUEUED: _l("Waiting to be built"),
    ExportStatus.BUILDING: _l("Being built"),
    ExportStatus.READY: _l("Ready to download"),
    ExportStatus.DOWNLOADED: _l("Downloaded"),
    ExportStatus.CANCELLED: _l("Cancelled"),
    ExportStatus.EXPIRED: _l("Expired and deleted"),
    ExportStatus.FAILED: _l("Failed"),
}

# Why a record does not go into a case file, as a sentence for the legal officer.
REASON_TEXTS: dict[str, Any] = {
    Reason.NO_CONSENT: _l("No consent is recorded for this testimony."),
    Reason.NOT_YET_GIVEN: _l("The consent on record was given after this moment."),
    Reason.INVALID: _l("The consent on record is incomplete, so it permits nothing."),
    Reason.WITHDRAWN: _l("The person withdrew their consent."),
    Reason.WITHDRAWN_FOR_PURPOSE: _l("The person withdrew their consent for this purpose."),
    Reason.EXPIRED: _l("The consent's review date has passed: it must be confirmed with the person again."),
    Reason.NO_DOCUMENTATION: _l("The person does not consent to their testimony being kept."),
    Reason.NOT_GRANTED: _l("The person did not consent to this purpose."),
    Reason.EXCLUDED_RECIPIENT: _l("The person's consent excludes this recipient."),
    Reason.NO_RECIPIENT: _l("This purpose needs a recipient."),
    ERASED: _l("The record was erased at the person's request."),
    NOT_SUBMITTED: _l("The record has not been submitted yet."),
    PURPOSE_NOT_FOR_RECIPIENT: _l("Case files go to this recipient for other purposes only."),
}

FAILURE_TEXTS: dict[str, Any] = {
    "nothing_permitted": _l("no record in the case may go to this recipient for this purpose any more"),
    "interrupted": _l("the build stopped before it was finished"),
    "error": _l("an error stopped the build"),
}

CANCEL_TEXTS: dict[str, Any] = {
    CancelReason.BY_MEMBER: _l("A member of the case cancelled it."),
    CancelReason.CONSENT_WITHDRAWN: _l("A person whose testimony it held withdrew their consent."),
    CancelReason.RECIPIENT_DEACTIVATED: _l("The recipient was deactivated."),
}


def reason_text(reason: str | None) -> str:
    """The policy's reason as a sentence in the reader's language (the code itself if it has none)."""
    if not reason:
        return ""
    text = REASON_TEXTS.get(reason)
    return str(text) if text is not None else str(_l("Not permitted (%(reason)s).", reason=reason))


def choice_value(recipient_id: int, purpose: str) -> str:
    return f"{recipient_id}-{purpose}"


def parse_choice(value: str | None) -> tuple[int, str] | None:
    match = CHOICE.match(value or "")
    return (int(match.group(1)), match.group(2)) if match else None


def recipient_choices(recipients: Iterable[Any]) -> list[tuple[str, str]]:
    """Every (recipient, purpose) pair a case file can be built for, as "recipient — purpose"."""
    return [(choice_value(r.id, p.value), f"{r.name} — {label_of(PURPOSE_LABELS, p.value)}")
            for r in recipients for p in r.purposes]


def _check_choice(choices: list[tuple[str, str]], field: Field) -> None:
    if not field.data or field.data not in {value for value, _label in choices}:
        raise ValidationError(_l("Choose an active recipient and one of its purposes."))


class PreviewForm(FlaskForm):
    """Which recipient and purpose to preview: sent by GET, so it carries no CSRF token and changes nothing."""

    class Meta:
        csrf = False

    to = SelectField(_l("Recipient and purpose"), validate_choice=False)

    def __init__(self, recipients: Iterable[Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offered = recipient_choices(recipients)
        self.to.choices = [("", str(_l("Choose…"))), *self.offered]

    def validate_to(self, field: Field) -> None:
        _check_choice(self.offered, field)

    @property
    def chosen(self) -> tuple[int, str] | None:
        return parse_choice(self.to.data) if not self.to.errors else None


class BuildForm(FlaskForm):
    """Build the case file previewed (the choice travels with the button, as it was shown)."""

    to = HiddenField()

    def __init__(self, recipients: Iterable[Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offered = recipient_choices(recipients)

    def validate_to(self, field: Field) -> None:
        _check_choice(self.offered, field)

    @property
    def chosen(self) -> tuple[int, str] | None:
        return parse_choice(self.to.data) if not self.to.errors else None


class CancelForm(FlaskForm):
    """Cancel an export not yet downloaded (the button carries only the CSRF token)."""
