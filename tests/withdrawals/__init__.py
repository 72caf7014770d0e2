"""Helpers of the withdrawal tests: a whole interview recorded through the operations, and accounts to act with."""

from __future__ import annotations

from flask import Flask

from tests.conftest import TestUser
from tests.interviews import factories as f

KEY = "w" * 24

account = f.account


def full_interview(app: Flask, user: TestUser, *, key: str = KEY) -> int:
    """A submitted interview with the sentinel narrative and name, two incidents and a referral; its id."""
    return f.full_interview(app, user, key=key)
