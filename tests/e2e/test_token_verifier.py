"""Sign-in with an identity provider: which bearer tokens `IdentityProviderVerifier` accepts.

Most tests run against a real OpenID provider (the certified `oidc-provider` under node, see
tests/oidc_fixture.py); discovery fallbacks, the JWKS rate limit and introspection's wire form are
also unit-tested with `httpx2.MockTransport`. Time moves by an injected clock, never by sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jwt
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend
from mcp.server.lowlevel import Server
from mcp.types import CallToolRequestParams, CallToolResult, ListToolsResult, TextContent, Tool
from starlette.requests import HTTPConnection

from respan_mcp.auth import IdentityProviderVerifier, Introspection, SignedInCaller, auth_settings
from respan_mcp.identity_provider import KEYS_MAX_AGE, REFRESH_INTERVAL, IdentityProviderError, discovery_urls
from tests.oidc_fixture import (
    CLIENT,
    EMAIL,
    OPAQUE_RESOURCE,
    OTHER_SCOPE,
    RESOURCE,
    SCOPE,
    OpenIdProvider,
    SigningKey,
    oidc_provider,  # noqa: F401  (the `oidc` fixture)
)

pytestmark = pytest.mark.anyio

RAW_RESPAN_KEY = "sk-canary-" + secrets.token_hex(12)  # must never show in a log line


class Clock:
    """An injectable clock: `advance()` moves it, nothing sleeps."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@asynccontextmanager
