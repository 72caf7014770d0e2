"""URL rules of the withdrawal pages: the coordinator's under /coordination, the interviewer's beside their
interviews."""

from flask import Blueprint

from intake.withdrawals import controllers as c

bp = Blueprint("withdrawals", __name__)
bp.context_processor(c.page_helpers)

bp.add_url_rule("/coordination/records", "find_record", c.find_record)
bp.add_url_rule("/coordination/records/<int:testimony_id>", "record", c.record, methods=["GET", "POST"])
bp.add_url_rule("/coordination/records/<int:testimony_id>/erasure", "erase", c.erase, methods=["GET", "POST"])
bp.add_url_rule("/coordination/records/<int:testimony_id>/reidentification", "reidentify", c.reidentify,
                methods=["GET", "POST"])
bp.add_url_rule("/coordination/records/<int:testimony_id>/survivor-copy", "survivor_copy", c.survivor_copy,
                methods=["GET", "POST"])
bp.add_url_rule("/coordination/records/<int:testimony_id>/reviewers", "assign_reviewer", c.assign_reviewer,
                methods=["POST"])
bp.add_url_rule("/coordination/records/<int:testimony_id>/reviewers/<int:reviewer_id>/unassign",
                "unassign_reviewer", c.unassign_reviewer, methods=["POST"])
bp.add_url_rule("/coordination/records/<int:testimony_id>/grants", "grant_access", c.grant_access, methods=["POST"])
bp.add_url_rule("/coordination/records/<int:testimony_id>/grants/<int:grant_id>/revoke", "revoke_access",
                c.revoke_access, methods=["POST"])
bp.add_url_rule("/interviews/<int:testimony_id>/withdrawal", "interview_withdrawal", c.interview_withdrawal,
                methods=["GET", "POST"])
bp.add_url_rule("/interviews/<int:testimony_id>/erasure", "interview_erasure", c.interview_erasure,
                methods=["GET", "POST"])
