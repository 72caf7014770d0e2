"""marshmallow schemas of the audit API."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from intake.audit import RECORD_ID, RECORD_TYPE
from intake.core.audit import AuditAction

MAX_PAGE = 200


class EventQuerySchema(Schema):
    """The search, as query parameters. Days are whole UTC days, both included."""

    class Meta:
        unknown = RAISE  # a misspelt parameter is an error, never silently a wider search

    actor = fields.String(validate=validate.Length(min=1, max=64),
                          metadata={"description": "Username of the account that acted."})
    target_type = fields.String(validate=validate.Regexp(RECORD_TYPE.pattern + r"\Z"),
                                metadata={"description": "Kind of record, as events store it (e.g. testimony)."})
    target_id = fields.String(validate=validate.Regexp(RECORD_ID.pattern + r"\Z"),
                              metadata={"description": "Record id or pseudonym."})
    action = fields.String(validate=validate.OneOf([str(a) for a in AuditAction]))
    since = fields.Date(metadata={"description": "First day (UTC), YYYY-MM-DD."})
    until = fields.Date(metadata={"description": "Last day (UTC, included), YYYY-MM-DD."})
    before = fields.Integer(validate=validate.Range(min=1),
                            metadata={"description": "Continue with events older than this sequence number "
                                                     "(the previous page's next_before)."})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_PAGE))

    @validates_schema
    def _days_in_order(self, data: dict[str, Any], **_kwargs: Any) -> None:
        since, until = data.get("since"), data.get("until")
        if since is not None and until is not None and until < since:
            raise ValidationError(str(_l("The end date is before the start date.")), field_name="until")


class EventSchema(Schema):
    """One event as the log stores it (times and roles in their hashed form), with the actor's username."""

    seq = fields.Integer(required=True)
    occurred_at = fields.String(required=True, metadata={"description": "UTC, YYYY-MM-DDTHH:MM:SS.ffffffZ."})
    actor_id = fields.Integer(allow_none=True)
    actor_username = fields.String(allow_none=True)
    actor_roles = fields.String(metadata={"description": "The actor's roles then, comma-separated."})
    action = fields.String(required=True)
    target_type = fields.String(allow_none=True)
    target_ids = fields.List(fields.Raw())
    reason = fields.String(allow_none=True)
    details = fields.Dict(keys=fields.String(), values=fields.Raw())
    request_id = fields.String(allow_none=True)
    entry = fields.String(metadata={"description": "The stored text the hash covers (see the extract's "
                                                   "how_to_verify)."})
    prev_hash = fields.String(metadata={"description": "Hex."})
    hash = fields.String(metadata={"description": "Hex."})


class EventPageSchema(Schema):
    events = fields.List(fields.Nested(EventSchema), required=True)
    next_before = fields.Integer(allow_none=True, metadata={
        "description": "Pass as `before` for the next (older) page; null on the last page."})


class ViewerSchema(Schema):
    actor_id = fields.Integer(allow_none=True)
    actor_username = fields.String(allow_none=True)
    actor_roles = fields.String()
    views = fields.Integer(required=True)
    first = fields.String(required=True)
    last = fields.String(required=True)
    parts = fields.List(fields.String())


class RecordSchema(Schema):
    type = fields.String(required=True)
    id = fields.String(required=True)


class RecordHistorySchema(Schema):
    record = fields.Nested(RecordSchema, required=True)
    viewers = fields.List(fields.Nested(ViewerSchema), required=True,
                          metadata={"description": "Who saw or received the record, most recent first."})
    events = fields.List(fields.Nested(EventSchema), required=True, metadata={"description": "Oldest first."})


class ProblemSchema(Schema):
    code = fields.String(required=True)
    seq = fields.Integer(allow_none=True)
    checkpoint = fields.Integer(allow_none=True)
    message = fields.String(required=True)


class VerificationSchema(Schema):
    ok = fields.Boolean(required=True)
    events = fields.Integer(required=True)
    checkpoints = fields.Integer(required=True)
    file_checkpoints = fields.Integer(required=True)
    seconds = fields.Float(required=True)
    events_per_second = fields.Float(required=True)
    first_bad_seq = fields.Integer(allow_none=True)
    latest_checkpoint_size = fields.Integer()
    total_problems = fields.Integer(required=True, metadata={"description": "Problems found; `problems` lists the "
                                                             "first 50 in log order."})
    problems = fields.List(fields.Nested(ProblemSchema), required=True)
    warnings = fields.List(fields.String(), required=True, metadata={
        "description": "What is not wrong but worth knowing (events not yet covered by a checkpoint, checkpoints "
                       "missing from the checkpoint file)."})


class CheckpointSchema(Schema):
    id = fields.Integer(required=True)
    created_at = fields.String(required=True)
    tree_size = fields.Integer(required=True)
    root_hash = fields.String(required=True, metadata={"description": "Hex."})
    note = fields.String(required=True, metadata={"description": "The C2SP signed checkpoint note."})


class CheckpointListSchema(Schema):
    checkpoints = fields.List(fields.Nested(CheckpointSchema), required=True, metadata={"description": "Newest first."})
    verifier_key = fields.String(required=True, metadata={"description": "C2SP verifier key of the notes."})
