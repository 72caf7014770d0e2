"""URL rules of sign-in, enrolment, step-up and the person's own account."""

from flask import Blueprint

from intake.accounts import controllers as c

bp = Blueprint("accounts", __name__)

bp.add_url_rule("/sign-in", "sign_in", c.sign_in, methods=["GET", "POST"])
bp.add_url_rule("/sign-out", "sign_out", c.sign_out, methods=["POST"])
bp.add_url_rule("/setup/<token>", "open_setup_link", c.open_setup_link, methods=["GET", "POST"])
bp.add_url_rule("/enrol/<token>", "open_enrolment_link", c.open_enrolment_link, methods=["GET", "POST"])
bp.add_url_rule("/enrol/password", "enrol_password", c.enrol_password, methods=["GET", "POST"])
bp.add_url_rule("/enrol/authenticator", "enrol_authenticator", c.enrol_authenticator, methods=["GET", "POST"])
bp.add_url_rule("/step-up", "step_up", c.step_up, methods=["GET", "POST"])
bp.add_url_rule("/account", "account_overview", c.account_overview)
bp.add_url_rule("/account/password", "change_password", c.change_password, methods=["GET", "POST"])
bp.add_url_rule("/account/recovery-codes", "recovery_codes_offer", c.recovery_codes_offer)
bp.add_url_rule("/account/recovery-codes", "create_recovery_codes", c.create_recovery_codes, methods=["POST"])
bp.add_url_rule("/account/tokens/new", "create_token", c.create_token, methods=["GET", "POST"])
bp.add_url_rule("/account/tokens/<int:token_id>/revoke", "revoke_token", c.revoke_token, methods=["POST"])
bp.add_url_rule("/language", "choose_language", c.choose_language, methods=["POST"])
