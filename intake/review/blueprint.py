"""URL rules of the reviewer's pages."""

from flask import Blueprint

from intake.review import controllers as c

bp = Blueprint("review", __name__, url_prefix="/review")
bp.context_processor(c.page_helpers)

bp.add_url_rule("/", "queue", c.queue)
bp.add_url_rule("/records/<int:testimony_id>", "record", c.record)
bp.add_url_rule("/records/<int:testimony_id>/attachments/<int:attachment_id>", "attachment", c.attachment)
bp.add_url_rule("/records/<int:testimony_id>/assessments/<kind>", "assess", c.assess, methods=["POST"])
bp.add_url_rule("/records/<int:testimony_id>/incidents/<int:incident_id>/coding", "code_incident", c.code_incident,
                methods=["POST"])
bp.add_url_rule("/records/<int:testimony_id>/links", "link", c.link, methods=["POST"])
bp.add_url_rule("/records/<int:testimony_id>/links/<int:link_id>/remove", "remove_link", c.remove_link,
                methods=["POST"])
bp.add_url_rule("/records/<int:testimony_id>/identifying", "mark_span", c.mark_span, methods=["POST"])
bp.add_url_rule("/records/<int:testimony_id>/identifying/<int:span_id>/remove", "unmark_span", c.unmark_span,
                methods=["POST"])
bp.add_url_rule("/records/<int:testimony_id>/notes", "add_note", c.add_note, methods=["POST"])
bp.add_url_rule("/overview", "overview", c.overview)
