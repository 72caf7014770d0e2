"""Languages of the interface: English, Armenian, Russian and Azerbaijani.

The Armenian, Russian and Azerbaijani catalogues carry a header and per-entry comments saying they still need
review by a native speaker; the interface says so too, next to the language switch.
"""

from __future__ import annotations

from flask import Flask, g, has_request_context, request, session
from flask_babel import Babel
from sqlalchemy.exc import SQLAlchemyError

from config.settings import LOCALES

LANGUAGE_NAMES = {"en": "English", "hy": "Հայերեն", "ru": "Русский", "az": "Azərbaycanca"}
# Catalogues not yet reviewed by a native speaker.
NEEDS_NATIVE_REVIEW = frozenset({"hy", "ru", "az"})

babel = Babel()


def select_locale() -> str:
    if not has_request_context():  # CLI commands: their refusal messages use the default language
        from flask import current_app

        return str(current_app.config["DEFAULT_LOCALE"])
    chosen = session.get("lang")
    if chosen in LOCALES:
        return str(chosen)
    account = g.get("account")
    if account is not None:
        try:
            locale = account.locale  # loads it again after a rollback
        except SQLAlchemyError:  # the database went away mid-request: the error page still needs a language
            locale = None
        if locale in LOCALES:
            return str(locale)
    from flask import current_app

    return request.accept_languages.best_match(LOCALES) or current_app.config["DEFAULT_LOCALE"]


def init_i18n(app: Flask) -> None:
    app.config["BABEL_DEFAULT_LOCALE"] = "en"
    app.config["BABEL_DEFAULT_TIMEZONE"] = "UTC"
    babel.init_app(app, locale_selector=select_locale)

    @app.context_processor
    def language_context() -> dict[str, object]:
        from flask_babel import get_locale

        return {
            "current_locale": str(get_locale() or "en"),
            "language_names": LANGUAGE_NAMES,
            "needs_native_review": NEEDS_NATIVE_REVIEW,
        }
