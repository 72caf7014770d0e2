"""Configuration: defaults, environment, TOML file and create_app overrides, with errors that name the setting."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from config import ConfigError, load_settings
from config.settings import SETTINGS
from intake import StartupError, create_app
from intake.core.keys import Keyring
from tests.conftest import PASSPHRASE

README = Path(__file__).resolve().parents[2] / "README.md"
SECRET_PASSPHRASE = "sentinel-passphrase-never-shown-9931"


@pytest.fixture
def build(keyring: Keyring, tmp_path: Path) -> Callable[..., Flask]:
    """create_app on a database that is never touched, with the session's keyring."""

    def make(config: dict[str, Any] | None = None) -> Flask:
        base = {"INSTANCE_PATH": str(tmp_path / "instance"), "DATABASE_URL": f"sqlite:///{tmp_path}/unused.db"}
        return create_app({**base, **(config or {})}, keyring=keyring)

    return make


def write_toml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "intake.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------------------------------------------------------
# Sources


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings["ENV"] == "production"
    assert settings["SESSION_IDLE_MINUTES"] == 15
    assert settings["SESSION_ABSOLUTE_HOURS"] == 8
    assert settings["STEP_UP_MINUTES"] == 5
    assert settings["MAX_REQUEST_BYTES"] == 1_048_576
    assert settings["PASSWORD_MIN_LENGTH"] == 12
    assert settings["LOG_LEVEL"] == "INFO"
    assert settings["SECURE_COOKIES"] is True  # production: cookies only over HTTPS
    instance = Path(settings["INSTANCE_PATH"])
    assert instance.is_absolute() and instance == (tmp_path / "instance").resolve()
    assert settings["DATABASE_URL"] == f"sqlite:///{instance}/intake.sqlite3"
    assert settings["KEYRING_PATH"] == str(instance / "keyring.sealed")
    assert set(settings) == {s.name for s in SETTINGS}


def test_development_turns_off_secure_cookies_unless_told_otherwise() -> None:
    assert load_settings(environ={"INTAKE_ENV": "development"})["SECURE_COOKIES"] is False
    assert load_settings(environ={"INTAKE_ENV": "development", "INTAKE_SECURE_COOKIES": "true"})["SECURE_COOKIES"]


