"""The mixed load's users (bench/mixed_flows.py) against the test app, CSRF on: the interviewer's submission and its
replay, the reviewer's reading of a queue page, and the legal officer's preview, step-up, build and download; then
bench/mixed.py's checks of what was stored and downloaded, its verdict and its reading of locust's CSV files."""

from __future__ import annotations

import html
import random
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pyrage
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from bench import mixed, review
from bench import mixed_flows as flows
from intake.accounts import operations as accounts
from intake.cases import operations as cases
from intake.core.access import Part, open_record
from intake.core.db import db
from intake.recipients import operations as recipients
from intake.testimonies.models import Testimony as StoredTestimony
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
        view = open_record(f.account(user), stored[0], {Part.CONTENT}, config=app.config)
        assert f"Reference {key}." in str(view.narrative)
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
    assert queue.status_code == 200 and flows.is_queue_page(queue.get_data(as_text=True))
    links = flows.record_links(queue.get_data(as_text=True))
    assert links and len(links) == len(set(links)) and set(links) <= set(range(populated.first_id,
                                                                                populated.last_id + 1))
    chosen = flows.choose_records(links, random.Random(1), most=3)
    assert 1 <= len(chosen) <= 3 and set(chosen) <= set(links)
    for record in chosen:
        page = client.get(f"/review/records/{record}")
        assert page.status_code == 200
        text = html.unescape(page.get_data(as_text=True))
        assert any(sentence in text for bank in review.SENTENCES.values() for sentence in bank)
    assert flows.endpoint_name("GET", f"/review/records/{chosen[0]}") == "GET /review/records/[id]"
    assert flows.endpoint_name("GET", paths[0]) == "GET /review/?[filters]"
    # A lost session is sent to the sign-in page, which is not the queue.
    client.post("/sign-out", data={"csrf_token": flows.csrf_token(queue.get_data(as_text=True)) or ""})
    lost = client.get(paths[0])
    assert lost.status_code == 302 and flows.SIGN_IN in lost.headers["Location"]
    assert not flows.is_queue_page(client.get(lost.headers["Location"]).get_data(as_text=True))


def test_the_legal_officer_previews_steps_up_builds_and_downloads_a_case_file(
        make_app: Callable[..., Flask], totp_clock: TotpClock, create_user: Callable[..., TestUser],
        tmp_path: Path) -> None:
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
    # What the run checks afterwards: the downloaded file verifies with the recipient's identity; a damaged one not.
    identity_file = tmp_path / "identity.txt"
    identity_file.write_text(str(identity) + "\n", encoding="utf-8")
    whole, damaged = tmp_path / "whole.age", tmp_path / "damaged.age"
    whole.write_bytes(download.data)
    damaged.write_bytes(download.data[:-100])
    with app.app_context():
        found = mixed.check_stored({"username": "amira", "acks": [], "tried": [], "identity_file": str(identity_file),
                                    "downloads": [{"export_id": number, "file": str(whole)},
                                                  {"export_id": number, "file": str(damaged)}]})
    assert [d["verified"] for d in found["downloads"]] == [True, False]
    assert [e["size_bytes"] for e in found["exports"]] == [len(download.data)]
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


def _submit(client: FlaskClient, token: str, key: str, body: dict[str, object]) -> flows.Acknowledgement:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", "Idempotency-Key": key}
    answer = client.post(flows.INTERVIEWS, json=body, headers=headers)
    ack = flows.acknowledgement(key, answer.status_code, answer.get_json())
    assert ack is not None, answer.get_data(as_text=True)
    return ack


def test_the_check_of_what_was_stored_counts_lost_altered_and_unsent_records(
        app: Flask, client: FlaskClient, create_user: Callable[..., TestUser]) -> None:
    user = create_user("bench-interviewer")
    with app.app_context():
        _, token = accounts.create_api_token(f.account(user), name="bench", expires_in_days=1)
        db.session.commit()
    good, renamed, unknown, altered, unsent = (flows.new_idempotency_key(name) for name in
                                               ("good", "renamed", "unknown", "altered", "unsent"))
    acks = [_submit(client, token, good, flows.interview_body(good)),
            _submit(client, token, renamed, flows.interview_body(renamed))]
    other = flows.interview_body(altered)
    other["testimony"] = {"narrative": "Another account altogether.", "narrative_declined": False}
    acks.append(_submit(client, token, altered, other))
    _submit(client, token, unsent, flows.interview_body(unsent))
    listed = [{"key": a.key, "id": a.id, "pseudonym": a.pseudonym} for a in acks]
    listed[1]["pseudonym"] = "WRONG-CODE"
    listed.append({"key": unknown, "id": acks[0].id + 100, "pseudonym": "NEVER-STORED"})
    with app.app_context():
        found = mixed.check_stored({"username": "bench-interviewer", "acks": listed,
                                    "tried": [good, renamed, unknown, altered]})
    assert (found["acknowledged"], found["lost"], found["unreadable"]) == (4, 2, 1)
    assert (found["stored"], found["sent"], found["strays"], found["duplicates"]) == (4, 4, 1, 0)
    assert any(altered in problem for problem in found["problems"])


