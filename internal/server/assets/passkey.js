// The one script of the login and account pages: glue between a form and the browser's
// WebAuthn API. A button with data-passkey="create" or "get" carries the server's options
// (JSON, binary values in base64url) in data-options; a click asks the browser for a new
// credential or an assertion, puts the answer (JSON) in the form's "credential" field and
// submits the form. The server checks everything; this script decides nothing.
"use strict";
(function () {
  function bytes(b64url) {
    var b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(b64 + "===".slice((b64.length + 3) % 4));
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out.buffer;
  }
  function b64url(buf) {
    var s = "";
    var a = new Uint8Array(buf);
    for (var i = 0; i < a.length; i++) s += String.fromCharCode(a[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function descriptors(list) {
    return (list || []).map(function (c) { return Object.assign({}, c, { id: bytes(c.id) }); });
  }
  function encode(cred) {
    var r = cred.response;
    var response = { clientDataJSON: b64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = b64url(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = b64url(r.authenticatorData);
      response.signature = b64url(r.signature);
      if (r.userHandle) response.userHandle = b64url(r.userHandle);
    }
    return JSON.stringify({
      id: cred.id, rawId: b64url(cred.rawId), type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      response: response, clientExtensionResults: cred.getClientExtensionResults(),
    });
  }
  function run(button) {
    var form = button.form;
    var status = document.getElementById(button.getAttribute("aria-describedby"));
    var options = JSON.parse(button.dataset.options).publicKey;
    options.challenge = bytes(options.challenge);
    var call;
    if (button.dataset.passkey === "create") {
      options.user = Object.assign({}, options.user, { id: bytes(options.user.id) });
      options.excludeCredentials = descriptors(options.excludeCredentials);
      call = navigator.credentials.create({ publicKey: options });
    } else {
      options.allowCredentials = descriptors(options.allowCredentials);
      call = navigator.credentials.get({ publicKey: options });
    }
    button.disabled = true;
    call.then(function (cred) {
      form.elements.credential.value = encode(cred);
      form.submit();
    }, function (err) {
      button.disabled = false;
      if (status) status.textContent = "No passkey was used (" + err.name + "). Try again, or use another way.";
    });
  }
  document.querySelectorAll("button[data-passkey]").forEach(function (button) {
    if (!window.PublicKeyCredential) {
      button.hidden = true;
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () { run(button); });
  });
})();
