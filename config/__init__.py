"""Load and validate the service configuration.

Order of precedence, lowest first: the defaults declared in `config.settings`, the TOML file named by
`INTAKE_CONFIG`, `INTAKE_*` environment variables, then the mapping passed to `create_app(config=...)`.
An unknown or invalid setting stops start-up with a message that names it.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from config.settings import SETTINGS, SETTINGS_BY_NAME, Setting

__all__ = ["ConfigError", "load_settings", "SETTINGS"]

# Variables that name where configuration comes from rather than being settings themselves.
_META_VARIABLES = {"INTAKE_CONFIG"}
DEVELOPMENT_PASSPHRASE_FILE = "keyring.passphrase"  # noqa: S105 - a file name
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(Exception):
    """A setting is unknown or has an invalid value; the message names the setting and never its secret value."""


def _coerce(setting: Setting, raw: Any, source: str) -> Any:
    where = f"{setting.env_name if source == 'environment' else setting.toml_name} ({source})"
    shown = "<hidden>" if setting.secret else repr(raw)
    if setting.type == "int":
        if isinstance(raw, bool):
            raise ConfigError(f"{where}: expected a whole number, got {shown}")
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a whole number, got {shown}") from None
        if setting.minimum is not None and value < setting.minimum:
            raise ConfigError(f"{where}: must be at least {setting.minimum}, got {value}")
        if setting.maximum is not None and value > setting.maximum:
            raise ConfigError(f"{where}: must be at most {setting.maximum}, got {value}")
        return value
    if setting.type == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"{where}: expected true or false, got {shown}")
    if not isinstance(raw, str):
        raise ConfigError(f"{where}: expected text, got {shown}")
    value_text = raw.strip()
    if setting.type == "choice":
        if value_text not in setting.choices:
            raise ConfigError(f"{where}: must be one of {', '.join(setting.choices)}; got {shown}")
        return value_text
    if setting.type == "rate":
        from limits import parse_many

        try:
            parse_many(value_text)
        except ValueError:
            raise ConfigError(f"{where}: expected a rate such as '10 per minute', got {shown}") from None
        return value_text
    if setting.type == "url" and value_text:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        if setting.name == "DATABASE_URL":
            try:
                url = make_url(value_text)
            except ArgumentError:
                raise ConfigError(f"{where}: not a database URL") from None
            if url.get_backend_name() not in ("sqlite", "postgresql"):
                raise ConfigError(f"{where}: only sqlite and postgresql are supported")
        elif "://" not in value_text:
            raise ConfigError(f"{where}: expected a URL with a scheme, got {shown}")
    return value_text


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"INTAKE_CONFIG: configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"INTAKE_CONFIG: {path} is not valid TOML: {exc}") from None
    return data


def load_settings(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Return the validated settings as a dict keyed by setting name (e.g. ``SESSION_IDLE_MINUTES``).

    Derived values are resolved here so that every consumer sees the same answer: the instance path is made
    absolute, the database URL and keyring path default into it, and ``SECURE_COOKIES`` becomes a bool.
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, tuple[Any, str]] = {}

    config_file = environ.get("INTAKE_CONFIG")
    if config_file:
        for key, value in _read_toml(config_file).items():
            setting = SETTINGS_BY_NAME.get(str(key).upper())
            if setting is None or str(key) != setting.toml_name:
                raise ConfigError(f"{key} ({config_file}): unknown setting")
            raw[setting.name] = (value, config_file)

    for key, value in environ.items():
        if not key.startswith("INTAKE_") or key in _META_VARIABLES:
            continue
        setting = SETTINGS_BY_NAME.get(key.removeprefix("INTAKE_"))
        if setting is None:
            raise ConfigError(f"{key} (environment): unknown setting")
        raw[setting.name] = (value, "environment")

    for key, value in (overrides or {}).items():
        setting = SETTINGS_BY_NAME.get(key)
        if setting is None:
            raise ConfigError(f"{key} (create_app config): unknown setting")
        raw[setting.name] = (value, "create_app config")

    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.name in raw:
            value, source = raw[setting.name]
            values[setting.name] = _coerce(setting, value, source)
        else:
            values[setting.name] = setting.default

    instance = Path(values["INSTANCE_PATH"]).expanduser()
    values["INSTANCE_PATH"] = str(instance if instance.is_absolute() else (Path.cwd() / instance).resolve())
    if not values["DATABASE_URL"]:
        values["DATABASE_URL"] = f"sqlite:///{values['INSTANCE_PATH']}/intake.sqlite3"
    if not values["KEYRING_PASSPHRASE"] and not values["KEYRING_PASSPHRASE_FILE"]:
        # `make run` keeps a development passphrase here; using it lets `intake ...` commands work in that
        # checkout without extra variables. `intake doctor` warns that it sits beside the data.
        development_file = Path(values["INSTANCE_PATH"]) / DEVELOPMENT_PASSPHRASE_FILE
        if development_file.is_file():
            values["KEYRING_PASSPHRASE_FILE"] = str(development_file)
    if not values["KEYRING_PATH"]:
        values["KEYRING_PATH"] = str(Path(values["INSTANCE_PATH"]) / "keyring.sealed")
    if not values["BLOB_PATH"]:
        values["BLOB_PATH"] = str(Path(values["INSTANCE_PATH"]) / "blobs")
    if not values["AUDIT_CHECKPOINT_FILE"]:
        values["AUDIT_CHECKPOINT_FILE"] = str(Path(values["INSTANCE_PATH"]) / "audit-checkpoints.jsonl")
    prefix = values["PSEUDONYM_PREFIX"]
    if not (1 <= len(prefix) <= 4 and prefix.isascii() and prefix.isalpha() and prefix.isupper()):
        raise ConfigError("PSEUDONYM_PREFIX: must be 1 to 4 capital letters A to Z")
    origin = values["AUDIT_ORIGIN"]
    if not origin or not origin.isprintable() or any(c.isspace() or c == "+" for c in origin):
        raise ConfigError("AUDIT_ORIGIN: must be one word of printable characters without spaces or '+'")
    secure = values["SECURE_COOKIES"]
    values["SECURE_COOKIES"] = (values["ENV"] != "development") if secure == "auto" else secure == "true"
    if values["LOCKOUT_MAX_SECONDS"] < values["LOCKOUT_BASE_SECONDS"]:
        raise ConfigError("LOCKOUT_MAX_SECONDS: must not be shorter than LOCKOUT_BASE_SECONDS")
    if values["KEYRING_PASSPHRASE"] and values["KEYRING_PASSPHRASE_FILE"]:
        raise ConfigError("KEYRING_PASSPHRASE and KEYRING_PASSPHRASE_FILE: set only one of them")
    return values
