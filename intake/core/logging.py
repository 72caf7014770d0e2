"""JSON logs on standard error, one object per line, each with the request id when there is one.

Nothing logs bodies, query strings, passwords, codes or tokens: request lines carry the route rule, not the path.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter


def configure_logging(level: str) -> None:
    root = logging.getLogger("intake")
    if getattr(root, "_intake_configured", False):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", rename_fields={"levelname": "level"})
    )
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    root._intake_configured = True  # type: ignore[attr-defined]
