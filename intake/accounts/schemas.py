"""marshmallow schemas of the accounts API."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from config.settings import LOCALES


class MeSchema(Schema):
    id = fields.Integer(required=True)
    username = fields.String(required=True)
    roles = fields.List(fields.String(), required=True, attribute="role_names")
    permissions = fields.Method("_permissions")
    locale = fields.String(allow_none=True)

    def _permissions(self, account: object) -> list[str]:
        return sorted(str(p) for p in getattr(account, "permissions", ()))


class MePatchSchema(Schema):
    """What the caller may change about their own account through the API: the interface language."""

    class Meta:
        unknown = RAISE  # a misspelt or unsupported field is an error, never silently ignored

    locale = fields.String(required=True, validate=validate.OneOf(LOCALES),
                           metadata={"description": "Preferred interface language."})


class TokenSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(required=True)
    revoked_at = fields.DateTime(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True)
