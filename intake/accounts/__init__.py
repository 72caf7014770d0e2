"""Accounts: enrolment, sign-in with mandatory two-factor, sessions, step-up and personal API tokens."""
