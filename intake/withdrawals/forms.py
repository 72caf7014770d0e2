"""Forms of the withdrawal pages, and the names shown for purposes, levels of disclosure, media, statuses and the
ways a request reaches us."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    Field,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Regexp, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from intake.consents.operations import RECEIVED_HOW
from intake.core.access.assignments import MAX_REASON
from intake.interviews.forms import PURPOSE_LABELS
from intake.withdrawals import MAX_PSEUDONYM, PSEUDONYM

RECEIVED_HOW_LABELS: dict[str, Any] = {
    "in_person": _l("In person"),
    "phone": _l("By phone"),
    "message": _l("By message (text, e-mail, messaging app)"),
    "letter": _l("By letter"),
    "through_someone": _l("Through someone else"),
}

WHOLE = "whole"
SOME = "some"


def label_of(labels: dict[str, Any], value: str) -> str:
    """The value's name in the reader's language (the stored value when it has none)."""
    label = labels.get(value)
    return str(label) if label is not None else value


def _stripped(text: str | None) -> str | None:
    return text.strip() if text else text


def _received_how_field() -> RadioField:
    return RadioField(
        _l("How the request reached you"),
        choices=[SelectChoice(v, RECEIVED_HOW_LABELS.get(v, v)) for v in RECEIVED_HOW], validate_choice=False,
        validators=[InputRequired(message=_l("Say how the request reached you."))],
    )


def _known_way(_form: Any, field: Field) -> None:
    if field.data not in RECEIVED_HOW:
        raise ValidationError(_l("Say how the request reached you."))


class WithdrawalForm(FlaskForm):
    """Withdraw consent for everything, or for some of the purposes still in force."""

    scope = RadioField(
        _l("What the person withdraws"),
        choices=[SelectChoice(WHOLE, _l("Everything: no further use of the testimony at all")),
                 SelectChoice(SOME, _l("Only the purposes ticked below"))],
        validate_choice=False,
        validators=[InputRequired(message=_l("Choose whether the person withdraws everything or only some "
                                             "purposes."))],
    )
    purposes = SelectMultipleField(
        _l("Purposes withdrawn"), widget=ListWidget(prefix_label=False), option_widget=CheckboxInput(),
        validate_choice=False,
        description=_l("Withdrawing documentation stops every use, as nothing can be used that may not be kept."),
    )
    received_how = _received_how_field()

    def __init__(self, offered: Iterable[str], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offered = list(offered)
        self.purposes.choices = [SelectChoice(p, PURPOSE_LABELS.get(p, p)) for p in self.offered]

    def validate_scope(self, field: Field) -> None:
        if field.data not in (WHOLE, SOME):
            raise ValidationError(_l("Choose whether the person withdraws everything or only some purposes."))

    def validate_purposes(self, field: Field) -> None:
        chosen = field.data or []
        if not set(chosen) <= set(self.offered):
            raise ValidationError(_l("Choose among the purposes the consent covers."))
        if self.scope.data == SOME and not chosen:
            raise ValidationError(_l("Tick the purposes the person withdraws."))

    def validate_received_how(self, field: Field) -> None:
        _known_way(self, field)

    @property
    def chosen_purposes(self) -> list[str]:
        """The purposes withdrawn (none: everything), once validated."""
        return list(self.purposes.data or []) if self.scope.data == SOME else []


class ErasureForm(FlaskForm):
    """Erase at the person's request: how the request came, and a confirmation that it is what they asked."""

    received_how = _received_how_field()
    confirm = BooleanField(
        _l("The person asks for their data to be erased, and I understand that this cannot be undone"),
        validators=[InputRequired(message=_l("Tick this box to confirm that the person asked for erasure."))],
    )

    def validate_received_how(self, field: Field) -> None:
        _known_way(self, field)


class FindRecordForm(FlaskForm):
    """Find a record by its pseudonym code (a GET form: its field is a query parameter)."""

    class Meta:
        csrf = False  # a search changes nothing the caller chose; its address can be bookmarked

    pseudonym = StringField(
        _l("Pseudonym code"),
        validators=[InputRequired(message=_l("Enter the pseudonym code, for example KB-7F3Q-2K.")),
                    Length(max=MAX_PSEUDONYM, message=_l("Use at most %(max)d characters.")),
                    Regexp(PSEUDONYM.pattern + r"\Z",
                           message=_l("A pseudonym code is letters and digits in groups, for example KB-7F3Q-2K."))],
        filters=[_stripped],
        description=_l("As written on the consent form or the person's card, for example KB-7F3Q-2K."),
        render_kw={"autocapitalize": "characters", "spellcheck": "false", "autocomplete": "off"},
    )


