"""Helpers shared by the server-rendered pages."""

from __future__ import annotations

from typing import Any

from flask import render_template, request


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
