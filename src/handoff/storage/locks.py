"""Run-once-across-replicas locks for background jobs.

PostgreSQL: a session-level advisory lock on a dedicated connection. It is released when the holder
lets go or when its connection dies (crash, kill -9, network cut), so a dead replica never keeps a
job blocked. SQLite: a lease row taken in a write transaction; a holder that died leaves a lease
that expires after `ttl_seconds`, and then anyone may take it over.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from handoff.services.ports import Clock
from handoff.storage.engine import WRITE_OPTION
from handoff.storage.repositories import utc
from handoff.storage.tables import job_leases


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for `name` (advisory locks take a bigint)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


class PostgresAdvisoryLock:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[bool]:
        """Yield True if this process now runs `name` alone, False if another holder has it."""
        key = lock_key(name)
        async with self._engine.connect() as conn:
            acquired = bool((await conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key})).scalar())
            await conn.commit()  # the lock is session-level: it outlives this transaction
            try:
                yield acquired
            finally:
                if acquired:
                    await conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    await conn.commit()


class SqliteLease:
    def __init__(self, engine: AsyncEngine, clock: Clock, ttl_seconds: float = 300.0) -> None:
        self._engine = engine
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_seconds)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[bool]:
        acquired = await self._acquire(name)
        try:
            yield acquired
        finally:
            if acquired:
                await self._release(name)

    async def _acquire(self, name: str) -> bool:
        now = self._clock.now()
        async with self._engine.connect() as conn:
            await conn.execution_options(**{WRITE_OPTION: True})
            async with conn.begin():  # BEGIN IMMEDIATE: the check and the take are one step
                row = (await conn.execute(sa.select(job_leases).where(job_leases.c.name == name))).mappings().first()
                if row is not None and row["holder"] != self.holder and utc(row["expires_at"]) > now:
                    return False
                values = {"holder": self.holder, "acquired_at": now, "expires_at": now + self._ttl}
                if row is None:
                    await conn.execute(job_leases.insert().values(name=name, **values))
                else:
                    await conn.execute(job_leases.update().where(job_leases.c.name == name).values(**values))
        return True

    async def _release(self, name: str) -> None:
        async with self._engine.connect() as conn:
            await conn.execution_options(**{WRITE_OPTION: True})
            async with conn.begin():
                await conn.execute(
                    job_leases.delete().where(job_leases.c.name == name, job_leases.c.holder == self.holder)
                )