async def verifier_for(
    issuer: str, *, clock: Callable[[], float] = time.time, audience: str = RESOURCE, **options: Any
) -> AsyncIterator[IdentityProviderVerifier]:
    verifier = IdentityProviderVerifier(issuer, audience, clock=clock, **options)
    try:
        yield verifier
    finally:
        await verifier.aclose()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A compact JWS assembled by hand: the forms no JWT library will produce on purpose."""
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}.{b64url(signature)}"


# -- against the real provider --------------------------------------------------------------------


@pytest.mark.slow
async def test_a_token_from_the_provider_is_accepted_with_its_scopes_and_caller(oidc: OpenIdProvider) -> None:
    async with verifier_for(oidc.issuer) as verifier:
        await verifier.load()
        assert await verifier.ready()
        caller = await verifier.verify_token(oidc.token())
    assert isinstance(caller, SignedInCaller)
    assert (caller.client_id, caller.subject, caller.email, caller.issuer) == (CLIENT.client_id, CLIENT.client_id, EMAIL, oidc.issuer)
    assert caller.scopes == [SCOPE] and caller.resource == RESOURCE and caller.expires_at is not None


@pytest.mark.slow
async def test_an_es256_token_signed_with_the_providers_ec_key_is_accepted(oidc: OpenIdProvider) -> None:
    ec_key = next(key for key in oidc.keys if key.alg == "ES256")
    async with verifier_for(oidc.issuer) as verifier:
        caller = await verifier.verify_token(oidc.mint(ec_key, scope=f"{SCOPE} {OTHER_SCOPE}"))
    assert caller is not None and caller.scopes == [SCOPE, OTHER_SCOPE]


@pytest.mark.slow
@pytest.mark.parametrize(
    "claims",
    [
        {"scope": None, "scp": [SCOPE], "client_id": None, "cid": "app", "sub": "ann@example.test"},  # Okta
        {"scope": None, "scp": SCOPE, "client_id": None, "azp": "app", "sub": "opaque-user-id"},  # Entra v2
        {"scope": None, "scp": SCOPE, "client_id": None, "appid": "app", "sub": "opaque-user-id"},  # Entra v1
    ],
    ids=["okta", "entra-v2", "entra-v1"],
)
async def test_the_client_and_scopes_are_read_where_each_provider_writes_them(
    oidc: OpenIdProvider, claims: dict[str, Any]
) -> None:
    async with verifier_for(oidc.issuer) as verifier:
        caller = await verifier.verify_token(oidc.mint(**claims))
    assert caller is not None and (caller.client_id, caller.subject, caller.scopes) == ("app", claims["sub"], [SCOPE])


@pytest.mark.slow
async def test_an_expired_token_is_refused_past_the_leeway_only(oidc: OpenIdProvider) -> None:
    token = oidc.token()
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    clock = Clock(expires + 30)  # within the 60 s leeway
    async with verifier_for(oidc.issuer, clock=clock) as verifier:
        assert await verifier.verify_token(token) is not None
        clock.advance(31)
        assert await verifier.verify_token(token) is None


@pytest.mark.slow
async def test_a_token_not_yet_valid_is_refused(oidc: OpenIdProvider) -> None:
    async with verifier_for(oidc.issuer) as verifier:
        assert await verifier.verify_token(oidc.mint(nbf=int(time.time()) + 600)) is None


@pytest.mark.slow
async def test_a_token_for_another_resource_is_refused(oidc: OpenIdProvider) -> None:
    token = oidc.token(resource="https://other.example.test/api")  # honestly issued, for someone else
    async with verifier_for(oidc.issuer) as verifier:
        assert await verifier.verify_token(token) is None


@pytest.mark.slow
@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "http://127.0.0.1:1"},  # right key, wrong issuer
        {"exp": None},  # no expiry
        {"aud": None},  # no audience: e.g. a token only meant for userinfo
        {"aud": CLIENT.client_id},  # an ID token's audience is its client
    ],
    ids=["wrong-issuer", "no-exp", "no-aud", "id-token-audience"],
)
async def test_a_token_with_bad_claims_is_refused_even_when_signed_by_the_provider(
    oidc: OpenIdProvider, claims: dict[str, Any]
) -> None:
    async with verifier_for(oidc.issuer) as verifier:
        assert await verifier.verify_token(oidc.mint(**claims)) is None


@pytest.mark.slow
async def test_a_forged_signature_with_the_providers_kid_is_refused(oidc: OpenIdProvider) -> None:
    impostor = SigningKey.generate("RS256")
    forged = oidc.mint(impostor, header={"kid": oidc.keys[0].kid})
    async with verifier_for(oidc.issuer) as verifier:
        assert await verifier.verify_token(forged) is None
        assert await verifier.verify_token(oidc.mint()) is not None  # the same claims, honestly signed


@pytest.mark.slow
async def test_alg_none_is_refused(oidc: OpenIdProvider) -> None:
    token = unsigned({"alg": "none", "typ": "at+jwt", "kid": oidc.keys[0].kid}, oidc.claims())
    async with verifier_for(oidc.issuer) as verifier:
        assert await verifier.verify_token(token) is None


@pytest.mark.slow
async def test_hs256_keyed_with_the_providers_public_key_is_refused(oidc: OpenIdProvider) -> None:
    """The classic confusion attack: the public key, which anyone can fetch, used as an HMAC secret."""
    header = {"alg": "HS256", "typ": "at+jwt", "kid": oidc.keys[0].kid}
    signing_input = unsigned(header, oidc.claims()).rsplit(".", 1)[0]
    for secret in (oidc.keys[0].public_pem(), json.dumps(oidc.keys[0].public_jwk()).encode()):
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        async with verifier_for(oidc.issuer) as verifier:
            assert await verifier.verify_token(f"{signing_input}.{b64url(mac)}") is None


@pytest.mark.slow
async def test_an_rsa_key_cannot_verify_an_es256_header(oidc: OpenIdProvider) -> None:
    ec_key = next(key for key in oidc.keys if key.alg == "ES256")
    token = oidc.mint(ec_key, header={"kid": oidc.keys[0].kid})  # ES256 signature, RSA key's kid
    async with verifier_for(oidc.issuer) as verifier:
        assert await verifier.verify_token(token) is None


@pytest.mark.slow
async def test_a_token_without_the_scope_is_verified_but_carries_only_its_own_scopes(oidc: OpenIdProvider) -> None:
    """Refusing it is the middleware's job (403 insufficient_scope, see the HTTP test), not a 401."""
    async with verifier_for(oidc.issuer) as verifier:
        caller = await verifier.verify_token(oidc.token(scope=OTHER_SCOPE))
    assert caller is not None and caller.scopes == [OTHER_SCOPE]


