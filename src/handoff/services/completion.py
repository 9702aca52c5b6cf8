"""Names a client may complete while its user types an argument: session keys, handoff ids, agents."""

from __future__ import annotations

from dataclasses import dataclass

from handoff.config import LimitSettings
from handoff.domain.validation import check_storable_text
from handoff.errors import InvalidInput
from handoff.services.ports import NoRetry, Retrier, UnitOfWorkFactory

# The protocol allows at most 100 values per answer.
MAX_VALUES = 100


@dataclass(frozen=True, slots=True)
class Suggestions:
    values: list[str]
    has_more: bool


NOTHING = Suggestions([], False)


class CompletionService:
    def __init__(self, uow: UnitOfWorkFactory, limits: LimitSettings, retry: Retrier | None = None) -> None:
        self._uow = uow
        self._limits = limits
        self._retry = retry or NoRetry()

    async def session_keys(self, prefix: str) -> Suggestions:
        if not self._usable(prefix):
            return NOTHING

        async def read() -> list[str]:
            async with self._uow(write=False) as uow:
                return await uow.handoffs.session_keys_starting(prefix, limit=MAX_VALUES + 1)

        return _bounded(await self._retry.call(read))

    async def agents(self, prefix: str) -> Suggestions:
        if not self._usable(prefix):
            return NOTHING

        async def read() -> list[str]:
            async with self._uow(write=False) as uow:
                return await uow.handoffs.agents_starting(prefix, limit=MAX_VALUES + 1)

        return _bounded(await self._retry.call(read))

    async def handoff_ids(self, prefix: str, *, pending_for: str | None = None) -> Suggestions:
        """Ids starting with `prefix`; given an agent, only the handoffs waiting for it, newest first."""
        if not self._usable(prefix) or not (prefix.isascii() and (prefix.isalnum() or not prefix)):
            return NOTHING  # ids are hex: nothing else can match
        agent = pending_for.strip() if pending_for else None
        if agent is not None and not self._usable(agent):
            agent = None

        async def read() -> list[str]:
            async with self._uow(write=False) as uow:
                return await uow.handoffs.handoff_ids_starting(prefix, pending_for=agent, limit=MAX_VALUES + 1)

        return _bounded(await self._retry.call(read))

    def _usable(self, text: str) -> bool:
        """A prefix longer than any stored name, or one that cannot be stored, matches nothing."""
        if len(text) > self._limits.max_key_length:
            return False
        try:
            check_storable_text(text, field="value")
        except InvalidInput:
            return False
        return True


def _bounded(found: list[str]) -> Suggestions:
    return Suggestions(found[:MAX_VALUES], len(found) > MAX_VALUES)