def test_an_environment_variable_overrides_the_default(
    build: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings(environ={"INTAKE_SESSION_IDLE_MINUTES": "30"})["SESSION_IDLE_MINUTES"] == 30
    monkeypatch.setenv("INTAKE_SESSION_IDLE_MINUTES", "30")
    assert build().config["SESSION_IDLE_MINUTES"] == 30


def test_a_toml_file_named_by_intake_config_is_read(
    build: Callable[..., Flask], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_toml(tmp_path, 'session_idle_minutes = 45\nlog_level = "WARNING"\n'
                                'sign_in_limit_per_address = "5 per minute"\n')
    settings = load_settings(environ={"INTAKE_CONFIG": path})
    assert settings["SESSION_IDLE_MINUTES"] == 45
    assert settings["LOG_LEVEL"] == "WARNING"
    assert settings["SIGN_IN_LIMIT_PER_ADDRESS"] == "5 per minute"
    monkeypatch.setenv("INTAKE_CONFIG", path)
    assert build().config["SESSION_IDLE_MINUTES"] == 45


def test_precedence_create_app_over_environment_over_toml_over_defaults(
    build: Callable[..., Flask], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_toml(tmp_path, "session_idle_minutes = 45\nstep_up_minutes = 7\nlockout_threshold = 9\n")
    monkeypatch.setenv("INTAKE_CONFIG", path)
    monkeypatch.setenv("INTAKE_SESSION_IDLE_MINUTES", "30")
    monkeypatch.setenv("INTAKE_STEP_UP_MINUTES", "3")
    config = build({"SESSION_IDLE_MINUTES": 60}).config
    assert config["SESSION_IDLE_MINUTES"] == 60  # create_app beats the environment and the file
    assert config["STEP_UP_MINUTES"] == 3  # the environment beats the file
    assert config["LOCKOUT_THRESHOLD"] == 9  # the file beats the default
    assert config["INVITATION_HOURS"] == 72  # the default
    monkeypatch.delenv("INTAKE_SESSION_IDLE_MINUTES")
    assert build().config["SESSION_IDLE_MINUTES"] == 45
    monkeypatch.delenv("INTAKE_CONFIG")
    assert build().config["SESSION_IDLE_MINUTES"] == 15


# ---------------------------------------------------------------------------------------------------------------
# Errors name the setting


def test_an_unknown_environment_variable_stops_start_up_and_is_named(
    build: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="INTAKE_NOPE"):
        load_settings(environ={"INTAKE_NOPE": "1"})
    monkeypatch.setenv("INTAKE_NOPE", "1")
    with pytest.raises(StartupError, match=r"Configuration error: INTAKE_NOPE \(environment\): unknown setting"):
        build()


def test_unknown_settings_in_the_file_or_in_create_app_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sesion_idle_minutes \(.*intake\.toml\): unknown setting"):
        load_settings(environ={"INTAKE_CONFIG": write_toml(tmp_path, "sesion_idle_minutes = 3\n")})
    with pytest.raises(ConfigError, match="SESSION_IDLE_MINUTES"):  # the file uses lowercase names
        load_settings(environ={"INTAKE_CONFIG": write_toml(tmp_path, "SESSION_IDLE_MINUTES = 3\n")})
    with pytest.raises(ConfigError, match=r"NOPE \(create_app config\)"):
        load_settings(environ={}, overrides={"NOPE": 1})


def test_a_missing_or_broken_toml_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(environ={"INTAKE_CONFIG": str(tmp_path / "missing.toml")})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(environ={"INTAKE_CONFIG": write_toml(tmp_path, "session_idle_minutes = = 3\n")})


@pytest.mark.parametrize(
    ("value", "message"),
    [("abc", "expected a whole number"), ("0", "must be at least 1"), ("241", "must be at most 240"),
     ("", "expected a whole number"), ("1.5", "expected a whole number")],
)
def test_an_invalid_value_is_refused_naming_the_setting(
    build: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=f"INTAKE_SESSION_IDLE_MINUTES.*{message}"):
        load_settings(environ={"INTAKE_SESSION_IDLE_MINUTES": value})
    monkeypatch.setenv("INTAKE_SESSION_IDLE_MINUTES", value)
    with pytest.raises(StartupError, match="INTAKE_SESSION_IDLE_MINUTES"):
        build()


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"INTAKE_LOG_LEVEL": "LOUD"}, "INTAKE_LOG_LEVEL"),
        ({"INTAKE_DEFAULT_LOCALE": "fr"}, "INTAKE_DEFAULT_LOCALE"),
        ({"INTAKE_API_LIMIT": "lots"}, "INTAKE_API_LIMIT"),
        ({"INTAKE_DATABASE_URL": "mysql://x/y"}, "INTAKE_DATABASE_URL"),
        ({"INTAKE_REDIS_URL": "cache.internal"}, "INTAKE_REDIS_URL"),
        ({"INTAKE_PASSWORD_MIN_LENGTH": "8"}, "INTAKE_PASSWORD_MIN_LENGTH"),
        ({"INTAKE_LOCKOUT_BASE_SECONDS": "100", "INTAKE_LOCKOUT_MAX_SECONDS": "50"}, "LOCKOUT_MAX_SECONDS"),
    ],
)
def test_other_invalid_values_name_their_setting(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(environ=environ)


def test_a_toml_value_of_the_wrong_type_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"session_idle_minutes \(.*intake\.toml\): expected a whole number"):
        load_settings(environ={"INTAKE_CONFIG": write_toml(tmp_path, 'session_idle_minutes = "soon"\n')})
    with pytest.raises(ConfigError, match="session_idle_minutes"):
        load_settings(environ={"INTAKE_CONFIG": write_toml(tmp_path, "session_idle_minutes = true\n")})


def test_the_passphrase_never_appears_in_an_error_message(tmp_path: Path, build: Callable[..., Flask]) -> None:
    number = "987654321987654"
    cases: list[dict[str, Any]] = [
        {"environ": {"INTAKE_CONFIG": write_toml(tmp_path, f"keyring_passphrase = {number}\n")}},
        {"environ": {}, "overrides": {"KEYRING_PASSPHRASE": int(number)}},
        {"environ": {"INTAKE_KEYRING_PASSPHRASE": SECRET_PASSPHRASE, "INTAKE_KEYRING_PASSPHRASE_FILE": "/x"}},
        {"environ": {"INTAKE_KEYRING_PASSPHRSE": SECRET_PASSPHRASE}},  # a typo in the name
        {"environ": {"INTAKE_KEYRING_PASSPHRASE": SECRET_PASSPHRASE, "INTAKE_SESSION_IDLE_MINUTES": "x"}},
    ]
    for case in cases:
        with pytest.raises(ConfigError) as caught:
            load_settings(**case)
        message = str(caught.value)
        assert "PASSPHR" in message.upper() or "SESSION_IDLE" in message
        assert SECRET_PASSPHRASE not in message and number not in message, message
    # Through create_app too, where the message reaches the operator's terminal.
    with pytest.raises(StartupError) as caught_startup:
        build({"KEYRING_PASSPHRASE": int(number)})
    assert number not in str(caught_startup.value)
    assert "<hidden>" in str(caught_startup.value)


