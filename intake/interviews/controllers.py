"""Handlers of the interview wizard. Thin: parse the form, call an operation, render. The pipeline commits.

Nothing is stored before consent: the readiness answers wait in the server-side session (they say nothing about
the person) until consent is recorded, and a refusal at either step keeps only that the interview was not held.
Every page that shows what was recorded reads it through `open_record`, which decides, decrypts and audits; a
change to someone else's record is refused the same way before any operation runs.

A form that changes a draft carries the revision its page showed. An operation runs in a savepoint, so that when
it refuses (bad input, a stale page, a file it will not keep) nothing it began remains, not even the raised
revision. Autosave (`X-Autosave: 1`, sent by interview.js) saves like the form's button but answers 204 with the
new revision in `X-Revision`, or the refusal's status with no body.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import (
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import format_date, format_datetime
from flask_babel import lazy_gettext as _l

from consent import scripts
from consent.records import Disclosure, Medium, Purpose
from intake.accounts.forms import ButtonForm
from intake.core import gazetteer, vocabulary
from intake.core.access import ALL_PARTS, Part, RecordView, open_record, require
from intake.core.db import db, utcnow, writes_on_get
from intake.core.pages import attach_error, render_form
from intake.core.security import Permission, requires
from intake.core.web import accepts_bodies_up_to
from intake.interviews import forms as f
from intake.interviews import operations as ops
from intake.testimonies.models import Incident, Testimony, TestimonyStatus
from intake.testimonies.operations import AttachmentRefused

T = TypeVar("T")

READINESS_KEY = "interview_readiness"
PURPOSE = "interview"
STEP_COUNT = 7
STEPS: tuple[tuple[str, Any], ...] = (
    ("readiness", _l("Safety and readiness")),
    ("consent", _l("Consent")),
    ("person", _l("The person")),
    ("testimony", _l("Testimony and incidents")),
    ("attachments", _l("Attachments")),
    ("referral", _l("Wellbeing and referral")),
    ("review", _l("Review and submit")),
)


# ---------------------------------------------------------------------------------------------------------------
# What the templates use


def when(moment: datetime | None) -> str:
    return format_datetime(moment, "short") + " UTC" if moment is not None else ""


def day(value: Any) -> str:
    return format_date(value, "medium") if value is not None else ""


def place_name(place_id: str | None) -> str:
    place = gazetteer.get(place_id) if place_id else None
    return place.name(f.locale()) if place is not None else ""


def incident_type_name(type_id: str) -> str:
    kind = vocabulary.incident_type(type_id)
    return kind.label(f.locale()) if kind is not None else type_id


def place_names(place: gazetteer.Place) -> str:
    """Every name of a place, for the place filter of interview.js."""
    return "|".join(dict.fromkeys(place.all_names()))


def steps(current: int, testimony_id: int | None) -> list[dict[str, Any]]:
    """The wizard's steps for the progress list: the steps of a recorded interview link to their pages."""
    found = []
    for number, (endpoint, title) in enumerate(STEPS, start=1):
        url = None
        if testimony_id is not None and number >= 3 and number != current:
            url = url_for(f"interviews.{endpoint}", testimony_id=testimony_id)
        found.append({"number": number, "title": title, "url": url, "current": number == current})
    return found


def page_helpers() -> dict[str, Any]:
    return {
        "f": f, "label": f.label, "when": when, "day": day, "place_name": place_name,
        "incident_type_name": incident_type_name, "place_names": place_names, "steps": steps,
        "step_count": STEP_COUNT, "Purpose": Purpose, "Disclosure": Disclosure, "Medium": Medium,
        "gazetteer_places": gazetteer.places, "incident_type_groups": f.incident_type_groups,
    }


# ---------------------------------------------------------------------------------------------------------------
# Loading, refusing, saving


def _config() -> Any:
    return current_app.config


def _testimony(testimony_id: int) -> Testimony:
    testimony = db.session.get(Testimony, testimony_id)
    if testimony is None:
        abort(404)
    return testimony


def _opened(testimony: Testimony, parts: Iterable[Part]) -> RecordView:
    return open_record(g.account, testimony, parts, config=_config(), purpose=PURPOSE)


