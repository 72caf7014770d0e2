"""Handlers of the legal team's case pages.

A case is shown only to its members: to anyone else it does not exist (404), whether or not it does. The list and
the case's page show what is stored in clear (pseudonym codes, statuses, incident types and months) and open no
record, so they are not audited; each change is audited by `intake.cases.operations`.

A record of the case is read through `open_record` for the purpose "case" (content and attachments, never who the
person is), which decides and appends `record_viewed` or the refusal, with its reason. A record in none of the
caller's cases is refused by that decision (403, audited), whatever case the address names; adding one of its
incidents is decided the same way first. Removing a record from the case opens nothing, so a record that can no
longer be used (consent withdrawn, erased) can still be taken out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import abort, current_app, flash, g, redirect, render_template, url_for
from flask_babel import lazy_gettext as _l

from intake.accounts.models import Account, AccountRole
from intake.cases import operations as cases
from intake.cases.forms import ButtonForm, CaseForm, IncidentForm, MemberForm, RecordForm
from intake.cases.models import Case, CaseMember, CaseRecord
from intake.consents.operations import InputRefused
from intake.core.access import Part, open_record, require
from intake.core.db import db, writes_on_get
from intake.core.pages import attach_error, render_form
from intake.core.security import ROLE_PERMISSIONS, Permission, requires
from intake.exports.operations import shared_with
from intake.interviews import forms as interview_forms
from intake.interviews.controllers import day, incident_type_name, place_name, when
from intake.recipients.models import Recipient
from intake.recipients.operations import active_recipients
from intake.testimonies.models import Incident, Testimony
from intake.testimonies.operations import size_text

PURPOSE = "case"
PARTS = frozenset({Part.CONTENT, Part.ATTACHMENTS})
# The roles whose accounts can be members of a case.
LEGAL_ROLES = tuple(role.value for role, granted in ROLE_PERMISSIONS.items()
                    if Permission.BUILD_CASE_FILES in granted)


def page_helpers() -> dict[str, Any]:
    """What the case templates use to name stored values in the reader's language."""
    return {"f": interview_forms, "label": interview_forms.label, "when": when, "day": day,
            "place_name": place_name, "incident_type_name": incident_type_name, "size_text": size_text}


# --- what the pages list ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CaseRow:
    """A case in the member's list."""

    id: int
    reference: str
    title: str
    recipient: str | None
    records: int
    created_at: datetime


@dataclass(frozen=True)
class IncidentRow:
    """An incident by its clear classification only."""

    id: int
    type: str
    month: str | None


@dataclass(frozen=True)
class RecordRow:
    """A testimony of the case, by what is stored in clear: `whole` when the testimony itself was added,
    `added_alone` the incidents added on their own."""

    testimony_id: int
    pseudonym: str
    status: str
    erased: bool
    incidents: list[IncidentRow]
    whole: bool
    added_alone: list[IncidentRow]
    added_at: datetime


def _case_rows(found: list[Case]) -> list[CaseRow]:
    ids = [c.id for c in found]
    counts: dict[int, int] = {}
    if ids:
        counts = {case_id: int(n) for case_id, n in db.session.execute(
            sa.select(CaseRecord.case_id, sa.func.count(sa.distinct(CaseRecord.testimony_id)))
            .where(CaseRecord.case_id.in_(ids)).group_by(CaseRecord.case_id))}
    recipient_ids = {c.recipient_id for c in found if c.recipient_id is not None}
    names: dict[int, str] = {}
    if recipient_ids:
        names = {rid: name for rid, name in db.session.execute(
            sa.select(Recipient.id, Recipient.name).where(Recipient.id.in_(recipient_ids)))}
    return [CaseRow(c.id, c.reference, c.title, names.get(c.recipient_id) if c.recipient_id else None,
                    counts.get(c.id, 0), c.created_at) for c in found]


def _record_rows(case: Case) -> list[RecordRow]:
    items = db.session.execute(
        sa.select(CaseRecord.testimony_id, CaseRecord.incident_id, CaseRecord.added_at)
        .where(CaseRecord.case_id == case.id).order_by(CaseRecord.id)).all()
    if not items:
        return []
    ids = list(dict.fromkeys(testimony_id for testimony_id, _, _ in items))
    testimonies = {t.id: t for t in db.session.scalars(sa.select(Testimony).where(Testimony.id.in_(ids)))}
    incidents: dict[int, list[IncidentRow]] = {}
    by_id: dict[int, IncidentRow] = {}
    for incident_id, testimony_id, kind, month in db.session.execute(
            sa.select(Incident.id, Incident.testimony_id, Incident.type, Incident.month)
            .where(Incident.testimony_id.in_(ids)).order_by(Incident.id)):
        row = IncidentRow(incident_id, kind, month)
        incidents.setdefault(testimony_id, []).append(row)
        by_id[incident_id] = row
    whole: set[int] = set()
    alone: dict[int, list[IncidentRow]] = {}
    first: dict[int, datetime] = {}
    for held, item, added_at in items:
        first.setdefault(held, added_at)
        if item is None:
            whole.add(held)
        elif item in by_id:
            alone.setdefault(held, []).append(by_id[item])
    return [RecordRow(t.id, t.pseudonym, t.status, t.data_key.destroyed_at is not None, incidents.get(t.id, []),
                      t.id in whole, alone.get(t.id, []), first[t.id])
            for t in (testimonies[i] for i in ids if i in testimonies)]


