"""The mixed load's users for locust (run by `bench/mixed.py`; see bench/README.md "Mixed load").

Reads what the run prepared from the JSON file named by ``MIXED_SETTINGS``: the interviewer's API token, the
reviewers' and the legal officer's accounts and two-factor seeds, the case and the choice of recipient and purpose,
the queue pages, how many users of each kind, and the files where acknowledgements and exports are written (one JSON
object a line, so that nothing is lost if locust is stopped). Requests are named by endpoint template.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import gevent
from locust import HttpUser, between, events, task
from locust.exception import StopUser

from bench import mixed_flows as flows

SETTINGS: dict[str, Any] = json.loads(Path(os.environ["MIXED_SETTINGS"]).read_text(encoding="utf-8"))
THINK = float(SETTINGS.get("think_seconds", 1.0))
SUBMIT_ATTEMPTS = 8


def _append(path: str, entry: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class _Person(HttpUser):
    abstract = True
    wait_time = between(0.5 * THINK, 1.5 * THINK)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, name=flows.endpoint_name("GET", path), **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.client.post(path, name=flows.endpoint_name("POST", path), **kwargs)

    def sign_in(self, username: str, codes: flows.TotpCodes) -> None:
        """Through the sign-in page as a browser does; the session cookie stays in this user's client."""
        gevent.sleep(codes.wait_seconds(time.time()))
        page = self.get(flows.SIGN_IN)
        form = flows.sign_in_form(page.text, username, SETTINGS["password"], codes.take(time.time()))
        with self.client.post(flows.SIGN_IN, data=form, allow_redirects=False, catch_response=True,
                              name=flows.endpoint_name("POST", flows.SIGN_IN)) as answer:
            if not flows.signed_in(answer.status_code, answer.headers.get("Location", "")):
                answer.failure(f"not signed in ({answer.status_code})")
                raise StopUser()
            answer.success()


class Interviewer(_Person):
    """Submits whole interviews through the API, a fresh Idempotency-Key each, sent again with the same key
    after no answer or a 5xx until acknowledged; every acknowledgement is written down."""

    fixed_count = int(SETTINGS["users"]["interviewer"])

    @task
    def submit(self) -> None:
        key = flows.new_idempotency_key()
        body = flows.interview_body(key)
        headers = {"Authorization": f"Bearer {SETTINGS['token']}", "Accept": "application/json",
                   "Idempotency-Key": key}
        _append(SETTINGS["tried_file"], {"key": key})
        for attempt in range(SUBMIT_ATTEMPTS):
            with self.client.post(flows.INTERVIEWS, json=body, headers=headers, catch_response=True,
                                  name=flows.endpoint_name("POST", flows.INTERVIEWS)) as answer:
                status = int(answer.status_code or 0)
                ack = flows.acknowledgement(key, status, _json(answer))
                if ack is not None:
                    answer.success()
                    _append(SETTINGS["acks_file"], {"key": ack.key, "id": ack.id, "pseudonym": ack.pseudonym,
                                                    "replayed": ack.replayed, "attempts": attempt + 1})
                    return
                answer.failure(f"status {status}")
                if not flows.should_retry(status):
                    return
            gevent.sleep(min(1.0, 0.05 * 2 ** attempt))


class Reviewer(_Person):
    """Signed in with a browser session: opens a queue page, then one or two of the records it lists."""

    fixed_count = int(SETTINGS["users"]["reviewer"])
    _accounts = iter(SETTINGS["reviewers"])

    def on_start(self) -> None:
        account = next(Reviewer._accounts)
        self.rng = random.Random()
        self.sign_in(account["username"], flows.TotpCodes(account["secret"]))

    @task
    def review(self) -> None:
        # Redirects are not followed: a lost session answers with one to the sign-in page, which is a failure.
        path = self.rng.choice(SETTINGS["queue_paths"])
        with self.client.get(path, allow_redirects=False, catch_response=True,
                             name=flows.endpoint_name("GET", path)) as page:
            if page.status_code != 200 or not flows.is_queue_page(page.text):
                page.failure(f"not the queue ({page.status_code} {page.headers.get('Location', '')})")
                return
            page.success()
        for record in flows.choose_records(flows.record_links(page.text), self.rng):
            with self.client.get(f"/review/records/{record}", allow_redirects=False, catch_response=True,
                                 name=flows.endpoint_name("GET", f"/review/records/{record}")) as opened:
                if opened.status_code != 200:
                    opened.failure(f"record not shown ({opened.status_code} {opened.headers.get('Location', '')})")
                else:
                    opened.success()


