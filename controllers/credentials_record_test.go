package controllers

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"

	. "github.com/onsi/gomega"
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

func TestARecordUpdateLeavesExactlyTheRecord(t *testing.T) {
	server := &hallpassv1.SSOServer{ObjectMeta: metav1.ObjectMeta{Namespace: "platform", Name: "sso", UID: "server-uid"}}
	sc := &hallpassv1.SSOClient{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "web", UID: "client-uid"}}
	desired := desiredClientRecord(server, sc, "id", "", map[string]string{annotationRecordCredentialsUID: "credentials-uid"})
	written := secretFrom(desired)
	written.UID = "record-uid"
	tests := []struct {
		name     string
		existing func(s *corev1.Secret)
		check    func(t *testing.T, got *corev1.Secret)
	}{
		{"an annotation the record no longer carries goes", func(s *corev1.Secret) {
			s.Annotations[annotationPreviousSecretSHA256] = "old-digest"
		}, func(t *testing.T, got *corev1.Secret) {
			if _, ok := got.Annotations[annotationPreviousSecretSHA256]; ok {
				t.Fatalf("the previous secret's digest stayed: %v", got.Annotations)
			}
		}},
		{"a key the record no longer holds goes: a client made public keeps no secret", func(s *corev1.Secret) {
			s.Data[recordClientSecretKey] = []byte("secret")
		}, func(t *testing.T, got *corev1.Secret) {
			if _, ok := got.Data[recordClientSecretKey]; ok {
				t.Fatalf("the client secret stayed: %v", got.Data)
			}
		}},
		{"verdicts an older operator wrote stay", func(s *corev1.Secret) {
			s.Annotations[annotationServedRevision] = "7"
		}, func(t *testing.T, got *corev1.Secret) {
			if got.Annotations[annotationServedRevision] != "7" {
				t.Fatalf("the verdict went: %v", got.Annotations)
			}
		}},
		{"labels others set stay beside the record's", func(s *corev1.Secret) {
			s.Labels["backup.example.com/include"] = "true"
		}, func(t *testing.T, got *corev1.Secret) {
			if got.Labels["backup.example.com/include"] != "true" || got.Labels[labelRecord] != recordClient {
				t.Fatalf("labels %v", got.Labels)
			}
		}},
		{"the server is the only owner", func(s *corev1.Secret) {
			s.OwnerReferences = append(s.OwnerReferences, metav1.OwnerReference{Kind: "ConfigMap", Name: "other", UID: "other-uid"})
		}, func(t *testing.T, got *corev1.Secret) {
			if len(got.OwnerReferences) != 1 || got.OwnerReferences[0].UID != server.UID {
				t.Fatalf("owners %v", got.OwnerReferences)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			existing := written.DeepCopy()
			tc.existing(existing)
			got := recordUpdate(existing, desired)
			tc.check(t, got)
			if !appliedAlready(got, desired, verdictAnnotations...) {
				t.Fatalf("the updated record %v is not the desired one %v", got, desired)
			}
		})
	}
}

// TestASecretInTheWayOfANewRecordDoesNotChooseTheClientID: a Secret of a new client's
// record name that the operator's cache does not hold (it lacks the operator's labels) makes
// the record's create fail; the record is then written over it, and the client is served
// with an ID the operator chose.
func TestASecretInTheWayOfANewRecordDoesNotChooseTheClientID(t *testing.T) {
	ns := newNamespace(t, nil)
	inTheWay := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: clientRecordName("sso", ns, "web")},
		Data:       map[string][]byte{recordClientIDKey: []byte("chosen-by-hand")},
	}
	create(t, newServer(ns, "sso"), inTheWay, newClient(ns, "web", ns, "sso", hallpassv1.RegularWebApp))
	c := readyClient(t, ns, "web")
	g := NewWithT(t)
	g.Expect(c.Status.ClientID).NotTo(Equal("chosen-by-hand"))
	rec := readClientRecord(clientRecordOf(g, ns, "sso", ns, "web"))
	g.Expect(rec.clientID).To(Equal(c.Status.ClientID))
	g.Expect(rec.uid).To(Equal(c.UID))
	g.Expect(renderedConfig(g, ns, "sso").Clients).To(ContainElement(HaveField("ID", c.Status.ClientID)))
}
