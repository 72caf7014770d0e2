"""Where case files are built (`EXPORT_RUNNER`): in a background thread of the web process that queued the build
(`thread`, the default), by `intake export work` running as a service of its own (`worker`), or before the answer
(`inline`). Each build runs in an application context of its own, after the request that queued it has committed.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flask import Flask, after_this_request, current_app

from intake.core.db import db

log = logging.getLogger("intake.exports")


def run(app: Flask, export_id: int) -> Any:
    """Build one export in a fresh application context (and so a database session of its own)."""
    from intake.exports.operations import build

    with app.app_context():
        try:
            return build(export_id, config=app.config)
        finally:
            db.session.remove()


def schedule(export_id: int) -> None:
    """Have the export built once the current request's transaction has committed."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    runner = app.config["EXPORT_RUNNER"]
    if runner == "worker":
        return

    @after_this_request
    def start(response: Any) -> Any:
        if runner == "inline":
            run(app, export_id)
        else:
            threading.Thread(target=run, args=(app, export_id), name=f"export-{export_id}", daemon=True).start()
        return response


def work(app: Flask, *, once: bool = False, interval: float = 2.0) -> int:
    """Build queued exports one after another, delete expired files and reclaim dead builds; `once` stops when
    nothing is queued. Returns how many were built."""
    import sqlalchemy as sa

    from intake.exports.models import Export, ExportStatus
    from intake.exports.operations import _writing, expire_due, reclaim_stale

    built = 0
    while True:
        with app.app_context():
            with _writing():
                expire_due(config=app.config)
                reclaim_stale()
                db.session.commit()
            queued = db.session.scalar(sa.select(Export.id).where(Export.status == ExportStatus.QUEUED.value)
                                       .order_by(Export.id).limit(1))
            db.session.remove()
        if queued is None:
            if once:
                return built
            time.sleep(interval)
            continue
        if run(app, queued) is not None:
            built += 1
