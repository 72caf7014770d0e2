"""The interview wizard in a real browser, as a field interviewer uses it.

A whole interview in Armenian on a phone, from the readiness check to submit, with two incidents and a photo; a
refusal at consent that leaves nothing personal anywhere in the database file; a draft autosaved by interview.js
that survives closing the page; and the whole interview again with JavaScript switched off, plain form posts only.
A submit pressed twice on a slow connection, or the submitted form sent again, leaves one submitted interview.

The Armenian pages are driven by element ids, names and form structure, not by their (still changing) interface
texts; what is checked is what the person gave and where it went: the pages, the rows, the decrypted narrative.
Every page must load without console errors (CSP violations are reported there), and each Armenian page fits the
phone's screen and passes axe's WCAG 2.1 A/AA rules.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from consent import scripts
from consent.records import ScriptItem
from intake.accounts.models import Account
from intake.consents.models import ConsentRecord
from intake.core.access import ALL_PARTS, open_record
from intake.core.audit.models import AuditEvent
from intake.core.db import db
from intake.identities.models import Person as StoredPerson
from intake.interviews.models import InterviewNotHeld
from intake.testimonies.models import Attachment, Incident
from intake.testimonies.models import Testimony as StoredTestimony
from intake.testimonies.operations import read_narrative
from tests.browser.conftest import DESKTOP, PHONE, TIMEOUT_MS, LiveServer, Person
from tests.browser.test_accessibility import assert_accessible
from tests.browser.test_first_run import armenian
from tests.conftest import TestUser, TotpClock
from tests.core.test_sentinel_scan import encodings

pytestmark = pytest.mark.browser
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# The smallest valid PNG: one pixel.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
NARRATIVE_HY = ("Սեպտեմբերի 19-ի առավոտյան սկսեցին ռմբակոծել մեր փողոցը։ Մենք թաքնվեցինք դպրոցի նկուղում, "
                "իսկ հետո Լաչինի միջանցքով գնացինք Գորիս։")
NARRATIVE_EN = "They shelled the street at dawn; we hid in the cellar of the school until the evening."
LATER_WORDS = " Then the soldiers came to the school."
READY = {"private_place": "yes", "no_observers": "yes", "interpreter": "not_needed", "support_available": "yes",
         "risk": "low"}


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def in_main(page: Any, form: str = "form") -> Any:
    """The submit button of the page's form (inside <main>; the header holds the language form)."""
    return page.locator(f"main {form} button[type=submit]").first


def sign_in_by_ids(person: Person, server: LiveServer, clock: TotpClock, user: TestUser) -> None:
    """Sign in with the fields' ids, whatever language the page speaks."""
    page = person.page
    page.goto(f"{server.url}/sign-in")
    page.locator("#username").fill(user.username)
    page.locator("#password").fill(user.password)
    page.locator("#code").fill(clock.code(user.totp_secret))
    in_main(page).click()
    expect(page.locator("nav a[href='/interviews/']")).to_be_visible()


def choose(page: Any, name: str, value: str) -> None:
    page.locator(f"input[name='{name}'][value='{value}']").check()


def answer_readiness(page: Any, language: str) -> None:
    expect(page).to_have_url(re.compile(r"/interviews/new$"))
    for name, value in READY.items():
        choose(page, name, value)
    page.locator("#language").select_option(language)
    in_main(page).click()
    expect(page).to_have_url(re.compile(r"/interviews/new/consent$"))


def give_consent(page: Any) -> int:
    """Tick every part of the script as read, consent in writing to documentation and photos: the interview's id."""
    for item in ScriptItem:
        page.locator(f"input[name='items'][value='{item.value}']").check()
    page.locator("#capacity_confirmed").check()
    page.locator("#voluntariness_confirmed").check()
    choose(page, "method", "written")
    choose(page, "grant_documentation", "yes")
    page.locator("#disclosure_documentation").select_option("pseudonymous")
    page.locator("input[name='media'][value='photo']").check()
    page.locator("button[name='decision'][value='consent']").click()
    expect(page).to_have_url(re.compile(r"/interviews/\d+/person$"))
    found = re.search(r"/interviews/(\d+)/person$", page.url)
    assert found is not None
    return int(found.group(1))


def add_incident(page: Any, fields: dict[str, str], *, checks: tuple[tuple[str, str], ...] = ()) -> None:
    """Fill in the "add an incident" form (selects and text by id, radio buttons by name and value) and send it."""
    form = page.locator("form[aria-labelledby='add-incident']")
    for field_id, value in fields.items():
        control = form.locator(f"#{field_id}")
        if control.evaluate("el => el.tagName") == "SELECT":
            control.select_option(value)
        else:
            control.fill(value)
    for name, value in checks:
        choose(page, name, value)
    before = page.locator("ol.incidents > li").count()
    form.locator("button[type=submit]").click()
    expect(page.locator("ol.incidents > li")).to_have_count(before + 1)
    expect(page).to_have_url(re.compile(r"/interviews/\d+/incidents$"))


