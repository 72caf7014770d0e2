"""API routes of the interview: the whole interview in one request, or step by step, and the person's requests.

The same operations as the web wizard, in the request's single transaction: a refused step leaves nothing stored.
Refusals name the field by its path in the request body (``consent.grants``, ``incidents.1.date.start``).
An interviewer works on their own interviews only; reading one goes through `intake.core.access.open_record`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import IO, Any, NoReturn
from urllib.parse import unquote

import sqlalchemy as sa
from flask import Response, current_app, g, request
from flask.views import MethodView
from flask_babel import lazy_gettext as _l
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, ValidationError
from sqlalchemy.exc import IntegrityError
from webargs.flaskparser import FlaskParser, abort  # flask-smorest's abort, typed

from intake.api.body import require_json_body, takes_raw_body
from intake.core.access import ALL_PARTS, Part, Reason, RecordView, open_record, refuse, require
from intake.core.db import db, utcnow, writes_on_get
from intake.core.errors import problem
from intake.core.limits import api_limit, limiter
from intake.core.security import Permission, requires
from intake.core.web import accepts_bodies_up_to
from intake.interviews import operations as ops
from intake.interviews.forms import NOT_HELD_REASON_LABELS
from intake.interviews.schemas import (
    CONSENT_PATHS,
    INCIDENT_PATHS,
    AttachmentQuerySchema,
    AttachmentSavedSchema,
    IdempotencyHeaderSchema,
    IncidentChangeSchema,
    IncidentSavedSchema,
    InterviewPatchSchema,
    InterviewRecordSchema,
    InterviewStateSchema,
    InterviewSummarySchema,
    NewInterviewSchema,
    NotHeldRecordSchema,
    NotHeldSchema,
    RevisionQuerySchema,
    SubmitSchema,
    SubmittedSchema,
    WithdrawalRecordSchema,
    WithdrawalSchema,
    consent_input,
    incident_input,
    person_input,
    readiness_input,
    referral_input,
)
from intake.testimonies.models import Incident, Testimony
from intake.testimonies.operations import AttachmentRefused
from intake.withdrawals import AlreadyErased, withdraw

KEY_REUSED = _l("This Idempotency-Key was already used for a different request.")
NO_SUCH_INTERVIEW = _l("There is no interview with this id.")
NO_SUCH_INCIDENT = _l("This interview has no incident with this id.")
NOT_READY = _l("The readiness check advises not to hold this interview now, so nothing was stored. Record that it "
               "was not held with POST /api/v1/interviews/not-held, giving these reasons.")
NOT_YOURS = _l("Only the interviewer who recorded this interview can record a withdrawal for it.")
# Why the readiness check advises against the interview: the field of the check each reason comes from.
READINESS_REASONS: dict[str, tuple[str, Any]] = {
    reason: (field, NOT_HELD_REASON_LABELS[reason]) for reason, field in (
        ("no_private_place", "private_place"), ("observers_present", "no_observers"),
        ("interpreter_missing", "interpreter"), ("no_support_services", "support_available"),
        ("risk_unmitigated", "risk_mitigated"))
}


def json_paths(messages: Mapping[str, Any]) -> dict[str, list[str]]:
    """webargs' nested messages ({location: {field: {index: ...}}}) as {"field.index.name": [messages]}."""
    flat: dict[str, list[str]] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, path if key == "_schema" else ".".join(p for p in (path, str(key)) if p))
        elif isinstance(node, list | tuple):
            for item in node:
                walk(item, path)
        else:
            flat.setdefault(path, []).append(str(node))

    for located in messages.values():  # one location per parse: json, query or headers
        walk(located, "")
    return flat


class JsonPathParser(FlaskParser):
    """Refuses invalid arguments as the operations' refusals are answered: by path in the request."""

    def handle_error(self, error: ValidationError, req: Any, schema: Schema, *, error_status_code: int | None,
                     error_headers: Mapping[str, str] | None) -> NoReturn:
        messages = error.messages if isinstance(error.messages, Mapping) else {"json": error.messages}
        abort(error_status_code or self.DEFAULT_VALIDATION_STATUS, exc=error, messages=json_paths(messages),
              schema=schema, headers=error_headers)