def _candidates(case: Case) -> list[Account]:
    """Active accounts of legal teams that are not members of the case yet: whom it can be shared with."""
    present = sa.select(CaseMember.account_id).where(CaseMember.case_id == case.id)
    return list(db.session.scalars(
        sa.select(Account).join(AccountRole, AccountRole.account_id == Account.id)
        .where(Account.is_active.is_(True), AccountRole.role.in_(LEGAL_ROLES), Account.id.not_in(present))
        .distinct().order_by(Account.username)))


# --- helpers of the handlers -----------------------------------------------------------------------------------

def _member_case(case_id: int) -> Case:
    """The case, if the caller is one of its members; 404 otherwise, as for a case that does not exist."""
    try:
        return cases.case_for_member(case_id, g.account)
    except cases.NotAMember:
        abort(404)


def _testimony_or_404(testimony_id: int) -> Testimony:
    testimony = db.session.get(Testimony, testimony_id)
    if testimony is None:
        abort(404)
    return testimony


def _case_record(case_id: int, testimony_id: int) -> tuple[Case, Testimony]:
    """The case and its record, for a member of the case. Otherwise the record is put to the access decision,
    which refuses it (403, audited) when it is in none of the caller's cases; one it allows (a record of another
    of their cases) is not found here (404)."""
    testimony = _testimony_or_404(testimony_id)
    try:
        found: Case | None = cases.case_for_member(case_id, g.account)
    except cases.NotAMember:
        found = None
    held = found is not None and db.session.scalar(sa.select(CaseRecord.id).where(
        CaseRecord.case_id == found.id, CaseRecord.testimony_id == testimony.id).limit(1)) is not None
    if found is None or not held:
        require(g.account, testimony, PARTS, config=current_app.config, purpose=PURPOSE)
        abort(404)
    return found, testimony


def _refused_into(form: Any, refused: InputRefused, renamed: dict[str, str] | None = None) -> None:
    """An operation's refusal on the form: next to the field it names, else above the form."""
    for name, messages in refused.problems.items():
        for message in messages:
            attach_error(form, str(message), (renamed or {}).get(name, name) or None)


def _case_page(case: Case, *, status: int = 200, **forms: Any) -> Any:
    """The case's page; the forms given replace the blank ones, to show what was refused (with `status`)."""
    context = {
        "member_form": forms.pop("member_form", None) or MemberForm(_candidates(case), formdata=None,
                                                                    prefix="member"),
        "record_form": forms.pop("record_form", None) or RecordForm(formdata=None, prefix="record"),
        "remove_form": forms.pop("remove_form", None) or ButtonForm(formdata=None),
    }
    return render_template("cases/case.html", case=case, members=cases.members(case), records=_record_rows(case),
                           recipient=db.session.get(Recipient, case.recipient_id) if case.recipient_id else None,
                           **context), status


def _back_to_case(case: Case, anchor: str) -> Any:
    return redirect(url_for("cases.case", case_id=case.id, _anchor=anchor), code=303)


# --- the member's cases ----------------------------------------------------------------------------------------

@requires(Permission.BUILD_CASE_FILES)
def list_cases() -> Any:
    recipients = active_recipients()
    form = CaseForm(recipients)
    if form.validate_on_submit():
        chosen = next((r for r in recipients if r.id == form.recipient_id), None)
        try:
            case = cases.create_case(form.reference.data or "", form.title.data or "", recipient=chosen,
                                     actor=g.account)
        except InputRefused as refused:
            _refused_into(form, refused)
        else:
            flash(str(_l("Case %(reference)s is open. Add colleagues and records to it below.",
                         reference=case.reference)), "success")
            return redirect(url_for("cases.case", case_id=case.id), code=303)
    return render_form("cases/list.html", form, rows=_case_rows(cases.cases_of(g.account)))


@requires(Permission.BUILD_CASE_FILES)
def case(case_id: int) -> Any:
    return _case_page(_member_case(case_id))


# --- members ---------------------------------------------------------------------------------------------------

