"""Forms of the interview wizard (CSRF through Flask-WTF), and the names the pages show for the codes an
interview records.

The forms check only what a form can know (a number is a number, a date is a date); what an interview may hold
is checked by the operations, whose refusals name the same fields. Every form that changes a draft carries the
draft's `revision` as the page showed it, so that a page left open in another tab cannot overwrite newer work.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    Field,
    HiddenField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import AnyOf, InputRequired, Length, Optional, ValidationError
from wtforms.widgets import CheckboxInput, DateInput, HiddenInput, ListWidget

from consent import scripts
from consent.records import Disclosure, ExclusionKind, Medium, Method, Purpose, ScriptItem
from intake.consents.operations import ConsentInput
from intake.core import gazetteer, vocabulary
from intake.core.dates import parse_day
from intake.core.i18n import LANGUAGE_NAMES
from intake.interviews.operations import (
    DATE_PRECISIONS,
    INCIDENT_DECLINABLE,
    INTERPRETER_STATES,
    INVOLVEMENT,
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

# ---------------------------------------------------------------------------------------------------------------
# What the pages call the codes

NOT_HELD_REASON_LABELS: dict[str, Any] = {
    "no_private_place": _l("There is no private place to talk."),
    "observers_present": _l("Other people can see or hear the interview."),
    "interpreter_missing": _l("An interpreter is needed, but none is present and briefed."),
    "no_support_services": _l("There are no support services to refer the person to."),
    "risk_unmitigated": _l("The interview puts the person at risk, and the risk has not been reduced."),
    "consent_refused": _l("The person did not consent."),
    "documentation_refused": _l("The person did not agree to their testimony being kept."),
    "stopped_before_consent": _l("The interview stopped before consent was given."),
}
INTERPRETER_LABELS: dict[str, Any] = {
    "not_needed": _l("Not needed"),
    "present_briefed": _l("Needed, present and briefed"),
    "missing": _l("Needed, but not present or not briefed"),
}
RISK_LABELS: dict[str, Any] = {Risk.LOW: _l("Low"), Risk.MEDIUM: _l("Medium"), Risk.HIGH: _l("High")}
METHOD_LABELS: dict[str, Any] = {
    Method.WRITTEN: _l("Written: the person signed"),
    Method.ORAL_WITNESSED: _l("Oral, in front of a witness"),
    Method.MARK: _l("A mark instead of a signature"),
}
SCRIPT_ITEM_LABELS: dict[str, Any] = {
    ScriptItem.WHO_COLLECTS_AND_WHY: _l("Who we are and why we collect testimony"),
    ScriptItem.USES: _l("How the testimony is used"),
    ScriptItem.RECIPIENTS: _l("Who may receive it"),
    ScriptItem.RISKS_AND_BENEFITS: _l("Risks and benefits"),
    ScriptItem.RIGHT_TO_REFUSE: _l("The right to say no"),
    ScriptItem.RIGHT_TO_SKIP_PAUSE_STOP: _l("The right to skip, pause or stop"),
    ScriptItem.RIGHT_TO_WITHDRAW: _l("The right to withdraw later"),
    ScriptItem.WHAT_WE_CAN_AND_CANNOT_DO: _l("What we can and cannot do"),
    ScriptItem.CONTACT: _l("How to contact us"),
}
PURPOSE_LABELS: dict[str, Any] = {
    Purpose.DOCUMENTATION: _l("Keep and study the testimony"),
    Purpose.REFERRAL: _l("Tell services that can help"),
    Purpose.UN_MECHANISMS: _l("United Nations bodies"),
    Purpose.INTERNATIONAL_JUSTICE: _l("International courts and investigators"),
    Purpose.DOMESTIC_PROSECUTION: _l("Prosecutors in a country"),
    Purpose.ADVOCACY: _l("Public reports"),
    Purpose.MEDIA: _l("Journalists"),
}
DISCLOSURE_LABELS: dict[str, Any] = {
    Disclosure.ANONYMOUS: _l("Anonymous"),
    Disclosure.PSEUDONYMOUS: _l("Code instead of the name"),
    Disclosure.CONFIDENTIAL: _l("Name shared in confidence"),
    Disclosure.PUBLIC: _l("Name may be public"),
}
MEDIUM_LABELS: dict[str, Any] = {
    Medium.AUDIO: _l("Audio recording"),
    Medium.PHOTO: _l("Photo"),
    Medium.VIDEO: _l("Video"),
    Medium.DOCUMENT: _l("Document"),
}
EXCLUSION_TEXTS: dict[str, Any] = {
    ExclusionKind.AUTHORITIES_OF: lambda code: _l("The authorities of %(country)s", country=code),
    ExclusionKind.COUNTRY: lambda code: _l("Anyone in %(country)s", country=code),
    ExclusionKind.RECIPIENT: lambda code: _l("The organisation %(recipient)s", recipient=code),
}


def exclusion_text(kind: str, value: str) -> str:
    """An excluded recipient, as a phrase in the reader's language."""
    text = EXCLUSION_TEXTS.get(kind)
    return str(text(value)) if text is not None else f"{kind} {value}"
