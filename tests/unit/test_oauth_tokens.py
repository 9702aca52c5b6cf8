"""The JWT checks and the key cache of oauth mode, with keys this test makes and an in-memory issuer
(a dict of documents) in place of HTTP. The same paths against a real authorization server:
tests/e2e/test_oauth.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from handoff.config import OAuthSettings
from handoff.errors import Unavailable
from handoff.http.auth import ScopeMissing, TokenRejected
from handoff.http.jwks import KeySet
from handoff.http.oauth import JwtAccessTokens, OAuthConfig

pytestmark = pytest.mark.anyio

ISSUER = "https://issuer.test"
RESOURCE = "https://handoff.test/mcp"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = jwt.get_algorithm_by_name(alg)
    return {**json.loads(algorithm.to_jwk(key.public_key())), "kid": kid, "alg": alg, "use": "sig"}


class Issuer:
    """The documents an issuer serves, and a count of what was fetched."""

    def __init__(self) -> None:
        self.keys = [public_jwk(RSA_KEY, "rsa-1", "RS256"), public_jwk(EC_KEY, "ec-1", "ES256")]
        self.down = False
        self.fetched: list[str] = []

    async def fetch(self, url: str) -> Any:
        self.fetched.append(url)
        if self.down:
            raise Unavailable(f"{url} could not be fetched")
        if url == f"{ISSUER}/.well-known/oauth-authorization-server":
            return {"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"}
        if url == f"{ISSUER}/jwks":
            return {"keys": self.keys}
        raise Unavailable(f"{url} answered HTTP 404")

    @property
    def jwks_fetches(self) -> int:
        return self.fetched.count(f"{ISSUER}/jwks")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(issuer: Issuer, clock: Clock | None = None, **settings: Any) -> JwtAccessTokens:
    config = OAuthConfig.of(OAuthSettings(issuer=ISSUER, resource=RESOURCE, **settings))
    keys = KeySet(
        ISSUER,
        fetch_json=issuer.fetch,
        cache_seconds=config.settings.jwks_cache_seconds,
        min_refetch_seconds=config.settings.jwks_min_refetch_seconds,
        clock=clock or Clock(),
    )
    return JwtAccessTokens(config, keys, max_agent_length=128)


def token(key: Any = RSA_KEY, alg: str = "RS256", kid: str | None = "rsa-1", **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": RESOURCE, "sub": "alice", "exp": now + 300, "iat": now, "scope": "handoff"}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    headers = {"typ": "at+jwt", **({"kid": kid} if kid is not None else {})}
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


async def rejected(tokens: JwtAccessTokens, raw: str) -> str:
    with pytest.raises(TokenRejected) as refused:
        await tokens.authenticate(raw)
    return str(refused.value)


async def test_a_good_token_names_its_agent_normalised() -> None:
    tokens = make(Issuer())
    assert await tokens.authenticate(token(sub="ａｌｉｃｅ")) == "alice"  # fullwidth → NFKC
    assert await tokens.authenticate(token(EC_KEY, "ES256", "ec-1")) == "alice"


async def test_claims_are_checked_and_each_refusal_says_why() -> None:
    tokens = make(Issuer(), required_scopes=["handoff"])
    now = int(time.time())
    assert "expired" in await rejected(tokens, token(exp=now - 60))
    assert "not valid yet" in await rejected(tokens, token(nbf=now + 600))
    assert "not for this resource" in await rejected(tokens, token(aud="https://other.test/mcp"))
    assert "another issuer" in await rejected(tokens, token(iss="https://evil.test"))
    assert "no exp claim" in await rejected(tokens, token(exp=None))
    assert "no aud claim" in await rejected(tokens, token(aud=None))
    # An audience list is fine when it includes this resource.
    assert await tokens.authenticate(token(aud=["https://other.test", RESOURCE])) == "alice"
    with pytest.raises(ScopeMissing) as missing:
        await tokens.authenticate(token(scope="read write"))
    assert missing.value.required == ("handoff",)
    assert await tokens.authenticate(token(scope=None, scp=["handoff"])) == "alice"


async def test_leeway_covers_small_clock_skew_only() -> None:
    tokens = make(Issuer(), leeway_seconds=30)
    now = int(time.time())
    assert await tokens.authenticate(token(exp=now - 10)) == "alice"
    assert "expired" in await rejected(tokens, token(exp=now - 60))


async def test_algorithm_attacks_are_refused() -> None:
    tokens = make(Issuer())
    good = token()
    head, payload, _ = good.split(".")
    none = jwt.utils.base64url_encode(b'{"alg":"none","typ":"at+jwt","kid":"rsa-1"}').decode()
    assert "'none' is not accepted" in await rejected(tokens, f"{none}.{payload}.")
    # HS256 keyed with the public key, the classic confusion: refused on the algorithm, before any key is used.
    pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    hs_head = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"at+jwt","kid":"rsa-1"}').decode()
    mac = hmac.new(pem, f"{hs_head}.{payload}".encode(), hashlib.sha256).digest()
    confused = f"{hs_head}.{payload}.{jwt.utils.base64url_encode(mac).decode()}"
    assert "'HS256' is not accepted" in await rejected(tokens, confused)
    # An EC key named for an RS256 token: the key cannot be used with that algorithm.
    assert "cannot be used with RS256" in await rejected(tokens, token(kid="ec-1"))
    assert "signature does not verify" in await rejected(tokens, f"{head}.{payload}.{'A' * 342}")
    assert "not an access token" in await rejected(
        tokens, jwt.encode({"sub": "alice"}, RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1", "typ": "dpop+jwt"})
    )


async def test_an_agent_claim_that_is_no_agent_name_is_refused() -> None:
    tokens = make(Issuer(), agent_claim="azp")
    assert await tokens.authenticate(token(azp="codex")) == "codex"
    assert "no azp claim" in await rejected(tokens, token())
    assert "mixes letters of different scripts" in await rejected(tokens, token(azp="\u0430lice"))
    assert "direction-changing" in await rejected(tokens, token(azp="mal\u202elory"))


async def test_a_flood_of_unknown_kids_costs_the_issuer_one_fetch_per_interval() -> None:
    issuer, clock = Issuer(), Clock()
    tokens = make(issuer, clock, jwks_min_refetch_seconds=10)
    assert await tokens.authenticate(token()) == "alice"
    assert issuer.jwks_fetches == 1
    for n in range(200):
        assert "is not one the issuer publishes" in await rejected(tokens, token(kid=f"bogus-{n}"))
    assert issuer.jwks_fetches == 1  # all within the interval of the first fetch
    clock.now += 11
    for n in range(200):
        await rejected(tokens, token(kid=f"bogus-{n}"))
    assert issuer.jwks_fetches == 2
    assert await tokens.authenticate(token()) == "alice"  # the good key still works throughout


async def test_a_rotated_key_is_fetched_when_a_token_names_it() -> None:
    issuer, clock = Issuer(), Clock()
    tokens = make(issuer, clock, jwks_min_refetch_seconds=10)
    assert await tokens.authenticate(token()) == "alice"
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuer.keys = [public_jwk(new_key, "rsa-2", "RS256")]
    clock.now += 11
    assert await tokens.authenticate(token(new_key, kid="rsa-2")) == "alice"
    assert issuer.jwks_fetches == 2
    # The withdrawn key stops working at its next refetch (a known kid within the TTL needs none).
    clock.now += 301
    assert "is not one the issuer publishes" in await rejected(tokens, token())


async def test_keys_expire_and_outlive_an_issuer_outage_by_one_period_only() -> None:
    issuer, clock = Issuer(), Clock()
    tokens = make(issuer, clock, jwks_cache_seconds=300, jwks_min_refetch_seconds=10)
    assert await tokens.authenticate(token()) == "alice"
    clock.now += 299
    assert await tokens.authenticate(token()) == "alice"
    assert issuer.jwks_fetches == 1
    issuer.down = True
    clock.now += 2  # past the TTL: a refetch, which fails; the old keys serve on
    assert await tokens.authenticate(token()) == "alice"
    assert issuer.fetched[-1].endswith("/.well-known/openid-configuration")
    clock.now += 300  # two periods old: no more
    with pytest.raises(Unavailable):
        await tokens.authenticate(token())
    issuer.down = False
    with pytest.raises(Unavailable):  # within the refetch interval of that failure: the issuer is not asked
        await tokens.authenticate(token())
    clock.now += 11
    assert await tokens.authenticate(token()) == "alice"


async def test_metadata_naming_another_issuer_is_not_trusted() -> None:
    issuer = Issuer()
    original = issuer.fetch

    async def lying(url: str) -> Any:
        document = await original(url)
        return {**document, "issuer": "https://evil.test"} if "well-known" in url else document

    issuer.fetch = lying  # type: ignore[method-assign]
    tokens = make(issuer)
    with pytest.raises(Unavailable, match="names issuer"):
        await tokens.authenticate(token())


def test_settings_refuse_symmetric_algorithms_and_plain_http_issuers() -> None:
    with pytest.raises(ValueError, match="'HS256' is not allowed"):
        OAuthSettings(algorithms=["HS256"])
    with pytest.raises(ValueError, match="'none' is not allowed"):
        OAuthSettings(algorithms=["none"])
    with pytest.raises(ValueError, match="must use https"):
        OAuthSettings(issuer="http://issuer.example")
    assert OAuthSettings(issuer="http://127.0.0.1:9000").issuer == "http://127.0.0.1:9000"
    with pytest.raises(Exception, match="HANDOFF_AUTH__OAUTH__RESOURCE"):
        OAuthConfig.of(OAuthSettings(issuer=ISSUER))
