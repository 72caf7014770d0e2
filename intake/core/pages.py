"""Helpers shared by the server-rendered pages."""

from __future__ import annotations

from typing import Any

from flask import render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import Optional, Regexp
from wtforms.widgets import HiddenInput


def render_form(template: str, form: Any, status: int | None = None, **context: Any) -> tuple[str, int]:
    """Render a form page: 422 when it was submitted and refused, so tools and tests can tell, else 200."""
    if status is None:
        refused = request.method == "POST" and (form.errors or context.get("form_error"))
        status = 422 if refused else 200
    return render_template(template, form=form, **context), status


def attach_error(form: Any, message: str, field: str | None = None) -> None:
    """Show an operation's refusal next to the field it concerns, or above the form."""
    target = getattr(form, field, None) if field else None
    if target is not None:
        target.errors = [*target.errors, message]
    else:
        form.form_errors.append(message)


class PagedSearchForm(FlaskForm):
    """A search sent by GET and shown a page at a time, newest first: `before` is set by the "older" link, never
    typed (the id or sequence number the previous page ended at). Subclasses add the filters."""

    class Meta:
        # A search changes nothing its caller chose, and a GET address must be one that can be bookmarked and shared.
        csrf = False

    before = StringField(widget=HiddenInput(), validators=[
        Optional(), Regexp(r"[1-9][0-9]{0,17}\Z", message=_l("This page of results does not exist."))])

    def validate(self, extra_validators: Any = None) -> bool:
        valid: bool = super().validate(extra_validators)
        if self.before.errors:  # nobody fills this field in: say so above the form instead of next to it
            self.form_errors.extend(self.before.errors)
            self.before.errors = []
        return valid

    @property
    def continue_from(self) -> int | None:
        return int(self.before.data) if self.before.data else None