@pytest.mark.slow
async def test_a_raw_respan_key_is_refused_without_introspection_and_never_logged(
    oidc: OpenIdProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with verifier_for(oidc.issuer) as verifier:
        assert await verifier.verify_token(RAW_RESPAN_KEY) is None
        assert await verifier.verify_token("") is None
    assert "not a JWT" in caplog.text and RAW_RESPAN_KEY not in caplog.text and RAW_RESPAN_KEY[3:12] not in caplog.text


@pytest.mark.slow
async def test_introspection_at_the_provider_refuses_a_raw_key_and_accepts_an_opaque_token(
    oidc: OpenIdProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    credentials = Introspection(CLIENT.client_id, CLIENT.client_secret)  # the endpoint comes from discovery
    async with verifier_for(oidc.issuer, audience=OPAQUE_RESOURCE, introspection=credentials) as verifier:
        assert await verifier.verify_token(RAW_RESPAN_KEY) is None  # the provider says active: false
        before = oidc.requests("/token/introspection")
        caller = await verifier.verify_token(oidc.token(resource=OPAQUE_RESOURCE))
        assert oidc.requests("/token/introspection") == before + 1
        # An opaque token for another resource is active, but not ours.
        assert await verifier.verify_token(oidc.token(resource="https://respan-mcp.example.test/opaque/other")) is None
    assert caller is not None and (caller.client_id, caller.email, caller.scopes) == (CLIENT.client_id, EMAIL, [SCOPE])
    assert "inactive" in caplog.text and RAW_RESPAN_KEY not in caplog.text
    assert CLIENT.client_secret not in caplog.text and CLIENT.client_secret not in repr(credentials)


@pytest.mark.slow
async def test_key_rotation_the_new_kid_is_fetched_once_the_old_key_stops_working(tmp_path: Path) -> None:
    old = SigningKey.generate("RS256")
    with OpenIdProvider(tmp_path, [old]) as provider:
        clock = Clock()
        async with verifier_for(provider.issuer, clock=clock) as verifier:
            await verifier.load()
            old_token = provider.token()
            assert await verifier.verify_token(old_token) is not None

            provider.restart([SigningKey.generate("ES256")])  # same issuer, a new key of another type
            new_token = provider.token()
            assert jwt.get_unverified_header(new_token)["alg"] == "ES256"
            assert await verifier.verify_token(new_token) is None  # within the refresh interval of load()
            assert provider.requests("/jwks") == 0

            clock.advance(REFRESH_INTERVAL + 1)
            caller = await verifier.verify_token(new_token)
            assert caller is not None and caller.client_id == CLIENT.client_id
            assert provider.requests("/jwks") == 1
            assert await verifier.verify_token(old_token) is None  # its key is gone
            assert provider.requests("/jwks") == 1  # and asking again for it was rate-limited


@pytest.mark.slow
async def test_a_flood_of_made_up_kids_costs_the_provider_one_jwks_fetch_per_interval(oidc: OpenIdProvider) -> None:
    clock = Clock()
    async with verifier_for(oidc.issuer, clock=clock) as verifier:
        await verifier.load()
        start = oidc.requests("/jwks")
        clock.advance(REFRESH_INTERVAL + 1)

        async def made_up() -> None:
            assert await verifier.verify_token(oidc.mint(header={"kid": secrets.token_hex(8)})) is None

        async with anyio.create_task_group() as group:
            for _ in range(40):
                group.start_soon(made_up)
        assert oidc.requests("/jwks") == start + 1
        for _ in range(10):
            clock.advance(REFRESH_INTERVAL / 4)
            await made_up()
        assert oidc.requests("/jwks") == start + 1 + 2  # 10 quarter-intervals: two more fetches at most
        assert await verifier.verify_token(oidc.token()) is not None  # the known kid costs nothing
        assert oidc.requests("/jwks") == start + 3


# -- over HTTP: the SDK's resource-server pieces with this verifier ---------------------------------


def whoami_server() -> Server[Any]:
    """A minimal MCP server whose one tool answers who the bearer token says the caller is."""

    async def list_tools(ctx: Any, params: Any) -> ListToolsResult:
        return ListToolsResult(tools=[Tool(name="whoami", input_schema={"type": "object"})])

    async def call_tool(ctx: Any, params: CallToolRequestParams) -> CallToolResult:
        caller = get_access_token()
        assert isinstance(caller, SignedInCaller)
        who = {"client_id": caller.client_id, "subject": caller.subject, "email": caller.email, "scopes": caller.scopes}
        return CallToolResult(content=[TextContent(type="text", text=json.dumps(who))])

    return Server("whoami", on_list_tools=list_tools, on_call_tool=call_tool)


@asynccontextmanager
async def serving(issuer: str) -> AsyncIterator[str]:
    """The SDK's streamable HTTP app with `auth_settings()` and the verifier, under uvicorn on loopback."""
    async with verifier_for(issuer) as verifier:
        app = whoami_server().streamable_http_app(auth=auth_settings(RESOURCE, issuer, [SCOPE]), token_verifier=verifier)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # connections wait in the backlog until uvicorn accepts: no readiness poll needed
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [listener])
            try:
                yield f"http://127.0.0.1:{listener.getsockname()[1]}"
            finally:
                server.should_exit = True


INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.mark.slow
async def test_http_refusals_point_the_host_at_the_protected_resource_metadata(oidc: OpenIdProvider) -> None:
    async with serving(oidc.issuer) as url, httpx2.AsyncClient(base_url=url, timeout=30) as http:
        metadata = (await http.get("/.well-known/oauth-protected-resource/mcp")).json()
        assert metadata["resource"] == RESOURCE
        assert metadata["authorization_servers"] == [oidc.issuer]
        assert metadata["scopes_supported"] == [SCOPE]

        for headers in ({}, {"Authorization": f"Bearer {RAW_RESPAN_KEY}"}, {"Authorization": f"Bearer {oidc.mint(aud='x')}"}):
            response = await http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS | headers)
            assert response.status_code == 401
            challenge = response.headers["www-authenticate"]
            assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
            assert 'resource_metadata="https://respan-mcp.example.test/.well-known/oauth-protected-resource/mcp"' in challenge

        response = await http.post(
            "/mcp", json=INITIALIZE, headers=MCP_HEADERS | {"Authorization": f"Bearer {oidc.token(scope=OTHER_SCOPE)}"}
        )
        assert response.status_code == 403
        assert response.json()["error"] == "insufficient_scope"
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