def _may_change(testimony: Testimony, parts: Iterable[Part]) -> None:
    """Refuse (403, audited) a change to a record this account may not open, before anything runs."""
    require(g.account, testimony, parts, config=_config(), purpose=PURPOSE)


def _attempt(testimony: Testimony, change: Callable[[], T]) -> T:
    """Run an operation in a savepoint: when it refuses, nothing it began is kept, not even the raised revision."""
    try:
        with db.session.begin_nested():
            return change()
    except (ops.InputRefused, AttachmentRefused):
        db.session.expire(testimony)
        raise


def _autosaving() -> bool:
    return request.method == "POST" and request.headers.get("X-Autosave") == "1"


def _saved(testimony: Testimony, then: str, message: Any | None = None) -> Any:
    """After a change: 204 with the new revision for autosave, else back to a page (303)."""
    if _autosaving():
        response = Response(status=204)
        response.headers["X-Revision"] = str(testimony.revision)
        return response
    if message is not None:
        flash(str(message), "success")
    return redirect(then, code=303)


def _status_of(refused: ops.InputRefused) -> int:
    if isinstance(refused, ops.StaleDraft):
        return 409
    if isinstance(refused, ops.Locked):
        return 403
    return 422


def _show_problems(form: Any, refused: ops.InputRefused, fields: Mapping[str, str] | None = None) -> None:
    """Put each of an operation's messages next to the field it names (or above the form)."""
    for name, messages in refused.problems.items():
        target = (fields or {}).get(name, name)
        for message in messages:
            attach_error(form, str(message), target or None)


def _locked(refused: ops.InputRefused) -> Any:
    messages = [str(m) for ms in refused.problems.values() for m in ms]
    return render_template("interviews/locked.html", messages=messages), 403


def _refused(form: Any, refused: ops.InputRefused, render: Callable[[int], Any],
             fields: Mapping[str, str] | None = None) -> Any:
    """Answer a refused change: the status alone for autosave, else the page again with the messages."""
    status = _status_of(refused)
    if _autosaving():
        return Response(status=status)
    if isinstance(refused, ops.Locked):
        return _locked(refused)
    _show_problems(form, refused, fields)
    return render(status)


def _invalid(form: Any, render: Callable[[int], Any]) -> Any:
    """A form that did not validate: 422 (with no body for autosave)."""
    if _autosaving():
        return Response(status=422)
    return render(422)


# ---------------------------------------------------------------------------------------------------------------
# My interviews


def editable_until(testimony: Testimony) -> datetime | None:
    return ops.correction_deadline(testimony, _config())


def is_open(testimony: Testimony) -> bool:
    """Whether the list offers to continue or correct it (the step pages decide for themselves)."""
    if testimony.status == TestimonyStatus.DRAFT:
        return True
    deadline = editable_until(testimony)
    return testimony.status == TestimonyStatus.SUBMITTED and deadline is not None and utcnow() < deadline


@requires(Permission.RECORD_INTERVIEWS)
def mine() -> Any:
    interviews = ops.own_interviews(g.account)
    return render_template("interviews/mine.html", interviews=interviews, editable_until=editable_until,
                           is_open=is_open)


# ---------------------------------------------------------------------------------------------------------------
# Before the interview


@requires(Permission.RECORD_INTERVIEWS)
def readiness() -> Any:
    stored = session.get(READINESS_KEY)
    form = f.ReadinessForm(data=stored) if request.method != "POST" and stored else f.ReadinessForm()
    if form.validate_on_submit():
        answers = form.readiness()
        reasons = answers.reasons()
        if reasons:
            session.pop(READINESS_KEY, None)
            ops.record_not_held(stage="readiness", reasons=reasons, actor=g.account)
            return render_template("interviews/not_ready.html", reasons=reasons)
        session[READINESS_KEY] = form.answers()
        return redirect(url_for("interviews.consent"), code=303)
    return render_form("interviews/readiness.html", form)


def _new_key() -> str:
    return secrets.token_urlsafe(24)


def _started_with(key: str | None) -> Testimony | None:
    """The interview this account already began with this consent form (a second press of the button)."""
    if not key or not ops.IDEMPOTENCY_KEY.fullmatch(key):
        return None
    return ops.created_with_key(g.account, key)


