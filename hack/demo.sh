#!/usr/bin/env bash
# make demo: Hallpass on localhost. Builds what it needs (the envtest control plane on the
# first run, ~10 minutes; the hallpass binary and the example apps; npm ci for App 1), then
# runs `hallpass dev` (kube-apiserver, etcd, the operator and the SSO server pods as local
# processes), applies config/samples with their URLs mapped to loopback, waits until the
# SSOServer is Ready, starts App 1 and App 2, and prints where to go. Ctrl-C stops it all.
#
# The SSO server is at https://localhost:$SSO_PORT, with a certificate of a local CA kept in
# bin/demo-ca (valid for loopback names only), and the apps at http://127.0.0.1:$APP1_PORT and
# http://127.0.0.1:$APP2_PORT: the server and the apps are on different sites, so their cookies
# are kept apart. The issuer is a host name over https because passkeys (WebAuthn) need a host
# name and kube-apiserver trusts only https issuers; kubectl signs in with bin/demo-user.kubeconfig.
set -euo pipefail
cd "$(dirname "$0")/.."

SSO_PORT="${SSO_PORT:-5556}"
APP1_PORT="${APP1_PORT:-3001}"
APP2_PORT="${APP2_PORT:-3002}"
READY_TIMEOUT="${READY_TIMEOUT:-180}"
BIN="$PWD/bin"
KUBECONFIG_OUT="$BIN/demo.kubeconfig"
USER_KUBECONFIG_OUT="$BIN/demo-user.kubeconfig"
CA_DIR="$BIN/demo-ca"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

for tool in go npm; do
  command -v "$tool" >/dev/null || die "$tool is required (Debian: apt-get install golang nodejs npm)"
done
for port in "$SSO_PORT" "$APP1_PORT" "$APP2_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port is in use; free it or set SSO_PORT / APP1_PORT / APP2_PORT"
  fi
done

say "Control plane binaries (built once and cached; the first build takes ~10 minutes)"
KUBEBUILDER_ASSETS="${KUBEBUILDER_ASSETS:-$(hack/envtest-binaries.sh)}"
export KUBEBUILDER_ASSETS

say "Building bin/hallpass, bin/app1 and bin/app2"
mkdir -p "$BIN"
CGO_ENABLED=0 go build -o "$BIN/hallpass" ./cmd/hallpass
CGO_ENABLED=0 go build -o "$BIN/app1" ./examples/app1
CGO_ENABLED=0 go build -o "$BIN/app2" ./examples/app2

say "Installing App 1's JavaScript (npm ci, from the committed lock file)"
(cd examples/app1 && npm ci --no-audit --no-fund --loglevel=error)

pids=()
work="$(mktemp -d)"
cleanup() {
  trap - EXIT INT TERM
  say "Stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "Starting the control plane, the operator and the SSO server pods (hallpass dev)"
"$BIN/hallpass" dev \
  --apply config/samples \
  --map-url "https://sso.example.com=https://localhost:$SSO_PORT" \
  --map-url "https://app1.example.com=http://127.0.0.1:$APP1_PORT" \
  --map-url "https://app2.example.com=http://127.0.0.1:$APP2_PORT" \
  --ca-dir "$CA_DIR" \
  --kubectl-client kubectl --kubectl-kubeconfig-out "$USER_KUBECONFIG_OUT" \
  --kubeconfig-out "$KUBECONFIG_OUT" \
  --ready-file "$work/ready" \
  --ready-timeout "${READY_TIMEOUT}s" &
pids+=($!)

for ((i = 0; i < READY_TIMEOUT * 2; i++)); do
  [[ -f "$work/ready" ]] && break
  kill -0 "${pids[0]}" 2>/dev/null || die "hallpass dev stopped; see its output above"
  sleep 0.5
done
[[ -f "$work/ready" ]] || die "the SSOServer did not become Ready within ${READY_TIMEOUT}s"

say "Starting App 1 and App 2"
"$BIN/app1" --listen "127.0.0.1:$APP1_PORT" --base-url "http://127.0.0.1:$APP1_PORT" \
  --app2-url "http://127.0.0.1:$APP2_PORT" --kubeconfig "$KUBECONFIG_OUT" > >(sed -u 's/^/[app1] /' >&2) 2>&1 &
pids+=($!)
# App 2 calls the issuer's token endpoint itself: it trusts the demo CA (and only it).
"$BIN/app2" --listen "127.0.0.1:$APP2_PORT" --base-url "http://127.0.0.1:$APP2_PORT" --ca-file "$CA_DIR/ca.crt" \
  --kubeconfig "$KUBECONFIG_OUT" > >(sed -u 's/^/[app2] /' >&2) 2>&1 &
pids+=($!)

cat >&2 <<MSG

  Hallpass is running.

    SSO server (issuer)  https://localhost:$SSO_PORT/.well-known/openid-configuration
    App 1 (single-page)  http://127.0.0.1:$APP1_PORT/
    App 2 (Go web app)   http://127.0.0.1:$APP2_PORT/
    Single sign-on link  http://127.0.0.1:$APP2_PORT/auth/sso?connection=username-password&target_url=/dashboard

    Demo user            demo / correct-horse-battery
    Account page         https://localhost:$SSO_PORT/account   (add a passkey there)

    Your browser must trust the demo CA for the issuer's pages and for passkeys. Either
    open a Chromium of its own that trusts the demo CA's key:
      chromium --user-data-dir=\$(mktemp -d) --ignore-certificate-errors-spki-list=$(cat "$CA_DIR/ca.spki-sha256") http://127.0.0.1:$APP1_PORT/
    or trust $CA_DIR/ca.crt once (it signs loopback names only; kept across runs):
      Chrome/Chromium on Linux  certutil -d sql:\$HOME/.pki/nssdb -A -t C,, -n hallpass-demo -i $CA_DIR/ca.crt
      macOS                     security add-trusted-cert -r trustRoot -k ~/Library/Keychains/login.keychain-db $CA_DIR/ca.crt
      Firefox                   Settings > Certificates > View Certificates > Authorities > Import

    kubectl (admin)      export KUBECONFIG=$KUBECONFIG_OUT
                         kubectl get ssoservers,ssoclients,identityconnections
                         kubectl get secret app2-sso-credentials -o yaml
    kubectl (demo user)  KUBECONFIG=$USER_KUBECONFIG_OUT kubectl auth whoami
                         (hallpass login opens the browser; add --device to the user's
                         args in that file to sign in with a code instead; the user entry
                         is printed above, to add to a kubeconfig of your own)

  Sign in on App 1, then follow its link to App 2: no second login. docs/demo.md has the tour.
  Press Ctrl-C to stop everything.

MSG
wait -n "${pids[@]}" || true
die "a demo process stopped; see its output above"
