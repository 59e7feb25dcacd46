package memlimit

import "testing"

func TestTheHeapAimsBelowTheContainersMemoryLimit(t *testing.T) {
	for _, tt := range []struct {
		name, file string
		want       int64
	}{
		{"a 256 MiB limit lets the heap aim for 85% of it", "268435456\n", 228170137},
		{"cgroup v2 without a limit sets none", "max\n", 0},
		{"cgroup v1 without a limit sets none", "9223372036854771712\n", 0},
		{"an unreadable value sets none", "lots\n", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := ForCgroupLimit(tt.file); got != tt.want {
				t.Errorf("ForCgroupLimit(%q) = %d, want %d", tt.file, got, tt.want)
			}
		})
	}
}
