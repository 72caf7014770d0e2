"""URL rules of the recipients pages, under /admin/recipients."""

from flask import Blueprint

from intake.recipients import controllers as c

bp = Blueprint("recipients", __name__, url_prefix="/admin/recipients")
bp.context_processor(c.page_helpers)

bp.add_url_rule("", "list_recipients", c.list_recipients)
bp.add_url_rule("/signing-key", "signing_key", c.signing_key)
bp.add_url_rule("/new", "new", c.new, methods=["GET", "POST"])
bp.add_url_rule("/<int:recipient_id>", "edit", c.edit, methods=["GET", "POST"])
bp.add_url_rule("/<int:recipient_id>/deactivate", "deactivate", c.deactivate, methods=["POST"])
bp.add_url_rule("/<int:recipient_id>/reactivate", "reactivate", c.reactivate, methods=["POST"])
