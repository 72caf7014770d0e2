"""The reviewer's queue filtered by the interviewer's team, and paged in one query that already leaves out the
records whose consent to documentation was withdrawn."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from intake.consents import operations as consents
from intake.core.access import assignments as access
from intake.core.db import db
from intake.review import queries
from intake.testimonies.models import Testimony as StoredTestimony
from tests.conftest import Auth, TestUser
from tests.interviews import factories as f


@pytest.fixture
def people(create_user: Callable[..., TestUser]) -> dict[str, TestUser]:
    return {"amira": create_user("amira", ["interviewer"]), "levon": create_user("levon", ["interviewer"]),
            "rafael": create_user("rafael", ["reviewer"]), "sona": create_user("sona", ["coordinator"])}


def _assigned(app: Flask, people: dict[str, TestUser], interviewer: str, key: str) -> int:
    testimony_id = f.full_interview(app, people[interviewer], key=key)
    with app.app_context():
        access.assign(db.session.get(StoredTestimony, testimony_id), f.account(people["rafael"]),
                      actor=f.account(people["sona"]))
        db.session.commit()
    return testimony_id


def _listed(client: FlaskClient, query: str = "") -> list[int]:
    page = client.get(f"/review/?{query}")
    assert page.status_code == 200, page.get_data(as_text=True)
    return [int(n) for n in re.findall(r'href="/review/records/(\d+)"', page.get_data(as_text=True))]


def test_the_queue_filters_on_the_interviewers_team(app: Flask, client: FlaskClient, auth: Auth,
                                                    people: dict[str, TestUser]) -> None:
    with app.app_context():
        f.account(people["amira"]).team = "north"
        f.account(people["levon"]).team = "south"
        db.session.commit()
    north = _assigned(app, people, "amira", "a" * 24)
    south = _assigned(app, people, "levon", "b" * 24)
    auth.sign_in(people["rafael"])

    html = client.get("/review/").get_data(as_text=True)
    assert re.search(r'<select[^>]*name="team"', html)
    assert '<option value="north">north</option>' in html and '<option value="south">south</option>' in html
    assert _listed(client) == [south, north]
    assert _listed(client, "team=north") == [north]
    assert _listed(client, "team=south&incident_type=shelling") == [south]
    assert _listed(client, "team=south&incident_type=enforced_disappearance") == []

    refused = client.get("/review/?team=west")
    assert refused.status_code == 400
    assert "Choose one of the listed values." in refused.get_data(as_text=True)


def test_a_withdrawn_record_leaves_the_queue_without_shortening_the_page(
        app: Flask, client: FlaskClient, auth: Auth, people: dict[str, TestUser],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "PAGE_SIZE", 2)
    oldest, middle, newest, latest = (_assigned(app, people, "amira", c * 24) for c in "abcd")
    with app.app_context():
        for testimony_id, purposes in ((newest, []), (latest, ["documentation"]), (middle, ["advocacy"])):
            consents.record_withdrawal(db.session.get(StoredTestimony, testimony_id), purposes=purposes,
                                       received_how="phone", erasure=False, actor=f.account(people["sona"]),
                                       config=app.config)
        db.session.commit()
    auth.sign_in(people["rafael"])

    first = client.get("/review/").get_data(as_text=True)
    assert [int(n) for n in re.findall(r'href="/review/records/(\d+)"', first)] == [middle, oldest]
    assert "Older records" not in first
    assert client.get(f"/review/records/{newest}").status_code == 403
