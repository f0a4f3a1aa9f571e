"""Sign-in with a team's identity provider: the HTTP server as an OAuth 2.1 resource server.

The MCP authorization spec gives this server the resource-server role only: a host signs its user
in at the team's identity provider (Okta, Entra ID, Auth0, Keycloak, ...) and sends the access token
it got as `Authorization: Bearer ...`. `IdentityProviderVerifier` decides whether such a token was
issued by that provider for this server; the SDK's bearer middleware (`streamable_http_app(auth=...,
token_verifier=...)`) answers 401 for a refused token and 403 `insufficient_scope` for a token
without the scopes of `auth_settings()`, so scopes are required in one place only.

A refused token is never logged, whole or in part: only the reason's class is.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import httpx2
import jwt
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from pydantic import Field

from respan_mcp.client import package_version
from respan_mcp.net import LOOPBACK_TEXT, is_secure_url

logger = logging.getLogger(__name__)

# Asymmetric signatures only: `none` and HS* (an HMAC "keyed" with the issuer's public key) never pass.
ALGORITHMS = ("RS256", "PS256", "ES256")
KEY_TYPES = {"RS256": "RSA", "PS256": "RSA", "ES256": "EC"}
LEEWAY = 60.0  # seconds of clock skew tolerated on exp/nbf, here and in the SDK's own expiry check
REFRESH_INTERVAL = 30.0  # at most one JWKS fetch per this many seconds, however many unknown kids arrive
FIRST_LOAD_RETRY = 2.0  # until the keys first load, a fetch may be retried this often: no caller passes before
KEYS_MAX_AGE = 3600.0  # refetch the key set this often, so a key the provider withdrew stops working
TIMEOUT = 10.0  # seconds for each phase of a request to the provider (connect, each read)
DEADLINE = 15.0  # seconds for a whole request to the provider, however slowly it drips its answer
ANSWER_MAX = 1024 * 1024  # bytes of metadata, keys or introspection answer read at most


class SignedInCaller(AccessToken):
    """A verified token and who it speaks for: `client_id`, `subject` (`sub`), `email`, `claims["iss"]`.

    The raw token is kept because the SDK's model requires it, but it is left out of `repr` and of
    `model_dump()`, so logging this object (e.g. in the JSON call log) cannot leak it.
    """

    token: str = Field(repr=False, exclude=True)
    email: str | None = None

    @property
    def issuer(self) -> str | None:
        return (self.claims or {}).get("iss")


@dataclass(frozen=True)
class Introspection:
    """RFC 7662 credentials, for tokens that are not JWTs; `url` defaults to the issuer's metadata."""

    client_id: str
    client_secret: str = field(repr=False)
    url: str | None = None


class IdentityProviderError(Exception):
    """The identity provider's metadata or keys could not be had; the message says what to fix."""


class Refused(Exception):
    """A token was refused; `str()` is the reason's class, never any piece of the token."""


def auth_settings(resource_url: str, issuer: str, scopes: list[str]) -> AuthSettings:
    """The SDK's settings for a resource server at `resource_url` trusting `issuer`.

    The SDK serves them as `/.well-known/oauth-protected-resource{path}` and answers 403
    `insufficient_scope` when a token lacks one of `scopes`. `validate_token_resource` is off
    because `IdentityProviderVerifier` checks the audience itself (which may be set apart from the
    resource URL, e.g. Entra's `api://...`).
    """
    # Validated from strings, not built with AnyHttpUrl(): the settings model keeps a path-less
    # issuer as spelt, where AnyHttpUrl adds a "/" that hosts, comparing issuers exactly, refuse.
    return AuthSettings.model_validate(
        {
            "issuer_url": issuer,
            "resource_server_url": resource_url,
            "required_scopes": list(scopes),
            "validate_token_resource": False,
        }
    )


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