STATUS_LABELS: dict[str, Any] = {
    "draft": _l("Draft"),
    "submitted": _l("Submitted"),
    "in_review": _l("In review"),
    "reviewed": _l("Reviewed"),
    "archived": _l("Archived"),
}
DATE_PRECISION_LABELS: dict[str, Any] = {
    "day": _l("The exact day"),
    "month": _l("The month"),
    "approximate": _l("About this day"),
    "range": _l("Some time in a period"),
    "unknown": _l("Not known"),
}
SOURCE_RELATION_LABELS: dict[str, Any] = {
    "lived": _l("It happened to them"),
    "saw": _l("They saw it"),
    "heard": _l("They heard about it from others"),
    "document": _l("They know it from a document"),
}
INVOLVEMENT_LABELS: dict[str, Any] = {
    "carried_out": _l("Carried it out"),
    "ordered": _l("Ordered it"),
    "assisted": _l("Helped to carry it out"),
    "present": _l("Was present"),
    "unknown": _l("Not known"),
}
DECLINABLE_LABELS: dict[str, Any] = {
    "date": _l("When it happened"),
    "place": _l("Where it happened"),
    "victims": _l("Victims"),
    "perpetrators": _l("Alleged perpetrators"),
    "source_relation": _l("How the person knows"),
}
REFERRAL_OUTCOME_LABELS: dict[str, Any] = {
    "accepted": _l("Offered and accepted"),
    "declined": _l("Offered and declined"),
    "not_needed": _l("Not needed"),
}
SERVICE_LABELS: dict[str, Any] = {
    "health": _l("Health care"),
    "psychosocial": _l("Psychological and social support"),
    "legal_aid": _l("Legal aid"),
    "shelter": _l("Shelter"),
    "protection": _l("Protection"),
    "livelihood": _l("Livelihood support"),
    "family_tracing": _l("Family tracing"),
    "other": _l("Another service"),
}
WELLBEING_LABELS: dict[str, Any] = {
    "settled": _l("Calm at the end"),
    "distressed_supported": _l("Distressed, and was supported"),
    "stopped_early": _l("The interview stopped early"),
}
GROUP_LABELS: dict[str, Any] = {
    "attacks": _l("Attacks"),
    "detention": _l("Detention and disappearance"),
    "ill_treatment": _l("Torture and ill-treatment"),
    "killing": _l("Killing"),
    "sexual_violence": _l("Sexual violence"),
    "displacement": _l("Displacement"),
    "property": _l("Property"),
    "blockade": _l("Blockade and denial of supplies"),
    "other": _l("Other"),
}

OUT_OF_DATE = _l("This page is out of date or incomplete, so nothing was saved. Open it again from the interview.")
ANSWER = _l("Answer this question.")
CHOOSE = _l("Choose one of the options.")
DAY_HELP = _l("Enter a date as year-month-day, for example 2025-03-31.")
# What a list field of codes may hold (a comma- or space-separated list).
LIST_SEPARATORS = re.compile(r"[\s,;]+")


def locale() -> str:
    return str(get_locale() or "en")


def label(labels: Mapping[str, Any], code: str | None) -> str:
    """The name of `code` in the reader's language (the code itself when it has none)."""
    if code is None:
        return ""
    found = labels.get(code)
    return str(found) if found is not None else code


def _choices(labels: Mapping[str, Any], codes: Iterable[str]) -> list[SelectChoice]:
    return [SelectChoice(str(code), labels[code]) for code in codes]


