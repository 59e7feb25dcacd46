#!/usr/bin/env bash
# Builds the node and the rest of the control plane that the real-node test runs beside the
# envtest kube-apiserver and etcd: kubelet, kube-controller-manager, kube-scheduler,
# kube-proxy and kubectl, from the same k8s.io/kubernetes module version. Cached outside the
# work tree, keyed by version; the first run takes long on a small machine (the build runs
# under nice), later runs print the directory at once.
#
# Prints the directory holding the binaries.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.35.4}"
CACHE_ROOT="${HALLPASS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hallpass}"
OUT="$CACHE_ROOT/node/k8s-v${K8S_VERSION}"
COMMANDS=(kubelet kube-controller-manager kube-scheduler kube-proxy kubectl)

cached=1
for c in "${COMMANDS[@]}"; do [[ -x "$OUT/$c" ]] || cached=0; done
if ((cached)); then
  echo "$OUT"
  exit 0
fi

# shellcheck source=lib/kubernetes-module.sh
source "$(dirname "$0")/lib/kubernetes-module.sh"

# Build next to the cache and rename into place, so an interrupted build leaves nothing that
# a later run would take as cached.
mkdir -p "$(dirname "$OUT")"
work="$(mktemp -d)"
BUILD="$(mktemp -d "$OUT.partial.XXXXXX")"
trap 'rm -rf "$work" "$BUILD"' EXIT

echo "building ${COMMANDS[*]} v${K8S_VERSION} into $OUT (first run only)" >&2
started=$SECONDS
nice -n 10 bash -c "$(declare -f k8s_build); k8s_build \"\$@\"" _ "$K8S_VERSION" "$BUILD" "$work/build" "${COMMANDS[@]}" >&2
echo "built in $((SECONDS - started))s" >&2
"$BUILD/kubelet" --version >&2
rm -rf "$OUT"
mv "$BUILD" "$OUT"
echo "$OUT"
