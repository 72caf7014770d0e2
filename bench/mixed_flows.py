"""What each user of the mixed load does, as plain functions: request bodies, what is read out of pages, choices.

`bench/locustfile.py` drives these through locust; the suite tests them against the test app without locust.
"""

from __future__ import annotations

import copy
import random
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import pyotp

from bench.scenarios import INTAKE_BODY

INTERVIEWS = "/api/v1/interviews"
SIGN_IN = "/sign-in"
STEP_UP = "/step-up"
QUEUE = "/review/"
AGE_HEADER = b"age-encryption.org/v1\n"
TOTP_STEP_SECONDS = 30

_RECORD_LINK = re.compile(r'href="/review/records/(\d+)"')
_NAMES = (
    (re.compile(r"^/review/records/\d+$"), "/review/records/[id]"),
    (re.compile(r"^/cases/\d+/exports/\d+/download$"), "/cases/[id]/exports/[id]/download"),
    (re.compile(r"^/cases/\d+/exports/\d+$"), "/cases/[id]/exports/[id]"),
    (re.compile(r"^/cases/\d+/exports$"), "/cases/[id]/exports"),
)


def endpoint_name(method: str, url: str) -> str:
    """The request as the stats name it: the method and the path's template, ids and query values hidden
    (``GET /review/records/[id]``, ``GET /review/?[filters]``, ``GET /cases/[id]/exports?to=[choice]``)."""
    path, _, query = url.partition("?")
    for pattern, template in _NAMES:
        if pattern.match(path):
            path = template
            break
    if query:
        names = sorted({part.partition("=")[0] for part in query.split("&") if part})
        path += "?[filters]" if path == QUEUE else "?" + "&".join(f"{name}=[{name}]" for name in names)
    return f"{method.upper()} {path}"


# ---------------------------------------------------------------------------------------------------------------
# The interviewer


def new_idempotency_key(prefix: str = "mixed") -> str:
    """A fresh Idempotency-Key (the API takes 16 to 64 letters, digits, '-' or '_')."""
    return f"{prefix}-{secrets.token_hex(12)}"


def interview_body(key: str) -> dict[str, Any]:
    """The bench's whole interview (``INTAKE_BODY``, submitted at once) with a narrative naming ``key``, so that
    the stored record can be matched to what was sent."""
    body = copy.deepcopy(INTAKE_BODY)
    testimony = dict(body["testimony"])  # type: ignore[call-overload]
    testimony["narrative"] = f"{testimony['narrative']} Reference {key}."
    body["testimony"] = testimony
    body["submit"] = True
    return body


@dataclass(frozen=True)
class Acknowledgement:
    """An interview the service said it stored: the key it was sent with, its id and pseudonym code."""

    key: str
    id: int
    pseudonym: str
    replayed: bool  # the answer was a replay (200) of an earlier attempt's


def should_retry(status: int) -> bool:
    """Whether a submission is sent again with the same key: no answer (status 0), or a server error."""
    return status == 0 or status >= 500


def acknowledgement(key: str, status: int, body: Any) -> Acknowledgement | None:
    """The acknowledgement in an answer to ``POST /api/v1/interviews``: 201 (stored now) or 200 (stored by an
    earlier attempt with this key), submitted, with its id and pseudonym; None for any other answer."""
    if status not in (200, 201) or not isinstance(body, dict) or body.get("status") != "submitted":
        return None
    testimony_id, pseudonym = body.get("id"), body.get("pseudonym")
    if not isinstance(testimony_id, int) or not isinstance(pseudonym, str):
        return None
    return Acknowledgement(key=key, id=testimony_id, pseudonym=pseudonym, replayed=status == 200)


# ---------------------------------------------------------------------------------------------------------------
# Pages and forms


@dataclass
class Form:
    """A form on a page: where it goes, how, and the values of its inputs as a browser would send them."""

    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._open: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._open = Form(action=values.get("action", ""), method=values.get("method", "get").lower())
            self.forms.append(self._open)
        elif tag == "input" and self._open is not None and values.get("name"):
            if values.get("type", "text") in ("checkbox", "radio") and "checked" not in values:
                return
            self._open.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def forms(page: str) -> list[Form]:
    """Every form on the page, in order."""
    parser = _FormParser()
    parser.feed(page)
    parser.close()
    return parser.forms


def form_to(page: str, action: str, *, method: str = "post") -> Form | None:
    """The form on the page that sends to ``action`` by ``method`` (an empty action means the page itself)."""
    for found in forms(page):
        if found.method == method and found.action in (action, ""):
            return found
    return None


