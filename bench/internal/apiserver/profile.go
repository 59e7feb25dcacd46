// Package apiserver holds what the benchmarks ask of the kube-apiserver they start.
package apiserver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"k8s.io/client-go/rest"
)

// Profile takes the API server's CPU profile of the next 30 s into the file path (nothing
// when path is empty) and reports on the channel when it is written. The API server needs
// --profiling.
func Profile(ctx context.Context, cfg *rest.Config, path string) <-chan error {
	done := make(chan error, 1)
	if path == "" {
		done <- nil
		return done
	}
	go func() { done <- profile(ctx, cfg, path) }()
	return done
}

func profile(ctx context.Context, cfg *rest.Config, path string) error {
	httpc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	// The rest config's Host may end in "/", and a doubled one is not found.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+"/debug/pprof/profile?seconds=30", nil)
	if err != nil {
		return err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return fmt.Errorf("profile the API server: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile the API server: %s", resp.Status)
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		_ = out.Close()
		return fmt.Errorf("profile the API server: %w", err)
	}
	return out.Close()
}
