package devcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
)

// Timings of the local pods. The dev runner probes far more often than the Deployment's
// probe period asks, so that a server is reported ready within a fraction of a second.
const (
	probeIntervalStarting = 100 * time.Millisecond
	probeIntervalRunning  = time.Second
	probeTimeout          = time.Second
	stopGracePeriod       = 10 * time.Second
	restartBackoffMin     = 500 * time.Millisecond
	restartBackoffMax     = 30 * time.Second
)

// podSpec is everything needed to run one pod's container as a local process. It is
// computed from the Deployment's pod template by the runner (see plan.go).
type podSpec struct {
	key types.NamespacedName
	// hash identifies the pod template the spec was built from.
	hash string
	// path and args are the process to run; env its whole environment.
	path string
	args []string
	env  []string
	// readinessURL is polled; a 2xx or 3xx answer means ready. Empty: ready once started.
	readinessURL string
	// ports maps container port names and numbers to the loopback ports the process uses.
	ports map[string]int
	// cleanup removes per-start state (emptyDir volumes) after the process has stopped.
	cleanup func()
}

// pod supervises one process: starts it, restarts it with backoff when it exits, probes
// its readiness, and reports readiness changes through onChange.
type pod struct {
	spec     podSpec
	log      logr.Logger
	out      *prefixWriter
	onChange func(types.NamespacedName)

	ready    atomic.Bool
	pid      atomic.Int64
	restarts atomic.Int32

	cancel context.CancelFunc
	done   chan struct{}
}

func startPod(ctx context.Context, spec podSpec, out io.Writer, log logr.Logger, onChange func(types.NamespacedName)) *pod {
	ctx, cancel := context.WithCancel(ctx)
	p := &pod{
		spec: spec, log: log.WithValues("pod", spec.key.String()),
		out:      newPrefixWriter(out, "["+spec.key.String()+"] "),
		onChange: onChange, cancel: cancel, done: make(chan struct{}),
	}
	go p.supervise(ctx)
	return p
}

// stop ends the process (SIGTERM, then SIGKILL after the grace period) and waits for it.
func (p *pod) stop() {
	p.cancel()
	<-p.done
}

func (p *pod) setReady(ready bool) {
	if p.ready.Swap(ready) != ready {
		p.log.Info("Pod readiness changed", "ready", ready)
		p.onChange(p.spec.key)
	}
}

func (p *pod) supervise(ctx context.Context) {
	defer close(p.done)
	defer func() {
		if p.spec.cleanup != nil {
			p.spec.cleanup()
		}
	}()
	backoff := restartBackoffMin
	for {
		started := time.Now()
		err := p.runOnce(ctx)
		p.setReady(false)
		if ctx.Err() != nil {
			return
		}
		p.restarts.Add(1)
		// A process that ran for a while before failing starts over with a short backoff.
		if time.Since(started) > restartBackoffMax {
			backoff = restartBackoffMin
		}
		p.log.Info("Server process exited; restarting", "error", err, "after", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, restartBackoffMax)
	}
}

// runOnce runs the process until it exits or ctx ends.
func (p *pod) runOnce(ctx context.Context) error {
	cmd := exec.Command(p.spec.path, p.spec.args...) //nolint:gosec // G204: the hallpass binary with the args of the Deployment the operator wrote, as a kubelet would run it
	cmd.Env = p.spec.env
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(p.out, "start %s: %v\n", p.spec.path, err)
		return fmt.Errorf("start %s: %w", p.spec.path, err)
	}
	p.pid.Store(int64(cmd.Process.Pid))
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	probeCtx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	go p.probe(probeCtx)

	select {
	case err := <-exited:
		p.pid.Store(0)
		return fmt.Errorf("server process: %w", err)
	case <-ctx.Done():
	}
	p.setReady(false)
	// Signal the whole process group: a server could start children of its own.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	var status error
	select {
	case status = <-exited:
	case <-time.After(stopGracePeriod):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		status = <-exited
	}
	p.log.V(1).Info("Server process stopped", "status", status)
	p.pid.Store(0)
	return nil
}

// probe polls the readiness URL until ctx ends: quickly until the first success, then at
// a steady pace so that a server that stops answering is reported unready.
func (p *pod) probe(ctx context.Context) {
	if p.spec.readinessURL == "" {
		p.setReady(true)
		return
	}
	client := &http.Client{Timeout: probeTimeout}
	interval := probeIntervalStarting
	for {
		ok := probeOnce(ctx, client, p.spec.readinessURL)
		p.setReady(ok)
		if ok {
			interval = probeIntervalRunning
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

func probeOnce(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

// prefixWriter writes complete lines to out, each with a prefix, so that the logs of
// several processes interleave line by line.
type prefixWriter struct {
	mu     *sync.Mutex
	out    io.Writer
	prefix string
	buf    []byte
}

// outputLocks serialises writes per destination, since several pods share one.
var (
	outputLocksMu sync.Mutex
	outputLocks   = map[io.Writer]*sync.Mutex{}
)

func newPrefixWriter(out io.Writer, prefix string) *prefixWriter {
	outputLocksMu.Lock()
	defer outputLocksMu.Unlock()
	mu := outputLocks[out]
	if mu == nil {
		mu = &sync.Mutex{}
		outputLocks[out] = mu
	}
	return &prefixWriter{mu: mu, out: out, prefix: prefix}
}

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if _, err := io.WriteString(w.out, w.prefix+string(w.buf[:i+1])); err != nil {
			return len(b), err
		}
		w.buf = w.buf[i+1:]
	}
	// A process that never ends its line still gets its output shown once it is long.
	if len(w.buf) > 64<<10 {
		_, _ = io.WriteString(w.out, w.prefix+string(w.buf)+"\n")
		w.buf = nil
	}
	return len(b), nil
}

// tempDirFor makes a directory under root for one pod start.
func tempDirFor(root string, key types.NamespacedName) (string, error) {
	dir := filepath.Join(root, "pods", key.Namespace, key.Name+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create pod directory: %w", err)
	}
	return dir, nil
}

var errUnsupported = errors.New("not supported by the local pod runner")
