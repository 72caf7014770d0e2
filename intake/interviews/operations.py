"""The interview, step by step: readiness, consent, the person, testimony, incidents, attachments, referral,
submission and correction. The web wizard and the API call the same functions.

Operations change the session and write audit events; they never commit. Bad input raises `InputRefused` (field
→ translated messages) before anything is written, so the request's single transaction commits nothing of it.
A draft is the testimony itself in status `draft`: every step seals what it was given at once, under the
testimony's key, so a closed browser loses nothing. Each saved change raises the testimony's `revision`; a form
sent with an older revision (the same draft open in two tabs) is refused.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from intake.accounts.models import Account
from intake.consents.operations import (
    DECISIONS_KEY,
    ConsentInput,
    InputRefused,
    consent_problems,
    documentation_allowed,
    latest_record,
    record_consent,
)
from intake.core import gazetteer, vocabulary
from intake.core.audit import AuditAction, record_event
from intake.core.crypto import current_keyring
from intake.core.crypto.blind_index import name_tags
from intake.core.crypto.fields import open_value, seal_value
from intake.core.dates import parse_day, parse_month
from intake.core.db import db, transaction_cache, utcnow
from intake.identities.models import Person
from intake.identities.operations import possible_previous_interviews, register_person
from intake.interviews.models import InterviewNotHeld
from intake.testimonies.models import Incident, Testimony, TestimonyStatus
from intake.testimonies.operations import create_testimony

__all__ = [
    "DATE_PRECISIONS", "IDEMPOTENCY_KEY", "INCIDENT_DECLINABLE", "INTERPRETER_STATES", "INVOLVEMENT",
    "NOT_HELD_REASONS", "REFERRAL_OUTCOMES", "SERVICES", "SOURCE_RELATIONS", "WELLBEING",
    "IncidentInput", "InputRefused", "Locked", "NotReady", "PersonInput", "PreviousInterview", "Readiness",
    "ReferralInput", "Risk", "StaleDraft", "add_incident", "correction_deadline", "ensure_editable",
    "consented_media", "created_with_key", "incident_problems", "own_interviews", "record_not_held",
    "remove_incident", "save_narrative", "save_person", "save_referral", "start_interview", "submit",
    "update_incident",
]

MAX_NARRATIVE = 100_000
MAX_TEXT = 2000
MAX_SHORT = 200
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
NEW_TESTIMONIES = "intake.new_testimonies"  # transaction cache of the testimonies begun in it


class Risk(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


INTERPRETER_STATES = ("not_needed", "present_briefed", "missing")
DATE_PRECISIONS = ("day", "month", "approximate", "range", "unknown")
SOURCE_RELATIONS = ("lived", "saw", "heard", "document")
INVOLVEMENT = ("carried_out", "ordered", "assisted", "present", "unknown")
INCIDENT_DECLINABLE = ("date", "place", "victims", "perpetrators", "source_relation")
REFERRAL_OUTCOMES = ("accepted", "declined", "not_needed")
SERVICES = ("health", "psychosocial", "legal_aid", "shelter", "protection", "livelihood", "family_tracing", "other")
WELLBEING = ("settled", "distressed_supported", "stopped_early")
NOT_HELD_REASONS = ("no_private_place", "observers_present", "interpreter_missing", "no_support_services",
                    "risk_unmitigated", "consent_refused", "documentation_refused", "stopped_before_consent")


class NotReady(Exception):
    """The readiness check advises not to proceed; `reasons` are the codes of what is unsafe."""

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__(", ".join(reasons))
        self.reasons = list(reasons)


class StaleDraft(InputRefused):
    """The form was sent from a page showing an older state of the draft (another tab saved since)."""

    def __init__(self) -> None:
        super().__init__({"": [_l("This interview was changed in another window or tab since this page was "
                                  "opened. Nothing was saved from this page: open the interview again to see its "
                                  "latest state.")]})


class Locked(InputRefused):
    """The record can no longer be changed by this account (window closed, consent withdrawn, not theirs)."""

    def __init__(self, message: Any) -> None:
        super().__init__({"": [message]})


@dataclass(frozen=True)
class Readiness:
    """The safety and readiness check before an interview."""

    private_place: bool
    no_observers: bool
    interpreter: str  # not_needed, present_briefed, missing
    support_available: bool
    risk: Risk
    risk_mitigated: bool = False

    def reasons(self) -> list[str]:
        """Why the interview should not go ahead (empty when it may)."""
        found = []
        if not self.private_place:
            found.append("no_private_place")
        if not self.no_observers:
            found.append("observers_present")
        if self.interpreter == "missing":
            found.append("interpreter_missing")
        if not self.support_available:
            found.append("no_support_services")
        if self.risk is not Risk.LOW and not self.risk_mitigated:
            found.append("risk_unmitigated")
        return found


@dataclass(frozen=True)
class PreviousInterview:
    """What the "already interviewed?" warning may say: when and by which team, never who."""

    on: date
    team: str | None


@dataclass(frozen=True)
class PersonInput:
    name: str = ""
    birth_year: int | None = None
    contact: str = ""
    relatives: str = ""
    address: str = ""

    def document(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in ("", None)}


@dataclass(frozen=True)
class Perpetrator:
    description: str = ""
    unit: str = ""
    involvement: str = "unknown"


@dataclass(frozen=True)
class IncidentInput:
    type: str
    description: str = ""
    date_precision: str = "unknown"
    date_start: str = ""  # YYYY-MM-DD, or YYYY-MM for month precision
    date_end: str = ""  # YYYY-MM-DD, for a range
    place_id: str = ""
    place_description: str = ""
    victims_count: int | None = None
    victims_description: str = ""
    perpetrators: tuple[Perpetrator, ...] = ()
    source_relation: str = ""
    declined: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ReferralInput:
    outcome: str  # accepted, declined, not_needed
    services: frozenset[str] = frozenset()
    wellbeing: str = "settled"
    note: str = ""


def _add(problems: dict[str, list[Any]], name: str, message: Any) -> None:
    problems.setdefault(name, []).append(message)


def _too_long(problems: dict[str, list[Any]], name: str, text: str, limit: int) -> None:
    if len(text) > limit:
        _add(problems, name, _l("This is too long: at most %(limit)d characters.", limit=limit))


# --- readiness and consent -------------------------------------------------------------------------------------

def readiness_problems(readiness: Readiness) -> dict[str, list[Any]]:
    problems: dict[str, list[Any]] = {}
    if readiness.interpreter not in INTERPRETER_STATES:
        _add(problems, "interpreter", _l("Say whether an interpreter is needed and present."))
    return problems


def record_not_held(*, stage: str, reasons: Sequence[str], actor: Any) -> InterviewNotHeld:
    """Record only that an interview was not held, at which stage and why: nothing about the person."""
    known = [r for r in dict.fromkeys(reasons) if r in NOT_HELD_REASONS]
    if stage not in ("readiness", "consent"):
        raise InputRefused.one("stage", _l("Say whether the interview stopped at the readiness check or at consent."))
    if not known or len(known) != len(set(reasons)):
        raise InputRefused.one("reasons", _l("Choose why the interview was not held."))
    row = InterviewNotHeld(recorded_at=utcnow(), interviewer_id=getattr(actor, "id", None), stage=stage,
                           reasons=known)
    db.session.add(row)
    db.session.flush()
    record_event(AuditAction.INTERVIEW_NOT_HELD, actor=actor, target_type="interview_not_held", target_ids=[row.id],
                 details={"stage": stage, "reasons": known})
    return row


def start_interview(readiness: Readiness, consent: ConsentInput, *, actor: Any, config: Any,
                    idempotency_key: str | None = None, digest: str | None = None) -> Testimony:
    """Begin an interview once consent is given: the person (anonymous until the next step), a draft testimony,
    and its first consent version, all at once. Raises `NotReady` or `InputRefused` and stores nothing."""
    problems = readiness_problems(readiness)
    if problems:
        raise InputRefused(problems)
    if readiness.reasons():
        raise NotReady(readiness.reasons())
    problems = consent_problems(consent, today=utcnow().date())
    if problems:
        raise InputRefused(problems)
    person = register_person(None, actor=actor, prefix=config["PSEUDONYM_PREFIX"])
    testimony = create_testimony(pseudonym=person.pseudonym, interviewer=actor, language=consent.script_language)
    testimony.interviewed_on = utcnow().date()
    testimony.idempotency_key = idempotency_key
    testimony.submission_digest = digest
    seal_value(testimony, "details", {
        "readiness": {**asdict(readiness), "risk": readiness.risk.value},
        "declined": [], "pauses": [], "referral": None,
    })
    record_consent(testimony, consent, actor=actor, first=True)
    # A new testimony has no incidents or attachments yet: say so rather than have them loaded.
    sa.orm.attributes.set_committed_value(testimony, "incidents", [])
    sa.orm.attributes.set_committed_value(testimony, "attachments", [])
    transaction_cache(db.session, NEW_TESTIMONIES).setdefault("ids", set()).add(testimony.id)
    db.session.flush()
    return testimony


# --- editing ---------------------------------------------------------------------------------------------------

def correction_deadline(testimony: Testimony, config: Any) -> datetime | None:
    if testimony.submitted_at is None:
        return None
    return testimony.submitted_at + timedelta(hours=int(config["CORRECTION_HOURS"]))


def _ensure_own(testimony: Testimony, actor: Any) -> None:
    """Refuse (`AccessRefused`, audited) a change by anyone but the interviewer who recorded the testimony."""
    if testimony.interviewer_id is None or testimony.interviewer_id != getattr(actor, "id", None):
        from intake.core.access import Part, Reason, refuse

        refuse(actor, testimony, Reason.NOT_OWN, asked={Part.CONTENT}, purpose="change")


def ensure_editable(testimony: Testimony, actor: Any, config: Any) -> None:
    """Refuse unless `actor` recorded this testimony (else `AccessRefused`, audited), its consent stands and it is a
    draft or still in its correction window (else `Locked`)."""
    _ensure_own(testimony, actor)
    if testimony.data_key.destroyed_at is not None:
        raise Locked(_l("This record was erased at the person's request."))
    if not _documentation_allowed(testimony.id):
        raise Locked(_l("The person withdrew their consent: this interview can no longer be changed."))
    if testimony.status == TestimonyStatus.DRAFT:
        return
    deadline = correction_deadline(testimony, config)
    if testimony.status != TestimonyStatus.SUBMITTED or deadline is None or utcnow() >= deadline:
        raise Locked(_l("The time for corrections has ended, so this interview is locked. Ask a coordinator if "
                        "something must be corrected."))


def _documentation_allowed(testimony_id: int) -> bool:
    """`documentation_allowed`, asked once per transaction and testimony: a withdrawal recorded meanwhile clears
    the answers (`intake.consents.operations.forget_decisions`), and the next request asks again."""
    known = transaction_cache(db.session, DECISIONS_KEY)
    if testimony_id not in known:
        known[testimony_id] = documentation_allowed(testimony_id).allowed
    return known[testimony_id]


def bump_revision(testimony: Testimony, expected: int | None) -> None:
    """Raise the revision, refusing (`StaleDraft`) if the form showed another one.

    One guarded UPDATE: of two requests sent from the same revision, the second waits for the first's row lock
    (PostgreSQL) or the write lock (SQLite), then matches no row and is refused. Without an expected revision
    (one request doing several steps, as the API's single submission does) the revision is raised with the
    testimony's other changes.
    """
    if expected is None:
        # Nobody can have seen a testimony created in this transaction: its first revision stands.
        if testimony.id not in transaction_cache(db.session, NEW_TESTIMONIES).get("ids", ()):
            testimony.revision = testimony.revision + 1
        return
    current = expected
    result: sa.CursorResult[Any] = db.session.execute(sa.update(Testimony).where(Testimony.id == testimony.id,
                                                           Testimony.revision == current)
                                .values(revision=current + 1).execution_options(synchronize_session=False))  # type: ignore[assignment]
    if result.rowcount != 1:
        raise StaleDraft()
    sa.orm.attributes.set_committed_value(testimony, "revision", current + 1)


def _details(testimony: Testimony) -> dict[str, Any]:
    value = open_value(testimony, "details")
    return dict(value) if isinstance(value, dict) else {"declined": [], "pauses": [], "referral": None}


def _save_details(testimony: Testimony, details: Mapping[str, Any]) -> None:
    seal_value(testimony, "details", dict(details))


def save_person(testimony: Testimony, given: PersonInput | None, *, actor: Any, config: Any,
                revision: int | None = None) -> list[PreviousInterview]:
    """Put the person's identity in the vault, or keep them anonymous (`given` None or empty).

    Returns the earlier interviews the blind index and the vault confirm are probably of the same person, as
    dates and teams only.
    """
    ensure_editable(testimony, actor, config)
    problems: dict[str, list[Any]] = {}
    document = given.document() if given is not None else {}
    if given is not None:
        this_year = utcnow().year
        if given.birth_year is not None and not 1900 <= given.birth_year <= this_year:
            _add(problems, "birth_year", _l("Give a year of birth between 1900 and %(year)d.", year=this_year))
        for name in ("name", "contact", "address"):
            _too_long(problems, name, getattr(given, name), MAX_SHORT)
        _too_long(problems, "relatives", given.relatives, MAX_TEXT)
    if problems:
        raise InputRefused(problems)
    person = db.session.scalar(sa.select(Person).where(Person.pseudonym == testimony.pseudonym))
    if person is None:
        raise Locked(_l("This record has no person."))
    bump_revision(testimony, revision)
    seal_value(person, "identity", document or None)
    tags: list[str | None] = [None, None]
    if document.get("name"):
        tags = (list(name_tags(current_keyring(), str(document["name"]), document.get("birth_year")))
                + [None, None])[:2]
    person.name_tag, person.other_name_tag = tags
    record_event(AuditAction.TESTIMONY_UPDATED, actor=actor, target_type="person", target_ids=[person.id],
                 details={"fields": sorted(document), "anonymous": not document})
    if not document.get("name"):
        return []
    matches = possible_previous_interviews(str(document["name"]), document.get("birth_year"), actor=actor,
                                           usable=lambda p: p.id != person.id and _still_documented(p))
    found = []
    for match in matches:
        row = db.session.execute(
            sa.select(Testimony.interviewed_on, Testimony.created_at, Account.team)
            .outerjoin(Account, Account.id == Testimony.interviewer_id)
            .where(Testimony.pseudonym == match.pseudonym).order_by(Testimony.created_at).limit(1)).first()
        if row is not None:
            found.append(PreviousInterview(row.interviewed_on or row.created_at.date(), row.team))
    return found


def _still_documented(person: Person) -> bool:
    """Whether any testimony of `person` may still be used: a withdrawn consent takes them out of the warning."""
    ids = db.session.scalars(sa.select(Testimony.id).where(Testimony.pseudonym == person.pseudonym)).all()
    return any(_documentation_allowed(testimony_id) for testimony_id in ids)


def save_narrative(testimony: Testimony, narrative: str, *, declined: bool, actor: Any, config: Any,
                   revision: int | None = None) -> None:
    """The testimony in the person's own words; `declined` records that they chose not to give one (not blank)."""
    ensure_editable(testimony, actor, config)
    problems: dict[str, list[Any]] = {}
    _too_long(problems, "narrative", narrative, MAX_NARRATIVE)
    if declined and narrative.strip():
        _add(problems, "narrative", _l("Either write down what the person said or record that they declined, "
                                       "not both."))
    if problems:
        raise InputRefused(problems)
    bump_revision(testimony, revision)
    seal_value(testimony, "narrative", narrative if narrative.strip() else None)
    details = _details(testimony)
    declined_list = [d for d in details.get("declined", []) if d != "narrative"]
    if declined:
        declined_list.append("narrative")
    details["declined"] = declined_list
    _save_details(testimony, details)
    record_event(AuditAction.TESTIMONY_UPDATED, actor=actor, target_type="testimony", target_ids=[testimony.id],
                 details={"fields": ["narrative"], "declined": declined})


def record_pause(testimony: Testimony, *, resume: bool, actor: Any, config: Any,
                 revision: int | None = None) -> None:
    """Note that the interview paused (or resumed): when, and for how long, never why."""
    ensure_editable(testimony, actor, config)
    bump_revision(testimony, revision)
    details = _details(testimony)
    pauses = list(details.get("pauses", []))
    now = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
    if resume:
        if pauses and pauses[-1].get("ended") is None:
            pauses[-1] = {**pauses[-1], "ended": now}
    elif not pauses or pauses[-1].get("ended") is not None:
        pauses.append({"started": now, "ended": None})
    details["pauses"] = pauses
    _save_details(testimony, details)
    record_event(AuditAction.TESTIMONY_UPDATED, actor=actor, target_type="testimony", target_ids=[testimony.id],
                 details={"fields": ["pauses"]})


def is_paused(details: Mapping[str, Any]) -> bool:
    pauses = details.get("pauses") or []
    return bool(pauses) and pauses[-1].get("ended") is None


# --- incidents -------------------------------------------------------------------------------------------------

EARLIEST_YEAR = 1900


def _check_date(problems: dict[str, list[Any]], name: str, value: date | None, today: date,
                malformed: Any) -> date | None:
    """The date if it is a real one between 1900 and today; else None, with the reason added to `problems`."""
    if value is None:
        _add(problems, name, malformed)
    elif value > today:
        _add(problems, name, _l("This date is in the future."))
    elif value.year < EARLIEST_YEAR:
        _add(problems, name, _l("This date is before %(year)d: check the year.", year=EARLIEST_YEAR))
    else:
        return value
    return None


def incident_problems(given: IncidentInput, *, today: date) -> dict[str, list[Any]]:
    """Why this incident cannot be recorded, by field; empty when it can."""
    problems: dict[str, list[Any]] = {}
    kind = vocabulary.incident_type(given.type)
    if kind is None:
        _add(problems, "type", _l("Choose a type of incident from the list."))
    elif kind.description_required and not given.description.strip():
        _add(problems, "description", _l("Describe in a few words what happened."))
    _too_long(problems, "description", given.description, MAX_TEXT)
    if not set(given.declined) <= set(INCIDENT_DECLINABLE):
        _add(problems, "declined", _l("Choose among the questions the person may decline."))
    if "date" not in given.declined:
        if given.date_precision not in DATE_PRECISIONS:
            _add(problems, "date_precision", _l("Say how precisely the date is known."))
        elif given.date_precision == "month":
            _check_date(problems, "date_start", parse_month(given.date_start), today,
                        _l("Give the month as year and month, e.g. 2023-09."))
        elif given.date_precision in ("day", "approximate", "range"):
            start = _check_date(problems, "date_start", parse_day(given.date_start), today,
                                _l("Give a date as year, month and day, e.g. 2023-09-19."))
            if given.date_precision == "range":
                end = _check_date(problems, "date_end", parse_day(given.date_end), today,
                                  _l("Give the last day of the period, e.g. 2023-09-28."))
                if start is not None and end is not None and end < start:
                    _add(problems, "date_end", _l("The end of the period is before its start."))
    if "place" not in given.declined:
        if given.place_id and gazetteer.get(given.place_id) is None:
            _add(problems, "place_id", _l("Choose a place from the list, or describe it in words."))
        _too_long(problems, "place_description", given.place_description, MAX_TEXT)
    if given.victims_count is not None and not 0 <= given.victims_count <= 1_000_000:
        _add(problems, "victims_count", _l("Give the number of victims as a whole number, or leave it empty."))
    _too_long(problems, "victims_description", given.victims_description, MAX_TEXT)
    for perpetrator in given.perpetrators:
        if perpetrator.involvement not in INVOLVEMENT:
            _add(problems, "perpetrators", _l("Choose how the alleged perpetrator was involved."))
        _too_long(problems, "perpetrators", perpetrator.description, MAX_TEXT)
        _too_long(problems, "perpetrators", perpetrator.unit, MAX_SHORT)
    if len(given.perpetrators) > 50:
        _add(problems, "perpetrators", _l("At most 50 alleged perpetrators per incident."))
    if "source_relation" not in given.declined and given.source_relation and \
            given.source_relation not in SOURCE_RELATIONS:
        _add(problems, "source_relation", _l("Say how the person knows about this."))
    return problems


def _incident_columns(given: IncidentInput) -> tuple[str | None, str | None]:
    month = None
    if "date" not in given.declined and given.date_precision in ("day", "approximate", "range", "month"):
        month = given.date_start[:7] or None
    region = None
    if "place" not in given.declined and given.place_id:
        place = gazetteer.get(given.place_id)
        region = place.region if place is not None else None
    return month, region


def _incident_document(given: IncidentInput) -> dict[str, Any]:
    declined = set(given.declined)
    return {
        "description": given.description.strip(),
        "date": None if "date" in declined else {
            "precision": given.date_precision,
            "start": (given.date_start or None) if given.date_precision != "unknown" else None,
            "end": (given.date_end or None) if given.date_precision == "range" else None},
        "place": None if "place" in declined else {
            "id": given.place_id or None, "description": given.place_description.strip()},
        "victims": None if "victims" in declined else {
            "count": given.victims_count, "description": given.victims_description.strip()},
        "perpetrators": None if "perpetrators" in declined else [asdict(p) for p in given.perpetrators],
        "source_relation": None if "source_relation" in declined else (given.source_relation or None),
        "declined": sorted(declined),
    }


def add_incident(testimony: Testimony, given: IncidentInput, *, actor: Any, config: Any,
                 revision: int | None = None) -> Incident:
    ensure_editable(testimony, actor, config)
    problems = incident_problems(given, today=utcnow().date())
    if problems:
        raise InputRefused(problems)
    if len(testimony.incidents) >= 200:
        raise InputRefused.one("", _l("An interview holds at most 200 incidents."))
    bump_revision(testimony, revision)
    month, region = _incident_columns(given)
    incident = Incident(testimony=testimony, type=given.type, month=month, region=region, created_at=utcnow())
    db.session.add(incident)
    db.session.flush()
    seal_value(incident, "details", _incident_document(given))
    record_event(AuditAction.TESTIMONY_UPDATED, actor=actor, target_type="testimony", target_ids=[testimony.id],
                 details={"fields": ["incident"], "incident": incident.id, "change": "added"})
    return incident


def update_incident(incident: Incident, given: IncidentInput, *, actor: Any, config: Any,
                    revision: int | None = None) -> None:
    testimony = incident.testimony
    ensure_editable(testimony, actor, config)
    problems = incident_problems(given, today=utcnow().date())
    if problems:
        raise InputRefused(problems)
    bump_revision(testimony, revision)
    incident.type = given.type
    incident.month, incident.region = _incident_columns(given)
    seal_value(incident, "details", _incident_document(given))
    record_event(AuditAction.TESTIMONY_UPDATED, actor=actor, target_type="testimony", target_ids=[testimony.id],
                 details={"fields": ["incident"], "incident": incident.id, "change": "changed"})


def remove_incident(incident: Incident, *, actor: Any, config: Any, revision: int | None = None) -> None:
    testimony = incident.testimony
    ensure_editable(testimony, actor, config)
    bump_revision(testimony, revision)
    incident_id = incident.id
    testimony.incidents.remove(incident)
    db.session.flush()
    record_event(AuditAction.TESTIMONY_UPDATED, actor=actor, target_type="testimony", target_ids=[testimony.id],
                 details={"fields": ["incident"], "incident": incident_id, "change": "removed"})


def incident_input_from_document(incident_type: str, document: Mapping[str, Any]) -> IncidentInput:
    """The input that would record this stored incident again (to fill an edit form)."""
    when = document.get("date") or {}
    place = document.get("place") or {}
    victims = document.get("victims") or {}
    return IncidentInput(
        type=incident_type, description=document.get("description", ""),
        date_precision=when.get("precision") or "unknown", date_start=when.get("start") or "",
        date_end=when.get("end") or "", place_id=place.get("id") or "", place_description=place.get("description", ""),
        victims_count=victims.get("count"), victims_description=victims.get("description", ""),
        perpetrators=tuple(Perpetrator(**p) for p in document.get("perpetrators") or []),
        source_relation=document.get("source_relation") or "", declined=frozenset(document.get("declined", [])),
    )


# --- attachments, referral, submission -------------------------------------------------------------------------

def consented_media(testimony: Testimony) -> frozenset[str]:
    record = latest_record(testimony.id)
    return frozenset(record.media) if record is not None else frozenset()


def store_interview_attachment(testimony: Testimony, source: Any, *, filename: str, declared_medium: str | None,
                               graphic: bool, actor: Any, config: Any, revision: int | None = None) -> Any:
    """An attachment, only of a medium the consent covers. Raises `AttachmentRefused` when the file is refused;
    what was written of it by then goes when the caller rolls back (the request pipeline does)."""
    from intake.testimonies.operations import store_attachment

    ensure_editable(testimony, actor, config)
    if revision is not None and revision != testimony.revision:
        raise StaleDraft()
    attachment = store_attachment(testimony, source, filename=filename[:MAX_SHORT], actor=actor, config=config,
                                  graphic=graphic, allowed_media=consented_media(testimony),
                                  declared_medium=declared_medium)
    bump_revision(testimony, revision)
    return attachment


def save_referral(testimony: Testimony, given: ReferralInput, *, actor: Any, config: Any,
                  revision: int | None = None) -> None:
    """Wellbeing at the end and the referral offered: accepted (to which services), declined, or not needed."""
    ensure_editable(testimony, actor, config)
    problems: dict[str, list[Any]] = {}
    if given.outcome not in REFERRAL_OUTCOMES:
        _add(problems, "outcome", _l("Say whether a referral was accepted, declined or not needed."))
    if not set(given.services) <= set(SERVICES):
        _add(problems, "services", _l("Choose services from the list."))
    if given.outcome == "accepted" and not given.services:
        _add(problems, "services", _l("Choose at least one service the person accepted to be referred to."))
    if given.wellbeing not in WELLBEING:
        _add(problems, "wellbeing", _l("Say how the person was at the end of the interview."))
    _too_long(problems, "note", given.note, MAX_TEXT)
    if problems:
        raise InputRefused(problems)
    bump_revision(testimony, revision)
    details = _details(testimony)
    details["referral"] = {"outcome": given.outcome,
                           "services": sorted(given.services) if given.outcome == "accepted" else [],
                           "wellbeing": given.wellbeing, "note": given.note.strip()}
    _save_details(testimony, details)
    record_event(AuditAction.TESTIMONY_UPDATED, actor=actor, target_type="testimony", target_ids=[testimony.id],
                 details={"fields": ["referral"], "outcome": given.outcome})


def request_digest(payload: Any) -> str:
    """SHA-256 of a request's content in canonical JSON: the same key with other content is refused."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                                     default=str).encode("utf-8")).hexdigest()


def created_with_key(actor: Any, key: str) -> Testimony | None:
    """The interview `actor` created with a request carrying this idempotency key, if any."""
    found: Testimony | None = db.session.scalar(
        sa.select(Testimony).where(Testimony.interviewer_id == getattr(actor, "id", None),
                                   Testimony.idempotency_key == key))
    return found


def submit(testimony: Testimony, *, idempotency_key: str, actor: Any, config: Any,
           revision: int | None = None) -> bool:
    """Finalise the interview. Returns False when it was already submitted with this same key (a retry or a
    double click), True when submitted now; another key for a submitted interview is refused.

    The submission's key is kept apart from the key of the request that created the interview, so that a late
    retry of that request is still recognised whatever key the submission used.
    """
    if not IDEMPOTENCY_KEY.fullmatch(idempotency_key or ""):
        raise InputRefused.one("idempotency_key", _l("The submission key is missing or malformed."))
    _ensure_own(testimony, actor)
    if testimony.status != TestimonyStatus.DRAFT:
        if testimony.submission_key == idempotency_key:
            return False
        raise Locked(_l("This interview was already submitted."))
    ensure_editable(testimony, actor, config)
    other = db.session.scalar(sa.select(Testimony.id).where(
        Testimony.interviewer_id == getattr(actor, "id", None), Testimony.submission_key == idempotency_key))
    if other is not None and other != testimony.id:
        raise InputRefused.one("idempotency_key", _l("This submission key was already used for another interview."))
    details = _details(testimony)
    if not details.get("referral"):
        raise InputRefused.one("referral", _l("Complete the wellbeing and referral step before submitting."))
    if is_paused(details):
        raise InputRefused.one("", _l("The interview is paused: resume it before submitting."))
    bump_revision(testimony, revision)
    testimony.status = TestimonyStatus.SUBMITTED.value
    testimony.submitted_at = utcnow()
    testimony.submission_key = idempotency_key
    record_event(AuditAction.TESTIMONY_SUBMITTED, actor=actor, target_type="testimony", target_ids=[testimony.id],
                 details={"incidents": len(testimony.incidents), "attachments": len(testimony.attachments)})
    return True


def own_interviews(actor: Any, *, limit: int = 100) -> list[Testimony]:
    """The interviewer's own interviews, newest first (classification only: nothing is decrypted)."""
    return list(db.session.scalars(sa.select(Testimony).where(Testimony.interviewer_id == getattr(actor, "id", None))
                                   .order_by(Testimony.created_at.desc(), Testimony.id.desc()).limit(limit)))
