"""URL rules of the export pages of a case, under /cases/<case_id>/exports."""

from flask import Blueprint

from intake.exports import controllers as c

bp = Blueprint("exports", __name__, url_prefix="/cases/<int:case_id>/exports")
bp.context_processor(c.page_helpers)

bp.add_url_rule("", "prepare", c.prepare, methods=["GET"])
bp.add_url_rule("", "build", c.build, methods=["POST"])
bp.add_url_rule("/<int:export_id>", "export", c.export)
bp.add_url_rule("/<int:export_id>/download", "download", c.download)
bp.add_url_rule("/<int:export_id>/cancel", "cancel", c.cancel, methods=["POST"])
