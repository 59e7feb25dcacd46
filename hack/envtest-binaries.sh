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

build_apiserver() {
  local dir="$work/apiserver"
  mkdir -p "$dir"
  cd "$dir"
  go mod init hallpass.local/envtest-apiserver >/dev/null 2>&1
  # k8s.io/kubernetes replaces its staging modules with ./staging paths, which do not exist in
  # the module zip; point each one at the published v0.x release of the same minor instead.
  local kmod
  kmod="$(go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  local staging="v0.${K8S_VERSION#1.}"
  grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$kmod" | awk '{print $1}' | sort -u |
    while read -r m; do go mod edit -replace "$m=$m@$staging"; done
  go mod edit -require "k8s.io/kubernetes@v${K8S_VERSION}"
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
  go mod tidy >/dev/null 2>&1 || true
  local minor="${K8S_VERSION#1.}"; minor="${minor%%.*}"
  local v=k8s.io/component-base/version
  go build -trimpath -o "$BUILD/kube-apiserver" \
    -ldflags "-s -w -X $v.gitVersion=v${K8S_VERSION} -X $v.gitMajor=1 -X $v.gitMinor=${minor} -X $v.gitTreeState=clean" \
    k8s.io/kubernetes/cmd/kube-apiserver
}

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
build_apiserver >&2
"$BUILD/etcd" --version >&2
"$BUILD/kube-apiserver" --version >&2
rm -rf "$OUT"
mv "$BUILD" "$OUT"
echo "$OUT"
