"""HANDOFF_AUTH__MODE=oauth: /mcp as an OAuth 2.1 resource server (MCP authorization, RFC 9068 JWTs).

A request's bearer token must be a JWT access token the configured issuer signed (keys from its
JWKS, see jwks.py) with an allowed asymmetric algorithm, for this resource (`aud`, RFC 8707), within
its lifetime (`exp`/`nbf`, small leeway), carrying the required scopes. The acting agent is one of
its claims (`sub` by default), normalised like every agent name. The token is only read here: it
is never forwarded, logged or stored.

Why not the SDK's own wiring (`AuthSettings` + `token_verifier` given to `MCPServer`, which adds
starlette's AuthenticationMiddleware and RequireAuthMiddleware inside the SDK's app):
- those run inside the Starlette app, behind `ResumeAnywhere`, which answers stream reconnects on
  replicas that do not hold the session: authentication has to come before it, in `BearerAuth`;
- its TokenVerifier answers only "a token or None", so a 401 could not say what is wrong (expired,
  other audience, a claim that is no agent name), and an issuer that cannot be reached would be a
  401 instead of a 503 the client may retry;
- its 401 says `error="invalid_token"` even when no token was sent (RFC 6750 §3.1: no error code
  then) and its body is not our error shape.
What is used: its `AccessToken` model for the verified token, and its protected-resource metadata
routes (`create_protected_resource_routes`, RFC 9728) for the document clients discover us by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import ProtectedResourceMetadata
from pydantic import AnyHttpUrl

from handoff.config import OAuthSettings
from handoff.domain.validation import validate_agent
from handoff.errors import InvalidInput
from handoff.http.auth import Challenge, ScopeMissing, TokenRejected
from handoff.http.jwks import KeySet, UnknownKey, http_fetcher

# RFC 9068 §2.1 names `at+jwt`; many issuers still write `JWT` or nothing. Anything else (an ID
# token's `JWT` aside, which the audience check refuses) is a different kind of token.
_ACCESS_TOKEN_TYPES = frozenset({"jwt", "at+jwt", "application/at+jwt"})
METADATA_PATH = "/.well-known/oauth-protected-resource"


@dataclass(frozen=True)
class OAuthConfig:
    """The checked, required subset of OAuthSettings (issuer and resource present)."""

    issuer: str
    resource: str
    settings: OAuthSettings

    @classmethod
    def of(cls, settings: OAuthSettings) -> OAuthConfig:
        meaning = {"issuer": "the authorization server's issuer URL", "resource": "this server's public /mcp URL"}
        missing = [
            f"HANDOFF_AUTH__OAUTH__{name.upper()} ({what})"
            for name, what in meaning.items()
            if getattr(settings, name) is None
        ]
        if missing:
            raise InvalidInput(f"HANDOFF_AUTH__MODE=oauth needs {' and '.join(missing)}")
        assert settings.issuer is not None and settings.resource is not None
        return cls(settings.issuer, settings.resource, settings)

    @property
    def metadata_url(self) -> str:
        return str(build_resource_metadata_url(AnyHttpUrl(self.resource)))


class JwtAccessTokens:
    """Verifies access tokens and names their agent: the `authenticate` of `BearerAuth` in oauth mode."""

    def __init__(self, config: OAuthConfig, keys: KeySet, *, max_agent_length: int) -> None:
        self._config = config
        self._settings = config.settings
        self._keys = keys
        self._algorithms = frozenset(self._settings.algorithms)
        self._max_agent_length = max_agent_length

    async def authenticate(self, token: str) -> str:
        access = await self.verify(token)
        missing = [scope for scope in self._settings.required_scopes if scope not in access.scopes]
        if missing:
            raise ScopeMissing(self._settings.required_scopes, missing)
        return self.agent_of(access)

    async def verify(self, token: str) -> AccessToken:
        """The token's verified content, or TokenRejected naming what is wrong with it."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("the bearer token is not a well-formed JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self._algorithms:
            allowed = ", ".join(sorted(self._algorithms))
            raise TokenRejected(f"the token's algorithm {algorithm!r} is not accepted (allowed: {allowed})")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ACCESS_TOKEN_TYPES):
            raise TokenRejected(f"the token's type {typ!r} is not an access token (at+jwt)")
        kid = header.get("kid")
        try:
            key = await self._keys.key_for(kid if isinstance(kid, str) else None, algorithm)
        except UnknownKey as error:
            raise TokenRejected(str(error)) from None
        claims = self._decode(token, key.key, algorithm)
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id") or claims.get("azp") or claims.get("sub") or ""),
            scopes=_scopes(claims),
            expires_at=int(claims["exp"]),
            resource=self._config.resource,
            subject=claims.get("sub") if isinstance(claims.get("sub"), str) else None,
            claims=claims,
        )

    def _decode(self, token: str, key: Any, algorithm: str) -> dict[str, Any]:
        config = self._config
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=config.resource,
                issuer=config.issuer,
                leeway=self._settings.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("the token is not valid yet (nbf or iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected(f"the token is not for this resource: its aud must include {config.resource}") from None
        except jwt.InvalidIssuerError:
            raise TokenRejected(f"the token was issued by another issuer, not {config.issuer}") from None
        except jwt.MissingRequiredClaimError as error:
            raise TokenRejected(f"the token has no {error.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("the token's signature does not verify") from None
        except jwt.PyJWTError:
            raise TokenRejected("the bearer token is not a valid JWT") from None
        return claims

    def agent_of(self, access: AccessToken) -> str:
        claim = self._settings.agent_claim
        value = (access.claims or {}).get(claim)
        if not isinstance(value, str):
            raise TokenRejected(f"the token has no {claim} claim naming the agent (HANDOFF_AUTH__OAUTH__AGENT_CLAIM)")
        try:
            return validate_agent(value, field=f"the token's {claim} claim", max_length=self._max_agent_length)
        except InvalidInput as error:
            raise TokenRejected(f"{error.message}: it is not a valid agent name") from None


def _scopes(claims: dict[str, Any]) -> list[str]:
    """RFC 9068 `scope` (space-separated), or the `scp` list some issuers write instead."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return scope.split()
    scp = claims.get("scp")
    if isinstance(scp, list):
        return [s for s in scp if isinstance(s, str)]
    return scp.split() if isinstance(scp, str) else []


def challenge_for(config: OAuthConfig) -> Challenge:
    return Challenge(resource_metadata=config.metadata_url, scopes=tuple(config.settings.required_scopes))


def access_tokens(config: OAuthConfig, *, max_agent_length: int) -> JwtAccessTokens:
    settings = config.settings
    keys = KeySet(
        config.issuer,
        fetch_json=http_fetcher(settings.fetch_timeout_seconds),
        cache_seconds=settings.jwks_cache_seconds,
        min_refetch_seconds=settings.jwks_min_refetch_seconds,
    )
    return JwtAccessTokens(config, keys, max_agent_length=max_agent_length)


def add_metadata_routes(server: MCPServer, config: OAuthConfig) -> None:
    """RFC 9728 metadata at the path derived from the resource URL, at the one for `/mcp`, and at the
    root (clients that find no `resource_metadata` in the challenge try these in turn)."""
    # Parsed by the metadata model itself, which keeps a path-less URL as written: a bare AnyHttpUrl
    # would add a "/" to the issuer, and clients compare issuers as exact strings (RFC 8414 §3.3).
    exact = ProtectedResourceMetadata.model_validate(
        {"resource": config.resource, "authorization_servers": [config.issuer]}
    )
    routes = create_protected_resource_routes(
        resource_url=exact.resource,
        authorization_servers=exact.authorization_servers,
        scopes_supported=config.settings.required_scopes or None,
        resource_name="handoff",
    )
    for route in routes:
        for path in dict.fromkeys([route.path, METADATA_PATH + "/mcp", METADATA_PATH]):
            server.custom_route(path, methods=sorted(route.methods or {"GET"}))(route.endpoint)
