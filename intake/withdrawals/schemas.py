"""marshmallow schemas of the coordination API: a record's clear metadata, and a withdrawal."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from consent.records import Purpose


class CoordinationWithdrawalRequestSchema(Schema):
    """A withdrawal as the person asked for it. The values are checked, with messages in the caller's language, by
    the same rules as the pages'."""

    class Meta:
        unknown = RAISE  # a misspelt field is an error, never silently a wider or narrower withdrawal

    purposes = fields.List(fields.String(validate=validate.Length(max=64)), load_default=list,
                           validate=validate.Length(max=len(Purpose)),
                           metadata={"description": "Purposes withdrawn, among those the consent granted; empty or "
                                                    "absent: every purpose."})
    received_how = fields.String(load_default="", validate=validate.Length(max=32), metadata={
        "description": "How the request reached us: in_person, phone, message, letter or through_someone."})
    erasure = fields.Boolean(load_default=False, metadata={
        "description": "The person asks for their data to be erased. Not possible through the API (it needs a "
                       "fresh two-factor code): answered 403."})


class CoordinationWithdrawalSchema(Schema):
    id = fields.Integer(required=True)
    at = fields.DateTime(required=True)
    purposes = fields.List(fields.String(), required=True, metadata={"description": "Empty: every purpose."})
    received_how = fields.String(required=True)
    erasure = fields.Boolean(required=True)


class CoordinationWithdrawalEntrySchema(CoordinationWithdrawalSchema):
    recorded_by = fields.String(allow_none=True, metadata={"description": "Username of who recorded it."})


class CoordinationConsentSchema(Schema):
    number = fields.Integer(required=True)
    recorded_at = fields.DateTime(required=True)
    script_language = fields.String(required=True)
    grants = fields.Method("_grants", metadata={"description": "Purposes granted, each with its disclosure level."})
    media = fields.List(fields.String(), required=True)

    def _grants(self, consent: object) -> list[dict[str, str]]:
        return [{"purpose": p, "disclosure": d} for p, d in getattr(consent, "grants", {}).items()]


class CoordinationExportSchema(Schema):
    seq = fields.Integer(required=True, metadata={"description": "The audit event's sequence number."})
    at = fields.DateTime(required=True)
    action = fields.String(required=True)
    actor = fields.String(allow_none=True, metadata={"description": "Username of who exported or shared it."})
    details = fields.Dict(keys=fields.String(), values=fields.Raw())


class CoordinationRecordSchema(Schema):
    id = fields.Integer(required=True)
    pseudonym = fields.String(required=True)
    status = fields.String(required=True)
    interviewed_on = fields.Date(allow_none=True)
    language = fields.String(allow_none=True)
    interviewer = fields.String(allow_none=True, metadata={"description": "Username of the interviewer."})
    erased = fields.Boolean(required=True)
    erased_at = fields.DateTime(allow_none=True)
    consents = fields.List(fields.Nested(CoordinationConsentSchema), required=True,
                           metadata={"description": "Consent versions, oldest first."})
    withdrawals = fields.List(fields.Nested(CoordinationWithdrawalEntrySchema), required=True,
                              metadata={"description": "Oldest first."})
    purposes_in_force = fields.List(fields.String(), attribute="in_force", metadata={
        "description": "Granted purposes not withdrawn so far."})
    exports = fields.List(fields.Nested(CoordinationExportSchema), required=True, metadata={
        "description": "Audit events of exports and shares that included the record, oldest first: whom to tell "
                       "of a withdrawal."})
