"""API routes of the reviewer's workspace: the queue, a record, and the reviewer's analysis of it.

The same rules and audit events as the reviewer's pages. The queue lists only the clear classification of the
records the caller may review (nothing is opened, so nothing is audited); a record is read through
`intake.core.access.open_record`, which decides, decrypts the content, attachments and analysis only (never an
identity, nor the consent's particulars) and records the reading. Every action goes through
`intake.review.operations`, in the request's single transaction: a refusal (403, audited) or bad input (422, naming
each field) stores nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from flask import current_app, g
from flask.views import MethodView
from flask_babel import lazy_gettext as _l
from marshmallow import RAISE
from webargs.flaskparser import abort  # flask-smorest's abort, typed

from intake.api.body import require_json_body
from intake.consents.operations import InputRefused
from intake.core.access import Part, RecordView, open_record, require
from intake.core.access.analysis import AnalysisView, AssessmentEntry, CodingEntry, LinkEntry, NoteEntry, SpanEntry
from intake.core.db import db, writes_on_get
from intake.core.errors import INVALID_FIELDS, problem
from intake.core.limits import api_limit, limiter
from intake.core.security import Permission, requires
from intake.interviews.api import InterviewBlueprint
from intake.review import operations as ops
from intake.review.models import IdentifyingSpan, RecordLink
from intake.review.queries import listed_classification, queue_page
from intake.review.schemas import (
    AssessmentRequestSchema,
    AssessmentSchema,
    CodingRequestSchema,
    CodingSchema,
    LinkRequestSchema,
    LinkSchema,
    NoteRequestSchema,
    NoteSchema,
    QueuePageSchema,
    QueueQuerySchema,
    ReviewRecordSchema,
    SpanRequestSchema,
    SpanSchema,
)
from intake.testimonies.models import Incident, Testimony

PURPOSE = ops.PURPOSE
# What a reviewer's reading of a record opens: what was told, the files' details, and the analysis.
RECORD_PARTS = frozenset({Part.CONTENT, Part.ATTACHMENTS, Part.NOTES})
# The queue's filters, as `filtered` reads them.
FILTERS = ("incident_type", "month", "region", "status", "language", "team")

NO_SUCH_RECORD = _l("There is no testimony with this id.")
NO_SUCH_INCIDENT = _l("This record has no incident with this id.")
NO_SUCH_LINK = _l("This record has no link with this id.")
NO_SUCH_SPAN = _l("This record has no identifying mark with this id.")

# Errors name each field by its path in the request, as the interview API's do.
blp = InterviewBlueprint("api_review", __name__, url_prefix="/api/v1/review",
                         description="The reviewer's workspace: the queue, a record, and the analysis of it")
limiter.limit(api_limit)(blp)
blp.before_request(require_json_body)


# --- loading and refusing ----------------------------------------------------------------------------------------

def _not_found(message: Any) -> NoReturn:
    abort(404, message=str(message))


def _testimony(testimony_id: int) -> Testimony:
    testimony = db.session.get(Testimony, testimony_id)
    if testimony is None:
        _not_found(NO_SUCH_RECORD)
    return testimony


def _analysable(testimony_id: int) -> Testimony:
    """The record, once the caller may analyse it: otherwise 403 (audited) before anything else is looked at."""
    testimony = _testimony(testimony_id)
    require(g.account, testimony, {Part.NOTES}, config=current_app.config, purpose=PURPOSE)
    return testimony


def _errors(refused: InputRefused) -> tuple[str | None, dict[str, list[str]]]:
    """A refusal's message about the request as a whole (if any), and its messages by field, named as the request
    names them."""
    whole = [str(m) for m in refused.problems.get("", [])]
    return (whole[0] if whole else None,
            {name: [str(m) for m in messages] for name, messages in refused.problems.items() if name})


@contextmanager
def _refusals() -> Iterator[None]:
    """Answer an operation's refusal of what was sent: 422, naming each field as the request does."""
    try:
        yield
    except InputRefused as refused:
        message, errors = _errors(refused)
        if message is not None:
            abort(422, message=message, messages=errors)
        abort(422, messages=errors)


# --- answers -----------------------------------------------------------------------------------------------------

def _assessment(entry: AssessmentEntry) -> dict[str, Any]:
    return {"id": entry.id, "kind": entry.kind, "value": entry.value, "reason": entry.reason,
            "reviewer_id": entry.reviewer_id, "at": entry.at}


def _coding(entry: CodingEntry) -> dict[str, Any]:
    return {"id": entry.id, "incident_id": entry.incident_id, "type": entry.type, "month": entry.month,
            "region": entry.region, "reason": entry.reason, "reviewer_id": entry.reviewer_id, "at": entry.at}


def _link(entry: LinkEntry) -> dict[str, Any]:
    return {"id": entry.id, "kind": entry.kind, "other_id": entry.other_id, "other_pseudonym": entry.other_pseudonym,
            "outgoing": entry.outgoing, "reason": entry.reason, "at": entry.at}


def _span(entry: SpanEntry) -> dict[str, Any]:
    return {"id": entry.id, "start": entry.start, "stop": entry.stop, "kind": entry.kind, "stale": entry.stale}


