"""Account administration: list, invite, change roles (step-up), deactivate, reset two-factor.

Admins manage accounts only; nothing here reads testimony content.
"""
