"""URL rules of the reviewer's pages."""

from flask import Blueprint

from intake.review import controllers as c

bp = Blueprint("review", __name__, url_prefix="/review")
bp.context_processor(c.page_helpers)

bp.add_url_rule("/", "queue", c.queue)
bp.add_url_rule("/records/<int:testimony_id>", "record", c.record)