class InterviewBlueprint(Blueprint):
    ARGUMENTS_PARSER = JsonPathParser()


blp = InterviewBlueprint("api_interviews", __name__, url_prefix="/api/v1",
                         description="Interviews: readiness, consent, testimony, incidents, attachments, referral, "
                                     "submission, and the person's withdrawal")
limiter.limit(api_limit)(blp)
blp.before_request(require_json_body)


# --- refusals ----------------------------------------------------------------------------------------------------

def _at(prefix: str, name: str, paths: Mapping[str, str]) -> str:
    return ".".join(p for p in (prefix, paths.get(name, name)) if p)


def _merge(errors: dict[str, list[str]], problems: Mapping[str, list[Any]], prefix: str = "",
           paths: Mapping[str, str] | None = None) -> None:
    for name, messages in problems.items():
        errors.setdefault(_at(prefix, name, paths or {}), []).extend(str(m) for m in messages)


def _first(refused: ops.InputRefused) -> str:
    return next((str(m) for messages in refused.problems.values() for m in messages), "")


@contextmanager
def refusals(prefix: str = "", paths: Mapping[str, str] | None = None) -> Iterator[None]:
    """Answer an operation's refusal: a stale revision is 409, a locked record 403, bad input 422 by field."""
    try:
        yield
    except ops.StaleDraft as stale:
        abort(409, message=_first(stale))
    except ops.Locked as locked:
        abort(403, message=_first(locked))
    except ops.InputRefused as refused:
        errors: dict[str, list[str]] = {}
        _merge(errors, refused.problems, prefix, paths)
        abort(422, messages=errors)


@contextmanager
def _collected(errors: dict[str, list[str]], prefix: str = "",
               paths: Mapping[str, str] | None = None) -> Iterator[None]:
    """Note a step's refusal and go on, so that one answer names every field to correct."""
    try:
        yield
    except ops.InputRefused as refused:
        _merge(errors, refused.problems, prefix, paths)


def _not_ready(reasons: list[str]) -> Response:
    db.session.rollback()  # nothing was written, and nothing may be
    errors: dict[str, list[str]] = {}
    for reason in reasons:
        field, message = READINESS_REASONS.get(reason, ("", reason))
        errors.setdefault(_at("readiness", field, {}), []).append(str(message))
    response = problem(422, str(NOT_READY), errors=errors)
    body = response.get_json()
    body["reasons"] = reasons
    response.set_data(current_app.json.dumps(body))
    return response


# --- loading and answering ---------------------------------------------------------------------------------------

def _testimony(testimony_id: int) -> Testimony:
    testimony = db.session.get(Testimony, testimony_id)
    if testimony is None:
        abort(404, message=str(NO_SUCH_INTERVIEW))
    return testimony


def _changeable(testimony: Testimony) -> Testimony:
    """Refuse (403, audited) a change to a record this caller may not open, before anything runs, as the pages do."""
    require(g.account, testimony, {Part.CONTENT}, config=current_app.config, purpose="change")
    return testimony


def _incident(testimony: Testimony, incident_id: int) -> Incident:
    incident = db.session.get(Incident, incident_id)
    if incident is None or incident.testimony_id != testimony.id:
        abort(404, message=str(NO_SUCH_INCIDENT))
    return incident


def _state(testimony: Testimony, previous: list[ops.PreviousInterview] | None = None) -> dict[str, Any]:
    return {"id": testimony.id, "pseudonym": testimony.pseudonym, "status": testimony.status,
            "revision": testimony.revision,
            "correctable_until": ops.correction_deadline(testimony, current_app.config),
            "possible_previous_interviews": [{"on": p.on, "team": p.team} for p in previous or []]}


def _submitted(testimony: Testimony) -> dict[str, Any]:
    return {"id": testimony.id, "status": testimony.status, "revision": testimony.revision,
            "correctable_until": ops.correction_deadline(testimony, current_app.config)}


