// Package credentials reads an application's client credentials: from the environment, or
// from the credentials Secret the Hallpass operator writes for an SSOClient (keys
// client_id, client_secret, issuer; the first two as renamed by the SSOClient's
// spec.credentials.keys, which the Secret's AnnotationKeys records). It is separate from package ssoapp so that an
// application that takes its credentials from the environment does not link client-go.
package credentials

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hallpass/hallpass/internal/kubeclient"
)

// Credentials of one SSOClient.
type Credentials struct {
	ClientID     string
	ClientSecret string
	Issuer       string
}

// errIncomplete: the operator has created the Secret but not yet filled it.
var errIncomplete = errors.New("the Secret has no client_id or issuer yet")

// Keys of the credentials Secret (the operator's contract with applications).
const (
	KeyClientID     = "client_id"
	KeyClientSecret = "client_secret"
	KeyIssuer       = "issuer"
	// AnnotationKeys on the Secret names the keys of the client ID and the client secret,
	// "<client ID key>,<client secret key>", when spec.credentials.keys renamed them.
	AnnotationKeys = "sso.hallpass.dev/credential-keys"
)

// FromEnv reads HALLPASS_CLIENT_ID, HALLPASS_CLIENT_SECRET and HALLPASS_ISSUER. ok is false
// when the client ID is not set.
func FromEnv() (c Credentials, ok bool) {
	c = Credentials{
		ClientID:     os.Getenv("HALLPASS_CLIENT_ID"),
		ClientSecret: os.Getenv("HALLPASS_CLIENT_SECRET"),
		Issuer:       os.Getenv("HALLPASS_ISSUER"),
	}
	return c, c.ClientID != "" && c.Issuer != ""
}

// FromSecret reads the credentials Secret namespace/name through kubeconfig (in-cluster
// config when empty), waiting up to wait for the operator to write it: an application
// applied together with its SSOClient usually starts first.
func FromSecret(ctx context.Context, kubeconfig, namespace, name string, wait time.Duration) (Credentials, error) {
	client, err := kubeclient.New(kubeconfig)
	if err != nil {
		return Credentials{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		s, err := client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			idKey, secretKey, renamed := strings.Cut(s.Annotations[AnnotationKeys], ",")
			if !renamed {
				idKey, secretKey = KeyClientID, KeyClientSecret
			}
			c := Credentials{
				ClientID:     string(s.Data[idKey]),
				ClientSecret: string(s.Data[secretKey]),
				Issuer:       string(s.Data[KeyIssuer]),
			}
			if c.ClientID != "" && c.Issuer != "" {
				return c, nil
			}
			err = errIncomplete
		}
		if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil && !isRetryable(err) {
			return Credentials{}, fmt.Errorf("read credentials Secret %s/%s: %w", namespace, name, err)
		}
		select {
		case <-ctx.Done():
			return Credentials{}, fmt.Errorf("read credentials Secret %s/%s: gave up after %s: %w", namespace, name, wait, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func isRetryable(err error) bool {
	return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) || errors.Is(err, errIncomplete)
}