@pytest.mark.slow
async def test_http_a_signed_in_caller_reaches_the_tool_with_its_identity(oidc: OpenIdProvider) -> None:
    async with serving(oidc.issuer) as url:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {oidc.token()}"}, timeout=30) as http:
            async with Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
                result = await client.call_tool("whoami", {})
    assert not result.is_error
    text = result.content[0]
    assert isinstance(text, TextContent)
    assert json.loads(text.text) == {"client_id": CLIENT.client_id, "subject": CLIENT.client_id, "email": EMAIL, "scopes": [SCOPE]}


# -- unit: discovery, the refresh rate limit, introspection's wire form ----------------------------


ISSUER = "https://idp.example.test/tenant"


class FakeIssuer:
    """An issuer behind `httpx2.MockTransport`: `routes` maps a URL to (status, JSON); `seen` lists requests."""

    def __init__(self, routes: dict[str, tuple[int, Any]]) -> None:
        self.routes = routes
        self.seen: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.seen.append(request)
        status, body = self.routes.get(str(request.url), (404, {"error": "not found"}))
        return httpx2.Response(status, json=body)

    def client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self))

    def urls(self) -> list[str]:
        return [str(request.url) for request in self.seen]


def issuer_routes(key: SigningKey, issuer: str = ISSUER, **metadata: Any) -> dict[str, tuple[int, Any]]:
    return {
        "https://idp.example.test/.well-known/oauth-authorization-server/tenant": (
            200, {"issuer": issuer, "jwks_uri": "https://idp.example.test/keys"} | metadata,
        ),
        "https://idp.example.test/keys": (200, {"keys": [key.public_jwk()]}),
    }


