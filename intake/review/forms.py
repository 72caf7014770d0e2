"""The reviewer's queue filters: a GET form (its fields are query parameters) on the clear classification only."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import Field, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from consent import scripts
from intake.accounts.models import Account
from intake.core import gazetteer, vocabulary
from intake.core.db import db
from intake.core.i18n import LANGUAGE_NAMES
from intake.core.pages import PagedSearchForm
from intake.interviews.forms import STATUS_LABELS, locale
from intake.testimonies.models import TestimonyStatus

REGION_LABELS: dict[str, Any] = {
    "nagorno-karabakh": _l("Nagorno-Karabakh"),
    "armenia": _l("Armenia"),
    "azerbaijan": _l("Azerbaijan"),
}
# What a reviewer's queue holds: everything submitted, never a draft.
STATUSES = tuple(s.value for s in TestimonyStatus if s is not TestimonyStatus.DRAFT)
MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])\Z")
CHOOSE_LISTED = _l("Choose one of the listed values.")


def _choices(labels: Mapping[str, Any], codes: Iterable[str]) -> list[SelectChoice]:
    return [SelectChoice("", _l("Any"))] + [SelectChoice(c, labels.get(c, c)) for c in codes]


def _listed(codes: Iterable[str]) -> Any:
    allowed = frozenset(codes)

    def check(_form: Any, field: Field) -> None:
        if field.data and field.data not in allowed:
            raise ValidationError(CHOOSE_LISTED)

    return check


def _month(_form: Any, field: Field) -> None:
    if field.data and not MONTH.match(field.data):
        raise ValidationError(_l("Enter a month as year-month, for example 2023-09."))


def _stripped(text: str | None) -> str | None:
    return text.strip() if text else text


class QueueForm(PagedSearchForm):
    """Which records to list, older than `before` (a testimony id). Every field is optional; the incident fields
    must all match one incident."""

    incident_type = SelectField(_l("Incident type"), validate_choice=False, choices=[],
                                validators=[Optional(), _listed(t.id for t in vocabulary.incident_types())])
    month = StringField(_l("Month of the incident"), description=_l("Year and month, for example 2023-09."),
                        filters=[_stripped], validators=[Optional(), _month], render_kw={"inputmode": "numeric"})
    region = SelectField(_l("Region"), validate_choice=False, choices=_choices(REGION_LABELS, gazetteer.REGIONS),
                         validators=[Optional(), _listed(gazetteer.REGIONS)])
    status = SelectField(_l("Status"), validate_choice=False, choices=_choices(STATUS_LABELS, STATUSES),
                         validators=[Optional(), _listed(STATUSES)])
    language = SelectField(_l("Language of the interview"), validate_choice=False,
                           choices=_choices(LANGUAGE_NAMES, scripts.LANGUAGES),
                           validators=[Optional(), _listed(scripts.LANGUAGES)])
    team = SelectField(_l("Interviewer's team"), validate_choice=False, choices=[], validators=[Optional()])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        here = locale()
        self.incident_type.choices = [SelectChoice("", _l("Any"))] + [
            SelectChoice(t.id, t.label(here)) for t in vocabulary.incident_types()]
        self.teams = teams()
        self.team.choices = [SelectChoice("", _l("Any"))] + [SelectChoice(t, t) for t in self.teams]

    def validate_team(self, field: Field) -> None:
        if field.data and field.data not in self.teams:
            raise ValidationError(CHOOSE_LISTED)

    def chosen(self) -> dict[str, str | None]:
        """The filters of a validated form (None: any)."""
        return {name: getattr(self, name).data or None
                for name in ("incident_type", "month", "region", "status", "language", "team")}


def teams() -> list[str]:
    """The teams accounts belong to, in alphabetical order: what the queue's team filter offers."""
    return list(db.session.scalars(sa.select(Account.team).where(Account.team.is_not(None), Account.team != "")
                                   .distinct().order_by(Account.team)))


# --- the reviewer's analysis -----------------------------------------------------------------------------------

RELIABILITY_LABELS: dict[str, Any] = {
    "A": _l("A: completely reliable"),
    "B": _l("B: usually reliable"),
    "C": _l("C: fairly reliable"),
    "D": _l("D: not usually reliable"),
    "E": _l("E: unreliable"),
    "F": _l("F: reliability cannot be judged"),
}
CREDIBILITY_LABELS: dict[str, Any] = {
    "1": _l("1: confirmed by other sources"),
    "2": _l("2: probably true"),
    "3": _l("3: possibly true"),
    "4": _l("4: doubtful"),
    "5": _l("5: improbable"),
    "6": _l("6: truth cannot be judged"),
}
VERIFICATION_LABELS: dict[str, Any] = {
    "unverified": _l("Not verified"),
    "corroborated": _l("Corroborated by other records"),
    "verified": _l("Verified"),
    "disputed": _l("Disputed"),
}
ASSESSMENT_LABELS: dict[str, dict[str, Any]] = {
    "reliability": RELIABILITY_LABELS, "credibility": CREDIBILITY_LABELS, "verification": VERIFICATION_LABELS}
