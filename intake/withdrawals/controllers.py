"""Handlers of the withdrawal pages: a coordinator's for any record, an interviewer's for their own interviews.

Nothing here decrypts: the pages show what is stored in clear (see `intake.withdrawals`). Finding a record by its
pseudonym is audited (`records_searched`, with the ids found); showing a record's clear metadata is not, as it
opens none of the parts `record_viewed` counts. Erasure is a page of its own that asks for a fresh two-factor code.

Two pages of a coordinator do decrypt, through `open_record` and after a fresh two-factor code and a written reason
(both audited with it): re-identification, which shows who the person is and nothing else, and the survivor's copy
of their own data, a self-contained document with other people's details removed (`intake.withdrawals.own_data`).
Both answer the POST itself, never with a redirect, so that what they show is in no address.

The coordinator's record page also lists who reviews the record: its assignments and its access grants, with forms
to change them. Each change is a POST of its own that comes back to the record page; granting access opens the record
to someone, so it asks for a fresh two-factor code too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from flask import abort, current_app, flash, g, make_response, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import aliased

from intake.accounts.models import Account, AccountRole
from intake.audit.controllers import details_text
from intake.audit.forms import action_label
from intake.consents.operations import InputRefused, withdrawals_of
from intake.core.access import COORDINATOR_PARTS, CoordinatorPurpose, Reason, open_record, refuse
from intake.core.access import assignments as access
from intake.core.access.models import AccessGrant, Assignment
from intake.core.audit import AuditAction, record_event
from intake.core.db import db, utcnow, writes_on_get
from intake.core.pages import attach_error, render_form
from intake.core.security import Permission, Role, requires, requires_step_up
from intake.core.web import CSP
from intake.interviews import forms as interview_forms
from intake.interviews.controllers import day, incident_type_name, place_name, when

# The codes are called what the interview's pages call them: the coordinator reads the interviewer's words.
from intake.interviews.forms import DISCLOSURE_LABELS, MEDIUM_LABELS, PURPOSE_LABELS, STATUS_LABELS
from intake.review.operations import active_spans
from intake.testimonies.models import Testimony
from intake.withdrawals import RecordSummary, find_by_pseudonym, own_data, summarise, withdraw
from intake.withdrawals.forms import (
    RECEIVED_HOW_LABELS,
    AssignReviewerForm,
    ErasureForm,
    FindRecordForm,
    GrantAccessForm,
    ReidentificationForm,
    RevokeAccessForm,
    SurvivorCopyForm,
    UnassignReviewerForm,
    WithdrawalForm,
    label_of,
)


def moment(value: datetime | date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M") + " UTC"
    return value.isoformat()


def page_helpers() -> dict[str, Any]:
    """What the withdrawal templates use to name stored values in the reader's language."""
    return {
        "purpose_label": lambda v: label_of(PURPOSE_LABELS, v),
        "disclosure_label": lambda v: label_of(DISCLOSURE_LABELS, v),
        "medium_label": lambda v: label_of(MEDIUM_LABELS, v),
        "status_label": lambda v: label_of(STATUS_LABELS, v),
        "received_how_label": lambda v: label_of(RECEIVED_HOW_LABELS, v),
        "action_label": action_label,
        "details_text": details_text,
        "moment": moment,
    }


def _testimony_or_404(testimony_id: int) -> Testimony:
    testimony = db.session.get(Testimony, testimony_id)
    if testimony is None:
        abort(404)
    return testimony


def _own_testimony(testimony_id: int) -> Testimony:
    """The caller's own interview: 404 when there is none with this id, 403 when someone else recorded it."""
    testimony = _testimony_or_404(testimony_id)
    if testimony.interviewer_id is None or testimony.interviewer_id != g.account.id:
        refuse(g.account, testimony, Reason.NOT_OWN, asked=set(), purpose="withdrawal")
    return testimony


