"""URL rules of the cases pages, under /cases: a legal team's cases, their members and records."""

from flask import Blueprint

from intake.cases import controllers as c

bp = Blueprint("cases", __name__, url_prefix="/cases")
bp.context_processor(c.page_helpers)

bp.add_url_rule("", "list_cases", c.list_cases, methods=["GET", "POST"])
bp.add_url_rule("/<int:case_id>", "case", c.case)
bp.add_url_rule("/<int:case_id>/members", "add_member", c.add_member, methods=["POST"])
bp.add_url_rule("/<int:case_id>/members/<int:account_id>/remove", "remove_member", c.remove_member,
                methods=["POST"])
bp.add_url_rule("/<int:case_id>/records", "add_record", c.add_record, methods=["POST"])
bp.add_url_rule("/<int:case_id>/records/<int:testimony_id>", "record", c.record)
bp.add_url_rule("/<int:case_id>/records/<int:testimony_id>/remove", "remove_record", c.remove_record,
                methods=["POST"])
bp.add_url_rule("/<int:case_id>/records/<int:testimony_id>/incidents", "add_incident", c.add_incident,
                methods=["POST"])
