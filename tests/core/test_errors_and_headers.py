"""Error pages people can read, and the security headers every response carries."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale, gettext

import intake
from intake.accounts import operations as ops
from intake.accounts.models import Account, ApiToken
from intake.core.audit import AuditEvent
from intake.core.db import db
from tests.conftest import Auth, TestUser, csrf_token, post_form

TEMPLATES = Path(intake.__file__).parent / "templates"


def translated(app: Flask, locale: str, message: str) -> str:
    with app.test_request_context(), force_locale(locale):
        return gettext(message)


def html_lang(response: Any) -> str:
    match = re.search(r'<html lang="([^"]+)"', response.get_data(as_text=True))
    assert match, "no <html lang> on the page"
    return match.group(1)


def assert_security_headers(response: Any) -> None:
    csp = response.headers.get("Content-Security-Policy", "")
    assert csp, f"no CSP on {response.request.path}"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";") if part.strip())
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "camera=()" in response.headers["Permissions-Policy"]
    assert "geolocation=()" in response.headers["Permissions-Policy"]


@pytest.fixture
def amira(create_user: Callable[..., TestUser]) -> TestUser:
    return create_user("amira", ["interviewer"])


# ---------------------------------------------------------------------------------------------------------------
# Not found, in the person's language


def test_an_unknown_page_is_a_readable_404(client: FlaskClient) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "<h1>Page not found</h1>" in page
    assert "Check the address" in page
    assert 'href="/"' in page
    assert html_lang(response) == "en"


@pytest.mark.parametrize("locale", ["hy", "ru", "az"])
def test_the_404_page_speaks_the_browsers_language(app: Flask, client: FlaskClient, locale: str) -> None:
    response = client.get("/no/such/page", headers={"Accept-Language": f"{locale},en;q=0.5"})
    assert response.status_code == 404
    assert html_lang(response) == locale
    assert f"<h1>{translated(app, locale, 'Page not found')}</h1>" in response.get_data(as_text=True)


def test_the_404_page_follows_the_language_chosen_with_the_switch(app: Flask, client: FlaskClient) -> None:
    chosen = post_form(client, "/language", {"lang": "ru", "next": "/sign-in"}, token_from="/sign-in")
    assert chosen.status_code == 303
    response = client.get("/no/such/page", headers={"Accept-Language": "en"})
    assert response.status_code == 404
    assert html_lang(response) == "ru"
    assert f"<h1>{translated(app, 'ru', 'Page not found')}</h1>" in response.get_data(as_text=True)


# ---------------------------------------------------------------------------------------------------------------
# Headers


def test_every_kind_of_response_carries_the_security_headers(
    app: Flask, client: FlaskClient, auth: Auth, amira: TestUser
) -> None:
    with app.app_context():
        _token, plaintext = ops.create_api_token(db.session.get(Account, amira.id), name="t")
        db.session.commit()
    static = client.get("/static/intake.css")  # static file
    static.close()
    anonymous = [
        client.get("/sign-in"),  # HTML page
        static,
        client.get("/no/such/page"),  # error page
        client.get("/healthz"),  # JSON health check
        client.get("/api/v1/me"),  # API error
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {plaintext}"}),  # API success
        client.get("/"),  # redirect to sign-in
        client.post("/language", data={"lang": "ru"}),  # CSRF failure
    ]
    assert [r.status_code for r in anonymous] == [200, 200, 404, 200, 401, 200, 302, 400]
    for response in anonymous:
        assert_security_headers(response)
    auth.sign_in(amira)
    for response in (client.get("/"), client.get("/account"), client.get("/admin/accounts")):
        assert_security_headers(response)


def test_pages_and_api_answers_are_never_cached_but_static_files_may_be(
    app: Flask, client: FlaskClient, auth: Auth, amira: TestUser
) -> None:
    auth.sign_in(amira)
    for path in ("/", "/account", "/account/password", "/no/such/page", "/api/v1/me"):
        response = client.get(path)
        assert response.headers["Cache-Control"] == "no-store", path
    static = client.get("/static/intake.css")
    static.close()
    assert static.status_code == 200
    assert "no-store" not in static.headers.get("Cache-Control", "")


def test_hsts_is_sent_only_over_https(client: FlaskClient) -> None:
    assert "Strict-Transport-Security" not in client.get("/sign-in").headers
    secure = client.get("/sign-in", base_url="https://localhost")
    assert secure.status_code == 200
    hsts = secure.headers["Strict-Transport-Security"]
    max_age = int(re.search(r"max-age=(\d+)", hsts).group(1))
    assert max_age >= 31536000
    assert "Strict-Transport-Security" in client.get("/no/such/page", base_url="https://localhost").headers


def test_every_response_names_its_request_id(client: FlaskClient) -> None:
    first, second = client.get("/sign-in"), client.get("/sign-in")
    assert re.fullmatch(r"[0-9a-f]{16}", first.headers["X-Request-Id"])
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]
    # A proxy's id is kept when it is harmless, replaced when it is not.
    assert client.get("/sign-in", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"
    hostile = client.get("/sign-in", headers={"X-Request-Id": "<script>alert(1)</script>"}).headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{16}", hostile)


# ---------------------------------------------------------------------------------------------------------------
# Templates


def template_files() -> list[Path]:
    files = sorted(p for p in TEMPLATES.rglob("*") if p.is_file())
    assert files, "no templates found"
    return files


# Documents meant to be saved and read offline, which cannot load the site's stylesheet: each carries one fixed
# `<style>` whose hash the response's Content-Security-Policy (and the document's own) names, and nothing else.
STANDALONE_DOCUMENTS = {"withdrawals/survivor_copy.html", "exports/record.html"}


@pytest.mark.parametrize("path", template_files(), ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_templates_have_no_inline_script_or_style(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text, re.I), "inline <script>"
    if path.relative_to(TEMPLATES).as_posix() in STANDALONE_DOCUMENTS:
        assert re.findall(r"<style\b[^>]*>.*?</style>", text, re.I | re.S) == ["<style>{{ style|safe }}</style>"]
        assert "style-src {{ style_source }}" in text, "the document's own policy must name its style's hash"
        text = text.replace("<style>{{ style|safe }}</style>", "")
    assert not re.search(r"<style\b", text, re.I), "inline <style>"
    assert not re.search(r"\sstyle\s*=", text, re.I), "style= attribute"
    assert not re.search(r"\son[a-z]+\s*=\s*[\"']", text, re.I), "inline event handler"
    assert "javascript:" not in text.lower()


# ---------------------------------------------------------------------------------------------------------------
# Unexpected failures


SENTINEL = "kv-sentinel-exception-text-4471"


def test_an_unexpected_failure_shows_a_generic_page_and_saves_nothing(
    app: Flask, client: FlaskClient, auth: Auth, amira: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth.sign_in(amira)
    with app.app_context():
        events_before = db.session.scalar(sa.select(sa.func.count(AuditEvent.seq)))

    def write_then_fail(*args: Any, **kwargs: Any) -> str:
        ops.create_account(username="ghost", roles=["reviewer"], actor=None)
        db.session.flush()
        raise RuntimeError(SENTINEL)

    import intake.home.controllers as home

    monkeypatch.setattr(home, "render_template", write_then_fail)
    response = client.get("/")
    assert response.status_code == 500
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "Something went wrong on our side" in page
    assert "Nothing you entered has been saved" in page
    reference = response.headers["X-Request-Id"]
    assert f"<code>{reference}</code>" in page
    assert SENTINEL not in page
    assert "RuntimeError" not in page and "Traceback" not in page
    assert_security_headers(response)

    with app.app_context():
        assert db.session.scalar(sa.select(Account).where(Account.username == "ghost")) is None
        assert db.session.scalar(sa.select(sa.func.count(AuditEvent.seq))) == events_before
    monkeypatch.undo()
    assert client.get("/").status_code == 200  # the session and the service carry on


def test_an_unexpected_api_failure_is_a_generic_problem(
    app: Flask, client: FlaskClient, amira: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    with app.app_context():
        _token, plaintext = ops.create_api_token(db.session.get(Account, amira.id), name="t")
        db.session.commit()

    from intake.accounts.api import Me
    from intake.core.security import ACCESS_ATTRIBUTE, Permission

    def fail(self: Any, *_args: Any) -> Any:
        raise RuntimeError(SENTINEL)

    setattr(fail, ACCESS_ATTRIBUTE, Permission.OWN_ACCOUNT)  # declared like the real view, so it is reached
    monkeypatch.setattr(Me, "patch", fail)
    response = client.patch("/api/v1/me", json={"locale": "hy"}, headers={"Authorization": f"Bearer {plaintext}"})
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 500 and body["request_id"] == response.headers["X-Request-Id"]
    assert SENTINEL not in response.get_data(as_text=True)
    with app.app_context():
        # a writing request notes last_used_at in its own transaction, which rolled back with the failure
        assert db.session.scalar(sa.select(ApiToken.last_used_at)) is None


# ---------------------------------------------------------------------------------------------------------------
# Language switch and CSRF


def test_the_language_switch_changes_the_page_language(app: Flask, client: FlaskClient) -> None:
    assert html_lang(client.get("/sign-in")) == "en"
    response = post_form(client, "/language", {"lang": "hy", "next": "/sign-in"}, token_from="/sign-in")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/sign-in")
    page = client.get("/sign-in")
    assert html_lang(page) == "hy"
    assert 'value="hy" lang="hy" selected' in page.get_data(as_text=True)


def test_the_language_switch_remembers_the_choice_for_a_signed_in_person(
    app: Flask, client: FlaskClient, auth: Auth, amira: TestUser
) -> None:
    auth.sign_in(amira)
    post_form(client, "/language", {"lang": "az", "next": "/account"}, token_from="/account")
    assert html_lang(client.get("/account")) == "az"
    with app.app_context():
        assert db.session.get(Account, amira.id).locale == "az"


def test_the_language_switch_ignores_unknown_languages_and_foreign_next(client: FlaskClient) -> None:
    response = post_form(client, "/language", {"lang": "xx", "next": "https://evil.example/"}, token_from="/sign-in")
    assert response.status_code == 303
    assert "evil.example" not in response.headers["Location"]
    assert html_lang(client.get("/sign-in")) == "en"


def test_missing_csrf_on_the_language_switch_is_a_readable_400(client: FlaskClient) -> None:
    csrf_token(client, "/sign-in")  # the browser has a session, but the form lacks the token
    response = client.post("/language", data={"lang": "ru", "next": "/sign-in"})
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "nothing was saved" in page
    assert "<h1>" in page
    assert html_lang(client.get("/sign-in")) == "en"
    wrong = client.post("/language", data={"lang": "ru", "csrf_token": "forged"})
    assert wrong.status_code == 400
    assert html_lang(client.get("/sign-in")) == "en"
