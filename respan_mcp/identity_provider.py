"""Fetching from the team's identity provider: its metadata, its signing keys, and what it says of a token.

Every request is bounded: `deadline` seconds in all, so a provider that drips its answer cannot
hold a caller, and ANSWER_MAX bytes, so an endless or giant answer is cut off instead of held in
memory. Every URL is https except to loopback (OAuth 2.1). A failure raises
`IdentityProviderError`, whose message says what to fix.

The keys are kept and fetched again at most every `refresh_interval` seconds, however many
unknown kids arrive. No lock is held across a network call: one fetch runs at a time, and while
it does, every other caller goes on with the keys already kept (or none), so a slow provider
never stalls the callers it is not needed for. What a key or an answer means for a token is
`auth.py`'s.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import httpx2
import jwt

from respan_mcp.client import package_version
from respan_mcp.net import LOOPBACK_TEXT, is_secure_url

logger = logging.getLogger(__name__)

REFRESH_INTERVAL = 30.0  # at most one JWKS fetch per this many seconds, however many unknown kids arrive
FIRST_LOAD_RETRY = 2.0  # until the keys first load, a fetch may be retried this often: no caller passes before
KEYS_MAX_AGE = 3600.0  # refetch the key set this often, so a key the provider withdrew stops working
TIMEOUT = 10.0  # seconds for each phase of a request to the provider (connect, each read)
DEADLINE = 15.0  # seconds for a whole request to the provider, however slowly it drips its answer
ANSWER_MAX = 1024 * 1024  # bytes of metadata, keys or introspection answer read at most


class IdentityProviderError(Exception):
    """The identity provider's metadata or keys could not be had; the message says what to fix."""