YES_NO = {"yes": _l("Yes"), "no": _l("No")}


def _stripped(text: str | None) -> str | None:
    return text.strip() if text else text


def at_most(n: int) -> Length:
    return Length(max=n, message=_l("This is too long: at most %(limit)d characters.", limit=n))



def calendar_day(_form: Any, field: Field) -> None:
    if field.data and parse_day(field.data) is None:
        raise ValidationError(DAY_HELP)


def yes_no(text: Any, description: Any = None) -> RadioField:
    """A question answered yes or no, with no answer chosen in advance."""
    return RadioField(text, choices=_choices(YES_NO, YES_NO), validate_choice=False,
                      description=description,
                      validators=[InputRequired(message=ANSWER), AnyOf(["yes", "no"], message=CHOOSE)])


def one_of(text: Any, labels: Mapping[str, Any], codes: Iterable[str], **kwargs: Any) -> RadioField:
    codes = list(codes)
    return RadioField(text, choices=_choices(labels, codes), validate_choice=False,
                      validators=[InputRequired(message=ANSWER), AnyOf(codes, message=CHOOSE)], **kwargs)


class CheckboxChoices(SelectMultipleField):
    """A group of checkboxes. Values outside the choices reach the operation, which names the problem."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("validate_choice", False)
        super().__init__(*args, **kwargs)


class DraftForm(FlaskForm):
    """A form that changes a draft: it carries the revision the page showed."""

    revision = IntegerField(widget=HiddenInput(), validators=[InputRequired(message=OUT_OF_DATE)])

    def validate(self, extra_validators: Any = None) -> bool:
        valid: bool = super().validate(extra_validators)
        if self.revision.errors:  # nobody fills this field in: say so above the form instead of next to it
            self.form_errors.append(OUT_OF_DATE)
            self.revision.errors = []
        return valid


# ---------------------------------------------------------------------------------------------------------------
# Before the interview: readiness and consent


class ReadinessForm(FlaskForm):
    private_place = yes_no(_l("Are you in a private place, where nobody else can hear?"))
    no_observers = yes_no(_l("Is nobody watching or listening who does not need to be there?"))
    interpreter = one_of(_l("Interpreter"), INTERPRETER_LABELS, INTERPRETER_STATES)
    support_available = yes_no(_l("Are there support services you can refer the person to?"),
                               description=_l("For example health care, psychological support or legal aid."))
    risk = one_of(_l("How risky is this interview for the person?"), RISK_LABELS, [r.value for r in Risk],
                  description=_l("Think of who might learn that they spoke to you, and what could follow."))
    risk_mitigated = BooleanField(
        _l("The risk is mitigated"),
        description=_l("Tick only when what makes the interview risky has been dealt with, for example by a "
                       "safer place or time."))
    language = SelectField(
        _l("Language of the interview"), choices=_choices(LANGUAGE_NAMES, scripts.LANGUAGES),
        default="en", validate_choice=False, description=_l("The consent script is read in this language."),
        validators=[InputRequired(message=ANSWER), AnyOf(list(scripts.LANGUAGES), message=CHOOSE)])

    def readiness(self) -> Readiness:
        return readiness_from(self.answers())

    def answers(self) -> dict[str, Any]:
        """The answers as the session keeps them until consent is recorded: nothing about the person."""
        return {name: self[name].data for name in ("private_place", "no_observers", "interpreter",
                                                   "support_available", "risk", "language")} | {
            "risk_mitigated": bool(self.risk_mitigated.data)}


def readiness_from(answers: Mapping[str, Any]) -> Readiness:
    return Readiness(private_place=answers.get("private_place") == "yes",
                     no_observers=answers.get("no_observers") == "yes",
                     interpreter=str(answers.get("interpreter", "")),
                     support_available=answers.get("support_available") == "yes",
                     risk=Risk(answers.get("risk", Risk.HIGH.value)),
                     risk_mitigated=bool(answers.get("risk_mitigated")))


def _codes(text: str | None, *, upper: bool) -> list[str]:
    values = [v for v in LIST_SEPARATORS.split(text or "") if v]
    return [v.upper() if upper else v.lower() for v in values]


COUNTRY_CODES = re.compile(r"[A-Za-z]{2}")
COUNTRY_HELP = _l("Two-letter country codes separated by commas, for example AZ, RU.")


def country_codes(_form: Any, field: Field) -> None:
    if not all(COUNTRY_CODES.fullmatch(v) for v in _codes(field.data, upper=True)):
        raise ValidationError(_l("A country is named by its two-letter code, e.g. AM, AZ or RU."))


class ConsentForm(FlaskForm):
    """The consent, as the script was read. Each purpose's grant and disclosure fields are added below."""

    # A random key set when the page is shown: pressing the button twice records one consent, not two.
    start_key = HiddenField()
    items = CheckboxChoices(_l("The consent script"),
                            choices=_choices(SCRIPT_ITEM_LABELS, ScriptItem))
    capacity_confirmed = BooleanField(_l("The person feels well enough to talk and understood what was explained"))
    voluntariness_confirmed = BooleanField(_l("The person chooses freely to take part"))
    method = RadioField(_l("How the person gave consent"), choices=_choices(METHOD_LABELS, Method),
                        validate_choice=False,
                        description=_l("There is no fingerprint option: a person who does not sign makes a mark "
                                       "instead."))
    witness = StringField(_l("Witness's name"), description=_l("Needed when consent is given orally."),
                          validators=[at_most(200)], filters=[_stripped])
    interpreter = StringField(_l("Interpreter's name"), validators=[at_most(200)], filters=[_stripped])
    is_minor = BooleanField(_l("The person is a child"))
    guardian_consented = BooleanField(_l("A parent or guardian consents"))
    child_assented = BooleanField(_l("The child wants to take part"))
    best_interests_note = TextAreaField(_l("Why taking part is in the child's best interests"),
                                        validators=[at_most(2000)])
    media = CheckboxChoices(_l("What may be recorded or kept"),
                            choices=_choices(MEDIUM_LABELS, Medium),
                            description=_l("Only files of the kinds ticked here can be attached."))
    follow_up_permitted = BooleanField(_l("The person may be contacted again"))
    follow_up_method = StringField(_l("A safe way to contact them"), validators=[at_most(200)], filters=[_stripped])
    follow_up_times = StringField(_l("Times when contact is safe"), validators=[at_most(200)], filters=[_stripped])
    excluded_authorities = StringField(_l("Never share with the authorities of these countries"),
                                       description=COUNTRY_HELP, validators=[at_most(200), country_codes])
    excluded_countries = StringField(_l("Never share with anyone in these countries"), description=COUNTRY_HELP,
                                     validators=[at_most(200), country_codes])
    excluded_recipients = StringField(_l("Never share with these organisations"),
                                      description=_l("Their codes, separated by commas."),
                                      validators=[at_most(500)])
    review_date = StringField(_l("Date to review this consent with the person"), widget=DateInput(),
                              description=_l("Optional. A day in the future."),
                              validators=[Optional(), calendar_day])

    def grants(self) -> dict[str, str]:
        return {p.value: self[f"disclosure_{p.value}"].data or "" for p in Purpose
                if self[f"grant_{p.value}"].data == "yes"}

    def exclusions(self) -> tuple[tuple[str, str], ...]:
        found = [(ExclusionKind.AUTHORITIES_OF.value, v) for v in _codes(self.excluded_authorities.data, upper=True)]
        found += [(ExclusionKind.COUNTRY.value, v) for v in _codes(self.excluded_countries.data, upper=True)]
        found += [(ExclusionKind.RECIPIENT.value, v) for v in _codes(self.excluded_recipients.data, upper=False)]
        return tuple(found)

    def consent_input(self, language: str) -> ConsentInput:
        return ConsentInput(
            script_language=language, items_confirmed=frozenset(self.items.data or ()),
            method=self.method.data or "", capacity_confirmed=bool(self.capacity_confirmed.data),
            voluntariness_confirmed=bool(self.voluntariness_confirmed.data), grants=self.grants(),
            media=frozenset(self.media.data or ()), witness=self.witness.data or "",
            interpreter=self.interpreter.data or "", is_minor=bool(self.is_minor.data),
            guardian_consented=bool(self.guardian_consented.data), child_assented=bool(self.child_assented.data),
            best_interests_note=self.best_interests_note.data or "",
            follow_up_permitted=bool(self.follow_up_permitted.data),
            follow_up_method=self.follow_up_method.data or "", follow_up_times=self.follow_up_times.data or "",
            exclusions=self.exclusions(), review_date=parse_day(self.review_date.data or ""),
        )


