"""A recipient with only Debian's `age`, `minisign`, GNU `tar` and coreutils' `sha256sum` can decrypt and check the
case file the service built, by following its VERIFY.txt to the letter; a change to any byte is caught by those
tools or by `intake export verify` (`intake.exports.verify.verify_bundle`).

The tools are required in CI (PYTEST_REQUIRE names age and minisign); elsewhere the tests skip without them."""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask

from tests.conftest import missing
from tests.exports.helpers import (
    Planted,
    age_identity,
    build_export,
    export_users,
    make_case,
    planted_record,
    register_recipient,
)

# The names VERIFY.txt gives the recipient's files; the test names its files so, to run its commands as written.
IDENTITY_FILE = "YOUR-AGE-IDENTITY.txt"
BUNDLE_FILE = "BUNDLE.tar.age"
TOOLS = {"age": "age", "age-keygen": "age", "minisign": "minisign", "tar": "tar", "sha256sum": "coreutils"}
VERIFIED = "Signature and comment signature verified"


@pytest.fixture
def tools() -> dict[str, str]:
    """Where each command-line tool is; a missing one skips the test (or fails it where PYTEST_REQUIRE names it)."""
    found = {}
    for name, package in TOOLS.items():
        path = shutil.which(name)
        if path is None:
            missing(package, f"there is no {name} executable on PATH (Debian package {package})")
        assert path is not None
        found[name] = path
    return found


def _run(tools: dict[str, str], argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tools[argv[0]], *argv[1:]], cwd=cwd, capture_output=True, text=True,  # noqa: S603 - fixed tools
                          timeout=120, check=False)


def _shell(tools: dict[str, str], line: str, cwd: Path) -> tuple[Path, list[subprocess.CompletedProcess[str]]]:
    """Run one command line as a shell would (commands joined by `&&`, `cd`); the directory it ends in and what
    each command gave. Stops at the first command that fails."""
    done = []
    words = shlex.split(line)
    commands: list[list[str]] = [[]]
    for word in words:
        if word == "&&":
            commands.append([])
        else:
            commands[-1].append(word)
    for argv in commands:
        if argv[0] == "cd":
            cwd = cwd / argv[1]
            continue
        if argv[0] == "mkdir":
            (cwd / argv[1]).mkdir()
            continue
        result = _run(tools, argv, cwd)
        done.append(result)
        if result.returncode != 0:
            break
    return cwd, done


@dataclass(frozen=True)
class Built:
    app: Flask
    path: Path  # the stored case file
    secret: str
    public: str
    key_line: str  # the service's minisign public key, as the organisation publishes it
    bundle_id: str
    planted: Planted


def _build(app: Flask, *, public: str, secret: str) -> Built:
    from intake.core.db import db
    from intake.exports.models import Export
    from intake.exports.operations import bundle_path
    from intake.exports.signing import public_key

    interviewer, legal, admin = export_users(app)
    # Pseudonymous for un_mechanisms, photos and documents consented: the photo goes with the record.
    planted = planted_record(app, interviewer, uuid.uuid4().hex[:12],
                             grants={"documentation": "pseudonymous", "un_mechanisms": "pseudonymous"})
    recipient = register_recipient(app, admin, public_keys=[public])
    export_id, state = build_export(app, legal, make_case(app, legal, [planted.testimony_id]), recipient,
                                    "un_mechanisms")
    assert state == "ready"
    with app.app_context():
        export = db.session.get(Export, export_id)
        assert export is not None
        return Built(app, bundle_path(app.config, export), secret, public,
                     public_key(app.extensions["intake.keyring"]), export.bundle_id, planted)


@pytest.fixture
def built(make_app: Callable[..., Flask]) -> Built:
    secret, public = age_identity()
    return _build(make_app(EXPORT_RUNNER="inline"), public=public, secret=secret)


def _desk(built: Built, folder: Path) -> Path:
    """The recipient's folder: the case file and their identity, named as VERIFY.txt names them."""
    folder.mkdir()
    shutil.copyfile(built.path, folder / BUNDLE_FILE)
    (folder / IDENTITY_FILE).write_text(built.secret + "\n", encoding="ascii")
    return folder


def _steps(key_line: str) -> list[str]:
    return [
        f"age --decrypt -i {IDENTITY_FILE} -o bundle.tar {BUNDLE_FILE}",
        "mkdir bundle && tar -xf bundle.tar -C bundle && cd bundle",
        f"minisign -V -P {key_line} -m manifest.json",
        f"minisign -V -P {key_line} -m SHA256SUMS",
        "sha256sum -c SHA256SUMS",
    ]


