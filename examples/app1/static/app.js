// App 1: sign-in with oidc-client-ts.
//
// Silent renewal asks the SSO server for new tokens with prompt=none: the server answers
// without showing anything when its central session is still valid, and with the error
// login_required otherwise. It runs as a top-level redirect rather than in a hidden
// iframe: the central session cookie is SameSite=Lax, and browsers do not send such a
// cookie to an iframe of another site, so an iframe could never see the session when App 1
// and the server are on different sites.
"use strict";

const $ = (id) => document.getElementById(id);

function show(id, text) {
  const el = $(id);
  el.hidden = false;
  el.textContent = text;
}

async function main() {
  const cfg = await (await fetch("/config.json")).json();
  $("app2-link").href = cfg.app2_sso_url;
  const mgr = new oidc.UserManager({
    authority: cfg.authority,
    client_id: cfg.client_id,
    redirect_uri: cfg.redirect_uri,
    post_logout_redirect_uri: cfg.post_logout_redirect_uri,
    response_type: "code",
    scope: "openid profile email",
    automaticSilentRenew: false,
    loadUserInfo: false,
    userStore: new oidc.WebStorageStateStore({ store: window.sessionStorage }),
  });

  if (location.pathname === "/callback") {
    try {
      const user = await mgr.signinRedirectCallback();
      if (user.state && user.state.renew) {
        show("renew-result", "Session renewed silently at " + new Date().toISOString());
      }
    } catch (err) {
      // An ErrorResponse carries the OAuth error code, e.g. login_required.
      const code = err.error || String(err);
      if (err.state && err.state.renew) {
        await mgr.removeUser();
        show("renew-result", "Silent renewal failed: " + code);
      } else {
        show("error", "Sign-in failed: " + code + (err.error_description ? " (" + err.error_description + ")" : ""));
      }
    }
    history.replaceState(null, "", "/");
  }

  const user = await mgr.getUser();
  if (user && !user.expired) {
    $("who").textContent = "Signed in as " + (user.profile.name || user.profile.sub);
    $("renew").hidden = false;
    $("logout").hidden = false;
  } else {
    $("who").textContent = "Not signed in";
    $("login").hidden = false;
  }

  $("login").onclick = () => mgr.signinRedirect({ extraQueryParams: { connection: cfg.connection } });
  $("renew").onclick = () => mgr.signinRedirect({ prompt: "none", state: { renew: true } });
  $("logout").onclick = () => mgr.signoutRedirect({ id_token_hint: user && user.id_token });
}

main().catch((err) => show("error", "App 1 failed to start: " + err));
