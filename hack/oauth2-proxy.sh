#!/usr/bin/env bash
# Builds oauth2-proxy from its Go module at a pinned version, for the test that puts it in
# front of an upstream with Hallpass as its OIDC provider. Its usual release download is not
# reachable from our CI, and it is a tool of the tests, not a dependency of Hallpass: it is
# built with `go install` into a cache outside the work tree, keyed by version, and never
# added to go.mod. Only the first run pays the build.
#
# Prints the path of the binary.
set -euo pipefail

VERSION="${OAUTH2_PROXY_VERSION:-v7.15.6}"
CACHE_ROOT="${HALLPASS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hallpass}"
OUT="$CACHE_ROOT/oauth2-proxy/$VERSION"

if [[ -x "$OUT/oauth2-proxy" ]]; then
  echo "$OUT/oauth2-proxy"
  exit 0
fi

# Install into a temporary directory beside the cache and rename it into place, so an
# interrupted build never leaves a binary a later run would take as cached.
mkdir -p "$(dirname "$OUT")"
BUILD="$(mktemp -d "$OUT.partial.XXXXXX")"
trap 'rm -rf "$BUILD"' EXIT
echo "building oauth2-proxy $VERSION into $OUT (first run only)" >&2
# Outside any module, so the work tree's go.mod is neither read nor changed.
(cd "$BUILD" && GOBIN="$BUILD" GOFLAGS=-mod=mod CGO_ENABLED=0 \
  go install -trimpath -ldflags "-s -w -X github.com/oauth2-proxy/oauth2-proxy/v7/pkg/version.VERSION=$VERSION" \
    "github.com/oauth2-proxy/oauth2-proxy/v7@$VERSION") >&2
"$BUILD/oauth2-proxy" --version >&2
rm -rf "$OUT"
mv "$BUILD" "$OUT"
echo "$OUT/oauth2-proxy"