def _refused(form: Any, refused: InputRefused) -> None:
    for name, messages in refused.problems.items():
        for message in messages:
            attach_error(form, str(message), name or None)


def _purposes_text(purposes: list[str]) -> str:
    return ", ".join(label_of(PURPOSE_LABELS, p) for p in purposes)


def _tell_recipients(summary: RecordSummary) -> None:
    if summary.exports:
        flash(str(_l("This record was exported or shared before: tell the recipients listed under \"Exports that "
                     "included this record\".")), "warning")


@dataclass(frozen=True)
class AssignmentRow:
    """A reviewer the record is assigned to, as the record page lists it."""

    reviewer_id: int
    reviewer: str
    at: datetime
    by: str | None


@dataclass(frozen=True)
class GrantRow:
    """An access grant still in force, as the record page lists it."""

    id: int
    account: str
    reason: str
    expires_at: datetime
    by: str | None


def _reviewers() -> list[Account]:
    """The active accounts holding the reviewer role: whom a record can be assigned or granted to."""
    return list(db.session.scalars(
        sa.select(Account).join(AccountRole, AccountRole.account_id == Account.id)
        .where(Account.is_active.is_(True), AccountRole.role == Role.REVIEWER).order_by(Account.username)))


def _assignments(testimony: Testimony) -> list[AssignmentRow]:
    reviewer, by = aliased(Account), aliased(Account)
    rows = db.session.execute(
        sa.select(Assignment.reviewer_id, reviewer.username, Assignment.assigned_at, by.username)
        .join(reviewer, reviewer.id == Assignment.reviewer_id)
        .outerjoin(by, by.id == Assignment.assigned_by_id)
        .where(Assignment.testimony_id == testimony.id).order_by(Assignment.assigned_at, Assignment.id))
    return [AssignmentRow(*row) for row in rows]


def _grants(testimony: Testimony) -> list[GrantRow]:
    grantee, by = aliased(Account), aliased(Account)
    rows = db.session.execute(
        sa.select(AccessGrant.id, grantee.username, AccessGrant.reason, AccessGrant.expires_at, by.username)
        .join(grantee, grantee.id == AccessGrant.account_id)
        .outerjoin(by, by.id == AccessGrant.granted_by_id)
        .where(AccessGrant.testimony_id == testimony.id, AccessGrant.revoked_at.is_(None),
               AccessGrant.expires_at > utcnow())
        .order_by(AccessGrant.expires_at, AccessGrant.id))
    return [GrantRow(*row) for row in rows]


def _access_context(testimony: Testimony, *, assign_form: AssignReviewerForm | None = None,
                    grant_form: GrantAccessForm | None = None,
                    revoke_form: tuple[int, RevokeAccessForm] | None = None) -> dict[str, Any]:
    """What the record page shows of who reviews the record, with empty forms except the one refused."""
    reviewers = _reviewers()
    assigned = _assignments(testimony)
    taken = {row.reviewer_id for row in assigned}
    grants = _grants(testimony)
    revoke_forms = {grant.id: RevokeAccessForm(formdata=None, prefix=f"revoke-{grant.id}") for grant in grants}
    if revoke_form is not None and revoke_form[0] in revoke_forms:
        revoke_forms[revoke_form[0]] = revoke_form[1]
    return {
        "assignments": assigned,
        "grants": grants,
        "assign_form": assign_form or AssignReviewerForm([r for r in reviewers if r.id not in taken],
                                                         formdata=None, prefix="assign"),
        "unassign_form": UnassignReviewerForm(formdata=None),
        "grant_form": grant_form or GrantAccessForm(reviewers, formdata=None, prefix="grant"),
        "revoke_forms": revoke_forms,
    }


def _record_again(testimony: Testimony, **forms: Any) -> Any:
    """The coordinator's record page again, after a change to its reviewers was refused (422, nothing changed)."""
    summary = summarise(testimony, with_exports=True)
    return render_template(
        "withdrawals/record.html", form=WithdrawalForm(summary.in_force, formdata=None), summary=summary,
        coordinating=True, action=url_for("withdrawals.record", testimony_id=testimony.id),
        erasure_url=url_for("withdrawals.erase", testimony_id=testimony.id),
        **_access_context(testimony, **forms)), 422


