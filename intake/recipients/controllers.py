"""Handlers of the recipients pages: the list (with the public key case files are signed with), registering and
editing a recipient (each after a fresh two-factor code), deactivating and reactivating one.

A recipient's short name is fixed once it is registered: consent records name organisations by it when a person
refuses to let one have their testimony, so renaming it would let case files reach an organisation that was refused.
Deactivating asks for no fresh code, as it only stops new case files and must stay quick when a recipient's key is
compromised; reactivating does. Nothing here reads testimony.
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, current_app, flash, g, redirect, render_template, url_for
from flask_babel import lazy_gettext as _l

from intake.accounts.forms import ButtonForm
from intake.consents.operations import InputRefused
from intake.core.crypto import current_keyring
from intake.core.db import db
from intake.core.pages import attach_error, render_form
from intake.core.security import Permission, requires, requires_step_up
from intake.exports.signing import public_key_text
from intake.recipients import operations as ops
from intake.recipients.forms import NewRecipientForm, RecipientForm, category_label
from intake.recipients.models import Recipient

# The order the form shows its fields in, for the error summary.
FIELD_ORDER = ("name", "key", "category", "country", "is_authority", "agreement_reference", "agreement_date",
               "contact", "age_recipients")
SIGNING_KEY_FILE = "minisign.pub"


def page_helpers() -> dict[str, Any]:
    """What the recipients templates use to name stored values in the reader's language."""
    return {"category_label": category_label, "field_order": FIELD_ORDER}


def _recipient_or_404(recipient_id: int) -> Recipient:
    recipient = db.session.get(Recipient, recipient_id)
    if recipient is None:
        abort(404)
    return recipient


def _show_refusal(form: Any, refused: InputRefused) -> None:
    for name, messages in refused.problems.items():
        for message in messages:
            attach_error(form, str(message), name or None)


def _to_list() -> Any:
    return redirect(url_for("recipients.list_recipients"), code=303)


@requires(Permission.MANAGE_RECIPIENTS)
def list_recipients() -> Any:
    return render_template("recipients/list.html", recipients=ops.all_recipients(), button=ButtonForm(),
                           signing_key=public_key_text(current_keyring()))


@requires(Permission.MANAGE_RECIPIENTS)
def signing_key() -> Any:
    """The public key case files are signed with, as the `minisign.pub` file `minisign -V -p` reads."""
    response = Response(public_key_text(current_keyring()), mimetype="text/plain")
    response.headers["Content-Disposition"] = f'attachment; filename="{SIGNING_KEY_FILE}"'
    return response


@requires(Permission.MANAGE_RECIPIENTS)
@requires_step_up
def new() -> Any:
    form = NewRecipientForm()
    if form.validate_on_submit():
        try:
            recipient = ops.register(form.to_input(form.key.data or ""), actor=g.account)
        except InputRefused as refused:
            _show_refusal(form, refused)
        else:
            flash(str(_l("%(name)s is registered: case files can now be built for it.", name=recipient.name)),
                  "success")
            return _to_list()
    return render_form("recipients/form.html", form, recipient=None)


@requires(Permission.MANAGE_RECIPIENTS)
@requires_step_up
def edit(recipient_id: int) -> Any:
    recipient = _recipient_or_404(recipient_id)
    form = RecipientForm()
    if not form.is_submitted():
        form.fill_from(recipient)
    if form.validate_on_submit():
        try:
            changed = ops.update(recipient, form.to_input(recipient.key), actor=g.account)
        except InputRefused as refused:
            _show_refusal(form, refused)
        else:
            if changed:
                flash(str(_l("The details of %(name)s are saved.", name=recipient.name)), "success")
            else:
                flash(str(_l("Nothing was changed for %(name)s.", name=recipient.name)), "info")
            return _to_list()
    return render_form("recipients/form.html", form, recipient=recipient)


def _button_action(recipient_id: int) -> Recipient:
    if not ButtonForm().validate_on_submit():
        abort(400)
    return _recipient_or_404(recipient_id)


# No step-up: deactivating only stops new case files, and must stay quick when a recipient's key is compromised.
@requires(Permission.MANAGE_RECIPIENTS)
def deactivate(recipient_id: int) -> Any:
    recipient = _button_action(recipient_id)
    ops.set_active(recipient, False, actor=g.account, config=current_app.config)
    flash(str(_l("%(name)s is deactivated: no new case file can be built for it.", name=recipient.name)),
          "success")
    return _to_list()


@requires(Permission.MANAGE_RECIPIENTS)
@requires_step_up
def reactivate(recipient_id: int) -> Any:
    recipient = _button_action(recipient_id)
    ops.set_active(recipient, True, actor=g.account, config=current_app.config)
    flash(str(_l("%(name)s can receive case files again.", name=recipient.name)), "success")
    return _to_list()
