"""OAuth mode over HTTP (HANDOFF_AUTH__MODE=oauth) against a real authorization server: the certified
`oidc-provider` on Node (tests/e2e/oidc), issuing JWT access tokens by client_credentials with a
resource indicator, and a real `handoff serve`. Raw HTTP for the refusals, the SDK client for the
calls that go through."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from jwt import PyJWK

from tests.conftest import structured, tool_error
from tests.e2e.oidc_provider import Provider, oidc_provider
from tests.e2e.servers import ServerDatabase, http_server, server_env
from tests.e2e.test_auth import client_as, post_initialize
from tests.e2e.test_startup_failures import run_until_exit

pytestmark = pytest.mark.anyio

# A resource identifier, not where the test server listens (that port is only known once it runs):
# as behind a proxy, the public URL is configured, and tokens and metadata name it.
RESOURCE = "https://handoff.test/mcp"
METADATA_URL = "https://handoff.test/.well-known/oauth-protected-resource/mcp"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with oidc_provider(RESOURCE) as running:
        yield running


def oauth_env(provider: Provider, **extra: str) -> dict[str, str]:
    return {
        "HANDOFF_AUTH__MODE": "oauth",
        "HANDOFF_AUTH__OAUTH__ISSUER": provider.issuer,
        "HANDOFF_AUTH__OAUTH__RESOURCE": RESOURCE,
        "HANDOFF_AUTH__OAUTH__REQUIRED_SCOPES": '["handoff"]',
        # The expiry test waits for a one-second token to run out; no leeway keeps that wait short.
        "HANDOFF_AUTH__OAUTH__LEEWAY_SECONDS": "0",
        **extra,
    }


def challenge(response: httpx.Response) -> dict[str, str]:
    """The parameters of a `WWW-Authenticate: Bearer k="v", …` header."""
    header = response.headers["www-authenticate"]
    scheme, _, rest = header.partition(" ")
    assert scheme == "Bearer", header
    params = {}
    for part in rest.split('", '):
        name, _, value = part.partition('="')
        params[name.strip()] = value.rstrip('"')
    return params


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def reheader(token: str, **header: Any) -> str:
    """The token's payload under another header, with its original signature (for alg=none: none)."""
    _, payload, signature = token.split(".")
    return f"{b64(json.dumps(header).encode())}.{payload}.{'' if header.get('alg') == 'none' else signature}"


def hs256_with_public_key(token: str, provider: Provider) -> str:
    """The key-confusion attack: the same claims signed with HMAC, the issuer's public key as secret."""
    rsa = next(k for k in provider.jwks()["keys"] if k["kty"] == "RSA")
    pem = PyJWK(rsa).key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _, payload, _ = token.split(".")
    head = b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": rsa["kid"]}).encode())
    signature = hmac.new(pem, f"{head}.{payload}".encode(), hashlib.sha256).digest()
    return f"{head}.{payload}.{b64(signature)}"


async def test_without_a_token_the_challenge_points_to_the_resource_metadata(
    server_db: ServerDatabase, provider: Provider
) -> None:
    with http_server(server_db, **oauth_env(provider)) as server:
        refused = post_initialize(server.url, None)
        assert refused.status_code == 401
        assert challenge(refused) == {"scope": "handoff", "resource_metadata": METADATA_URL}
        assert refused.json()["error"] == {"code": "unauthorized", "message": "a bearer token is required"}
        assert httpx.get(server.url, timeout=10).status_code == 401

        # The document at the path the challenge names (RFC 9728 §3.1), and at the root for clients
        # that look there.
        for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
            metadata = httpx.get(server.base + path, timeout=10)
            assert metadata.status_code == 200, path
            document = metadata.json()
            assert document["resource"] == RESOURCE
            assert document["authorization_servers"] == [provider.issuer]  # exactly as `iss`: no "/" added
            assert document["scopes_supported"] == ["handoff"]
            assert document["bearer_methods_supported"] == ["header"]
        health = httpx.get(server.base + "/healthz", timeout=10)
        assert (health.status_code, health.json()) == (200, {"status": "ok"})


async def test_an_access_token_acts_as_its_agent(server_db: ServerDatabase, provider: Provider) -> None:
    alice = provider.access_token("alice", resource=RESOURCE)
    bob = provider.access_token("bob", resource=RESOURCE)
    with http_server(server_db, **oauth_env(provider)) as server, anyio.fail_after(60):
        async with client_as(server.url, alice) as a:
            registered = structured(
                await a.call_tool("register_session", {"session_key": "s1", "source_agent": "alice"})
            )
            assert registered["session"]["owner_agent"] == "alice"
            spoofed = tool_error(
                await a.call_tool("register_session", {"session_key": "s2", "source_agent": "mallory"})
            )
            assert spoofed["code"] == "forbidden"
            as_bob = tool_error(
                await a.call_tool(
                    "update_context", {"session_key": "s1", "context_type": "message", "content": "x", "agent": "bob"}
                )
            )
            assert as_bob["code"] == "forbidden"
            handed = structured(await a.call_tool("request_handoff", {"session_key": "s1", "target_agent": "bob"}))
            handoff_id = handed["handoff"]["handoff_id"]

        async with client_as(server.url, bob) as b:
            assert tool_error(await b.call_tool("complete_session", {"session_key": "s1"}))["code"] == "forbidden"
            wrong = tool_error(await b.call_tool("accept_handoff", {"handoff_id": handoff_id, "agent": "alice"}))
            assert wrong["code"] == "forbidden"
            accepted = structured(await b.call_tool("accept_handoff", {"handoff_id": handoff_id, "agent": "bob"}))
            assert accepted["handoff"]["status"] == "accepted"

        # ES256 keys from the same issuer work as well as RS256 ones.
        async with client_as(server.url, provider.access_token("es-agent", resource=RESOURCE)) as e:
            mine = structured(await e.call_tool("register_session", {"session_key": "s3", "source_agent": "es-agent"}))
            assert mine["session"]["owner_agent"] == "es-agent"


