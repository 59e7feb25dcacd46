#!/usr/bin/env bash
# The one command that checks everything (`make test`, and CI through .ci/run). On a fresh
# Debian machine it installs what it needs; tool and control-plane builds are cached outside
# the work tree (Go's build cache, ~/.cache/hallpass), so a second run starts at once.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
started=$SECONDS

# Screenshots of every page the browser tests visit are kept here, one directory per test
# (internal/server's newScreenshots); a directory already named in HALLPASS_ARTIFACTS is used
# as it is. The default one is emptied so that it holds this run's pages only.
if [[ -z "${HALLPASS_ARTIFACTS:-}" ]]; then
  HALLPASS_ARTIFACTS="$PWD/test-artifacts"
  rm -rf "$HALLPASS_ARTIFACTS"
fi
mkdir -p "$HALLPASS_ARTIFACTS"
# go test runs each package in its own directory: the path must not be relative.
HALLPASS_ARTIFACTS="$(cd "$HALLPASS_ARTIFACTS" && pwd)"
export HALLPASS_ARTIFACTS
# Said at the end of every run, a failed one too: that is when the pages are wanted most.
artifacts_note() {
  printf '\nScreenshots of the browser tests: %s (the end-to-end scenarios: test/e2e/artifacts)\n' "$HALLPASS_ARTIFACTS"
}
trap artifacts_note EXIT

step "Installing test dependencies (Debian packages)"
hack/install-deps.sh --node

step "Checking generated files are up to date (make verify)"
make --no-print-directory verify

step "Checking formatting (gofmt)"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [[ -n "$unformatted" ]]; then
  echo "Not gofmt-clean; run 'make fmt':"; echo "$unformatted"; exit 1
fi

step "Vetting (go vet)"
go vet ./...

step "Linting (golangci-lint)"
make --no-print-directory lint

step "Rendering the install manifests (kustomize build config/default)"
make --no-print-directory kustomize-build >/dev/null

step "Installing the pinned helm into bin/ (once) for the chart's tests"
HALLPASS_HELM="$(make --no-print-directory -s helm)"
export HALLPASS_HELM

step "Building the envtest control plane (cached after the first run)"
KUBEBUILDER_ASSETS="$(make --no-print-directory -s envtest)"
export KUBEBUILDER_ASSETS

step "Building oauth2-proxy for its browser test (cached after the first run)"
HALLPASS_OAUTH2_PROXY="$(hack/oauth2-proxy.sh)"
export HALLPASS_OAUTH2_PROXY

# Before the suites: kubectl's sign-in test (cmd/hallpass) runs the real kubectl.
step "Building the real node's binaries: kubelet, kube-controller-manager, kube-scheduler, kube-proxy, kubectl (cached after the first run)"
HALLPASS_NODE_BIN="$(hack/node-binaries.sh)"
HALLPASS_KUBECTL="$HALLPASS_NODE_BIN/kubectl"
export HALLPASS_NODE_BIN HALLPASS_KUBECTL

step "Starting PostgreSQL on loopback"
HALLPASS_TEST_POSTGRES_DSN="$(hack/postgres.sh)"
export HALLPASS_TEST_POSTGRES_DSN

step "Running the tests (go test -race), the end-to-end scenarios included"
export HALLPASS_E2E=1
go test -race -count=1 -timeout 30m ./...

# The shared cluster above runs without fsync, for speed; production does not. The storage
# suite and its benchmark run once more against a second cluster that flushes every commit,
# so that durability is exercised and measured as production runs it.
step "Running the PostgreSQL storage suite and benchmark on a durable cluster (fsync on)"
HALLPASS_TEST_POSTGRES_DSN="$(HALLPASS_PG_DURABLE=1 hack/postgres.sh)" HALLPASS_TEST_POSTGRES_DURABLE=1 \
  go test -count=1 -timeout 15m -run 'TestStorage|TestTheDurableRun' -bench . -benchtime 200x ./internal/storage/postgres/

# Its own step, after the others, so that the node's pods do not compete with the suites
# for the CPU. Not under -race: the code under test runs in containers, from the image.
step "Running the real-node test: the image on a kubelet with containerd and runc, helm install, a sign-in"
HALLPASS_NODE=1 go test -count=1 -timeout 30m ./test/node/

step "All checks passed in $((SECONDS - started))s"
