// The demo OpenID provider: panva's oidc-provider (OpenID-certified) with a users file, a login
// page of our own (no outside requests) and automatic consent for the configured first-party
// clients. DEMO ONLY: in-memory storage, passwords from a file.
//
//   node deploy/idp/server.mjs CONFIG.json
//
// CONFIG (paths relative to the config file):
//   { "port": 9000, "issuer": "http://127.0.0.1:9000", "users": "users.json",
//     // port 0: any free port; the issuer is then http://127.0.0.1:<port> unless given
//     "keys": "../../certs/dev/idp-jwks.json",      // private JWKS; generated when missing
//     "clients": [ { client_id, client_secret, redirect_uris, post_logout_redirect_uris,
//                    backchannel_logout_uri } ],
//     "api_audience": "menwei-api",                  // audience of JWT access tokens
//     "opaque_audience": "urn:menwei:opaque",        // optional: a resource with opaque tokens
//     "ttl": { "AccessToken": 600, "IdToken": 600, "RefreshToken": 86400, "Session": 86400 },
//     "allow_loopback_fetch": true }                 // back-channel logout to 127.0.0.1

import { createServer } from 'node:http';
import { readFileSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { generateKeyPairSync, scryptSync, timingSafeEqual, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const configPath = resolve(process.argv[2] ?? new URL('demo.json', import.meta.url).pathname);
const base = dirname(configPath);
const cfg = JSON.parse(readFileSync(configPath, 'utf8'));
const users = JSON.parse(readFileSync(resolve(base, cfg.users), 'utf8'));

// Signing keys: RS256, ES256 and EdDSA (the gateway accepts all three).
function loadKeys(path) {
  if (existsSync(path)) return JSON.parse(readFileSync(path, 'utf8'));
  const jwk = (pair, extra) => ({ ...pair.privateKey.export({ format: 'jwk' }), ...extra });
  const keys = {
    keys: [
      jwk(generateKeyPairSync('rsa', { modulusLength: 2048 }), { kid: `rs-${randomBytes(4).toString('hex')}`, alg: 'RS256', use: 'sig' }),
      jwk(generateKeyPairSync('ec', { namedCurve: 'P-256' }), { kid: `ec-${randomBytes(4).toString('hex')}`, alg: 'ES256', use: 'sig' }),
      jwk(generateKeyPairSync('ed25519'), { kid: `ed-${randomBytes(4).toString('hex')}`, alg: 'EdDSA', use: 'sig' }),
    ],
  };
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(keys, null, 2), { mode: 0o600 });
  return keys;
}
const jwks = loadKeys(resolve(base, cfg.keys));

// users.json: { "alice": { "password": "scrypt$<salt hex>$<hash hex>", "claims": {...} } }
function checkPassword(user, password) {
  const [kind, salt, hash] = String(user?.password ?? '').split('$');
  if (kind !== 'scrypt' || !salt || !hash) return false;
  const want = Buffer.from(hash, 'hex');
  const got = scryptSync(String(password), Buffer.from(salt, 'hex'), want.length);
  return timingSafeEqual(want, got);
}

const claimsOf = (id) => ({ sub: id, ...(users[id]?.claims ?? {}) });
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:sans-serif;max-width:28em;margin:3em auto}label,input,button{display:block;margin:.4em 0}</style>
</head><body><h1>${esc(title)}</h1>${body}</body></html>`;

const ttl = cfg.ttl ?? {};
const configuration = {
  clients: cfg.clients.map((c) => ({
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    backchannel_logout_session_required: true,
    ...c,
  })),
  jwks,
  pkce: { required: () => true },
  conformIdTokenClaims: false,
  claims: { openid: ['sub'], profile: ['name', 'roles', 'department', 'sid'] },
  scopes: ['openid', 'offline_access', 'profile', 'api'],
  rotateRefreshToken: true,
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  findAccount: async (ctx, id) => (users[id] ? { accountId: id, claims: async () => claimsOf(id) } : undefined),
  extraTokenClaims: async (ctx, token) => (token.accountId ? { roles: claimsOf(token.accountId).roles ?? [], department: claimsOf(token.accountId).department } : undefined),
  ttl: {
    AccessToken: ttl.AccessToken ?? 600,
    IdToken: ttl.IdToken ?? 600,
    RefreshToken: ttl.RefreshToken ?? 86400,
    Session: ttl.Session ?? 86400,
    Interaction: 600,
    Grant: ttl.RefreshToken ?? 86400,
    ClientCredentials: ttl.AccessToken ?? 600,
  },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.body = page('退出登录 Sign out', `${form}<button form="op.logoutForm" id="confirm" type="submit" name="logout" value="yes">确认退出 Sign out</button>