def _endpoint(name: str, requests: int = 10, failures: int = 0) -> mixed.Endpoint:
    return mixed.Endpoint(name=name, method=name.split()[0], requests=requests, failures=failures, rps=1.0,
                          p50_ms=5.0, p95_ms=9.0, p99_ms=12.0)


def _verdict(*, lost: int = 0, unreadable: int = 0, endpoints: list[mixed.Endpoint] | None = None,
             exceptions: int = 0, downloaded: int = 2048, verified: bool = True) -> mixed.RunResult:
    result = mixed.RunResult(started_at="2024-05-01T10:00:00Z",
                             endpoints=endpoints if endpoints is not None else
                             [_endpoint("POST /api/v1/interviews"), _endpoint(mixed.RECORD_ENDPOINT)],
                             exceptions=[{"count": exceptions, "message": "KeyError('to')"}] if exceptions else [])
    verification = {"acknowledged": 5, "lost": lost, "unreadable": unreadable, "duplicates": 0, "strays": 0,
                    "stored": 5, "sent": 5, "stored_unacknowledged": 0, "problems": [],
                    "downloads": [{"export_id": 1, "verified": verified, "failed": []}],
                    "exports": [{"id": 1, "status": "downloaded", "build_s": 3.0, "queued_s": 0.1,
                                 "size_bytes": 2048, "records": 3, "included": 3}]}
    sessions = [{"export_id": 1, "state": "ready", "age_file": True, "downloaded_bytes": downloaded}]
    mixed.judge(result, verification, sessions, interviewers=1, reviewers=1, legal=1)
    return result


def test_the_verdict_fails_on_any_lost_or_unreadable_record_exception_or_bad_download() -> None:
    assert _verdict().passed
    assert not _verdict(lost=1).passed and "1 lost" in _verdict(lost=1).checks["failed"]
    assert not _verdict(unreadable=1).passed
    assert not _verdict(exceptions=2).passed
    assert not _verdict(downloaded=1024).passed
    assert not _verdict(verified=False).passed
    # Reviewers who never opened a record (signed out, say) are a failure, not a quiet success.
    assert "no record was opened by a reviewer" in _verdict(endpoints=[_endpoint("POST /api/v1/interviews")]) \
        .checks["failed"]


LOCUST_STATS = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
    "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\n"
    "GET,GET /review/records/[id],120,3,41,45.2,12,300,5120,2.0,0.05,41,44,47,50,60,80,95,110,250,300,300\n"
    "POST,POST /api/v1/interviews,0,0,0,0,0,0,0,0.0,0.0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A\n"
    ",Aggregated,120,3,41,45.2,12,300,5120,2.0,0.05,41,44,47,50,60,80,95,110,250,300,300\n"
)


def test_locust_csv_files_are_read_per_endpoint_with_their_exceptions(tmp_path: Path) -> None:
    stats = tmp_path / "locust_stats.csv"
    stats.write_text(LOCUST_STATS, encoding="utf-8")
    endpoints = mixed.read_stats(stats)
    assert [(e.name, e.requests, e.failures, e.p50_ms, e.p95_ms, e.p99_ms) for e in endpoints] == [
        ("GET /review/records/[id]", 120, 3, 41.0, 80.0, 110.0), ("POST /api/v1/interviews", 0, 0, None, None, None)]
    exceptions = tmp_path / "locust_exceptions.csv"
    exceptions.write_text('Count,Message,Traceback,Nodes\n2,"KeyError(\'to\')","Traceback ...\n  line 1",local\n',
                          encoding="utf-8")
    assert mixed.read_exceptions(exceptions) == [{"count": 2, "message": "KeyError('to')"}]
    assert mixed.read_exceptions(tmp_path / "missing.csv") == []


def test_a_half_written_result_file_means_the_run_could_not_be_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    half = tmp_path / "acks.jsonl"
    half.write_text('{"key": "mixed-1", "id": 1}\n{"key": "mix', encoding="utf-8")

    def run(args: object) -> mixed.RunResult:
        mixed.read_lines(half)
        raise AssertionError("a half-written line was read")

    monkeypatch.setattr(mixed, "execute", run)
    monkeypatch.setattr(mixed.signal, "signal", lambda *_args: None)  # the suite keeps its own SIGTERM handler
    assert mixed.main(["--results-dir", str(tmp_path)]) == mixed.EXIT_COULD_NOT_RUN