def attach(page: Any, path: Path, medium: str) -> None:
    before = page.locator("table.attachments tbody tr").count()
    page.locator("#file").set_input_files(str(path))
    choose(page, "medium", medium)
    in_main(page, "form[enctype='multipart/form-data']").click()
    expect(page.locator("table.attachments tbody tr")).to_have_count(before + 1)
    expect(page).to_have_url(re.compile(r"/interviews/\d+/attachments$"))


def next_step(page: Any, step: str) -> None:
    page.locator("main p.next a").click()
    expect(page).to_have_url(re.compile(rf"/interviews/\d+/{step}$"))


def count(model: Any, *where: Any) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0


def stored_testimony(testimony_id: int) -> StoredTestimony:
    testimony = db.session.get(StoredTestimony, testimony_id)
    assert testimony is not None
    return testimony


def watch(person: Person, page: Any) -> Any:
    """Record a further page's console errors with the person's."""
    page.on("console", lambda msg: person.console_errors.append(f"{msg.text} ({msg.location.get('url')})")
            if msg.type == "error" else None)
    page.on("pageerror", lambda exc: person.console_errors.append(f"uncaught: {exc}"))
    return page


def press_twice(page: Any, button: Any) -> None:
    """Press a button twice, a tenth of a second apart, as an impatient finger does. (Playwright's `dblclick`
    sends both clicks at once, and Chromium then submits the form only once.)"""
    button.scroll_into_view_if_needed()
    box = button.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.click(x, y)
    time.sleep(0.1)
    page.mouse.click(x, y)


def on_a_phone(person: Person, what: str) -> None:
    """The page, once loaded with its style sheet, fits the phone's screen, passes axe's accessibility rules and
    broke no rule of the CSP."""
    person.page.wait_for_load_state("load")
    assert_accessible(person, what)


class SlowPosts:
    """The app behind a slow network: each POST to a path ending in `ending` waits before it is handled. Keeps the
    status each of them was answered with."""

    def __init__(self, wsgi_app: Any, ending: str, seconds: float = 0.5) -> None:
        self.wsgi_app, self.ending, self.seconds = wsgi_app, ending, seconds
        self.answers: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ["REQUEST_METHOD"] != "POST" or not environ["PATH_INFO"].endswith(self.ending):
            return self.wsgi_app(environ, start_response)
        time.sleep(self.seconds)

        def noted(status: str, headers: Any, *args: Any) -> Any:
            self.answers.append(status)
            return start_response(status, headers, *args)

        return self.wsgi_app(environ, noted)

    def wait_for(self, n: int) -> list[str]:
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while len(self.answers) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.answers


@pytest.fixture
def amira(create_user: Any) -> TestUser:
    user: TestUser = create_user("amira", ["interviewer"])
    return user


