"""Handlers of the export pages of a case: preview, build, follow, download and cancel a case file.

Only members of the case reach them (anyone else gets 404, as for a case that does not exist). The preview decrypts
nothing: it shows, from the consent's clear columns, which records would go to the chosen recipient for the chosen
purpose, at which disclosure, and why the others would not. Building needs a fresh two-factor code; the build runs
after the request that queued it has committed (`intake.exports.runner`), and its page follows its progress by
reloading itself (a meta refresh: no script). Every download is audited as a share (`open_download`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Response, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l

from intake.accounts.models import Account
from intake.cases.models import Case
from intake.cases.operations import NotAMember, case_for_member
from intake.consents.operations import InputRefused
from intake.core.db import db, writes_on_get
from intake.core.pages import attach_error
from intake.core.security import Permission, requires, requires_step_up
from intake.exports import operations as ops
from intake.exports import runner
from intake.exports.forms import (
    CANCEL_TEXTS,
    FAILURE_TEXTS,
    STATUS_LABELS,
    BuildForm,
    CancelForm,
    PreviewForm,
    reason_text,
)
from intake.exports.models import PENDING, Export, ExportRecord, ExportStatus
from intake.interviews.forms import DISCLOSURE_LABELS, PURPOSE_LABELS
from intake.recipients.models import Recipient
from intake.recipients.operations import active_recipients
from intake.testimonies.models import Testimony
from intake.withdrawals.forms import label_of

# Seconds between two reloads of the page of an export that is being built.
REFRESH_SECONDS = 3
DOWNLOAD_CHUNK = 256 * 1024
# States whose page reloads itself until the build ends.
IN_PROGRESS = frozenset({ExportStatus.QUEUED, ExportStatus.BUILDING})


def moment(value: datetime | date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M") + " UTC"
    return value.isoformat()


def file_size(size: int | None) -> str:
    """A file's size in the units people read (1 kB = 1000 bytes, as file managers show them)."""
    if size is None:
        return ""
    if size < 1000:
        return str(_l("%(size)s bytes", size=size))
    for unit, factor in (("kB", 10**3), ("MB", 10**6), ("GB", 10**9)):
        if size < factor * 1000 or unit == "GB":
            return f"{size / factor:.1f} {unit}"
    return str(size)  # pragma: no cover - the loop always returns


def page_helpers() -> dict[str, Any]:
    """What the export templates use to name stored values in the reader's language."""
    return {
        "status_label": lambda v: label_of(STATUS_LABELS, v),
        "purpose_label": lambda v: label_of(PURPOSE_LABELS, v),
        "disclosure_label": lambda v: label_of(DISCLOSURE_LABELS, v) if v else "",
        "failure_text": lambda v: label_of(FAILURE_TEXTS, v or "error"),
        "cancel_text": lambda v: label_of(CANCEL_TEXTS, v) if v else "",
        "reason_text": reason_text,
        "moment": moment,
        "file_size": file_size,
    }


def _case_or_404(case_id: int) -> Case:
    try:
        return case_for_member(case_id, g.account)
    except NotAMember:
        abort(404)


def _export_or_404(case: Case, export_id: int) -> Export:
    export = ops.export_in_case(case, export_id)
    if export is None:
        abort(404)
    return export


@dataclass(frozen=True)
class ExportRow:
    """An export of the case, as the list on the export page shows it."""

    id: int
    requested_at: datetime
    recipient: str
    purpose: str
    status: str
    records: int


@dataclass(frozen=True)
class RecordRow:
    """A record considered for a built export, with the decision taken when it was built."""

    pseudonym: str
    included: bool
    disclosure: str | None
    reason: str
    label: str | None
    withheld_attachments: int