for _purpose in Purpose:
    setattr(ConsentForm, f"grant_{_purpose.value}", RadioField(
        PURPOSE_LABELS[_purpose], choices=_choices(YES_NO, YES_NO), default="no",
        validate_choice=False))
    setattr(ConsentForm, f"disclosure_{_purpose.value}", SelectField(
        _l("How much of who they are may go with it"), choices=_choices(DISCLOSURE_LABELS, Disclosure),
        default=Disclosure.ANONYMOUS.value, validate_choice=False))

# Where a consent refusal names a field the form shows under another name.
CONSENT_FIELDS = {"grants": "grant_documentation", "exclusions": "excluded_recipients",
                  "script_language": ""}


# ---------------------------------------------------------------------------------------------------------------
# The person


class PersonForm(DraftForm):
    keep_anonymous = RadioField(
        _l("Who the person is"),
        choices=[SelectChoice("anonymous", _l("The person remains anonymous")),
                 SelectChoice("identified", _l("Record who the person is"))],
        default="anonymous", validate_choice=False,
        description=_l("Ask only what is needed. Anonymous is always possible and is the default."),
        validators=[InputRequired(message=ANSWER), AnyOf(["anonymous", "identified"], message=CHOOSE)])
    name = StringField(_l("Name of the person"), validators=[at_most(200)], filters=[_stripped],
                       render_kw={"autocomplete": "off"})
    birth_year = StringField(_l("Year of birth"), validators=[Optional()], filters=[_stripped],
                             render_kw={"inputmode": "numeric", "autocomplete": "off"})
    contact = StringField(_l("Contact"), description=_l("Only a way of contact the person says is safe."),
                          validators=[at_most(200)], filters=[_stripped], render_kw={"autocomplete": "off"})
    relatives = TextAreaField(_l("Relatives"), validators=[at_most(2000)])
    address = StringField(_l("Address"), validators=[at_most(200)], filters=[_stripped],
                          render_kw={"autocomplete": "off"})

    IDENTITY_FIELDS = ("name", "birth_year", "contact", "relatives", "address")

    def validate_birth_year(self, field: Field) -> None:
        if field.data and not re.fullmatch(r"[0-9]{4}", field.data):
            raise ValidationError(_l("Give the year of birth as four digits, e.g. 1980."))

    def validate_keep_anonymous(self, field: Field) -> None:
        if field.data == "anonymous" and any((self[name].data or "").strip() for name in self.IDENTITY_FIELDS):
            raise ValidationError(_l("You chose to keep the person anonymous, but filled in who they are. Clear "
                                     "those fields, or choose to record who the person is."))

    def person_input(self) -> PersonInput | None:
        """What to keep of who the person is; None when they remain anonymous."""
        if self.keep_anonymous.data == "anonymous":
            return None
        return PersonInput(name=self.name.data or "", birth_year=int(self.birth_year.data) if self.birth_year.data
                           else None, contact=self.contact.data or "", relatives=(self.relatives.data or "").strip(),
                           address=self.address.data or "")

    def fill(self, identity: Mapping[str, Any] | None) -> None:
        self.keep_anonymous.data = "identified" if identity else "anonymous"
        for name in self.IDENTITY_FIELDS:
            value = (identity or {}).get(name)
            self[name].data = "" if value is None else str(value)