def _replay(existing: Testimony, digest: str) -> tuple[dict[str, Any], int]:
    """The answer to a request sent again with its Idempotency-Key: the interview as it stands, nothing new.

    The "already interviewed?" warning is not repeated: it would take a new, audited search of the vault.
    """
    if existing.submission_digest != digest:
        abort(409, message=str(KEY_REUSED))
    return _state(existing), 200


def _record_json(view: RecordView, correctable_until: Any) -> dict[str, Any]:
    details = view.details
    declined = list(details.get("declined") or [])
    consent = view.consent
    particulars = (consent.particulars or {}) if consent is not None else {}
    return {
        "id": view.id, "pseudonym": view.pseudonym, "status": view.status, "revision": view.revision,
        "language": view.language, "interviewed_on": view.interviewed_on, "submitted_at": view.submitted_at,
        "correctable_until": correctable_until,
        "readiness": details.get("readiness"),
        "person": view.identity,
        "testimony": {"narrative": view.narrative or "", "narrative_declined": "narrative" in declined},
        "declined": declined,
        "pauses": list(details.get("pauses") or []),
        "referral": details.get("referral"),
        "incidents": [{"id": i.id, "type": i.type, "month": i.month, "region": i.region, **i.details}
                      for i in view.incidents],
        "consent": None if consent is None else {
            "version": consent.number, "recorded_at": consent.recorded_at, "script_language": consent.script_language,
            "script_hash": consent.script_hash, "method": consent.method, "grants": consent.grants,
            "media": consent.media, "exclusions": [{"kind": k, "value": v} for k, v in consent.exclusions],
            "is_minor": consent.is_minor, "follow_up_permitted": consent.follow_up_permitted,
            "review_date": consent.review_date, "witness": particulars.get("witness", ""),
            "interpreter": particulars.get("interpreter", ""),
            "best_interests_note": particulars.get("best_interests_note", ""),
            "follow_up": particulars.get("follow_up"),
        },
        "attachments": [{"id": a.id, "medium": a.medium, "graphic": a.graphic, "created_at": a.created_at,
                         "filename": a.details.get("filename", ""), "media_type": a.details.get("media_type", ""),
                         "size": a.details.get("size", 0),
                         "sha256": (a.details.get("digest") or {}).get("value", "")}
                        for a in view.attachments],
    }


# --- the interview in one request --------------------------------------------------------------------------------

def _create(data: Mapping[str, Any], key: str, digest: str) -> Response | tuple[dict[str, Any], int]:
    """Run every step the request carries; refuse them all together, or store them all."""
    actor, config = g.account, current_app.config
    errors: dict[str, list[str]] = {}
    incidents = [incident_input(given) for given in data["incidents"]]
    try:
        with _collected(errors, "consent", CONSENT_PATHS):
            testimony = ops.start_interview(readiness_input(data["readiness"]), consent_input(data["consent"]),
                                            actor=actor, config=config, idempotency_key=key, digest=digest)
    except ops.NotReady as not_ready:
        return _not_ready(not_ready.reasons)
    if errors:  # without a consent nothing else is stored; still say what else is wrong with the incidents
        for index, given in enumerate(incidents):
            _merge(errors, ops.incident_problems(given, today=utcnow().date()), f"incidents.{index}", INCIDENT_PATHS)
        abort(422, messages=errors)
    previous: list[ops.PreviousInterview] = []
    if data["person"] is not None:
        with _collected(errors, "person"):
            previous = ops.save_person(testimony, person_input(data["person"]), actor=actor, config=config)
    if data["testimony"] is not None:
        with _collected(errors, "testimony"):
            ops.save_narrative(testimony, data["testimony"]["narrative"],
                               declined=data["testimony"]["narrative_declined"], actor=actor, config=config)
    for index, given in enumerate(incidents):
        with _collected(errors, f"incidents.{index}", INCIDENT_PATHS):
            ops.add_incident(testimony, given, actor=actor, config=config)
    if data["referral"] is not None:
        with _collected(errors, "referral"):
            ops.save_referral(testimony, referral_input(data["referral"]), actor=actor, config=config)
    if data["submit"] and not errors:
        with _collected(errors, "", {"idempotency_key": "Idempotency-Key"}):
            ops.submit(testimony, idempotency_key=key, actor=actor, config=config)
    if errors:
        abort(422, messages=errors)
    db.session.flush()  # a concurrent request with the same key fails here, inside the view
    return _state(testimony, previous), 201


