package proc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestThisProcessReadsAsItself(t *testing.T) {
	st, err := ReadStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	// The kernel keeps the first 15 bytes of the command name.
	if want := filepath.Base(exe); !strings.HasPrefix(want, st.Command) || st.Command == "" {
		t.Errorf("command %q, want a prefix of %q", st.Command, want)
	}
	if st.Parent != os.Getppid() {
		t.Errorf("parent %d, want %d", st.Parent, os.Getppid())
	}
	m, err := ReadMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.Resident <= 0 || m.Peak < m.Resident || m.Anonymous > m.Resident {
		t.Errorf("memory %+v: want 0 < anonymous ≤ resident ≤ peak", m)
	}
}

func TestAChildIsFoundByItsParent(t *testing.T) {
	cmd := exec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	children := Children(os.Getpid())
	if st, ok := children[cmd.Process.Pid]; !ok || st.Command != "sleep" {
		t.Errorf("children %v: want the sleep with PID %d", children, cmd.Process.Pid)
	}
	if _, ok := children[os.Getpid()]; ok {
		t.Error("a process is listed as its own child")
	}
	byName := CPUByName(os.Getpid(), map[int]string{os.Getpid(): "this test"})
	if _, ok := byName["sleep"]; !ok {
		t.Errorf("CPU by name %v: no sleep", byName)
	}
	if _, ok := byName["this test"]; !ok {
		t.Errorf("CPU by name %v: this process not under the name given", byName)
	}
}

func TestTheSampledPeakIsTheHighestValueRead(t *testing.T) {
	values := make(chan int64, 3)
	values <- 5
	values <- 9
	values <- 2
	stop := SamplePeak(time.Millisecond, func() (int64, error) {
		select {
		case v := <-values:
			return v, nil
		default:
			return 0, os.ErrNotExist
		}
	})
	for len(values) > 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)
	if got := stop(); got != 9 {
		t.Errorf("peak %d, want 9", got)
	}
	if got := stop(); got != 9 {
		t.Errorf("a second stop gave %d, want 9 again", got)
	}
}

func TestAProcessThatIsGoneIsAnError(t *testing.T) {
	if _, err := ReadStat(-1); err == nil {
		t.Error("ReadStat(-1) gave no error")
	}
	if _, err := ReadMemory(-1); err == nil {
		t.Error("ReadMemory(-1) gave no error")
	}
}
