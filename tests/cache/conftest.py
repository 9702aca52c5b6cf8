"""Redis for the cache tests: the local server at HANDOFF_TEST_REDIS_URL (or the default address).

The tests share that database with everything else on the machine, so each one works under its own
key prefix and deletes its keys afterwards; nothing here ever flushes a database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import redis.asyncio

from tests.conftest import LOCAL_REDIS_URL, REDIS_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis tests/conftest.py found (configured, or answering at the usual local address)."""
    if REDIS_URL is None:
        reason = f"no Redis answers at {LOCAL_REDIS_URL}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason + " (set HANDOFF_TEST_REDIS_URL to run the Redis cache tests)")
    return REDIS_URL


@pytest.fixture
async def raw_redis(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A plain client for looking behind the cache (TTL, raw keys)."""
    client = redis.asyncio.Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def key_prefix(raw_redis: redis.asyncio.Redis) -> AsyncIterator[str]:
    prefix = f"handoff-test:{uuid.uuid4().hex}:"
    try:
        yield prefix
    finally:
        keys = [key async for key in raw_redis.scan_iter(match=prefix + "*")]
        if keys:
            await raw_redis.delete(*keys)


def with_address(url: str, host: str, port: int) -> str:
    """The same Redis URL (credentials, db, options) pointed at another address."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))