def _note(entry: NoteEntry) -> dict[str, Any]:
    return {"id": entry.id, "text": entry.text, "author_id": entry.author_id, "at": entry.at}


# The incident details a reviewer reads: what the source said about it, nothing else that may be sealed with it.
INCIDENT_FIELDS = ("description", "date", "place", "victims", "perpetrators", "source_relation", "declined")


def _record_json(view: RecordView) -> dict[str, Any]:
    """What a reviewer reads of an opened record. Built field by field from the parts a reviewer may open, so that
    nothing else the view might hold (an identity, the consent's particulars) can reach the answer."""
    analysis = view.analysis or AnalysisView()
    declined = list(view.details.get("declined") or [])
    return {
        "id": view.id, "pseudonym": view.pseudonym, "status": view.status, "revision": view.revision,
        "language": view.language, "interviewed_on": view.interviewed_on, "submitted_at": view.submitted_at,
        "testimony": {"narrative": view.narrative or "", "narrative_declined": "narrative" in declined},
        "declined": declined,
        "incidents": [{"id": i.id, "type": i.type, "month": i.month, "region": i.region,
                       **{name: i.details[name] for name in INCIDENT_FIELDS if name in i.details},
                       "codings": [_coding(c) for c in analysis.codings.get(i.id, [])]}
                      for i in view.incidents],
        "attachments": [{"id": a.id, "medium": a.medium, "graphic": a.graphic, "created_at": a.created_at,
                         "sha256": (a.details.get("digest") or {}).get("value", ""),
                         "size": a.details.get("size", 0)} for a in view.attachments],
        "analysis": {"current": {kind: _assessment(e) for kind, e in analysis.current.items()},
                     "history": [_assessment(e) for e in analysis.history],
                     "links": [_link(e) for e in analysis.links],
                     "spans": [_span(e) for e in analysis.spans],
                     "notes": [_note(e) for e in analysis.notes]},
    }


def _queue_json(testimonies: list[Testimony]) -> list[dict[str, Any]]:
    """The clear classification of each listed record: its incident types (codes, in the order told) and how many
    files it has."""
    types, counts = listed_classification([t.id for t in testimonies])
    return [{"id": t.id, "pseudonym": t.pseudonym, "submitted_at": t.submitted_at, "language": t.language,
             "status": t.status, "incident_types": types[t.id], "attachments": counts.get(t.id, 0)}
            for t in testimonies]


# --- the queue and a record --------------------------------------------------------------------------------------

@blp.route("/records")
class Records(MethodView):
    @requires(Permission.REVIEW_RECORDS)
    @blp.arguments(QueueQuerySchema, location="query", unknown=RAISE)  # a misspelt filter is never a wider list
    @blp.response(200, QueuePageSchema)
    def get(self, query: dict[str, Any]) -> Any:
        """The records the caller may review, newest first, a page at a time, filtered by their clear
        classification only. Nothing is opened, so nothing is recorded."""
        chosen = {name: query.get(name) or None for name in FILTERS}
        shown, more = queue_page(g.account, current_app.config["REVIEW_ASSIGNMENT_POLICY"], chosen,
                                 query.get("before"))
        return {"records": _queue_json(shown), "next": shown[-1].id if more and shown else None}


@blp.route("/records/<int:testimony_id>")
class RecordItem(MethodView):
    decorators = [writes_on_get]  # each reading is recorded

    @requires(Permission.REVIEW_RECORDS)
    @blp.response(200, ReviewRecordSchema)
    def get(self, testimony_id: int) -> Any:
        """The testimony as told (narrative, questions declined, incidents), its attachments' details (never their
        names) and the reviewers' analysis: grades and verification with their reasons and history, codings,
        links, identifying spans and notes. Never who gave it. The reading is recorded; a record the caller may not
        review is a 403, and the refusal is recorded."""
        view = open_record(g.account, _testimony(testimony_id), RECORD_PARTS, config=current_app.config,
                           purpose=PURPOSE)
        return _record_json(view)


# --- the reviewer's analysis -------------------------------------------------------------------------------------

@blp.route("/records/<int:testimony_id>/assessments")
class Assessments(MethodView):
    @requires(Permission.REVIEW_RECORDS)
    @blp.arguments(AssessmentRequestSchema)
    @blp.response(201, AssessmentSchema)
    def post(self, given: dict[str, Any], testimony_id: int) -> Any:
        """Grade the source's reliability (A-F) or the information's credibility (1-6), or set the verification
        status, with the reason. The newest of each kind is the current one; the others stay as its history."""
        testimony = _analysable(testimony_id)
        with _refusals():
            row = ops.assess(testimony, given["kind"], given["value"], given["reason"], actor=g.account,
                             config=current_app.config)
        return {"id": row.id, "kind": row.kind, "value": row.value, "reason": given["reason"].strip(),
                "reviewer_id": row.reviewer_id, "at": row.created_at}


