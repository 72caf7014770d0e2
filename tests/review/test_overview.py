"""The reviewer's overview: incidents over time, by region and by type, drawn as inline SVG with a table of the same
numbers, counted only over the records the reviewer may see and only from their clear classification."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from intake.consents import operations as consents
from intake.core import vocabulary
from intake.core.access import assignments as access
from intake.core.audit.models import AuditEvent
from intake.core.db import db
from intake.interviews import operations as ops
from intake.review import charts
from intake.testimonies.models import Testimony as StoredTestimony
from tests.conftest import Auth, TestUser, post_form
from tests.interviews import factories as f

SVG = "{http://www.w3.org/2000/svg}"
OVERVIEW = "/review/overview"


@pytest.fixture
def people(create_user: Callable[..., TestUser]) -> dict[str, TestUser]:
    return {"amira": create_user("amira", ["interviewer"]), "rafael": create_user("rafael", ["reviewer"]),
            "sona": create_user("sona", ["coordinator"])}


def _assign(app: Flask, people: dict[str, TestUser], testimony_id: int) -> None:
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        access.assign(testimony, f.account(people["rafael"]), actor=f.account(people["sona"]))
        db.session.commit()


def _interview_of(app: Flask, user: TestUser, *incidents: ops.IncidentInput, key: str, language: str = "hy") -> int:
    """A submitted interview with `incidents`."""
    with app.app_context():
        actor = f.account(user)
        testimony = ops.start_interview(f.readiness(), f.consent(script_language=language), actor=actor,
                                        config=app.config)
        ops.save_narrative(testimony, f.SENTINEL_NARRATIVE, declined=False, actor=actor, config=app.config)
        for incident in incidents:
            ops.add_incident(testimony, incident, actor=actor, config=app.config)
        ops.save_referral(testimony, f.referral(), actor=actor, config=app.config)
        assert ops.submit(testimony, idempotency_key=key, actor=actor, config=app.config) is True
        db.session.commit()
        return int(testimony.id)


def _withdraw(app: Flask, people: dict[str, TestUser], testimony_id: int) -> None:
    with app.app_context():
        testimony = db.session.get(StoredTestimony, testimony_id)
        consents.record_withdrawal(testimony, purposes=[], received_how="phone", erasure=False,
                                   actor=f.account(people["sona"]), config=app.config)
        db.session.commit()


def _audit_count(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count(AuditEvent.seq))) or 0)


@dataclass
class Drawn:
    """One chart of the page: its SVG element, the titles of its bars, its notes and its table."""

    svg: ET.Element
    bar_titles: list[str]
    notes: list[str]
    table: list[tuple[str, str]]


def _charts(page: str) -> dict[str, Drawn]:
    found = {}
    for key, body in re.findall(r'<section class="chart" aria-labelledby="([a-z]+)-heading">(.*?)</section>', page,
                                re.S):
        svgs = re.findall(r"<svg .*?</svg>", body, re.S)
        if not svgs:
            continue
        assert len(svgs) == 1
        svg = ET.fromstring(svgs[0])  # noqa: S314 - our own page; well-formed XML, or this raises
        found[key] = Drawn(
            svg=svg,
            bar_titles=[rect.findtext(f"{SVG}title") or "" for rect in svg.iter(f"{SVG}rect")],
            notes=[html.unescape(n) for n in re.findall(r'<p class="hint">(.*?)</p>', body, re.S)],
            table=[(html.unescape(label), html.unescape(count)) for label, count in re.findall(
                r'<tr><th scope="row">(.*?)</th><td class="number">(.*?)</td></tr>', body, re.S)])
    return found


def _numbers(chart: Drawn) -> dict[str, int]:
    return {label: int(count) for label, count in chart.table}


def _overview(client: FlaskClient, query: str = "") -> str:
    page = client.get(f"{OVERVIEW}?{query}")
    assert page.status_code == 200, page.get_data(as_text=True)
    return page.get_data(as_text=True)


@pytest.fixture
def records(app: Flask, people: dict[str, TestUser]) -> dict[str, int]:
    """Four records: assigned, never assigned, assigned but withdrawn, and assigned with an incident in Armenia in
    December 2023 and one with neither a month nor a place from the gazetteer."""
    seen = f.full_interview(app, people["amira"], key="a" * 24)  # shelling 2023-09 Stepanakert, detention 2023-10
    hidden = f.full_interview(app, people["amira"], key="b" * 24)
    withdrawn = _interview_of(app, people["amira"], f.incident(type="drone_strike", date_start="2023-09-25",
                                                               place_id="goris"), key="c" * 24)
    later = _interview_of(app, people["amira"], f.incident(date_start="2023-12-02", place_id="kornidzor"),
                          f.incident(type="forced_displacement", date_precision="unknown", date_start="",
                                     place_id="", place_description="a village by the river"),
                          key="d" * 24, language="ru")
    for testimony_id in (seen, withdrawn, later):
        _assign(app, people, testimony_id)
    _withdraw(app, people, withdrawn)
    return {"seen": seen, "hidden": hidden, "withdrawn": withdrawn, "later": later}


def test_the_overview_counts_only_the_incidents_of_records_the_reviewer_may_see(
        app: Flask, client: FlaskClient, auth: Auth, people: dict[str, TestUser], records: dict[str, int]) -> None:
    auth.sign_in(people["rafael"])
    page = _overview(client)
    assert "Incidents counted: 4" in page
    drawn = _charts(page)
    assert list(drawn) == ["months", "regions", "types"]
    # The unassigned record's incidents would add a second September and October, the withdrawn one's a drone
    # strike in Armenia in September.
    assert drawn["months"].table == [("September 2023", "1"), ("October 2023", "1"), ("November 2023", "0"),
                                     ("December 2023", "1")]
    assert drawn["months"].notes == ["Incidents without a known month, not drawn: 1."]
    assert _numbers(drawn["regions"]) == {"Nagorno-Karabakh": 1, "Armenia": 1, "Azerbaijan": 1,
                                          "Region not known": 1}
    assert drawn["types"].table[0] == ("Shelling or artillery strike", "2")
    assert _numbers(drawn["types"]) == {"Shelling or artillery strike": 2, "Detention at a checkpoint": 1,
                                        "Forced displacement": 1}


def test_each_chart_is_an_accessible_svg_with_the_numbers_of_its_table(
        app: Flask, client: FlaskClient, auth: Auth, people: dict[str, TestUser], records: dict[str, int]) -> None:
    auth.sign_in(people["rafael"])
    response = client.get(OVERVIEW)
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
    page = response.get_data(as_text=True)
    for key, chart in _charts(page).items():
        svg = chart.svg
        assert svg.tag == f"{SVG}svg" and svg.get("role") == "img", key
        title, desc = svg.find(f"{SVG}title"), svg.find(f"{SVG}desc")
        assert title is not None and desc is not None and title.text and desc.text, key
        assert svg.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}", key
        heading = re.search(rf'<h2 id="{key}-heading">(.*?)</h2>', page)
        assert heading is not None and html.unescape(heading.group(1)) == title.text
        # One bar per row of the table, each naming the same number; zero months have a bar of no height.
        assert chart.bar_titles == [f"{label}: {count}" for label, count in chart.table], key
        for label, count in chart.table:
            assert f"{label}: {count}" in desc.text or key == "months", key
        # Nothing the Content-Security-Policy would refuse or that loads anything.
        for element in svg.iter():
            assert "style" not in element.attrib and not any("href" in name for name in element.attrib), key
            assert element.tag not in (f"{SVG}script", f"{SVG}image", f"{SVG}foreignObject", f"{SVG}style"), key
    months = _charts(page)["months"]
    heights = {t: float(r.get("height", "0")) for t, r in zip(months.bar_titles, months.svg.iter(f"{SVG}rect"),
                                                                strict=True)}
    assert heights["November 2023: 0"] == 0 and heights["September 2023: 1"] > 0
    assert months.svg.findtext(f"{SVG}desc") == (
        "Incidents with a known month: 3, from September 2023 to December 2023. The highest monthly count: 1, in "
        "September 2023.")


def test_the_queue_filters_narrow_the_counts(
        app: Flask, client: FlaskClient, auth: Auth, people: dict[str, TestUser], records: dict[str, int]) -> None:
    auth.sign_in(people["rafael"])
    shelling = _charts(_overview(client, "incident_type=shelling"))
    assert _numbers(shelling["types"]) == {"Shelling or artillery strike": 2}
    assert shelling["months"].table == [("September 2023", "1"), ("October 2023", "0"), ("November 2023", "0"),
                                        ("December 2023", "1")]
    assert _numbers(shelling["regions"]) == {"Nagorno-Karabakh": 1, "Armenia": 1, "Azerbaijan": 0}

    azerbaijan = _charts(_overview(client, "region=azerbaijan"))
    assert _numbers(azerbaijan["types"]) == {"Detention at a checkpoint": 1}
    assert azerbaijan["months"].table == [("October 2023", "1")]

    # The record filters narrow the records; the incident filters must all hold for each incident counted.
    russian = _charts(_overview(client, "language=ru&status=submitted"))
    assert _numbers(russian["types"]) == {"Shelling or artillery strike": 1, "Forced displacement": 1}
    assert "Incidents counted: 0" in (page := _overview(client, "incident_type=shelling&region=azerbaijan"))
    assert "No incident matches." in page and "<svg" not in page
    undated = _overview(client, "incident_type=forced_displacement")
    assert "None of the incidents counted has a known month." in undated
    assert list(_charts(undated)) == ["regions", "types"]


def test_bad_filters_are_refused_with_the_form_shown_again(
        app: Flask, client: FlaskClient, auth: Auth, people: dict[str, TestUser], records: dict[str, int]) -> None:
    auth.sign_in(people["rafael"])
    refused = client.get(f"{OVERVIEW}?month=2023-13&region=mars")
    page = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert "There is a problem" in page and 'name="month"' in page and 'value="2023-13"' in page
    assert "Enter a month as year-month, for example 2023-09." in page
    assert "Choose one of the listed values." in page
    assert "<svg" not in page and "Incidents counted" not in page

    post_form(client, "/language", {"lang": "ru", "next": OVERVIEW}, token_from=OVERVIEW)
    refused = client.get(f"{OVERVIEW}?month=2023-13")
    page = refused.get_data(as_text=True)
    assert refused.status_code == 400 and 'lang="ru"' in page
    assert "Введите месяц в виде год-месяц, например 2023-09." in page and "Enter a month" not in page
    drawn = _charts(_overview(client))
    shelling = vocabulary.incident_type("shelling")
    assert shelling is not None and _numbers(drawn["types"])[shelling.label("ru")] == 2
    assert drawn["months"].table[0] == ("сентябрь 2023\u202fг.", "1")


def test_nothing_identifying_or_sealed_appears_and_viewing_is_not_audited(
        app: Flask, client: FlaskClient, auth: Auth, people: dict[str, TestUser], records: dict[str, int]) -> None:
    auth.sign_in(people["rafael"])
    before = _audit_count(app)
    page = _overview(client)
    assert _audit_count(app) == before  # like the queue: counts of clear columns open nothing
    with app.app_context():
        pseudonyms = list(db.session.scalars(sa.select(StoredTestimony.pseudonym)))
    for secret in (f.SENTINEL_NARRATIVE, f.SENTINEL_NAME, "Kornidzor", "Stepanakert", "Goris", "two neighbours",
                   "a village by the river", *pseudonyms):
        assert secret not in page
    assert not re.search(r'href="/review/records/\d+"', page)


def test_the_queue_links_to_the_overview_and_other_roles_may_not_see_it(
        app: Flask, client: FlaskClient, auth: Auth, create_user: Callable[..., TestUser],
        people: dict[str, TestUser]) -> None:
    auth.sign_in(people["rafael"])
    assert f'href="{OVERVIEW}"' in client.get("/review/").get_data(as_text=True)
    assert "No incident matches." in _overview(client)
    auth.sign_out()
    auth.sign_in(people["sona"])
    assert client.get(OVERVIEW).status_code == 403


def test_a_long_range_is_cut_to_the_latest_months_and_says_so(app: Flask) -> None:
    with app.test_request_context():
        chart = charts.months_chart({"2019-05": 2, "2020-12": 3, "2021-01": 1, "2023-12": 4}, undated=0)
        assert chart is not None
        assert len(chart.rows) == charts.MONTH_LIMIT == len(chart.bars)
        assert chart.rows[0] == charts.Row("January 2021", 1) and chart.rows[-1] == charts.Row("December 2023", 4)
        assert sum(r.count for r in chart.rows) == 5
        assert chart.notes == ("Only the latest 36 months are drawn. Incidents of earlier months: 5.",)
        assert charts.months_chart({}, undated=3) is None
        short = charts.months_chart({"2023-02": 7})
        assert short is not None and short.rows == (charts.Row("February 2023", 7),) and short.notes == ()


def test_names_are_escaped_and_long_ones_drawn_shortened_but_kept_whole(app: Flask) -> None:
    long_name = "An incident type with a very long name, " * 3
    with app.test_request_context():
        chart = charts.categories_chart("kinds", [charts.Row('Fire & "smoke" <b>', 3), charts.Row(long_name, 0)],
                                        title="Kinds <i>", heading="Kind")
        svg = ET.fromstring(str(chart.svg()))  # noqa: S314 - our own markup
    assert svg.findtext(f"{SVG}title") == "Kinds <i>"
    assert [r.findtext(f"{SVG}title") for r in svg.iter(f"{SVG}rect")] == ['Fire & "smoke" <b>: 3', f"{long_name}: 0"]
    texts = [t.text or "" for t in svg.iter(f"{SVG}text")]
    assert 'Fire & "smoke" <b>' in texts and long_name not in texts
    assert any(t.endswith("…") and long_name.startswith(t[:-1]) for t in texts)
    widths = [float(r.get("width", "")) for r in svg.iter(f"{SVG}rect")]
    assert widths[0] > 0 and widths[1] == 0
    assert all(float(t.get("x", "")) <= chart.width for t in svg.iter(f"{SVG}text"))
