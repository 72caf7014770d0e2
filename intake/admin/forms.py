"""Forms of the account administration pages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectMultipleField, StringField
from wtforms.widgets import CheckboxInput, ListWidget

from intake.accounts.forms import at_most, required
from intake.core.security import Role

ROLE_LABELS = {
    Role.INTERVIEWER: _l("Interviewer: runs interviews and records testimony"),
    Role.REVIEWER: _l("Reviewer: assesses pseudonymised testimony"),
    Role.LEGAL: _l("Legal: builds case files for consented recipients"),
    Role.COORDINATOR: _l("Coordinator: assigns work and handles survivors' requests"),
    Role.AUDITOR: _l("Auditor: reads and verifies the audit log"),
    Role.ADMIN: _l("Admin: manages accounts"),
}


class RoleChoices(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def role_field() -> RoleChoices:
    return RoleChoices(
        _l("Roles"), choices=[SelectChoice(r.value, ROLE_LABELS[r]) for r in Role],
        description=_l("Interviewer and legal may each be combined with coordinator; other roles stand alone."),
        validators=[required()],
    )


def team_field() -> StringField:
    return StringField(
        _l("Team (optional)"), validators=[at_most(64)],
        description=_l("The field team this person works in, e.g. Goris team. Shown where their work is "
                       "attributed, such as the warning that a person may already have been interviewed."),
    )


class InviteForm(FlaskForm):
    username = StringField(
        _l("Username"), validators=[required(), at_most(64)],
        description=_l("Lowercase Latin letters, digits, dots, hyphens or underscores."),
        render_kw={"autocapitalize": "none", "spellcheck": "false"},
    )
    roles = role_field()
    team = team_field()


class RolesForm(FlaskForm):
    roles = role_field()
    team = team_field()