ASSESSMENT_TITLES: dict[str, Any] = {
    "reliability": _l("Reliability of the source"),
    "credibility": _l("Credibility of the information"),
    "verification": _l("Verification"),
}
LINK_LABELS: dict[str, Any] = {
    "corroborates": _l("Tells of the same events (corroborates)"),
    "duplicate": _l("Is the same testimony, recorded again (duplicate)"),
}
SPAN_LABELS: dict[str, Any] = {
    "name": _l("A name"),
    "address": _l("An exact address or location"),
    "unit": _l("A unit number or designation"),
    "other": _l("Something else that identifies someone"),
}
REASON_HELP = _l("Kept with your analysis, apart from what the source said, and sealed like the testimony.")


def _pick(labels: Mapping[str, Any]) -> list[SelectChoice]:
    return [SelectChoice(code, text) for code, text in labels.items()]


class AssessmentForm(FlaskForm):
    """A grade or a verification status with its reason; `kind` says which (and prefixes the fields)."""

    value = SelectField(validate_choice=False, choices=[], validators=[InputRequired(CHOOSE_LISTED)])
    reason = TextAreaField(_l("Reason"), description=REASON_HELP, filters=[_stripped],
                           validators=[InputRequired(_l("Give the reason in a sentence or two.")), Length(max=2000)])

    def __init__(self, kind: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, prefix=kind, **kwargs)
        self.kind = kind
        self.value.label.text = ASSESSMENT_TITLES[kind]
        self.value.choices = [SelectChoice("", _l("Choose"))] + _pick(ASSESSMENT_LABELS[kind])


class CodingForm(FlaskForm):
    """The reviewer's coding of one incident; the source's own account stays as it was."""

    type = SelectField(_l("Incident type"), validate_choice=False, choices=[],
                       validators=[InputRequired(CHOOSE_LISTED), _listed(t.id for t in vocabulary.incident_types())])
    month = StringField(_l("Month of the incident"), description=_l("Year and month, for example 2023-09."),
                        filters=[_stripped], validators=[Optional(), _month], render_kw={"inputmode": "numeric"})
    region = SelectField(_l("Region"), validate_choice=False, choices=_choices(REGION_LABELS, gazetteer.REGIONS),
                         validators=[Optional(), _listed(gazetteer.REGIONS)])
    reason = TextAreaField(_l("Reason"), description=REASON_HELP, filters=[_stripped],
                           validators=[InputRequired(_l("Give the reason in a sentence or two.")), Length(max=2000)])

    def __init__(self, incident_id: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, prefix=f"coding-{incident_id}", **kwargs)
        here = locale()
        self.type.choices = [SelectChoice("", _l("Choose"))] + [
            SelectChoice(t.id, t.label(here)) for t in vocabulary.incident_types()]


class LinkForm(FlaskForm):
    other = StringField(_l("Code of the other record"), description=_l("As the queue shows it, for example "
                                                                        "KB-7F3Q-2K."),
                        filters=[_stripped], validators=[InputRequired(_l("Give the other record's code.")),
                                                         Length(max=32)],
                        render_kw={"autocapitalize": "characters", "spellcheck": "false"})
    kind = SelectField(_l("The other record"), choices=_pick(LINK_LABELS), validators=[InputRequired(CHOOSE_LISTED)])
    reason = TextAreaField(_l("Reason"), description=REASON_HELP, filters=[_stripped],
                           validators=[InputRequired(_l("Give the reason in a sentence or two.")), Length(max=2000)])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, prefix="link", **kwargs)


class SpanForm(FlaskForm):
    phrase = StringField(_l("Words that identify someone"),
                         description=_l("Copy them from the narrative exactly as written. Every place they occur is "
                                        "marked, and exports below the confidential level replace them."),
                         validators=[InputRequired(_l("Copy the words that identify someone from the narrative.")),
                                     Length(max=200)])
    kind = SelectField(_l("What they are"), choices=_pick(SPAN_LABELS), validators=[InputRequired(CHOOSE_LISTED)])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, prefix="span", **kwargs)


class NoteForm(FlaskForm):
    text = TextAreaField(_l("Note"), description=_l("Only reviewers read it; it is sealed like the testimony."),
                         validators=[InputRequired(_l("Write the note.")), Length(max=10_000)])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, prefix="note", **kwargs)


class RemoveForm(FlaskForm):
    """A button that removes a link or a mark: only its CSRF token."""
