"""The authorization server's signing keys: discovered from its metadata, fetched, cached, refetched.

Verification needs the key a token names (`kid`). The keys are fetched from the `jwks_uri` of the
issuer's metadata (RFC 8414, or OpenID Connect discovery), used for `cache_seconds`, then fetched
again. A `kid` we do not know may mean the issuer rotated its keys, so it triggers a fetch too, but
at most one per `min_refetch_seconds` however many requests ask: a flood of tokens with made-up kids
costs the issuer one request per interval, not one each. Fetches are single-flight (one lock), so a
burst of requests after expiry waits for the same fetch instead of starting its own.

When a refetch fails the old keys stay in use for at most one more `cache_seconds` (an issuer's
brief outage does not lock everyone out), never longer: a key the issuer withdrew stops working.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx
from jwt import PyJWK, PyJWKError

from handoff.errors import Unavailable
from handoff.logs import get_logger

log = get_logger("handoff.http")

FetchJson = Callable[[str], Awaitable[Any]]

# A metadata document or key set larger than this is not one.
MAX_DOCUMENT_BYTES = 512 * 1024

# The key families each algorithm may use: a token may not pick, say, an EC key for RS256.
_FAMILIES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


class UnknownKey(Exception):
    """The token names a key the issuer does not publish (or names none where that is ambiguous)."""


@dataclass(frozen=True)
class _Key:
    jwk: PyJWK
    declared_alg: str | None  # the JWK's own `alg`, when the issuer pins one


@dataclass(frozen=True)
class _Keys:
    by_kid: Mapping[str, _Key]
    fetched_at: float


class KeySet:
    def __init__(
        self,
        issuer: str,
        *,
        fetch_json: FetchJson,
        cache_seconds: float,
        min_refetch_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._issuer = issuer
        self._fetch_json = fetch_json
        self._cache_seconds = cache_seconds
        self._min_refetch_seconds = min_refetch_seconds
        self._clock = clock
        self._keys: _Keys | None = None
        self._last_attempt: float | None = None
        self._lock = anyio.Lock()
        self.fetches = 0  # key-set fetches attempted, for tests and logs

    async def key_for(self, kid: str | None, algorithm: str) -> PyJWK:
        """The issuer's key for a token's `kid` and `alg`; raises UnknownKey or Unavailable."""
        keys = self._keys
        now = self._clock()
        if keys is None or now - keys.fetched_at >= self._cache_seconds or _find(keys, kid) is None:
            keys = await self._refresh(stale=keys)
        key = _find(keys, kid)
        if key is None:
            raise UnknownKey(
                f"the token's key id {kid!r} is not one the issuer publishes"
                if kid is not None
                else "the token names no key id (kid) and the issuer publishes more than one key"
            )
        _check_family(key, algorithm)
        return key.jwk

    async def _refresh(self, stale: _Keys | None) -> _Keys:
        async with self._lock:
            if self._keys is not stale and self._keys is not None:
                return self._keys  # another request fetched while this one waited
            now = self._clock()
            recently = self._last_attempt is not None and now - self._last_attempt < self._min_refetch_seconds
            if recently:  # this soon after a fetch, no new request to the issuer, whatever the kid
                if stale is not None and now - stale.fetched_at < 2 * self._cache_seconds:
                    return stale
                raise Unavailable("the authorization server's keys could not be fetched; try again shortly")
            self._last_attempt = now
            self.fetches += 1
            try:
                self._keys = _Keys(await self._fetch(), fetched_at=now)
            except Unavailable as error:
                if stale is not None and now - stale.fetched_at < 2 * self._cache_seconds:
                    log.warning("jwks refetch failed; using the previous keys", error=error.message)
                    return stale
                self._keys = None
                raise
            return self._keys

    async def _fetch(self) -> dict[str, _Key]:
        metadata = await self._metadata()
        jwks_uri = metadata.get("jwks_uri")
        if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).scheme not in ("https", "http"):
            raise Unavailable("the authorization server's metadata has no usable jwks_uri")
        document = await self._fetch_json(jwks_uri)
        raw = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(raw, list):
            raise Unavailable("the authorization server's jwks_uri did not return a key set")
        keys: dict[str, _Key] = {}
        for entry in raw:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue  # encryption keys and junk are not for verifying signatures
            try:
                declared = entry.get("alg")
                keys[str(entry.get("kid", ""))] = _Key(PyJWK(entry), declared if isinstance(declared, str) else None)
            except PyJWKError:
                continue  # a key type this library cannot use: other keys may still serve
        if not keys:
            raise Unavailable("the authorization server publishes no signing key this server can use")
        log.info("jwks fetched", issuer=self._issuer, keys=sorted(keys))
        return keys

    async def _metadata(self) -> dict[str, Any]:
        """RFC 8414 metadata, else OpenID Connect discovery; its `issuer` must be ours (RFC 8414 §3.3)."""
        failure = "no metadata document"
        for url in metadata_urls(self._issuer):
            try:
                document = await self._fetch_json(url)
            except Unavailable as error:
                failure = error.message
                continue
            if not isinstance(document, dict):
                failure = f"{url} is not a JSON object"
                continue
            if document.get("issuer") != self._issuer:
                raise Unavailable(f"the metadata at {url} names issuer {document.get('issuer')!r}, not {self._issuer}")
            return document
        raise Unavailable(f"the authorization server's metadata could not be read: {failure}")


def metadata_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata may be: the RFC 8414 path first, then OpenID Connect's."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    return [
        urlunsplit((parts.scheme, parts.netloc, "/.well-known/oauth-authorization-server" + path, "", "")),
        issuer.rstrip("/") + "/.well-known/openid-configuration",
    ]


def _find(keys: _Keys, kid: str | None) -> _Key | None:
    if kid is not None:
        return keys.by_kid.get(kid)
    return next(iter(keys.by_kid.values())) if len(keys.by_kid) == 1 else None


def _check_family(key: _Key, algorithm: str) -> None:
    family = _FAMILIES.get(algorithm[:2])
    declared = key.declared_alg
    if family != key.jwk.key_type or (declared is not None and declared != algorithm):
        raise UnknownKey(f"the token's key ({key.jwk.key_type}, alg {declared}) cannot be used with {algorithm}")


def http_fetcher(timeout_seconds: float) -> FetchJson:
    """GET a JSON document: bounded in time and size, no redirects, no credentials sent."""

    async def fetch(url: str) -> Any:
        try:
            with anyio.fail_after(timeout_seconds):
                async with (
                    httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False) as client,
                    client.stream("GET", url, headers={"Accept": "application/json"}) as response,
                ):
                    if response.status_code != 200:
                        raise Unavailable(f"{url} answered HTTP {response.status_code}")
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_DOCUMENT_BYTES:
                            raise Unavailable(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
            return json.loads(body)
        except TimeoutError:
            raise Unavailable(f"{url} did not answer within {timeout_seconds:g} s") from None
        except httpx.HTTPError as error:
            raise Unavailable(f"{url} could not be fetched ({type(error).__name__})") from None
        except ValueError:
            raise Unavailable(f"{url} did not return JSON") from None

    return fetch
