"""`handoff tokens create|list|revoke`: the bearer tokens HTTP clients present (HANDOFF_AUTH__MODE=tokens).

The secret is printed once, by `create`; only its SHA-256 is stored, so `list` can never show it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import anyio

from handoff.config import Settings
from handoff.domain.tokens import ApiToken


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tokens = commands.add_parser("tokens", help="Bearer tokens for HTTP clients: create, list, revoke.")
    sub = tokens.add_subparsers(dest="tokens_command", required=True)
    create = sub.add_parser(
        "create",
        help="Create a token acting as an agent; prints the secret once.",
        description="Create a bearer token; requests that carry it act as AGENT. The secret is printed once.",
    )
    create.add_argument("--agent", required=True, help="The agent the token acts as.")
    create.add_argument("--expires", type=int, metavar="SECONDS", help="Lifetime in seconds (default: no expiry).")
    create.add_argument("--json", action="store_true", help='Print {"id", "token", "agent"} as JSON.')
    create.set_defaults(run=_create)
    listing = sub.add_parser("list", help="List tokens (never their secrets).")
    listing.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    listing.set_defaults(run=_list)
    revoke = sub.add_parser("revoke", help="Revoke a token; every server refuses it from its next request.")
    revoke.add_argument("id", help="The token's id (from create or list).")
    revoke.set_defaults(run=_revoke)


def _create(settings: Settings, args: argparse.Namespace) -> None:
    anyio.run(_run_create, settings, args)


async def _run_create(settings: Settings, args: argparse.Namespace) -> None:
    from handoff.container import Container

    async with Container.build(settings) as container:
        issued = await container.tokens.create(args.agent, args.expires)
    t = issued.token
    if args.json:
        print(json.dumps({"id": t.token_id, "token": issued.secret, "agent": t.agent}))
        return
    expiry = t.expires_at.isoformat() if t.expires_at else "never"
    print(f"token {t.token_id} for agent {t.agent} (expires: {expiry}); it is shown only now:\n{issued.secret}")


def _list(settings: Settings, args: argparse.Namespace) -> None:
    anyio.run(_run_list, settings, args)


async def _run_list(settings: Settings, args: argparse.Namespace) -> None:
    from handoff.container import Container
    from handoff.tables import Table

    async with Container.build(settings) as container:
        tokens = await container.tokens.list_tokens()
    if args.json:
        print(json.dumps([_as_json(t) for t in tokens], indent=2))
        return
    table = Table(title=f"tokens ({len(tokens)})")
    for column in ("id", "agent", "created", "expires", "revoked"):
        table.add_column(column)
    for t in tokens:
        table.add_row(
            t.token_id,
            t.agent,
            t.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            t.expires_at.strftime("%Y-%m-%d %H:%M:%S") if t.expires_at else "never",
            t.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if t.revoked_at else "",
        )
    print(table.render())


def _as_json(t: ApiToken) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return None if value is None else value.isoformat()

    return {
        "id": t.token_id,
        "agent": t.agent,
        "created_at": iso(t.created_at),
        "expires_at": iso(t.expires_at),
        "revoked_at": iso(t.revoked_at),
    }


def _revoke(settings: Settings, args: argparse.Namespace) -> None:
    anyio.run(_run_revoke, settings, args.id)


async def _run_revoke(settings: Settings, token_id: str) -> None:
    from handoff.container import Container

    async with Container.build(settings) as container:
        await container.tokens.revoke(token_id)
    print(f"token {token_id} revoked")