def discovery_urls(issuer: str) -> list[str]:
    """Where the issuer's metadata may be: OpenID Connect's appended form, then RFC 8414's
    path-inserted form, then (for an issuer with a path, as Keycloak serves it) RFC 8414 appended."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    origin = f"{parts.scheme}://{parts.netloc}"
    urls = [f"{issuer.rstrip('/')}/.well-known/openid-configuration", f"{origin}/.well-known/oauth-authorization-server{path}"]
    if path:
        urls.append(f"{origin}{path}/.well-known/oauth-authorization-server")
    return urls


def require_secure(url: str, what: str) -> None:
    """OAuth 2.1: https everywhere except loopback (tests, a provider on the same machine): net.py's rule,
    the one config.py checks the issuer by at start, so an issuer it let pass is never refused here."""
    if not is_secure_url(url):
        raise IdentityProviderError(f"{what} {url!r} must be an https:// URL (http:// only to {LOOPBACK_TEXT})")


class IdentityProvider:
    """One issuer's metadata and signing keys, fetched over one HTTP client (made on first use unless
    `http` is given) and kept. `clock` (seconds since the epoch) is injectable, so tests move time
    without sleeping."""

    def __init__(
        self,
        issuer: str,
        *,
        http: httpx2.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        refresh_interval: float = REFRESH_INTERVAL,
        deadline: float = DEADLINE,
    ) -> None:
        self.issuer, self.deadline, self.refresh_interval, self._clock = issuer, deadline, refresh_interval, clock
        self._http, self._owns_http = http, http is None
        self._fetching = False  # one fetch at a time; the others do not wait for it
        self.problem: str | None = "the identity provider's keys are not loaded yet"  # for /readyz
        self._metadata: Mapping[str, Any] | None = None
        self._keys: dict[str | None, dict[str, Any]] = {}  # kid -> public JWK
        self.loaded_at: float | None = None
        self.generation = 0  # counts the key sets loaded: what was built from an older one is stale
        self._last_attempt: float | None = None

    async def load(self) -> None:
        """Fetch the issuer's metadata and keys now (at start); raises `IdentityProviderError`."""
        self._last_attempt = self._clock()
        await self._fetch_once()

    async def ready(self) -> bool:
        """Whether the issuer's keys are loaded; if not, try again unless a fetch is running or was just
        tried (every FIRST_LOAD_RETRY seconds at most until they first load). `problem` says why not."""
        if self.loaded_at is None:
            await self._refresh()
        return self.loaded_at is not None

    async def aclose(self) -> None:
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def key(self, kid: str | None) -> dict[str, Any] | None:
        """The public JWK with this kid, the key set fetched again first when it lacks the kid or is
        older than KEYS_MAX_AGE (rate-limited; a failed refetch keeps the keys we have)."""
        jwk = self._find_key(kid)
        if jwk is None or self.loaded_at is None or self._clock() - self.loaded_at > KEYS_MAX_AGE:
            await self._refresh()
            jwk = self._find_key(kid)
        return jwk

    def _find_key(self, kid: str | None) -> dict[str, Any] | None:
        if kid is None and len(self._keys) == 1:  # a provider with one key may leave kid out
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def introspection_endpoint(self) -> Any:
        """The metadata's `introspection_endpoint` (fetching the metadata first if it is not kept yet)."""
        if self._metadata is None:
            await self._refresh()
        return (self._metadata or {}).get("introspection_endpoint")

    async def _refresh(self) -> bool:
        """Refetch metadata and keys unless that was tried less than `refresh_interval` ago.

        Returns whether a fetch succeeded, so a flood of made-up kids costs the issuer one
        request per interval at most.
        """
        if self._fetching:
            return False  # one is running: go on with the keys we have rather than wait for it
        now = self._clock()
        interval = self.refresh_interval if self.loaded_at is not None else min(FIRST_LOAD_RETRY, self.refresh_interval)
        if self._last_attempt is not None and now - self._last_attempt < interval:
            return False
        self._last_attempt = now  # set before the first await: concurrent callers see it at once
        try:
            await self._fetch_once()
        except IdentityProviderError as error:
            logger.warning("could not refresh the identity provider's keys: %s", error)
            return False
        return True

    async def _fetch_once(self) -> None:
        """One fetch of metadata and keys, marked as running so nobody else starts or waits for one."""
        self._fetching = True
        try:
            if self._metadata is None:
                self._metadata = await self._discover()
            keys = await self._signing_keys(self._metadata)
        except IdentityProviderError as error:
            if self.loaded_at is None:
                self.problem = f"the identity provider's keys are not loaded yet: {error}"
            raise
        finally:
            self._fetching = False
        self._keys, self.loaded_at, self.generation = keys, self._clock(), self.generation + 1
        self.problem = None

    async def _discover(self) -> Mapping[str, Any]:
        """The issuer's metadata, from the first of its discovery URLs that answers; it must name this issuer."""
        tried: list[str] = []
        for url in discovery_urls(self.issuer):
            try:
                metadata = await self._fetch_json("GET", url)
            except IdentityProviderError as error:
                tried.append(str(error))
                continue
            if metadata.get("issuer") != self.issuer:
                raise IdentityProviderError(
                    f"{url} names the issuer {metadata.get('issuer')!r}, not {self.issuer!r}: set RESPAN_OAUTH_ISSUER "
                    "to exactly the issuer your provider publishes (a trailing slash counts)"
                )
            return metadata
        raise IdentityProviderError(
            f"found no metadata for the issuer {self.issuer} ({'; '.join(tried)}); check RESPAN_OAUTH_ISSUER and "
            "that this server can reach the provider"
        )

    async def _signing_keys(self, metadata: Mapping[str, Any]) -> dict[str | None, dict[str, Any]]:
        """The RSA and EC signing keys the metadata's `jwks_uri` publishes, by kid (None for a key without one)."""
        jwks_uri = metadata.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise IdentityProviderError(f"the metadata of {self.issuer} has no jwks_uri; it cannot sign JWT access tokens")
        require_secure(jwks_uri, "the jwks_uri")
        document = await self._fetch_json("GET", jwks_uri)
        keys: dict[str | None, dict[str, Any]] = {}
        for jwk in document.get("keys", []) if isinstance(document.get("keys"), list) else []:
            if not isinstance(jwk, dict) or jwk.get("kty") not in ("RSA", "EC") or jwk.get("use", "sig") != "sig":
                continue
            try:
                jwt.PyJWK(jwk)
            except jwt.PyJWTError:
                continue  # a key type or curve we do not verify with
            keys[jwk.get("kid") if isinstance(jwk.get("kid"), str) else None] = jwk
        if not keys:
            raise IdentityProviderError(f"{jwks_uri} holds no RSA or EC signing key; check RESPAN_OAUTH_ISSUER")
        return keys

    async def introspect(self, url: str, token: str, client_id: str, client_secret: str) -> dict[str, Any]:
        """What the introspection endpoint (RFC 7662) says of `token`, asked with this server's credentials."""
        # RFC 6749 §2.3.1: the Basic credentials are form-encoded before base64.
        credentials = (quote(client_id, safe=""), quote(client_secret, safe=""))
        return await self._fetch_json(
            "POST", url, data={"token": token, "token_type_hint": "access_token"}, auth=credentials
        )

    def _client(self) -> httpx2.AsyncClient:
        if self._http is None:
            self._http = httpx2.AsyncClient(timeout=TIMEOUT, headers={"User-Agent": f"respan-mcp/{package_version()}"})
        return self._http

    async def _fetch_json(self, method: str, url: str, **options: Any) -> dict[str, Any]:
        """A JSON object from the provider, within `deadline` seconds in all and ANSWER_MAX bytes.

        The body is streamed, so an endless or giant answer is cut off at the cap instead of being
        held in memory, and a provider that drips bytes cannot hold a caller past the deadline.
        """
        body = bytearray()
        try:
            with anyio.fail_after(self.deadline):
                async with self._client().stream(
                    method, url, headers={"Accept": "application/json"}, **options
                ) as response:
                    if response.status_code != 200:
                        raise IdentityProviderError(f"{url} answered {response.status_code}")
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > ANSWER_MAX:
                            raise IdentityProviderError(f"{url} answered more than {ANSWER_MAX} bytes")
        except TimeoutError:
            raise IdentityProviderError(f"{url} did not answer in full within {self.deadline:g} s") from None
        except httpx2.HTTPError as error:
            raise IdentityProviderError(f"{url}: {type(error).__name__}") from None
        try:
            document = json.loads(body)
        except ValueError:
            raise IdentityProviderError(f"{url} did not answer JSON") from None
        if not isinstance(document, dict):
            raise IdentityProviderError(f"{url} did not answer a JSON object")
        return document
