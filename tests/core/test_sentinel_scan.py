"""The attacker's view: with the database, its files and the disk, but not the keyring's passphrase, nothing planted in
an encrypted field or an attachment can be found.

Unique sentinel strings go into every field of the encrypted-field inventory, into attachments in both stores, into
every field of an interview left as a draft, into an upload spooled by a request, and into a record built into a case
file (identity included); then the SQLite file with its WAL, a `pg_dump` of the PostgreSQL database, the instance
folder (blobs and waiting case files included), the temporary directory and every
log line are searched for them in the encodings a dump or a careless copy would use (UTF-8, UTF-16, hex, base64). A
sentinel planted in a field that is clear by design is found by the same search, which shows the search can see.
"""

from __future__ import annotations

import base64
import io
import logging
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from intake.accounts import operations as account_ops
from intake.accounts.models import Account
from intake.core.access import assignments
from intake.core.crypto.fields import SEALED_FIELDS
from intake.core.db import db
from intake.identities import operations as identity_ops
from intake.interviews import operations as interview_ops
from intake.review import operations as review_ops
from intake.testimonies import operations as testimony_ops
from tests.conftest import PASSWORD, Auth, TestUser, TotpClock, missing
from tests.interviews import factories

JPEG_HEADER = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


def encodings(text: str) -> list[bytes]:
    """The byte patterns under which `text` would show in a file, a dump or a log."""
    raw = text.encode("utf-8")
    patterns = [raw, text.encode("utf-16-le"), raw.hex().encode(), raw.hex().upper().encode()]
    for offset in range(3):  # base64 of the text at each alignment, without the edge characters that depend on it
        encoded = base64.b64encode(b"\x00" * offset + raw)
        patterns.append(encoded[4:-4])
    return [p for p in patterns if len(p) >= 8]


class Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s %(args)s"))

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        self.lines.append(text + " " + " ".join(f"{k}={v!r}" for k, v in record.__dict__.items()))


@pytest.fixture
def every_log_line() -> Iterator[Collector]:
    collector = Collector()
    # Statements (with parameters hidden, as configured), not result rows: sqlalchemy's DEBUG level adds every row.
    loggers = {name: logging.getLogger(name) for name in ("", "intake", "sqlalchemy", "werkzeug", "flask")}
    levels = [logger.level for logger in loggers.values()]
    for name, logger in loggers.items():
        logger.addHandler(collector)
        logger.setLevel(logging.INFO if name == "sqlalchemy" else logging.DEBUG)
    loggers = list(loggers.values())
    yield collector
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(collector)
        logger.setLevel(level)


@pytest.fixture
def scratch_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Temporary files of this test go to a folder of their own and stay there (unnamed temporary files would vanish
    from the folder the moment they are made), so the scan reads every byte any of them held."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))

    def kept_temporary_file(*args: Any, **kwargs: Any) -> Any:
        kwargs["dir"] = str(folder)
        return tempfile.NamedTemporaryFile(*args, delete=False, **kwargs)  # noqa: SIM115

    monkeypatch.setattr(tempfile, "TemporaryFile", kept_temporary_file)
    return folder


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def pg_dump(url: str, target: Path) -> bytes:
    binary = shutil.which("pg_dump")
    if binary is None:
        missing("postgresql", "pg_dump is not installed (Debian package postgresql-client)")
    parsed = sa.engine.make_url(url)
    subprocess.run(  # noqa: S603 - fixed arguments, test database
        [binary, "--no-owner", "--format=plain", "--file", str(target), "--host", parsed.host or "127.0.0.1",
         "--port", str(parsed.port or 5432), "--username", parsed.username or "postgres", parsed.database or ""],
        check=True, capture_output=True, timeout=120,
    )
    return target.read_bytes()


