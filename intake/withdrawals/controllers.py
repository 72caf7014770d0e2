"""Handlers of the withdrawal pages: a coordinator's for any record, an interviewer's for their own interviews.

Nothing here decrypts: the pages show what is stored in clear (see `intake.withdrawals`). Finding a record by its
pseudonym is audited (`records_searched`, with the ids found); showing a record's clear metadata is not, as it
opens none of the parts `record_viewed` counts. Erasure is a page of its own that asks for a fresh two-factor code.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l

from intake.audit.controllers import details_text
from intake.audit.forms import action_label
from intake.consents.operations import InputRefused
from intake.core.access import Reason, refuse
from intake.core.audit import AuditAction, record_event
from intake.core.db import db, writes_on_get
from intake.core.pages import attach_error, render_form
from intake.core.security import Permission, requires, requires_step_up
from intake.testimonies.models import Testimony
from intake.withdrawals import RecordSummary, find_by_pseudonym, summarise, withdraw
from intake.withdrawals.forms import (
    DISCLOSURE_LABELS,
    MEDIUM_LABELS,
    PURPOSE_LABELS,
    RECEIVED_HOW_LABELS,
    STATUS_LABELS,
    ErasureForm,
    FindRecordForm,
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
    return render_form("withdrawals/record.html", form, summary=summary, coordinating=coordinating,
                       action=url_for(here, testimony_id=testimony.id),
                       erasure_url=url_for(erasure, testimony_id=testimony.id))


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


# --- interviewer, for their own interviews ---------------------------------------------------------------------

@requires(Permission.RECORD_INTERVIEWS)
def interview_withdrawal(testimony_id: int) -> Any:
    return _withdrawal_page(_own_testimony(testimony_id), here="withdrawals.interview_withdrawal",
                            erasure="withdrawals.interview_erasure", coordinating=False)


@requires(Permission.RECORD_INTERVIEWS)
@requires_step_up
def interview_erasure(testimony_id: int) -> Any:
    return _erasure_page(_own_testimony(testimony_id), back="withdrawals.interview_withdrawal", coordinating=False)
