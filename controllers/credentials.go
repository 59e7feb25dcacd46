package controllers

import (
	"cmp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/pkg/ssoapp/credentials"
)

// Annotations on a client record (clientrecord.go), the durable record of its client
// secret's rotation. They are written in the same write as the secret itself, so the record
// and the secret cannot disagree, and survive a lost status or a restarted operator. A digest of a 256-bit
// random secret reveals nothing usable, and whoever can read the annotations can read the
// secret anyway.
const (
	// annotationSecretRotatedAt is when the current client secret was written.
	annotationSecretRotatedAt = "sso.hallpass.dev/secret-rotated-at"
	// annotationPreviousSecretSHA256 is the digest of the previous client secret, which the
	// server accepts until annotationPreviousSecretUntil.
	annotationPreviousSecretSHA256 = "sso.hallpass.dev/previous-secret-sha256"
	annotationPreviousSecretUntil  = "sso.hallpass.dev/previous-secret-until"
	// annotationCredentialKeys records the keys ("<client ID key>,<client secret key>") the
	// Secret was written with, so a change of spec.credentials.keys finds the old values and
	// applications (pkg/ssoapp/credentials) find the renamed ones.
	annotationCredentialKeys = credentials.AnnotationKeys
)

// defaultSecretOverlap is how long the previous client secret stays accepted when
// spec.credentials.rotation.overlap is not set.
const defaultSecretOverlap = 24 * time.Hour

// maxSecretOverlap is the bound of spec.credentials.rotation.overlap. A recorded overlap
// that ends later (the Secret edited by hand, or restored from an old backup with a clock
// far ahead) ends then instead: the previous secret is never accepted for longer.
const maxSecretOverlap = 720 * time.Hour

// secretRecord is what a client record says about its client secret's rotation.
type secretRecord struct {
	rotatedAt time.Time
	// previous is the digest of the previous secret, accepted while now is before until.
	previous string
	until    time.Time
}

// readSecretRecord reads the rotation record of a client from the annotations it was
// written with; a previous secret whose overlap has ended is left out. created stands in
// for a record without a rotation time.
func readSecretRecord(a map[string]string, created, now time.Time) secretRecord {
	var rec secretRecord
	if t, err := time.Parse(time.RFC3339, a[annotationSecretRotatedAt]); err == nil {
		rec.rotatedAt = t
	} else {
		rec.rotatedAt = created
	}
	if until, err := time.Parse(time.RFC3339, a[annotationPreviousSecretUntil]); err == nil && a[annotationPreviousSecretSHA256] != "" {
		until = minTime(until, rec.rotatedAt.Add(maxSecretOverlap))
		if now.Before(until) {
			rec.previous, rec.until = a[annotationPreviousSecretSHA256], until
		}
	}
	return rec
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// annotations returns the record as annotations of the credentials Secret.
func (rec secretRecord) annotations() map[string]string {
	out := map[string]string{}
	if !rec.rotatedAt.IsZero() {
		out[annotationSecretRotatedAt] = rec.rotatedAt.UTC().Format(time.RFC3339)
	}
	if rec.previous != "" {
		out[annotationPreviousSecretSHA256] = rec.previous
		out[annotationPreviousSecretUntil] = rec.until.UTC().Format(time.RFC3339)
	}
	return out
}

// acceptedDigests returns the digests of the client secrets the server accepts for a client
// whose record has these annotations and holds secret, and when that set next changes (zero
// if never).
func acceptedDigests(annotations map[string]string, secret string, now time.Time) ([]string, time.Time) {
	digests := []string{digest.Of(secret)}
	rec := readSecretRecord(annotations, now, now)
	if rec.previous != "" && rec.previous != digests[0] {
		digests = append(digests, rec.previous)
	}
	return digests, rec.until
}

// storedCredentials reads the client ID and secret of an existing credentials Secret under
// the keys it records it was written with, else the configured keys, else the defaults.
func storedCredentials(secret *corev1.Secret, sc *hallpassv1.SSOClient) (clientID, clientSecret string) {
	if secret == nil {
		return "", ""
	}
	var names [][2]string
	if idKey, secretKey, ok := strings.Cut(secret.Annotations[annotationCredentialKeys], ","); ok {
		names = append(names, [2]string{idKey, secretKey})
	}
	idKey, secretKey := sc.CredentialKeyNames()
	names = append(names, [2]string{idKey, secretKey}, [2]string{hallpassv1.DefaultClientIDKey, hallpassv1.DefaultClientSecretKey})
	for _, n := range names {
		clientID = cmp.Or(clientID, string(secret.Data[n[0]]))
		clientSecret = cmp.Or(clientSecret, string(secret.Data[n[1]]))
	}
	return clientID, clientSecret
}

// rotationPolicy returns the client's secret overlap and rotation interval (zero: none).
func rotationPolicy(sc *hallpassv1.SSOClient) (overlap, interval time.Duration) {
	overlap = defaultSecretOverlap
	if sc.Spec.Credentials == nil || sc.Spec.Credentials.Rotation == nil {
		return overlap, 0
	}
	rot := sc.Spec.Credentials.Rotation
	if d, err := time.ParseDuration(string(rot.Overlap)); err == nil && d > 0 {
		overlap = d
	}
	if d, err := time.ParseDuration(string(rot.Interval)); err == nil && d > 0 {
		interval = d
	}
	return overlap, interval
}

func clientSecretStatus(rec secretRecord, record map[string]string) hallpassv1.ClientSecretStatus {
	st := hallpassv1.ClientSecretStatus{
		RotationRequest:   record[annotationRotationRequest],
		RevocationRequest: record[annotationRevocationRequest],
	}
	if !rec.rotatedAt.IsZero() {
		st.RotatedAt = &metav1.Time{Time: rec.rotatedAt}
	}
	if rec.previous != "" {
		st.PreviousAcceptedUntil = &metav1.Time{Time: rec.until}
	}
	return st
}
