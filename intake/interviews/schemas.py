"""marshmallow schemas of the interview API, and how what they load becomes the operations' inputs.

Requests are strict (an unknown field is an error) but check only the shape of what is sent: the controlled
vocabularies, dates, places and consent rules are checked by the operations, which say what is wrong in the
reader's language. In an incident, a question sent as null was declined by the person; one left out is blank.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask_babel import lazy_gettext as _l
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from consent.records import Medium, ScriptItem
from intake.consents.operations import RECEIVED_HOW, ConsentInput
from intake.interviews.operations import (
    DATE_PRECISIONS,
    IDEMPOTENCY_KEY,
    INCIDENT_DECLINABLE,
    INTERPRETER_STATES,
    INVOLVEMENT,
    NOT_HELD_REASONS,
    REFERRAL_OUTCOMES,
    SERVICES,
    SOURCE_RELATIONS,
    WELLBEING,
    IncidentInput,
    Perpetrator,
    PersonInput,
    Readiness,
    ReferralInput,
    Risk,
)

# --- fields whose refusals are translated ------------------------------------------------------------------------


class _Said:
    """Translated versions of marshmallow's own messages (flask-babel's lazy strings, rendered when sent)."""

    default_error_messages: Any = {
        "required": _l("This field is required."),
        "null": _l("This field cannot be null."),
        "validator_failed": _l("This value is not valid."),
    }


class Text(_Said, fields.String):
    default_error_messages: Any = {"invalid": _l("Give text here."), "invalid_utf8": _l("Give text here.")}


class Flag(_Said, fields.Boolean):
    default_error_messages: Any = {"invalid": _l("Give true or false.")}


class Whole(_Said, fields.Integer):
    default_error_messages: Any = {"invalid": _l("Give a whole number."), "too_large": _l("This number is too large.")}

    def __init__(self, *, strict: bool = True, **kwargs: Any) -> None:
        super().__init__(strict=strict, **kwargs)


class Day(_Said, fields.Date):
    default_error_messages: Any = {"invalid": _l("Give a date as year, month and day, e.g. 2023-09-19.")}


class Listed(_Said, fields.List):
    default_error_messages: Any = {"invalid": _l("Give a list here.")}


class Object(_Said, fields.Dict):
    default_error_messages: Any = {"invalid": _l("Give an object here.")}


class Inside(_Said, fields.Nested):
    pass


class Strict(Schema):
    """A request part: nothing unknown is accepted, and every refusal is in the reader's language."""

    class Meta:
        unknown = RAISE  # a misspelt field is an error, never silently dropped

    error_messages: Any = {
        "type": _l("Give an object here."),
        "unknown": _l("This field is not part of the request."),
    }


def _one_of(choices: Any, message: Any) -> validate.OneOf:
    return validate.OneOf(list(choices), error=message)


def _text(**kwargs: Any) -> Text:
    kwargs.setdefault("load_default", "")
    return Text(**kwargs)


# --- the interview, in one request -------------------------------------------------------------------------------


class ReadinessSchema(Strict):
    private_place = Flag(required=True, metadata={"description": "The interview can be held in private."})
    no_observers = Flag(required=True, metadata={"description": "Nobody else can see or hear it."})
    interpreter = Text(required=True, validate=_one_of(INTERPRETER_STATES, _l("Say whether an interpreter is "
                                                                              "needed and present.")))
    support_available = Flag(required=True, metadata={"description": "Services to refer the person to exist."})
    risk = Text(required=True, validate=_one_of([r.value for r in Risk], _l("Choose low, medium or high.")))
    risk_mitigated = Flag(load_default=False)


class MinorSchema(Strict):
    guardian_consented = Flag(required=True)
    child_assented = Flag(required=True)
    best_interests_note = _text()


class FollowUpSchema(Strict):
    method = _text(metadata={"description": "A safe way to contact the person again."})
    times = _text(metadata={"description": "When contacting them is safe."})


class ExclusionSchema(Strict):
    kind = Text(required=True, metadata={"description": "recipient, country or authorities_of."})
    value = Text(required=True, metadata={"description": "A recipient code or a two-letter country code."})