@requires(Permission.RECORD_INTERVIEWS)
def consent() -> Any:
    stored = session.get(READINESS_KEY)
    if not stored:
        return redirect(url_for("interviews.readiness"), code=303)
    language = stored.get("language") if stored.get("language") in scripts.LANGUAGES else "en"
    script = scripts.latest(language)
    if request.method == "POST" and request.form.get("decision") == "refuse":
        if not ButtonForm().validate_on_submit():
            abort(400)
        session.pop(READINESS_KEY, None)
        ops.record_not_held(stage="consent", reasons=["consent_refused"], actor=g.account)
        return render_template("interviews/not_recorded.html")
    form = f.ConsentForm()
    if request.method != "POST":
        form.start_key.data = _new_key()

    def page(status: int | None = None) -> Any:
        return render_form("interviews/consent.html", form, status=status, script=script)

    if not form.validate_on_submit():
        return page()
    key = form.start_key.data if form.start_key.data and ops.IDEMPOTENCY_KEY.fullmatch(form.start_key.data) \
        else None
    already = _started_with(key)
    if already is not None:
        session.pop(READINESS_KEY, None)
        return redirect(url_for("interviews.person", testimony_id=already.id), code=303)
    given = form.consent_input(language)
    try:
        with db.session.begin_nested():
            testimony = ops.start_interview(f.readiness_from(stored), given, actor=g.account, config=_config(),
                                            idempotency_key=key)
    except ops.NotReady:
        session.pop(READINESS_KEY, None)
        return redirect(url_for("interviews.readiness"), code=303)
    except ops.InputRefused as refused:
        _show_problems(form, refused, f.CONSENT_FIELDS)
        return page(422)
    except sa.exc.IntegrityError:
        # The same form sent twice at once: the first request recorded it; show the interview it began.
        already = _started_with(key)
        if already is None:
            raise
        testimony = already
    session.pop(READINESS_KEY, None)
    flash(str(_l("Consent recorded. Ask only what is needed, and remember the person may skip, pause or stop at "
                 "any time.")), "success")
    return redirect(url_for("interviews.person", testimony_id=testimony.id), code=303)


# ---------------------------------------------------------------------------------------------------------------
# The interview's overview (and the page after submitting)


@requires(Permission.RECORD_INTERVIEWS)
@writes_on_get
def overview(testimony_id: int) -> Any:
    testimony = _testimony(testimony_id)
    view = _opened(testimony, ALL_PARTS)
    return render_template("interviews/overview.html", view=view, deadline=editable_until(testimony),
                           script=_script_of(view))


def _script_of(view: RecordView) -> scripts.Script | None:
    return scripts.by_hash(view.consent.script_hash) if view.consent is not None else None


# ---------------------------------------------------------------------------------------------------------------
# The person


def _previous_interview_warning(previous: ops.PreviousInterview) -> str:
    if previous.team:
        return str(_l("This person may already have been interviewed on %(date)s by %(team)s. Check with your "
                      "coordinator before going on, so they are not interviewed twice.",
                      date=day(previous.on), team=previous.team))
    return str(_l("This person may already have been interviewed on %(date)s. Check with your coordinator before "
                  "going on, so they are not interviewed twice.", date=day(previous.on)))


@requires(Permission.RECORD_INTERVIEWS)
@writes_on_get
def person(testimony_id: int) -> Any:
    record = _testimony(testimony_id)
    parts = {Part.IDENTITY}
    if request.method != "POST":
        view = _opened(record, parts)
        form = f.PersonForm(formdata=None, revision=view.revision)
        form.fill(view.identity)
        return render_template("interviews/person.html", form=form, testimony_id=record.id)
    _may_change(record, parts)
    form = f.PersonForm()

    def page(status: int) -> Any:
        return render_form("interviews/person.html", form, status=status, testimony_id=record.id)

    if not form.validate_on_submit():
        return _invalid(form, page)
    given = form.person_input()
    try:
        previous = _attempt(record, lambda: ops.save_person(record, given, actor=g.account, config=_config(),
                                                            revision=form.revision.data))
    except ops.InputRefused as refused:
        return _refused(form, refused, page)
    for earlier in previous:
        flash(_previous_interview_warning(earlier), "warning")
    return _saved(record, url_for("interviews.testimony", testimony_id=record.id))