@pytest.fixture
def person_without_javascript(browser: Any) -> Iterator[Person]:
    context = browser.new_context(viewport=DESKTOP, locale="en-GB", java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    person = Person(context, context.new_page())
    watch(person, person.page)
    yield person
    context.close()


# ---------------------------------------------------------------------------------------------------------------
# A whole interview in Armenian, on a phone


def test_a_whole_interview_in_armenian_on_a_phone(live_server: LiveServer, new_person: Any, amira: TestUser,
                                                 totp_clock: TotpClock, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    app = live_server.app
    person = new_person(viewport=PHONE, locale="hy-AM")
    page = person.page
    sign_in_by_ids(person, live_server, totp_clock, amira)
    # The interface in Armenian, chosen with the language switch in the header (and kept with the account).
    page.locator("#lang").select_option("hy")
    page.locator("form.language button[type=submit]").click()
    expect(page.locator("html")).to_have_attribute("lang", "hy")

    page.locator("nav a[href='/interviews/']").click()
    expect(page).to_have_url(re.compile(r"/interviews/$"))
    page.locator("main a[href='/interviews/new']").click()
    expect(page.locator("html")).to_have_attribute("lang", "hy")
    on_a_phone(person, "readiness")
    answer_readiness(page, "hy")

    # Consent: the Armenian script, item by item, marked as Armenian text.
    script = scripts.latest("hy")
    expect(page.locator("html")).to_have_attribute("lang", "hy")
    for item in (ScriptItem.RIGHT_TO_REFUSE, ScriptItem.RIGHT_TO_WITHDRAW):
        shown = page.locator(f"#script-{item.value}")
        expect(shown).to_be_visible()
        expect(shown).to_have_text(script.items[item.value])
        expect(shown).to_have_attribute("lang", "hy")
    expect(page.locator("#question-capacity")).to_have_text(script.questions["capacity"])
    with app.app_context():
        assert count(StoredTestimony) == 0 and count(ConsentRecord) == 0  # nothing before consent
    on_a_phone(person, "consent")
    testimony_id = give_consent(page)

    # The person gives their name; it goes to the identity vault.
    name = "Անի Պետրոսյան"
    choose(page, "keep_anonymous", "identified")
    page.locator("#name").fill(name)
    page.locator("#birth_year").fill("1961")
    on_a_phone(person, "the person")
    in_main(page).click()

    # Testimony, in the person's words.
    expect(page).to_have_url(re.compile(rf"/interviews/{testimony_id}/testimony$"))
    page.locator("#narrative").fill(NARRATIVE_HY)
    on_a_phone(person, "testimony")
    page.locator("button[name='then'][value='continue']").click()

    # Two incidents: shelling in Stepanakert, found by its Azerbaijani name, and a displacement over a period.
    expect(page).to_have_url(re.compile(rf"/interviews/{testimony_id}/incidents$"))
    page.locator("#place_id-filter").fill("Khankendi")
    expect(page.locator("#place_id option[value='stepanakert']")).not_to_have_attribute("hidden", "")
    expect(page.locator("#place_id option[value='goris']")).to_have_attribute("hidden", "")
    on_a_phone(person, "incidents")
    add_incident(page, {"type": "shelling", "date_precision": "day", "date_start": "2023-09-19",
                        "place_id": "stepanakert", "victims_count": "2", "victims_description": "Երկու հարևան"},
                 checks=(("source_relation", "saw"),))
    add_incident(page, {"type": "forced_displacement", "date_precision": "range", "date_start": "2023-09-24",
                        "date_end": "2023-09-30", "place_description": "Լաչինի միջանցքով՝ դեպի Գորիս"},
                 checks=(("source_relation", "lived"),))
    listed = page.locator("ol.incidents > li")
    expect(listed.nth(0)).to_contain_text("2023-09-19")
    expect(listed.nth(0)).to_contain_text("Ստեփանակերտ")  # the gazetteer's Armenian name
    expect(listed.nth(1)).to_contain_text("2023-09-24 – 2023-09-30")
    next_step(page, "attachments")

    # A photo, with its SHA-256 shown to the interviewer.
    photo = tmp_path / "street.png"
    photo.write_bytes(PNG)
    digest = hashlib.sha256(PNG).hexdigest()
    expect(page.locator("input[name='medium']")).to_have_count(1)  # only what the consent covers: photos
    attach(page, photo, "photo")
    expect(page.locator("table.attachments code.digest")).to_have_text(digest)
    on_a_phone(person, "attachments")
    next_step(page, "referral")

    choose(page, "wellbeing", "distressed_supported")
    choose(page, "outcome", "accepted")
    page.locator("input[name='services'][value='psychosocial']").check()
    in_main(page).click()

    # Review: everything the person gave, then submit, pressed twice in a hurry.
    expect(page).to_have_url(re.compile(rf"/interviews/{testimony_id}/review$"))
    expect(page.locator("main .narrative")).to_have_text(NARRATIVE_HY)
    expect(page.locator("main ol.incidents > li")).to_have_count(2)
    expect(page.locator("main ul.attachments code.digest")).to_have_text(digest)
    expect(page.locator("main dl.facts dd").filter(has_text=name)).to_have_count(1)
    on_a_phone(person, "review")
    # On a slow connection the second press reaches the server while the first is still being answered.
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and r.url.endswith("/review") else None)
    slow = SlowPosts(app.wsgi_app, "/review")
    monkeypatch.setattr(app, "wsgi_app", slow)
    press_twice(page, in_main(page, "form[action$='/review']"))
    expect(page).to_have_url(re.compile(rf"/interviews/{testimony_id}$"))
    assert len(posts) == 2, posts
    assert slow.wait_for(2) == ["303 SEE OTHER", "303 SEE OTHER"]  # both lead to the submitted interview

    # The interview is listed as submitted.
    page.locator("nav a[href='/interviews/']").click()
    rows = page.locator("table.interviews tbody tr")
    expect(rows).to_have_count(1)
    with app.app_context():
        pseudonym = stored_testimony(testimony_id).pseudonym
    expect(rows.first.locator("code")).to_have_text(pseudonym)
    # Its status reads "Submitted" (in Armenian once the catalogue has it), and it can be corrected until a deadline.
    expect(rows.first.locator("td").nth(1)).to_have_text(re.compile(
        rf"^\s*({re.escape(armenian().gettext('Submitted'))}|Submitted)\s*$"))
    expect(rows.first.locator("td").nth(3)).to_contain_text("UTC")
    on_a_phone(person, "my interviews")

    with app.app_context():
        testimony = stored_testimony(testimony_id)
        assert testimony.status == "submitted" and testimony.submitted_at is not None
        assert count(StoredTestimony) == 1
        assert count(Incident, Incident.testimony_id == testimony_id) == 2
        assert count(Attachment, Attachment.testimony_id == testimony_id) == 1
        assert count(ConsentRecord) == 1 and count(StoredPerson) == 1
        assert count(AuditEvent, AuditEvent.action == "testimony_submitted") == 1
        assert read_narrative(testimony) == NARRATIVE_HY
        view = open_record(db.session.get(Account, amira.id), testimony, ALL_PARTS, config=app.config)
        assert view.narrative == NARRATIVE_HY
        assert view.identity is not None and view.identity["name"] == name
        assert [(i.type, i.details["date"], i.details["place"]["id"]) for i in view.incidents] == [
            ("shelling", {"precision": "day", "start": "2023-09-19", "end": None}, "stepanakert"),
            ("forced_displacement", {"precision": "range", "start": "2023-09-24", "end": "2023-09-30"}, None)]
        assert [(a.medium, a.details["digest"]["value"]) for a in view.attachments] == [("photo", digest)]
        db.session.rollback()  # the audit event of this reading is no part of the interview
    assert person.console_errors == []


# ---------------------------------------------------------------------------------------------------------------
# Refusal at consent


@SQLITE_ONLY
def test_a_refusal_at_consent_stores_nothing_personal(live_server: LiveServer, new_person: Any, amira: TestUser,
                                                      totp_clock: TotpClock, database_url: str) -> None:
    app = live_server.app
    person = new_person()
    page = person.page
    sign_in_by_ids(person, live_server, totp_clock, amira)
    page.goto(f"{live_server.url}/interviews/new")
    answer_readiness(page, "en")

    # The interviewer had begun to fill in the form when the person said no.
    witness = "Zabel Ter-Ohanyan-Kvirikyan"
    page.locator("input[name='items'][value='who_collects_and_why']").check()
    choose(page, "method", "oral_witnessed")
    page.locator("#witness").fill(witness)
    page.locator("button[name='decision'][value='refuse']").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Nothing about this person was recorded")

    with app.app_context():
        assert count(StoredPerson) == 0
        assert count(StoredTestimony) == 0
        assert count(ConsentRecord) == 0
        not_held = db.session.scalars(sa.select(InterviewNotHeld)).all()
        assert [(row.stage, row.reasons, row.interviewer_id) for row in not_held] == [
            ("consent", ["consent_refused"], amira.id)]
    app.extensions["intake.db"].dispose()  # close the pool, so that what was written is in the files read below

    database_file = Path(sa.engine.make_url(database_url).database or "")
    assert database_file.is_file()
    stored = b"".join(Path(f"{database_file}{suffix}").read_bytes() for suffix in ("", "-wal", "-shm")
                      if Path(f"{database_file}{suffix}").exists())
    assert b"consent_refused" in stored  # what was written can be found: the reason the interview was not held
    found = [pattern for pattern in encodings(witness) if pattern in stored]
    assert not found, f"the witness's name is in the database file as {found}"
    assert person.console_errors == []


# ---------------------------------------------------------------------------------------------------------------
# Autosave


@SQLITE_ONLY
def test_an_autosaved_narrative_survives_closing_the_page(live_server: LiveServer, new_person: Any,
                                                          amira: TestUser, totp_clock: TotpClock) -> None:
    app = live_server.app
    person = new_person(viewport=PHONE)
    page = person.page
    sign_in_by_ids(person, live_server, totp_clock, amira)
    page.goto(f"{live_server.url}/interviews/new")
    answer_readiness(page, "en")
    testimony_id = give_consent(page)
    page.clock.install()  # interview.js saves every 20 seconds: let those pass at once
    in_main(page).click()  # the person remains anonymous
    expect(page).to_have_url(re.compile(rf"/interviews/{testimony_id}/testimony$"))
    page.locator("#narrative").fill(NARRATIVE_EN)
    with page.expect_response(lambda r: r.request.method == "POST" and r.request.headers.get("x-autosave") == "1"
                              ) as autosave:
        page.clock.run_for(21_000)
    assert autosave.value.status == 204
    expect(page.locator("#autosave-status")).to_have_text(re.compile(r"^Saved automatically at \d\d:\d\d$"))

    with app.app_context():
        assert read_narrative(stored_testimony(testimony_id)) == NARRATIVE_EN

    # A few more words, and the page is closed before the next save is due, without pressing any button: closing
    # sends them (the page-hide save), and the draft holds everything when the interview is opened again.
    page.locator("#narrative").press_sequentially(LATER_WORDS)
    page.close(run_before_unload=True)
    everything = NARRATIVE_EN + LATER_WORDS
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        with app.app_context():
            testimony = stored_testimony(testimony_id)
            saved, status = read_narrative(testimony), testimony.status
        if saved == everything or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (saved, status) == (everything, "draft")
    again = watch(person, person.context.new_page())
    again.goto(f"{live_server.url}/interviews/{testimony_id}/testimony")
    expect(again.locator("#narrative")).to_have_value(everything)
    assert person.console_errors == []


# ---------------------------------------------------------------------------------------------------------------
# Without JavaScript


@SQLITE_ONLY
def test_a_whole_interview_without_javascript(live_server: LiveServer, person_without_javascript: Person,
                                              amira: TestUser, totp_clock: TotpClock, tmp_path: Path) -> None:
    app = live_server.app
    person = person_without_javascript
    page = person.page
    sign_in_by_ids(person, live_server, totp_clock, amira)
    page.get_by_role("navigation").get_by_role("link", name="Interviews", exact=True).click()
    page.get_by_role("link", name="Start an interview").click()
    answer_readiness(page, "en")
    testimony_id = give_consent(page)
    choose(page, "keep_anonymous", "anonymous")
    page.get_by_role("button", name="Save and continue").click()

    page.get_by_label("What the person said, in their own words").fill(NARRATIVE_EN)
    page.get_by_role("button", name="Save and continue to incidents").click()
    expect(page.get_by_role("heading", name="Incidents", level=1)).to_be_visible()
    expect(page.locator("#place_id-filter")).to_have_count(0)  # no script ran: the plain list of places
    add_incident(page, {"type": "shelling", "date_precision": "month", "date_start": "2023-09",
                        "place_id": "stepanakert"}, checks=(("source_relation", "heard"),))

    page.get_by_role("link", name="Continue to attachments").click()
    photo = tmp_path / "street.png"
    photo.write_bytes(PNG)
    attach(page, photo, "photo")
    expect(page.locator("table.attachments code.digest")).to_have_text(hashlib.sha256(PNG).hexdigest())

    page.get_by_role("link", name="Continue to wellbeing and referral").click()
    choose(page, "wellbeing", "settled")
    choose(page, "outcome", "declined")
    page.get_by_role("button", name="Save and continue to review").click()
    expect(page.get_by_role("heading", name="Review and submit", level=1)).to_be_visible()

    # The form as it was sent, to send it again as a browser retrying after a lost answer would.
    form = page.locator("main form[action$='/review']")
    sent = {name: form.locator(f"input[name='{name}']").input_value()
            for name in ("csrf_token", "revision", "idempotency_key")}
    page.get_by_role("button", name="Submit the interview").click()
    expect(page).to_have_url(f"{live_server.url}/interviews/{testimony_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Interview ")
    # Back on the review page, there is nothing left to submit …
    page.go_back()
    expect(page).to_have_url(f"{live_server.url}/interviews/{testimony_id}/review")
    expect(page.locator("main form[action$='/review']")).to_have_count(0)
    # … and the same form sent again leads to the submitted interview, without submitting it twice.
    retried = page.request.post(f"{live_server.url}/interviews/{testimony_id}/review", form=sent)
    assert retried.ok and retried.url == f"{live_server.url}/interviews/{testimony_id}", (retried.status, retried.url)

    page.get_by_role("navigation").get_by_role("link", name="Interviews", exact=True).click()
    rows = page.locator("table.interviews tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td").nth(1)).to_have_text("Submitted")

    with app.app_context():
        testimony = stored_testimony(testimony_id)
        assert testimony.status == "submitted" and testimony.submission_key == sent["idempotency_key"]
        assert count(StoredTestimony) == 1
        assert count(Incident, Incident.testimony_id == testimony_id) == 1
        assert count(Attachment, Attachment.testimony_id == testimony_id) == 1
        assert count(AuditEvent, AuditEvent.action == "testimony_submitted") == 1
        assert read_narrative(testimony) == NARRATIVE_EN
    assert person.console_errors == []
