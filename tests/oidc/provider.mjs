// A real OpenID provider for respan-mcp's sign-in tests: the certified `oidc-provider`, on loopback.
//
//   node provider.mjs CONFIG.json
//
// CONFIG.json (written by tests/oidc_fixture.py):
//   port        port on 127.0.0.1 (0: any free port); the issuer is http://127.0.0.1:PORT
//   jwks        {"keys": [...]}: the private signing keys (the tests make them, so they can also
//               mint tokens with the same or other keys); the first key of `signing_alg` signs
//   signing_alg RS256, PS256 or ES256
//   clients     [{client_id, client_secret, scope}]: confidential clients for client_credentials
//   scope       the scopes every resource server accepts, space-separated
//   claims      {client_id: {claim: value}}: extra claims in that client's access tokens (e.g. email)
//   ttl         access token lifetime, seconds
//   opaque_resources  resource indicators whose tokens are opaque (for introspection, RFC 7662)
//
// Any absolute URL is accepted as a resource indicator (RFC 8707): the token is then a JWT access
// token (RFC 9068) with that audience, or an opaque one for `opaque_resources`. Prints `READY <issuer>` on stdout once it listens; every
// other word goes to stderr. GET /_test/requests answers how many requests each path has had.

import { readFileSync } from 'node:fs';
import http from 'node:http';

import Provider, { errors } from 'oidc-provider';

console.info = console.error; // oidc-provider's notices; stdout carries the READY line alone
const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const counts = {};
const server = http.createServer();

server.listen(config.port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const signingKid = config.jwks.keys.find((key) => key.alg === config.signing_alg)?.kid;
  const provider = new Provider(issuer, {
    clients: config.clients.map(({ client_id, client_secret, scope }) => ({
      client_id,
      client_secret,
      scope,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      introspection_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: config.signing_alg, // else RS256, which an EC-only key set cannot sign
    })),
    jwks: config.jwks,
    scopes: ['openid', ...config.scope.split(' ')],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resourceIndicator) => {
          if (!URL.canParse(resourceIndicator)) throw new errors.InvalidTarget();
          return {
            scope: config.scope,
            audience: resourceIndicator,
            accessTokenTTL: config.ttl,
            accessTokenFormat: config.opaque_resources.includes(resourceIndicator) ? 'opaque' : 'jwt',
            jwt: { sign: { alg: config.signing_alg, kid: signingKid } },
          };
        },
      },
    },
    ttl: { ClientCredentials: () => config.ttl },
    extraTokenClaims: async (_ctx, token) => config.claims[token.clientId],
    cookies: { keys: ['respan-mcp-tests-only'] },
  });
  const callback = provider.callback();
  server.on('request', (req, res) => {
    const path = new URL(req.url, issuer).pathname;
    if (path === '/_test/requests') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(counts));
      return;
    }
    counts[path] = (counts[path] ?? 0) + 1;
    callback(req, res);
  });
  console.log(`READY ${issuer}`);
});

// The test stops it with SIGTERM; exit at once so the port is free for a restart.
process.on('SIGTERM', () => process.exit(0));