def plant(app: Flask, sentinels: dict[str, str], totp_clock: TotpClock) -> dict[str, Any]:
    """Put a sentinel in every sealed field and attachment, through the same operations the service uses."""
    planted: dict[str, Any] = {}
    with app.app_context():
        interviewer = account_ops.create_account(username="amira", roles=["interviewer"], password=PASSWORD,
                                                 totp_secret=sentinels["totp"])
        person = identity_ops.register_person(
            {"name": sentinels["name"], "birth_year": 1961, "contacts": sentinels["contacts"],
             "addresses": [sentinels["address"]], "relatives": [sentinels["relative"]]},
            actor=interviewer, prefix="KB")
        testimony = testimony_ops.create_testimony(
            pseudonym=person.pseudonym, interviewer=interviewer, language="hy", region=sentinels["clear"],
            narrative=sentinels["narrative"])
        content = JPEG_HEADER + (sentinels["attachment"].encode() + b" ") * 5000
        in_database = testimony_ops.store_attachment(
            testimony, io.BytesIO(content), filename=sentinels["filename"], actor=interviewer, config=app.config)
        in_files = testimony_ops.store_attachment(
            testimony, io.BytesIO(content), filename=sentinels["filename"], actor=interviewer,
            config={**app.config, "BLOB_STORAGE": "files"})
        db.session.commit()
        draft = plant_draft(app, interviewer, sentinels)
        db.session.commit()
        plant_analysis(app, sentinels)
        db.session.commit()
        plant_export(app, sentinels)
        planted.update(totp=sentinels["totp"], storages={in_database.storage, in_files.storage},
                       pseudonym=person.pseudonym, draft_pseudonym=draft.pseudonym)
        # The values really are there, behind the keys.
        assert identity_ops.read_identity(person)["name"] == sentinels["name"]
        assert testimony_ops.read_narrative(testimony) == sentinels["narrative"]
        assert b"".join(testimony_ops.attachment_content(in_files, app.config)) == content
    auth = Auth(app.test_client(), totp_clock)
    user = TestUser(0, "amira", PASSWORD, sentinels["totp"], ["interviewer"])
    assert auth.sign_in(user).status_code == 303
    # An upload large enough to be spooled to disk by the request parser.
    # The body is built in memory: the test client would otherwise spool it to a temporary file of its own.
    upload = JPEG_HEADER + (sentinels["upload"].encode() + b" ") * 40_000
    boundary, body = encode_multipart({"photo": FileStorage(io.BytesIO(upload), "photo.jpg", "image/jpeg")})
    auth.client.post("/sign-in", data=body, content_type=f"multipart/form-data; boundary={boundary}")
    return planted


def plant_draft(app: Flask, interviewer: Any, sentinels: dict[str, str]) -> Any:
    """An interview left as a draft, with a sentinel in every field the wizard seals: consent particulars, the
    identity, the narrative, an incident, the referral."""
    draft = interview_ops.start_interview(
        factories.readiness(),
        factories.consent(method="oral_witnessed", witness=sentinels["witness"], interpreter=sentinels["interpreter"],
                          is_minor=True, guardian_consented=True, child_assented=True,
                          best_interests_note=sentinels["best_interests"], follow_up_permitted=True,
                          follow_up_method=sentinels["follow_up"], follow_up_times="evenings"),
        actor=interviewer, config=app.config)
    interview_ops.save_person(draft, interview_ops.PersonInput(name=sentinels["draft_name"], birth_year=2010,
                                                               contact=sentinels["draft_contact"]),
                              actor=interviewer, config=app.config)
    interview_ops.save_narrative(draft, sentinels["draft_narrative"], declined=False, actor=interviewer,
                                 config=app.config)
    interview_ops.add_incident(draft, factories.incident(
        place_id="", place_description=sentinels["place"], victims_description=sentinels["victims"],
        perpetrators=(interview_ops.Perpetrator(description=sentinels["perpetrator"], unit="",
                                                involvement="present"),)), actor=interviewer, config=app.config)
    interview_ops.save_referral(draft, factories.referral(note=sentinels["referral"]), actor=interviewer,
                                config=app.config)
    assert draft.status == "draft"
    return draft