@blp.route("/records/<int:testimony_id>/incidents/<int:incident_id>/codings")
class Codings(MethodView):
    @requires(Permission.REVIEW_RECORDS)
    @blp.arguments(CodingRequestSchema)
    @blp.response(201, CodingSchema)
    def post(self, given: dict[str, Any], testimony_id: int, incident_id: int) -> Any:
        """Code an incident as the reviewer reads it (type, month, region), with the reason; what the source said
        of it stays as it was."""
        testimony = _analysable(testimony_id)
        incident = db.session.get(Incident, incident_id)
        if incident is None or incident.testimony_id != testimony.id:
            _not_found(NO_SUCH_INCIDENT)
        with _refusals():
            row = ops.correct_coding(testimony, incident, type=given["type"], month=given["month"].strip(),
                                     region=given["region"].strip(), reason=given["reason"], actor=g.account,
                                     config=current_app.config)
        return {"id": row.id, "incident_id": row.incident_id, "type": row.type, "month": row.month,
                "region": row.region, "reason": given["reason"].strip(), "reviewer_id": row.reviewer_id,
                "at": row.created_at}


@blp.route("/records/<int:testimony_id>/links")
class Links(MethodView):
    @requires(Permission.REVIEW_RECORDS)
    @blp.arguments(LinkRequestSchema)
    @blp.response(201, LinkSchema)
    def post(self, given: dict[str, Any], testimony_id: int) -> Any:
        """Say that another record the caller may review, named by its pseudonym code, corroborates or duplicates
        this one. The same link twice is refused."""
        testimony = _analysable(testimony_id)
        with _refusals():
            row = ops.link(testimony, given["other"], given["kind"], given["reason"], actor=g.account,
                           config=current_app.config)
        return {"id": row.id, "kind": row.kind, "other_id": row.other_id, "other_pseudonym": row.other.pseudonym,
                "outgoing": True, "reason": given["reason"].strip(), "at": row.created_at}


@blp.route("/records/<int:testimony_id>/links/<int:link_id>")
class LinkItem(MethodView):
    @requires(Permission.REVIEW_RECORDS)
    @blp.response(204)
    def delete(self, testimony_id: int, link_id: int) -> None:
        """Remove a link in force on this record (made from either record); who removed it, and when, is kept.
        A link removed already is a 422."""
        testimony = _analysable(testimony_id)
        row = db.session.get(RecordLink, link_id)
        if row is None or testimony.id not in (row.testimony_id, row.other_id):
            _not_found(NO_SUCH_LINK)
        with _refusals():
            ops.remove_link(testimony, row, actor=g.account, config=current_app.config)


@blp.route("/records/<int:testimony_id>/identifying-spans")
class IdentifyingSpans(MethodView):
    @requires(Permission.REVIEW_RECORDS)
    @blp.arguments(SpanRequestSchema)
    @blp.response(201, SpanSchema(many=True))
    def post(self, given: dict[str, Any], testimony_id: int) -> Any:
        """Mark every place the phrase occurs in the narrative as identifying, so that exports below the
        confidential level replace it; answers the marks made (none for places already marked). The narrative is
        read to find the phrase, and that reading is recorded, also when the phrase is refused."""
        testimony = _analysable(testimony_id)
        view = open_record(g.account, testimony, {Part.CONTENT}, config=current_app.config, purpose=PURPOSE)
        try:
            rows = ops.mark_identifying(view, testimony, given["phrase"], given["kind"], actor=g.account,
                                        config=current_app.config)
        except InputRefused as refused:
            # Answered, not raised: the refusal says whether the words are in the narrative, so the reading that
            # found out stays recorded (the operation wrote nothing else before refusing).
            message, errors = _errors(refused)
            return problem(422, message or str(INVALID_FIELDS), errors=errors)
        return [{"id": s.id, "start": s.start, "stop": s.stop, "kind": s.kind, "stale": False} for s in rows]


@blp.route("/records/<int:testimony_id>/identifying-spans/<int:span_id>")
class IdentifyingSpanItem(MethodView):
    @requires(Permission.REVIEW_RECORDS)
    @blp.response(204)
    def delete(self, testimony_id: int, span_id: int) -> None:
        """Remove an identifying mark in force on this record; who removed it, and when, is kept. A mark removed
        already is a 422."""
        testimony = _analysable(testimony_id)
        span = db.session.get(IdentifyingSpan, span_id)
        if span is None or span.testimony_id != testimony.id:
            _not_found(NO_SUCH_SPAN)
        with _refusals():
            ops.unmark_identifying(testimony, span, actor=g.account, config=current_app.config)


@blp.route("/records/<int:testimony_id>/notes")
class Notes(MethodView):
    @requires(Permission.REVIEW_RECORDS)
    @blp.arguments(NoteRequestSchema)
    @blp.response(201, NoteSchema)
    def post(self, given: dict[str, Any], testimony_id: int) -> Any:
        """Add an analyst's note: only reviewers read it, and it is sealed like the testimony."""
        testimony = _analysable(testimony_id)
        with _refusals():
            row = ops.add_note(testimony, given["text"], actor=g.account, config=current_app.config)
        return {"id": row.id, "text": given["text"].strip(), "author_id": row.author_id, "at": row.created_at}
