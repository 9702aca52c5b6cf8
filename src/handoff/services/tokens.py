"""Bearer tokens: create (the secret is shown once), list, revoke, and authenticate a request.

Revocation must hold on every replica at the next request, so authentication reads the database;
the only cache is a per-process one of at most `CACHE_SECONDS`, which spares a burst of requests
from the same client a lookup each.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from handoff.config import LimitSettings
from handoff.domain.tokens import TOKEN_PREFIX, ApiToken, hash_secret, new_secret, new_token_id
from handoff.domain.validation import validate_agent
from handoff.errors import InvalidInput, NotFound
from handoff.services.ports import Clock, NoRetry, Retrier, UnitOfWorkFactory

CACHE_SECONDS = 1.0
_CACHE_MAX_ENTRIES = 1024
# Well above any secret `new_secret` makes: a longer header is refused without hashing it.
_MAX_SECRET_LENGTH = 256


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: ApiToken
    secret: str


class TokenService:
    def __init__(
        self, uow: UnitOfWorkFactory, clock: Clock, limits: LimitSettings, retry: Retrier | None = None
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._limits = limits
        self._retry = retry or NoRetry()
        self._cache: dict[str, tuple[float, ApiToken | None]] = {}

    async def create(self, agent: str, expires_seconds: int | None = None) -> IssuedToken:
        name = validate_agent(agent, field="agent", max_length=self._limits.max_key_length)
        if expires_seconds is not None and expires_seconds <= 0:
            raise InvalidInput("expires must be a positive number of seconds", {"field": "expires"})
        now = self._clock.now()
        expires_at = None if expires_seconds is None else now + timedelta(seconds=expires_seconds)
        token = ApiToken(token_id=new_token_id(), agent=name, created_at=now, expires_at=expires_at, revoked_at=None)
        secret = new_secret()
        async with self._uow(write=True) as uow:
            await uow.tokens.add(token, hash_secret(secret))
            await uow.commit()
        return IssuedToken(token=token, secret=secret)

    async def list_tokens(self) -> list[ApiToken]:
        async def read() -> list[ApiToken]:
            async with self._uow(write=False) as uow:
                return await uow.tokens.list_tokens()

        return await self._retry.call(read)

    async def revoke(self, token_id: str) -> None:
        async with self._uow(write=True) as uow:
            found = await uow.tokens.revoke(token_id, now=self._clock.now())
            await uow.commit()
        if not found:
            raise NotFound(f"no token with id '{token_id}'", {"token_id": token_id})

    async def authenticate(self, secret: str) -> str | None:
        """The agent a bearer secret acts as, or None when it is unknown, revoked or expired."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > _MAX_SECRET_LENGTH:
            return None
        digest = hash_secret(secret)
        clock = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and clock - cached[0] < CACHE_SECONDS:
            token = cached[1]
        else:

            async def read() -> ApiToken | None:
                async with self._uow(write=False) as uow:
                    return await uow.tokens.find_by_hash(digest)

            token = await self._retry.call(read)
            if len(self._cache) >= _CACHE_MAX_ENTRIES:
                self._cache.clear()
            self._cache[digest] = (clock, token)
        if token is None or not token.usable_at(self._clock.now()):
            return None
        return token.agent