def _refused_into(form: Any, refused: InputRefused, renamed: dict[str, str]) -> None:
    for name, messages in refused.problems.items():
        for message in messages:
            attach_error(form, str(message), renamed.get(name, name) or None)


def _withdrawal_page(testimony: Testimony, *, here: str, erasure: str, coordinating: bool) -> Any:
    summary = summarise(testimony, with_exports=coordinating)
    form = WithdrawalForm(summary.in_force)
    if form.validate_on_submit():
        purposes = form.chosen_purposes
        try:
            withdraw(testimony, purposes=purposes, received_how=form.received_how.data or "", erasure=False,
                     actor=g.account, config=current_app.config)
        except InputRefused as refused:
            _refused(form, refused)
        else:
            if purposes:
                flash(str(_l("Consent of %(pseudonym)s withdrawn for: %(purposes)s. This takes effect now.",
                             pseudonym=testimony.pseudonym, purposes=_purposes_text(purposes))), "success")
            else:
                flash(str(_l("Consent of %(pseudonym)s withdrawn for every use. This takes effect now.",
                             pseudonym=testimony.pseudonym)), "success")
            _tell_recipients(summary)
            return redirect(url_for(here, testimony_id=testimony.id), code=303)
    extra = _access_context(testimony) if coordinating else {}
    return render_form("withdrawals/record.html", form, summary=summary, coordinating=coordinating,
                       action=url_for(here, testimony_id=testimony.id),
                       erasure_url=url_for(erasure, testimony_id=testimony.id), **extra)


def _erasure_page(testimony: Testimony, *, back: str, coordinating: bool) -> Any:
    summary = summarise(testimony, with_exports=coordinating)
    form = ErasureForm()
    if form.validate_on_submit():
        try:
            withdraw(testimony, purposes=[], received_how=form.received_how.data or "", erasure=True,
                     actor=g.account, config=current_app.config)
        except InputRefused as refused:
            _refused(form, refused)
        else:
            flash(str(_l("The data of %(pseudonym)s is erased. The record remains as an empty entry, and the audit "
                         "log keeps what was done with it.", pseudonym=testimony.pseudonym)), "success")
            _tell_recipients(summary)
            return redirect(url_for(back, testimony_id=testimony.id), code=303)
    return render_form("withdrawals/erasure.html", form, summary=summary,
                       back_url=url_for(back, testimony_id=testimony.id))


# --- coordinator -----------------------------------------------------------------------------------------------

@requires(Permission.COORDINATE)
@writes_on_get  # a search is recorded
def find_record() -> Any:
    form = FindRecordForm(formdata=request.args)
    if "pseudonym" not in request.args:
        return render_template("withdrawals/find.html", form=form, found=None)
    if not form.validate():
        return render_template("withdrawals/find.html", form=form, found=None), 400
    found = find_by_pseudonym(form.pseudonym.data or "")
    record_event(AuditAction.RECORDS_SEARCHED, actor=g.account, target_type="testimony",
                 target_ids=[t.id for t in found], details={"by": "pseudonym", "found": len(found)})
    if len(found) == 1:
        return redirect(url_for("withdrawals.record", testimony_id=found[0].id), code=303)
    if not found:
        attach_error(form, str(_l("No record has this pseudonym code.")), "pseudonym")
        return render_template("withdrawals/find.html", form=form, found=None), 400
    return render_template("withdrawals/find.html", form=form, found=[summarise(t, with_exports=False)
                                                                       for t in found])


@requires(Permission.COORDINATE)
def record(testimony_id: int) -> Any:
    return _withdrawal_page(_testimony_or_404(testimony_id), here="withdrawals.record",
                            erasure="withdrawals.erase", coordinating=True)


