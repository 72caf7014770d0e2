"""Handlers of the reviewer's pages. The queue shows only the clear classification of the records a reviewer may
open; a record is read through `open_record`, which decides, decrypts content and attachments only, and audits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import (
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from intake.accounts.models import Account
from intake.consents.operations import InputRefused
from intake.core import vocabulary
from intake.core.access import Part, open_attachment, open_record
from intake.core.access.analysis import AnalysisView, SpanEntry
from intake.core.db import db, writes_on_get
from intake.core.pages import attach_error
from intake.core.security import Permission, requires
from intake.interviews import forms as interview_forms
from intake.interviews.controllers import day, incident_type_name, place_name, when
from intake.review import charts
from intake.review import operations as review
from intake.review.forms import (
    ASSESSMENT_LABELS,
    ASSESSMENT_TITLES,
    LINK_LABELS,
    REGION_LABELS,
    SPAN_LABELS,
    AssessmentForm,
    CodingForm,
    LinkForm,
    NoteForm,
    QueueForm,
    RemoveForm,
    SpanForm,
)
from intake.review.models import IdentifyingSpan, RecordLink
from intake.review.queries import filtered, listed_classification, queue_page, reviewable
from intake.testimonies.models import Attachment, Incident, Medium, Testimony

PURPOSE = "review"
PARTS = frozenset({Part.CONTENT, Part.ATTACHMENTS, Part.NOTES})


@dataclass(frozen=True)
class QueueEntry:
    id: int
    pseudonym: str
    submitted_at: datetime | None
    language: str | None
    status: str
    incident_types: list[str]
    attachments: int


def page_helpers() -> dict[str, Any]:
    return {"f": interview_forms, "label": interview_forms.label, "when": when, "day": day,
            "place_name": place_name, "incident_type_name": incident_type_name, "region_labels": REGION_LABELS,
            "assessment_labels": ASSESSMENT_LABELS, "assessment_titles": ASSESSMENT_TITLES,
            "link_labels": LINK_LABELS, "span_labels": SPAN_LABELS}


def _entries(testimonies: list[Testimony]) -> list[QueueEntry]:
    types, counts = listed_classification([t.id for t in testimonies])
    return [QueueEntry(t.id, t.pseudonym, t.submitted_at, t.language, t.status,
                       [incident_type_name(k) for k in types[t.id]], counts.get(t.id, 0)) for t in testimonies]


def _queue_address(*, before: int | None = None) -> str:
    """The current queue again: from its newest records, or continuing with those older than `before`."""
    kept: dict[str, Any] = {k: v for k, v in request.args.items() if v and k != "before"}
    if before is not None:
        kept["before"] = before
    return url_for("review.queue", **kept)


@requires(Permission.REVIEW_RECORDS)
def queue() -> Any:
    form = QueueForm(formdata=request.args)
    if not form.validate():
        return render_template("review/queue.html", form=form, entries=None), 400
    shown, more = queue_page(g.account, current_app.config["REVIEW_ASSIGNMENT_POLICY"], form.chosen(),
                             form.continue_from)
    return render_template(
        "review/queue.html", form=form, entries=_entries(shown),
        older_url=_queue_address(before=shown[-1].id) if more else None,
        newest_url=_queue_address() if form.continue_from is not None else None)


@requires(Permission.REVIEW_RECORDS)
@writes_on_get
def record(testimony_id: int) -> Any:
    return _record_page(_testimony_or_404(testimony_id))


# The extension of the neutral name each attachment is sent under, by the media type sniffed from its content at
# intake (`intake.testimonies.operations.ACCEPTED_MEDIA`); never the name the file was uploaded with.
ATTACHMENT_EXTENSIONS = {
    "image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/heif": "heif", "image/heic": "heic",
    "image/gif": "gif", "image/tiff": "tif", "audio/mpeg": "mp3", "audio/wave": "wav", "audio/x-wav": "wav",
    "audio/mp4": "m4a", "audio/flac": "flac", "audio/x-flac": "flac", "audio/aac": "aac", "application/ogg": "ogg",
    "audio/ogg": "ogg", "video/mp4": "mp4", "video/3gpp": "3gp", "video/quicktime": "mov", "video/webm": "webm",
    "application/x-matroska": "mkv", "application/pdf": "pdf",
}
# An attachment's own response may show itself and nothing else: no script, no styles, no frames, no forms, even in
# a file that only claims to be a photo. `sandbox` too, except for documents: browsers' PDF viewers refuse to run
# in a sandboxed document, and a PDF's scripts run inside the viewer, never in this site's origin.
ATTACHMENT_CSP = ("default-src 'none'; img-src 'self'; media-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                  "form-action 'none'")


@requires(Permission.REVIEW_RECORDS)
@writes_on_get
def attachment(testimony_id: int, attachment_id: int) -> Any:
    """One attachment's original, for the reviewer to see or hear it, sent as it is decrypted. Each fetch is
    audited (`open_attachment`), in the request's transaction, which commits before the first byte is sent."""
    testimony = _testimony_or_404(testimony_id)
    stored = db.session.get(Attachment, attachment_id)
    if stored is None:
        abort(404)
    opened = open_attachment(g.account, testimony, stored, config=current_app.config, purpose=PURPOSE)
    extension = ATTACHMENT_EXTENSIONS.get(opened.media_type)
    csp = ATTACHMENT_CSP if opened.medium == Medium.DOCUMENT else f"{ATTACHMENT_CSP}; sandbox"
    headers = {
        # A type this page does not know is never shown, only offered as a download.
        "Content-Disposition": f'{"inline" if extension else "attachment"}; '
                               f'filename="attachment-{opened.id}.{extension or "bin"}"',
        "Content-Security-Policy": csp,
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    if opened.size is not None:
        headers["Content-Length"] = str(opened.size)
    return Response(stream_with_context(opened.chunks), status=200,
                    content_type=opened.media_type if extension else "application/octet-stream", headers=headers)


# --- the reviewer's analysis: each change is a POST of its own that comes back to the record --------------------

@dataclass(frozen=True)
class Segment:
    """A piece of the narrative, and the identifying mark it lies under (None: unmarked)."""

    text: str
    span: SpanEntry | None


def narrative_segments(narrative: str, spans: list[SpanEntry]) -> list[Segment]:
    """The narrative cut at the identifying marks, so that the page can show them (overlaps go to the first)."""
    pieces: list[Segment] = []
    at = 0
    for span in sorted(spans, key=lambda s: s.start):
        if span.start < at or span.stop > len(narrative):
            continue
        pieces += [Segment(narrative[at:span.start], None), Segment(narrative[span.start:span.stop], span)]
        at = span.stop
    pieces.append(Segment(narrative[at:], None))
    return [p for p in pieces if p.text]


def _testimony_or_404(testimony_id: int) -> Testimony:
    testimony = db.session.get(Testimony, testimony_id)
    if testimony is None:
        abort(404)
    return testimony


def _record_page(testimony: Testimony, *, status: int = 200, **forms: Any) -> Any:
    """The record as the reviewer may see it, with their analysis and its forms (those given replace the blank
    ones, to show what was refused)."""
    view = open_record(g.account, testimony, PARTS, config=current_app.config, purpose=PURPOSE)
    analysis = view.analysis or AnalysisView()
    coding_forms = forms.pop("coding_forms", {})
    context = {
        "assessment_forms": {kind: forms.pop(f"assessment_{kind}", None) or AssessmentForm(kind, formdata=None)
                             for kind in ASSESSMENT_LABELS},
        "coding_forms": {i.id: coding_forms.get(i.id) or _coding_form(i.id, analysis, i, formdata=None)
                         for i in view.incidents},
        "link_form": forms.pop("link_form", None) or LinkForm(formdata=None),
        "span_form": forms.pop("span_form", None) or SpanForm(formdata=None),
        "note_form": forms.pop("note_form", None) or NoteForm(formdata=None),
        "remove_form": RemoveForm(formdata=None),
    }
    return render_template("review/record.html", view=view, analysis=analysis,
                           segments=narrative_segments(view.narrative or "", analysis.spans),
                           current_ids={e.id for e in analysis.current.values()},
                           reviewer_names=_names(analysis), **context), status


def _names(analysis: AnalysisView) -> dict[int | None, str]:
    """The usernames of the reviewers who wrote the analysis."""
    ids = {e.reviewer_id for e in analysis.history} | {n.author_id for n in analysis.notes} | {
        c.reviewer_id for entries in analysis.codings.values() for c in entries}
    ids.discard(None)
    if not ids:
        return {}
    return dict(db.session.execute(sa.select(Account.id, Account.username).where(Account.id.in_(ids))).all())


def _coding_form(incident_id: int, analysis: AnalysisView, incident: Any, **kwargs: Any) -> CodingForm:
    """The coding form of an incident, filled with its current coding (the reviewers' latest, else the source's)."""
    form = CodingForm(incident_id, **kwargs)
    if kwargs.get("formdata", True) is None:
        history = analysis.codings.get(incident_id)
        latest = history[0] if history else None
        form.type.data = latest.type if latest else incident.type
        form.month.data = (latest.month if latest else incident.month) or ""
        form.region.data = (latest.region if latest else incident.region) or ""
    return form


def _refused_into(form: Any, refused: InputRefused) -> None:
    for name, messages in refused.problems.items():
        for message in messages:
            attach_error(form, str(message), name or None)


def _back(testimony: Testimony, anchor: str) -> Any:
    return redirect(url_for("review.record", testimony_id=testimony.id, _anchor=anchor), code=303)


@requires(Permission.REVIEW_RECORDS)
def assess(testimony_id: int, kind: str) -> Any:
    testimony = _testimony_or_404(testimony_id)
    if kind not in ASSESSMENT_LABELS:
        abort(404)
    form = AssessmentForm(kind)
    if form.validate_on_submit():
        try:
            review.assess(testimony, kind, form.value.data or "", form.reason.data or "", actor=g.account,
                          config=current_app.config)
        except InputRefused as refused:
            _refused_into(form, refused)
        else:
            flash(str(_l("Saved: %(what)s.", what=ASSESSMENT_TITLES[kind])), "success")
            return _back(testimony, "assessment")
    return _record_page(testimony, status=422, **{f"assessment_{kind}": form})


@requires(Permission.REVIEW_RECORDS)
def code_incident(testimony_id: int, incident_id: int) -> Any:
    testimony = _testimony_or_404(testimony_id)
    review.may_analyse(testimony, g.account, current_app.config)  # before telling which ids exist
    incident = db.session.get(Incident, incident_id)
    if incident is None or incident.testimony_id != testimony.id:
        abort(404)
    form = CodingForm(incident.id)
    if form.validate_on_submit():
        try:
            review.correct_coding(testimony, incident, type=form.type.data or "", month=form.month.data or "",
                                  region=form.region.data or "", reason=form.reason.data or "", actor=g.account,
                                  config=current_app.config)
        except InputRefused as refused:
            _refused_into(form, refused)
        else:
            flash(str(_l("Your coding of the incident is saved. What the source said is kept as it was.")),
                  "success")
            return _back(testimony, f"incident-{incident.id}")
    return _record_page(testimony, status=422, coding_forms={incident.id: form})


@requires(Permission.REVIEW_RECORDS)
def link(testimony_id: int) -> Any:
    testimony = _testimony_or_404(testimony_id)
    form = LinkForm()
    if form.validate_on_submit():
        try:
            review.link(testimony, form.other.data or "", form.kind.data or "", form.reason.data or "",
                        actor=g.account, config=current_app.config)
        except InputRefused as refused:
            _refused_into(form, refused)
        else:
            flash(str(_l("The records are linked.")), "success")
            return _back(testimony, "links")
    return _record_page(testimony, status=422, link_form=form)


@requires(Permission.REVIEW_RECORDS)
def remove_link(testimony_id: int, link_id: int) -> Any:
    testimony = _testimony_or_404(testimony_id)
    review.may_analyse(testimony, g.account, current_app.config)  # before telling which ids exist
    row = db.session.get(RecordLink, link_id)
    if row is None or testimony.id not in (row.testimony_id, row.other_id):
        abort(404)
    if not RemoveForm().validate_on_submit():
        abort(400)
    try:
        review.remove_link(testimony, row, actor=g.account, config=current_app.config)
    except InputRefused:
        abort(404)
    flash(str(_l("The link is removed.")), "success")
    return _back(testimony, "links")


@requires(Permission.REVIEW_RECORDS)
def mark_span(testimony_id: int) -> Any:
    testimony = _testimony_or_404(testimony_id)
    form = SpanForm()
    if form.validate_on_submit():
        view = open_record(g.account, testimony, {Part.CONTENT}, config=current_app.config, purpose=PURPOSE)
        try:
            marked = review.mark_identifying(view, testimony, form.phrase.data or "", form.kind.data or "",
                                             actor=g.account, config=current_app.config)
        except InputRefused as refused:
            _refused_into(form, refused)
            db.session.rollback()  # the page below opens the record again: one event for what this request read
        else:
            flash(str(_l("Marked as identifying. Places newly marked in the narrative: %(count)s.", count=len(marked))),
                  "success")
            return _back(testimony, "narrative")
    return _record_page(testimony, status=422, span_form=form)


@requires(Permission.REVIEW_RECORDS)
def unmark_span(testimony_id: int, span_id: int) -> Any:
    testimony = _testimony_or_404(testimony_id)
    review.may_analyse(testimony, g.account, current_app.config)  # before telling which ids exist
    span = db.session.get(IdentifyingSpan, span_id)
    if span is None or span.testimony_id != testimony.id:
        abort(404)
    if not RemoveForm().validate_on_submit():
        abort(400)
    try:
        review.unmark_identifying(testimony, span, actor=g.account, config=current_app.config)
    except InputRefused:
        abort(404)
    flash(str(_l("The mark is removed.")), "success")
    return _back(testimony, "narrative")


@requires(Permission.REVIEW_RECORDS)
def add_note(testimony_id: int) -> Any:
    testimony = _testimony_or_404(testimony_id)
    form = NoteForm()
    if form.validate_on_submit():
        try:
            review.add_note(testimony, form.text.data or "", actor=g.account, config=current_app.config)
        except InputRefused as refused:
            _refused_into(form, refused)
        else:
            flash(str(_l("Your note is saved.")), "success")
            return _back(testimony, "notes")
    return _record_page(testimony, status=422, note_form=form)


# The incidents counted, apart from the `incidents` the queue's filters look into (`filtered`), so that those
# conditions stay about the record, as in the queue.
COUNTED = sa.orm.aliased(Incident, name="counted")


def _counts(column: Any, where: list[sa.ColumnElement[bool]]) -> dict[Any, int]:
    """Incidents per value of one of their clear columns (`counted.type`, `.month`, `.region`)."""
    query = (sa.select(column, sa.func.count()).select_from(COUNTED)
             .join(Testimony, Testimony.id == COUNTED.testimony_id).where(*where).group_by(column))
    return {value: int(count) for value, count in db.session.execute(query).all()}


def _overview_charts(chosen: dict[str, str | None]) -> tuple[int, list[charts.Chart], bool]:
    """The overview's charts for the queue's filters `chosen`: the incidents of the records the queue would list
    that match its incident filters, counted in SQL from their clear columns; their number; whether any has a month."""
    where = [reviewable(g.account, current_app.config["REVIEW_ASSIGNMENT_POLICY"]), *filtered(chosen)]
    for name, column in (("incident_type", COUNTED.type), ("month", COUNTED.month), ("region", COUNTED.region)):
        if chosen[name]:
            where.append(column == chosen[name])
    by_month = _counts(COUNTED.month, where)
    by_region = _counts(COUNTED.region, where)
    by_type = _counts(COUNTED.type, where)
    total = sum(by_type.values())
    months = charts.months_chart({m: c for m, c in by_month.items() if m is not None}, undated=by_month.get(None, 0))
    known = [*REGION_LABELS, *sorted(r for r in by_region if r is not None and r not in REGION_LABELS)]
    regions = [charts.Row(str(REGION_LABELS.get(r, r)), by_region.get(r, 0)) for r in known]
    if by_region.get(None):
        regions.append(charts.Row(_("Region not known"), by_region[None]))
    order = {t.id: i for i, t in enumerate(vocabulary.incident_types())}
    types = [charts.Row(incident_type_name(t), c)
             for t, c in sorted(by_type.items(), key=lambda tc: (-tc[1], order.get(tc[0], len(order)), tc[0]))]
    drawn = [] if months is None else [months]
    if total:
        drawn += [charts.categories_chart("regions", regions, title=_("Incidents by region"), heading=_("Region")),
                  charts.categories_chart("types", types, title=_("Incidents by type"), heading=_("Incident type"))]
    return total, drawn, months is not None


@requires(Permission.REVIEW_RECORDS)
def overview() -> Any:
    """Incidents over time, by region and by type, for the records the reviewer may see, with the queue's filters.
    Only clear classification is counted and nothing is opened, so nothing is audited (as for the queue)."""
    form = QueueForm(formdata=request.args)
    if not form.validate():
        return render_template("review/overview.html", form=form, total=None, charts=[], dated=False), 400
    total, drawn, dated = _overview_charts(form.chosen())
    return render_template("review/overview.html", form=form, total=total, counted=charts.number(total),
                           charts=drawn, dated=dated)
