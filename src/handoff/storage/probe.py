"""Cheap database probes for readiness checks."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from handoff.storage.revision import SCHEMA_HEAD, current_revision


class DatabaseProbe:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @property
    def backend(self) -> str:
        return self._engine.dialect.name

    async def ping(self) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def schema_revisions(self) -> tuple[str | None, str]:
        return await current_revision(self._engine), SCHEMA_HEAD


def explain_connection_failure(error: BaseException) -> str:
    """Why a connection could not be made, in words a user can act on (never a traceback).

    SQLAlchemy wraps the driver's exception; the driver's own class says what happened.
    """
    cause: BaseException = getattr(error, "orig", None) or error
    name = type(cause).__name__
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else name
    if isinstance(cause, TimeoutError) or name in {"TimeoutError", "CancelledError"}:
        return "no answer in time (is the host reachable and the port right?)"
    if isinstance(cause, ConnectionRefusedError) or "Connect call failed" in text:
        return "connection refused (is the database running on that host and port?)"
    if name == "gaierror" or "Name or service not known" in text or "nodename nor servname" in text:
        return "the host name does not resolve"
    if name == "InvalidCatalogNameError":
        return f"{text} (create it, or fix the database name in the URL)"
    if name in {"InvalidPasswordError", "InvalidAuthorizationSpecificationError"}:
        return f"authentication failed: {text}"
    if "unable to open database file" in text:
        return "cannot open the SQLite file (does its directory exist, and may this user write there?)"
    return f"{name}: {text}"[:300]
