"""API routes of the audit log: search, one record's history and extract, verification, checkpoints.

The same permission and the same audit events as the auditor's pages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from flask import g
from flask.views import MethodView
from flask_babel import lazy_gettext as _l
from flask_smorest import Blueprint, abort
from marshmallow import RAISE

from intake.api.body import require_json_body
from intake.audit import is_record_address, record_target_ids, verify_now
from intake.audit.schemas import (
    CheckpointListSchema,
    EventPageSchema,
    EventQuerySchema,
    RecordHistorySchema,
    VerificationSchema,
)
from intake.core.audit import AuditAction, AuditEvent, record_event, service
from intake.core.audit.models import format_time
from intake.core.db import writes_on_get
from intake.core.limits import api_limit, limiter
from intake.core.security import Permission, requires

blp = Blueprint("api_audit", __name__, url_prefix="/api/v1/audit", description="The audit log")
limiter.limit(api_limit)(blp)
blp.before_request(require_json_body)


def _events_json(events: Sequence[AuditEvent]) -> list[dict[str, Any]]:
    names = service.usernames(e.actor_id for e in events)
    return [{**service.event_json(e), "actor_username": names.get(e.actor_id) if e.actor_id is not None else None}
            for e in events]


def _viewers_json(viewers: Iterable[service.Viewer]) -> list[dict[str, Any]]:
    listed = list(viewers)
    names = service.usernames(v.actor_id for v in listed)
    return [{"actor_id": v.actor_id, "actor_username": names.get(v.actor_id) if v.actor_id is not None else None,
             "actor_roles": v.actor_roles, "views": v.views, "first": format_time(v.first),
             "last": format_time(v.last), "parts": list(v.parts)} for v in listed]


def _record_or_404(target_type: str, target_id: str) -> None:
    if not is_record_address(target_type, target_id):
        abort(404)


@blp.route("/events")
class Events(MethodView):
    decorators = [writes_on_get]  # each search is recorded

    @requires(Permission.READ_AUDIT_LOG)
    @blp.arguments(EventQuerySchema, location="query", unknown=RAISE)  # webargs would drop unknown parameters
    @blp.response(200, EventPageSchema)
    def get(self, query: dict[str, Any]) -> Any:
        """Events matching every given parameter, newest first, a page at a time."""
        actor_id = None
        if "actor" in query:
            actor_id = service.account_id_named(query["actor"])
            if actor_id is None:
                abort(422, messages={"query": {"actor": [str(_l("No account has this username."))]}})
        since, until = service.whole_days(query.get("since"), query.get("until"))
        where = service.EventFilter(actor_id=actor_id, target_type=query.get("target_type"),
                                    target_id=query.get("target_id"), action=query.get("action"),
                                    since=since, until=until)
        limit = query["limit"]
        found = service.search_events(where, before=query.get("before"), limit=limit + 1)
        events = found[:limit]
        record_event(AuditAction.AUDIT_SEARCHED, actor=g.account, target_type="audit_log",
                     details=where.described())
        return {"events": _events_json(events), "next_before": events[-1].seq if len(found) > limit else None}


@blp.route("/records/<target_type>/<target_id>")
class RecordHistory(MethodView):
    decorators = [writes_on_get]  # each look is recorded

    @requires(Permission.READ_AUDIT_LOG)
    @blp.response(200, RecordHistorySchema)
    def get(self, target_type: str, target_id: str) -> Any:
        """Who has seen the record (accounts, roles, how often, when, which parts), and every event about it."""
        _record_or_404(target_type, target_id)
        events = service.record_events(target_type, target_id)
        viewers = service.who_has_seen(events)
        record_event(AuditAction.AUDIT_HISTORY_VIEWED, actor=g.account, target_type=target_type,
                     target_ids=record_target_ids(target_id))
        return {"record": {"type": target_type, "id": target_id}, "viewers": _viewers_json(viewers),
                "events": _events_json(events)}


@blp.route("/records/<target_type>/<target_id>/extract")
class RecordExtract(MethodView):
    decorators = [writes_on_get]  # each export is recorded

    @requires(Permission.READ_AUDIT_LOG)
    @blp.response(200)
    def get(self, target_type: str, target_id: str) -> Any:
        """The record's audit history with the latest checkpoint and an RFC 9162 inclusion proof for each event
        it covers; `how_to_verify` says how to check it without this service."""
        _record_or_404(target_type, target_id)
        extract = service.record_extract(target_type, target_id)
        record_event(AuditAction.AUDIT_EXTRACT_EXPORTED, actor=g.account, target_type=target_type,
                     target_ids=record_target_ids(target_id), details={"events": len(extract["events"])})
        return extract


@blp.route("/verify")
class Verification(MethodView):
    @requires(Permission.READ_AUDIT_LOG)
    @blp.response(200, VerificationSchema)
    def post(self) -> Any:
        """Verify the whole log now: every hash link, the Merkle tree at every checkpoint, every signature.

        Send an empty JSON object. The answer is 200 whatever the result; `ok` says whether the log is intact.
        """
        return verify_now(g.account)


@blp.route("/checkpoints")
class Checkpoints(MethodView):
    @requires(Permission.READ_AUDIT_LOG)
    @blp.response(200, CheckpointListSchema)
    def get(self) -> Any:
        """The latest signed checkpoints, newest first, and the verifier key that opens their notes."""
        return {
            "checkpoints": [{"id": c.id, "created_at": format_time(c.created_at), "tree_size": c.tree_size,
                             "root_hash": bytes(c.root_hash).hex(), "note": c.note}
                            for c in service.checkpoint_list()],
            "verifier_key": service.verifier_key().to_string(),
        }
