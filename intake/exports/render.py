"""The files of one record in a case file, built field by field from what `read_for_export` opened (and so already
redacted to the record's disclosure): `testimony.json`, a readable `testimony.html`, `consent.json` and
`custody.json`. Nothing reaches a file unless it is named here.

The HTML page is self-contained: no scripts, no request to anywhere; its styles are inline and its font (DejaVu
Sans, which covers Latin, Armenian and Cyrillic) is the one file `fonts/` of the bundle holds, with the reader's
installed fonts as a fallback.
"""

from __future__ import annotations

import hashlib
import json
from base64 import b64encode
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from flask import render_template

from intake.core.access.exports import ExportedRecord
from intake.core.audit.models import AuditEvent, format_time

FORMAT = "intake-case-file/1"
# Custody events whose entry carries a person's written reason (re-identification, grants): the bundle holds their
# hash, time and kind, with the inclusion proof, but not the reason.
# The page's own styles; the page's policy allows exactly these, by hash.
STYLE = """
@font-face { font-family: "Bundle Sans"; src: local("DejaVu Sans"), url("../../fonts/DejaVuSans.ttf"); }
@font-face { font-family: "Bundle Sans"; font-weight: bold; src: local("DejaVu Sans Bold"),
  url("../../fonts/DejaVuSans-Bold.ttf"); }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 46rem; padding: 1.5rem; font: 1rem/1.5 "Bundle Sans", "Noto Sans",
  "Noto Sans Armenian", sans-serif; color: #111; background: #fff; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.2rem; margin: 1.75rem 0 .5rem; padding-bottom: .2rem; border-bottom: 1px solid #999; }
h3 { font-size: 1rem; margin: 1rem 0 .25rem; }
dl.facts { display: grid; grid-template-columns: minmax(8rem, 13rem) 1fr; gap: .2rem 1rem; }
dl.facts dt { font-weight: bold; }
dl.facts dd { margin: 0; }
.narrative { white-space: pre-wrap; overflow-wrap: anywhere; }
.none { font-style: italic; color: #444; }
.about { border: 1px solid #999; padding: .5rem .75rem; }
.small { font-size: .875rem; }
code { font-size: .8rem; overflow-wrap: anywhere; }
section, li { break-inside: avoid; }
@media print { body { max-width: none; padding: 0; font-size: 11pt; } }
""".strip()
STYLE_SOURCE = "'sha256-" + b64encode(hashlib.sha256(STYLE.encode("utf-8")).digest()).decode("ascii") + "'"
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "LICENSE-DejaVu.txt")
_REASONED = frozenset({"reidentified", "access_granted", "access_revoked", "record_shared", "retention_disposed"})


def dump(value: Any) -> bytes:
    """Canonical, readable JSON (sorted keys, UTF-8) with a final newline."""
    return (json.dumps(value, ensure_ascii=False, sort_keys=True, indent=2, default=_default) + "\n").encode("utf-8")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not written to a case file")


def _incident(incident: Any, in_case: bool) -> dict[str, Any]:
    details = incident.details
    return {
        "type": incident.type, "month": incident.month, "region": incident.region, "in_case": in_case,
        "date": details.get("date"), "place": details.get("place"), "victims": details.get("victims"),
        "perpetrators": details.get("perpetrators"), "source_relation": details.get("source_relation"),
        "declined": details.get("declined") or [],
    }


def attachment_path(label: str, attachment: Any) -> str:
    return f"records/{label}/attachments/{attachment.sha256}"


def testimony_document(record: ExportedRecord, *, label: str, incidents_in_case: Sequence[int]) -> dict[str, Any]:
    whole = not incidents_in_case
    return {
        "format": FORMAT,
        "record": label,
        "disclosure": record.disclosure.value,
        "pseudonym": record.pseudonym,
        "identity": record.identity,
        "language": record.language,
        "region": record.region,
        "interviewed": record.interviewed,
        "submitted_at": record.submitted_at,
        "revision": record.revision,
        "narrative": record.narrative,
        "narrative_declined": record.narrative_declined,
        "questions_declined": record.declined,
        "incidents": [_incident(i, whole or i.id in incidents_in_case) for i in record.incidents],
        "attachments": [
            {"medium": a.medium, "graphic": a.graphic, "added_at": a.added_at, "media_type": a.media_type,
             "size": a.size, "sha256": a.sha256, "file": attachment_path(label, a)}
            for a in record.attachments if a.included],
        "withheld_attachments": [
            {"medium": a.medium, "added_at": a.added_at, "why": a.withheld_why}
            for a in record.attachments if not a.included],
    }