def token_for(key: SigningKey, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": [RESOURCE, "other"], "client_id": "c", "scp": SCOPE, "exp": now + 300} | overrides
    return key.sign(claims)


async def test_with_keys_that_name_no_alg_as_entra_publishes_only_asymmetric_algorithms_pass() -> None:
    key = SigningKey.generate("RS256")
    routes = issuer_routes(key)
    routes["https://idp.example.test/keys"] = (200, {"keys": [{k: v for k, v in key.public_jwk().items() if k != "alg"}]})
    claims = jwt.decode(token_for(key), options={"verify_signature": False})
    header = {"typ": "at+jwt", "kid": key.kid}
    signing_input = unsigned({"alg": "HS256"} | header, claims).rsplit(".", 1)[0]
    hs256 = f"{signing_input}.{b64url(hmac.new(key.public_pem(), signing_input.encode(), hashlib.sha256).digest())}"
    ps256 = jwt.encode(claims, key.private, algorithm="PS256", headers=header)
    async with FakeIssuer(routes).client() as http, verifier_for(ISSUER, http=http) as verifier:
        assert await verifier.verify_token(unsigned({"alg": "none"} | header, claims)) is None
        assert await verifier.verify_token(hs256) is None
        assert await verifier.verify_token(token_for(key)) is not None
        assert await verifier.verify_token(ps256) is not None


async def test_malformed_tokens_are_refused_without_an_exception() -> None:
    key = SigningKey.generate()
    good = jwt.decode(token_for(key), options={"verify_signature": False})
    tokens = [
        "a.b.c", "....", "Bearer", "eyJ.eyJ.", unsigned({"alg": ["RS256"], "kid": key.kid}, good),
        unsigned({"alg": "RS256", "kid": {"x": 1}}, good), unsigned({"alg": "RS256", "kid": 7}, good),
        key.sign(good | {"exp": "tomorrow"}), key.sign(good | {"nbf": [1]}), key.sign(good | {"client_id": None, "sub": 5}),
    ]
    async with FakeIssuer(issuer_routes(key)).client() as http, verifier_for(ISSUER, http=http) as verifier:
        assert [await verifier.verify_token(token) for token in tokens] == [None] * len(tokens)
        odd_scope = await verifier.verify_token(key.sign(good | {"scp": 5}))
    assert odd_scope is not None and odd_scope.scopes == []


def test_discovery_tries_openid_then_rfc8414_path_inserted_then_appended() -> None:
    assert discovery_urls(ISSUER) == [
        "https://idp.example.test/tenant/.well-known/openid-configuration",
        "https://idp.example.test/.well-known/oauth-authorization-server/tenant",
        "https://idp.example.test/tenant/.well-known/oauth-authorization-server",
    ]
    assert discovery_urls("https://idp.example.test/") == [
        "https://idp.example.test/.well-known/openid-configuration",
        "https://idp.example.test/.well-known/oauth-authorization-server",
    ]


async def test_an_issuer_with_only_rfc8414_metadata_is_found_and_its_tokens_verified() -> None:
    key = SigningKey.generate("ES256")
    fake = FakeIssuer(issuer_routes(key))
    async with fake.client() as http, verifier_for(ISSUER, http=http) as verifier:
        await verifier.load()
        caller = await verifier.verify_token(token_for(key))
    assert caller is not None and caller.scopes == [SCOPE] and caller.client_id == "c"
    assert fake.urls() == [
        "https://idp.example.test/tenant/.well-known/openid-configuration",
        "https://idp.example.test/.well-known/oauth-authorization-server/tenant",
        "https://idp.example.test/keys",
    ]


async def test_metadata_naming_another_issuer_is_refused_with_both_names() -> None:
    fake = FakeIssuer(issuer_routes(SigningKey.generate(), issuer=ISSUER + "/"))
    async with fake.client() as http, verifier_for(ISSUER, http=http) as verifier:
        with pytest.raises(IdentityProviderError, match="RESPAN_OAUTH_ISSUER") as raised:
            await verifier.load()
        assert await verifier.ready() is False
    assert f"{ISSUER + '/'!r}" in str(raised.value) and f"{ISSUER!r}" in str(raised.value)


def test_an_http_issuer_off_loopback_is_refused() -> None:
    with pytest.raises(IdentityProviderError, match="https://"):
        IdentityProviderVerifier("http://idp.example.test", RESOURCE)


async def test_ready_retries_an_unreachable_issuer_once_per_interval() -> None:
    key = SigningKey.generate()
    fake = FakeIssuer({})  # nothing answers yet
    clock = Clock()
    async with fake.client() as http, verifier_for(ISSUER, http=http, clock=clock) as verifier:
        assert await verifier.ready() is False
        tried = len(fake.seen)
        assert await verifier.ready() is False and await verifier.verify_token(token_for(key)) is None
        assert len(fake.seen) == tried  # no new request within the interval
        fake.routes = issuer_routes(key)
        clock.advance(REFRESH_INTERVAL)
        assert await verifier.ready() is True
        assert await verifier.verify_token(token_for(key)) is not None


async def test_made_up_kids_refetch_the_keys_at_most_once_per_interval() -> None:
    key = SigningKey.generate()
    fake = FakeIssuer(issuer_routes(key))
    clock = Clock()
    async with fake.client() as http, verifier_for(ISSUER, http=http, clock=clock) as verifier:
        await verifier.load()
        for second in range(0, 95):  # 95 s of one made-up kid per second
            clock.now += 1 if second else 0
            assert await verifier.verify_token(key.sign({"iss": ISSUER}, kid=f"made-up-{second}")) is None
    assert fake.urls().count("https://idp.example.test/keys") == 1 + 3  # load, then at 30, 60 and 90 s


async def test_introspection_posts_the_token_with_form_encoded_basic_credentials() -> None:
    secret = "s3cr:t/+ü"
    answers: list[dict[str, Any]] = [
        {"active": True, "iss": ISSUER, "aud": RESOURCE, "scope": f"{SCOPE} x", "client_id": "c", "sub": "u", "exp": int(time.time()) + 60},
        {"active": True, "iss": ISSUER, "aud": "https://other.example.test/mcp", "scope": SCOPE, "client_id": "c"},
        {"active": True, "iss": "https://evil.example.test", "aud": RESOURCE, "scope": SCOPE, "client_id": "c"},
        {"active": True, "iss": ISSUER, "aud": RESOURCE, "scope": SCOPE, "client_id": "c", "exp": int(time.time()) - 120},
        {"active": "true", "iss": ISSUER, "aud": RESOURCE, "client_id": "c"},
    ]
    requests: list[httpx2.Request] = []

    def introspect(request: httpx2.Request) -> httpx2.Response:
        requests.append(request)
        return httpx2.Response(200, json=answers[len(requests) - 1])

    url = "https://idp.example.test/introspect"
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(introspect)) as http:
        async with verifier_for(ISSUER, http=http, introspection=Introspection("my client", secret, url)) as verifier:
            caller = await verifier.verify_token(RAW_RESPAN_KEY)
            refused = [await verifier.verify_token(RAW_RESPAN_KEY) for _ in answers[1:]]
    assert caller is not None and (caller.client_id, caller.subject, caller.scopes) == ("c", "u", [SCOPE, "x"])
    assert refused == [None] * 4
    first = requests[0]
    assert (first.method, str(first.url)) == ("POST", url)
    assert dict(httpx2.QueryParams(first.content.decode())) == {"token": RAW_RESPAN_KEY, "token_type_hint": "access_token"}
    expected = base64.b64encode(b"my%20client:s3cr%3At%2F%2B%C3%BC").decode()
    assert first.headers["authorization"] == f"Basic {expected}"


