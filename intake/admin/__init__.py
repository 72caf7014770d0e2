"""Account administration: list, invite (step-up), change roles (step-up), deactivate, reactivate (step-up),
reset two-factor (step-up).

Admins manage accounts only; nothing here reads testimony content.
"""
