// A certified OpenID provider (npm's oidc-provider) that Hallpass's Go tests start on a
// loopback port as the upstream of an OIDC connection. Everything comes from the
// environment, so each test picks its own port, client and users:
//
//   PORT           loopback port to listen on
//   ISSUER         issuer URL (http://127.0.0.1:PORT or a name the test maps to loopback)
//   CLIENT_ID      client registered for Hallpass
//   CLIENT_SECRET  its secret
//   REDIRECT_URIS  comma-separated redirect URIs of that client
//   POST_LOGOUT_REDIRECT_URIS  comma-separated, optional
//
// Users (password = "<username>-password"): alice and bob. bob's sign-ins report a second
// factor in the ID token's amr (["pwd", "otp"]), as a provider that did MFA would; alice's
// report the password only. The login page is a plain form
// (username, password) rather than oidc-provider's development pages, so that a wrong
// password is refused as a real provider would.
import http from 'node:http';
import { Provider } from 'oidc-provider';

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) {
    console.error(`missing environment variable ${name}`);
    process.exit(2);
  }
  return v;
};

const port = Number(env('PORT'));
const issuer = env('ISSUER');
const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);

const users = {
  alice: { email: 'alice@example.net', email_verified: true, name: 'Alice Upstream', groups: ['readers', 'writers'] },
  bob: { email: 'bob@example.net', email_verified: false, name: 'Bob Upstream', groups: [] },
};

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const provider = new Provider(issuer, {
  clients: [{
    client_id: env('CLIENT_ID'),
    client_secret: env('CLIENT_SECRET'),
    redirect_uris: list(env('REDIRECT_URIS')),
    post_logout_redirect_uris: list(env('POST_LOGOUT_REDIRECT_URIS', '')),
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  claims: {
    // amr with the openid scope: oidc-provider releases a session claim only through a scope.
    openid: ['sub', 'amr'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  async findAccount(ctx, id) {
    const u = users[id];
    if (!u) return undefined;
    return { accountId: id, async claims() { return { sub: id, preferred_username: id, ...u }; } };
  },
  // First-party client: consent is implied, as Hallpass's administrators registered it.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile groups');
    await grant.save();
    return grant;
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  features: { devInteractions: { enabled: false }, rpInitiatedLogout: { enabled: true } },
  cookies: { keys: ['hallpass-test-peer-cookie-key'] },
  pkce: { required: () => true },
});

const page = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html><head><title>Upstream sign-in</title></head><body>${body}</body></html>`);
};

const loginForm = (uid, error) => `<h1>Upstream IdP</h1>${error ? `<p id="error">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<label>Username <input id="upstream-username" name="username"></label>
<label>Password <input id="upstream-password" name="password" type="password"></label>
<button id="upstream-submit" type="submit">Sign in upstream</button></form>`;

const readForm = (req) => new Promise((resolve, reject) => {
  let data = '';
  req.on('data', (c) => { data += c; if (data.length > 1e5) reject(new Error('form too large')); });
  req.on('end', () => resolve(new URLSearchParams(data)));
  req.on('error', reject);
});

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  try {
    const m = req.url.match(/^\/interaction\/([^/?]+)(\/login)?/);
    if (!m) return callback(req, res);
    const details = await provider.interactionDetails(req, res);
    if (req.method === 'GET') return page(res, 200, loginForm(details.uid));
    const form = await readForm(req);
    const username = form.get('username') ?? '';
    if (!users[username] || form.get('password') !== `${username}-password`) {
      return page(res, 401, loginForm(details.uid, 'Wrong username or password.'));
    }
    await provider.interactionFinished(req, res, { login: { accountId: username, amr: username === 'bob' ? ['pwd', 'otp'] : ['pwd'] } }, { mergeWithLastSubmission: false });
  } catch (err) {
    console.error(err);
    page(res, 400, `<p id="error">${escape(err.message)}</p>`);
  }
});

server.listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on 127.0.0.1:${port} as ${issuer}`));
