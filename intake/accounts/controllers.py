"""Request handlers for sign-in, enrolment, step-up and the person's own account. Thin: parse the form, call an
operation, render. The pipeline commits."""

from __future__ import annotations

import time
from typing import Any

from flask import (
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import format_datetime
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from config.settings import LOCALES
from intake.accounts import operations as ops
from intake.accounts import totp
from intake.accounts.forms import (
    ButtonForm,
    ChangePasswordForm,
    ChoosePasswordForm,
    CodeForm,
    ConfirmPasswordForm,
    SetupForm,
    SignInForm,
    TokenForm,
)
from intake.accounts.models import Invitation, InvitationKind
from intake.core.db import utcnow, writes_on_get
from intake.core.limits import account_name_key, limiter, per_account, per_address, session_account_key
from intake.core.pages import attach_error, render_form
from intake.core.security import Permission, public, requires, requires_step_up
from intake.core.sessions import renew_session_id
from intake.core.web import safe_next

GENERIC_SIGN_IN_ERROR = _l("The username, password or code is not correct.")


def start_signed_in_session(account: Any) -> None:
    """Begin a fresh session for `account` under a new id (session fixation cannot carry over)."""
    lang = session.get("lang")
    session.clear()
    renew_session_id()
    session["account_id"] = account.id
    session["epoch"] = account.auth_epoch
    if lang:
        session["lang"] = lang
        account.locale = lang  # the language chosen on the sign-in page stays the person's choice


# ---------------------------------------------------------------------------------------------------------------
# Sign-in and sign-out


@public
@limiter.limit(per_address, methods=["POST"])
@limiter.limit(per_account, methods=["POST"], key_func=account_name_key)
def sign_in() -> Any:
    if g.account is not None and request.method == "GET":
        return redirect(url_for("home.index"))
    form = SignInForm()
    context: dict[str, Any] = {}
    if form.validate_on_submit():
        result = ops.authenticate(form.username.data or "", form.password.data or "", form.code.data or "")
        if result.account is not None:
            start_signed_in_session(result.account)
            if result.used_recovery_code:
                flash(str(_l("You signed in with a recovery code; it cannot be used again. %(n)d remain.",
                             n=ops.unused_recovery_code_count(result.account))), "warning")
            return redirect(safe_next(request.args.get("next"), url_for("home.index")), code=303)
        form.password.data = ""
        form.code.data = ""
        if result.locked_until is not None:
            context["form_error"] = _l(
                "Too many failed attempts for this account. You may try again after %(when)s.",
                when=format_datetime(result.locked_until, "short") + " UTC",
            )
        elif result.deactivated:
            context["form_error"] = _l("This account has been deactivated. Ask an administrator.")
        else:
            context["form_error"] = GENERIC_SIGN_IN_ERROR
    return render_form("accounts/sign_in.html", form, **context)


@requires(Permission.OWN_ACCOUNT)
def sign_out() -> Response:
    form = ButtonForm()
    if not form.validate_on_submit():
        abort(400)
    ops.record_sign_out(g.account)
    session.clear()
    response = redirect(url_for("accounts.sign_in"), code=303)
    response.headers["Clear-Site-Data"] = '"cache", "cookies", "storage"'
    return response


# ---------------------------------------------------------------------------------------------------------------
# One-time links and enrolment


def _open(token: str, kind: InvitationKind | None) -> Any:
    """GET shows what the link is for and a button; only pressing it (POST) spends the link, so that mail
    scanners and link previews that fetch the address do not use it up."""
    form = ButtonForm()
    try:
        invitation = ops.check_link(token, kind=kind)
        if request.method == "GET":
            username = invitation.account.username if invitation.account else None
            return render_template("accounts/link_landing.html", form=form, kind=invitation.kind,
                                   username=username)
        if not form.validate_on_submit():
            abort(400)
        invitation = ops.open_link(token, kind=kind)
    except ops.AccountError as exc:
        return render_template("message.html", title=_l("This link cannot be used"), message=exc.message), 410
    session.clear()
    renew_session_id()
    session["enrolment"] = invitation.id
    # Move off the address that carries the token, so it stays out of history and is not reloaded.
    return redirect(url_for("accounts.enrol_password"), code=303)


@public
@limiter.limit(per_address)
def open_setup_link(token: str) -> Any:
    return _open(token, InvitationKind.SETUP)


@public
@limiter.limit(per_address)
def open_enrolment_link(token: str) -> Any:
    return _open(token, None)


def _current_enrolment() -> Invitation:
    invitation = ops.pending_invitation(session.get("enrolment"))
    if invitation is None:
        abort(404, description=_l("There is no enrolment in progress here. Open the link you were given again, "
                                   "or ask an administrator for a new one."))
    return invitation


@public
@limiter.limit(per_address, methods=["POST"])
@limiter.limit(per_account, methods=["POST"], key_func=session_account_key)
def enrol_password() -> Any:
    invitation = _current_enrolment()
    kind = InvitationKind(invitation.kind)
    form: Any
    if kind is InvitationKind.SETUP and invitation.account is None:
        form = SetupForm()
    elif kind is InvitationKind.RESET_MFA:
        form = ConfirmPasswordForm()
    else:
        form = ChoosePasswordForm()
    if form.validate_on_submit():
        try:
            ops.set_enrolment_credentials(
                invitation, password=form.password.data or "", username=getattr(form, "username", None) and
                form.username.data,
            )
        except ops.AccountError as exc:
            attach_error(form, exc.message, exc.field)
        else:
            session["enrolment_password_ok"] = invitation.id
            return redirect(url_for("accounts.enrol_authenticator"), code=303)
    username = invitation.account.username if invitation.account else None
    return render_form("accounts/enrol_password.html", form, invitation=invitation, kind=kind.value,
                        username=username)


@public
@writes_on_get  # showing the page creates the authenticator secret
@limiter.limit(per_address, methods=["POST"])
@limiter.limit(per_account, methods=["POST"], key_func=session_account_key)
def enrol_authenticator() -> Any:
    invitation = _current_enrolment()
    account = invitation.account
    if account is None or session.get("enrolment_password_ok") != invitation.id:
        return redirect(url_for("accounts.enrol_password"), code=303)
    form = CodeForm()
    # The secret stays the same until confirmed, so reloading the page does not undo a scan already made.
    secret = ops.start_authenticator(account) if account.totp_secret is None else ops.authenticator_secret(account)
    if form.validate_on_submit():
        try:
            ops.confirm_authenticator(invitation, form.code.data or "")
        except ops.AccountError as exc:
            attach_error(form, exc.message, exc.field)
        else:
            start_signed_in_session(account)
            flash(str(_l("Your account is ready. Keep your authenticator app safe: you need it every time you "
                         "sign in.")), "success")
            return redirect(url_for("accounts.recovery_codes_offer"), code=303)
    uri = totp.provisioning_uri(secret, account.username, issuer=current_app.config["TOTP_ISSUER"])
    form.code.data = ""
    qr = totp.qr_svg(uri, title=str(_l("QR code to scan with your authenticator app")))
    return render_form("accounts/enrol_authenticator.html", form, secret=_group(secret), qr_svg=qr,
                        username=account.username)


def _group(secret: str) -> str:
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


# ---------------------------------------------------------------------------------------------------------------
# Step-up


@requires(Permission.OWN_ACCOUNT)
@limiter.limit(per_address, methods=["POST"])
@limiter.limit(per_account, methods=["POST"], key_func=session_account_key)
def step_up() -> Any:
    form = CodeForm()
    next_url = safe_next(request.args.get("next"), url_for("home.index"))
    if form.validate_on_submit():
        if ops.step_up(g.account, form.code.data or ""):
            session["stepped_up_at"] = time.time()
            return redirect(next_url, code=303)
        form.code.errors = [str(_l("That code is not correct, or it was used already. Wait for the next code."))]
    form.code.data = ""
    return render_form("accounts/step_up.html", form, next_url=next_url)


# ---------------------------------------------------------------------------------------------------------------
# The person's own account


@requires(Permission.OWN_ACCOUNT)
def account_overview() -> Any:
    return render_template(
        "accounts/account.html",
        tokens=ops.api_tokens_of(g.account),
        recovery_left=ops.unused_recovery_code_count(g.account),
        button=ButtonForm(),
        now=utcnow(),
    )


@requires(Permission.OWN_ACCOUNT)
@limiter.limit(per_address, methods=["POST"])
def change_password() -> Any:
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            ops.change_password(g.account, current_password=form.current_password.data or "",
                                new_password=form.password.data or "")
        except ops.AccountError as exc:
            attach_error(form, exc.message, exc.field)
        else:
            session.clear()
            flash(str(_l("Your password has been changed and you have been signed out everywhere. Sign in with "
                         "the new password.")), "success")
            return redirect(url_for("accounts.sign_in"), code=303)
    return render_form("accounts/change_password.html", form)


@requires(Permission.OWN_ACCOUNT)
def recovery_codes_offer() -> Any:
    return render_template("accounts/recovery_offer.html", button=ButtonForm(),
                           remaining=ops.unused_recovery_code_count(g.account))


@requires(Permission.OWN_ACCOUNT)
@requires_step_up
def create_recovery_codes() -> Any:
    if not ButtonForm().validate_on_submit():
        abort(400)
    codes = ops.create_recovery_codes(g.account)
    return render_template("accounts/recovery_codes.html", codes=codes)


@requires(Permission.OWN_ACCOUNT)
@requires_step_up
def create_token() -> Any:
    form = TokenForm()
    if request.method == "GET" and not form.expires_in_days.data:
        form.expires_in_days.data = current_app.config["API_TOKEN_DEFAULT_DAYS"]
    if form.validate_on_submit():
        try:
            token, plaintext = ops.create_api_token(g.account, name=form.name.data or "",
                                                    expires_in_days=form.expires_in_days.data)
        except ops.AccountError as exc:
            attach_error(form, exc.message, exc.field)
        else:
            return render_template("accounts/token_created.html", token=token, plaintext=plaintext)
    return render_form("accounts/token_form.html", form)


@requires(Permission.OWN_ACCOUNT)
def revoke_token(token_id: int) -> Response:
    if not ButtonForm().validate_on_submit():
        abort(400)
    token = ops.own_api_token(g.account, token_id)
    if token is None:
        abort(404)
    ops.revoke_api_token(token, actor=g.account)
    flash(str(_l("The token has been revoked.")), "success")
    return redirect(url_for("accounts.account_overview"), code=303)


# ---------------------------------------------------------------------------------------------------------------
# Language


@public
def choose_language() -> Response:
    if not ButtonForm().validate_on_submit():
        abort(400)
    lang = request.form.get("lang", "")
    if lang in LOCALES:
        session["lang"] = lang
        if g.account is not None:
            g.account.locale = lang
    return redirect(safe_next(request.form.get("next"), url_for("home.index")), code=303)
