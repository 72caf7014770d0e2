"""Dates as people type them and date inputs send them: a day as YYYY-MM-DD, a month as YYYY-MM."""

from __future__ import annotations

import re
from datetime import date

DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")


def parse_day(text: str) -> date | None:
    """A calendar day written YYYY-MM-DD, or None for anything else (including 2023-02-30)."""
    if not DAY.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def parse_month(text: str) -> date | None:
    """The first day of a month written YYYY-MM, or None."""
    match = MONTH.fullmatch(text)
    if match is None or not 1 <= int(match[2]) <= 12:
        return None
    try:
        return date(int(match[1]), int(match[2]), 1)
    except ValueError:  # year 0
        return None