class IdentityProviderVerifier(TokenVerifier):
    """Verifies bearer tokens from one issuer, for one audience (by default the resource URL).

    JWT access tokens (RFC 9068) are checked locally against the issuer's published keys; any other
    token (an opaque token, or a Respan API key sent by mistake) is asked about at the issuer's
    introspection endpoint (RFC 7662) when `introspection` credentials are given, and refused otherwise.
    `clock` (seconds since the epoch) is injectable so tests can move time without sleeping, and so
    are `refresh_interval` (the rate limit on refetching keys) and `deadline` (one request's bound).

    No lock is held across a network call: one fetch runs at a time, and while it does, every other
    caller goes on with the keys already cached (or is refused at once when there are none), so a
    slow provider never stalls the callers it is not needed for.
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        introspection: Introspection | None = None,
        http: httpx2.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        refresh_interval: float = REFRESH_INTERVAL,
        deadline: float = DEADLINE,
    ) -> None:
        require_secure(issuer, "the issuer")
        if introspection and introspection.url:
            require_secure(introspection.url, "the introspection URL")
        self.issuer, self.audience, self.introspection = issuer, audience, introspection
        self._http, self._owns_http = http, http is None
        self._clock, self.refresh_interval, self.deadline = clock, refresh_interval, deadline
        self._fetching = False  # one fetch at a time; the others do not wait for it
        self.problem: str | None = "the identity provider's keys are not loaded yet"  # for /readyz
        self._metadata: Mapping[str, Any] | None = None
        self._keys: dict[str | None, dict[str, Any]] = {}  # kid -> public JWK
        self._built: dict[tuple[str | None, str], jwt.PyJWK] = {}
        self._loaded_at: float | None = None
        self._last_attempt: float | None = None

    # -- life cycle -----------------------------------------------------------------------------

    async def load(self) -> None:
        """Fetch the issuer's metadata and keys now (at start); raises `IdentityProviderError`."""
        self._last_attempt = self._clock()
        await self._fetch_once()

    async def ready(self) -> bool:
        """Whether the issuer's keys are loaded; if not, try again unless a fetch is running or was just
        tried (every FIRST_LOAD_RETRY seconds at most until they first load). `problem` says why not."""
        if self._loaded_at is None:
            await self._refresh()
        return self._loaded_at is not None

    async def aclose(self) -> None:
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- TokenVerifier --------------------------------------------------------------------------

    async def verify_token(self, token: str) -> SignedInCaller | None:
        try:
            return await self._verify(token)
        except Refused as refused:
            logger.info("bearer token refused: %s", refused)
            return None

    async def _verify(self, token: str) -> SignedInCaller:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            if self.introspection is None:
                raise Refused("not a JWT, and no introspection is configured") from None
            return await self._introspect(token)
        return await self._verify_jwt(token, header)

    async def _verify_jwt(self, token: str, header: Mapping[str, Any]) -> SignedInCaller:
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise Refused("signature algorithm not allowed")
        key = await self._signing_key(header.get("kid"), alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                # exp and nbf are checked below against the injectable clock.
                options={"require": ["exp", "iss", "aud"], "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.InvalidSignatureError:
            raise Refused("bad signature") from None
        except jwt.InvalidIssuerError:
            raise Refused("wrong issuer") from None
        except jwt.InvalidAudienceError:
            raise Refused("wrong audience") from None
        except jwt.MissingRequiredClaimError:
            raise Refused("missing claim") from None
        except jwt.PyJWTError:
            raise Refused("malformed token") from None
        self._check_times(claims)
        return self._caller(token, claims)

    async def _signing_key(self, kid: Any, alg: str) -> jwt.PyJWK:
        if not isinstance(kid, (str, type(None))):
            raise Refused("malformed token")
        jwk = self._find_key(kid)
        if jwk is None or self._loaded_at is None or self._clock() - self._loaded_at > KEYS_MAX_AGE:
            await self._refresh()  # rate-limited; a failed refetch keeps the keys we have
            jwk = self._find_key(kid)
        if jwk is None:
            raise Refused("unknown signing key")
        if jwk.get("alg", alg) != alg or jwk.get("kty") != KEY_TYPES[alg]:
            raise Refused("signature algorithm does not match the key")
        built = self._built.get((kid, alg))
        if built is None:
            try:
                built = self._built[(kid, alg)] = jwt.PyJWK(jwk, algorithm=alg)
            except jwt.PyJWTError:
                raise Refused("signature algorithm does not match the key") from None
        return built

    def _find_key(self, kid: str | None) -> dict[str, Any] | None:
        if kid is None and len(self._keys) == 1:  # a provider with one key may leave kid out
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock()
        exp, nbf, _ = (_time_claim(claims, name) for name in ("exp", "nbf", "iat"))
        if exp is None:
            raise Refused("malformed token")
        if now > exp + LEEWAY:
            raise Refused("expired")
        if nbf is not None and now < nbf - LEEWAY:
            raise Refused("not yet valid")

    def _caller(self, token: str, claims: Mapping[str, Any]) -> SignedInCaller:
        """Who the token speaks for. RFC 9068 says `client_id` and `scope`; Okta writes the client as
        `cid` and scopes as an `scp` list, Entra `azp` (v2) or `appid` (v1) and an `scp` string."""
        scope = claims.get("scope", claims.get("scp", ""))
        scopes = scope.split() if isinstance(scope, str) else [s for s in scope if isinstance(s, str)] if isinstance(scope, list) else []
        subject, email = claims.get("sub"), claims.get("email")
        client_id = next((c for c in (claims.get(n) for n in ("client_id", "cid", "azp", "appid")) if isinstance(c, str)), subject)
        if not isinstance(client_id, str):
            raise Refused("missing claim")
        exp = _time_claim(claims, "exp")
        return SignedInCaller(
            token=token,
            client_id=client_id,
            scopes=scopes,
            # The SDK refuses a token past `expires_at` by its own clock, without leeway: give it ours.
            expires_at=math.floor(exp + LEEWAY) if exp is not None else None,
            resource=self.audience,
            subject=subject if isinstance(subject, str) else None,
            email=email if isinstance(email, str) else None,
            claims={"iss": self.issuer},
        )

    # -- introspection (RFC 7662) ---------------------------------------------------------------

    async def _introspect(self, token: str) -> SignedInCaller:
        assert self.introspection is not None
        url = self.introspection.url
        if url is None:
            if self._metadata is None:
                await self._refresh()
            url = (self._metadata or {}).get("introspection_endpoint")
            if not isinstance(url, str):
                raise Refused("introspection endpoint unknown")
        # RFC 6749 §2.3.1: the Basic credentials are form-encoded before base64.
        credentials = (quote(self.introspection.client_id, safe=""), quote(self.introspection.client_secret, safe=""))
        try:
            answer = await self._fetch_json(
                "POST", url, data={"token": token, "token_type_hint": "access_token"}, auth=credentials
            )
        except IdentityProviderError as error:
            logger.warning("token introspection failed: %s", error)
            raise Refused("introspection failed") from None
        if answer.get("active") is not True:
            raise Refused("inactive (introspection)")
        if answer.get("iss", self.issuer) != self.issuer:
            raise Refused("wrong issuer")
        audience = answer.get("aud")
        if not (audience == self.audience or (isinstance(audience, list) and self.audience in audience)):
            raise Refused("wrong audience")
        if "exp" in answer:
            self._check_times(answer)
        return self._caller(token, answer)

    # -- metadata and keys ----------------------------------------------------------------------

    def _client(self) -> httpx2.AsyncClient:
        if self._http is None:
            self._http = httpx2.AsyncClient(timeout=TIMEOUT, headers={"User-Agent": f"respan-mcp/{package_version()}"})
        return self._http

    async def _refresh(self) -> bool:
        """Refetch metadata and keys unless that was tried less than REFRESH_INTERVAL ago.

        Returns whether a fetch succeeded, so a flood of made-up kids costs the issuer one
        request per interval at most.
        """
        if self._fetching:
            return False  # one is running: go on with the keys we have rather than wait for it
        now = self._clock()
        interval = self.refresh_interval if self._loaded_at is not None else min(FIRST_LOAD_RETRY, self.refresh_interval)
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
            await self._fetch_keys()
        except IdentityProviderError as error:
            if self._loaded_at is None:
                self.problem = f"the identity provider's keys are not loaded yet: {error}"
            raise
        finally:
            self._fetching = False
        self.problem = None

    async def _fetch_keys(self) -> None:
        if self._metadata is None:
            self._metadata = await self._discover()
        jwks_uri = self._metadata.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise IdentityProviderError(f"the metadata of {self.issuer} has no jwks_uri; it cannot sign JWT access tokens")
        require_secure(jwks_uri, "the jwks_uri")
        document = await self._get_json(jwks_uri)
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
        self._keys, self._built, self._loaded_at = keys, {}, self._clock()

    async def _discover(self) -> Mapping[str, Any]:
        tried: list[str] = []
        for url in discovery_urls(self.issuer):
            try:
                metadata = await self._get_json(url)
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

    async def _get_json(self, url: str) -> dict[str, Any]:
        return await self._fetch_json("GET", url)

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


def _time_claim(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim (exp, nbf, iat), or None when absent; anything but a finite number is refused."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Refused("malformed token")
    try:
        seconds = float(value)
    except OverflowError:  # an integer past what a float holds
        raise Refused("malformed token") from None
    if not math.isfinite(seconds):
        raise Refused("malformed token")
    return seconds