def plant_analysis(app: Flask, sentinels: dict[str, str]) -> None:
    """A submitted interview that a reviewer grades, codes, links and annotates, with a sentinel in every reason and
    in the note."""
    interviewer = db.session.scalars(sa.select(Account).where(Account.username == "amira")).one()
    reviewer = account_ops.create_account(username="rafael", roles=["reviewer"], password=PASSWORD)
    records = []
    for key in ("sentinel-analysis-record-one", "sentinel-analysis-record-two"):
        record = interview_ops.start_interview(factories.readiness(), factories.consent(), actor=interviewer,
                                               config=app.config)
        interview_ops.add_incident(record, factories.incident(), actor=interviewer, config=app.config)
        interview_ops.save_referral(record, factories.referral(), actor=interviewer, config=app.config)
        interview_ops.submit(record, idempotency_key=key, actor=interviewer, config=app.config)
        assignments.assign(record, reviewer, actor=None)
        records.append(record)
    record, other = records
    review_ops.assess(record, "reliability", "B", sentinels["grade_reason"], actor=reviewer, config=app.config)
    review_ops.correct_coding(record, record.incidents[0], type="shelling", month="2023-09", region="",
                              reason=sentinels["coding_reason"], actor=reviewer, config=app.config)
    review_ops.link(record, other.pseudonym, "corroborates", sentinels["link_reason"], actor=reviewer,
                    config=app.config)
    review_ops.add_note(record, sentinels["analyst_note"], actor=reviewer, config=app.config)


def plant_export(app: Flask, sentinels: dict[str, str]) -> None:
    """A record whose consent lets its identity go to a UN mechanism, built into a case file that waits to be
    downloaded: the bundle on disk is encrypted to the recipient, and nothing of it is left elsewhere."""
    import pyrage

    from intake.cases import operations as case_ops
    from intake.exports import operations as export_ops
    from intake.exports.runner import run
    from intake.recipients.operations import RecipientInput, register

    interviewer = db.session.scalars(sa.select(Account).where(Account.username == "amira")).one()
    legal = account_ops.create_account(username="lilit", roles=["legal"], password=PASSWORD)
    admin = account_ops.create_account(username="aram", roles=["admin"], password=PASSWORD)
    record = interview_ops.start_interview(
        factories.readiness(), factories.consent(grants={"documentation": "confidential",
                                                         "un_mechanisms": "confidential"}),
        actor=interviewer, config=app.config)
    interview_ops.save_person(record, interview_ops.PersonInput(name=sentinels["export_name"], birth_year=1975),
                              actor=interviewer, config=app.config)
    interview_ops.save_narrative(record, sentinels["export_narrative"], declined=False, actor=interviewer,
                                 config=app.config)
    interview_ops.save_referral(record, factories.referral(), actor=interviewer, config=app.config)
    interview_ops.submit(record, idempotency_key="sentinel-export-record", actor=interviewer, config=app.config)
    recipient = register(RecipientInput(
        key="un-iiim", name="UN mechanism", category="un_mechanism", country=None, is_authority=False,
        agreement_reference="AGR-1", agreement_date=date(2024, 1, 15), contact="desk@example.org",
        age_recipients=[str(pyrage.x25519.Identity.generate().to_public())]), actor=admin)
    case = case_ops.create_case("LC-SENTINEL", "Sentinel case", recipient=recipient, actor=legal)
    case_ops.add_testimony(case, record, actor=legal)
    export = export_ops.request_export(case, recipient, "un_mechanisms", actor=legal)
    db.session.commit()
    assert run(app, export.id) == "ready"


@pytest.fixture
def scanning_app(make_app: Callable[..., Flask], tmp_path: Path) -> Flask:
    return make_app(MAX_REQUEST_BYTES=4 * 1024 * 1024, BLOB_PATH=str(tmp_path / "instance" / "blobs"),
                    EXPORT_RUNNER="inline")