REASON_HINT = _l("Kept in the audit log. Do not put names or other identifying details in it.")


def _account_choices(accounts: Iterable[Any]) -> list[SelectChoice]:
    return [SelectChoice("", _l("Choose a reviewer")), *(SelectChoice(str(a.id), a.username) for a in accounts)]


def _chosen_account(field: Field) -> None:
    if not field.data or field.data not in {c.value for c in field.choices}:
        raise ValidationError(_l("Choose an active reviewer."))


def _reason_field(label: Any) -> TextAreaField:
    return TextAreaField(
        label, description=REASON_HINT, filters=[_stripped],
        validators=[DataRequired(message=_l("Give the reason for this access. Do not put names or other "
                                            "identifying details in it: it is kept in the audit log.")),
                    Length(max=MAX_REASON, message=_l("Use at most %(max)d characters."))],
    )


class AssignReviewerForm(FlaskForm):
    """Give the record to an active reviewer."""

    reviewer = SelectField(_l("Reviewer"), validate_choice=False)

    def __init__(self, reviewers: Iterable[Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reviewer.choices = _account_choices(reviewers)

    def validate_reviewer(self, field: Field) -> None:
        _chosen_account(field)


class UnassignReviewerForm(FlaskForm):
    """Take the record back from a reviewer (the button carries only the CSRF token)."""


class GrantAccessForm(FlaskForm):
    """Open the record to a reviewer until a date, for a stated reason."""

    account = SelectField(_l("Reviewer"), validate_choice=False)
    reason = _reason_field(_l("Reason for the access"))
    expires_at = StringField(
        _l("Access ends on"), filters=[_stripped],
        validators=[InputRequired(message=_l("Enter the date the access ends, as YYYY-MM-DD."))],
        description=_l("A date after today, as YYYY-MM-DD. The access ends at the start of that day (UTC)."),
        render_kw={"type": "date", "autocomplete": "off"},
    )

    def __init__(self, reviewers: Iterable[Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.account.choices = _account_choices(reviewers)

    def validate_account(self, field: Field) -> None:
        _chosen_account(field)

    def validate_expires_at(self, field: Field) -> None:
        text = field.data or ""
        try:
            day = date.fromisoformat(text)
        except ValueError:
            day = None
        if day is None or len(text) != len("YYYY-MM-DD"):
            raise ValidationError(_l("Enter the date the access ends, as YYYY-MM-DD."))
        if day <= datetime.now(UTC).date():
            raise ValidationError(_l("The access must end in the future: choose a date after today."))

    @property
    def ends(self) -> datetime:
        """When the access ends, once validated: the start of the chosen day, UTC."""
        day = date.fromisoformat(self.expires_at.data or "")
        return datetime(day.year, day.month, day.day, tzinfo=UTC)


class RevokeAccessForm(FlaskForm):
    """End a grant now, for a stated reason."""

    reason = _reason_field(_l("Reason for ending the access"))


# Characters an audit reason may not hold (`record_event` refuses them): control characters other than tab and line
# breaks, which a pasted text can carry.
_CONTROL = Regexp(r"\A[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*\Z",
                  message=_l("Use plain text: this contains characters that cannot be kept."))


def _coordinator_reason_field(label: Any) -> TextAreaField:
    """A written reason for opening a record, kept in the audit log (so it must not identify anyone)."""
    return TextAreaField(
        label, description=REASON_HINT, filters=[_stripped],
        validators=[DataRequired(message=_l("Write down why you need to open this record. Do not put names or "
                                            "other identifying details in it: it is kept in the audit log.")),
                    Length(max=MAX_REASON, message=_l("Use at most %(max)d characters.")), _CONTROL],
        render_kw={"maxlength": MAX_REASON, "rows": 3},
    )


class ReidentificationForm(FlaskForm):
    """Say why the person must be re-identified before their identity is shown."""

    reason = _coordinator_reason_field(_l("Why you need to know who this person is"))


class SurvivorCopyForm(FlaskForm):
    """Say which request of the person the copy of their own data answers; show it, or download it as a file."""

    reason = _coordinator_reason_field(_l("The person's request this copy answers"))
    show = SubmitField(_l("Show the copy"))
    download = SubmitField(_l("Download the copy"))
