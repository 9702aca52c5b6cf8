"""Bearer tokens, stored by the SHA-256 of their secret."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from handoff.domain.tokens import ApiToken
from handoff.storage.db import Db
from handoff.storage.repositories import utc
from handoff.storage.tables import api_tokens

_COLUMNS = (
    api_tokens.c.token_id,
    api_tokens.c.agent,
    api_tokens.c.created_at,
    api_tokens.c.expires_at,
    api_tokens.c.revoked_at,
)


def _token(row: Any) -> ApiToken:
    return ApiToken(
        token_id=row["token_id"],
        agent=row["agent"],
        created_at=utc(row["created_at"]),
        expires_at=None if row["expires_at"] is None else utc(row["expires_at"]),
        revoked_at=None if row["revoked_at"] is None else utc(row["revoked_at"]),
    )


class SqlTokenRepository:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def add(self, token: ApiToken, secret_hash: str) -> None:
        await self._db.execute(
            api_tokens.insert().values(
                token_id=token.token_id,
                secret_hash=secret_hash,
                agent=token.agent,
                created_at=token.created_at,
                expires_at=token.expires_at,
                revoked_at=token.revoked_at,
            )
        )

    async def find_by_hash(self, secret_hash: str) -> ApiToken | None:
        rows = await self._db.fetch_mappings(sa.select(*_COLUMNS).where(api_tokens.c.secret_hash == secret_hash))
        return _token(rows[0]) if rows else None

    async def list_tokens(self) -> list[ApiToken]:
        c = api_tokens.c
        rows = await self._db.fetch_mappings(sa.select(*_COLUMNS).order_by(c.created_at, c.token_id))
        return [_token(r) for r in rows]

    async def revoke(self, token_id: str, *, now: datetime) -> bool:
        c = api_tokens.c
        result = await self._db.execute(
            api_tokens.update().where(c.token_id == token_id, c.revoked_at.is_(None)).values(revoked_at=now)
        )
        if result.rowcount:
            return True
        found = await self._db.fetch_mappings(sa.select(c.token_id).where(c.token_id == token_id))
        return bool(found)
