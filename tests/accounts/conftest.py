"""Fixtures for the account and session tests: a Redis database to use as the session store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import missing

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
def redis_client() -> Iterator[Any]:
    """A client of the test Redis database, emptied before and after the test (skips when Redis is absent)."""
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        missing("redis", f"{REDIS_URL} did not answer ({exc.__class__.__name__})")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
