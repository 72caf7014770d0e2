"""URL rules of the auditor's pages."""

from flask import Blueprint

from intake.audit import controllers as c

bp = Blueprint("audit", __name__, url_prefix="/audit")
bp.context_processor(c.page_helpers)

bp.add_url_rule("/", "search", c.search)
bp.add_url_rule("/verify", "verify", c.verify, methods=["POST"])
bp.add_url_rule("/records/<target_type>/<target_id>", "record_history", c.record_history)
bp.add_url_rule("/records/<target_type>/<target_id>/extract.json", "record_extract", c.record_extract)
bp.add_url_rule("/checkpoints", "checkpoints", c.checkpoints)
