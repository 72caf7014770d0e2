"""Handlers of the auditor's pages. Each page that reads the log appends the audit event saying so."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from flask import Response, abort, g, render_template, request, url_for
from flask_babel import lazy_gettext as _l

from intake.accounts.forms import ButtonForm
from intake.audit import is_record_address, record_target_ids, verify_now
from intake.audit.forms import SearchForm, action_label, target_type_label
from intake.core.audit import AuditAction, AuditEvent, record_event, service
from intake.core.db import writes_on_get
from intake.core.pages import attach_error
from intake.core.security import ROLE_TITLES, Permission, Role, requires

CHECKPOINTS_SHOWN = 20

# What each kind of problem `intake audit verify` reports means, for the reader; its message gives the details.
PROBLEM_LABELS: dict[str, Any] = {
    "changed": _l("An event was changed after it was written."),
    "broken_link": _l("Events were removed, inserted or reordered."),
    "missing": _l("Events are missing."),
    "out_of_order": _l("Events are out of order or were swapped."),
    "truncated": _l("The newest events were removed."),
    "root_mismatch": _l("The log no longer matches a signed checkpoint."),
    "checkpoint_mismatch": _l("A checkpoint's stored values differ from what it signed."),
    "checkpoint_missing": _l("A checkpoint is missing."),
    "bad_signature": _l("A checkpoint's signature does not verify."),
    "unknown_key": _l("A checkpoint is not signed by this log's key."),
    "malformed_checkpoint": _l("A checkpoint cannot be read."),
    "wrong_origin": _l("A checkpoint belongs to another log."),
    "replayed_checkpoint": _l("A checkpoint appears twice."),
    "size_not_increasing": _l("A checkpoint covers no more events than the one before it."),
    "inserted": _l("Events were inserted."),
    "malformed": _l("An event is damaged."),
    "checkpoint_file_missing": _l("The checkpoint file is missing or empty."),
}


def utc(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else ""


def roles_text(actor_roles: str) -> str:
    """The roles an event stores (comma-separated names) in the reader's language."""
    known = {r.value for r in Role}
    return ", ".join(str(ROLE_TITLES[Role(name)]) if name in known else name
                     for name in actor_roles.split(",") if name)


def _detail_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return ",".join(_detail_value(v) for v in value)
    return str(value)


def details_text(details: Mapping[str, Any]) -> list[str]:
    """An event's details as `key=value` lines (plain text: the page escapes it like everything else)."""
    return [f"{key}={_detail_value(value)}" for key, value in sorted(details.items())]


def linkable(target_type: str | None, target_id: Any) -> bool:
    return target_type is not None and is_record_address(target_type, str(target_id))


def page_helpers() -> dict[str, Any]:
    """What the audit templates use to show events."""
    return {"utc": utc, "roles_text": roles_text, "details_text": details_text, "linkable": linkable,
            "action_label": action_label, "target_type_label": target_type_label, "problem_labels": PROBLEM_LABELS}


def _names(events: Iterable[AuditEvent | None]) -> dict[int, str]:
    return service.usernames(e.actor_id for e in events if e is not None)


def _search_address(*, before: int | None = None) -> str:
    """The current search again: from its newest events, or continuing with those older than `before`."""
    kept: dict[str, Any] = {k: v for k, v in request.args.items() if v and k != "before"}
    if before is not None:
        kept["before"] = before
    return url_for("audit.search", **kept)


def _record_or_404(target_type: str, target_id: str) -> None:
    if not is_record_address(target_type, target_id):
        abort(404)


@requires(Permission.READ_AUDIT_LOG)
@writes_on_get
def search() -> Any:
    form = SearchForm(formdata=request.args)
    last = service.last_verification()
    context: dict[str, Any] = {"last": last, "verify_form": ButtonForm(), "events": None, "names": _names([last])}
    if not form.validate():
        return render_template("audit/search.html", form=form, **context), 400
    actor_id = None
    if form.actor.data:
        actor_id = service.account_id_named(form.actor.data)
        if actor_id is None:
            attach_error(form, str(_l("No account has this username.")), "actor")
            return render_template("audit/search.html", form=form, **context), 400
    where = form.event_filter(actor_id)
    found = service.search_events(where, before=form.continue_from, limit=service.PAGE_SIZE + 1)
    events = found[:service.PAGE_SIZE]
    record_event(AuditAction.AUDIT_SEARCHED, actor=g.account, target_type="audit_log", details=where.described())
    context.update(
        events=events, names=_names([last, *events]),
        older_url=_search_address(before=events[-1].seq) if len(found) > service.PAGE_SIZE else None,
        newest_url=_search_address() if form.continue_from is not None else None,
    )
    return render_template("audit/search.html", form=form, **context)


@requires(Permission.READ_AUDIT_LOG)
def verify() -> Any:
    if not ButtonForm().validate_on_submit():
        abort(400)
    return render_template("audit/verification.html", report=verify_now(g.account))


@requires(Permission.READ_AUDIT_LOG)
@writes_on_get
def record_history(target_type: str, target_id: str) -> Any:
    _record_or_404(target_type, target_id)
    events = service.record_events(target_type, target_id)
    viewers = service.who_has_seen(events)
    record_event(AuditAction.AUDIT_HISTORY_VIEWED, actor=g.account, target_type=target_type,
                 target_ids=record_target_ids(target_id))
    return render_template("audit/record.html", target_type=target_type, target_id=target_id, events=events,
                           viewers=viewers, names=_names(events))


@requires(Permission.READ_AUDIT_LOG)
@writes_on_get
def record_extract(target_type: str, target_id: str) -> Any:
    _record_or_404(target_type, target_id)
    extract = service.record_extract(target_type, target_id)
    record_event(AuditAction.AUDIT_EXTRACT_EXPORTED, actor=g.account, target_type=target_type,
                 target_ids=record_target_ids(target_id), details={"events": len(extract["events"])})
    response = Response(json.dumps(extract, ensure_ascii=False, indent=2) + "\n", mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="audit-{target_type}-{target_id}.json"'
    response.headers["Cache-Control"] = "no-store"
    return response


@requires(Permission.READ_AUDIT_LOG)
def checkpoints() -> Any:
    return render_template("audit/checkpoints.html", checkpoints=service.checkpoint_list(CHECKPOINTS_SHOWN),
                           verifier_key=service.verifier_key().to_string())
