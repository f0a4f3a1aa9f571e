"""Team sign-in, end to end: the installed console script, a real OpenID provider, the Respan stand-in.

Each case goes over both HTTP transports: streamable HTTP (`streamable_http_client` with an httpx2
client carrying `Authorization: Bearer <token>`) and the legacy SSE (`sse_client(url, headers=...)`).
A refused caller is also tried on the wire (a `tools/call` POSTed with its token), next to the same
request with a valid token, so "nothing was written" is seen to be the refusal's doing.

The servers of most tests are shared by the module (one per transport, started once); the tests
that need the provider down or their own logs start their own. Nothing sleeps a
fixed time: waits poll for the event, with a generous bound that only says when to give up.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jwt
import pytest
from mcp import Client
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from mcp.types import CallToolResult

from respan_mcp.identity_provider import FIRST_LOAD_RETRY
from tests.conftest import API_KEY, LOG_ID, free_port, server_env
from tests.e2e.test_http import Replica, replica
from tests.fake_api import FakeRespan, RunningFakeRespan
from tests.oidc_fixture import (
    CLIENT,
    EMAIL,
    OTHER_SCOPE,
    RESOURCE,
    SCOPE,
    OpenIdProvider,
    SigningKey,
    oidc_provider,  # noqa: F401  (the `oidc` fixture)
)

# Every test points the session stand-in at its own fresh `fake`, which the module-wide servers talk to.
pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.usefixtures("api")]

TRANSPORTS = ("streamable-http", "sse")
PUBLIC_URL = RESOURCE.removesuffix("/mcp")  # as behind a TLS proxy
WRITE = {"log_id": LOG_ID, "evaluator_slug": "helpfulness", "score_value_type": "numerical", "numerical_value": 4}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE: dict[str, Any] = {
    "jsonrpc": "2.0", "id": 0, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}
# Until the issuer's keys first load, the verifier retries every FIRST_LOAD_RETRY seconds at most:
# the wait for readiness is bounded well past it (a failure bound only; it ends when the keys load).
# Key rotation, which waits on the 30 s refresh interval, is tested with an injected clock in
# tests/e2e/test_token_verifier.py (test_key_rotation_the_new_kid_is_fetched_once_the_old_key_stops_working).
READY_BOUND = 10 * FIRST_LOAD_RETRY + 30


def call(name: str, arguments: dict[str, Any], id_: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": {"name": name, "arguments": arguments}}


def bearer(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


# -- the stand-in API and the signed-in servers the module shares ---------------------------------


@dataclass
class SignedIn:
    """A running server with sign-in on, the transport it serves, and the URL callers know it by."""

    replica: Replica
    transport: str
    public_url: str = PUBLIC_URL

    @property
    def url(self) -> str:
        return self.replica.url

    @property
    def endpoint(self) -> str:
        """The path a host connects to: what the server names as its resource, on each transport."""
        return "/sse" if self.transport == "sse" else "/mcp"

    @property
    def resource(self) -> str:
        """The protected resource (RFC 9728): what tokens are asked for (RFC 8707) and issued to."""
        return f"{self.public_url}{self.endpoint}"

    @property
    def metadata_url(self) -> str:
        return f"{self.public_url}/.well-known/oauth-protected-resource{self.endpoint}"


@contextmanager
def signed_in(tmp_path: Path, transport: str, issuer: str, api_url: str, *flags: str) -> Iterator[SignedIn]:
    """`respan-mcp --oauth-issuer ISSUER --public-url PUBLIC_URL` on `transport`, once /healthz answers."""
    tmp_path.mkdir(exist_ok=True)
    args = ("--transport", transport, "--oauth-issuer", issuer, "--public-url", PUBLIC_URL, *flags)
    with replica(tmp_path, *args, env=server_env(api_url)) as running:
        yield SignedIn(running, transport)


def wait_ready(server: SignedIn, bound: float = 60) -> None:
    """Poll /readyz until 200 (the issuer's keys are loaded); `bound` only says when to give up."""
    deadline = time.monotonic() + bound
    while (ready := httpx2.get(f"{server.url}/readyz", timeout=10)).status_code != 200:
        assert time.monotonic() < deadline, f"/readyz still {ready.status_code} {ready.text}: {server.replica.stderr()}"
        time.sleep(0.1)


@pytest.fixture(scope="module", params=TRANSPORTS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, oidc: OpenIdProvider,
    running_api: RunningFakeRespan,
) -> Iterator[SignedIn]:
    """Module-wide, so it outlives a test: it talks to the session's stand-in, which each test's `api`
    (used by every test here) points at that test's fresh `fake`, whose keys are the server's only."""
    transport: str = request.param
    with signed_in(tmp_path_factory.mktemp(transport), transport, oidc.issuer, running_api.url) as running:
        wait_ready(running)
        yield running


@asynccontextmanager
async def mcp_session(server: SignedIn, token: str) -> AsyncIterator[Client]:
    """An MCP client session over the server's transport, sending `token` on every request."""
    if server.transport == "sse":
        async with Client(sse_client(f"{server.url}/sse", headers=bearer(token))) as client:
            yield client
        return
    async with httpx2.AsyncClient(headers=bearer(token), timeout=30) as http:
        async with Client(streamable_http_client(f"{server.url}/mcp", http_client=http)) as client:
            yield client


# -- a write attempt on the wire ------------------------------------------------------------------


@dataclass
class SseSession:
    """An initialised SSE session: the client, its /messages/ path, and the stream's lines."""

    http: httpx2.AsyncClient
    endpoint: str
    lines: AsyncIterator[str]

    async def answer(self, id_: int) -> dict[str, Any]:
        """Read the stream until the answer to request `id_` arrives."""
        with anyio.fail_after(30):
            async for line in self.lines:
                if line.startswith("data: {"):
                    message: dict[str, Any] = json.loads(line.removeprefix("data: "))
                    if message.get("id") == id_:
                        return message
        raise AssertionError(f"the stream ended before the answer to {id_}")


@asynccontextmanager
async def sse_session(url: str, token: str) -> AsyncIterator[SseSession]:
    """An SSE session opened and initialised with `token`."""
    async with httpx2.AsyncClient(base_url=url, timeout=30) as http:
        async with http.stream("GET", "/sse", headers={"Accept": "text/event-stream"} | bearer(token)) as stream:
            assert stream.status_code == 200, stream.status_code
            lines = stream.aiter_lines()
            with anyio.fail_after(30):
                endpoint = ""
                while not endpoint.startswith("/messages/"):
                    endpoint = (await anext(lines)).removeprefix("data: ").strip()
            session = SseSession(http, endpoint, lines)
            for message in (INITIALIZE, {"jsonrpc": "2.0", "method": "notifications/initialized"}):
                posted = await http.post(endpoint, json=message, headers=bearer(token))
                assert posted.status_code == 202, posted.text
            await session.answer(INITIALIZE["id"])
            yield session


async def write_attempt(server: SignedIn, token: str | None, valid: str) -> list[httpx2.Response]:
    """Send upsert_log_score as a caller holding `token` (None: no header) would, on the wire.

    Streamable HTTP: one POST of `tools/call` to /mcp. SSE: opening a stream with `token`, then
    posting `tools/call` with `token` into a live session that a caller with the `valid` token
    opened, so even a caller who learnt a session id cannot write through it. A call the server
    takes is waited for to the end.
    """
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        if server.transport == "streamable-http":
            return [await http.post("/mcp", json=call("upsert_log_score", WRITE), headers=MCP_HEADERS | bearer(token))]
        async with http.stream("GET", "/sse", headers={"Accept": "text/event-stream"} | bearer(token)) as opened:
            if opened.status_code != 200:
                await opened.aread()
    async with sse_session(server.url, valid) as session:
        posted = await session.http.post(session.endpoint, json=call("upsert_log_score", WRITE, 7), headers=bearer(token))
        if posted.status_code == 202:
            await session.answer(7)
    return [opened, posted]


# -- accepted -------------------------------------------------------------------------------------


async def test_a_signed_in_caller_writes_with_the_servers_key_never_its_token(
    server: SignedIn, oidc: OpenIdProvider, fake: FakeRespan
) -> None:
    token = oidc.token(resource=server.resource)
    async with mcp_session(server, token) as client:
        written = await client.call_tool("upsert_log_score", WRITE)
        read = await client.call_tool("list_log_scores", {"log_id": LOG_ID})
    assert not written.is_error, written.content
    assert written.structured_content is not None
    assert written.structured_content["numerical_value"] == 4 and written.structured_content["log_id"] == LOG_ID
    assert not read.is_error and read.structured_content is not None, read.content
    assert [score["id"] for score in read.structured_content["scores"]] == [written.structured_content["id"]]
    assert [w.headers["authorization"] for w in fake.writes()] == [f"Bearer {API_KEY}"]
    assert {r.headers["authorization"] for r in fake.requests} == {f"Bearer {API_KEY}"}
    assert not any(token in value for r in fake.requests for value in r.headers.values())


async def test_the_write_attempt_with_a_valid_token_writes_once(
    server: SignedIn, oidc: OpenIdProvider, fake: FakeRespan
) -> None:
    """The control for the refusals below: the very request they send does write when signed in."""
    token = oidc.token(resource=server.resource)
    answers = await write_attempt(server, token, valid=token)
    assert [a.status_code for a in answers] == ([200] if server.transport == "streamable-http" else [200, 202])
    assert [w.headers["authorization"] for w in fake.writes()] == [f"Bearer {API_KEY}"]


# -- refused --------------------------------------------------------------------------------------


def _expired(oidc: OpenIdProvider, resource: str) -> str:
    now = int(time.time())
    return oidc.mint(aud=resource, iat=now - 7200, exp=now - 3600)  # well past the 60 s of clock skew allowed


def _forged(oidc: OpenIdProvider, resource: str) -> str:
    """Signed by a key of the forger's own, under the provider's kid."""
    return oidc.mint(key=SigningKey.generate("RS256"), header={"kid": oidc.keys[0].kid}, aud=resource)


def _other_endpoint(url: str) -> str:
    """The same server's URL (or path) on the other transport: a resource of its own, not this one."""
    base, _, endpoint = url.rpartition("/")
    return f"{base}/{'mcp' if endpoint == 'sse' else 'sse'}"


# case -> (the token for the server's resource, or None for no header; the status; the error in the challenge)
REFUSED: dict[str, tuple[Callable[[OpenIdProvider, str], str | None], int, str]] = {
    "no-token": (lambda oidc, resource: None, 401, "invalid_token"),
    "expired": (_expired, 401, "invalid_token"),
    "wrong-audience": (
        lambda oidc, resource: oidc.token(resource="https://other-service.example.test/mcp"), 401, "invalid_token"
    ),
    "other-transports-audience": (
        lambda oidc, resource: oidc.token(resource=_other_endpoint(resource)), 401, "invalid_token"
    ),
    "wrong-issuer": (lambda oidc, resource: oidc.mint(iss="https://idp.example.test", aud=resource), 401, "invalid_token"),
    "forged-signature": (_forged, 401, "invalid_token"),
    "raw-respan-key": (lambda oidc, resource: API_KEY, 401, "invalid_token"),
    "missing-scope": (lambda oidc, resource: oidc.token(scope=OTHER_SCOPE, resource=resource), 403, "insufficient_scope"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_a_refused_caller_gets_the_challenge_and_nothing_is_written(
    case: str, server: SignedIn, oidc: OpenIdProvider, fake: FakeRespan
) -> None:
    make, status, error = REFUSED[case]
    answers = await write_attempt(server, make(oidc, server.resource), valid=oidc.token(resource=server.resource))
    for answer in answers:
        assert answer.status_code == status, (case, answer.status_code, answer.text)
        challenge = answer.headers["www-authenticate"]
        assert challenge.startswith("Bearer ") and f'error="{error}"' in challenge, challenge
        assert f'resource_metadata="{server.metadata_url}"' in challenge, challenge
        assert answer.json()["error"] == error
    assert fake.writes() == []
    assert fake.requests == []  # nothing at all reached Respan on this caller's behalf


# -- what a host reads to find where to sign in ---------------------------------------------------


async def test_protected_resource_metadata_names_the_resource_the_issuer_and_the_scope(
    server: SignedIn, oidc: OpenIdProvider, fake: FakeRespan
) -> None:
    """The resource is the endpoint of the server's own transport, the URL a host connects to
    (RFC 9728 section 3.3: a host refuses metadata naming any other), served at the path under it."""
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        answer = await http.get(f"/.well-known/oauth-protected-resource{server.endpoint}")  # no token needed
        elsewhere = await http.get(f"/.well-known/oauth-protected-resource{_other_endpoint(server.endpoint)}")
    assert answer.status_code == 200, answer.text
    assert elsewhere.status_code == 404, elsewhere.text  # one resource: the other transport's path is not it
    metadata = answer.json()
    assert metadata["resource"] == server.resource == f"{PUBLIC_URL}{server.endpoint}"
    assert metadata["authorization_servers"] == [oidc.issuer]
    assert metadata["scopes_supported"] == [SCOPE]
    assert fake.requests == []


class TokenMemory:
    """The SDK's `TokenStorage`, in memory: what a host would keep in its keychain."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


@asynccontextmanager
async def discovering_session(url: str, transport: str, issuer: str, memory: TokenMemory) -> AsyncIterator[Client]:
    """The SDK's own OAuth client, as a host runs it: it starts with no token, follows the 401's
    resource_metadata to the issuer, and gets a token there (client credentials stand in for a
    browser sign-in; the discovery and the resource indicator are the same)."""
    endpoint = f"{url}/sse" if transport == "sse" else f"{url}/mcp"
    auth = ClientCredentialsOAuthProvider(endpoint, memory, CLIENT.client_id, CLIENT.client_secret, issuer=issuer)
    if transport == "sse":
        async with Client(sse_client(endpoint, auth=auth)) as client:
            yield client
        return
    async with httpx2.AsyncClient(auth=auth, timeout=30) as http:
        async with Client(streamable_http_client(endpoint, http_client=http)) as client:
            yield client


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_host_finds_the_provider_from_the_challenge_and_signs_in_on_its_own(
    transport: str, tmp_path: Path, oidc: OpenIdProvider, fake: FakeRespan, api: RunningFakeRespan
) -> None:
    """The SDK's client refuses a resource that is not the URL it connected to (`OAuthFlowError`), so
    over SSE this passes only if the server names /sse, not /mcp, as its resource."""
    memory = TokenMemory()
    # No --public-url: the resource is the default, http://127.0.0.1:PORT/mcp (or /sse), the URL the host uses.
    with replica(tmp_path, "--transport", transport, "--oauth-issuer", oidc.issuer, env=server_env(api.url)) as running:
        server = SignedIn(running, transport, public_url=running.url)
        wait_ready(server)
        async with discovering_session(server.url, transport, oidc.issuer, memory) as client:
            written = await client.call_tool("upsert_log_score", WRITE)
    assert not written.is_error, written.content
    assert memory.tokens is not None  # the SDK signed in by itself
    assert jwt.decode(memory.tokens.access_token, options={"verify_signature": False})["aud"] == server.resource
    assert [w.headers["authorization"] for w in fake.writes()] == [f"Bearer {API_KEY}"]
    assert not any(memory.tokens.access_token in v for r in fake.requests for v in r.headers.values())


# -- readiness: servers of their own --------------------------------------------------------------


def servers_for(stack: ExitStack, tmp_path: Path, issuer: str, api_url: str, *flags: str) -> list[SignedIn]:
    """One server per transport, both trusting `issuer`."""
    return [stack.enter_context(signed_in(tmp_path / t, t, issuer, api_url, *flags)) for t in TRANSPORTS]


async def test_readyz_is_503_until_the_issuers_keys_load_and_healthz_is_200_throughout(
    tmp_path: Path, api: RunningFakeRespan, fake: FakeRespan
) -> None:
    provider = OpenIdProvider(tmp_path, [SigningKey.generate("RS256")])
    provider.port = free_port()
    issuer = f"http://127.0.0.1:{provider.port}"  # what the provider will say once it starts
    with ExitStack() as stack:
        servers = servers_for(stack, tmp_path, issuer, api.url)  # started while the provider is down
        async with httpx2.AsyncClient(timeout=10) as http:
            for server in servers:
                waiting = await http.get(f"{server.url}/readyz")
                assert waiting.status_code == 503, waiting.text
                assert "identity provider" in waiting.json()["status"]
                assert (await http.get(f"{server.url}/healthz")).status_code == 200
            for server in servers:  # a token that will be good is still refused while no key is loaded
                early = provider.keys[0].sign(
                    {"iss": issuer, "aud": server.resource, "sub": CLIENT.client_id, "client_id": CLIENT.client_id,
                     "scope": SCOPE, "exp": int(time.time()) + 600}
                )
                assert [a.status_code for a in await write_attempt_no_session(server, early)] == [401]

            stack.enter_context(provider)
            assert provider.issuer == issuer
            with anyio.fail_after(READY_BOUND):
                pending = list(servers)
                while pending:
                    for server in list(pending):
                        assert (await http.get(f"{server.url}/healthz")).status_code == 200
                        if (await http.get(f"{server.url}/readyz")).status_code == 200:
                            pending.remove(server)
                    await anyio.sleep(0.2)
        assert fake.requests == []
        for server in servers:
            async with mcp_session(server, provider.token(resource=server.resource)) as client:
                written = await client.call_tool("upsert_log_score", WRITE)
            assert not written.is_error, written.content
    assert [w.headers["authorization"] for w in fake.writes()] == [f"Bearer {API_KEY}"] * 2


async def write_attempt_no_session(server: SignedIn, token: str) -> list[httpx2.Response]:
    """The first leg of `write_attempt` only (no valid caller exists yet to open an SSE session)."""
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        if server.transport == "streamable-http":
            return [await http.post("/mcp", json=call("upsert_log_score", WRITE), headers=MCP_HEADERS | bearer(token))]
        async with http.stream("GET", "/sse", headers={"Accept": "text/event-stream"} | bearer(token)) as opened:
            await opened.aread() if opened.status_code != 200 else None
        return [opened]


# -- the JSON call log ----------------------------------------------------------------------------


def pieces(secret: str, size: int = 8) -> set[str]:
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def shown(results: list[CallToolResult]) -> str:
    return "\n".join(result.model_dump_json() for result in results)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_json_call_line_names_the_caller_and_no_token_shows_anywhere(
    transport: str, tmp_path: Path, oidc: OpenIdProvider, fake: FakeRespan, api: RunningFakeRespan
) -> None:
    flags = ("--log-format", "json", "--log-level", "DEBUG")  # the most the server ever says
    with signed_in(tmp_path, transport, oidc.issuer, api.url, *flags) as server:
        token = oidc.token(resource=server.resource)
        refused = [
            _expired(oidc, server.resource),
            oidc.token(scope=OTHER_SCOPE, resource=server.resource),
            _forged(oidc, server.resource),
        ]
        wait_ready(server)
        async with mcp_session(server, token) as client:
            results = [
                await client.call_tool("upsert_log_score", WRITE),
                await client.call_tool("get_score", {"score_id": "no-such-score"}),
            ]
        for other in refused:
            assert (await write_attempt_no_session(server, other))[0].status_code in (401, 403)
        server.replica.process.send_signal(signal.SIGTERM)
        assert server.replica.process.wait(timeout=30) == 0
        log = server.replica.stderr()
    assert not results[0].is_error and results[1].is_error, shown(results)
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]  # every line is JSON
    calls = [line for line in lines if line.get("event") == "tool_call"]
    assert [(c["tool"], c["outcome"]) for c in calls] == [("upsert_log_score", "ok"), ("get_score", "error")]
    for line in calls:
        assert line["caller"] == {"client_id": CLIENT.client_id, "sub": CLIENT.client_id, "email": EMAIL}, line
    everything = log + shown(results)
    for secret in [token, *refused]:
        leaked = sorted(p for p in pieces(secret) if p in everything)
        assert not leaked, f"pieces of a token showed: {leaked[:3]}"
    assert [w.headers["authorization"] for w in fake.writes()] == [f"Bearer {API_KEY}"]


# -- the issuer URL: one loopback rule at start and in the verifier --------------------------------


async def test_an_issuer_on_any_loopback_address_is_served_not_a_traceback(
    tmp_path: Path, api: RunningFakeRespan
) -> None:
    """127.0.0.2 is loopback for the start-up check and for the verifier alike (all of 127.0.0.0/8): the
    server serves, says not ready while nothing answers there, and never dies with a traceback."""
    issuer = "http://127.0.0.2:9"  # the discard port: nothing answers
    with replica(tmp_path, "--transport", "streamable-http", "--oauth-issuer", issuer, env=server_env(api.url)) as running:
        async with httpx2.AsyncClient(base_url=running.url, timeout=10) as http:
            assert (await http.get("/healthz")).status_code == 200
            waiting = await http.get("/readyz")
        assert running.process.poll() is None, running.stderr()
    assert waiting.status_code == 503 and "identity provider" in waiting.json()["status"]
    assert "Traceback" not in running.stderr()