class LegalOfficer(_Person):
    """Signed in: previews the case file, steps up with a fresh two-factor code, requests the build, follows its
    page until it is built, downloads it; then again."""

    fixed_count = int(SETTINGS["users"]["legal"])
    _accounts = iter(SETTINGS["legal"])

    def on_start(self) -> None:
        account = next(LegalOfficer._accounts)
        self.codes = flows.TotpCodes(account["secret"])
        self.sign_in(account["username"], self.codes)

    @task
    def export(self) -> None:
        case_id, choice = int(SETTINGS["case_id"]), SETTINGS["choice"]
        preview = self.get(flows.preview_path(case_id, choice))
        if preview.status_code != 200:
            return
        form = flows.build_form(preview.text, case_id)
        # A fresh code for the build: a person waits for the next one when the current one was used.
        gevent.sleep(self.codes.wait_seconds(time.time()))
        step_page = self.get(flows.STEP_UP)
        with self.client.post(flows.STEP_UP, data=flows.code_form(step_page.text, self.codes.take(time.time())),
                              allow_redirects=False, catch_response=True,
                              name=flows.endpoint_name("POST", flows.STEP_UP)) as stepped:
            if stepped.status_code != 303:
                stepped.failure(f"step-up refused ({stepped.status_code})")
                return
            stepped.success()
        requested = time.time()
        with self.client.post(f"/cases/{case_id}/exports", data=form, allow_redirects=False, catch_response=True,
                              name=flows.endpoint_name("POST", f"/cases/{case_id}/exports")) as built:
            number = flows.export_id(built.headers.get("Location", ""))
            if built.status_code != 303 or number is None:
                built.failure(f"build refused ({built.status_code})")
                return
            built.success()
        entry: dict[str, Any] = {"export_id": number, "requested_at": requested, "state": "building"}
        page_path = f"/cases/{case_id}/exports/{number}"
        deadline = requested + float(SETTINGS["build_timeout_s"])
        while time.time() < deadline:
            page = self.get(page_path)
            state = flows.export_state(page.text) if page.status_code == 200 else "ended"
            if state != "building":
                entry["state"] = state
                break
            gevent.sleep(float(SETTINGS["poll_seconds"]))  # the page reloads itself every few seconds
        entry["seen_ready_after_s"] = round(time.time() - requested, 3)
        if entry["state"] == "ready":
            link = flows.download_path(page.text) or f"{page_path}/download"
            target = Path(SETTINGS["downloads_dir"]) / f"export-{number}.age"
            with self.client.get(link, stream=True, catch_response=True,
                                 name=flows.endpoint_name("GET", link)) as download, target.open("wb") as out:
                size, head = 0, b""
                for chunk in download.iter_content(64 * 1024):
                    if len(head) < len(flows.AGE_HEADER):
                        head += chunk[: len(flows.AGE_HEADER)]
                    size += len(chunk)
                    out.write(chunk)
                entry["downloaded_bytes"] = size
                entry["file"] = str(target)
                entry["age_file"] = head.startswith(flows.AGE_HEADER)
                if download.status_code != 200 or not entry["age_file"]:
                    download.failure(f"download {download.status_code}, age file: {entry['age_file']}")
                else:
                    download.success()
        _append(SETTINGS["exports_file"], entry)


@events.test_stop.add_listener
def _last_stats(environment: Any, **_kwargs: Any) -> None:
    # locust rewrites its CSV stats every second while it runs: give it time to write the last requests.
    gevent.sleep(2.5)


@events.quitting.add_listener
def _quitting(environment: Any, **_kwargs: Any) -> None:
    # Failed requests are judged by bench/mixed.py from the stats; an exception raised in a task or on_start
    # leaves locust's exit code on error (``--exit-code-on-error``), and bench/mixed.py counts the exceptions from
    # the exceptions CSV.
    if environment.runner is not None and not environment.runner.exceptions:
        environment.process_exit_code = 0
