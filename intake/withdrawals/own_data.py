"""A survivor's copy of their own data: what the person gave, readable and printable, with other people's data
removed.

`survivor_copy` takes what `open_record` opened for the purpose `survivor_copy` (content, identity, consent and
attachments; never the reviewers' analysis) and keeps only what the person gave about themselves: their identity,
the interview's date and language, the narrative with every stretch reviewers marked as identifying replaced, the
incidents as told (types, dates, places, counts, how the person knows), the consent they gave, their withdrawals
and the attachments' details. The names of the witness and the interpreter, the relatives, and the descriptions and
units of victims and alleged perpetrators are replaced by a notice. An incident's free-text description is left
out: no reviewer marks identifying words in it, so nothing says whose details it holds.

What the copy holds is built from scratch here, field by field, so that nothing reaches the page unless it is
listed below.
"""

from __future__ import annotations

import hashlib
from base64 import b64encode
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from flask_babel import lazy_gettext as _l

from intake.core.access import Part, RecordView

# What takes the place of another person's details in the copy.
REMOVED = _l("[removed: another person's details]")

# The copy's own styles, embedded in it so that the file needs nothing else to be read or printed. The response
# that shows it allows exactly these styles by their hash (`STYLE_SOURCE`), as the site's policy forbids inline
# styles otherwise.
STYLE = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 46rem; padding: 1.5rem; font: 1rem/1.5 Georgia, "Noto Serif", "Noto Serif Armenian",
  serif; color: #111; background: #fff; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.2rem; margin: 1.75rem 0 .5rem; padding-bottom: .2rem; border-bottom: 1px solid #999; }
