# Sourced by the scripts that build Kubernetes components from the k8s.io/kubernetes Go
# module (hack/envtest-binaries.sh, hack/node-binaries.sh), because the usual download of
# release binaries is not reachable from our CI.

# k8s_build VERSION OUT_DIR WORK_DIR COMMAND... builds each k8s.io/kubernetes/cmd/COMMAND of
# Kubernetes VERSION (e.g. 1.35.4) as a static binary OUT_DIR/COMMAND, in a throwaway module
# in WORK_DIR that requires k8s.io/kubernetes at that version.
k8s_build() {
  local version="$1" out="$2" dir="$3"
  shift 3
  mkdir -p "$dir"
  (
    cd "$dir"
    export GOFLAGS=-mod=mod CGO_ENABLED=0
    go mod init hallpass.local/kubernetes-build >/dev/null 2>&1
    # k8s.io/kubernetes replaces its staging modules with ./staging paths, which do not exist
    # in the module zip; point each one at the published v0.x release of the same minor.
    local kmod
    kmod="$(go mod download -json "k8s.io/kubernetes@v${version}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    local staging="v0.${version#1.}"
    grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$kmod" | awk '{print $1}' | sort -u |
      while read -r m; do go mod edit -replace "$m=$m@$staging"; done
    go mod edit -require "k8s.io/kubernetes@v${version}"
    {
      printf '//go:build tools\n\npackage tools\n\nimport (\n'
      for c in "$@"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
      printf ')\n'
    } > tools.go
    go mod tidy >/dev/null 2>&1 || true
    local minor="${version#1.}"; minor="${minor%%.*}"
    local v=k8s.io/component-base/version
    for c in "$@"; do
      go build -trimpath -o "$out/$c" \
        -ldflags "-s -w -X $v.gitVersion=v${version} -X $v.gitMajor=1 -X $v.gitMinor=${minor} -X $v.gitTreeState=clean" \
        "k8s.io/kubernetes/cmd/$c"
    done
  )
}
