"""A real OpenID provider for tests: tests/oidc/provider.mjs (the certified `oidc-provider`) under node.

Use it from any test module with

    from tests.oidc_fixture import RESOURCE, SCOPE, oidc_provider  # noqa: F401  (the `oidc` fixture)

and take `oidc` as a test's argument. `oidc` (module scope) is a running `OpenIdProvider`:
`oidc.issuer`; `oidc.token()`, a client-credentials token for `RESOURCE` with `SCOPE` (a real
RFC 9068 JWT access token); `oidc.mint(...)`, a token signed with the provider's own or another key,
for tokens no honest provider would issue; `oidc.requests(path)`, how often the provider served a
path. A test that needs its own provider (key rotation) uses `OpenIdProvider(tmp_path, keys)` as a
context manager. Tests skip, saying why, only when node or the npm packages
(`npm ci --prefix tests/oidc`) are missing.
"""

from __future__ import annotations

import json
import queue
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.conftest import stop

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
RESOURCE = "https://respan-mcp.example.test/mcp"  # the resource URL tokens are requested for
SCOPE = "respan:scores"  # what writing scores needs
OTHER_SCOPE = "respan:read"  # a scope the provider grants that is not SCOPE
OPAQUE_RESOURCE = "https://respan-mcp.example.test/opaque/mcp"  # its tokens are opaque: only introspection knows them
EMAIL = "ci-bot@example.test"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str = field(repr=False)


CLIENT = Client("ci-bot", secrets.token_urlsafe(24))


@dataclass(frozen=True)
class SigningKey:
    """A key pair the tests own: the provider signs with its private half, tests may too."""

    kid: str
    alg: str
    private: PrivateKey = field(repr=False)

    @classmethod
    def generate(cls, alg: str = "RS256") -> SigningKey:
        private: PrivateKey
        if alg == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        else:
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(kid=f"{alg.lower()}-{secrets.token_hex(4)}", alg=alg, private=private)

    def _jwk(self, key: Any) -> dict[str, Any]:
        algorithm = jwt.algorithms.ECAlgorithm if self.alg == "ES256" else jwt.algorithms.RSAAlgorithm
        return algorithm.to_jwk(key, as_dict=True) | {"kid": self.kid, "alg": self.alg, "use": "sig"}

    def private_jwk(self) -> dict[str, Any]:
        return self._jwk(self.private)

    def public_jwk(self) -> dict[str, Any]:
        return self._jwk(self.private.public_key())

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(claims, self.private, algorithm=self.alg, headers={"kid": self.kid, "typ": "at+jwt"} | header)


