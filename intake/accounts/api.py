"""API routes about the calling account: who am I, my tokens."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from flask_babel import lazy_gettext as _l
from flask_smorest import Blueprint, abort

from intake.accounts import operations as ops
from intake.accounts.schemas import MePatchSchema, MeSchema, TokenSchema
from intake.api.body import require_json_body
from intake.core.limits import api_limit, limiter
from intake.core.security import Permission, requires

blp = Blueprint("api_accounts", __name__, url_prefix="/api/v1", description="The calling account")
limiter.limit(api_limit)(blp)
blp.before_request(require_json_body)


@blp.route("/me")
class Me(MethodView):
    @requires(Permission.OWN_ACCOUNT)
    @blp.response(200, MeSchema)
    def get(self) -> Any:
        """The account the token belongs to, with its roles and permissions."""
        return g.account

    @requires(Permission.OWN_ACCOUNT)
    @blp.arguments(MePatchSchema)
    @blp.response(200, MeSchema)
    def patch(self, changes: dict[str, Any]) -> Any:
        """Set the caller's preferred interface language (as the language switch does for a signed-in person)."""
        g.account.locale = changes["locale"]
        return g.account


@blp.route("/tokens")
class Tokens(MethodView):
    @requires(Permission.OWN_ACCOUNT)
    @blp.response(200, TokenSchema(many=True))
    def get(self) -> Any:
        """The caller's personal API tokens (never their values)."""
        return ops.api_tokens_of(g.account)


@blp.route("/tokens/<int:token_id>")
class TokenItem(MethodView):
    @requires(Permission.OWN_ACCOUNT)
    @blp.response(204)
    def delete(self, token_id: int) -> None:
        """Revoke one of the caller's tokens (it may be the one in use)."""
        token = ops.own_api_token(g.account, token_id)
        if token is None:
            abort(404, message=str(_l("You have no token with this id.")))
            return
        ops.revoke_api_token(token, actor=g.account)