h3 { font-size: 1rem; margin: 1rem 0 .25rem; }
p, dl, ol, ul { margin: .4rem 0; }
dl.facts { display: grid; grid-template-columns: minmax(9rem, 14rem) 1fr; gap: .2rem 1rem; }
dl.facts dt { font-weight: bold; }
dl.facts dd { margin: 0; }
.narrative, .text { white-space: pre-wrap; overflow-wrap: anywhere; }
.removed { font-style: italic; }
.about { border: 1px solid #999; padding: .5rem .75rem; }
.small { font-size: .875rem; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .8rem; overflow-wrap: anywhere; }
section, li { break-inside: avoid; }
@page { margin: 18mm 16mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  h2 { break-after: avoid; }
}
""".strip()
STYLE_SOURCE = "'sha256-" + b64encode(hashlib.sha256(STYLE.encode("utf-8")).digest()).decode("ascii") + "'"


@dataclass(frozen=True)
class CopyIncident:
    """An incident as the person told it: the type, and the facts in the shape the interview's pages show them,
    with other people's descriptions replaced."""

    type: str
    facts: dict[str, Any]


@dataclass(frozen=True)
class CopyConsent:
    number: int
    recorded_at: datetime
    script_language: str
    method: str
    grants: dict[str, str]
    media: list[str]
    exclusions: list[list[str]]
    is_minor: bool
    follow_up_permitted: bool
    follow_up: dict[str, str] | None
    review_date: date | None
    witness: str | None  # the notice, when a witness took part; their name never
    interpreter: str | None  # likewise
    best_interests_note: str


@dataclass(frozen=True)
class CopyWithdrawal:
    at: datetime
    purposes: list[str]  # empty: every purpose


@dataclass(frozen=True)
class CopyAttachment:
    medium: str
    graphic: bool
    added_at: datetime
    sha256: str


@dataclass(frozen=True)
class SurvivorCopy:
    pseudonym: str
    interviewed_on: date | None
    language: str | None
    made_at: datetime
    identity: dict[str, Any] | None
    narrative: str | None
    narrative_declined: bool
    incidents: list[CopyIncident] = field(default_factory=list)
    consent: CopyConsent | None = None
    withdrawals: list[CopyWithdrawal] = field(default_factory=list)
    attachments: list[CopyAttachment] = field(default_factory=list)
    removed: str = ""


def redacted_narrative(narrative: str, spans: Iterable[tuple[int, int]], replacement: str) -> str:
    """The narrative with each marked (start, stop) stretch replaced; stretches reaching past its end (marked before
    a correction shortened it) are cut at the end rather than dropped."""
    from intake.review.operations import redacted

    length = len(narrative)
    kept = [(max(0, start), min(stop, length)) for start, stop in spans if start < length]
    return redacted(narrative, [(start, stop) for start, stop in kept if stop > start], replacement)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _incident_facts(details: dict[str, Any], removed: str) -> dict[str, Any]:
    declined = [d for d in details.get("declined") or [] if isinstance(d, str)]
    date_ = details.get("date")
    place = details.get("place")
    victims = details.get("victims")
    perpetrators = details.get("perpetrators")
    return {
        "date": None if not isinstance(date_, dict) else {
            "precision": date_.get("precision"), "start": date_.get("start"), "end": date_.get("end")},
        "place": None if not isinstance(place, dict) else {
            # Described in the person's words, a place often names someone else ("at my neighbour's house").
            "id": place.get("id"), "description": removed if _text(place.get("description")) else ""},
        "victims": None if not isinstance(victims, dict) else {
            "count": victims.get("count") if isinstance(victims.get("count"), int) else None,
            "description": removed if _text(victims.get("description")) else ""},
        "perpetrators": None if not isinstance(perpetrators, list) else [
            {"description": removed if _text(p.get("description")) or _text(p.get("unit")) else "", "unit": "",
             "involvement": p.get("involvement")}
            for p in perpetrators if isinstance(p, dict)],
        "source_relation": details.get("source_relation") if isinstance(details.get("source_relation"), str)
        else None,
        "declined": declined,
    }


def _identity(identity: dict[str, Any] | None, removed: str) -> dict[str, Any] | None:
    if not identity:
        return None
    own = {key: identity[key] for key in ("name", "birth_year", "contact", "address") if identity.get(key)}
    if _text(identity.get("relatives")):
        own["relatives"] = removed  # the relatives' names and details are theirs
    return own or None


def _consent(view: RecordView, removed: str) -> CopyConsent | None:
    consent = view.consent
    if consent is None:
        return None
    particulars = consent.particulars or {}
    follow_up = particulars.get("follow_up") if consent.follow_up_permitted else None
    return CopyConsent(
        number=consent.number, recorded_at=consent.recorded_at, script_language=consent.script_language,
        method=consent.method, grants=dict(consent.grants), media=list(consent.media),
        exclusions=[list(e) for e in consent.exclusions], is_minor=consent.is_minor,
        follow_up_permitted=consent.follow_up_permitted,
        follow_up={"method": _text(follow_up.get("method")), "times": _text(follow_up.get("times"))}
        if isinstance(follow_up, dict) else None,
        review_date=consent.review_date,
        witness=removed if _text(particulars.get("witness")) else None,
        interpreter=removed if _text(particulars.get("interpreter")) else None,
        # The note is the interviewer's about the child and their guardian, not something the person gave.
        best_interests_note=removed if consent.is_minor and _text(particulars.get("best_interests_note")) else "",
    )


def survivor_copy(view: RecordView, *, spans: Iterable[tuple[int, int]], withdrawals: Iterable[Any],
                  made_at: datetime, removed: str | None = None) -> SurvivorCopy:
    """The person's own data from `view`, with other people's details replaced by `removed` (default `REMOVED` in
    the reader's language). `spans` are the stretches of the narrative reviewers marked as identifying;
    `withdrawals` the person's withdrawals of consent, oldest first."""
    if Part.NOTES in view.parts:
        raise ValueError("a survivor's copy is made without the reviewers' analysis")
    notice = str(REMOVED) if removed is None else removed
    declined = "narrative" in (view.details.get("declined") or [])
    narrative = view.narrative if view.narrative and not declined else None
    return SurvivorCopy(
        pseudonym=view.pseudonym, interviewed_on=view.interviewed_on, language=view.language, made_at=made_at,
        identity=_identity(view.identity, notice),
        narrative=redacted_narrative(narrative, spans, notice) if narrative else None,
        narrative_declined=declined,
        incidents=[CopyIncident(i.type, _incident_facts(i.details, notice)) for i in view.incidents],
        consent=_consent(view, notice),
        withdrawals=[CopyWithdrawal(w.at, list(w.purposes)) for w in withdrawals],
        attachments=[CopyAttachment(a.medium, a.graphic, a.created_at,
                                    str((a.details.get("digest") or {}).get("value") or ""))
                     for a in view.attachments],
        removed=notice,
    )