def csrf_token(page: str) -> str | None:
    """The CSRF token of the first form that carries one."""
    for found in forms(page):
        if "csrf_token" in found.fields:
            return found.fields["csrf_token"]
    return None


# ---------------------------------------------------------------------------------------------------------------
# Signing in and two-factor codes


class TotpCodes:
    """A person's authenticator: the current code, each time step used once (the service refuses a code, or an
    earlier one, that was used already; a person waits for the next one)."""

    def __init__(self, secret: str) -> None:
        self.totp = pyotp.TOTP(secret)
        self.last_counter = -1

    def wait_seconds(self, now: float) -> float:
        """How long until a code not used yet shows (0 when the current one is fresh)."""
        counter = int(now // TOTP_STEP_SECONDS)
        if counter > self.last_counter:
            return 0.0
        return (self.last_counter + 1) * TOTP_STEP_SECONDS - now

    def take(self, now: float) -> str:
        """The current code, marked used; it must be fresh (see `wait_seconds`)."""
        counter = int(now // TOTP_STEP_SECONDS)
        if counter <= self.last_counter:
            raise ValueError("the current code was used already")
        self.last_counter = counter
        return self.totp.at(counter * TOTP_STEP_SECONDS)


def sign_in_form(page: str, username: str, password: str, code: str) -> dict[str, str]:
    """What the sign-in page's form sends for ``username``."""
    token = csrf_token(page)
    if token is None:
        raise ValueError("the sign-in page has no CSRF token")
    return {"csrf_token": token, "username": username, "password": password, "code": code}


def code_form(page: str, code: str) -> dict[str, str]:
    """What the step-up page's form sends with ``code``."""
    token = csrf_token(page)
    if token is None:
        raise ValueError("the step-up page has no CSRF token")
    return {"csrf_token": token, "code": code}


def signed_in(status: int, location: str) -> bool:
    """Whether a sign-in answer let the person in: a redirect to somewhere other than the sign-in page."""
    return status in (302, 303) and SIGN_IN not in location and location != ""


# ---------------------------------------------------------------------------------------------------------------
# The reviewer


def is_queue_page(page: str) -> bool:
    """Whether a page is the review queue (its filter form sends to the queue), not the sign-in page a lost
    session is sent to."""
    return any(found.method == "get" and found.action.partition("?")[0] == QUEUE for found in forms(page))


def record_links(page: str) -> list[int]:
    """The ids of the records a queue page links to, in the page's order, each once."""
    seen: dict[int, None] = {}
    for match in _RECORD_LINK.finditer(page):
        seen.setdefault(int(match.group(1)), None)
    return list(seen)


def choose_records(ids: Sequence[int], rng: random.Random, most: int = 2) -> list[int]:
    """The records a reviewer opens from a queue page: one to ``most`` of them, at random."""
    if not ids:
        return []
    return rng.sample(list(ids), rng.randint(1, min(most, len(ids))))


# ---------------------------------------------------------------------------------------------------------------
# The legal officer


def preview_path(case_id: int, choice: str) -> str:
    """The export page of the case with the preview of ``choice`` (``<recipient id>-<purpose>``)."""
    return f"/cases/{case_id}/exports?to={choice}"


def build_form(page: str, case_id: int) -> dict[str, str]:
    """What the preview's "Build the case file" button sends (CSRF token, the choice, where step-up returns)."""
    found = form_to(page, f"/cases/{case_id}/exports")
    if found is None or not found.fields.get("to") or "csrf_token" not in found.fields:
        raise ValueError("the preview has no build form")
    return dict(found.fields)


def export_state(page: str) -> str:
    """What an export's page says: ``ready`` (a download link), ``building`` (it reloads itself), else ``ended``
    (failed, cancelled or expired)."""
    if re.search(r'href="[^"]*/exports/\d+/download"', page):
        return "ready"
    if 'http-equiv="refresh"' in page:
        return "building"
    return "ended"


def download_path(page: str) -> str | None:
    """The download link on a ready export's page."""
    match = re.search(r'href="([^"]*/exports/\d+/download)"', page)
    return match.group(1) if match else None


def export_id(location: str) -> int | None:
    """The export's id in the address the build answer redirects to."""
    match = re.search(r"/exports/(\d+)(?:$|[?#])", location)
    return int(match.group(1)) if match else None
