"""Who is calling: the agent an HTTP bearer token names, bound for the duration of one request.

The HTTP layer (http/auth.py) authenticates the request and puts the token's agent in the ASGI
scope; the request pipeline binds it here (`bind`), and tools ask `acting_agent` for the agent they
act as. Without authentication (stdio, HANDOFF_AUTH__MODE=none) nothing is bound and every
argument passes through unchanged.
"""

from __future__ import annotations

import unicodedata
from contextvars import ContextVar, Token
from typing import Any

from handoff.errors import Forbidden

AGENT_SCOPE_KEY = "handoff.agent"

_caller: ContextVar[str | None] = ContextVar("handoff_caller", default=None)


def caller_of(request: Any) -> str | None:
    """The authenticated agent of an HTTP request the SDK hands over (None over stdio)."""
    scope = getattr(request, "scope", None)
    agent = scope.get(AGENT_SCOPE_KEY) if isinstance(scope, dict) else None
    return agent if isinstance(agent, str) else None


def bind(agent: str | None) -> Token[str | None]:
    return _caller.set(agent)


def unbind(token: Token[str | None]) -> None:
    _caller.reset(token)


def current_caller() -> str | None:
    return _caller.get()


def acting_agent(given: str | None, *, field: str = "agent") -> str | None:
    """The agent a call acts as: with authentication, the token's agent (an argument naming anyone
    else is `forbidden`; an omitted one becomes the token's agent); without, the argument as given."""
    caller = _caller.get()
    if caller is None or given is None:
        return given if caller is None else caller
    if unicodedata.normalize("NFKC", given).strip() != caller:
        raise Forbidden(
            f"{field} '{given}' is not you: this token acts as '{caller}'",
            {"field": field, "authenticated_agent": caller},
        )
    return caller