@requires(Permission.BUILD_CASE_FILES)
def add_member(case_id: int) -> Any:
    found = _member_case(case_id)
    form = MemberForm(_candidates(found), prefix="member")
    if form.validate_on_submit():
        account = db.session.scalar(sa.select(Account).where(Account.username == form.username.data))
        try:
            if account is None:
                raise InputRefused.one("account", _l("Choose an active member of a legal team."))
            cases.add_member(found, account, actor=g.account)
        except InputRefused as refused:
            _refused_into(form, refused, {"account": "username"})
        else:
            flash(str(_l("%(username)s is now a member of this case.", username=account.username)), "success")
            return _back_to_case(found, "members")
    return _case_page(found, status=422, member_form=form)


@requires(Permission.BUILD_CASE_FILES)
def remove_member(case_id: int, account_id: int) -> Any:
    found = _member_case(case_id)
    form = ButtonForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        cases.remove_member(found, account_id, actor=g.account)
    except InputRefused as refused:
        _refused_into(form, refused)
        return _case_page(found, status=422, remove_form=form)
    if account_id == g.account.id:
        flash(str(_l("You are no longer a member of case %(reference)s.", reference=found.reference)), "success")
        return redirect(url_for("cases.list_cases"), code=303)
    flash(str(_l("The colleague is no longer a member of this case.")), "success")
    return _back_to_case(found, "members")


# --- records ---------------------------------------------------------------------------------------------------

@requires(Permission.BUILD_CASE_FILES)
def add_record(case_id: int) -> Any:
    found = _member_case(case_id)
    form = RecordForm(prefix="record")
    if form.validate_on_submit():
        testimony = cases.find_testimony(form.pseudonym.data or "")
        try:
            row = cases.add_testimony(found, testimony, actor=g.account)
        except InputRefused as refused:
            _refused_into(form, refused)
        else:
            pseudonym = testimony.pseudonym if testimony is not None else ""
            if sa.inspect(row).persistent:  # the testimony was in the case already: nothing changed
                flash(str(_l("Record %(pseudonym)s was in this case already.", pseudonym=pseudonym)), "success")
            else:
                flash(str(_l("Record %(pseudonym)s is added to this case.", pseudonym=pseudonym)), "success")
            return _back_to_case(found, "records")
    return _case_page(found, status=422, record_form=form)


@requires(Permission.BUILD_CASE_FILES)
def remove_record(case_id: int, testimony_id: int) -> Any:
    """Take a record out of the case. Its consent or erasure does not matter: a record that can no longer be used
    must still be removable, and nothing of it is opened."""
    found = _member_case(case_id)
    form = ButtonForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        cases.remove_testimony(found, testimony_id, actor=g.account)
    except InputRefused as refused:
        _refused_into(form, refused)
        return _case_page(found, status=422, remove_form=form)
    flash(str(_l("The record is no longer in this case.")), "success")
    return _back_to_case(found, "records")


def _record_page(found: Case, testimony: Testimony, *, status: int = 200,
                 incident_form: IncidentForm | None = None) -> Any:
    view = open_record(g.account, testimony, PARTS, config=current_app.config, purpose=PURPOSE)
    alone = {incident_id for (incident_id,) in db.session.execute(
        sa.select(CaseRecord.incident_id).where(CaseRecord.case_id == found.id,
                                                CaseRecord.testimony_id == testimony.id,
                                                CaseRecord.incident_id.is_not(None)))}
    return render_template("cases/record.html", case=found, view=view, added_alone=alone,
                           incident_form=incident_form or IncidentForm(formdata=None),
                           shared=shared_with(testimony.id)), status


@requires(Permission.BUILD_CASE_FILES)
@writes_on_get  # opening the record is audited
def record(case_id: int, testimony_id: int) -> Any:
    return _record_page(*_case_record(case_id, testimony_id))


@requires(Permission.BUILD_CASE_FILES)
def add_incident(case_id: int, testimony_id: int) -> Any:
    found, testimony = _case_record(case_id, testimony_id)
    # As for opening the record: refused (403, audited) when the caller may not see it, before any incident is
    # looked up.
    require(g.account, testimony, PARTS, config=current_app.config, purpose=PURPOSE)
    form = IncidentForm()
    if form.validate_on_submit():
        incident = db.session.get(Incident, form.incident_id)
        try:
            if incident is None or incident.testimony_id != testimony.id:
                raise InputRefused.one("", _l("No incident has this number."))
            cases.add_incident(found, incident, actor=g.account)
        except InputRefused as refused:
            _refused_into(form, refused, {"incident": "", "pseudonym": ""})
        else:
            flash(str(_l("The incident is added to this case on its own.")), "success")
            return redirect(url_for("cases.record", case_id=found.id, testimony_id=testimony.id,
                                    _anchor=f"incident-{incident.id}"), code=303)
    return _record_page(found, testimony, status=422, incident_form=form)
