"""Forms of the recipients pages, and the names shown for the kinds of recipient.

The forms only read what was typed (a date, a list of keys, a country code in upper case); whether the details can
be recorded is decided by `intake.recipients.operations`, whose refusals the pages show next to these fields."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, Field, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import ValidationError

from intake.recipients.models import Recipient, RecipientCategory
from intake.recipients.operations import MAX_KEYS, RecipientInput, parse_age_recipients

CATEGORY_LABELS: dict[str, Any] = {
    RecipientCategory.UN_MECHANISM: _l("UN investigative mechanism"),
    RecipientCategory.INTERNATIONAL_COURT: _l("International court or tribunal"),
    RecipientCategory.DOMESTIC_PROSECUTOR: _l("Domestic prosecutor"),
    RecipientCategory.REFERRAL_SERVICE: _l("Referral service (medical, legal or psychosocial help)"),
    RecipientCategory.ADVOCACY: _l("Advocacy organisation"),
    RecipientCategory.MEDIA: _l("Media"),
}


def category_label(value: str) -> str:
    """The kind of recipient in the reader's language (the stored value when it has none)."""
    label = CATEGORY_LABELS.get(value)
    return str(label) if label is not None else value


def _stripped(text: str | None) -> str | None:
    return text.strip() if text else text


def _upper(text: str | None) -> str | None:
    return text.strip().upper() if text else text


def _lower(text: str | None) -> str | None:
    return text.strip().lower() if text else text


def parse_day(text: str) -> date | None:
    """A date typed as YYYY-MM-DD (as a date input sends it), else None."""
    if len(text) != len("YYYY-MM-DD"):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


class RecipientForm(FlaskForm):
    """The details of a recipient an administrator can change."""

    name = StringField(
        _l("Organisation's name"), filters=[_stripped],
        description=_l("As the organisation names itself, e.g. International Criminal Court, Office of the "
                       "Prosecutor."),
        render_kw={"maxlength": 200, "autocomplete": "off"},
    )
    category = SelectField(
        _l("Kind of organisation"), validate_choice=False,
        choices=[SelectChoice("", _l("Choose the kind of organisation")),
                 *(SelectChoice(c.value, CATEGORY_LABELS[c]) for c in RecipientCategory)],
        description=_l("It decides the purpose for which case files may be sent to this organisation."),
    )
    country = StringField(
        _l("Country (optional)"), filters=[_upper],
        description=_l("Its two-letter country code, e.g. NL. Leave it empty for an international body. Consent "
                       "that rules out a country or its authorities is matched against it."),
        render_kw={"maxlength": 2, "autocapitalize": "characters", "spellcheck": "false", "autocomplete": "off"},
    )
    is_authority = BooleanField(
        _l("This is an authority of that state (e.g. a national prosecutor's office or police)"),
    )
    agreement_reference = StringField(
        _l("Agreement reference"), filters=[_stripped],
        description=_l("The reference of the data-sharing agreement on file with this organisation."),
        render_kw={"maxlength": 200, "autocomplete": "off"},
    )
    agreement_date = StringField(
        _l("Date the agreement was signed"), filters=[_stripped],
        description=_l("As YYYY-MM-DD, not after today."),
        render_kw={"type": "date", "autocomplete": "off"},
    )
    contact = TextAreaField(
        _l("Contact"), filters=[_stripped],
        description=_l("Whom to reach at the organisation about case files: a name, an e-mail address or a phone "
                       "number."),
        render_kw={"maxlength": 500, "rows": 3},
    )
    age_recipients = TextAreaField(
        _l("Age public keys"),
        description=_l("One per line; each starts with age1. Case files are encrypted so that the secret key "
                       "matching any one of these opens them: up to %(count)s keys.", count=MAX_KEYS),
        render_kw={"rows": 4, "spellcheck": "false", "autocapitalize": "none", "autocomplete": "off"},
    )

    def validate_agreement_date(self, field: Field) -> None:
        # An empty date is the operation's to refuse, with the other missing details.
        if field.data and parse_day(field.data) is None:
            raise ValidationError(_l("Enter the date as YYYY-MM-DD, e.g. 2024-03-15."))

    def fill_from(self, recipient: Recipient) -> None:
        """Show the recipient's current details (for a page opened with GET)."""
        self.name.data = recipient.name
        self.category.data = recipient.category
        self.country.data = recipient.country or ""
        self.is_authority.data = recipient.is_authority
        self.agreement_reference.data = recipient.agreement_reference
        self.agreement_date.data = recipient.agreement_date.isoformat()
        self.contact.data = recipient.contact
        self.age_recipients.data = "\n".join(recipient.age_recipients)

    def to_input(self, key: str) -> RecipientInput:
        """What was typed, once validated, for the operations to check and record."""
        return RecipientInput(
            key=key, name=self.name.data or "", category=self.category.data or "",
            country=self.country.data or None, is_authority=bool(self.is_authority.data),
            agreement_reference=self.agreement_reference.data or "",
            agreement_date=parse_day(self.agreement_date.data or ""), contact=self.contact.data or "",
            age_recipients=parse_age_recipients(self.age_recipients.data or ""),
        )


class NewRecipientForm(RecipientForm):
    """A recipient's details, with the short name chosen once, at registration."""

    key = StringField(
        _l("Short name"), filters=[_lower],
        description=_l("How interviewers name this organisation when a person refuses to let it have their "
                       "testimony, e.g. icc-otp. Lower-case letters, digits, dots, dashes or underscores. It "
                       "cannot be changed later."),
        render_kw={"maxlength": 80, "autocapitalize": "none", "spellcheck": "false", "autocomplete": "off"},
    )