def test_a_signed_in_caller_never_shows_its_token() -> None:
    caller = SignedInCaller(token=RAW_RESPAN_KEY, client_id="c", scopes=[SCOPE], subject="u", email=EMAIL, claims={"iss": ISSUER})
    assert RAW_RESPAN_KEY not in repr(caller) and RAW_RESPAN_KEY not in str(caller)
    assert RAW_RESPAN_KEY not in caller.model_dump_json() and caller.model_dump()["email"] == EMAIL
    assert caller.issuer == ISSUER


def test_auth_settings_name_the_resource_issuer_and_scopes() -> None:
    settings = auth_settings(RESOURCE, ISSUER, [SCOPE])
    assert (str(settings.resource_server_url), str(settings.issuer_url)) == (RESOURCE, ISSUER)
    assert settings.required_scopes == [SCOPE] and settings.validate_token_resource is False


@pytest.mark.parametrize("issuer", ["https://login.example.test", "https://login.example.test/", "http://127.0.0.1:8080"])
def test_auth_settings_keep_the_issuer_as_spelt(issuer: str) -> None:
    """Hosts compare the issuer named in the resource metadata with the provider's own, character for
    character (RFC 8414): a trailing slash added to a path-less issuer makes them refuse to sign in."""
    assert str(auth_settings(RESOURCE, issuer, [SCOPE]).issuer_url) == issuer


# -- a hostile or slow identity provider cannot take sign-in down -----------------------------------


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), pytest.param(10**400, id="huge"), "soon", True, [1]])
async def test_a_time_claim_that_is_not_a_finite_number_is_refused_not_an_error(claim: str, value: Any) -> None:
    key = SigningKey.generate()
    fake = FakeIssuer(issuer_routes(key))
    async with fake.client() as http, verifier_for(ISSUER, http=http) as verifier:
        await verifier.load()
        assert await verifier.verify_token(token_for(key, **{claim: value})) is None  # a 401, never a 500
        assert await verifier.verify_token(token_for(key)) is not None  # the control: the same token otherwise


