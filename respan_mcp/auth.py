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

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2
import jwt
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from pydantic import Field

from respan_mcp.identity_provider import (
    DEADLINE,
    REFRESH_INTERVAL,
    IdentityProvider,
    IdentityProviderError,
    require_secure,
)

logger = logging.getLogger(__name__)

# Asymmetric signatures only: `none` and HS* (an HMAC "keyed" with the issuer's public key) never pass.
ALGORITHMS = ("RS256", "PS256", "ES256")
KEY_TYPES = {"RS256": "RSA", "PS256": "RSA", "ES256": "EC"}
LEEWAY = 60.0  # seconds of clock skew tolerated on exp/nbf, here and in the SDK's own expiry check


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


class IdentityProviderVerifier(TokenVerifier):
    """Verifies bearer tokens from one issuer, for one audience (by default the resource URL).

    JWT access tokens (RFC 9068) are checked locally against the issuer's published keys; any other
    token (an opaque token, or a Respan API key sent by mistake) is asked about at the issuer's
    introspection endpoint (RFC 7662) when `introspection` credentials are given, and refused otherwise.
    `clock` (seconds since the epoch) is injectable so tests can move time without sleeping, and so
    are `refresh_interval` (the rate limit on refetching keys) and `deadline` (one request's bound).

    The issuer's metadata and keys are fetched and kept by `identity_provider.IdentityProvider`.
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
        self.issuer, self.audience, self.introspection, self._clock = issuer, audience, introspection, clock
        self._provider = IdentityProvider(issuer, http=http, clock=clock, refresh_interval=refresh_interval, deadline=deadline)
        self._built: dict[tuple[str | None, str], jwt.PyJWK] = {}
        self._built_from = 0  # the provider's key set `_built` was built from

    # -- life cycle -----------------------------------------------------------------------------

    async def load(self) -> None:
        """Fetch the issuer's metadata and keys now (at start); raises `IdentityProviderError`."""
        await self._provider.load()

    async def ready(self) -> bool:
        """Whether the issuer's keys are loaded (trying again if not, as the provider allows); `problem` says why not."""
        return await self._provider.ready()

    @property
    def problem(self) -> str | None:
        return self._provider.problem

    async def aclose(self) -> None:
        await self._provider.aclose()

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
        jwk = await self._provider.key(kid)
        if jwk is None:
            raise Refused("unknown signing key")
        if jwk.get("alg", alg) != alg or jwk.get("kty") != KEY_TYPES[alg]:
            raise Refused("signature algorithm does not match the key")
        if self._built_from != self._provider.generation:  # a new key set: nothing built from the old one holds
            self._built, self._built_from = {}, self._provider.generation
        built = self._built.get((kid, alg))
        if built is None:
            try:
                built = self._built[(kid, alg)] = jwt.PyJWK(jwk, algorithm=alg)
            except jwt.PyJWTError:
                raise Refused("signature algorithm does not match the key") from None
        return built

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
            url = await self._provider.introspection_endpoint()
            if not isinstance(url, str):
                raise Refused("introspection endpoint unknown")
        try:
            answer = await self._provider.introspect(
                url, token, self.introspection.client_id, self.introspection.client_secret
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
