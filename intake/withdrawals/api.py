"""API routes of survivors' requests for coordinators: a record's clear metadata, and recording a withdrawal.

The same rules and audit events as the coordinator's pages. Erasure needs a fresh two-factor code, which a bearer
token cannot give, so it is refused here with 403, as the request pipeline refuses every step-up action on the API.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, g
from flask.views import MethodView
from flask_babel import lazy_gettext as _l
from flask_smorest import Blueprint, abort
from werkzeug.exceptions import Forbidden

from intake.api.body import require_json_body
from intake.consents.operations import InputRefused
from intake.core.db import db
from intake.core.limits import api_limit, limiter
from intake.core.security import Permission, requires
from intake.testimonies.models import Testimony
from intake.withdrawals import AlreadyErased, summarise, withdraw
from intake.withdrawals.schemas import (
    CoordinationRecordSchema,
    CoordinationWithdrawalRequestSchema,
    CoordinationWithdrawalSchema,
)

blp = Blueprint("api_withdrawals", __name__, url_prefix="/api/v1/coordination/testimonies",
                description="Survivors' requests: withdrawal of consent")
limiter.limit(api_limit)(blp)
blp.before_request(require_json_body)


def _testimony_or_404(testimony_id: int) -> Testimony:
    testimony = db.session.get(Testimony, testimony_id)
    if testimony is None:
        abort(404, message=str(_l("There is no testimony with this id.")))
    return testimony  # type: ignore[return-value]  # abort raises


@blp.route("/<int:testimony_id>")
class CoordinationRecord(MethodView):
    @requires(Permission.COORDINATE)
    @blp.response(200, CoordinationRecordSchema)
    def get(self, testimony_id: int) -> Any:
        """What a withdrawal needs to know about a testimony, all of it stored in clear: pseudonym, status, interview
        date, language, interviewer, consent versions, withdrawals so far, and the exports that included it.

        No testimony content or identity is decrypted or returned."""
        return summarise(_testimony_or_404(testimony_id))


@blp.route("/<int:testimony_id>/withdrawals")
class CoordinationWithdrawals(MethodView):
    @requires(Permission.COORDINATE)
    @blp.arguments(CoordinationWithdrawalRequestSchema)
    @blp.response(201, CoordinationWithdrawalSchema)
    def post(self, given: dict[str, Any], testimony_id: int) -> Any:
        """Record that the person withdrew consent, for every purpose (no `purposes`) or for some of those granted.

        It takes effect on the next request and is audited. `erasure` is refused with 403: erase through the web
        interface, which asks for a fresh two-factor code. A record already erased answers 409."""
        testimony = _testimony_or_404(testimony_id)
        if given["erasure"]:
            raise Forbidden(description=str(_l("This action needs a fresh two-factor code; use the web interface.")))
        try:
            return withdraw(testimony, purposes=given["purposes"], received_how=given["received_how"],
                            erasure=False, actor=g.account, config=current_app.config)
        except AlreadyErased as erased:
            abort(409, message=str(erased.problems[""][0]))
        except InputRefused as refused:
            abort(422, messages={"json": {name: [str(m) for m in messages]
                                          for name, messages in refused.problems.items()}})
