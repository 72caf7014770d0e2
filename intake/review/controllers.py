"""Handlers of the reviewer's pages. The queue shows only the clear classification of the records a reviewer may
open; a record is read through `open_record`, which decides, decrypts content and attachments only, and audits."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import abort, current_app, g, render_template, request, url_for

from intake.consents.operations import documentation_allowed
from intake.core.access import Part, open_record
from intake.core.db import db, writes_on_get
from intake.core.security import Permission, requires
from intake.interviews import forms as interview_forms
from intake.interviews.controllers import day, incident_type_name, place_name, when
from intake.review.forms import REGION_LABELS, QueueForm
from intake.review.queries import filtered, reviewable
from intake.testimonies.models import Attachment, Incident, Testimony

PAGE_SIZE = 50
PURPOSE = "review"
PARTS = frozenset({Part.CONTENT, Part.ATTACHMENTS})


@dataclass(frozen=True)
class QueueEntry:
    id: int
    pseudonym: str
    submitted_at: datetime | None
    language: str | None
    status: str
    incident_types: list[str]
    attachments: int


def page_helpers() -> dict[str, Any]:
    return {"f": interview_forms, "label": interview_forms.label, "when": when, "day": day,
            "place_name": place_name, "incident_type_name": incident_type_name, "region_labels": REGION_LABELS}


def _candidates(where: list[sa.ColumnElement[bool]], before: int | None, limit: int) -> list[Testimony]:
    query = sa.select(Testimony).where(*where).order_by(Testimony.id.desc()).limit(limit)
    if before is not None:
        query = query.where(Testimony.id < before)
    return list(db.session.scalars(query))


def _page(where: list[sa.ColumnElement[bool]], before: int | None) -> tuple[list[Testimony], bool]:
    """Up to PAGE_SIZE records, newest first, whose consent to documentation stands; and whether older ones exist."""
    kept: list[Testimony] = []
    cursor = before
    while len(kept) <= PAGE_SIZE:
        batch = _candidates(where, cursor, PAGE_SIZE + 1)
        kept.extend(t for t in batch if documentation_allowed(t.id).allowed)
        if len(batch) <= PAGE_SIZE:
            break
        cursor = batch[-1].id
    return kept[:PAGE_SIZE], len(kept) > PAGE_SIZE


def _entries(testimonies: list[Testimony]) -> list[QueueEntry]:
    ids = [t.id for t in testimonies]
    types: dict[int, list[str]] = defaultdict(list)
    counts: dict[int, int] = {}
    if ids:
        for testimony_id, kind in db.session.execute(
                sa.select(Incident.testimony_id, Incident.type).where(Incident.testimony_id.in_(ids))
                .order_by(Incident.id)):
            if kind not in types[testimony_id]:
                types[testimony_id].append(kind)
        counts = dict(db.session.execute(
            sa.select(Attachment.testimony_id, sa.func.count(Attachment.id)).where(Attachment.testimony_id.in_(ids))
            .group_by(Attachment.testimony_id)).all())
    return [QueueEntry(t.id, t.pseudonym, t.submitted_at, t.language, t.status,
                       [incident_type_name(k) for k in types[t.id]], counts.get(t.id, 0)) for t in testimonies]


def _queue_address(*, before: int | None = None) -> str:
    """The current queue again: from its newest records, or continuing with those older than `before`."""
    kept: dict[str, Any] = {k: v for k, v in request.args.items() if v and k != "before"}
    if before is not None:
        kept["before"] = before
    return url_for("review.queue", **kept)


@requires(Permission.REVIEW_RECORDS)
def queue() -> Any:
    form = QueueForm(formdata=request.args)
    if not form.validate():
        return render_template("review/queue.html", form=form, entries=None), 400
    where = [reviewable(g.account, current_app.config["REVIEW_ASSIGNMENT_POLICY"]), *filtered(form.chosen())]
    shown, more = _page(where, form.continue_from)
    return render_template(
        "review/queue.html", form=form, entries=_entries(shown),
        older_url=_queue_address(before=shown[-1].id) if more else None,
        newest_url=_queue_address() if form.continue_from is not None else None)


@requires(Permission.REVIEW_RECORDS)
@writes_on_get
def record(testimony_id: int) -> Any:
    testimony = db.session.get(Testimony, testimony_id)
    if testimony is None:
        abort(404)
    view = open_record(g.account, testimony, PARTS, config=current_app.config, purpose=PURPOSE)
    return render_template("review/record.html", view=view)