def test_the_passphrase_does_not_stay_in_the_running_configuration(build: Callable[..., Flask]) -> None:
    app = build({"KEYRING_PASSPHRASE": SECRET_PASSPHRASE})
    assert app.config["KEYRING_PASSPHRASE"] == ""
    assert SECRET_PASSPHRASE not in repr(dict(app.config))


def test_a_passphrase_from_the_environment_leaves_it_once_the_keyring_is_open(
    keyring_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.setenv("INTAKE_KEYRING_PASSPHRASE", PASSPHRASE)
    app = create_app({"INSTANCE_PATH": str(tmp_path / "instance"), "DATABASE_URL": f"sqlite:///{tmp_path}/unused.db",
                      "KEYRING_PATH": str(keyring_path)})
    assert app.extensions["intake.keyring"] is not None
    assert "INTAKE_KEYRING_PASSPHRASE" not in os.environ  # workers forked later do not inherit it
    assert PASSPHRASE not in repr(dict(os.environ))


def test_a_passphrase_passed_in_the_configuration_leaves_the_environment_alone(
    keyring_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.setenv("INTAKE_KEYRING_PASSPHRASE", "someone else's passphrase, unused here")
    create_app({"INSTANCE_PATH": str(tmp_path / "instance"), "DATABASE_URL": f"sqlite:///{tmp_path}/unused.db",
                "KEYRING_PATH": str(keyring_path), "KEYRING_PASSPHRASE": PASSPHRASE})
    assert os.environ["INTAKE_KEYRING_PASSPHRASE"] == "someone else's passphrase, unused here"


# ---------------------------------------------------------------------------------------------------------------
# Documentation


def readme_settings() -> list[str]:
    rows = re.findall(r"^\| `INTAKE_([A-Z0-9_]+)`", README.read_text(encoding="utf-8"), re.M)
    return rows


def test_the_readme_settings_table_lists_exactly_the_settings() -> None:
    assert README.exists(), "README.md is missing"
    documented = readme_settings()
    declared = [s.name for s in SETTINGS]
    assert len(documented) == len(set(documented)), "a setting is listed twice in the README"
    assert sorted(documented) == sorted(declared), (
        f"missing from README: {sorted(set(declared) - set(documented))}; "
        f"not a setting: {sorted(set(documented) - set(declared))}"
    )


def test_the_readme_shows_each_settings_default() -> None:
    text = README.read_text(encoding="utf-8")
    for setting in SETTINGS:
        row = re.search(rf"^\| `{setting.env_name}` \| ([^|]*) \|", text, re.M)
        assert row, setting.env_name
        shown = row.group(1).strip()
        if setting.secret:
            assert shown in ("—", "-", "(empty)", "")
        elif setting.default in ("", None):
            assert shown in ("(empty)", "—", "-", ""), setting.env_name
        else:
            assert shown.strip("`").replace(",", "").replace("_", "") == str(setting.default), setting.env_name


def test_the_development_passphrase_file_is_found_beside_the_instance(tmp_path: Path) -> None:
    (tmp_path / "keyring.passphrase").write_text("a development passphrase\n", encoding="utf-8")
    settings = load_settings(environ={"INTAKE_INSTANCE_PATH": str(tmp_path)})
    assert settings["KEYRING_PASSPHRASE_FILE"] == str(tmp_path / "keyring.passphrase")
    explicit = load_settings(environ={"INTAKE_INSTANCE_PATH": str(tmp_path), "INTAKE_KEYRING_PASSPHRASE": "x" * 20})
    assert explicit["KEYRING_PASSPHRASE_FILE"] == ""
    assert load_settings(environ={"INTAKE_INSTANCE_PATH": str(tmp_path / "elsewhere")})["KEYRING_PASSPHRASE_FILE"] == ""
