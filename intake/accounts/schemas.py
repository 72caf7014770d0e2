"""marshmallow schemas of the accounts API."""

from __future__ import annotations

from marshmallow import Schema, fields


class MeSchema(Schema):
    id = fields.Integer(required=True)
    username = fields.String(required=True)
    roles = fields.List(fields.String(), required=True, attribute="role_names")
    permissions = fields.Method("_permissions")
    locale = fields.String(allow_none=True)

    def _permissions(self, account: object) -> list[str]:
        return sorted(str(p) for p in getattr(account, "permissions", ()))


class TokenSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(required=True)
    revoked_at = fields.DateTime(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True)