class ConsentSchema(Strict):
    script_language = Text(required=True, metadata={"description": "en, hy, ru or az."})
    items_confirmed = Listed(Text(), required=True, metadata={
        "description": "Every item of the script, once each: " + ", ".join(i.value for i in ScriptItem) + "."})
    method = Text(required=True, metadata={"description": "written, oral_witnessed or mark."})
    capacity_confirmed = Flag(required=True)
    voluntariness_confirmed = Flag(required=True)
    grants = Object(keys=Text(), values=Text(), load_default=dict, metadata={
        "description": "Purpose -> disclosure level, for each purpose granted; documentation is needed."})
    media = Listed(Text(), load_default=list, metadata={
        "description": "Media that may be kept: " + ", ".join(m.value for m in Medium) + "."})
    witness = _text()
    interpreter = _text()
    minor = Inside(MinorSchema, allow_none=True, load_default=None,
                   metadata={"description": "For a child: null for an adult."})
    follow_up = Inside(FollowUpSchema, allow_none=True, load_default=None,
                       metadata={"description": "Null: the person may not be contacted again."})
    exclusions = Listed(Inside(ExclusionSchema), load_default=list)
    review_date = Day(allow_none=True, load_default=None)


class PersonSchema(Strict):
    name = _text()
    birth_year = Whole(allow_none=True, load_default=None)
    contact = _text()
    relatives = _text()
    address = _text()


class NarrativeSchema(Strict):
    narrative = _text(metadata={"description": "The testimony in the person's own words."})
    narrative_declined = Flag(load_default=False)


class IncidentDateSchema(Strict):
    precision = Text(required=True, metadata={"description": ", ".join(DATE_PRECISIONS) + "."})
    start = _text(allow_none=True, metadata={"description": "YYYY-MM-DD, or YYYY-MM for month precision."})
    end = _text(allow_none=True, metadata={"description": "YYYY-MM-DD, the last day of a range."})


class PlaceSchema(Strict):
    id = _text(allow_none=True, metadata={"description": "A place of the gazetteer."})
    description = _text()


class VictimsSchema(Strict):
    count = Whole(allow_none=True, load_default=None)
    description = _text()


class PerpetratorSchema(Strict):
    description = _text()
    unit = _text()
    involvement = Text(load_default="unknown", metadata={"description": ", ".join(INVOLVEMENT) + "."})


class IncidentSchema(Strict):
    """One incident. `date`, `place`, `victims`, `perpetrators` and `source_relation` sent as null record that the
    person declined to answer; left out, they are blank."""

    type = Text(required=True, metadata={"description": "A type of the incident vocabulary."})
    description = _text()
    date = Inside(IncidentDateSchema, allow_none=True)
    place = Inside(PlaceSchema, allow_none=True)
    victims = Inside(VictimsSchema, allow_none=True)
    perpetrators = Listed(Inside(PerpetratorSchema), allow_none=True)
    source_relation = Text(allow_none=True, metadata={"description": ", ".join(SOURCE_RELATIONS) + "."})


class ReferralSchema(Strict):
    outcome = Text(required=True, metadata={"description": ", ".join(REFERRAL_OUTCOMES) + "."})
    services = Listed(Text(), load_default=list, metadata={"description": ", ".join(SERVICES) + "."})
    wellbeing = Text(load_default="settled", metadata={"description": ", ".join(WELLBEING) + "."})
    note = _text()


class NewInterviewSchema(Strict):
    """A whole interview (or its beginning, with `submit` false), stored in one transaction or not at all."""

    readiness = Inside(ReadinessSchema, required=True)
    consent = Inside(ConsentSchema, required=True)
    person = Inside(PersonSchema, allow_none=True, load_default=None,
                    metadata={"description": "Null or left out: the person remains anonymous."})
    testimony = Inside(NarrativeSchema, allow_none=True, load_default=None)
    incidents = Listed(Inside(IncidentSchema), load_default=list)
    referral = Inside(ReferralSchema, allow_none=True, load_default=None)
    submit = Flag(load_default=False, metadata={"description": "True submits at once (needs the referral); false "
                                                              "leaves a draft."})


class IdempotencyHeaderSchema(Schema):
    idempotency_key = Text(required=True, data_key="Idempotency-Key", validate=validate.Regexp(
        IDEMPOTENCY_KEY.pattern + r"\Z",
        error=_l("Send an Idempotency-Key header of 16 to 64 letters, digits, '-' or '_'.")), metadata={
        "description": "A key of your own for this submission: sent again, it answers the first result."})


# --- changes to an interview -------------------------------------------------------------------------------------


def _revision(*, strict: bool = True, **kwargs: Any) -> Whole:
    return Whole(strict=strict, validate=validate.Range(
        min=1, error=_l("Give the revision the interview had when you read it.")), metadata={
        "description": "The interview's revision when you read it: another one since is a 409."}, **kwargs)