def testimony_json(record: ExportedRecord, *, label: str, incidents_in_case: Sequence[int]) -> bytes:
    return dump(testimony_document(record, label=label, incidents_in_case=incidents_in_case))


def testimony_html(record: ExportedRecord, *, label: str, incidents_in_case: Sequence[int], bundle: dict[str, Any]
                   ) -> bytes:
    document = testimony_document(record, label=label, incidents_in_case=incidents_in_case)
    return render_template("exports/record.html", doc=document, bundle=bundle, style=STYLE,
                           style_source=STYLE_SOURCE).encode("utf-8")


def consent_json(record: ExportedRecord, *, purpose: str, recipient: dict[str, Any]) -> bytes:
    consent = record.consent
    return dump({
        "format": FORMAT,
        "purpose": purpose,
        "recipient": recipient,
        "disclosure": record.disclosure.value,
        "consent": None if consent is None else {
            "version": consent.number, "recorded_at": consent.recorded_at,
            "script": {"language": consent.script_language, "sha256": consent.script_hash},
            "method": consent.method, "grants": consent.grants, "media": consent.media,
            "excluded_recipients": consent.exclusions, "minor": consent.is_minor, "review_date": consent.review_date,
        },
        "withdrawals": [{"at": at, "purposes": purposes or "all"} for at, purposes in record.withdrawals],
    })


SHARED_EVENTS = "custody/shared-events.json"


def is_shared(event: AuditEvent) -> bool:
    """An event about several records at once (a case file's request names every record it reads): the bundle holds
    its entry once, in `SHARED_EVENTS`, and each record's custody names it by its number."""
    return len(event.target_ids or []) > 1


def custody_event(event: AuditEvent, *, whole: bool = False) -> dict[str, Any]:
    """One custody event as the bundle holds it: its entry (which its hash covers) unless it carries a reason, or
    unless it is shared by several records (`whole` writes it out all the same)."""
    from intake.core.audit.service import event_json

    if is_shared(event) and not whole:
        return {"seq": event.seq, "occurred_at": format_time(event.occurred_at), "action": event.action,
                "actor_roles": event.actor_roles, "hash": event.hash.hex(), "entry": None, "shared": True}
    if event.action in _REASONED:
        return {"seq": event.seq, "occurred_at": format_time(event.occurred_at), "action": event.action,
                "actor_roles": event.actor_roles, "hash": event.hash.hex(), "entry": None,
                "withheld": "the entry holds a written reason"}
    entry = event_json(event)
    return {key: entry[key] for key in ("seq", "occurred_at", "actor_id", "actor_roles", "action", "target_type",
                                         "target_ids", "details", "request_id", "entry", "prev_hash", "hash")}


def shared_events_json(events: Iterable[AuditEvent]) -> bytes:
    return dump({"format": FORMAT, "events": [custody_event(e, whole=True) for e in events]})


def custody_json(*, label: str, events: Iterable[AuditEvent], previous_exports: Sequence[dict[str, Any]],
                 checkpoint_size: int) -> bytes:
    """Creation, consent history, an access summary, previous exports and every event about the record up to the
    checkpoint (their inclusion proofs are in the manifest; the entries of events shared with other records are in
    `SHARED_EVENTS`)."""
    listed = [e for e in events if e.seq <= checkpoint_size]
    summary: dict[str, int] = {}
    for event in listed:
        summary[event.action] = summary.get(event.action, 0) + 1
    created = next((e for e in listed if e.action == "testimony_created"), None)
    submitted = next((e for e in listed if e.action == "testimony_submitted"), None)
    return dump({
        "format": FORMAT,
        "record": label,
        "created_at": format_time(created.occurred_at) if created else None,
        "submitted_at": format_time(submitted.occurred_at) if submitted else None,
        "consent_history": [{"seq": e.seq, "at": format_time(e.occurred_at), "action": e.action}
                            for e in listed if e.action in ("consent_recorded", "consent_withdrawn")],
        "access_summary": summary,
        "viewers": len({e.actor_id for e in listed if e.action == "record_viewed"}),
        "previous_exports": list(previous_exports),
        "events": [custody_event(e) for e in listed],
    })
