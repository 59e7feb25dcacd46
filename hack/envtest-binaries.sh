#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver, etcd) from Go modules, because the usual
# download of these binaries is not reachable from our CI. The result is cached outside the
# work tree, keyed by version, so only the first run pays the ~10 minute build.
#
# Prints the directory holding the binaries (suitable for KUBEBUILDER_ASSETS).
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.35.4}"
ETCD_VERSION="${ETCD_VERSION:-3.6.6}"
CACHE_ROOT="${HALLPASS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hallpass}"
OUT="$CACHE_ROOT/envtest/k8s-v${K8S_VERSION}-etcd-v${ETCD_VERSION}"

if [[ -x "$OUT/kube-apiserver" && -x "$OUT/etcd" ]]; then
  echo "$OUT"
  exit 0
fi

# Build into a temporary directory next to the cache and rename it into place at the end, so
# an interrupted build never leaves a half-written binary that a later run takes as cached.
mkdir -p "$(dirname "$OUT")"
work="$(mktemp -d)"
BUILD="$(mktemp -d "$OUT.partial.XXXXXX")"
trap 'rm -rf "$work" "$BUILD"' EXIT
export GOFLAGS=-mod=mod CGO_ENABLED=0
# shellcheck source=lib/kubernetes-module.sh
source "$(dirname "$0")/lib/kubernetes-module.sh"

build_etcd() {
  local dir="$work/etcd"
  mkdir -p "$dir"
  cd "$dir"
  go mod init hallpass.local/envtest-etcd >/dev/null 2>&1
  go mod edit -require "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}"
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  go mod tidy >/dev/null 2>&1 || true
  go build -trimpath -o "$BUILD/etcd" -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=v${ETCD_VERSION}" \
    go.etcd.io/etcd/server/v3
}

echo "building etcd v${ETCD_VERSION} and kube-apiserver v${K8S_VERSION} into $OUT (first run only, ~10 min)" >&2
build_etcd >&2
k8s_build "$K8S_VERSION" "$BUILD" "$work/apiserver" kube-apiserver >&2
"$BUILD/etcd" --version >&2
"$BUILD/kube-apiserver" --version >&2
rm -rf "$OUT"
mv "$BUILD" "$OUT"
echo "$OUT"
