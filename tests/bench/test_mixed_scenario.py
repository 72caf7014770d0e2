"""The mixed load's users (bench/mixed_flows.py) against the test app, CSRF on: the interviewer's submission and its
replay, the reviewer's reading of a queue page, and the legal officer's preview, step-up, build and download."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date

import pyrage
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from bench import mixed_flows as flows
from bench import review
from intake.accounts import operations as accounts
from intake.cases import operations as cases
from intake.core.db import db
from intake.recipients import operations as recipients
from intake.testimonies.models import Testimony as StoredTestimony
from intake.testimonies.operations import read_narrative
from tests.conftest import TestUser, TotpClock
from tests.interviews import factories as f


def _sign_in(client: FlaskClient, username: str, password: str, codes: flows.TotpCodes, now: float) -> None:
    page = client.get(flows.SIGN_IN).get_data(as_text=True)
    answer = client.post(flows.SIGN_IN, data=flows.sign_in_form(page, username, password, codes.take(now)))
    assert flows.signed_in(answer.status_code, answer.headers.get("Location", "")), answer.status_code


def test_the_interviewer_submission_is_stored_and_a_replay_answers_the_same_record(
        app: Flask, client: FlaskClient, create_user: Callable[..., TestUser]) -> None:
    user = create_user("bench-interviewer")
    with app.app_context():
        _, token = accounts.create_api_token(f.account(user), name="bench", expires_in_days=1)
        db.session.commit()
    key = flows.new_idempotency_key()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", "Idempotency-Key": key}
    first = client.post(flows.INTERVIEWS, json=flows.interview_body(key), headers=headers)
    assert first.status_code == 201, first.get_data(as_text=True)
    ack = flows.acknowledgement(key, first.status_code, first.get_json())
    assert ack is not None and not ack.replayed
    again = client.post(flows.INTERVIEWS, json=flows.interview_body(key), headers=headers)
    replay = flows.acknowledgement(key, again.status_code, again.get_json())
    assert again.status_code == 200 and replay is not None and replay.replayed
    assert (replay.id, replay.pseudonym) == (ack.id, ack.pseudonym)
    with app.app_context():
        stored = db.session.scalars(sa.select(StoredTestimony).where(StoredTestimony.idempotency_key == key)).all()
        assert [(t.id, t.pseudonym, t.status) for t in stored] == [(ack.id, ack.pseudonym, "submitted")]
        assert f"Reference {key}." in str(read_narrative(stored[0]))
    # A refusal is not sent again; no answer or a server error is.
    assert flows.acknowledgement(key, 422, {"status": "draft"}) is None
    assert [flows.should_retry(s) for s in (0, 502, 503, 409, 422, 429)] == [True, True, True, False, False, False]
    assert flows.endpoint_name("POST", flows.INTERVIEWS) == "POST /api/v1/interviews"


def test_the_reviewer_finds_the_records_a_real_queue_page_links_to_and_opens_them(
        app: Flask, client: FlaskClient, totp_clock: TotpClock) -> None:
    with app.app_context():
        populated = review.populate(60, batch=60)
        paths = review.queue_paths(populated)
        db.session.remove()
    codes = flows.TotpCodes(populated.reviewer_secret)
    _sign_in(client, review.REVIEWER, review.REVIEWER_PASSWORD, codes, totp_clock.now)
    queue = client.get(flows.QUEUE)
    assert queue.status_code == 200
    links = flows.record_links(queue.get_data(as_text=True))
    assert links and len(links) == len(set(links)) and set(links) <= set(range(populated.first_id,
                                                                                populated.last_id + 1))
    chosen = flows.choose_records(links, random.Random(1), most=3)
    assert 1 <= len(chosen) <= 3 and set(chosen) <= set(links)
    for record in chosen:
        page = client.get(f"/review/records/{record}")
        assert page.status_code == 200
        assert any(sentence in page.get_data(as_text=True) for sentence in review.SENTENCES)
    assert flows.endpoint_name("GET", f"/review/records/{chosen[0]}") == "GET /review/records/[id]"
    assert flows.endpoint_name("GET", paths[0]) == "GET /review/?[filters]"


def test_the_legal_officer_previews_steps_up_builds_and_downloads_a_case_file(
        make_app: Callable[..., Flask], totp_clock: TotpClock, create_user: Callable[..., TestUser]) -> None:
    app = make_app(EXPORT_RUNNER="inline")
    client = app.test_client()
    legal = create_user("lena", ["legal"])
    admin = create_user("ada", ["admin"])
    testimony_id = f.planted_interview(app, create_user("amira", ["interviewer"]))
    identity = pyrage.x25519.Identity.generate()
    with app.app_context():
        recipient = recipients.register(recipients.RecipientInput(
            key="un-coi", name="Recipient un-coi", category="un_mechanism", country=None, is_authority=False,
            agreement_reference="MoU-2024-1", agreement_date=date(2024, 1, 15), contact="desk@example.org",
            age_recipients=[str(identity.to_public())]), actor=f.account(admin))
        case = cases.create_case("LC-2024-07", "Shelling", recipient=recipient, actor=f.account(legal))
        cases.add_testimony(case, db.session.get(StoredTestimony, testimony_id), actor=f.account(legal))
        db.session.commit()
        case_id, choice = case.id, f"{recipient.id}-un_mechanisms"

    codes = flows.TotpCodes(legal.totp_secret)
    _sign_in(client, legal.username, legal.password, codes, totp_clock.now)
    preview = client.get(flows.preview_path(case_id, choice))
    assert preview.status_code == 200
    form = flows.build_form(preview.get_data(as_text=True), case_id)
    assert form["to"] == choice
    # The code used to sign in cannot be used again: the officer waits for the next one.
    wait = codes.wait_seconds(totp_clock.now)
    assert 0 < wait <= flows.TOTP_STEP_SECONDS
    totp_clock.advance(wait)
    assert codes.wait_seconds(totp_clock.now) == 0
    step_page = client.get(flows.STEP_UP).get_data(as_text=True)
    stepped = client.post(flows.STEP_UP, data=flows.code_form(step_page, codes.take(totp_clock.now)))
    assert stepped.status_code == 303
    built = client.post(f"/cases/{case_id}/exports", data=form)
    assert built.status_code == 303, built.get_data(as_text=True)
    number = flows.export_id(built.headers["Location"])
    assert number is not None
    page = client.get(f"/cases/{case_id}/exports/{number}").get_data(as_text=True)
    assert flows.export_state(page) == "ready"
    link = flows.download_path(page)
    assert link == f"/cases/{case_id}/exports/{number}/download"
    download = client.get(link)
    assert download.status_code == 200 and download.data.startswith(flows.AGE_HEADER)
    assert flows.endpoint_name("GET", link) == "GET /cases/[id]/exports/[id]/download"
    assert flows.endpoint_name("GET", flows.preview_path(case_id, choice)) == "GET /cases/[id]/exports?to=[to]"


def test_a_build_form_without_its_token_is_refused(
        make_app: Callable[..., Flask], totp_clock: TotpClock, create_user: Callable[..., TestUser]) -> None:
    # The token the parser reads is the one the app checks: the same request without it is refused.
    app = make_app(EXPORT_RUNNER="inline")
    client = app.test_client()
    legal = create_user("lena", ["legal"])
    with app.app_context():
        case = cases.create_case("LC-2024-08", "Drone strike", recipient=None, actor=f.account(legal))
        db.session.commit()
        case_id = case.id
    codes = flows.TotpCodes(legal.totp_secret)
    _sign_in(client, legal.username, legal.password, codes, totp_clock.now)
    totp_clock.advance(codes.wait_seconds(totp_clock.now))
    step_page = client.get(flows.STEP_UP).get_data(as_text=True)
    assert client.post(flows.STEP_UP, data=flows.code_form(step_page, codes.take(totp_clock.now))).status_code == 303
    assert client.post(f"/cases/{case_id}/exports", data={"to": "1-un_mechanisms"}).status_code == 400