@requires(Permission.COORDINATE)
@requires_step_up
def erase(testimony_id: int) -> Any:
    return _erasure_page(_testimony_or_404(testimony_id), back="withdrawals.record", coordinating=True)


def _back_to_record(testimony: Testimony) -> Any:
    return redirect(url_for("withdrawals.record", testimony_id=testimony.id), code=303)


@requires(Permission.COORDINATE)
def assign_reviewer(testimony_id: int) -> Any:
    testimony = _testimony_or_404(testimony_id)
    form = AssignReviewerForm(_reviewers(), prefix="assign")
    if form.validate_on_submit():
        reviewer = db.session.get(Account, int(form.reviewer.data or 0))
        try:
            if reviewer is None:
                raise InputRefused.one("reviewer", _l("Choose an active reviewer."))
            access.assign(testimony, reviewer, actor=g.account)
        except InputRefused as refused:
            _refused_into(form, refused, {})
        else:
            flash(str(_l("Record %(pseudonym)s assigned to %(reviewer)s.", pseudonym=testimony.pseudonym,
                         reviewer=reviewer.username)), "success")
            return _back_to_record(testimony)
    return _record_again(testimony, assign_form=form)


@requires(Permission.COORDINATE)
def unassign_reviewer(testimony_id: int, reviewer_id: int) -> Any:
    testimony = _testimony_or_404(testimony_id)
    reviewer = db.session.get(Account, reviewer_id)
    if reviewer is None:
        abort(404)
    form = UnassignReviewerForm()
    if not form.validate_on_submit():
        abort(400)
    access.unassign(testimony, reviewer, actor=g.account)
    flash(str(_l("Record %(pseudonym)s is no longer assigned to %(reviewer)s.", pseudonym=testimony.pseudonym,
                 reviewer=reviewer.username)), "success")
    return _back_to_record(testimony)


@requires(Permission.COORDINATE)
@requires_step_up  # it opens the record to someone
def grant_access(testimony_id: int) -> Any:
    testimony = _testimony_or_404(testimony_id)
    form = GrantAccessForm(_reviewers(), prefix="grant")
    if form.validate_on_submit():
        grantee = db.session.get(Account, int(form.account.data or 0))
        try:
            if grantee is None:
                raise InputRefused.one("reviewer", _l("Choose an active reviewer."))
            access.grant_access(testimony, grantee, reason=form.reason.data or "", expires_at=form.ends,
                                actor=g.account)
        except InputRefused as refused:
            _refused_into(form, refused, {"reviewer": "account"})
        else:
            flash(str(_l("%(account)s may review record %(pseudonym)s until %(ends)s.", account=grantee.username,
                         pseudonym=testimony.pseudonym, ends=form.expires_at.data)), "success")
            return _back_to_record(testimony)
    return _record_again(testimony, grant_form=form)


@requires(Permission.COORDINATE)
def revoke_access(testimony_id: int, grant_id: int) -> Any:
    testimony = _testimony_or_404(testimony_id)
    grant = db.session.get(AccessGrant, grant_id)
    if grant is None or grant.testimony_id != testimony.id:
        abort(404)
    form = RevokeAccessForm(prefix=f"revoke-{grant.id}")
    if form.validate_on_submit():
        try:
            access.revoke_access(grant, reason=form.reason.data or "", actor=g.account)
        except InputRefused as refused:
            _refused_into(form, refused, {})
        else:
            flash(str(_l("Access to record %(pseudonym)s has ended.", pseudonym=testimony.pseudonym)),
                  "success")
            return _back_to_record(testimony)
    return _record_again(testimony, revoke_form=(grant.id, form))


def _reason_text(reason: str | None) -> str:
    """A written reason as the audit log keeps it: on one line, spaces collapsed."""
    return " ".join((reason or "").split())