class InterviewPatchSchema(Strict):
    revision = _revision(required=True)
    narrative = Text()
    narrative_declined = Flag()
    person = Inside(PersonSchema, allow_none=True, metadata={"description": "Null: the person remains anonymous."})
    referral = Inside(ReferralSchema)

    @validates_schema
    def _something_to_change(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if not {"narrative", "narrative_declined", "person", "referral"} & set(data):
            raise ValidationError(str(_l("Send at least one of narrative, narrative_declined, person or referral.")))


class IncidentChangeSchema(Strict):
    revision = _revision(required=True)
    incident = Inside(IncidentSchema, required=True)


class RevisionQuerySchema(Strict):
    revision = _revision(required=True, strict=False)  # a query parameter is text


class AttachmentQuerySchema(Strict):
    revision = _revision(required=True, strict=False)  # a query parameter is text
    medium = Text(required=True, validate=_one_of([m.value for m in Medium], _l(
        "Choose among audio, photo, video and document.")), metadata={"description": "What the file is."})
    graphic = Flag(load_default=False, metadata={"description": "The file shows graphic content."})


class SubmitSchema(Strict):
    revision = _revision(required=True)


class WithdrawalSchema(Strict):
    purposes = Listed(Text(), load_default=list, metadata={"description": "Empty: every purpose."})
    received_how = Text(required=True, metadata={"description": ", ".join(RECEIVED_HOW) + "."})
    erasure = Flag(load_default=False, metadata={"description": "The person asked for their data to be erased."})


class NotHeldSchema(Strict):
    stage = Text(required=True, metadata={"description": "readiness or consent."})
    reasons = Listed(Text(), required=True, metadata={"description": ", ".join(NOT_HELD_REASONS) + "."})


# --- answers -----------------------------------------------------------------------------------------------------


class PreviousInterviewSchema(Schema):
    on = fields.Date(required=True)
    team = fields.String(allow_none=True)


class InterviewStateSchema(Schema):
    id = fields.Integer(required=True)
    pseudonym = fields.String(required=True)
    status = fields.String(required=True)
    revision = fields.Integer(required=True)
    correctable_until = fields.DateTime(allow_none=True, metadata={
        "description": "Until when the interviewer may correct the submitted interview; null for a draft."})
    possible_previous_interviews = fields.List(fields.Nested(PreviousInterviewSchema), metadata={
        "description": "When and by which team this person may already have been interviewed (never who)."})


class InterviewSummarySchema(Schema):
    id = fields.Integer(required=True)
    pseudonym = fields.String(required=True)
    status = fields.String(required=True)
    revision = fields.Integer(required=True)
    interviewed_on = fields.Date(allow_none=True)
    submitted_at = fields.DateTime(allow_none=True)
    correctable_until = fields.DateTime(allow_none=True)
    incidents = fields.Integer(required=True)


class IncidentRecordSchema(Schema):
    id = fields.Integer(required=True)
    type = fields.String(required=True)
    month = fields.String(allow_none=True)
    region = fields.String(allow_none=True)
    description = fields.String()
    date = fields.Dict(allow_none=True)
    place = fields.Dict(allow_none=True)
    victims = fields.Dict(allow_none=True)
    perpetrators = fields.List(fields.Dict(), allow_none=True)
    source_relation = fields.String(allow_none=True)
    declined = fields.List(fields.String())


class AttachmentRecordSchema(Schema):
    id = fields.Integer(required=True)
    medium = fields.String(required=True)
    graphic = fields.Boolean(required=True)
    created_at = fields.DateTime()
    filename = fields.String()
    media_type = fields.String()
    size = fields.Integer()
    sha256 = fields.String()


class ConsentRecordSchema(Schema):
    version = fields.Integer(required=True)
    recorded_at = fields.DateTime()
    script_language = fields.String()
    script_hash = fields.String()
    method = fields.String()
    grants = fields.Dict(keys=fields.String(), values=fields.String())
    media = fields.List(fields.String())
    exclusions = fields.List(fields.Dict())
    is_minor = fields.Boolean()
    follow_up_permitted = fields.Boolean()
    review_date = fields.Date(allow_none=True)
    witness = fields.String()
    interpreter = fields.String()
    best_interests_note = fields.String()
    follow_up = fields.Dict(allow_none=True)


class InterviewRecordSchema(Schema):
    id = fields.Integer(required=True)
    pseudonym = fields.String(required=True)
    status = fields.String(required=True)
    revision = fields.Integer(required=True)
    language = fields.String(allow_none=True)
    interviewed_on = fields.Date(allow_none=True)
    submitted_at = fields.DateTime(allow_none=True)
    correctable_until = fields.DateTime(allow_none=True)
    readiness = fields.Dict(allow_none=True)
    person = fields.Dict(allow_none=True, metadata={"description": "The person's identity; null: anonymous."})
    testimony = fields.Nested(NarrativeSchema)
    declined = fields.List(fields.String(), metadata={"description": "Questions the person declined."})
    pauses = fields.List(fields.Dict())
    referral = fields.Dict(allow_none=True)
    incidents = fields.List(fields.Nested(IncidentRecordSchema))
    consent = fields.Nested(ConsentRecordSchema, allow_none=True)
    attachments = fields.List(fields.Nested(AttachmentRecordSchema))


class IncidentSavedSchema(Schema):
    id = fields.Integer(required=True)
    revision = fields.Integer(required=True)


class AttachmentSavedSchema(Schema):
    id = fields.Integer(required=True)
    medium = fields.String(required=True)
    graphic = fields.Boolean(required=True)
    size = fields.Integer(required=True)
    sha256 = fields.String(required=True, metadata={"description": "SHA-256 of the file as received, hex."})
    revision = fields.Integer(required=True)


class SubmittedSchema(Schema):
    id = fields.Integer(required=True)
    status = fields.String(required=True)
    revision = fields.Integer(required=True)
    correctable_until = fields.DateTime(allow_none=True)


class WithdrawalRecordSchema(Schema):
    id = fields.Integer(required=True)
    interview = fields.Integer(required=True)
    at = fields.DateTime(required=True)
    purposes = fields.List(fields.String(), required=True, metadata={"description": "Empty: every purpose."})
    received_how = fields.String(required=True)
    erasure = fields.Boolean(required=True)


class NotHeldRecordSchema(Schema):
    id = fields.Integer(required=True)


# --- from what a schema loaded to the operations' inputs ---------------------------------------------------------


def readiness_input(data: Mapping[str, Any]) -> Readiness:
    return Readiness(private_place=data["private_place"], no_observers=data["no_observers"],
                     interpreter=data["interpreter"], support_available=data["support_available"],
                     risk=Risk(data["risk"]), risk_mitigated=data["risk_mitigated"])


def consent_input(data: Mapping[str, Any]) -> ConsentInput:
    minor = data["minor"]
    follow_up = data["follow_up"]
    return ConsentInput(
        script_language=data["script_language"], items_confirmed=frozenset(data["items_confirmed"]),
        method=data["method"], capacity_confirmed=data["capacity_confirmed"],
        voluntariness_confirmed=data["voluntariness_confirmed"], grants=dict(data["grants"]),
        media=frozenset(data["media"]), witness=data["witness"], interpreter=data["interpreter"],
        is_minor=minor is not None, guardian_consented=bool(minor and minor["guardian_consented"]),
        child_assented=bool(minor and minor["child_assented"]),
        best_interests_note=minor["best_interests_note"] if minor else "",
        follow_up_permitted=follow_up is not None, follow_up_method=follow_up["method"] if follow_up else "",
        follow_up_times=follow_up["times"] if follow_up else "",
        exclusions=tuple((e["kind"], e["value"]) for e in data["exclusions"]), review_date=data["review_date"],
    )


def person_input(data: Mapping[str, Any] | None) -> PersonInput | None:
    if data is None:
        return None
    return PersonInput(name=data["name"], birth_year=data["birth_year"], contact=data["contact"],
                       relatives=data["relatives"], address=data["address"])


def incident_input(data: Mapping[str, Any]) -> IncidentInput:
    declined = frozenset(name for name in INCIDENT_DECLINABLE if name in data and data[name] is None)
    when = data.get("date") or {}
    place = data.get("place") or {}
    victims = data.get("victims") or {}
    return IncidentInput(
        type=data["type"], description=data["description"], date_precision=when.get("precision", "unknown"),
        date_start=when.get("start") or "", date_end=when.get("end") or "", place_id=place.get("id") or "",
        place_description=place.get("description", ""), victims_count=victims.get("count"),
        victims_description=victims.get("description", ""),
        perpetrators=tuple(Perpetrator(description=p["description"], unit=p["unit"], involvement=p["involvement"])
                           for p in data.get("perpetrators") or ()),
        source_relation=data.get("source_relation") or "", declined=declined,
    )


def referral_input(data: Mapping[str, Any]) -> ReferralInput:
    return ReferralInput(outcome=data["outcome"], services=frozenset(data["services"]), wellbeing=data["wellbeing"],
                         note=data["note"])


# Where each field an operation names is in the request (operations name fields by their form names).
CONSENT_PATHS = {
    "items": "items_confirmed",
    "guardian_consented": "minor.guardian_consented",
    "child_assented": "minor.child_assented",
    "best_interests_note": "minor.best_interests_note",
    "follow_up_method": "follow_up.method",
    "follow_up_times": "follow_up.times",
}
INCIDENT_PATHS = {
    "date_precision": "date.precision",
    "date_start": "date.start",
    "date_end": "date.end",
    "place_id": "place.id",
    "place_description": "place.description",
    "victims_count": "victims.count",
    "victims_description": "victims.description",
}
