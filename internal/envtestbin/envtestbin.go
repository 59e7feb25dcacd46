// Package envtestbin finds the kube-apiserver and etcd that the envtest suites, the dev
// cluster and the benchmarks run.
package envtestbin

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Dir returns $KUBEBUILDER_ASSETS when set (make test sets it), else the cached build of
// hack/envtest-binaries.sh under repoRoot, built on first use (about 10 minutes), so that
// `go test` from an editor and `hallpass dev` work without setup.
func Dir(ctx context.Context, repoRoot string) (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot, "hack", "envtest-binaries.sh")) //nolint:gosec // G204: the repository's own script
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("build envtest binaries (hack/envtest-binaries.sh): %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// StartTimeout bounds the start of each of the control plane's processes. envtest's own
// default (20 s) is too short for a kube-apiserver on a busy two-core machine, where the
// whole suite runs beside it, and a start that times out fails every test of a package.
const StartTimeout = 2 * time.Minute
