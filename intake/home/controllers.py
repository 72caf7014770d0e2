"""Start page and health check."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import g, jsonify, render_template

from intake.core.db import db
from intake.core.security import Permission, public, requires


@requires(Permission.OWN_ACCOUNT)
def index() -> Any:
    return render_template("home/index.html", roles=g.account.role_names)


@public
def healthz() -> Any:
    """Liveness and database reachability, with no details an outsider could use."""
    try:
        db.session.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError:
        return jsonify(status="unavailable"), 503
    return jsonify(status="ok")