# ---------------------------------------------------------------------------------------------------------------
# Testimony and incidents


class NarrativeForm(DraftForm):
    narrative = TextAreaField(_l("What the person said, in their own words"),
                              description=_l("Write down what they tell you as they say it. Leave out what they "
                                             "ask you not to write down."),
                              validators=[at_most(100_000)])
    declined = BooleanField(_l("The person declined to give an account"))


class PauseForm(NarrativeForm):
    """The pause and resume buttons sit in the testimony form, so what was written is saved first."""

    action = StringField(validators=[InputRequired(message=OUT_OF_DATE),
                                     AnyOf(["pause", "resume"], message=OUT_OF_DATE)])

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        if self.action.errors:
            self.form_errors.extend(self.action.errors)
            self.action.errors = []
        return valid


class IncidentForm(DraftForm):
    type = SelectField(_l("What happened"), validate_choice=False, choices=[],
                       validators=[InputRequired(message=_l("Choose a type of incident from the list."))])
    description = TextAreaField(_l("In a few words"), validators=[at_most(2000)])
    date_precision = SelectField(_l("How precisely is the date known?"), validate_choice=False,
                                 choices=_choices(DATE_PRECISION_LABELS, DATE_PRECISIONS), default="day")
    date_start = StringField(_l("Date"), filters=[_stripped],
                             description=_l("Year-month-day, e.g. 2023-09-19; for a month, year-month, e.g. "
                                            "2023-09; for a period, its first day."),
                             render_kw={"inputmode": "numeric", "autocomplete": "off"})
    date_end = StringField(_l("Last day of the period"), filters=[_stripped],
                           description=_l("Only for a period, e.g. 2023-09-28."),
                           render_kw={"inputmode": "numeric", "autocomplete": "off"})
    declined_date = BooleanField(_l("The person declined to answer"))
    place_id = SelectField(_l("Place"), validate_choice=False, choices=[],
                           description=_l("Listed by every name people use for it. Leave it empty if the place "
                                          "is not in the list, and describe it below."))
    place_description = TextAreaField(_l("Place in words"), validators=[at_most(2000)])
    declined_place = BooleanField(_l("The person declined to answer"))
    victims_count = StringField(_l("Number of victims"), filters=[_stripped],
                                render_kw={"inputmode": "numeric", "autocomplete": "off"})
    victims_description = TextAreaField(_l("Who the victims were"), validators=[at_most(2000)])
    declined_victims = BooleanField(_l("The person declined to answer"))
    perpetrator_description = TextAreaField(_l("Alleged perpetrator"), validators=[at_most(2000)],
                                            description=_l("As the person describes them, e.g. uniform, "
                                                           "language, vehicles."))
    perpetrator_unit = StringField(_l("Unit, if known"), validators=[at_most(200)], filters=[_stripped])
    perpetrator_involvement = SelectField(_l("How they were involved"), validate_choice=False,
                                          choices=_choices(INVOLVEMENT_LABELS, INVOLVEMENT), default="unknown")
    declined_perpetrators = BooleanField(_l("The person declined to answer"))
    source_relation = RadioField(_l("How does the person know about it?"), validate_choice=False,
                                 choices=_choices(SOURCE_RELATION_LABELS, SOURCE_RELATIONS))
    declined_source_relation = BooleanField(_l("The person declined to answer"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        here = locale()
        self.type.choices = [SelectChoice(t.id, t.label(here)) for t in vocabulary.incident_types()]
        self.place_id.choices = [SelectChoice("", _l("Not in the list, or not known"))] + [
            SelectChoice(p.id, place_label(p, here)) for p in gazetteer.places()]

    def validate_date_start(self, field: Field) -> None:
        # The operation keeps the text of a date whose precision is "not known" unchecked: refuse it here.
        if self.date_precision.data == "unknown" and field.data and not self.declined_date.data:
            raise ValidationError(_l("You chose that the date is not known: clear the date, or say how precisely "
                                     "it is known."))

    def validate_victims_count(self, field: Field) -> None:
        if field.data and not re.fullmatch(r"[0-9]{1,7}", field.data):
            raise ValidationError(_l("Give the number of victims as a whole number, or leave it empty."))

    def incident_input(self) -> IncidentInput:
        perpetrators: tuple[Perpetrator, ...] = ()
        description = (self.perpetrator_description.data or "").strip()
        unit = self.perpetrator_unit.data or ""
        if description or unit:
            perpetrators = (Perpetrator(description=description, unit=unit,
                                        involvement=self.perpetrator_involvement.data or "unknown"),)
        declined = frozenset(q for q in INCIDENT_DECLINABLE if self[f"declined_{q}"].data)
        return IncidentInput(
            type=self.type.data or "", description=(self.description.data or "").strip(),
            date_precision=self.date_precision.data or "unknown", date_start=self.date_start.data or "",
            date_end=self.date_end.data or "", place_id=self.place_id.data or "",
            place_description=(self.place_description.data or "").strip(),
            victims_count=int(self.victims_count.data) if self.victims_count.data else None,
            victims_description=(self.victims_description.data or "").strip(), perpetrators=perpetrators,
            source_relation=self.source_relation.data or "", declined=declined,
        )

    def fill(self, given: IncidentInput) -> None:
        """Show a stored incident (for editing)."""
        self.type.data = given.type
        self.description.data = given.description
        self.date_precision.data = given.date_precision
        self.date_start.data = given.date_start
        self.date_end.data = given.date_end
        self.place_id.data = given.place_id
        self.place_description.data = given.place_description
        self.victims_count.data = "" if given.victims_count is None else str(given.victims_count)
        self.victims_description.data = given.victims_description
        first = given.perpetrators[0] if given.perpetrators else Perpetrator()
        self.perpetrator_description.data = first.description
        self.perpetrator_unit.data = first.unit
        self.perpetrator_involvement.data = first.involvement
        self.source_relation.data = given.source_relation or None
        for question in INCIDENT_DECLINABLE:
            self[f"declined_{question}"].data = question in given.declined


# Where an incident refusal names a field the form shows under another name.
INCIDENT_FIELDS = {"perpetrators": "perpetrator_description", "declined": ""}


def place_label(place: gazetteer.Place, here: str) -> str:
    """A place by its name in the reader's language, followed by its names in the other languages."""
    shown = place.name(here)
    others = [n for n in dict.fromkeys(place.names[lang] for lang in gazetteer.NAME_LANGUAGES) if n != shown]
    return f"{shown} ({', '.join(others)})" if others else shown


def incident_type_groups(here: str) -> list[tuple[str, list[vocabulary.IncidentType]]]:
    """The incident types by group, in the vocabulary's order, with each group's name."""
    return [(label(GROUP_LABELS, group), [t for t in vocabulary.incident_types() if t.group == group])
            for group in vocabulary.GROUPS]


# ---------------------------------------------------------------------------------------------------------------
# Attachments, referral, submission


class AttachmentForm(DraftForm):
    file = FileField(_l("File"), validators=[FileRequired(message=_l("Choose a file to attach."))])
    medium = RadioField(_l("What the file is"), validate_choice=False, choices=[],
                        validators=[InputRequired(message=_l("Say what the file is.")),
                                    AnyOf([m.value for m in Medium], message=CHOOSE)])
    graphic = BooleanField(_l("It shows graphic content"),
                           description=_l("Reviewers are warned before they open it."))

    def offer(self, media: Iterable[str]) -> None:
        """Offer only the media the consent covers."""
        self.medium.choices = _choices(MEDIUM_LABELS, [m.value for m in Medium if m.value in set(media)])


class ReferralForm(DraftForm):
    wellbeing = one_of(_l("How was the person at the end of the interview?"), WELLBEING_LABELS, WELLBEING)
    outcome = one_of(_l("Referral to support services"), REFERRAL_OUTCOME_LABELS, REFERRAL_OUTCOMES)
    services = CheckboxChoices(_l("Services the person accepted to be referred to"),
                               choices=_choices(SERVICE_LABELS, SERVICES),
                               description=_l("Only when the referral was accepted."))
    note = TextAreaField(_l("Note"), description=_l("What the services need to know, nothing more."),
                         validators=[at_most(2000)])

    def referral_input(self) -> ReferralInput:
        return ReferralInput(outcome=self.outcome.data or "", services=frozenset(self.services.data or ()),
                             wellbeing=self.wellbeing.data or "", note=self.note.data or "")

    def fill(self, referral: Mapping[str, Any] | None) -> None:
        if not referral:
            return
        self.wellbeing.data = referral.get("wellbeing")
        self.outcome.data = referral.get("outcome")
        self.services.data = list(referral.get("services") or [])
        self.note.data = referral.get("note", "")


class SubmitForm(DraftForm):
    # A random key set when the review page is shown: a retried or double-clicked submit is recognised.
    idempotency_key = HiddenField(validators=[InputRequired(message=OUT_OF_DATE)])

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        if self.idempotency_key.errors:
            self.idempotency_key.errors = []
            if OUT_OF_DATE not in self.form_errors:
                self.form_errors.append(OUT_OF_DATE)
        return valid


class RemoveIncidentForm(DraftForm):
    """The button that removes an incident."""