def _not_stored(response: Any) -> Any:
    """`response` marked for no cache to keep (every page is, by `secure_headers`; these say so themselves)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _file_name(pseudonym: str) -> str:
    return "record-" + "".join(c for c in pseudonym if c.isascii() and (c.isalnum() or c == "-")) + ".html"


@requires(Permission.COORDINATE)
@requires_step_up  # it shows who the person is
def reidentify(testimony_id: int) -> Any:
    testimony = _testimony_or_404(testimony_id)
    summary = summarise(testimony, with_exports=False)
    form = ReidentificationForm()
    if not form.validate_on_submit():
        return _not_stored(make_response(render_form("withdrawals/reidentification.html", form, summary=summary,
                                                     shown=False, identity=None)))
    view = open_record(g.account, testimony, COORDINATOR_PARTS[CoordinatorPurpose.REIDENTIFICATION],
                       config=current_app.config, purpose=CoordinatorPurpose.REIDENTIFICATION,
                       reason=_reason_text(form.reason.data))
    return _not_stored(make_response(render_template("withdrawals/reidentification.html", form=form,
                                                     summary=summary, shown=True, identity=view.identity)))


COPY_HELPERS: dict[str, Any] = {"f": interview_forms, "label": interview_forms.label, "day": day, "when": when,
                                "place_name": place_name, "incident_type_name": incident_type_name}


@requires(Permission.COORDINATE)
@requires_step_up  # it opens everything the person gave
def survivor_copy(testimony_id: int) -> Any:
    testimony = _testimony_or_404(testimony_id)
    summary = summarise(testimony, with_exports=False)
    form = SurvivorCopyForm()
    if not form.validate_on_submit():
        return _not_stored(make_response(render_form("withdrawals/survivor_copy_request.html", form,
                                                     summary=summary)))
    marks = active_spans(testimony.id)
    if any(mark.revision != testimony.revision for mark in marks):
        # Their offsets are of an earlier text: applied to this one they would remove the wrong words.
        attach_error(form, str(_l("A reviewer marked words of this record before it was last corrected. Ask a "
                                  "reviewer to check the marks on its narrative before giving the copy.")))
        return _not_stored(make_response(render_form("withdrawals/survivor_copy_request.html", form,
                                                     summary=summary, status=422)))
    view = open_record(g.account, testimony, COORDINATOR_PARTS[CoordinatorPurpose.SURVIVOR_COPY],
                       config=current_app.config, purpose=CoordinatorPurpose.SURVIVOR_COPY,
                       reason=_reason_text(form.reason.data))
    copy = own_data.survivor_copy(view, spans=[(s.start, s.stop) for s in marks],
                                  withdrawals=withdrawals_of(testimony.id), made_at=utcnow())
    document = render_template("withdrawals/survivor_copy.html", copy=copy, style=own_data.STYLE,
                               style_source=own_data.STYLE_SOURCE, **COPY_HELPERS)
    response = make_response(document)
    response.mimetype = "text/html"
    # The site's policy, allowing the copy's own styles (and no other inline style) by their hash.
    response.headers["Content-Security-Policy"] = CSP.replace("style-src 'self'",
                                                              f"style-src {own_data.STYLE_SOURCE}")
    if form.download.data:
        response.headers["Content-Disposition"] = f"attachment; filename={_file_name(testimony.pseudonym)}"
    return _not_stored(response)


# --- interviewer, for their own interviews ---------------------------------------------------------------------

@requires(Permission.RECORD_INTERVIEWS)
def interview_withdrawal(testimony_id: int) -> Any:
    return _withdrawal_page(_own_testimony(testimony_id), here="withdrawals.interview_withdrawal",
                            erasure="withdrawals.interview_erasure", coordinating=False)


@requires(Permission.RECORD_INTERVIEWS)
@requires_step_up
def interview_erasure(testimony_id: int) -> Any:
    return _erasure_page(_own_testimony(testimony_id), back="withdrawals.interview_withdrawal", coordinating=False)
