// Package browser starts Debian's Chromium, headless, for tests that drive a real browser
// with chromedp. Every browser gets a fresh profile and a host resolver that sends the
// test's host names to loopback and fails every other name, so a test can never reach the
// network.
//
// A missing Chromium fails the test with the command that installs it: browser tests are
// part of the suite and must never pass by skipping.
package browser

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// Bounds of browser work.
const (
	// StartTimeout bounds Chromium's start.
	StartTimeout = time.Minute
	// StepTimeout bounds every action a test runs through Run.
	StepTimeout = 30 * time.Second
)

// Path is the Chromium binary: $HALLPASS_CHROMIUM, or Debian's /usr/bin/chromium.
func Path() string {
	if p := os.Getenv("HALLPASS_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// Options adjust the browser that Start launches.
type Options struct {
	// Hosts are resolved to 127.0.0.1; every other name fails to resolve.
	Hosts []string
	// Flags are extra Chromium command-line flags.
	Flags map[string]any
	// OnFailure, when set, runs before Run fails the test (to keep a screenshot, say).
	OnFailure func(what string)
}

// HostResolverRules returns Chromium's --host-resolver-rules value that maps hosts to
// loopback and every other name to "not found".
func HostResolverRules(hosts []string) string {
	rules := make([]string, 0, len(hosts)+2)
	for _, h := range hosts {
		rules = append(rules, "MAP "+h+" 127.0.0.1")
	}
	return strings.Join(append(rules, "MAP * ~NOTFOUND", "EXCLUDE 127.0.0.1"), ", ")
}

// Browser is one headless Chromium with its own profile.
type Browser struct {
	t         testing.TB
	ctx       context.Context
	onFailure func(what string)
}

// Start launches Chromium and waits until it answers, failing t (not skipping) when it
// cannot. The browser ends when the test does. Under -short (make test-unit) it skips t.
func Start(t testing.TB, o Options) *Browser {
	t.Helper()
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	if _, err := os.Stat(Path()); err != nil {
		t.Fatalf("chromium not found at %s: run hack/install-deps.sh (make test does), or set HALLPASS_CHROMIUM: %v", Path(), err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Path()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("host-resolver-rules", HostResolverRules(o.Hosts)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 800),
	}
	for k, v := range o.Flags {
		opts = append(opts, chromedp.Flag(k, v))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first run starts the browser; a timeout on its context would also end the
	// browser, so a timer bounds it instead.
	timer := time.AfterFunc(StartTimeout, cancelCtx)
	err := chromedp.Do(ctx)
	if !timer.Stop() {
		t.Fatalf("start chromium %s: not started within %s", Path(), StartTimeout)
	}
	if err != nil {
		t.Fatalf("start chromium %s: %v", Path(), err)
	}
	return &Browser{t: t, ctx: ctx, onFailure: o.OnFailure}
}

// Context is the browser tab's context, for listeners and actions that Run does not cover.
func (b *Browser) Context() context.Context { return b.ctx }

// Run runs actions within StepTimeout and fails the test with what and the page's URL when
// one of them fails.
func (b *Browser) Run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, StepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		if b.onFailure != nil {
			b.onFailure(what)
		}
		b.t.Fatalf("%s: %v (the browser is at %s)", what, err, b.Location())
	}
}

// Try runs one action within timeout and returns its value or error, without failing the
// test.
func Try[T any](b *Browser, timeout time.Duration, action chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	return chromedp.Run(ctx, action)
}

// Location is the URL of the page the browser shows, or "" when it cannot tell.
func (b *Browser) Location() string {
	loc, _ := Try(b, 5*time.Second, chromedp.Location())
	return loc
}

// WaitLocation waits, within StepTimeout, until the page's URL starts with prefix, and fails
// the test otherwise. Redirect chains through other sites end at no fixed moment.
func (b *Browser) WaitLocation(prefix string) {
	b.t.Helper()
	var loc string
	for deadline := time.Now().Add(StepTimeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if loc = b.Location(); strings.HasPrefix(loc, prefix) {
			return
		}
	}
	if b.onFailure != nil {
		b.onFailure("wait for " + prefix)
	}
	b.t.Fatalf("the browser is at %s, want a page under %s", loc, prefix)
}

// Count returns how many elements match the CSS selector sel on the current page.
func (b *Browser) Count(sel string) int {
	b.t.Helper()
	n, err := Try(b, StepTimeout, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
	if err != nil {
		b.t.Fatalf("count %s: %v (the browser is at %s)", sel, err, b.Location())
	}
	return n
}

// Text returns the visible text of the first element matching sel, waiting for it within
// StepTimeout.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	s, err := Try(b, StepTimeout, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		b.t.Fatalf("read %s: %v (the browser is at %s)", sel, err, b.Location())
	}
	return s
}

// RecordPages starts recording the URL of every document the browser's tab shows (its
// committed main-frame navigations; the redirects in between show nothing and are not
// recorded). The returned function stops recording and returns the URLs in order.
func (b *Browser) RecordPages() (stop func() []string) {
	b.t.Helper()
	return Record(b, "navigations", func(ev any) (string, bool) {
		e, ok := ev.(*page.EventFrameNavigated)
		if !ok || e.Frame.ParentID != "" {
			return "", false
		}
		return e.Frame.URL, true
	})
}

// RecordConsoleErrors starts recording the messages the browser logs at error level
// (Content-Security-Policy violations among them, whose source is "security"), as
// "source: text (url)". The returned function stops recording and returns them in order.
func (b *Browser) RecordConsoleErrors() (stop func() []string) {
	b.t.Helper()
	return Record(b, "console", func(ev any) (string, bool) {
		e, ok := ev.(*cdplog.EventEntryAdded)
		if !ok || e.Entry.Level != cdplog.EntryLevelError {
			return "", false
		}
		return string(e.Entry.Source) + ": " + e.Entry.Text + " (" + e.Entry.URL + ")", true
	})
}

// Record starts recording what pick takes from the tab's DevTools events. The returned
// function stops recording and returns the records in order.
func Record[T any](b *Browser, what string, pick func(ev any) (T, bool)) (stop func() []T) {
	b.t.Helper()
	ctx, cancel := context.WithCancel(b.ctx)
	var mu sync.Mutex
	var got []T
	err := chromedp.Listen(ctx, func(ev any) {
		if v, ok := pick(ev); ok {
			mu.Lock()
			got = append(got, v)
			mu.Unlock()
		}
	})
	if err != nil {
		cancel()
		b.t.Fatalf("listen to the browser's %s: %v", what, err)
	}
	return func() []T {
		cancel()
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}
