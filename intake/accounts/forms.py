"""Forms of the sign-in, enrolment and self-service pages (CSRF through Flask-WTF)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import IntegerField, PasswordField, StringField
from wtforms.validators import EqualTo, InputRequired, Length, NumberRange


def required() -> InputRequired:
    return InputRequired(message=_l("Fill in this field."))


def at_most(n: int) -> Length:
    return Length(max=n, message=_l("Use at most %(max)d characters."))


CODE_HELP = _l("The 6-digit code your authenticator app shows now, or one of your recovery codes.")


class SignInForm(FlaskForm):
    username = StringField(_l("Username"), validators=[required(), at_most(64)],
                           render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"})
    password = PasswordField(_l("Password"), validators=[required(), at_most(256)],
                             render_kw={"autocomplete": "current-password"})
    code = StringField(_l("Two-factor code"), validators=[required(), at_most(16)], description=CODE_HELP,
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})


class ChoosePasswordForm(FlaskForm):
    password = PasswordField(
        _l("New password"), validators=[required(), at_most(256)],
        description=_l("At least 12 characters. A phrase of several unrelated words is strong and easy to "
                       "remember."),
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        _l("Repeat the password"),
        validators=[required(), EqualTo("password", message=_l("The two passwords are not the same."))],
        render_kw={"autocomplete": "new-password"},
    )


class SetupForm(ChoosePasswordForm):
    username = StringField(
        _l("Username"), validators=[required(), at_most(64)],
        description=_l("Lowercase Latin letters, digits, dots, hyphens or underscores."),
        render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"},
    )


class ConfirmPasswordForm(FlaskForm):
    password = PasswordField(_l("Your current password"), validators=[required(), at_most(256)],
                             render_kw={"autocomplete": "current-password"})


class CodeForm(FlaskForm):
    code = StringField(_l("Two-factor code"), validators=[required(), at_most(16)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})


class ChangePasswordForm(ChoosePasswordForm):
    current_password = PasswordField(_l("Current password"), validators=[required(), at_most(256)],
                                     render_kw={"autocomplete": "current-password"})


class TokenForm(FlaskForm):
    name = StringField(_l("What the token is for"), validators=[required(), at_most(100)])
    expires_in_days = IntegerField(
        _l("Valid for (days)"), default=90,
        validators=[required(), NumberRange(min=1, max=365, message=_l("Choose between 1 and 365 days."))],
    )


class ButtonForm(FlaskForm):
    """A form with nothing but its CSRF token, for buttons that change state."""
