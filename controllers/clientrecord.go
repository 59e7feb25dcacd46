package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

// A client record is the operator's own record of one SSOClient registered with a server: a
// Secret in the server's namespace, which application teams cannot write, holding the client
// ID, the client secret, its rotation record and the identity (UID, namespace, name) of the
// SSOClient it was issued to. It is the only source the operator trusts for which client ID
// belongs to which SSOClient; the credentials Secret in the client's namespace is written
// from it and never read back (docs/adr/0013).
//
// The record is named from a hash of the client's namespace and name, so it is found again
// after an operator restart and after an Orphan delete-and-recreate of the same SSOClient,
// and two SSOClients can never share one. It is owned by the SSOServer and goes with it.
const (
	// labelRecord marks client records among the server's Secrets.
	labelRecord = "sso.hallpass.dev/record"
	// recordClient is the value of labelRecord on client records.
	recordClient = "client"

	annotationRecordNamespace = "sso.hallpass.dev/client-namespace"
	annotationRecordName      = "sso.hallpass.dev/client-name"
	annotationRecordUID       = "sso.hallpass.dev/client-uid"
	// annotationRecordDeletionPolicy is the client's deletionPolicy when last reconciled: an
	// SSOClient recreated under the same name takes the record over only after Orphan.
	annotationRecordDeletionPolicy = "sso.hallpass.dev/deletion-policy"
	// annotationRecordCredentialsUID is the UID of the credentials Secret the operator
	// created for this client: any other Secret of that name is someone else's.
	annotationRecordCredentialsUID = "sso.hallpass.dev/credentials-secret-uid"

	// Render verdicts, which operators before ADR 0030 wrote into records under the field
	// manager renderFieldOwner. Nothing reads or writes them now; a record that has them
	// keeps them.
	annotationServedGeneration = "sso.hallpass.dev/served-generation"
	annotationServedRevision   = "sso.hallpass.dev/served-revision"
	annotationLeftOutReason    = "sso.hallpass.dev/left-out-reason"
	annotationLeftOutMessage   = "sso.hallpass.dev/left-out-message"

	recordClientIDKey     = "client_id"
	recordClientSecretKey = "client_secret"
)

// clientRecordName is the name of the record of SSOClient namespace/name on server.
func clientRecordName(server, namespace, name string) string {
	sum := sha256.Sum256([]byte(namespace + "/" + name))
	return server + "-client-" + hex.EncodeToString(sum[:10])
}

func recordNameOf(server *hallpassv1.SSOServer, sc *hallpassv1.SSOClient) string {
	return clientRecordName(server.Name, sc.Namespace, sc.Name)
}

// clientRecord is a client record as read.
type clientRecord struct {
	namespace, name  string
	uid              types.UID
	deletionPolicy   hallpassv1.DeletionPolicy
	credentialsUID   types.UID
	clientID, secret string
	// annotations holds the rotation record and the request values acted on.
	annotations map[string]string
}

func readClientRecord(s *corev1.Secret) *clientRecord {
	if s == nil {
		return nil
	}
	a := s.Annotations
	return &clientRecord{
		namespace:      a[annotationRecordNamespace],
		name:           a[annotationRecordName],
		uid:            types.UID(a[annotationRecordUID]),
		deletionPolicy: hallpassv1.DeletionPolicy(a[annotationRecordDeletionPolicy]),
		credentialsUID: types.UID(a[annotationRecordCredentialsUID]),
		clientID:       string(s.Data[recordClientIDKey]),
		secret:         string(s.Data[recordClientSecretKey]),
		annotations:    a,
	}
}

// isRecordOf reports whether the record was written for the SSOClient of this namespace and
// name (of whatever UID).
func (rec *clientRecord) isRecordOf(sc *hallpassv1.SSOClient) bool {
	return rec != nil && rec.namespace == sc.Namespace && rec.name == sc.Name
}

// acceptedDigests returns the digests of the client secrets the server accepts for this
// record, and when that set next changes (zero if never).
func (rec *clientRecord) acceptedDigests(now time.Time) ([]string, time.Time) {
	return acceptedDigests(rec.annotations, rec.secret, now)
}

// desiredClientRecord is the record of sc as the SSOClient controller writes it (with
// writeRecord).
func desiredClientRecord(server *hallpassv1.SSOServer, sc *hallpassv1.SSOClient, clientID, secret string, annotations map[string]string) *corev1ac.SecretApplyConfiguration {
	a := map[string]string{
		annotationRecordNamespace:      sc.Namespace,
		annotationRecordName:           sc.Name,
		annotationRecordUID:            string(sc.UID),
		annotationRecordDeletionPolicy: string(sc.Spec.DeletionPolicy),
	}
	for k, v := range annotations {
		if v != "" {
			a[k] = v
		}
	}
	data := map[string][]byte{recordClientIDKey: []byte(clientID)}
	if secret != "" {
		data[recordClientSecretKey] = []byte(secret)
	}
	labels := serverLabels(server)
	labels[labelRecord] = recordClient
	return corev1ac.Secret(recordNameOf(server, sc), server.Namespace).
		WithLabels(labels).
		WithOwnerReferences(ownerReference(server, "SSOServer")).
		WithType(corev1.SecretTypeOpaque).
		WithAnnotations(a).
		WithData(data)
}