def skip_without_node() -> str:
    """The node binary, the provider's packages installed from its lock file on first use (so the
    README's one test command runs these tests too), or a skip that says what is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (apt-get install nodejs); the sign-in tests run a real OpenID provider on it")
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        npm = shutil.which("npm")
        if npm is not None:
            subprocess.run(
                [npm, "ci", "--prefix", str(OIDC_DIR), "--no-audit", "--no-fund", "--loglevel=error"],
                capture_output=True,
                timeout=600,
            )
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.skip("the test OpenID provider could not be installed: run `npm ci --prefix tests/oidc`")
    return node


class OpenIdProvider:
    """tests/oidc/provider.mjs as a subprocess on 127.0.0.1; `restart()` keeps the port (and issuer)."""

    def __init__(self, workdir: Path, keys: list[SigningKey], *, signing_alg: str | None = None, ttl: int = 600) -> None:
        self.workdir, self.keys, self.ttl = workdir, keys, ttl
        self.signing_alg = signing_alg or keys[0].alg
        self.port = 0
        self.issuer = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._log = workdir / "oidc-provider.log"

    def __enter__(self) -> OpenIdProvider:
        self.start()
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        node = skip_without_node()
        config = {
            "port": self.port,
            "jwks": {"keys": [key.private_jwk() for key in self.keys]},
            "signing_alg": self.signing_alg,
            "clients": [{"client_id": CLIENT.client_id, "client_secret": CLIENT.client_secret, "scope": f"{SCOPE} {OTHER_SCOPE}"}],
            "scope": f"{SCOPE} {OTHER_SCOPE}",
            "claims": {CLIENT.client_id: {"email": EMAIL}},
            "ttl": self.ttl,
            "opaque_resources": [OPAQUE_RESOURCE],
        }
        path = self.workdir / "oidc-provider.json"
        path.write_text(json.dumps(config))
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [node, str(OIDC_DIR / "provider.mjs"), str(path)],
                cwd=OIDC_DIR,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        self.issuer = self._wait_ready(self._process)
        self.port = int(self.issuer.rsplit(":", 1)[1])
        self.metadata = httpx2.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10).json()

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float = 60) -> str:
        """The issuer from the READY line; a thread keeps draining stdout so the pipe never fills."""
        lines: queue.Queue[str] = queue.Queue()

        def pump() -> None:
            for line in process.stdout:  # type: ignore[union-attr]
                lines.put(line.decode(errors="replace"))
            lines.put("")  # end of output: the provider exited

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout  # a failure bound only; READY normally comes in well under a second
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                stop(process)
                raise RuntimeError(f"the OpenID provider said no READY within {timeout:g} s: {self.said()}") from None
            if not line:
                raise RuntimeError(f"the OpenID provider exited: {self.said()}")
            if line.startswith("READY "):
                return line.split()[1]

    def said(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    def stop(self) -> None:
        if self._process is not None:
            stop(self._process)
            self._process = None

    def restart(self, keys: list[SigningKey], signing_alg: str | None = None) -> None:
        """Key rotation: the same issuer (and port) comes back with `keys`."""
        self.stop()
        self.keys, self.signing_alg = keys, signing_alg or keys[0].alg
        self.start()

    @property
    def token_endpoint(self) -> str:
        return str(self.metadata["token_endpoint"])

    @property
    def introspection_endpoint(self) -> str:
        return str(self.metadata["introspection_endpoint"])

    def token_response(self, scope: str = SCOPE, resource: str | None = RESOURCE, client: Client = CLIENT) -> httpx2.Response:
        """The client-credentials grant with a resource indicator (RFC 8707)."""
        form = {"grant_type": "client_credentials", "scope": scope} | ({"resource": resource} if resource else {})
        return httpx2.post(self.token_endpoint, data=form, auth=(client.client_id, client.client_secret), timeout=10)

    def token(self, scope: str = SCOPE, resource: str | None = RESOURCE, client: Client = CLIENT) -> str:
        response = self.token_response(scope, resource, client)
        assert response.status_code == 200, f"the provider refused the token request: {response.status_code} {response.text}"
        return str(response.json()["access_token"])

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """What a token of this provider for RESOURCE says, with `overrides` (None drops a claim)."""
        now = int(time.time())
        claims = {
            "iss": self.issuer, "aud": RESOURCE, "sub": CLIENT.client_id, "client_id": CLIENT.client_id,
            "scope": SCOPE, "iat": now, "exp": now + self.ttl, "jti": secrets.token_hex(8),
        } | overrides
        return {name: value for name, value in claims.items() if value is not None}

    def mint(self, key: SigningKey | None = None, header: dict[str, Any] | None = None, **overrides: Any) -> str:
        """A token signed by `key` (default: the provider's own signing key) with `claims(**overrides)`."""
        return (key or self.keys[0]).sign(self.claims(**overrides), **(header or {}))

    def requests(self, path: str) -> int:
        """How many requests the provider has served on `path` since it (re)started."""
        counts = httpx2.get(f"{self.issuer}/_test/requests", timeout=10).json()
        return int(counts.get(path, 0))


@pytest.fixture(scope="module", name="oidc")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenIdProvider]:
    """A running provider signing with an RSA key (RS256), also publishing an EC key (ES256)."""
    keys = [SigningKey.generate("RS256"), SigningKey.generate("ES256")]
    with OpenIdProvider(tmp_path_factory.mktemp("oidc"), keys) as provider:
        yield provider
