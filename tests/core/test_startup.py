"""Starting the service and the operator's commands: clear messages on a bad keyring, `doctor`, `keys init`,
`setup-link` and `users invite`."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from intake import StartupError, create_app
from intake.accounts.models import Account, Invitation
from intake.core.audit import AuditEvent
from intake.core.db import db
from tests.accounts.test_enrolment_flow import enrol
from tests.conftest import PASSPHRASE, TestUser, TotpClock, open_link

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
WRONG = "a wrong passphrase, sentinel 5150"


def startup_config(tmp_path: Path, keyring_path: Path, passphrase: str) -> dict[str, Any]:
    return {"INSTANCE_PATH": str(tmp_path / "instance"), "DATABASE_URL": f"sqlite:///{tmp_path}/unused.db",
            "KEYRING_PATH": str(keyring_path), "KEYRING_PASSPHRASE": passphrase}


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("INTAKE_", "FLASK_"))}
    return subprocess.run(args, env={**base, **env}, cwd=cwd, capture_output=True, text=True, timeout=120,  # noqa: S603
                          check=False)


# ---------------------------------------------------------------------------------------------------------------
# Keyring problems stop start-up with a clear message


def test_the_right_passphrase_starts_the_service(tmp_path: Path, keyring_path: Path) -> None:
    app = create_app(startup_config(tmp_path, keyring_path, PASSPHRASE))
    assert app.extensions["intake.keyring"].kek_versions
    assert app.config["KEYRING_PASSPHRASE"] == ""


def test_a_wrong_passphrase_stops_start_up_with_a_clear_message(tmp_path: Path, keyring_path: Path) -> None:
    with pytest.raises(StartupError) as caught:
        create_app(startup_config(tmp_path, keyring_path, WRONG))
    message = str(caught.value)
    assert message.startswith("Keyring error:")
    assert "wrong passphrase" in message and str(keyring_path) in message
    assert WRONG not in message


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("garbage", "is not an intake keyring or is damaged"),
        ("truncated", "is not an intake keyring or is damaged"),
        ("ciphertext", "wrong passphrase, or the keyring file was damaged or altered"),
        ("weakened-kdf", "damaged or altered"),
        ("missing", "does not exist"),
        ("empty", "is not an intake keyring or is damaged"),
    ],
)
def test_a_damaged_keyring_stops_start_up_with_a_clear_message(
    tmp_path: Path, keyring_path: Path, damage: str, expected: str
) -> None:
    target = tmp_path / "keyring.sealed"
    raw = keyring_path.read_bytes()
    if damage == "garbage":
        target.write_bytes(b"\x00\x01 this is not a keyring \xff")
    elif damage == "truncated":
        target.write_bytes(raw[: len(raw) // 2])
    elif damage == "ciphertext":
        header = json.loads(raw)
        blob = bytearray(base64.b64decode(header["ciphertext"]))
        blob[5] ^= 0x01
        header["ciphertext"] = base64.b64encode(bytes(blob)).decode()
        target.write_text(json.dumps(header))
    elif damage == "weakened-kdf":
        header = json.loads(raw)
        header["kdf"]["n"] = 2**11 if header["kdf"]["n"] != 2**11 else 2**12
        target.write_text(json.dumps(header))
    elif damage == "empty":
        target.write_bytes(b"")
    with pytest.raises(StartupError) as caught:
        create_app(startup_config(tmp_path, target, PASSPHRASE))
    message = str(caught.value)
    assert message.startswith("Keyring error:")
    assert expected in message, message
    assert str(target) in message
    assert PASSPHRASE not in message


def test_no_passphrase_at_all_says_how_to_give_one(tmp_path: Path, keyring_path: Path) -> None:
    with pytest.raises(StartupError, match="INTAKE_KEYRING_PASSPHRASE_FILE"):
        create_app(startup_config(tmp_path, keyring_path, ""))


def test_importing_the_wsgi_module_with_a_bad_keyring_exits_with_the_message_and_no_traceback(
    tmp_path: Path, keyring_path: Path
) -> None:
    env = {"INTAKE_KEYRING_PATH": str(keyring_path), "INTAKE_KEYRING_PASSPHRASE": WRONG,
           "INTAKE_INSTANCE_PATH": str(tmp_path)}
    result = run([sys.executable, "-c", "import app"], env, ROOT)
    assert result.returncode != 0
    assert "intake: Keyring error: Cannot open keyring" in result.stderr
    assert "wrong passphrase" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert WRONG not in result.stderr + result.stdout


def test_importing_the_wsgi_module_with_an_unknown_setting_names_it(tmp_path: Path, keyring_path: Path) -> None:
    env = {"INTAKE_KEYRING_PATH": str(keyring_path), "INTAKE_KEYRING_PASSPHRASE": PASSPHRASE,
           "INTAKE_INSTANCE_PATH": str(tmp_path), "INTAKE_SESION_IDLE_MINUTES": "5"}
    result = run([sys.executable, "-c", "import app"], env, ROOT)
    assert result.returncode != 0
    assert "intake: Configuration error: INTAKE_SESION_IDLE_MINUTES (environment): unknown setting" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------------------------
# keys init and doctor (real processes, SQLite)


def test_keys_init_then_doctor_reports_the_state_of_a_new_installation(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    passphrase_file = instance / "keyring.passphrase"
    env = {"INTAKE_INSTANCE_PATH": str(instance), "INTAKE_KEYRING_PASSPHRASE_FILE": str(passphrase_file),
           "INTAKE_ENV": "development"}
    intake = str(VENV_BIN / "intake")

    created = run([intake, "keys", "init", "--create-passphrase-file"], env, tmp_path)
    assert created.returncode == 0, created.stderr
    assert f"Created a random keyring passphrase in {passphrase_file} (mode 0600)" in created.stdout
    assert f"Created the sealed keyring {instance / 'keyring.sealed'}" in created.stdout
    assert stat.S_IMODE(passphrase_file.stat().st_mode) == 0o600
    assert (instance / "keyring.sealed").exists()
    assert passphrase_file.read_text().strip() not in created.stdout + created.stderr

    before = run([intake, "doctor"], env, tmp_path)
    assert before.returncode == 1
    assert "ok       database reachable (sqlite)" in before.stdout
    assert re.search(r"ERROR +migrations not at head.*run `intake db upgrade`", before.stdout)

    upgraded = run([intake, "db", "upgrade"], env, tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr

    after = run([intake, "doctor"], env, tmp_path)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "ok       database reachable (sqlite)" in after.stdout
    assert re.search(r"ok +migrations at head", after.stdout)
    assert re.search(r"ok +keyring .* opened", after.stdout)
    assert re.search(r"ok +audit log holds \d+ events; the latest checkpoint covers 0", after.stdout)
    assert re.search(r"WARNING +the keyring passphrase file .*keyring\.passphrase sits beside the data", after.stdout)
    assert "Traceback" not in after.stderr

    again = run([intake, "keys", "init", "--create-passphrase-file"], env, tmp_path)
    assert again.returncode == 0
    assert "exists and opens with the configured passphrase" in again.stdout
    assert "Created" not in again.stdout


def test_keys_init_in_process_without_any_passphrase_says_what_to_set(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from intake.cli import keys_group

    result = CliRunner(env={"INTAKE_INSTANCE_PATH": str(tmp_path / "instance")}).invoke(keys_group, ["init"])
    assert result.exit_code == 1
    assert "Set INTAKE_KEYRING_PASSPHRASE or INTAKE_KEYRING_PASSPHRASE_FILE" in result.output
    assert not (tmp_path / "instance" / "keyring.sealed").exists()


def test_doctor_warns_only_when_the_passphrase_file_sits_beside_the_data(tmp_path: Path) -> None:
    from config import load_settings
    from intake.cli import configuration_warnings

    instance = tmp_path / "instance"
    for passphrase_file, warned in [(instance / "keyring.passphrase", True),
                                    (tmp_path / "secrets" / "keyring.passphrase", False)]:
        settings = load_settings(environ={"INTAKE_INSTANCE_PATH": str(instance),
                                          "INTAKE_KEYRING_PASSPHRASE_FILE": str(passphrase_file)})
        warnings = configuration_warnings(settings)
        assert any("passphrase file" in w and "beside the data" in w for w in warnings) is warned
    production = load_settings(environ={"INTAKE_INSTANCE_PATH": str(instance),
                                        "INTAKE_REDIS_URL": "redis://cache.internal:6379/0",
                                        "INTAKE_AUDIT_ORIGIN": "docs.example.org/audit",
                                        "INTAKE_AUDIT_CHECKPOINT_FILE": str(tmp_path / "offsite" / "cp.jsonl")})
    assert configuration_warnings(production) == []


def test_doctor_warns_about_an_unnamed_audit_log_and_checkpoints_kept_beside_the_database(tmp_path: Path) -> None:
    from config import load_settings
    from intake.cli import configuration_warnings

    settings = load_settings(environ={"INTAKE_INSTANCE_PATH": str(tmp_path / "instance"),
                                      "INTAKE_REDIS_URL": "redis://cache.internal:6379/0"})
    warnings = configuration_warnings(settings)
    assert any("INTAKE_AUDIT_ORIGIN is the default" in w for w in warnings)
    assert any("audit checkpoint file" in w and "copy it off the server" in w for w in warnings)


# ---------------------------------------------------------------------------------------------------------------
# setup-link and users invite (in process, both databases)


def test_setup_link_is_printed_only_while_no_account_exists(
    app: Flask, create_user: Callable[..., TestUser], totp_clock: TotpClock
) -> None:
    runner = app.test_cli_runner()
    first = runner.invoke(args=["setup-link"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(args=["setup-link"])
    links = [re.search(r"http://localhost(/setup/\S+)", r.output).group(1) for r in (first, second)]
    assert links[0] != links[1]

    client = app.test_client()
    stale = client.get(links[0])
    assert stale.status_code == 410  # only the newest printed link works
    enrol(client, totp_clock, links[1], username="lusine")
    with app.app_context():
        admin = db.session.scalar(sa.select(Account).where(Account.username == "lusine"))
        assert admin.role_names == ["admin"] and admin.can_sign_in

    refused = runner.invoke(args=["setup-link"])
    assert refused.exit_code == 1
    assert "Accounts exist already" in refused.output
    assert "/setup/" not in refused.output
    quiet = runner.invoke(args=["setup-link", "--if-no-accounts"])
    assert quiet.exit_code == 0 and quiet.output == ""


def test_setup_link_refuses_when_any_account_exists(app: Flask, create_user: Callable[..., TestUser]) -> None:
    create_user("amira", ["interviewer"])
    result = app.test_cli_runner().invoke(args=["setup-link"])
    assert result.exit_code == 1 and "/setup/" not in result.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Invitation.id))) == 0


def test_users_invite_prints_an_enrolment_link_that_works_in_the_browser(
    app: Flask, totp_clock: TotpClock
) -> None:
    result = app.test_cli_runner().invoke(args=["users", "invite", "--username", "amira", "--role", "interviewer"])
    assert result.exit_code == 0, result.output
    assert "Enrolment link for amira" in result.output
    path = re.search(r"http://localhost(/enrol/\S+)", result.output).group(1)

    client = app.test_client()
    enrol(client, totp_clock, path)
    home = client.get("/")
    assert home.status_code == 200 and "amira" in home.get_data(as_text=True)
    with app.app_context():
        account = db.session.scalar(sa.select(Account).where(Account.username == "amira"))
        assert account.role_names == ["interviewer"] and account.can_sign_in
        issued = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "invitation_issued"))
        assert issued.actor_id is None and issued.target_ids == [account.id]
    listed = app.test_cli_runner().invoke(args=["users", "list"])
    assert re.search(r"amira +interviewer +active", listed.output)


def test_users_invite_refuses_bad_input_and_creates_nothing(app: Flask, create_user: Callable[..., TestUser]) -> None:
    create_user("amira")
    runner = app.test_cli_runner()
    cases = [
        (["--username", "amira", "--role", "reviewer"], "That username is taken"),
        (["--username", "narine", "--role", "admin", "--role", "interviewer"], "cannot be held by one account"),
        (["--username", "Bad Name", "--role", "reviewer"], "lowercase Latin letters"),
        (["--username", "narine", "--role", "superuser"], "Invalid value"),
    ]
    for args, message in cases:
        result = runner.invoke(args=["users", "invite", *args])
        assert result.exit_code != 0, args
        assert message in result.output, result.output
        assert "/enrol/" not in result.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Account.id))) == 1
        assert db.session.scalar(sa.select(sa.func.count(Invitation.id))) == 0


def test_an_invitation_link_is_spent_once_opened(app: Flask, totp_clock: TotpClock) -> None:
    result = app.test_cli_runner().invoke(args=["users", "invite", "--username", "amira", "--role", "reviewer"])
    path = re.search(r"http://localhost(/enrol/\S+)", result.output).group(1)
    landing = app.test_client().get(path)
    assert landing.status_code == 200  # looking at the link does not spend it
    assert open_link(app.test_client(), path).status_code == 303
    later = app.test_client().get(path)
    assert later.status_code == 410
    assert "already been used" in later.get_data(as_text=True)