@blp.route("/interviews")
class Interviews(MethodView):
    @requires(Permission.RECORD_INTERVIEWS)
    @blp.response(200, InterviewSummarySchema(many=True))
    def get(self) -> Any:
        """The caller's own interviews, newest first (nothing is decrypted)."""
        found = ops.own_interviews(g.account)
        counts = {testimony_id: int(n) for testimony_id, n in db.session.execute(
            sa.select(Incident.testimony_id, sa.func.count()).where(Incident.testimony_id.in_([t.id for t in found]))
            .group_by(Incident.testimony_id))}
        return [{"id": t.id, "pseudonym": t.pseudonym, "status": t.status, "revision": t.revision,
                 "interviewed_on": t.interviewed_on, "submitted_at": t.submitted_at,
                 "correctable_until": ops.correction_deadline(t, current_app.config),
                 "incidents": counts.get(t.id, 0)} for t in found]

    @requires(Permission.RECORD_INTERVIEWS)
    @blp.arguments(NewInterviewSchema)
    @blp.arguments(IdempotencyHeaderSchema, location="headers")
    @blp.response(201, InterviewStateSchema)
    @blp.alt_response(200, schema=InterviewStateSchema, description="The same request sent again: its first result.")
    def post(self, data: dict[str, Any], headers: dict[str, Any]) -> Any:
        """A whole interview: readiness, consent, the person, the narrative, incidents, referral and, with `submit`,
        its submission, in one transaction. Any refusal stores nothing; `errors` names each field by its path.

        Sent again with the same `Idempotency-Key` and body, it answers 200 with the interview it created; with
        another body, 409. A readiness check that advises against the interview is a 422 listing `reasons`.
        """
        key: str = headers["idempotency_key"]
        digest = ops.request_digest(request.get_json())
        existing = ops.created_with_key(g.account, key)
        if existing is not None:
            return _replay(existing, digest)
        try:
            return _create(data, key, digest)
        except IntegrityError:
            # Another request with this key committed first (the key is unique per interviewer): answer as its replay.
            db.session.rollback()
            existing = ops.created_with_key(g.account, key)
            if existing is None:
                raise
            return _replay(existing, digest)


