"""URL rules of the start page and the health check."""

from flask import Blueprint

from intake.home import controllers as c

bp = Blueprint("home", __name__)

bp.add_url_rule("/", "index", c.index)
bp.add_url_rule("/healthz", "healthz", c.healthz)
