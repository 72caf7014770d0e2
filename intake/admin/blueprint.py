"""URL rules of account administration."""

from flask import Blueprint

from intake.admin import controllers as c

bp = Blueprint("admin", __name__, url_prefix="/admin")

bp.add_url_rule("/accounts", "list_accounts", c.list_accounts)
bp.add_url_rule("/accounts/invite", "invite", c.invite, methods=["GET", "POST"])
bp.add_url_rule("/accounts/<int:account_id>/roles", "change_roles", c.change_roles, methods=["GET", "POST"])
bp.add_url_rule("/accounts/<int:account_id>/deactivate", "deactivate", c.deactivate, methods=["POST"])
bp.add_url_rule("/accounts/<int:account_id>/reactivate", "reactivate", c.reactivate, methods=["POST"])
bp.add_url_rule("/accounts/<int:account_id>/reset-two-factor", "reset_two_factor", c.reset_two_factor,
                methods=["POST"])
