"""Forms of the case pages: a new case, a member to add, a record to add by its pseudonym code, an incident to add,
and the buttons that remove a member or a record (only their CSRF token)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import Field, HiddenField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, Regexp, ValidationError

from intake.cases.operations import MAX_REFERENCE, MAX_TITLE
from intake.withdrawals import MAX_PSEUDONYM, PSEUDONYM


def _stripped(text: str | None) -> str | None:
    return text.strip() if text else text


class CaseForm(FlaskForm):
    """Open a case: the team's reference, a title, and the recipient it is meant for, when already known."""

    reference = StringField(
        _l("Case reference"), filters=[_stripped],
        validators=[DataRequired(message=_l("Give the case a reference.")),
                    Length(max=MAX_REFERENCE, message=_l("Use at most %(max)d characters."))],
        description=_l("Your team's own reference, for example LC-2024-07. Do not put names in it."),
        render_kw={"maxlength": MAX_REFERENCE, "autocomplete": "off", "spellcheck": "false"},
    )
    title = StringField(
        _l("Title"), filters=[_stripped],
        validators=[DataRequired(message=_l("Give the case a title.")),
                    Length(max=MAX_TITLE, message=_l("Use at most %(max)d characters."))],
        description=_l("What the case is about, for example the shelling of a town in a given month. Do not put "
                       "names in it."),
        render_kw={"maxlength": MAX_TITLE, "autocomplete": "off"},
    )
    recipient = SelectField(_l("Intended recipient (optional)"), validate_choice=False)

    def __init__(self, recipients: Iterable[Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recipient.choices = [SelectChoice("", _l("Not decided yet")),
                                  *(SelectChoice(str(r.id), r.name) for r in recipients)]

    def validate_recipient(self, field: Field) -> None:
        if field.data and field.data not in {c.value for c in field.choices}:
            raise ValidationError(_l("Choose one of the active recipients, or none."))

    @property
    def recipient_id(self) -> int | None:
        """The chosen recipient's id, once validated (None: not decided yet)."""
        return int(self.recipient.data) if self.recipient.data else None


class MemberForm(FlaskForm):
    """Add a colleague of a legal team to the case, chosen by username."""

    username = SelectField(_l("Colleague"), validate_choice=False)

    def __init__(self, candidates: Iterable[Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.username.choices = [SelectChoice("", _l("Choose a colleague")),
                                 *(SelectChoice(a.username, a.username) for a in candidates)]

    def validate_username(self, field: Field) -> None:
        if not field.data or field.data not in {c.value for c in field.choices}:
            raise ValidationError(_l("Choose an active member of a legal team."))


class RecordForm(FlaskForm):
    """Add a submitted testimony to the case by the pseudonym code it was given under."""

    pseudonym = StringField(
        _l("Pseudonym code"),
        validators=[InputRequired(message=_l("Enter the pseudonym code, for example KB-7F3Q-2K.")),
                    Length(max=MAX_PSEUDONYM, message=_l("Use at most %(max)d characters.")),
                    Regexp(PSEUDONYM.pattern + r"\Z",
                           message=_l("A pseudonym code is letters and digits in groups, for example KB-7F3Q-2K."))],
        filters=[_stripped],
        description=_l("As written on the record, for example KB-7F3Q-2K. Only records whose consent permits a legal "
                       "use can be added."),
        render_kw={"autocapitalize": "characters", "spellcheck": "false", "autocomplete": "off"},
    )


class IncidentForm(FlaskForm):
    """Add one incident of a record to the case (the button of that incident carries its number)."""

    incident = HiddenField(validators=[InputRequired(message=_l("No incident has this number.")),
                                       Regexp(r"[1-9][0-9]{0,17}\Z", message=_l("No incident has this number."))])

    def validate(self, extra_validators: Any = None) -> bool:
        valid: bool = super().validate(extra_validators)
        if self.incident.errors:  # nobody types this field: say so above the form
            self.form_errors.extend(self.incident.errors)
            self.incident.errors = []
        return valid

    @property
    def incident_id(self) -> int:
        return int(self.incident.data or 0)


class ButtonForm(FlaskForm):
    """A button that removes a member or a record: only its CSRF token."""