<script>document.getElementById('confirm').click()</script>`);
      },
      postLogoutSuccessSource: async (ctx) => {
        ctx.body = page('已退出 Signed out', '<p id="signed-out">You are signed out.</p>');
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => cfg.api_audience ?? 'urn:menwei:api',
      useGrantedResource: () => true,
      // Tokens for `opaque_audience` (when configured) are opaque: resource servers must ask
      // the introspection endpoint about them.
      getResourceServerInfo: (ctx, resource) => (cfg.opaque_audience && resource === cfg.opaque_audience
        ? { scope: 'api', audience: resource, accessTokenFormat: 'opaque', accessTokenTTL: ttl.AccessToken ?? 600 }
        : {
          scope: 'api',
          audience: cfg.api_audience ?? 'urn:menwei:api',
          accessTokenFormat: 'jwt',
          accessTokenTTL: ttl.AccessToken ?? 600,
          jwt: { sign: { alg: 'RS256' } },
        }),
    },
  },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = page('出错了 Error', `<p id="error">${esc(out.error)}: ${esc(out.error_description ?? '')}</p>`);
  },
  loadExistingGrant: async (ctx) => {
    // First-party clients: consent is implied. Grant what was asked for.
    const { oidc } = ctx;
    const grantId = oidc.result?.consent?.grantId ?? oidc.session.grantIdFor(oidc.client.clientId);
    const grant = (grantId && (await oidc.provider.Grant.find(grantId)))
      || new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
    grant.addOIDCScope(String(oidc.params.scope ?? 'openid'));
    grant.addOIDCClaims(['sub', 'name', 'roles', 'department', 'sid']);
    if (oidc.params.resource) grant.addResourceScope(String(oidc.params.resource), 'api');
    await grant.save();
    return grant;
  },
};
if (cfg.allow_loopback_fetch) {
  // The provider refuses to call special-use addresses (SSRF guard); the demo's gateway is on
  // 127.0.0.1, so back-channel logout calls must be allowed to reach it.
  configuration.fetch = (url, options) => {
    delete options.dispatcher;
    return globalThis.fetch(url, options);
  };
}

// The provider is made once the port is known (port 0 lets the system choose one, so parallel
// tests never race for a port); no request can arrive before the listening line is printed.
let provider;
let callback;

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 8192) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

async function interaction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (req.method === 'POST') {
    const form = await readForm(req);
    const name = form.get('username') ?? '';
    if (details.prompt.name === 'login') {
      if (!Object.hasOwn(users, name) || !checkPassword(users[name], form.get('password'))) {
        return loginPage(res, uid, '用户名或密码错误 Wrong user name or password');
      }
      return provider.interactionFinished(req, res, { login: { accountId: name } }, { mergeWithLastSubmission: false });
    }
  }
  if (details.prompt.name === 'login') return loginPage(res, uid, '');
  // Consent: first-party client, granted by loadExistingGrant.
  const grant = await (async () => {
    const g = details.grantId ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    g.addOIDCScope(String(details.params.scope ?? 'openid'));
    g.addOIDCClaims(['sub', 'name', 'roles', 'department', 'sid']);
    return g.save();
  })();
  return provider.interactionFinished(req, res, { consent: { grantId: grant } }, { mergeWithLastSubmission: true });
}

function loginPage(res, uid, error) {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(page('统一身份认证 Sign in', `${error ? `<p id="error">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}">
<label>用户名 User <input name="username" id="username" autocomplete="username" required></label>
<label>密码 Password <input name="password" id="password" type="password" autocomplete="current-password" required></label>
<button type="submit" id="login">登录 Sign in</button></form>
<p><small>Demo users: alice / bob / carol (demo-only passwords, see README).</small></p>`));
}

const server = createServer(async (req, res) => {
  const m = /^\/interaction\/([A-Za-z0-9_-]+)$/.exec(req.url.split('?')[0]);
  if (!m) return callback(req, res);
  try {
    await interaction(req, res, m[1]);
  } catch (e) {
    res.writeHead(400, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page('出错了 Error', `<p id="error">${esc(e.message)}</p>`));
  }
});
server.on('error', (e) => {
  console.error(`demo OpenID provider: cannot listen on 127.0.0.1:${cfg.port}: ${e.message}`);
  process.exit(1);
});
server.listen(cfg.port, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = cfg.issuer ?? `http://127.0.0.1:${port}`;
  provider = new Provider(issuer, configuration);
  provider.proxy = false;
  callback = provider.callback();
  console.log(`demo OpenID provider ${issuer} listening on 127.0.0.1:${port}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
