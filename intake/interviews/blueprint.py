"""URL rules of the interview wizard."""

from flask import Blueprint

from intake.interviews import controllers as c

bp = Blueprint("interviews", __name__, url_prefix="/interviews")
bp.context_processor(c.page_helpers)

bp.add_url_rule("/", "mine", c.mine)
bp.add_url_rule("/new", "readiness", c.readiness, methods=["GET", "POST"])
bp.add_url_rule("/new/consent", "consent", c.consent, methods=["GET", "POST"])
bp.add_url_rule("/<int:testimony_id>", "overview", c.overview)
bp.add_url_rule("/<int:testimony_id>/person", "person", c.person, methods=["GET", "POST"])
bp.add_url_rule("/<int:testimony_id>/testimony", "testimony", c.testimony, methods=["GET", "POST"])
bp.add_url_rule("/<int:testimony_id>/pause", "pause", c.pause, methods=["POST"])
bp.add_url_rule("/<int:testimony_id>/incidents", "incidents", c.incidents, methods=["GET", "POST"])
bp.add_url_rule("/<int:testimony_id>/incidents/<int:incident_id>", "incident", c.incident, methods=["GET", "POST"])
bp.add_url_rule("/<int:testimony_id>/incidents/<int:incident_id>/remove", "remove_incident", c.remove_incident,
                methods=["POST"])
bp.add_url_rule("/<int:testimony_id>/attachments", "attachments", c.attachments, methods=["GET", "POST"])
bp.add_url_rule("/<int:testimony_id>/referral", "referral", c.referral, methods=["GET", "POST"])
bp.add_url_rule("/<int:testimony_id>/review", "review", c.review, methods=["GET", "POST"])
