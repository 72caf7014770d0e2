"""The reviewer's queue filters: a GET form (its fields are query parameters) on the clear classification only."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from flask_babel import lazy_gettext as _l
from wtforms import Field, SelectChoice, SelectField, StringField
from wtforms.validators import Optional, ValidationError

from consent import scripts
from intake.core import gazetteer, vocabulary
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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        here = locale()
        self.incident_type.choices = [SelectChoice("", _l("Any"))] + [
            SelectChoice(t.id, t.label(here)) for t in vocabulary.incident_types()]

    def chosen(self) -> dict[str, str | None]:
        """The filters of a validated form (None: any)."""
        return {name: getattr(self, name).data or None
                for name in ("incident_type", "month", "region", "status", "language")}
