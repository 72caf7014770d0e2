"""Consent-first documentation intake for survivors and witnesses of attacks on civilians."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Request
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from config import ConfigError, load_settings
from intake.core.db import db
from intake.core.keys import PASSPHRASE_ENV, PASSPHRASE_FILE_ENV, PURPOSES, Keyring, KeyringError, read_passphrase
from intake.core.security import Permission, role_titles

__all__ = ["create_app", "StartupError"]

csrf = CSRFProtect()


class IntakeRequest(Request):
    """A request whose uploaded files are spooled encrypted (`EncryptedSpool`), never in clear on disk."""

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> Any:
        from intake.core.crypto.spool import EncryptedSpool

        return EncryptedSpool()


class IntakeFlask(Flask):
    """Flask, logging unexpected errors by route pattern: request paths can carry one-time link tokens.

    Uploaded files are spooled encrypted (`IntakeRequest`).
    """

    request_class = IntakeRequest

    def log_exception(self, exc_info: Any) -> None:
        from flask import g, request

        rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        self.logger.error(
            "unhandled error", exc_info=exc_info,
            extra={"route": rule, "method": request.method, "request_id": g.get("request_id")},
        )


class StartupError(Exception):
    """The service cannot start: bad configuration, or a keyring that cannot be opened. The message says why."""


def passphrase_source(settings: Mapping[str, Any]) -> dict[str, str]:
    """The configured passphrase settings, in the form `read_passphrase` takes (empty when none is configured)."""
    source: dict[str, str] = {}
    if settings["KEYRING_PASSPHRASE"]:
        source[PASSPHRASE_ENV] = settings["KEYRING_PASSPHRASE"]
    if settings["KEYRING_PASSPHRASE_FILE"]:
        source[PASSPHRASE_FILE_ENV] = settings["KEYRING_PASSPHRASE_FILE"]
    return source


def open_keyring(settings: Mapping[str, Any]) -> Keyring:
    """Unseal the keyring named in `settings` with the configured passphrase."""
    return Keyring.open(Path(settings["KEYRING_PATH"]), read_passphrase(passphrase_source(settings)))


def forget_environment_passphrase(config: Mapping[str, Any] | None) -> None:
    """Remove `INTAKE_KEYRING_PASSPHRASE` from the process environment once it has unsealed the keyring.

    Worker processes forked later (gunicorn `--preload`) and any subprocess would otherwise inherit it. Only a
    passphrase that came from the environment is removed: when `config` supplied one, that one was used and the
    environment is left as it is.
    """
    if config is not None and "KEYRING_PASSPHRASE" in config:
        return
    os.environ.pop(PASSPHRASE_ENV, None)


def create_app(config: Mapping[str, Any] | None = None, *, keyring: Keyring | None = None) -> Flask:
    """Build the application.

    `config` overrides settings by name (as in `config.settings`); `keyring` supplies an already-open keyring
    (tests and the CLI use it to avoid unsealing twice). Raises `StartupError` with a clear message when the
    configuration is invalid or the keyring cannot be opened.
    """
    try:
        settings = load_settings(overrides=config)
    except ConfigError as exc:
        raise StartupError(f"Configuration error: {exc}") from None
    if keyring is None:
        try:
            keyring = open_keyring(settings)
        except KeyringError as exc:
            raise StartupError(f"Keyring error: {exc}") from None
        forget_environment_passphrase(config)
    try:
        for purpose in PURPOSES:  # a keyring from an older release fails here, not at someone's sign-in
            keyring.subkey(purpose)
    except KeyringError as exc:
        raise StartupError(f"Keyring error: {exc}") from None

    app = IntakeFlask(__name__, instance_path=settings["INSTANCE_PATH"], instance_relative_config=False)
    app.config.update(settings)
    # The passphrase is needed only to unseal; it does not stay in the configuration.
    app.config["KEYRING_PASSPHRASE"] = ""
    app.config.update(
        SECRET_KEY=keyring.subkey("session-secret", label="flask"),
        MAX_CONTENT_LENGTH=settings["MAX_REQUEST_BYTES"],
        MAX_FORM_MEMORY_SIZE=settings["MAX_REQUEST_BYTES"],
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session, which has its own timeouts
        # Flask-WTF's strict mode wants a same-origin Referer on HTTPS, which `Referrer-Policy: no-referrer` means
        # browsers never send; `refuse_cross_site_requests` checks Sec-Fetch-Site and Origin instead.
        WTF_CSRF_SSL_STRICT=False,
        PREFERRED_URL_SCHEME="https" if settings["SECURE_COOKIES"] else "http",
    )
    app.extensions["intake.keyring"] = keyring
    if settings["TRUSTED_PROXY_HOPS"]:
        hops = settings["TRUSTED_PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    from intake.core.checks import configuration_warnings
    from intake.core.errors import install_error_handlers
    from intake.core.i18n import init_i18n
    from intake.core.limits import init_limits
    from intake.core.logging import configure_logging
    from intake.core.sessions import ServerSessionInterface
    from intake.core.web import install_pipeline, refuse_cross_site_requests, start_request

    configure_logging(settings["LOG_LEVEL"])
    for warning in configuration_warnings(settings):
        app.logger.warning("configuration: %s", warning)
    app.before_request(start_request)
    db.init_app(app)
    app.session_interface = ServerSessionInterface(app)
    csrf.init_app(app)
    app.before_request(refuse_cross_site_requests)
    init_i18n(app)
    init_limits(app)
    install_error_handlers(app)
    app.jinja_env.add_extension("jinja2.ext.do")
    app.jinja_env.globals["Permission"] = Permission
    app.jinja_env.filters["role_titles"] = role_titles
    _register_blueprints(app)
    install_pipeline(app)

    from intake.cli import register_commands

    register_commands(app)
    return app


def _register_blueprints(app: Flask) -> None:
    from intake.accounts.blueprint import bp as accounts_bp
    from intake.admin.blueprint import bp as admin_bp
    from intake.api import init_api
    from intake.audit.blueprint import bp as audit_bp
    from intake.cases.blueprint import bp as cases_bp
    from intake.exports.blueprint import bp as exports_bp
    from intake.home.blueprint import bp as home_bp
    from intake.interviews.blueprint import bp as interviews_bp
    from intake.recipients.blueprint import bp as recipients_bp
    from intake.review.blueprint import bp as review_bp
    from intake.withdrawals.blueprint import bp as withdrawals_bp

    app.register_blueprint(home_bp)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(audit_bp)
    app.register_blueprint(interviews_bp)
    app.register_blueprint(review_bp)
    app.register_blueprint(withdrawals_bp)
    app.register_blueprint(recipients_bp)
    app.register_blueprint(cases_bp)
    app.register_blueprint(exports_bp)
    init_api(app, csrf)