@blp.route("/interviews/not-held")
class NotHeld(MethodView):
    @requires(Permission.RECORD_INTERVIEWS)
    @blp.arguments(NotHeldSchema)
    @blp.response(201, NotHeldRecordSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Record only that an interview was not held, at which stage and why: nothing about the person."""
        with refusals():
            row = ops.record_not_held(stage=data["stage"], reasons=data["reasons"], actor=g.account)
        return {"id": row.id}


# --- one interview -----------------------------------------------------------------------------------------------

@blp.route("/interviews/<int:testimony_id>")
class InterviewItem(MethodView):
    decorators = [writes_on_get]  # each reading is recorded

    @requires(Permission.RECORD_INTERVIEWS)
    @blp.response(200, InterviewRecordSchema)
    def get(self, testimony_id: int) -> Any:
        """The interview, decrypted for the interviewer who recorded it (a draft, or a submission within its
        correction window); the reading is recorded. Anyone else gets 403, and the refusal is recorded."""
        testimony = _testimony(testimony_id)
        view = open_record(g.account, testimony, ALL_PARTS, config=current_app.config)
        return _record_json(view, ops.correction_deadline(testimony, current_app.config))

    @requires(Permission.RECORD_INTERVIEWS)
    @blp.arguments(InterviewPatchSchema)
    @blp.response(200, InterviewStateSchema)
    def patch(self, data: dict[str, Any], testimony_id: int) -> Any:
        """Change the narrative, the person or the referral of an own draft (or a submission within its correction
        window). `revision` is the one you read: another one since is a 409, a locked record a 403."""
        testimony = _changeable(_testimony(testimony_id))
        actor, config = g.account, current_app.config
        revision: int | None = data["revision"]
        previous: list[ops.PreviousInterview] = []
        if "person" in data:
            with refusals("person"):
                previous = ops.save_person(testimony, person_input(data["person"]), actor=actor, config=config,
                                           revision=revision)
            revision = None
        if "narrative" not in data and data.get("narrative_declined") is False:
            abort(422, messages={"narrative": [str(_l("Send the narrative together with narrative_declined: "
                                                      "false; without it the narrative would be emptied."))]})
        if "narrative" in data or "narrative_declined" in data:
            with refusals():
                ops.save_narrative(testimony, data.get("narrative", ""), declined=data.get("narrative_declined", False),
                                   actor=actor, config=config, revision=revision)
            revision = None
        if "referral" in data:
            with refusals("referral"):
                ops.save_referral(testimony, referral_input(data["referral"]), actor=actor, config=config,
                                  revision=revision)
        return _state(testimony, previous)


@blp.route("/interviews/<int:testimony_id>/incidents")
class Incidents(MethodView):
    @requires(Permission.RECORD_INTERVIEWS)
    @blp.arguments(IncidentChangeSchema)
    @blp.response(201, IncidentSavedSchema)
    def post(self, data: dict[str, Any], testimony_id: int) -> Any:
        """Add an incident to an own interview."""
        testimony = _changeable(_testimony(testimony_id))
        with refusals("incident", INCIDENT_PATHS):
            incident = ops.add_incident(testimony, incident_input(data["incident"]), actor=g.account,
                                        config=current_app.config, revision=data["revision"])
        return {"id": incident.id, "revision": testimony.revision}


@blp.route("/interviews/<int:testimony_id>/incidents/<int:incident_id>")
class IncidentItem(MethodView):
    @requires(Permission.RECORD_INTERVIEWS)
    @blp.arguments(IncidentChangeSchema)
    @blp.response(200, IncidentSavedSchema)
    def put(self, data: dict[str, Any], testimony_id: int, incident_id: int) -> Any:
        """Replace what an incident records."""
        testimony = _changeable(_testimony(testimony_id))
        incident = _incident(testimony, incident_id)
        with refusals("incident", INCIDENT_PATHS):
            ops.update_incident(incident, incident_input(data["incident"]), actor=g.account,
                                config=current_app.config, revision=data["revision"])
        return {"id": incident.id, "revision": testimony.revision}

    @requires(Permission.RECORD_INTERVIEWS)
    @blp.arguments(RevisionQuerySchema, location="query", unknown=RAISE)
    @blp.response(204)
    def delete(self, query: dict[str, Any], testimony_id: int, incident_id: int) -> None:
        """Remove an incident; `revision` (a query parameter) is the interview's revision you read."""
        testimony = _changeable(_testimony(testimony_id))
        incident = _incident(testimony, incident_id)
        with refusals():
            ops.remove_incident(incident, actor=g.account, config=current_app.config, revision=query["revision"])


class _Received:
    """The request body as the attachment is read from it, counted and hashed on the way."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.size = 0
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        piece = self.stream.read(size)
        self.size += len(piece)
        self.sha256.update(piece)
        return piece


@blp.route("/interviews/<int:testimony_id>/attachments")
class Attachments(MethodView):
    # The body is the file itself, as large as an attachment may be.
    decorators = [takes_raw_body, accepts_bodies_up_to("ATTACHMENT_MAX_BYTES")]

    @requires(Permission.RECORD_INTERVIEWS)
    @blp.arguments(AttachmentQuerySchema, location="query", unknown=RAISE)
    @blp.doc(requestBody={"required": True, "description": "The file, as it is.",
                          "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
             parameters=[{"in": "header", "name": "X-Filename", "required": False, "schema": {"type": "string"},
                          "description": "The file's name, percent-encoded UTF-8."}])
    @blp.response(201, AttachmentSavedSchema)
    def post(self, query: dict[str, Any], testimony_id: int) -> Any:
        """Add a file to an own interview, of a medium its consent covers: its type is recognised from its content
        and must be the `medium` declared. Larger than the limit is a 413; anything refused stores nothing."""
        testimony = _changeable(_testimony(testimony_id))
        received = _Received(request.stream)
        filename = PurePosixPath(unquote(request.headers.get("X-Filename", "")).replace("\\", "/")).name
        try:
            with refusals():
                attachment = ops.store_interview_attachment(
                    testimony, received, filename=filename, declared_medium=query["medium"], graphic=query["graphic"],
                    actor=g.account, config=current_app.config, revision=query["revision"])
        except AttachmentRefused as refused:
            status = 413 if received.size > int(current_app.config["ATTACHMENT_MAX_BYTES"]) else 422
            abort(status, message=str(refused.message), messages={"file": [str(refused.message)]})
        return {"id": attachment.id, "medium": attachment.medium, "graphic": attachment.graphic,
                "size": received.size, "sha256": received.sha256.hexdigest(), "revision": testimony.revision}


@blp.route("/interviews/<int:testimony_id>/submit")
class Submission(MethodView):
    @requires(Permission.RECORD_INTERVIEWS)
    @blp.arguments(SubmitSchema)
    @blp.arguments(IdempotencyHeaderSchema, location="headers")
    @blp.response(200, SubmittedSchema)
    def post(self, data: dict[str, Any], headers: dict[str, Any], testimony_id: int) -> Any:
        """Submit an own draft (it needs the referral step). Sent again with the same `Idempotency-Key`, it
        answers the same; a key already used for another interview is a 409."""
        testimony = _testimony(testimony_id)
        key: str = headers["idempotency_key"]
        with refusals():
            try:
                ops.submit(testimony, idempotency_key=key, actor=g.account, config=current_app.config,
                           revision=data["revision"])
            except ops.StaleDraft:
                # A retry that waited for the first attempt's lock: that attempt submitted, so answer as it did.
                db.session.refresh(testimony)
                if testimony.submission_key != key:
                    raise
            except ops.InputRefused as refused:
                if "idempotency_key" in refused.problems:  # the header's form was checked: used elsewhere
                    abort(409, message=_first(refused))
                raise
        return _submitted(testimony)


@blp.route("/interviews/<int:testimony_id>/withdrawals")
class Withdrawals(MethodView):
    @requires(Permission.RECORD_INTERVIEWS)
    @blp.arguments(WithdrawalSchema)
    @blp.response(201, WithdrawalRecordSchema)
    def post(self, data: dict[str, Any], testimony_id: int) -> Any:
        """Record that the person withdrew their consent, for every purpose (`purposes` empty) or some, and how
        the request reached you. It takes effect at once. `erasure` is refused with 403: erase through the web
        interface, which asks for a fresh two-factor code."""
        testimony = _testimony(testimony_id)
        if testimony.interviewer_id != g.account.id:
            refuse(g.account, testimony, Reason.NOT_OWN, asked=set(), purpose="withdrawal")
        if data["erasure"]:
            abort(403, message=str(_l("This action needs a fresh two-factor code; use the web interface.")))
        with refusals():
            try:
                withdrawal = withdraw(testimony, purposes=data["purposes"], received_how=data["received_how"],
                                      erasure=data["erasure"], actor=g.account, config=current_app.config)
            except AlreadyErased as erased:  # nothing left to withdraw: a conflict, not bad input
                abort(409, message=_first(erased))
        return {"id": withdrawal.id, "interview": testimony.id, "at": withdrawal.at,
                "purposes": list(withdrawal.purposes), "received_how": withdrawal.received_how,
                "erasure": withdrawal.erasure}
