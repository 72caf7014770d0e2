"""The reviewer's own analysis of a record: grades, verification, coding corrections, links, identifying marks and
notes. Kept apart from what the source said, refused to anyone who may not open the record, sealed where it holds
words, and changed only by a valid form."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from intake.consents import operations as consents
from intake.core.access import Part, open_record
from intake.core.access import assignments as access
from intake.core.audit.models import AuditEvent
from intake.core.db import db
from intake.interviews import operations as ops
from intake.review import operations as review
from intake.review.models import AnalystNote, Assessment, IdentifyingSpan, IncidentCoding, RecordLink
from intake.testimonies.models import Incident
from intake.testimonies.models import Testimony as StoredTestimony
from tests.conftest import Auth, TestUser, csrf_token
from tests.interviews import factories as f

NARRATIVE = "Armen Petrosyan was taken at 12 Tumanyan Street. Later armen  petrosyan came back."
NOTE = "NOTE-SENTINEL-77c1 compare with the hospital list"
REASON = "REASON-SENTINEL-93be two other accounts name the same day"
ANALYSIS_TABLES = (Assessment, IncidentCoding, RecordLink, IdentifyingSpan, AnalystNote)


@pytest.fixture
def people(create_user: Callable[..., TestUser]) -> dict[str, TestUser]:
    return {"amira": create_user("amira", ["interviewer"]), "rafael": create_user("rafael", ["reviewer"]),
            "lilit": create_user("lilit", ["reviewer"]), "sona": create_user("sona", ["coordinator"])}


def _submitted(app: Flask, people: dict[str, TestUser], *, key: str, assign_to: str | None = "rafael",
               narrative: str = NARRATIVE) -> int:
    with app.app_context():
        actor = f.account(people["amira"])
        testimony = ops.start_interview(f.readiness(), f.consent(), actor=actor, config=app.config)
        ops.save_narrative(testimony, narrative, declined=False, actor=actor, config=app.config)
        ops.add_incident(testimony, f.incident(), actor=actor, config=app.config)
        ops.save_referral(testimony, f.referral(), actor=actor, config=app.config)
        assert ops.submit(testimony, idempotency_key=key, actor=actor, config=app.config) is True
        if assign_to:
            access.assign(testimony, f.account(people[assign_to]), actor=f.account(people["sona"]))
        db.session.commit()
        return int(testimony.id)


def _analysis_rows(app: Flask) -> dict[str, int]:
    with app.app_context():
        return {m.__tablename__: int(db.session.scalar(sa.select(sa.func.count()).select_from(m)) or 0)
                for m in ANALYSIS_TABLES}


def _incident_of(app: Flask, testimony_id: int) -> tuple[int, str]:
    with app.app_context():
        incident = db.session.scalars(sa.select(Incident).where(Incident.testimony_id == testimony_id)).one()
        return incident.id, incident.type


def _last_events(app: Flask, count: int) -> list[AuditEvent]:
    with app.app_context():
        return list(reversed(db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq.desc())
                                                .limit(count)).all()))


def _seq(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.max(AuditEvent.seq))) or 0)


def _events_since(app: Flask, seq: int) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.seq > seq).order_by(AuditEvent.seq)))


def _post(client: FlaskClient, testimony_id: int, path: str, data: dict[str, Any]) -> Any:
    token = csrf_token(client, f"/review/records/{testimony_id}")
    return client.post(f"/review/records/{testimony_id}{path}", data={"csrf_token": token, **data})


def test_a_reviewer_grades_verifies_codes_links_marks_and_notes_from_the_record_page(
        app: Flask, client: FlaskClient, auth: Auth, people: dict[str, TestUser]) -> None:
    testimony_id = _submitted(app, people, key="a" * 24)
    other_id = _submitted(app, people, key="b" * 24, narrative="another account of the same day")
    with app.app_context():
        other_code = db.session.get(StoredTestimony, other_id).pseudonym
    incident_id, source_type = _incident_of(app, testimony_id)
    new_type = "arbitrary_detention"
    auth.sign_in(people["rafael"])

    steps = [
        ("/assessments/reliability", {"reliability-value": "B", "reliability-reason": "consistent account"}),
        ("/assessments/credibility", {"credibility-value": "2", "credibility-reason": REASON}),
        ("/assessments/verification", {"verification-value": "corroborated", "verification-reason": "two others"}),
        (f"/incidents/{incident_id}/coding", {f"coding-{incident_id}-type": new_type,
                                              f"coding-{incident_id}-month": "2023-09",
                                              f"coding-{incident_id}-region": "nagorno-karabakh",
                                              f"coding-{incident_id}-reason": "the date is of the arrest"}),
        ("/links", {"link-other": other_code.lower(), "link-kind": "corroborates", "link-reason": "same checkpoint"}),
        ("/identifying", {"span-phrase": "armen petrosyan", "span-kind": "name"}),
        ("/identifying", {"span-phrase": "12 Tumanyan Street", "span-kind": "address"}),
        ("/notes", {"note-text": NOTE}),
    ]
    for path, data in steps:
        answer = _post(client, testimony_id, path, data)
        errors = re.findall(r'class="error"[^>]*>([^<]*)<', answer.get_data(as_text=True))
        assert answer.status_code == 303, (path, errors)

    page = client.get(f"/review/records/{testimony_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "B: usually reliable" in html and "2: probably true" in html and "Corroborated by other records" in html
    assert REASON in html and NOTE in html and other_code in html
    # Both spellings of the name and the address are marked on the narrative.
    assert len(re.findall(r'<mark class="identifying"[^>]*>(?:Armen Petrosyan|armen  petrosyan|12 Tumanyan Street)'
                          r"</mark>", html)) >= 3
    with app.app_context():
        incident = db.session.get(Incident, incident_id)
        assert incident.type == source_type  # what the source said stays as it was
        coding = db.session.scalars(sa.select(IncidentCoding)).one()
        assert (coding.type, coding.month, coding.region) == (new_type, "2023-09", "nagorno-karabakh")
        spans = db.session.scalars(sa.select(IdentifyingSpan).order_by(IdentifyingSpan.start)).all()
        assert [NARRATIVE[s.start:s.stop] for s in spans] == ["Armen Petrosyan", "12 Tumanyan Street",
                                                               "armen  petrosyan"]
        assert review.redacted(NARRATIVE, [(s.start, s.stop) for s in spans], "[…]") == \
            "[…] was taken at […]. Later […] came back."
    # The other record shows the link from its side.
    other_page = _assigned_page(app, client, people, other_id)
    assert f'href="/review/records/{testimony_id}"' in other_page


def _assigned_page(app: Flask, client: FlaskClient, people: dict[str, TestUser], testimony_id: int) -> str:
    page = client.get(f"/review/records/{testimony_id}")
    assert page.status_code == 200, page.status_code
    return str(page.get_data(as_text=True))


def test_words_are_sealed_and_erasure_takes_the_analysis_with_it(
        app: Flask, people: dict[str, TestUser]) -> None:
    testimony_id = _submitted(app, people, key="c" * 24)
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        reviewer = f.account(people["rafael"])
        review.assess(testimony, "reliability", "C", REASON, actor=reviewer, config=app.config)
        review.add_note(testimony, NOTE, actor=reviewer, config=app.config)
        db.session.commit()
        stored = db.session.execute(sa.text("SELECT reason FROM assessments")).scalar_one()
        note = db.session.execute(sa.text("SELECT text FROM analyst_notes")).scalar_one()
        assert REASON.encode() not in bytes(stored) and NOTE.encode() not in bytes(note)
        view = open_record(reviewer, testimony, {Part.NOTES}, config=app.config, purpose="review")
        assert view.analysis is not None and view.analysis.notes[0].text == NOTE
        assert view.narrative is None  # only the part asked for is opened
        consents.record_withdrawal(testimony, purposes=[], received_how="phone", erasure=True,
                                   actor=f.account(people["sona"]), config=app.config)
        db.session.commit()
        gone = db.session.get(AnalystNote, view.analysis.notes[0].id)
        assert gone is not None and gone.testimony.data_key.destroyed_at is not None


def test_bad_input_is_refused_on_its_field_and_changes_nothing(
        app: Flask, client: FlaskClient, auth: Auth, people: dict[str, TestUser]) -> None:
    testimony_id = _submitted(app, people, key="d" * 24)
    hidden_id = _submitted(app, people, key="e" * 24, assign_to=None)
    with app.app_context():
        hidden_code = db.session.get(StoredTestimony, hidden_id).pseudonym
    incident_id, _ = _incident_of(app, testimony_id)
    auth.sign_in(people["rafael"])
    before = _analysis_rows(app)
    cases = [
        ("/assessments/reliability", {"reliability-value": "G", "reliability-reason": "x"},
         "Choose one of the listed values."),
        ("/assessments/credibility", {"credibility-value": "3", "credibility-reason": "  "},
         "Give the reason in a sentence or two."),
        (f"/incidents/{incident_id}/coding", {f"coding-{incident_id}-type": "shelling",
                                              f"coding-{incident_id}-month": "2023-13",
                                              f"coding-{incident_id}-reason": "r"},
         "Enter a month as year-month, for example 2023-09."),
        ("/links", {"link-other": hidden_code, "link-kind": "duplicate", "link-reason": "r"},
         "No other record with this code is open to you."),
        ("/identifying", {"span-phrase": "Not in the text", "span-kind": "name"},
         "These words are not in the narrative. Copy them exactly as written."),
        ("/notes", {"note-text": ""}, "Write the note."),
    ]
    for path, data, message in cases:
        answer = _post(client, testimony_id, path, data)
        assert answer.status_code == 422, path
        assert message in answer.get_data(as_text=True), path
    assert _analysis_rows(app) == before
    # Without the CSRF token nothing is recorded either.
    refused = client.post(f"/review/records/{testimony_id}/notes", data={"note-text": NOTE})
    assert refused.status_code in (400, 422)
    assert _analysis_rows(app) == before


def test_a_reviewer_who_may_not_open_the_record_may_not_analyse_it(
        app: Flask, client: FlaskClient, auth: Auth, people: dict[str, TestUser]) -> None:
    testimony_id = _submitted(app, people, key="f" * 24)  # assigned to rafael, not to lilit
    withdrawn_id = _submitted(app, people, key="g" * 24)
    auth.sign_in(people["rafael"])
    token = csrf_token(client, f"/review/records/{testimony_id}")
    with app.app_context():
        consents.record_withdrawal(db.session.get(StoredTestimony, withdrawn_id), purposes=[], received_how="phone",
                                   erasure=False, actor=f.account(people["sona"]), config=app.config)
        db.session.commit()
    withdrawn = client.post(f"/review/records/{withdrawn_id}/notes", data={"csrf_token": token, "note-text": NOTE})
    assert withdrawn.status_code == 403
    assert "withdrew their consent" in withdrawn.get_data(as_text=True)
    auth.sign_out()
    auth.sign_in(people["lilit"])
    before, seq = _analysis_rows(app), _seq(app)
    token = csrf_token(client, "/review/")
    answer = client.post(f"/review/records/{testimony_id}/assessments/reliability",
                         data={"csrf_token": token, "reliability-value": "A", "reliability-reason": "r"})
    assert answer.status_code == 403
    assert _analysis_rows(app) == before
    events = _events_since(app, seq)
    assert [(e.action, e.details.get("why")) for e in events] == [("record_access_refused", "not_assigned")]


def test_each_page_open_is_one_event_naming_the_parts_even_when_a_mark_is_refused(
        app: Flask, client: FlaskClient, auth: Auth, people: dict[str, TestUser]) -> None:
    testimony_id = _submitted(app, people, key="h" * 24)
    auth.sign_in(people["rafael"])
    token = csrf_token(client, f"/review/records/{testimony_id}")
    seq = _seq(app)
    assert client.get(f"/review/records/{testimony_id}").status_code == 200
    assert [(e.action, e.details["parts"]) for e in _events_since(app, seq)] == [
        ("record_viewed", ["attachments", "content", "notes"])]
    seq = _seq(app)
    refused = client.post(f"/review/records/{testimony_id}/identifying",
                          data={"csrf_token": token, "span-phrase": "nowhere", "span-kind": "name"})
    assert refused.status_code == 422
    assert [e.action for e in _events_since(app, seq)] == ["record_viewed"]
    seq = _seq(app)
    marked = client.post(f"/review/records/{testimony_id}/identifying",
                         data={"csrf_token": token, "span-phrase": "Armen Petrosyan", "span-kind": "name"})
    assert marked.status_code == 303
    events = _events_since(app, seq)
    assert [(e.action, e.details.get("parts"), e.details.get("marked")) for e in events] == [
        ("record_viewed", ["content"], None), ("record_analysed", None, 2)]
    assert NARRATIVE not in str([e.details for e in events])


def test_links_and_marks_can_be_removed_and_stay_in_the_history(
        app: Flask, client: FlaskClient, auth: Auth, people: dict[str, TestUser]) -> None:
    testimony_id = _submitted(app, people, key="i" * 24)
    other_id = _submitted(app, people, key="j" * 24)
    with app.app_context():
        reviewer = f.account(people["rafael"])
        testimony = db.session.get(StoredTestimony, testimony_id)
        row = review.link(testimony, db.session.get(StoredTestimony, other_id).pseudonym, "duplicate", "same person",
                          actor=reviewer, config=app.config)
        view = open_record(reviewer, testimony, {Part.CONTENT}, config=app.config, purpose="review")
        span = review.mark_identifying(view, testimony, "12 Tumanyan Street", "address", actor=reviewer,
                                       config=app.config)[0]
        db.session.commit()
        link_id, span_id = row.id, span.id
        with pytest.raises(consents.InputRefused):
            review.link(testimony, db.session.get(StoredTestimony, other_id).pseudonym, "duplicate", "again",
                        actor=reviewer, config=app.config)
    auth.sign_in(people["rafael"])
    # Removed from the other record's side: the link is one fact about both.
    assert _post(client, other_id, f"/links/{link_id}/remove", {}).status_code == 303
    assert _post(client, testimony_id, f"/identifying/{span_id}/remove", {}).status_code == 303
    assert _post(client, testimony_id, f"/identifying/{span_id}/remove", {}).status_code == 404
    html = client.get(f"/review/records/{testimony_id}").get_data(as_text=True)
    assert "No linked record." in html and '<mark class="identifying"' not in html
    with app.app_context():
        assert db.session.get(RecordLink, link_id).removed_at is not None
        assert db.session.get(IdentifyingSpan, span_id).removed_by_id == f.account(people["rafael"]).id


def test_a_link_to_a_record_the_reader_may_not_open_does_not_name_it(
        app: Flask, client: FlaskClient, auth: Auth, people: dict[str, TestUser]) -> None:
    testimony_id = _submitted(app, people, key="k" * 24)  # assigned to rafael
    other_id = _submitted(app, people, key="l" * 24)
    with app.app_context():
        testimony, other = (db.session.get(StoredTestimony, i) for i in (testimony_id, other_id))
        other_code = other.pseudonym
        review.link(testimony, other_code, "corroborates", REASON, actor=f.account(people["rafael"]),
                    config=app.config)
        access.assign(testimony, f.account(people["lilit"]), actor=f.account(people["sona"]))
        db.session.commit()
    auth.sign_in(people["lilit"])  # may open this record, not the other one
    html = client.get(f"/review/records/{testimony_id}").get_data(as_text=True)
    assert "A record you cannot open" in html
    assert other_code not in html and REASON not in html and f"/review/records/{other_id}" not in html
    auth.sign_out()
    auth.sign_in(people["rafael"])
    with app.app_context():  # once the other record's consent is withdrawn, its own reviewer loses it too
        consents.record_withdrawal(db.session.get(StoredTestimony, other_id), purposes=[], received_how="phone",
                                   erasure=False, actor=f.account(people["sona"]), config=app.config)
        db.session.commit()
    html = client.get(f"/review/records/{testimony_id}").get_data(as_text=True)
    assert "A record you cannot open" in html and other_code not in html
