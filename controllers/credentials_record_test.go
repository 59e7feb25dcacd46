package controllers

import (
	"testing"
	"time"
)

func TestThePreviousClientSecretIsAcceptedOnlyWithinItsOverlap(t *testing.T) {
	rotated := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	record := func(until time.Time) map[string]string {
		return map[string]string{
			annotationSecretRotatedAt:      rotated.Format(time.RFC3339),
			annotationPreviousSecretSHA256: "old-digest",
			annotationPreviousSecretUntil:  until.Format(time.RFC3339),
		}
	}
	tests := []struct {
		name     string
		until    time.Time
		now      time.Time
		accepted bool
	}{
		{"within the recorded overlap", rotated.Add(24 * time.Hour), rotated.Add(time.Hour), true},
		{"after the recorded overlap", rotated.Add(24 * time.Hour), rotated.Add(25 * time.Hour), false},
		{"a recorded end beyond the longest overlap is cut to it", rotated.Add(10 * 365 * 24 * time.Hour), rotated.Add(maxSecretOverlap + time.Second), false},
		{"a recorded end beyond the longest overlap still counts within it", rotated.Add(10 * 365 * 24 * time.Hour), rotated.Add(maxSecretOverlap - time.Second), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			digests, _ := acceptedDigests(record(tc.until), "new-secret", tc.now)
			if got := len(digests) == 2 && digests[1] == "old-digest"; got != tc.accepted {
				t.Fatalf("accepted digests %v at %s; previous accepted = %v, want %v", digests, tc.now.Sub(rotated), got, tc.accepted)
			}
		})
	}
}
