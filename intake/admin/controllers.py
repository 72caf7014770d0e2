"""Handlers of the account administration pages."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l

from intake.accounts import operations as ops
from intake.accounts.forms import ButtonForm
from intake.accounts.models import Account
from intake.admin.forms import ROLE_LABELS, InviteForm, RolesForm
from intake.core.db import db
from intake.core.pages import attach_error, render_form
from intake.core.security import Permission, requires, requires_step_up


def _account_or_404(account_id: int) -> Account:
    account = db.session.get(Account, account_id)
    if account is None:
        abort(404)
    return account


@requires(Permission.MANAGE_ACCOUNTS)
def list_accounts() -> Any:
    return render_template(
        "admin/accounts.html", accounts=ops.list_accounts(), button=ButtonForm(), role_labels=ROLE_LABELS
    )


@requires(Permission.MANAGE_ACCOUNTS)
@requires_step_up
def invite() -> Any:
    form = InviteForm()
    if form.validate_on_submit():
        try:
            link = ops.invite_account(username=form.username.data or "", roles=form.roles.data or [],
                                      actor=g.account, team=form.team.data)
        except ops.AccountError as exc:
            attach_error(form, exc.message, exc.field)
        else:
            return render_template("admin/link_issued.html", account=link.invitation.account, url=link.url,
                                   expires_at=link.invitation.expires_at, reason="invite")
    return render_form("admin/invite.html", form)


@requires(Permission.MANAGE_ACCOUNTS)
@requires_step_up
def change_roles(account_id: int) -> Any:
    account = _account_or_404(account_id)
    form = RolesForm()
    if request.method == "GET":
        form.roles.data = account.role_names
        form.team.data = account.team or ""
    if form.validate_on_submit():
        try:
            ops.set_roles(account, form.roles.data or [], actor=g.account)
            ops.set_team(account, form.team.data, actor=g.account)
        except ops.AccountError as exc:
            attach_error(form, exc.message, exc.field)
        else:
            flash(str(_l("Roles of %(username)s changed. Their sessions have ended.", username=account.username)),
                  "success")
            return redirect(url_for("admin.list_accounts"), code=303)
    return render_form("admin/roles.html", form, account=account)


def _button_action(account_id: int) -> Account:
    if not ButtonForm().validate_on_submit():
        abort(400)
    return _account_or_404(account_id)


# No step-up: deactivating only takes rights away, and must stay quick when an account is misused.
@requires(Permission.MANAGE_ACCOUNTS)
def deactivate(account_id: int) -> Any:
    account = _button_action(account_id)
    try:
        ops.deactivate(account, actor=g.account)
    except ops.AccountError as exc:
        flash(exc.message, "error")
    else:
        flash(str(_l("%(username)s is deactivated and signed out.", username=account.username)), "success")
    return redirect(url_for("admin.list_accounts"), code=303)


@requires(Permission.MANAGE_ACCOUNTS)
@requires_step_up
def reactivate(account_id: int) -> Any:
    account = _button_action(account_id)
    ops.reactivate(account, actor=g.account)
    flash(str(_l("%(username)s can sign in again.", username=account.username)), "success")
    return redirect(url_for("admin.list_accounts"), code=303)


@requires(Permission.MANAGE_ACCOUNTS)
@requires_step_up
def reset_two_factor(account_id: int) -> Any:
    account = _button_action(account_id)
    try:
        link = ops.reset_two_factor(account, actor=g.account)
    except ops.AccountError as exc:
        flash(exc.message, "error")
        return redirect(url_for("admin.list_accounts"), code=303)
    return render_template("admin/link_issued.html", account=account, url=link.url,
                           expires_at=link.invitation.expires_at, reason="reset")
