"""The auditor's pages as an auditor uses them: search the log by who, which record, what and when; page back
through it; verify it and see exactly which event was changed; see who has seen a record and download its history
with proofs that check out without this service; read the signed checkpoints. Each look at the log is itself in
the log, and no page ever shows testimony content."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from intake.audit.forms import ACTION_LABELS
from intake.core.audit import AuditAction, AuditEvent, record_event
from intake.core.audit import checkpoints as cp
from intake.core.audit.merkle import verify_inclusion
from intake.core.audit.note import Verifier, open_checkpoint
from intake.core.crypto import current_keyring
from intake.core.db import WRITES_ON_GET_ATTRIBUTE, db
from intake.identities import operations as identity_ops
from intake.testimonies import operations as testimony_ops
from tests.api.test_api import make_token
from tests.conftest import Auth, TestUser, TotpClock, post_form

SEARCH = "/audit/"
SENTINEL = "SENTINEL-narrative-Ракетный-удар-7f3a"
SENTINEL_NAME = "SENTINEL-name-Անի-9c1d"
SEQ_CELL = re.compile(r"<tr>\s*<td[^>]*>(\d+)</td>")
OLDER_LINK = re.compile(r'<a href="([^"]+)">Older events</a>')


# ---------------------------------------------------------------------------------------------------------------
# Helpers shared with the API tests


class Actor:
    """What `record_event` needs of an actor, for events planted by the tests."""

    def __init__(self, user: TestUser) -> None:
        self.id = user.id
        self.role_names = user.roles


def plant(app: Flask, action: AuditAction, *, by: TestUser | None = None, target_type: str | None = None,
          target_ids: tuple[int | str, ...] = (), details: dict[str, Any] | None = None, reason: str | None = None,
          at: datetime | None = None) -> int:
    """Append and commit one event, at time `at` if given. Returns its sequence number."""
    with app.app_context(), pytest.MonkeyPatch.context() as patch:
        if at is not None:
            patch.setattr("intake.core.audit.chain.utcnow", lambda: at)
        event = record_event(action, actor=Actor(by) if by else None, target_type=target_type, target_ids=target_ids,
                             details=details, reason=reason)
        db.session.commit()
        return event.seq


def events_of(app: Flask, action: AuditAction) -> list[AuditEvent]:
    with app.app_context():
        found = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == str(action))
                                   .order_by(AuditEvent.seq))
        return list(found)


def all_events(app: Flask) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq)))


def event_count(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count(AuditEvent.seq))) or 0


def seqs_where(app: Flask, *conditions: Any) -> list[int]:
    """Sequence numbers of the events matching `conditions`, newest first (straight from the table)."""
    with app.app_context():
        return list(db.session.scalars(sa.select(AuditEvent.seq).where(*conditions).order_by(AuditEvent.seq.desc())))


def make_testimony(app: Flask, narrative: str = SENTINEL) -> int:
    """A testimony whose narrative is `narrative`, by a person whose name is the name sentinel."""
    with app.app_context():
        person = identity_ops.register_person({"name": SENTINEL_NAME, "birth_year": 1984}, actor=None, prefix="KB")
        testimony = testimony_ops.create_testimony(pseudonym=person.pseudonym, interviewer=None, language="ru",
                                                   region="Syunik", narrative=narrative)
        db.session.commit()
        return testimony.id


def make_checkpoint(app: Flask) -> None:
    with app.app_context():
        made = cp.checkpoint_now(db.session(), keyring=current_keyring(), origin=app.config["AUDIT_ORIGIN"],
                                 path=cp.checkpoint_file(app.config))
        assert made is not None
        db.session.commit()


def check_extract(extract: dict[str, Any], *, target_type: str, target_id: str) -> None:
    """Check an extract as its recipient would: the note opens with the key, every proof leads to its root."""
    assert extract["record"] == {"type": target_type, "id": target_id}
    checkpoint = extract["checkpoint"]
    opened, _ = open_checkpoint(checkpoint["note"], [Verifier.from_string(extract["log"]["verifier_key"])])
    assert opened.size == checkpoint["tree_size"]
    assert opened.root_hash.hex() == checkpoint["root_hash"]
    covered = [e for e in extract["events"] if e["seq"] <= opened.size]
    assert covered, "the checkpoint covers none of the record's events"
    for entry in extract["events"]:
        if entry["seq"] > opened.size:
            assert entry["inclusion_proof"] is None
            continue
        proof = [bytes.fromhex(h) for h in entry["inclusion_proof"]]
        # The event's hash is its leaf hash in the tree (`how_to_verify` in the extract says so).
        assert verify_inclusion(bytes.fromhex(entry["hash"]), entry["seq"] - 1, opened.size, proof,
                                opened.root_hash), entry["seq"]
        assert not verify_inclusion(bytes.fromhex(entry["prev_hash"]), entry["seq"] - 1, opened.size, proof,
                                    opened.root_hash)


@contextmanager
def tampered(app: Flask, seq: int) -> Iterator[None]:
    """Change one event's details behind the application's back, past the append-only guard, for the block."""
    with app.app_context(), db.engine.begin() as conn:
        if conn.dialect.name == "sqlite":  # the database file is this test's own
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_events_refuse_update")
        else:
            conn.exec_driver_sql("ALTER TABLE audit_events DISABLE TRIGGER audit_events_refuse_change")
        conn.execute(sa.text("UPDATE audit_events SET details = :details WHERE seq = :seq"),
                     {"details": '{"parts":["content","identity"]}', "seq": seq})
    try:
        yield
    finally:
        with app.app_context(), db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # the database outlives the test
                conn.exec_driver_sql("ALTER TABLE audit_events ENABLE TRIGGER audit_events_refuse_change")


@pytest.fixture
def auditor(create_user: Callable[..., TestUser], auth: Auth) -> TestUser:
    """An auditor, signed in on `client`."""
    user = create_user("hasmik", ["auditor"])
    assert auth.sign_in(user).status_code == 303
    return user


@pytest.fixture
def colleagues(create_user: Callable[..., TestUser]) -> dict[str, TestUser]:
    return {"amira": create_user("amira", ["interviewer"]), "narine": create_user("narine", ["reviewer"]),
            "levon": create_user("levon", ["legal"])}


def shown_seqs(response: Any) -> list[int]:
    return [int(s) for s in SEQ_CELL.findall(response.get_data(as_text=True))]


def search(client: FlaskClient, **query: Any) -> Any:
    return client.get(SEARCH, query_string=query)


# ---------------------------------------------------------------------------------------------------------------
# Searching


def test_an_auditor_searching_by_actor_sees_exactly_that_accounts_events(
    app: Flask, client: FlaskClient, auditor: TestUser, colleagues: dict[str, TestUser]
) -> None:
    amira, narine = colleagues["amira"], colleagues["narine"]
    mine = [plant(app, AuditAction.RECORD_VIEWED, by=amira, target_type="testimony", target_ids=(7,),
                  details={"parts": ["content"]}),
            plant(app, AuditAction.LOGOUT, by=amira)]
    theirs = plant(app, AuditAction.RECORD_VIEWED, by=narine, target_type="testimony", target_ids=(7,))

    response = search(client, actor="  Amira ")  # typed as people type it
    assert response.status_code == 200
    shown = shown_seqs(response)
    assert shown == seqs_where(app, AuditEvent.actor_id == amira.id)
    assert set(mine) <= set(shown) and theirs not in shown
    page = response.get_data(as_text=True)
    assert "amira" in page and "interviewer" in page and "Record viewed" in page and "parts=content" in page


def test_searching_by_record_matches_the_record_and_no_other(
    app: Flask, client: FlaskClient, auditor: TestUser, colleagues: dict[str, TestUser]
) -> None:
    amira = colleagues["amira"]
    about_7 = [plant(app, AuditAction.RECORD_VIEWED, by=amira, target_type="testimony", target_ids=(7,)),
               plant(app, AuditAction.EXPORT_BUILT, by=amira, target_type="testimony", target_ids=(3, 7, 9))]
    others = [plant(app, AuditAction.RECORD_VIEWED, by=amira, target_type="testimony", target_ids=(17,)),
              plant(app, AuditAction.RECORD_VIEWED, by=amira, target_type="testimony", target_ids=(70,)),
              plant(app, AuditAction.PERSON_REGISTERED, by=amira, target_type="person", target_ids=(7,))]
    by_pseudonym = plant(app, AuditAction.RECORD_VIEWED, by=amira, target_type="person", target_ids=("KB-7QX2",))

    response = search(client, target_type="testimony", target_id="7")
    assert response.status_code == 200
    assert shown_seqs(response) == sorted(about_7, reverse=True)
    page = response.get_data(as_text=True)
    assert 'href="/audit/records/testimony/7"' in page and 'href="/audit/records/testimony/9"' in page
    assert not set(others) & set(shown_seqs(response))

    assert shown_seqs(search(client, target_type="person", target_id="KB-7QX2")) == [by_pseudonym]
    assert shown_seqs(search(client, target_id="7")) == sorted([*about_7, others[2]], reverse=True)


def test_searching_by_action_and_by_days_includes_both_end_days(
    app: Flask, client: FlaskClient, auditor: TestUser, colleagues: dict[str, TestUser]
) -> None:
    amira = colleagues["amira"]

    def consent_at(*when: int) -> int:
        return plant(app, AuditAction.CONSENT_RECORDED, by=amira, target_type="testimony", target_ids=(1,),
                     at=datetime(*when, tzinfo=UTC))

    before = consent_at(2024, 2, 29, 23, 59, 59)
    first_day = consent_at(2024, 3, 1, 0, 0, 0)
    last_day = consent_at(2024, 3, 2, 23, 59, 59)
    after = consent_at(2024, 3, 3, 0, 0, 0)
    plant(app, AuditAction.CONSENT_WITHDRAWN, by=amira, target_type="testimony", target_ids=(1,))

    assert shown_seqs(search(client, action="consent_recorded")) == [after, last_day, first_day, before]
    assert shown_seqs(search(client, action="consent_recorded", since="2024-03-01", until="2024-03-02")) == [
        last_day, first_day]
    assert shown_seqs(search(client, action="consent_recorded", until="2024-02-29")) == [before]
    assert shown_seqs(search(client, since="2024-03-03", until="2024-03-03")) == [after]
    page = search(client).get_data(as_text=True)
    assert '<option value="consent_withdrawn">Consent withdrawn</option>' in page


def test_older_events_continue_the_search_without_overlap(
    app: Flask, client: FlaskClient, auditor: TestUser, colleagues: dict[str, TestUser]
) -> None:
    planted = [plant(app, AuditAction.RECORDS_SEARCHED, by=colleagues["narine"], details={"results": n})
               for n in range(63)]
    first = search(client, action="records_searched")
    assert shown_seqs(first) == sorted(planted, reverse=True)[:50]
    older = OLDER_LINK.search(first.get_data(as_text=True))
    assert older is not None
    plant(app, AuditAction.RECORDS_SEARCHED, by=colleagues["narine"], details={"results": 99})  # arrives meanwhile

    second = client.get(html.unescape(older.group(1)))
    assert second.status_code == 200
    assert shown_seqs(second) == sorted(planted, reverse=True)[50:]
    assert OLDER_LINK.search(second.get_data(as_text=True)) is None
    assert "Newest events" in second.get_data(as_text=True)


def test_each_search_that_runs_is_recorded_with_its_filter(
    app: Flask, client: FlaskClient, auditor: TestUser, colleagues: dict[str, TestUser]
) -> None:
    search(client)
    search(client, actor="amira", target_type="testimony", target_id="7", action="record_viewed",
           since="2024-03-01", until="2024-03-02")
    searched = events_of(app, AuditAction.AUDIT_SEARCHED)
    assert [(e.actor_id, e.actor_roles, e.target_type) for e in searched] == [(auditor.id, "auditor", "audit_log")] * 2
    assert searched[0].details == {}
    assert searched[1].details == {
        "actor_id": colleagues["amira"].id, "target_type": "testimony", "target_id": "7", "action": "record_viewed",
        "since": "2024-03-01T00:00:00.000000Z", "until": "2024-03-03T00:00:00.000000Z",
    }


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"since": "2024-13-01"}, "Enter a date as year-month-day, for example 2025-03-31."),
        ({"until": "1 March 2024"}, "Enter a date as year-month-day, for example 2025-03-31."),
        ({"since": "2024-03-02", "until": "2024-03-01"}, "The end date is before the start date."),
        ({"actor": "nobody-here"}, "No account has this username."),
        ({"target_id": "7; DROP TABLE"}, "Use letters, digits, dots, hyphens or underscores."),
        ({"action": "made_up"}, "Choose one of the listed values."),
        ({"before": "abc"}, "This page of results does not exist."),
    ],
    ids=["impossible-date", "wrong-date-form", "from-after-to", "unknown-actor", "bad-record-id", "bad-action",
         "bad-page"],
)
def test_a_search_that_cannot_run_says_why_and_records_nothing(
    app: Flask, client: FlaskClient, auditor: TestUser, query: dict[str, str], message: str
) -> None:
    before = event_count(app)
    response = search(client, **query)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "There is a problem" in page and html.escape(message, quote=False) in page
    assert SEQ_CELL.search(page) is None
    assert event_count(app) == before


def test_the_date_error_is_in_russian_for_a_russian_reader(
    app: Flask, client: FlaskClient, auditor: TestUser
) -> None:
    post_form(client, "/language", {"lang": "ru", "next": SEARCH}, token_from=SEARCH)
    before = event_count(app)
    response = search(client, since="2024-02-30")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'lang="ru"' in page
    assert "Введите дату в виде год-месяц-день, например 2025-03-31." in page
    assert "Enter a date" not in page
    assert event_count(app) == before


def test_details_and_reasons_are_shown_as_text_never_as_markup(
    app: Flask, client: FlaskClient, auditor: TestUser, colleagues: dict[str, TestUser]
) -> None:
    plant(app, AuditAction.REIDENTIFIED, by=colleagues["amira"], target_type="person", target_ids=("<i>x</i>",),
          reason='<script>alert("reason")</script>', details={"field": "<img src=x onerror=alert(1)>",
                                                             "flags": [True, None, 3]})
    page = search(client, action="reidentified").get_data(as_text=True)
    assert "<script>alert" not in page and "<img src=x" not in page and "<i>x</i>" not in page
    assert "&lt;script&gt;alert(&#34;reason&#34;)&lt;/script&gt;" in page
    assert "field=&lt;img src=x onerror=alert(1)&gt;" in page
    assert "flags=true,null,3" in page


def test_the_start_page_and_the_menu_lead_auditors_to_the_log(
    app: Flask, client: FlaskClient, auditor: TestUser, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    assert client.get("/").get_data(as_text=True).count('href="/audit/"') == 2  # the menu and the start page
    other = app.test_client()
    assert Auth(other, totp_clock).sign_in(create_user("ani", ["interviewer"])).status_code == 303
    assert 'href="/audit/"' not in other.get("/").get_data(as_text=True)


def test_each_audit_read_that_appends_an_event_takes_the_write_lock_when_it_begins(
    app: Flask, client: FlaskClient, auditor: TestUser
) -> None:
    _id, plaintext = make_token(app, auditor)
    recording = set()
    for rule in app.url_map.iter_rules():
        api = rule.endpoint.startswith("api_audit.")
        if not (api or rule.endpoint.startswith("audit.")) or "GET" not in (rule.methods or ()):
            continue
        path = rule.rule.replace("<target_type>", "testimony").replace("<target_id>", "1")
        before = event_count(app)
        response = client.get(path, headers={"Authorization": f"Bearer {plaintext}"} if api else {})
        assert response.status_code == 200, path
        if event_count(app) > before:
            recording.add(rule.endpoint)
            assert getattr(app.view_functions[rule.endpoint], WRITES_ON_GET_ATTRIBUTE, False), rule.endpoint
    assert recording == {"audit.search", "audit.record_history", "audit.record_extract", "api_audit.Events",
                         "api_audit.RecordHistory", "api_audit.RecordExtract"}


def test_every_action_has_a_name_for_people() -> None:
    assert set(ACTION_LABELS) == set(AuditAction)


# ---------------------------------------------------------------------------------------------------------------
# Verifying


def test_verifying_a_good_log_says_ok_and_is_recorded(
    app: Flask, client: FlaskClient, auditor: TestUser, colleagues: dict[str, TestUser]
) -> None:
    plant(app, AuditAction.RECORD_VIEWED, by=colleagues["amira"], target_type="testimony", target_ids=(1,))
    make_checkpoint(app)
    assert "The log has not been verified yet." in search(client).get_data(as_text=True)
    total = event_count(app)

    response = post_form(client, "/audit/verify", {}, token_from=SEARCH)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<strong>OK</strong>" in page and "FAILED" not in page
    assert re.search(r"<dt>Events checked</dt><dd>(\d+)</dd>", page).group(1) == str(total + 1)  # + the search
    assert "<dt>Checkpoints in the database</dt><dd>1</dd>" in page
    assert "events per second" in page
    verified = events_of(app, AuditAction.AUDIT_VERIFIED)
    assert [(e.actor_id, e.details["ok"], e.details["problems"]) for e in verified] == [(auditor.id, True, 0)]
    assert re.search(r"Last verified at [0-9: -]+ UTC by hasmik\.\s*<strong>OK</strong>",
                     search(client).get_data(as_text=True))


def test_verifying_a_tampered_log_names_the_changed_event(
    app: Flask, client: FlaskClient, auditor: TestUser, colleagues: dict[str, TestUser]
) -> None:
    changed = plant(app, AuditAction.RECORD_VIEWED, by=colleagues["narine"], target_type="testimony",
                    target_ids=(4,), details={"parts": ["content"]})
    plant(app, AuditAction.RECORD_VIEWED, by=colleagues["narine"], target_type="testimony", target_ids=(5,))
    make_checkpoint(app)
    with tampered(app, changed):
        response = post_form(client, "/audit/verify", {}, token_from=SEARCH)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<strong>FAILED</strong>" in page and "<strong>OK</strong>" not in page
    assert f"The first bad event is {changed}." in page
    assert "An event was changed after it was written." in page and "<code class=\"small\">changed</code>" in page
    assert re.search(rf"<code class=\"small\">changed</code></td>\s*<td[^>]*>{changed}</td>", page)
    verified = events_of(app, AuditAction.AUDIT_VERIFIED)[-1]
    assert verified.details["ok"] is False and verified.details["first_bad_seq"] == changed
    summary = search(client).get_data(as_text=True)
    assert "<strong>FAILED</strong>" in summary and f"The first bad event is {changed}." in summary


def test_verifying_needs_the_forms_csrf_token(app: Flask, client: FlaskClient, auditor: TestUser) -> None:
    before = event_count(app)
    response = client.post("/audit/verify", data={})
    assert response.status_code == 400
    assert client.post("/audit/verify", data={"csrf_token": "forged"}).status_code == 400
    assert events_of(app, AuditAction.AUDIT_VERIFIED) == []
    assert event_count(app) == before


# ---------------------------------------------------------------------------------------------------------------
# One record's history and extract


def test_the_record_history_names_who_saw_it_and_which_parts(
    app: Flask, client: FlaskClient, auditor: TestUser, colleagues: dict[str, TestUser]
) -> None:
    testimony_id = make_testimony(app)
    amira, narine, levon = colleagues["amira"], colleagues["narine"], colleagues["levon"]
    for who, parts in [(amira, ["content"]), (narine, ["content"]), (amira, ["attachment", "content"])]:
        plant(app, AuditAction.RECORD_VIEWED, by=who, target_type="testimony", target_ids=(testimony_id,),
              details={"parts": parts})
    plant(app, AuditAction.EXPORT_BUILT, by=levon, target_type="testimony", target_ids=(testimony_id, 99))
    plant(app, AuditAction.TESTIMONY_UPDATED, by=amira, target_type="testimony", target_ids=(testimony_id,),
          details={"fields": ["narrative"]})
    plant(app, AuditAction.RECORD_VIEWED, by=narine, target_type="testimony", target_ids=(testimony_id + 1,))
    expected = [e.seq for e in all_events(app) if e.target_type == "testimony" and testimony_id in e.target_ids]
    assert len(expected) == 6  # created, viewed three times, exported, updated

    response = client.get(f"/audit/records/testimony/{testimony_id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    viewers = page[page.index("Accounts that saw it"):page.index("Every event about this record")]
    rows = re.findall(r"<tr>\s*<td[^>]*>(\w+)\s*<br><span class=\"small\">([^<]*)</span></td>\s*<td[^>]*>(\d+)</td>"
                      r".*?<td[^>]*>([^<]*)</td>\s*</tr>", viewers, re.S)
    assert rows == [("levon", "legal", "1", ""), ("amira", "interviewer", "2", "attachment, content"),
                    ("narine", "reviewer", "1", "content")]
    assert shown_seqs(response) == expected
    assert "fields=narrative" in page and f'href="/audit/records/testimony/{testimony_id}/extract.json"' in page
    viewed = events_of(app, AuditAction.AUDIT_HISTORY_VIEWED)
    assert [(e.actor_id, e.target_type, e.target_ids) for e in viewed] == [(auditor.id, "testimony",
                                                                            [testimony_id])]


def test_the_extract_downloads_with_proofs_that_verify_against_the_signed_checkpoint(
    app: Flask, client: FlaskClient, auditor: TestUser, colleagues: dict[str, TestUser]
) -> None:
    testimony_id = make_testimony(app)
    for _ in range(3):
        plant(app, AuditAction.RECORD_VIEWED, by=colleagues["narine"], target_type="testimony",
              target_ids=(testimony_id,), details={"parts": ["content"]})
    make_checkpoint(app)
    plant(app, AuditAction.EXPORT_BUILT, by=colleagues["levon"], target_type="testimony",
          target_ids=(testimony_id,))  # after the checkpoint: no proof yet

    response = client.get(f"/audit/records/testimony/{testimony_id}/extract.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Disposition"] == f'attachment; filename="audit-testimony-{testimony_id}.json"'
    extract = json.loads(response.get_data(as_text=True))
    check_extract(extract, target_type="testimony", target_id=str(testimony_id))
    assert [e["action"] for e in extract["events"]] == ["testimony_created"] + ["record_viewed"] * 3 + [
        "export_built"]
    exported = events_of(app, AuditAction.AUDIT_EXTRACT_EXPORTED)
    assert [(e.actor_id, e.target_type, e.target_ids, e.details) for e in exported] == [
        (auditor.id, "testimony", [testimony_id], {"events": 5})]


def test_a_record_address_that_names_no_record_is_not_found(
    app: Flask, client: FlaskClient, auditor: TestUser
) -> None:
    before = event_count(app)
    assert client.get("/audit/records/Testimony!/1").status_code == 404
    assert client.get("/audit/records/testimony/-1/extract.json").status_code == 404
    assert event_count(app) == before


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints


def test_the_checkpoints_page_shows_each_signed_note_and_the_key_that_opens_it(
    app: Flask, client: FlaskClient, auditor: TestUser
) -> None:
    assert "No checkpoint has been signed yet." in client.get("/audit/checkpoints").get_data(as_text=True)
    make_checkpoint(app)
    plant(app, AuditAction.LOGOUT)
    make_checkpoint(app)
    page = client.get("/audit/checkpoints").get_data(as_text=True)
    notes = [html.unescape(n) for n in re.findall(r"<pre class=\"note\">(.*?)</pre>", page, re.S)]
    vkey = html.unescape(re.search(r'<code class="secret">([^<]+\+[0-9a-f]{8}\+[^<]+)</code>', page).group(1))
    assert len(notes) == 2
    sizes = [open_checkpoint(note, [Verifier.from_string(vkey)])[0].size for note in notes]
    assert sizes[0] > sizes[1]  # newest first
    assert page.index("Checkpoint 2") < page.index("Checkpoint 1")
    assert "C2SP signed notes" in page


# ---------------------------------------------------------------------------------------------------------------
# No content


def test_no_audit_page_shows_testimony_content_or_identity(
    app: Flask, client: FlaskClient, auditor: TestUser, colleagues: dict[str, TestUser]
) -> None:
    testimony_id = make_testimony(app)
    plant(app, AuditAction.RECORD_VIEWED, by=colleagues["narine"], target_type="testimony",
          target_ids=(testimony_id,), details={"parts": ["content", "identity"]})
    make_checkpoint(app)
    pages = [
        search(client), search(client, target_type="testimony", target_id=str(testimony_id)),
        client.get(f"/audit/records/testimony/{testimony_id}"),
        client.get(f"/audit/records/testimony/{testimony_id}/extract.json"),
        client.get("/audit/checkpoints"),
        post_form(client, "/audit/verify", {}, token_from=SEARCH),
    ]
    for response in pages:
        assert response.status_code == 200
        body = response.get_data(as_text=True)
        for secret in (SENTINEL, SENTINEL_NAME, "Ракетный", "Անի"):
            assert secret not in body
