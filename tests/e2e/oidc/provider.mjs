// A real OAuth 2.1 authorization server for the oauth-mode tests: the certified `oidc-provider`,
// issuing RFC 9068 JWT access tokens through the client_credentials grant, bound to a resource
// (RFC 8707 `resource` parameter → `aud`).
//
// Usage: node provider.mjs RESOURCE
// Starts two issuers on loopback ports and prints one JSON line once both listen:
//   {"issuer": "...", "rogue_issuer": "..."}
// The rogue issuer signs with the same keys, so its tokens verify but name another `iss`: the
// resource server must refuse them on the issuer check alone.
//
// Clients (secret: "secret-" + id, sent in the token request body):
//   alice, bob    ordinary agents (and carol, rita, tom, sam: the authorization table's cast)
//   brief         its tokens live one second (the expiry test)
//   es-agent      its tokens are signed with ES256 instead of RS256
//   mallory       its tokens carry an `agent_name` claim with a right-to-left override (every
//                 other client's `agent_name` is its id): not a valid agent name
// Resources: RESOURCE and https://other.test/api, scopes "handoff" and "other". Anything else is
// refused (invalid_target).
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import Provider, { errors } from 'oidc-provider';

const resource = process.argv[2];
if (!resource) {
  console.error('usage: node provider.mjs RESOURCE');
  process.exit(2);
}
const OTHER_RESOURCE = 'https://other.test/api';

function signingKey(kind, options, alg, kid) {
  const { privateKey } = generateKeyPairSync(kind, options);
  return { ...privateKey.export({ format: 'jwk' }), alg, kid, use: 'sig' };
}

// Fresh keys every run: nothing secret is kept in the repository.
const jwks = {
  keys: [
    signingKey('rsa', { modulusLength: 2048 }, 'RS256', 'rsa-1'),
    signingKey('ec', { namedCurve: 'P-256' }, 'ES256', 'ec-1'),
  ],
};

const clientIds = ['alice', 'bob', 'brief', 'es-agent', 'mallory', 'carol', 'rita', 'tom', 'sam'];
const clients = clientIds.map((id) => ({
  client_id: id,
  client_secret: `secret-${id}`,
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
  token_endpoint_auth_method: 'client_secret_post',
  scope: 'handoff other',
}));

function configuration() {
  return {
    clients,
    jwks,
    scopes: ['handoff', 'other'],
    cookies: { keys: ['handoff-test-cookie-key'] },
    extraTokenClaims(_ctx, token) {
      return { agent_name: token.clientId === 'mallory' ? 'mal\u202Elory' : token.clientId };
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => false,
        getResourceServerInfo(_ctx, indicator, client) {
          if (indicator !== resource && indicator !== OTHER_RESOURCE) {
            throw new errors.InvalidTarget(`unknown resource ${indicator}`);
          }
          return {
            scope: 'handoff other',
            audience: indicator,
            accessTokenTTL: client.clientId === 'brief' ? 1 : 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: client.clientId === 'es-agent' ? 'ES256' : 'RS256' } },
          };
        },
      },
    },
  };
}

async function start() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration());
  server.on('request', provider.callback());
  return { issuer, server };
}

const main = await start();
const rogue = await start();
process.stdout.write(`${JSON.stringify({ issuer: main.issuer, rogue_issuer: rogue.issuer })}\n`);

// The test closes our stdin (or dies): stop then, so no provider outlives its test.
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
