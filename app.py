"""WSGI entry point: `gunicorn app:app`. A configuration or keyring problem stops start-up with its message."""

import sys

from intake import StartupError, create_app

try:
    app = create_app()
except StartupError as exc:
    print(f"intake: {exc}", file=sys.stderr)
    # 4 is gunicorn's "application could not be loaded": the arbiter stops instead of restarting workers forever.
    raise SystemExit(4) from None