# ---------------------------------------------------------------------------------------------------------------
# Testimony


def _paused_since(details: Mapping[str, Any]) -> datetime | None:
    if not ops.is_paused(details):
        return None
    return datetime.strptime(details["pauses"][-1]["started"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _testimony_page(testimony: Testimony, form: f.NarrativeForm, status: int | None = None,
                    view: RecordView | None = None) -> Any:
    view = view or _opened(testimony, {Part.CONTENT})
    return render_form("interviews/testimony.html", form, status=status, testimony_id=testimony.id,
                       paused=ops.is_paused(view.details), paused_since=_paused_since(view.details))


@requires(Permission.RECORD_INTERVIEWS)
@writes_on_get
def testimony(testimony_id: int) -> Any:
    record = _testimony(testimony_id)
    if request.method != "POST":
        view = _opened(record, {Part.CONTENT})
        form = f.NarrativeForm(formdata=None, revision=view.revision, narrative=view.narrative or "",
                               declined="narrative" in (view.details.get("declined") or []))
        return _testimony_page(record, form, view=view)
    _may_change(record, {Part.CONTENT})
    form = f.NarrativeForm()
    if not form.validate_on_submit():
        return _invalid(form, lambda status: _testimony_page(record, form, status))
    try:
        _attempt(record, lambda: ops.save_narrative(record, form.narrative.data or "",
                                                    declined=bool(form.declined.data), actor=g.account,
                                                    config=_config(), revision=form.revision.data))
    except ops.InputRefused as refused:
        return _refused(form, refused, lambda status: _testimony_page(record, form, status))
    if request.form.get("then") == "stay":
        return _saved(record, url_for("interviews.testimony", testimony_id=record.id), _l("Saved."))
    return _saved(record, url_for("interviews.incidents", testimony_id=record.id))


@requires(Permission.RECORD_INTERVIEWS)
def pause(testimony_id: int) -> Any:
    """Pause or resume; sent from the testimony form, whose text is saved first so that nothing is lost."""
    record = _testimony(testimony_id)
    _may_change(record, {Part.CONTENT})
    form = f.PauseForm()
    if not form.validate_on_submit():
        return _invalid(form, lambda status: _testimony_page(record, form, status))
    resume = form.action.data == "resume"

    def change() -> None:
        if "narrative" in request.form:
            ops.save_narrative(record, form.narrative.data or "", declined=bool(form.declined.data),
                               actor=g.account, config=_config(), revision=form.revision.data)
            ops.record_pause(record, resume=resume, actor=g.account, config=_config(), revision=None)
        else:
            ops.record_pause(record, resume=resume, actor=g.account, config=_config(), revision=form.revision.data)

    try:
        _attempt(record, change)
    except ops.InputRefused as refused:
        return _refused(form, refused, lambda status: _testimony_page(record, form, status))
    message = _l("The interview is going on again.") if resume else _l(
        "The interview is paused. Take the time the person needs; what was written is saved.")
    return _saved(record, url_for("interviews.testimony", testimony_id=record.id), message)


# ---------------------------------------------------------------------------------------------------------------
# Incidents


def _incidents_page(testimony: Testimony, form: f.IncidentForm, status: int | None = None,
                    remove_errors: list[str] | None = None, view: RecordView | None = None) -> Any:
    view = view or _opened(testimony, {Part.CONTENT})
    return render_form("interviews/incidents.html", form, status=status, testimony_id=testimony.id,
                       incidents=view.incidents, revision=view.revision, remove_errors=remove_errors or [])


@requires(Permission.RECORD_INTERVIEWS)
@writes_on_get
def incidents(testimony_id: int) -> Any:
    record = _testimony(testimony_id)
    if request.method != "POST":
        view = _opened(record, {Part.CONTENT})
        return _incidents_page(record, f.IncidentForm(formdata=None, revision=view.revision), view=view)
    _may_change(record, {Part.CONTENT})
    form = f.IncidentForm()
    if not form.validate_on_submit():
        return _invalid(form, lambda status: _incidents_page(record, form, status))
    given = form.incident_input()
    try:
        _attempt(record, lambda: ops.add_incident(record, given, actor=g.account, config=_config(),
                                                  revision=form.revision.data))
    except ops.InputRefused as refused:
        return _refused(form, refused, lambda status: _incidents_page(record, form, status), f.INCIDENT_FIELDS)
    return _saved(record, url_for("interviews.incidents", testimony_id=record.id), _l("Incident added."))


def _incident_of(testimony: Testimony, incident_id: int) -> Incident:
    incident = db.session.get(Incident, incident_id)
    if incident is None or incident.testimony_id != testimony.id:
        abort(404)
    return incident


def _incident_page(testimony: Testimony, incident_id: int, form: f.IncidentForm, status: int | None = None) -> Any:
    return render_form("interviews/incident.html", form, status=status, testimony_id=testimony.id,
                       incident_id=incident_id)


@requires(Permission.RECORD_INTERVIEWS)
@writes_on_get
def incident(testimony_id: int, incident_id: int) -> Any:
    record = _testimony(testimony_id)
    if request.method != "POST":
        view = _opened(record, {Part.CONTENT})
        shown = next((i for i in view.incidents if i.id == incident_id), None)
        if shown is None:
            abort(404)
        form = f.IncidentForm(formdata=None, revision=view.revision)
        form.fill(ops.incident_input_from_document(shown.type, shown.details))
        return _incident_page(record, incident_id, form)
    _may_change(record, {Part.CONTENT})
    row = _incident_of(record, incident_id)
    form = f.IncidentForm()
    if not form.validate_on_submit():
        return _invalid(form, lambda status: _incident_page(record, incident_id, form, status))
    given = form.incident_input()
    try:
        _attempt(record, lambda: ops.update_incident(row, given, actor=g.account, config=_config(),
                                                     revision=form.revision.data))
    except ops.InputRefused as refused:
        return _refused(form, refused, lambda status: _incident_page(record, incident_id, form, status),
                        f.INCIDENT_FIELDS)
    return _saved(record, url_for("interviews.incidents", testimony_id=record.id), _l("Incident changed."))


@requires(Permission.RECORD_INTERVIEWS)
def remove_incident(testimony_id: int, incident_id: int) -> Any:
    record = _testimony(testimony_id)
    _may_change(record, {Part.CONTENT})
    row = _incident_of(record, incident_id)
    form = f.RemoveIncidentForm()

    def page(status: int) -> Any:
        return _incidents_page(record, f.IncidentForm(formdata=None, revision=record.revision), status,
                               remove_errors=[str(m) for m in form.form_errors])

    if not form.validate_on_submit():
        return page(422)
    try:
        _attempt(record, lambda: ops.remove_incident(row, actor=g.account, config=_config(),
                                                     revision=form.revision.data))
    except ops.InputRefused as refused:
        if isinstance(refused, ops.Locked):
            return _locked(refused)
        form.form_errors.extend(str(m) for ms in refused.problems.values() for m in ms)
        return page(_status_of(refused))
    return _saved(record, url_for("interviews.incidents", testimony_id=record.id), _l("Incident removed."))


# ---------------------------------------------------------------------------------------------------------------
# Attachments


def _attachments_page(testimony: Testimony, form: f.AttachmentForm, status: int | None = None,
                      view: RecordView | None = None) -> Any:
    view = view or _opened(testimony, {Part.ATTACHMENTS})
    return render_form("interviews/attachments.html", form, status=status, testimony_id=testimony.id,
                       attachments=view.attachments, media=ops.consented_media(testimony))


def _file_name(name: str | None) -> str:
    """The file's own name, without any folder a browser sent with it."""
    return PurePosixPath((name or "").replace("\\", "/")).name


@requires(Permission.RECORD_INTERVIEWS)
@accepts_bodies_up_to("ATTACHMENT_MAX_BYTES")
@writes_on_get
def attachments(testimony_id: int) -> Any:
    record = _testimony(testimony_id)
    media = ops.consented_media(record)
    if request.method != "POST":
        view = _opened(record, {Part.ATTACHMENTS})
        form = f.AttachmentForm(formdata=None, revision=view.revision)
        form.offer(media)
        return _attachments_page(record, form, view=view)
    _may_change(record, {Part.ATTACHMENTS})
    form = f.AttachmentForm()
    form.offer(media)
    if not form.validate_on_submit():
        return _attachments_page(record, form, 422)
    upload = form.file.data
    try:
        _attempt(record, lambda: ops.store_interview_attachment(
            record, upload.stream, filename=_file_name(upload.filename), declared_medium=form.medium.data,
            graphic=bool(form.graphic.data), actor=g.account, config=_config(), revision=form.revision.data))
    except AttachmentRefused as refused:
        attach_error(form, str(refused.message), "file")
        return _attachments_page(record, form, 422)
    except ops.InputRefused as refused:
        return _refused(form, refused, lambda status: _attachments_page(record, form, status))
    return _saved(record, url_for("interviews.attachments", testimony_id=record.id),
                  _l("The file is stored. Its SHA-256 digest is shown in the list."))


# ---------------------------------------------------------------------------------------------------------------
# Wellbeing and referral


def _referral_page(testimony: Testimony, form: f.ReferralForm, status: int | None = None,
                   view: RecordView | None = None) -> Any:
    view = view or _opened(testimony, {Part.CONTENT, Part.CONSENT})
    return render_form("interviews/referral.html", form, status=status, testimony_id=testimony.id, view=view)


@requires(Permission.RECORD_INTERVIEWS)
@writes_on_get
def referral(testimony_id: int) -> Any:
    record = _testimony(testimony_id)
    if request.method != "POST":
        view = _opened(record, {Part.CONTENT, Part.CONSENT})
        form = f.ReferralForm(formdata=None, revision=view.revision)
        form.fill(view.details.get("referral"))
        return _referral_page(record, form, view=view)
    _may_change(record, {Part.CONTENT, Part.CONSENT})
    form = f.ReferralForm()
    if not form.validate_on_submit():
        return _invalid(form, lambda status: _referral_page(record, form, status))
    given = form.referral_input()
    try:
        _attempt(record, lambda: ops.save_referral(record, given, actor=g.account, config=_config(),
                                                   revision=form.revision.data))
    except ops.InputRefused as refused:
        return _refused(form, refused, lambda status: _referral_page(record, form, status))
    return _saved(record, url_for("interviews.review", testimony_id=record.id))


# ---------------------------------------------------------------------------------------------------------------
# Review and submit


def _review_page(testimony: Testimony, form: f.SubmitForm, status: int | None = None,
                 view: RecordView | None = None) -> Any:
    view = view or _opened(testimony, ALL_PARTS)
    return render_form("interviews/review.html", form, status=status, testimony_id=testimony.id, view=view,
                       script=_script_of(view), deadline=editable_until(testimony))


def _already_submitted(testimony: Testimony, key: str) -> bool:
    """Whether the interview was submitted with `key` meanwhile (the same form sent twice at once)."""
    db.session.refresh(testimony)
    return testimony.status != TestimonyStatus.DRAFT and testimony.submission_key == key


@requires(Permission.RECORD_INTERVIEWS)
@writes_on_get
def review(testimony_id: int) -> Any:
    record = _testimony(testimony_id)
    if request.method != "POST":
        view = _opened(record, ALL_PARTS)
        form = f.SubmitForm(formdata=None, revision=view.revision, idempotency_key=_new_key())
        return _review_page(record, form, view=view)
    _may_change(record, ALL_PARTS)
    form = f.SubmitForm()
    if not form.validate_on_submit():
        return _review_page(record, form, 422)
    key = form.idempotency_key.data or ""
    try:
        submitted = _attempt(record, lambda: ops.submit(record, idempotency_key=key, actor=g.account,
                                                        config=_config(), revision=form.revision.data))
    except ops.StaleDraft as refused:
        if not _already_submitted(record, key):
            return _refused(form, refused, lambda status: _review_page(record, form, status))
        submitted = False
    except ops.InputRefused as refused:
        return _refused(form, refused, lambda status: _review_page(record, form, status),
                        {"referral": "", "idempotency_key": ""})
    if submitted:
        flash(str(_l("The interview is submitted. You can still correct it until %(deadline)s.",
                     deadline=when(editable_until(record)))), "success")
    return redirect(url_for("interviews.overview", testimony_id=record.id), code=303)
