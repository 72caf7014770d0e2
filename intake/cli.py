"""Command line: `intake ...` (also `flask --app app ...`). Commands call the same operations as the web pages and
commit once at the end."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import FlaskGroup, routes_command, shell_command, with_appcontext

from config import ConfigError, load_settings
from intake.core.checks import configuration_warnings
from intake.core.db import db
from intake.core.keys import PASSPHRASE_FILE_ENV, Keyring, KeyringError, read_passphrase
from intake.core.keys import create_passphrase_file as create_passphrase_file_at


def _create_app() -> Flask:
    from intake import StartupError, create_app

    try:
        return create_app()
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None


def main() -> None:
    # Without Flask's development server command: the service is served by gunicorn (`make run`).
    cli = FlaskGroup(create_app=_create_app, add_default_commands=False, add_version_option=False,
                     load_dotenv=False, help="Testimony intake service.")
    cli.add_command(routes_command)
    cli.add_command(shell_command)
    cli.add_command(keys_group)
    cli.main(prog_name="intake")


def register_commands(app: Flask) -> None:
    for group in (db_group, users_group, tokens_group):
        app.cli.add_command(group)
    app.cli.add_command(setup_link)
    app.cli.add_command(doctor)
    app.cli.add_command(keys_group)


def _settings() -> dict[str, Any]:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(f"Configuration error: {exc}") from None


# ---------------------------------------------------------------------------------------------------------------
# Keys


@click.group("keys", help="The sealed keyring.")
def keys_group() -> None:
    pass


@keys_group.command("init", help="Create the keyring if it does not exist yet.")
@click.option("--create-passphrase-file", is_flag=True,
              help="If INTAKE_KEYRING_PASSPHRASE_FILE names a file that does not exist, create it with a random "
                   "passphrase (mode 0600). For development: in production keep the passphrase off the server's "
                   "disk.")
def keys_init(create_passphrase_file: bool) -> None:
    from intake import open_keyring

    settings = _settings()
    path = Path(settings["KEYRING_PATH"])
    if path.exists():
        try:
            open_keyring(settings)
        except KeyringError as exc:
            raise click.ClickException(f"Keyring error: {exc}") from None
        click.echo(f"Keyring {path} exists and opens with the configured passphrase.")
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    passphrase_file = Path(settings["KEYRING_PASSPHRASE_FILE"]) if settings["KEYRING_PASSPHRASE_FILE"] else None
    if settings["KEYRING_PASSPHRASE"]:
        passphrase = settings["KEYRING_PASSPHRASE"]
    elif passphrase_file is not None and passphrase_file.exists():
        passphrase = read_passphrase({PASSPHRASE_FILE_ENV: str(passphrase_file)})
    elif passphrase_file is not None and create_passphrase_file:
        passphrase = create_passphrase_file_at(passphrase_file)
        click.echo(f"Created a random keyring passphrase in {passphrase_file} (mode 0600). This is for "
                   "development: in production supply the passphrase from outside the server's disk.")
    elif passphrase_file is not None:
        raise click.ClickException(f"The keyring passphrase file {passphrase_file} does not exist.")
    else:
        raise click.ClickException("Set INTAKE_KEYRING_PASSPHRASE or INTAKE_KEYRING_PASSPHRASE_FILE.")
    try:
        Keyring.create(path, passphrase)
    except KeyringError as exc:
        raise click.ClickException(f"Keyring error: {exc}") from None
    click.echo(f"Created the sealed keyring {path}. Back it up apart from the database: without it and its "
               "passphrase, nothing encrypted can ever be read again.")


# ---------------------------------------------------------------------------------------------------------------
# Database


@click.group("db", help="Database schema migrations.")
def db_group() -> None:
    pass


@db_group.command("upgrade", help="Apply migrations up to REVISION (default: head).")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    from intake.core import migrate

    migrate.upgrade(db.engine, revision)
    click.echo(f"Database at {', '.join(migrate.current_revisions(db.engine)) or 'base'}.")
    if migrate.is_at_head(db.engine):
        from intake.accounts.operations import reseal_legacy_secrets
        from intake.core.crypto import current_keyring
        from intake.core.crypto.datakeys import register_keyring_versions

        def finish() -> int:
            register_keyring_versions(current_keyring())
            return reseal_legacy_secrets()

        moved = _commit_or_fail(finish)
        if moved:
            click.echo(f"Moved {moved} two-factor secret(s) onto their accounts' data keys.")


@db_group.command("downgrade", help="Revert migrations down to REVISION.")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision: str) -> None:
    from intake.core import migrate

    migrate.downgrade(db.engine, revision)
    click.echo(f"Database at {', '.join(migrate.current_revisions(db.engine)) or 'base'}.")


@db_group.command("current", help="Show the revision the database is at.")
@with_appcontext
def db_current() -> None:
    from intake.core import migrate

    click.echo(", ".join(migrate.current_revisions(db.engine)) or "base")


# ---------------------------------------------------------------------------------------------------------------
# Accounts


def _commit_or_fail(action: Any) -> Any:
    from intake.accounts.operations import AccountError

    try:
        result = action()
        db.session.commit()
    except AccountError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    except BaseException:
        db.session.rollback()
        raise
    return result


@click.command("setup-link", help="Print a one-time link that creates the first admin (only while no account "
                                  "exists).")
@click.option("--if-no-accounts", is_flag=True, help="Say nothing and succeed when accounts already exist.")
@with_appcontext
def setup_link(if_no_accounts: bool) -> None:
    from intake.accounts import operations as ops

    if ops.setup_is_complete():
        if if_no_accounts:
            return
        raise click.ClickException("Accounts exist already; an admin invites people from the admin pages or with "
                                   "`intake users invite`.")
    link = _commit_or_fail(ops.issue_setup_link)
    minutes = current_app.config["SETUP_LINK_MINUTES"]
    click.echo("")
    click.echo("No account exists yet. Open this one-time link to create the first admin")
    click.echo(f"(it works once and expires in {minutes} minutes; run `intake setup-link` for a new one):")
    click.echo("")
    click.echo(f"    {link.url}")
    click.echo("")


@click.group("users", help="Accounts.")
def users_group() -> None:
    pass


@users_group.command("invite", help="Create an account and print its one-time enrolment link.")
@click.option("--username", required=True)
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice(["interviewer", "reviewer", "legal", "coordinator", "auditor", "admin"]))
@with_appcontext
def users_invite(username: str, roles: tuple[str, ...]) -> None:
    from intake.accounts import operations as ops

    link = _commit_or_fail(lambda: ops.invite_account(username=username, roles=list(roles), actor=None))
    hours = current_app.config["INVITATION_HOURS"]
    click.echo(f"Enrolment link for {link.invitation.account.username} (works once, expires in {hours} hours):")
    click.echo(link.url)


@users_group.command("list", help="List accounts and their roles.")
@with_appcontext
def users_list() -> None:
    from intake.accounts.models import Account

    for account in db.session.scalars(sa.select(Account).order_by(Account.username)):
        state = "active" if account.can_sign_in else ("deactivated" if not account.is_active else "not enrolled")
        click.echo(f"{account.username:24} {','.join(account.role_names):28} {state}")


@click.group("tokens", help="Personal API tokens.")
def tokens_group() -> None:
    pass


@tokens_group.command("create", help="Create a personal API token for an account and print it once.")
@click.option("--username", required=True)
@click.option("--name", default="command line", show_default=True)
@click.option("--days", type=click.IntRange(1, 365), default=None, help="Lifetime (default from configuration).")
@with_appcontext
def tokens_create(username: str, name: str, days: int | None) -> None:
    from intake.accounts import operations as ops
    from intake.accounts.models import Account

    account = db.session.scalar(sa.select(Account).where(Account.username == ops.normalise_username(username)))
    if account is None or not account.can_sign_in:
        raise click.ClickException(f"No enrolled, active account named {username!r}.")
    _token, plaintext = _commit_or_fail(lambda: ops.create_api_token(account, name=name, expires_in_days=days))
    click.echo("The token is shown only this once; store it in a password manager:", err=True)
    click.echo(plaintext)


# ---------------------------------------------------------------------------------------------------------------
# Doctor


@click.command("doctor", help="Check the database, migrations, keyring and configuration.")
@with_appcontext
def doctor() -> None:
    from intake.core import migrate

    config = current_app.config
    problems = 0
    try:
        db.session.execute(sa.text("SELECT 1"))
        click.echo(f"ok       database reachable ({db.engine.dialect.name})")
    except sa.exc.SQLAlchemyError as exc:
        click.echo(f"ERROR    database unreachable: {exc.__class__.__name__}")
        problems += 1
    else:
        current, heads = migrate.current_revisions(db.engine), migrate.head_revisions()
        if set(current) == set(heads):
            click.echo(f"ok       migrations at head ({', '.join(heads)})")
        else:
            click.echo(f"ERROR    migrations not at head: database at {', '.join(current) or 'base'}, code at "
                       f"{', '.join(heads)}; run `intake db upgrade`")
            problems += 1
    click.echo(f"ok       keyring {config['KEYRING_PATH']} opened (KEK versions "
               f"{', '.join(map(str, current_app.extensions['intake.keyring'].kek_versions))})")
    for warning in configuration_warnings(config):
        click.echo(f"WARNING  {warning}")
    sys.exit(1 if problems else 0)