async def test_a_bad_token_is_401_naming_the_problem(server_db: ServerDatabase, provider: Provider) -> None:
    alice = provider.access_token("alice", resource=RESOURCE)
    brief = provider.access_token("brief", resource=RESOURCE)  # lives one second
    head, payload, signature = alice.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "bob"
    cases = {
        "another resource": (
            provider.access_token("alice", resource="https://other.test/api"),
            "not for this resource",
        ),
        "another issuer": (
            provider.access_token("alice", resource=RESOURCE, issuer=provider.rogue_issuer),
            "another issuer",
        ),
        "tampered claims": (f"{head}.{b64(json.dumps(claims).encode())}.{signature}", "signature does not verify"),
        "alg none": (reheader(alice, alg="none", typ="at+jwt"), "algorithm 'none' is not accepted"),
        "HS256 with the public key": (hs256_with_public_key(alice, provider), "algorithm 'HS256' is not accepted"),
        "unknown kid": (reheader(alice, alg="RS256", typ="at+jwt", kid="made-up"), "'made-up' is not one"),
        "not a JWT": ("hnd_not-a-jwt", "not a well-formed JWT"),
        "expired": (brief, "expired"),
    }
    with http_server(server_db, **oauth_env(provider)) as server:
        await anyio.sleep(2.1)  # let the one-second token run out (the wait is the behaviour under test)
        for name, (token, reason) in cases.items():
            response = post_initialize(server.url, token)
            assert response.status_code == 401, (name, response.text)
            params = challenge(response)
            assert params["error"] == "invalid_token", name
            assert params["resource_metadata"] == METADATA_URL, name
            assert reason in params["error_description"], (name, params)
            assert response.json()["error"]["code"] == "unauthorized"
            assert reason in response.json()["error"]["message"], name
        # A token bound to this resource but without the required scope: 403, naming the scope.
        unscoped = post_initialize(server.url, provider.access_token("alice", resource=RESOURCE, scope="other"))
        assert unscoped.status_code == 403, unscoped.text
        params = challenge(unscoped)
        assert (params["error"], params["scope"]) == ("insufficient_scope", "handoff")
        assert unscoped.json()["error"]["code"] == "forbidden"
        # The good token still passes after all that: nothing above poisoned the key cache.
        assert post_initialize(server.url, alice).status_code == 200


async def test_the_agent_claim_is_configurable_and_must_be_a_valid_agent_name(
    server_db: ServerDatabase, provider: Provider
) -> None:
    env = oauth_env(provider, HANDOFF_AUTH__OAUTH__AGENT_CLAIM="agent_name")
    with http_server(server_db, **env) as server, anyio.fail_after(60):
        async with client_as(server.url, provider.access_token("alice", resource=RESOURCE)) as a:
            registered = structured(
                await a.call_tool("register_session", {"session_key": "k", "source_agent": "alice"})
            )
            assert registered["session"]["owner_agent"] == "alice"
        # mallory's agent_name hides a right-to-left override.
        refused = post_initialize(server.url, provider.access_token("mallory", resource=RESOURCE))
        assert refused.status_code == 401
        message = refused.json()["error"]["message"]
        assert "agent_name claim" in message and "direction-changing" in message, message
        assert "\u202e" not in refused.headers["www-authenticate"]


def test_oauth_without_issuer_or_resource_refuses_to_start(server_db: ServerDatabase) -> None:
    env = server_env(server_db, HANDOFF_AUTH__MODE="oauth", HANDOFF_AUTH__OAUTH__RESOURCE=RESOURCE)
    code, _, err, _ = run_until_exit(["serve", "--transport", "http", "--port", "0"], env)
    assert code == 1
    [line] = err.strip().splitlines()
    assert "HANDOFF_AUTH__OAUTH__ISSUER" in line and "HANDOFF_AUTH__OAUTH__RESOURCE" not in line, line


def test_oauth_counts_as_authentication_on_a_public_bind(server_db: ServerDatabase) -> None:
    # No issuer set: past the bind check, the oauth check is what refuses (and names the setting).
    env = server_env(server_db, HANDOFF_AUTH__MODE="oauth")
    code, _, err, _ = run_until_exit(["serve", "--transport", "http", "--host", "0.0.0.0", "--port", "0"], env)
    assert code == 1
    assert "without authentication" not in err and "HANDOFF_AUTH__OAUTH__ISSUER" in err, err
