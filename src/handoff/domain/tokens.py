"""API tokens: what a bearer token is, how its secret is made and how it is stored (hashed only)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

TOKEN_PREFIX = "hnd_"
_SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token as stored: never its secret, only the secret's SHA-256."""

    token_id: str
    agent: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def usable_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


def new_token_id() -> str:
    return "tok_" + secrets.token_hex(8)


def new_secret() -> str:
    """A fresh bearer token: the prefix makes it recognisable (and redactable) wherever it leaks."""
    return TOKEN_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)


def hash_secret(secret: str) -> str:
    """What is stored and looked up: a random 256-bit secret needs no salt or slow hash."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
