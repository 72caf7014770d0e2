"""marshmallow schemas of the reviewer's API: the queue's filters, the reviewer's actions, and what is answered.

Requests are strict (an unknown field is an error) and check only their shape, as the interview API's do: the
grades, vocabularies, months and regions of an action are checked by `intake.review.operations`, which says what is
wrong in the reader's language. The queue's filters are checked here by the same rules as the queue page's form.
Nothing here ever carries an identity or the consent's particulars.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask_babel import lazy_gettext as _l
from marshmallow import Schema, ValidationError, fields, validate

from consent import scripts
from intake.core import gazetteer, vocabulary
from intake.interviews.schemas import IncidentRecordSchema, Strict, Text, Whole
from intake.review.forms import CHOOSE_LISTED, MONTH, STATUSES, teams
from intake.review.models import AssessmentKind, LinkKind, SpanKind


def _listed(codes: Iterable[str]) -> Any:
    """Empty (any) or one of `codes`; read when the request is, so that the vocabulary is the one loaded."""
    allowed = tuple(codes)

    def check(value: str) -> None:
        if value and value not in allowed:
            raise ValidationError(str(CHOOSE_LISTED))

    return check


def _incident_type(value: str) -> None:
    if value and vocabulary.incident_type(value) is None:
        raise ValidationError(str(CHOOSE_LISTED))


def _team(value: str) -> None:
    if value and value not in teams():
        raise ValidationError(str(CHOOSE_LISTED))


def _month(value: str) -> None:
    if value and not MONTH.match(value):
        raise ValidationError(str(_l("Enter a month as year-month, for example 2023-09.")))


def _filter(description: str, check: Any) -> Text:
    return Text(load_default="", validate=check, metadata={"description": description})


# --- requests ----------------------------------------------------------------------------------------------------


class QueueQuerySchema(Strict):
    """The queue's filters, as query parameters: each optional (empty or absent: any); the incident filters must all
    match one incident."""

    incident_type = _filter("A type of the incident vocabulary.", _incident_type)
    month = _filter("Month of an incident, YYYY-MM.", _month)
    region = _filter(", ".join(gazetteer.REGIONS) + ".", _listed(gazetteer.REGIONS))
    status = _filter(", ".join(STATUSES) + ".", _listed(STATUSES))
    language = _filter("Language of the interview: " + ", ".join(scripts.LANGUAGES) + ".",
                       _listed(scripts.LANGUAGES))
    team = _filter("The team of the interviewer who recorded it, one of those accounts belong to.", _team)
    before = Whole(strict=False, validate=validate.Range(
        min=1, max=10**18 - 1, error=_l("This page of results does not exist.")), metadata={
        "description": "Continue with records older than this id (the previous page's `next`)."})


class AssessmentRequestSchema(Strict):
    kind = Text(required=True, metadata={"description": ", ".join(k.value for k in AssessmentKind) + "."})
    value = Text(required=True, metadata={
        "description": "Reliability of the source A-F, credibility of the information 1-6, or a verification "
                       "status: unverified, corroborated, verified, disputed."})
    reason = Text(required=True, metadata={"description": "Why, in a sentence or two; sealed like the testimony."})


class CodingRequestSchema(Strict):
    type = Text(required=True, metadata={"description": "A type of the incident vocabulary."})
    month = Text(load_default="", metadata={"description": "YYYY-MM, or empty when not known."})
    region = Text(load_default="", metadata={"description": ", ".join(gazetteer.REGIONS) + ", or empty."})
    reason = Text(required=True, metadata={"description": "Why, in a sentence or two; sealed like the testimony."})


class LinkRequestSchema(Strict):
    other = Text(required=True, metadata={"description": "The other record's pseudonym code, e.g. KB-7F3Q-2K."})
    kind = Text(required=True, metadata={"description": ", ".join(k.value for k in LinkKind) + "."})
    reason = Text(required=True, metadata={"description": "Why, in a sentence or two; sealed like the testimony."})


class SpanRequestSchema(Strict):
    phrase = Text(required=True, metadata={
        "description": "Words of the narrative, as written, that identify someone: every place they occur is "
                       "marked, and exports below the confidential level replace them."})
    kind = Text(required=True, metadata={"description": ", ".join(k.value for k in SpanKind) + "."})


class NoteRequestSchema(Strict):
    text = Text(required=True, metadata={"description": "Only reviewers read it; sealed like the testimony."})


# --- answers -----------------------------------------------------------------------------------------------------


class QueueEntrySchema(Schema):
    id = fields.Integer(required=True)
    pseudonym = fields.String(required=True)
    submitted_at = fields.DateTime(allow_none=True)
    language = fields.String(allow_none=True)
    status = fields.String(required=True)
    incident_types = fields.List(fields.String(), metadata={"description": "Codes of the incident vocabulary."})
    attachments = fields.Integer(required=True, metadata={"description": "How many files are attached."})


class QueuePageSchema(Schema):
    records = fields.List(fields.Nested(QueueEntrySchema), required=True)
    next = fields.Integer(allow_none=True, metadata={
        "description": "Pass as `before` for the next (older) page; null on the last page."})


class AssessmentSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    value = fields.String(required=True)
    reason = fields.String()
    reviewer_id = fields.Integer(allow_none=True)
    at = fields.DateTime(required=True)


class CodingSchema(Schema):
    id = fields.Integer(required=True)
    incident_id = fields.Integer(required=True)
    type = fields.String(required=True)
    month = fields.String(allow_none=True)
    region = fields.String(allow_none=True)
    reason = fields.String()
    reviewer_id = fields.Integer(allow_none=True)
    at = fields.DateTime(required=True)


class LinkSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    other_id = fields.Integer(required=True, allow_none=True,
                              metadata={"description": "None when the caller may not open the other record."})
    other_pseudonym = fields.String(required=True, allow_none=True)
    outgoing = fields.Boolean(required=True, metadata={
        "description": "Recorded on this record (true) or on the other one (false)."})
    reason = fields.String(metadata={
        "description": "Empty when recorded on the other record: it is sealed under that record's key."})
    at = fields.DateTime(required=True)


class SpanSchema(Schema):
    id = fields.Integer(required=True)
    start = fields.Integer(required=True, metadata={"description": "Offset in the narrative (characters)."})
    stop = fields.Integer(required=True, metadata={"description": "Offset just past the span."})
    kind = fields.String(required=True)
    stale = fields.Boolean(required=True, metadata={
        "description": "Marked on an earlier revision of the narrative."})


class NoteSchema(Schema):
    id = fields.Integer(required=True)
    text = fields.String(required=True)
    author_id = fields.Integer(allow_none=True)
    at = fields.DateTime(required=True)


class AnalysisSchema(Schema):
    current = fields.Dict(keys=fields.String(), values=fields.Nested(AssessmentSchema), metadata={
        "description": "The current grade or status of each kind assessed: reliability, credibility, verification."})
    history = fields.List(fields.Nested(AssessmentSchema), metadata={"description": "Every assessment, newest first."})
    links = fields.List(fields.Nested(LinkSchema), metadata={"description": "Links in force."})
    spans = fields.List(fields.Nested(SpanSchema), metadata={"description": "Identifying spans in force."})
    notes = fields.List(fields.Nested(NoteSchema), metadata={"description": "Oldest first."})


class ReviewIncidentSchema(IncidentRecordSchema):
    """An incident as the source told it (as the interviewer's API gives it), and the reviewers' codings of it
    (newest first), kept apart."""

    codings = fields.List(fields.Nested(CodingSchema))


class ReviewAttachmentSchema(Schema):
    id = fields.Integer(required=True)
    medium = fields.String(required=True)
    graphic = fields.Boolean(required=True)
    created_at = fields.DateTime()
    sha256 = fields.String(metadata={"description": "SHA-256 of the file as received, hex."})
    size = fields.Integer()


class ReviewNarrativeSchema(Schema):
    narrative = fields.String()
    narrative_declined = fields.Boolean()


class ReviewRecordSchema(Schema):
    """A testimony as a reviewer opens it: what was told and the analysis of it, never who told it."""

    id = fields.Integer(required=True)
    pseudonym = fields.String(required=True)
    status = fields.String(required=True)
    revision = fields.Integer(required=True)
    language = fields.String(allow_none=True)
    interviewed_on = fields.Date(allow_none=True)
    submitted_at = fields.DateTime(allow_none=True)
    testimony = fields.Nested(ReviewNarrativeSchema)
    declined = fields.List(fields.String(), metadata={"description": "Questions the person declined."})
    incidents = fields.List(fields.Nested(ReviewIncidentSchema))
    attachments = fields.List(fields.Nested(ReviewAttachmentSchema))
    analysis = fields.Nested(AnalysisSchema)
