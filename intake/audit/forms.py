"""The audit log search form (a GET form: its fields are query parameters) and the names shown for actions and
record types."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flask_babel import lazy_gettext as _l
from wtforms import Field, SelectChoice, SelectField, StringField
from wtforms.validators import AnyOf, Optional, Regexp, ValidationError
from wtforms.widgets import DateInput

from intake.accounts.forms import at_most
from intake.audit import RECORD_ID
from intake.core.audit import AuditAction
from intake.core.audit.service import EventFilter, whole_days
from intake.core.dates import parse_day
from intake.core.pages import PagedSearchForm

ACTION_LABELS: dict[str, Any] = {
    AuditAction.LOGIN: _l("Signed in"),
    AuditAction.LOGIN_FAILED: _l("Sign-in failed"),
    AuditAction.LOGIN_LOCKED: _l("Sign-in locked after failed attempts"),
    AuditAction.LOGOUT: _l("Signed out"),
    AuditAction.MFA_ENROLLED: _l("Authenticator set up"),
    AuditAction.MFA_RESET: _l("Two-factor authentication reset"),
    AuditAction.STEP_UP: _l("Two-factor code confirmed"),
    AuditAction.STEP_UP_FAILED: _l("Two-factor code refused"),
    AuditAction.RECOVERY_CODES_CREATED: _l("Recovery codes created"),
    AuditAction.RECOVERY_CODE_USED: _l("Recovery code used"),
    AuditAction.PASSWORD_CHANGED: _l("Password changed"),
    AuditAction.SETUP_LINK_ISSUED: _l("Setup link issued"),
    AuditAction.INVITATION_ISSUED: _l("Invitation issued"),
    AuditAction.ACCOUNT_CREATED: _l("Account created"),
    AuditAction.ROLES_CHANGED: _l("Roles changed"),
    AuditAction.ACCOUNT_DEACTIVATED: _l("Account deactivated"),
    AuditAction.ACCOUNT_REACTIVATED: _l("Account reactivated"),
    AuditAction.TOKEN_CREATED: _l("API token created"),
    AuditAction.TOKEN_REVOKED: _l("API token revoked"),
    AuditAction.ACCESS_DENIED: _l("Access refused"),
    AuditAction.PERSON_REGISTERED: _l("Person registered"),
    AuditAction.IDENTITY_MATCH_CHECKED: _l("Checked for earlier interviews of a person"),
    AuditAction.TESTIMONY_CREATED: _l("Testimony created"),
    AuditAction.TESTIMONY_UPDATED: _l("Testimony changed"),
    AuditAction.TEAM_CHANGED: _l("Team changed"),
    AuditAction.RECORD_ASSIGNED: _l("Record assigned to a reviewer"),
    AuditAction.RECORD_UNASSIGNED: _l("Record taken from a reviewer"),
    AuditAction.TESTIMONY_SUBMITTED: _l("Testimony submitted"),
    AuditAction.INTERVIEW_NOT_HELD: _l("Interview not held"),
    AuditAction.RECORD_ACCESS_REFUSED: _l("Record access refused"),
    AuditAction.ATTACHMENT_STORED: _l("Attachment stored"),
    AuditAction.RECORD_SHREDDED: _l("Record made unreadable (shredded)"),
    AuditAction.KEK_ROTATED: _l("Key-encryption key rotated"),
    AuditAction.DATA_KEYS_REWRAPPED: _l("Data keys re-wrapped"),
    AuditAction.KEK_RETIRED: _l("Key-encryption key retired"),
    AuditAction.KEYRING_PASSPHRASE_CHANGED: _l("Keyring passphrase changed"),
    AuditAction.KEYRING_BACKED_UP: _l("Keyring backed up"),
    AuditAction.RECORD_VIEWED: _l("Record viewed"),
    AuditAction.RECORDS_SEARCHED: _l("Records searched"),
    AuditAction.RECORD_ANALYSED: _l("Analysis recorded by a reviewer"),
    AuditAction.CONSENT_RECORDED: _l("Consent recorded"),
    AuditAction.CONSENT_WITHDRAWN: _l("Consent withdrawn"),
    AuditAction.ACCESS_GRANTED: _l("Access granted"),
    AuditAction.ACCESS_REVOKED: _l("Access revoked"),
    AuditAction.RECIPIENT_REGISTERED: _l("Recipient registered"),
    AuditAction.RECIPIENT_CHANGED: _l("Recipient changed"),
    AuditAction.CASE_CREATED: _l("Case opened"),
    AuditAction.CASE_MEMBER_ADDED: _l("Member added to a case"),
    AuditAction.CASE_MEMBER_REMOVED: _l("Member removed from a case"),
    AuditAction.CASE_RECORD_ADDED: _l("Record added to a case"),
    AuditAction.CASE_RECORD_REMOVED: _l("Record removed from a case"),
    AuditAction.EXPORT_REQUESTED: _l("Export requested"),
    AuditAction.EXPORT_BUILT: _l("Export built"),
    AuditAction.EXPORT_DOWNLOADED: _l("Export downloaded"),
    AuditAction.EXPORT_CANCELLED: _l("Export cancelled"),
    AuditAction.RECORD_SHARED: _l("Record shared"),
    AuditAction.REIDENTIFIED: _l("Person re-identified"),
    AuditAction.RETENTION_DISPOSED: _l("Disposed of at the end of its retention period"),
    AuditAction.AUDIT_VERIFIED: _l("Audit log verified"),
    AuditAction.AUDIT_SEARCHED: _l("Audit log searched"),
    AuditAction.AUDIT_HISTORY_VIEWED: _l("Record's audit history viewed"),
    AuditAction.AUDIT_EXTRACT_EXPORTED: _l("Record's audit history exported"),
}

# The kinds of record events name, as the log stores them.
TARGET_TYPE_LABELS: dict[str, Any] = {
    "testimony": _l("Testimony"),
    "person": _l("Person"),
    "account": _l("Account"),
    "api_token": _l("API token"),
    "invitation": _l("Invitation or link"),
    "keyring": _l("Keyring"),
    "audit_log": _l("Audit log"),
}

RECORD_ID_HELP = _l("Use letters, digits, dots, hyphens or underscores.")


def action_label(action: str) -> str:
    """The action's name in the reader's language (its stored name when it has none)."""
    label = ACTION_LABELS.get(action)
    return str(label) if label is not None else action


def target_type_label(target_type: str) -> str:
    label = TARGET_TYPE_LABELS.get(target_type)
    return str(label) if label is not None else target_type



def calendar_day(_form: Any, field: Field) -> None:
    if field.data and parse_day(field.data) is None:
        raise ValidationError(_l("Enter a date as year-month-day, for example 2025-03-31."))


def _stripped(text: str | None) -> str | None:
    return text.strip() if text else text


def _choices(labels: Mapping[str, Any], values: Sequence[str], anything: Any) -> list[SelectChoice]:
    return [SelectChoice("", anything)] + [SelectChoice(v, labels.get(v, v)) for v in values]


def _one_of(values: Sequence[str]) -> AnyOf:
    return AnyOf(["", *values], message=_l("Choose one of the listed values."))


ACTIONS = [str(a) for a in AuditAction]
TARGET_TYPES = list(TARGET_TYPE_LABELS)


class SearchForm(PagedSearchForm):
    """Which events to show, older than `before` (a sequence number). Every field is optional; the days are whole
    UTC days, both included."""

    actor = StringField(
        _l("Done by (username)"), validators=[Optional(), at_most(64)], filters=[_stripped],
        render_kw={"autocapitalize": "none", "spellcheck": "false"},
    )
    target_type = SelectField(_l("Record type"), choices=_choices(TARGET_TYPE_LABELS, TARGET_TYPES, _l("Any")),
                              validate_choice=False, validators=[Optional(), _one_of(TARGET_TYPES)])
    target_id = StringField(
        _l("Record id or pseudonym"),
        validators=[Optional(), at_most(64), Regexp(RECORD_ID.pattern + r"\Z", message=RECORD_ID_HELP)],
        filters=[_stripped], render_kw={"autocapitalize": "none", "spellcheck": "false"},
    )
    action = SelectField(_l("Action"), choices=_choices(ACTION_LABELS, ACTIONS, _l("Any")), validate_choice=False,
                         validators=[Optional(), _one_of(ACTIONS)])
    since = StringField(_l("From (UTC)"), widget=DateInput(), validators=[Optional(), calendar_day])
    until = StringField(_l("To (UTC), this day included"), widget=DateInput(), validators=[Optional(), calendar_day])

    def validate_until(self, field: Field) -> None:
        first, last = parse_day(self.since.data or ""), parse_day(field.data or "")
        if first is not None and last is not None and last < first:
            raise ValidationError(_l("The end date is before the start date."))

    def event_filter(self, actor_id: int | None) -> EventFilter:
        """The filter of a validated form; `actor_id` is the account the username names."""
        since, until = whole_days(parse_day(self.since.data or ""), parse_day(self.until.data or ""))
        return EventFilter(actor_id=actor_id, target_type=self.target_type.data or None,
                           target_id=self.target_id.data or None, action=self.action.data or None,
                           since=since, until=until)