def test_an_attacker_with_the_database_and_the_disk_finds_no_sealed_value(
    scanning_app: Flask, database_url: str, tmp_path: Path, scratch_tempdir: Path, totp_clock: TotpClock,
    every_log_line: Collector,
) -> None:
    tag = uuid.uuid4().hex[:12]
    sentinels = {
        "name": f"Սենտինել Անուն {tag}",
        "contacts": f"Телефон-сентинел-{tag}",
        "address": f"Xankəndi küçəsi sentinel {tag}",
        "relative": f"relative-sentinel-{tag}",
        "narrative": f"Ռմբակոծություն narrative-sentinel-{tag}",
        "attachment": f"attachment-sentinel-{tag}",
        "filename": f"filename-sentinel-{tag}.jpg",
        "upload": f"upload-sentinel-{tag}",
        "clear": f"region-clear-{tag}",
        "witness": f"Վկա witness-sentinel-{tag}",
        "interpreter": f"interpreter-sentinel-{tag}",
        "best_interests": f"best-interests-sentinel-{tag}",
        "follow_up": f"follow-up-sentinel-{tag}",
        "draft_name": f"Черновик draft-name-sentinel-{tag}",
        "draft_contact": f"draft-contact-sentinel-{tag}",
        "draft_narrative": f"draft-narrative-sentinel-{tag}",
        "place": f"place-sentinel-{tag}",
        "victims": f"victims-sentinel-{tag}",
        "perpetrator": f"perpetrator-sentinel-{tag}",
        "referral": f"referral-note-sentinel-{tag}",
        "grade_reason": f"grade-reason-sentinel-{tag}",
        "coding_reason": f"coding-reason-sentinel-{tag}",
        "link_reason": f"link-reason-sentinel-{tag}",
        "analyst_note": f"Заметка analyst-note-sentinel-{tag}",
        "export_name": f"Экспорт export-name-sentinel-{tag}",
        "export_narrative": f"Արտահանում export-narrative-sentinel-{tag}",
        "totp": pyotp.random_base32(),
    }
    planted = plant(scanning_app, sentinels, totp_clock)
    assert planted["storages"] == {"database", "files"}
    covered = {(f.table, f.column) for f in SEALED_FIELDS}
    assert covered == {("persons", "identity"), ("testimonies", "narrative"), ("testimonies", "details"),
                       ("incidents", "details"), ("consent_versions", "particulars"), ("attachments", "details"),
                       ("attachment_chunks", "data"), ("accounts", "totp_secret"), ("assessments", "reason"),
                       ("incident_codings", "reason"), ("record_links", "reason"), ("analyst_notes", "text")}, \
        "a sealed field was added to the inventory: plant a sentinel in it here"

    # What the attacker holds.
    exhibits: dict[str, bytes] = {}
    if database_url.startswith("sqlite"):
        database_file = Path(sa.engine.make_url(database_url).database or "")
        for suffix in ("", "-wal", "-shm"):
            candidate = Path(f"{database_file}{suffix}")
            if candidate.exists():
                exhibits[candidate.name] = candidate.read_bytes()
    else:
        exhibits["pg_dump"] = pg_dump(database_url, tmp_path / "dump.sql")
    instance = tmp_path / "instance"
    blob_files = files_under(instance / "blobs")
    assert blob_files, "the files store wrote nothing"
    assert [p.name for p in files_under(instance / "exports")][0].endswith(".tar.age"), "no case file waits"
    for path in files_under(instance) + files_under(scratch_tempdir):
        exhibits[str(path.relative_to(tmp_path))] = path.read_bytes()
    exhibits["logs"] = "\n".join(every_log_line.lines).encode("utf-8")

    secrets_planted = {k: v for k, v in sentinels.items() if k not in ("clear", "totp")}
    secrets_planted["totp raw"] = base64.b32decode(sentinels["totp"]).hex()
    secrets_planted["totp"] = sentinels["totp"]
    found = [
        (what, where)
        for what, value in secrets_planted.items()
        for where, data in exhibits.items()
        if any(pattern in data for pattern in encodings(value))
    ]
    assert found == [], f"sealed values found in the clear: {found}"

    # The same search does find what is clear by design, so it is not blind.
    database_exhibits = [data for where, data in exhibits.items() if where.startswith(("pg_dump", "intake.sqlite3"))]
    assert any(any(p in data for p in encodings(sentinels["clear"])) for data in database_exhibits)
    assert any(planted["pseudonym"].encode() in data for data in database_exhibits)
    assert any(planted["draft_pseudonym"].encode() in data for data in database_exhibits)