def _recipient_names(ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = db.session.execute(sa.select(Recipient.id, Recipient.name).where(Recipient.id.in_(ids)))
    return {recipient_id: name for recipient_id, name in rows}


def _export_rows(case: Case) -> list[ExportRow]:
    exports = ops.exports_of(case)
    names = _recipient_names({e.recipient_id for e in exports})
    return [ExportRow(e.id, e.requested_at, names.get(e.recipient_id, ""), e.purpose, e.status, e.progress_total)
            for e in exports]


def _record_rows(export: Export) -> list[RecordRow]:
    records: list[ExportRecord] = ops.records_of(export)
    ids = {r.testimony_id for r in records}
    pseudonyms: dict[int, str] = {}
    if ids:
        rows = db.session.execute(sa.select(Testimony.id, Testimony.pseudonym).where(Testimony.id.in_(ids)))
        pseudonyms = {testimony_id: pseudonym for testimony_id, pseudonym in rows}
    return [RecordRow(pseudonyms.get(r.testimony_id, ""), r.included, r.disclosure, r.reason, r.label,
                      r.withheld_attachments) for r in records]


def _preview_context(case: Case, choice: tuple[int, str] | None) -> dict[str, Any]:
    """The preview of `choice` (recipient id, purpose), when one was made and is valid."""
    if choice is None:
        return {"rows": None}
    recipient = db.session.get(Recipient, choice[0])
    if recipient is None:
        return {"rows": None}
    purpose = ops.check_purpose(recipient, choice[1])
    rows = ops.preview(case, recipient, purpose)
    return {
        "rows": rows,
        "recipient": recipient,
        "purpose": purpose.value,
        "included": sum(1 for r in rows if r.included),
        "excluded": sum(1 for r in rows if not r.included),
        "attachments": sum(r.attachments for r in rows),
        "withheld": sum(r.withheld_attachments for r in rows),
    }


def _prepare_page(case: Case, form: PreviewForm, build_form: BuildForm, *, show_preview: bool,
                  status: int = 200) -> Any:
    """The export page: the choice of recipient and purpose, its preview when one is chosen, the case's exports."""
    context: dict[str, Any] = {"rows": None}
    if show_preview:
        try:
            context = _preview_context(case, form.chosen)
        except InputRefused as refused:  # a purpose the recipient is not for
            for messages in refused.problems.values():
                for message in messages:
                    attach_error(form, str(message), "to")
            status = 400
    shown = context["rows"] is not None
    build_form.to.data = form.to.data if shown else ""
    # Where step-up comes back to before the build: this preview, so the choice is not lost.
    here = url_for("exports.prepare", case_id=case.id, to=form.to.data) if shown else None
    return render_template("exports/prepare.html", case=case, form=form, build_form=build_form,
                           exports=_export_rows(case), here=here, **context), status


@requires(Permission.BUILD_CASE_FILES)
def prepare(case_id: int) -> Any:
    case = _case_or_404(case_id)
    recipients = active_recipients()
    build_form = BuildForm(recipients, formdata=None)
    if "to" not in request.args:
        form = PreviewForm(recipients, formdata=None)
        # The case's intended recipient, if it has one, is chosen already.
        form.to.data = next((value for value, _label in form.offered
                             if case.recipient_id is not None and value.startswith(f"{case.recipient_id}-")), "")
        return _prepare_page(case, form, build_form, show_preview=False)
    form = PreviewForm(recipients, formdata=request.args)
    if not form.validate():
        return _prepare_page(case, form, build_form, show_preview=False, status=400)
    return _prepare_page(case, form, build_form, show_preview=True)


@requires(Permission.BUILD_CASE_FILES)
@requires_step_up
def build(case_id: int) -> Any:
    case = _case_or_404(case_id)
    recipients = active_recipients()
    build_form = BuildForm(recipients)
    if build_form.validate_on_submit() and build_form.chosen is not None:
        recipient_id, purpose = build_form.chosen
        recipient = db.session.get(Recipient, recipient_id)
        try:
            if recipient is None:
                raise InputRefused.one("to", _l("Choose an active recipient and one of its purposes."))
            export = ops.request_export(case, recipient, purpose, actor=g.account)
        except InputRefused as refused:
            for messages in refused.problems.values():
                for message in messages:
                    attach_error(build_form, str(message))
        else:
            runner.schedule(export.id)
            flash(str(_l("The case file for %(recipient)s is being built.", recipient=recipient.name)), "success")
            return redirect(url_for("exports.export", case_id=case.id, export_id=export.id), code=303)
    # Refused, and nothing queued: the page again, with the preview of what was chosen and why not.
    chosen = build_form.chosen
    build_form.form_errors.extend(build_form.to.errors)  # a hidden field: its problem is shown above the button
    build_form.to.errors = []
    form = PreviewForm(recipients, formdata=None)
    form.to.data = build_form.to.data if chosen is not None else ""
    return _prepare_page(case, form, build_form, show_preview=chosen is not None, status=422)


@requires(Permission.BUILD_CASE_FILES)
def export(case_id: int, export_id: int) -> Any:
    case = _case_or_404(case_id)
    return _export_page(case, _export_or_404(case, export_id), CancelForm(formdata=None))


def _export_page(case: Case, export: Export, cancel_form: CancelForm, *, status: int = 200) -> Any:
    recipient = db.session.get(Recipient, export.recipient_id)
    requested_by = db.session.get(Account, export.requested_by_id) if export.requested_by_id else None
    state = ExportStatus(export.status)
    built = state in (ExportStatus.READY, ExportStatus.DOWNLOADED)
    return render_template(
        "exports/export.html", case=case, export=export, state=state, recipient=recipient,
        requested_by=requested_by.username if requested_by else None,
        records=_record_rows(export) if built else [], refresh=REFRESH_SECONDS if state in IN_PROGRESS else None,
        can_cancel=state in PENDING, cancel_form=cancel_form, file_name=ops.download_name(case, export),
        ExportStatus=ExportStatus), status


@requires(Permission.BUILD_CASE_FILES)
@writes_on_get  # each download is audited, and an expired file is marked so
def download(case_id: int, export_id: int) -> Any:
    case = _case_or_404(case_id)
    export = _export_or_404(case, export_id)
    try:
        path = ops.open_download(export, actor=g.account, config=current_app.config)
    except ops.NotDownloadable as refused:
        # Not yet built: 409 (it may be later). Cancelled, expired, failed or deleted: 410 (it never will be).
        code = 409 if export.status in IN_PROGRESS else 410
        return render_template("exports/not_downloadable.html", case=case, export=export,
                               message=refused.message), code
    response = Response(_file_chunks(path), mimetype="application/octet-stream", direct_passthrough=True)
    response.content_length = path.stat().st_size
    response.headers.set("Content-Disposition", "attachment", filename=ops.download_name(case, export))
    response.headers["Cache-Control"] = "no-store"
    return response


def _file_chunks(path: Path) -> Iterator[bytes]:
    """The file's bytes as they are sent: opened at the first read, closed at the end or when the client leaves
    (an answer never read, such as one to HEAD, opens nothing)."""
    with path.open("rb") as handle:
        while chunk := handle.read(DOWNLOAD_CHUNK):
            yield chunk


@requires(Permission.BUILD_CASE_FILES)
def cancel(case_id: int, export_id: int) -> Any:
    case = _case_or_404(case_id)
    export = _export_or_404(case, export_id)
    form = CancelForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        ops.cancel(export, actor=g.account, config=current_app.config)
    except InputRefused as refused:
        for messages in refused.problems.values():
            for message in messages:
                attach_error(form, str(message))
        return _export_page(case, export, form, status=422)
    flash(str(_l("The case file was cancelled: it cannot be downloaded, and its stored file is deleted.")),
          "success")
    return redirect(url_for("exports.export", case_id=case.id, export_id=export.id), code=303)
