"""WSGI entry point: `gunicorn app:app`. A configuration or keyring problem stops start-up with its message."""

import sys

from intake import StartupError, create_app

try:
    app = create_app()
except StartupError as exc:
    print(f"intake: {exc}", file=sys.stderr)
    raise SystemExit(1) from None