async def test_a_token_expired_within_the_leeway_passes_the_sdks_own_expiry_check() -> None:
    """The README's 60 s of clock skew is what the SDK's bearer check applies too, not 0 s."""
    key = SigningKey.generate()
    fake = FakeIssuer(issuer_routes(key))
    async with fake.client() as http, verifier_for(ISSUER, http=http) as verifier:
        await verifier.load()
        backend = BearerAuthBackend(verifier)

        async def signed_in(token: str) -> bool:
            connection = HTTPConnection({"type": "http", "headers": [(b"authorization", f"Bearer {token}".encode())]})
            return await backend.authenticate(connection) is not None

        now = int(time.time())
        assert await signed_in(token_for(key, exp=now - 30))
        assert not await signed_in(token_for(key, exp=now - 120))


class SlowIssuer(FakeIssuer):
    """A FakeIssuer whose answers wait for `release` (never set: it never answers); `body` replaces JSON."""

    def __init__(self, routes: dict[str, tuple[int, Any]], body: bytes | None = None) -> None:
        super().__init__(routes)
        self.release, self.body, self.slow = anyio.Event(), body, True

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:  # type: ignore[override]
        self.seen.append(request)
        if self.slow:
            await self.release.wait()
        status, answer = self.routes.get(str(request.url), (404, {"error": "not found"}))
        return httpx2.Response(status, content=self.body) if self.body is not None else httpx2.Response(status, json=answer)


async def test_a_provider_that_never_answers_fails_the_fetch_at_the_deadline() -> None:
    slow = SlowIssuer(issuer_routes(SigningKey.generate()))
    async with slow.client() as http, verifier_for(ISSUER, http=http, deadline=0.2) as verifier:
        with anyio.fail_after(10):  # a failure bound only: the deadline ends it
            with pytest.raises(IdentityProviderError, match="within 0.2 s"):
                await verifier.load()
        assert not await verifier.ready() and "within 0.2 s" in str(verifier.problem)


async def test_an_answer_past_the_size_cap_is_refused_unread() -> None:
    key = SigningKey.generate()
    giant = json.dumps({"keys": [key.public_jwk()], "padding": "x" * (2 * 1024 * 1024)}).encode()
    fake = SlowIssuer(issuer_routes(key), body=giant)
    fake.slow = False
    async with fake.client() as http, verifier_for(ISSUER, http=http) as verifier:
        with pytest.raises(IdentityProviderError, match="more than 1048576 bytes"):
            await verifier.load()


async def test_a_slow_first_fetch_answers_callers_at_once_and_readiness_says_why() -> None:
    key = SigningKey.generate()
    slow = SlowIssuer(issuer_routes(key))
    async with slow.client() as http, verifier_for(ISSUER, http=http) as verifier:
        async with anyio.create_task_group() as group:
            group.start_soon(verifier.load)
            await anyio.wait_all_tasks_blocked()
            with anyio.fail_after(5):  # nothing here waits for the fetch in flight
                assert await verifier.verify_token(token_for(key)) is None
                assert await verifier.ready() is False
            assert "not loaded yet" in str(verifier.problem)
            slow.release.set()
        assert await verifier.ready() is True and verifier.problem is None
        assert await verifier.verify_token(token_for(key)) is not None


async def test_callers_go_on_with_the_cached_keys_while_a_refresh_hangs() -> None:
    key = SigningKey.generate()
    slow = SlowIssuer(issuer_routes(key))
    slow.slow = False
    clock = Clock()
    async with slow.client() as http, verifier_for(ISSUER, http=http, clock=clock) as verifier:
        await verifier.load()
        slow.slow, slow.release = True, anyio.Event()
        clock.advance(KEYS_MAX_AGE + 1)  # the keys are due for a refetch: the next caller starts one
        token = token_for(key, exp=int(clock.now) + 300)
        async with anyio.create_task_group() as group:
            group.start_soon(verifier.verify_token, token)
            await anyio.wait_all_tasks_blocked()
            assert slow.urls()[-1] == "https://idp.example.test/keys" and len(slow.urls()) == 4  # the refetch, hanging
            with anyio.fail_after(5):
                for _ in range(3):
                    assert await verifier.verify_token(token) is not None
            slow.release.set()