def _commands_in(verify_text: str) -> list[str]:
    """The commands VERIFY.txt tells the recipient to run, in order (its indented lines that start with one)."""
    return [line.strip() for line in verify_text.splitlines()
            if line.startswith("    ") and line.split()[0] in {"age", "mkdir", "minisign", "sha256sum"}]


def _unpacked(tools: dict[str, str], desk: Path) -> Path:
    for line in _steps("unused")[:2]:
        cwd, results = _shell(tools, line, desk)
        assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    return cwd


def test_age_minisign_and_sha256sum_check_the_case_file_as_verify_txt_says(
        tools: dict[str, str], built: Built, tmp_path: Path) -> None:
    from intake.exports.signing import public_key_text
    from intake.exports.verify import verify_bundle

    desk = _desk(built, tmp_path / "desk")
    cwd = desk
    outputs = []
    for line in _steps(built.key_line):
        cwd, results = _shell(tools, line, cwd)
        assert all(r.returncode == 0 for r in results), (line, [r.stderr for r in results])
        outputs += results
    _age, _tar, manifest_check, sums_check, sums = outputs
    assert cwd == desk / "bundle"
    for check, what in ((manifest_check, "manifest"), (sums_check, "SHA256SUMS")):
        assert VERIFIED in check.stdout
        assert f"Trusted comment: intake case file {built.bundle_id} {what}" in check.stdout
    listed = (cwd / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    checked = sums.stdout.splitlines()
    assert len(checked) == len(listed) > 0 and all(line.endswith(": OK") for line in checked)
    # The published key and the one beside the files verify alike.
    with built.app.app_context():
        assert (cwd / "export-signing.pub").read_text(encoding="utf-8") == public_key_text(
            built.app.extensions["intake.keyring"])
    for name in ("manifest.json", "SHA256SUMS"):
        result = _run(tools, ["minisign", "-V", "-p", "export-signing.pub", "-m", name], cwd)
        assert result.returncode == 0 and VERIFIED in result.stdout, result.stderr
    # What came out is the record at its disclosure, with its photo.
    record = json.loads((cwd / "records/record-00001/testimony.json").read_text(encoding="utf-8"))
    assert record["disclosure"] == "pseudonymous" and record["pseudonym"] == built.planted.pseudonym
    photo = cwd / "records/record-00001/attachments" / hashlib.sha256(built.planted.photo).hexdigest()
    assert photo.read_bytes() == built.planted.photo
    assert sorted(a["medium"] for a in record["attachments"]) == ["document", "photo"]
    # VERIFY.txt gives exactly the commands run above, with the key the organisation publishes.
    verify_text = (cwd / "VERIFY.txt").read_text(encoding="utf-8")
    assert _commands_in(verify_text) == _steps(built.key_line)
    assert f"    {built.key_line}\n" in verify_text
    assert f"intake export verify {BUNDLE_FILE} --identity {IDENTITY_FILE}" in verify_text
    report = verify_bundle(desk / BUNDLE_FILE, [built.secret], public_key=built.key_line)
    assert report.ok, report.findings


def test_a_changed_byte_is_caught_by_the_tools_or_by_export_verify(
        tools: dict[str, str], built: Built, tmp_path: Path) -> None:
    from intake.exports.verify import verify_bundle

    # A byte of the encrypted file flipped: age refuses to decrypt it.
    desk = _desk(built, tmp_path / "flipped")
    damaged = bytearray((desk / BUNDLE_FILE).read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    (desk / BUNDLE_FILE).write_bytes(bytes(damaged))
    result = _run(tools, ["age", "--decrypt", "-i", IDENTITY_FILE, "-o", "bundle.tar", BUNDLE_FILE], desk)
    assert result.returncode != 0 and result.stderr

    desk = _desk(built, tmp_path / "desk")
    tree = _unpacked(tools, desk)
    names = _run(tools, ["tar", "-tf", "bundle.tar"], desk).stdout.splitlines()
    record = "records/record-00001/testimony.json"

    # A byte of an unpacked record changed: sha256sum names it.
    changed = tmp_path / "changed-record"
    shutil.copytree(tree, changed)
    data = bytearray((changed / record).read_bytes())
    data[data.index(b"pseudonymous")] ^= 0x20  # "Pseudonymous"
    (changed / record).write_bytes(bytes(data))
    result = _run(tools, ["sha256sum", "-c", "SHA256SUMS"], changed)
    assert result.returncode != 0 and f"{record}: FAILED" in result.stdout
    assert _run(tools, ["sha256sum", "-c", "SHA256SUMS"], tree).returncode == 0

    # A byte of the manifest changed: minisign refuses its signature.
    forged = tmp_path / "changed-manifest"
    shutil.copytree(tree, forged)
    manifest = bytearray((forged / "manifest.json").read_bytes())
    manifest[manifest.index(b"un_mechanisms")] ^= 0x20
    (forged / "manifest.json").write_bytes(bytes(manifest))
    result = _run(tools, ["minisign", "-V", "-P", built.key_line, "-m", "manifest.json"], forged)
    assert result.returncode != 0 and VERIFIED not in result.stdout

    # Re-encrypted to the recipient's public key with the age tool, as anyone holding that key could:
    # unchanged it verifies; with the record changed, or with manifest and checksums rewritten to match the
    # change, `intake export verify` refuses it.
    def sealed(folder: Path, name: str) -> Path:
        packed = tmp_path / f"{name}.tar"
        made = _run(tools, ["tar", "-cf", str(packed), "--no-recursion", "-C", str(folder), *names], tmp_path)
        assert made.returncode == 0, made.stderr
        target = tmp_path / f"{name}.tar.age"
        made = _run(tools, ["age", "-r", built.public, "-o", str(target), str(packed)], tmp_path)
        assert made.returncode == 0, made.stderr
        return target

    assert verify_bundle(sealed(tree, "same"), [built.secret], public_key=built.key_line).ok
    report = verify_bundle(sealed(changed, "changed"), [built.secret], public_key=built.key_line)
    assert not report.ok and any(not good and "do not match" in text for good, text in report.findings)
    rehashed = tmp_path / "rehashed"
    shutil.copytree(changed, rehashed)
    digest = hashlib.sha256((rehashed / record).read_bytes()).hexdigest()
    document = json.loads((rehashed / "manifest.json").read_text(encoding="utf-8"))
    for entry in document["files"]:
        if entry["path"] == record:
            entry["sha256"] = digest
    (rehashed / "manifest.json").write_text(json.dumps(document), encoding="utf-8")
    sums = {line.split("  ", 1)[1]: line.split("  ", 1)[0]
            for line in (rehashed / "SHA256SUMS").read_text(encoding="utf-8").splitlines()}
    sums[record] = digest
    sums["manifest.json"] = hashlib.sha256((rehashed / "manifest.json").read_bytes()).hexdigest()
    (rehashed / "SHA256SUMS").write_text("".join(f"{d}  {n}\n" for n, d in sums.items()), encoding="utf-8")
    assert _run(tools, ["sha256sum", "-c", "SHA256SUMS"], rehashed).returncode == 0
    report = verify_bundle(sealed(rehashed, "rehashed"), [built.secret], public_key=built.key_line)
    failed = [text for good, text in report.findings if not good]
    assert any(text.startswith("signature of manifest.json") for text in failed)
    assert any(text.startswith("signature of SHA256SUMS") for text in failed)


def test_age_decrypts_with_an_identity_made_by_age_keygen(tools: dict[str, str], make_app: Callable[..., Flask],
                                                         tmp_path: Path) -> None:
    from intake.exports.archive import parse_identities
    from intake.exports.verify import verify_bundle

    made = _run(tools, ["age-keygen", "-o", "key.txt"], tmp_path)
    assert made.returncode == 0, made.stderr
    public = next(line.split(": ", 1)[1] for line in made.stderr.splitlines() if line.startswith("Public key: "))
    key_file = (tmp_path / "key.txt").read_text(encoding="ascii")
    built = _build(make_app(EXPORT_RUNNER="inline"), public=public, secret="")
    result = _run(tools, ["age", "--decrypt", "-i", "key.txt", "-o", "bundle.tar", str(built.path)], tmp_path)
    assert result.returncode == 0, result.stderr
    listing = _run(tools, ["tar", "-tf", "bundle.tar"], tmp_path).stdout.splitlines()
    assert {"VERIFY.txt", "manifest.json", "SHA256SUMS", "records/record-00001/testimony.json"} <= set(listing)
    report = verify_bundle(built.path, parse_identities(key_file), public_key=built.key_line)
    assert report.ok, report.findings
    # Another identity made the same way cannot open it.
    assert _run(tools, ["age-keygen", "-o", "other.txt"], tmp_path).returncode == 0
    refused = _run(tools, ["age", "--decrypt", "-i", "other.txt", "-o", "other.tar", str(built.path)], tmp_path)
    assert refused.returncode != 0
