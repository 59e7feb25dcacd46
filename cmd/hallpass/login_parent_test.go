package main

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestASignInNobodyWaitsForEndsWithTheCommandThatRanIt: kubectl, stopped by a script's
// timeout while `hallpass login --device` waits for the user, does not stop its plugin; the
// plugin notices that the command that ran it is gone and stops polling the server, instead
// of waiting ten minutes for an answer nobody would read.
func TestASignInNobodyWaitsForEndsWithTheCommandThatRanIt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the hallpass command")
	}
	hallpass := buildHallpass(t)
	issuer := startIssuer(t, nil)
	dir := t.TempDir()
	stderrFile := filepath.Join(dir, "login.stderr")
	// The shell stands for kubectl: it runs the plugin, says which process that is, and
	// waits for it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	parent := exec.CommandContext(ctx, "/bin/sh", "-c", `"$0" login --issuer "$1" --client-id "$2" --device --cache-dir "$3" 2>"$4" & echo $!; wait`,
		hallpass, issuer, kubectlClient, filepath.Join(dir, "cache"), stderrFile)
	out, err := parent.StdoutPipe()
	must(t, err)
	must(t, parent.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	must(t, err)
	plugin, err := strconv.Atoi(strings.TrimSpace(line))
	must(t, err)
	t.Cleanup(func() { _ = syscall.Kill(plugin, syscall.SIGKILL) })
	waitForFile(t, stderrFile, regexp.MustCompile(`enter the code`))

	must(t, parent.Process.Kill())
	_ = parent.Wait()
	deadline := time.Now().Add(15 * time.Second)
	for stillRunning(plugin) {
		if time.Now().After(deadline) {
			t.Fatalf("hallpass login still waits for a sign-in 15 s after the command that ran it ended; stderr:\n%s", readFile(stderrFile))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stillRunning tells whether the process exists and has not ended (an ended process whose new
// parent has not collected it yet is a zombie: state Z).
func stillRunning(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces, so the state follows the last ')'.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	return !strings.HasPrefix(strings.TrimSpace(rest), "Z")
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// waitForFile waits until re matches the file's content.
func waitForFile(t *testing.T, path string, re *regexp.Regexp) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !re.MatchString(readFile(path)) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never matched %s:\n%s", path, re, readFile(path))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
