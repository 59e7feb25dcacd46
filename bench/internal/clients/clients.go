// Package clients is the SSOClient population the operator benchmarks apply: client i is a
// confidential web app with two redirect URIs and a back-channel logout URI on a host of
// its own, in one of Namespaces namespaces, so that bench/apiwrites measures the floor of
// exactly what bench/operatorscale measures the operator on.
package clients

import (
	"fmt"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

// Namespaces is how many namespaces the clients are spread over.
const Namespaces = 100

// Namespace is the name of the i-th namespace.
func Namespace(i int) string { return fmt.Sprintf("team-%03d", i) }

// Name is the name of client i.
func Name(i int) string { return fmt.Sprintf("app-%05d", i) }

// Key is the namespace and name of client i.
func Key(i int) (namespace, name string) { return Namespace(i % Namespaces), Name(i) }

// New is client i of server.
func New(i int, server hallpassv1.ServerReference) *hallpassv1.SSOClient {
	ns, name := Key(i)
	host := "https://" + name + "." + ns + ".example.com"
	return &hallpassv1.SSOClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: hallpassv1.SSOClientSpec{
			ServerRef: server, Type: hallpassv1.RegularWebApp,
			RedirectURIs:         []string{host + "/callback", host + "/auth/sso/callback"},
			BackchannelLogoutURI: host + "/backchannel-logout",
			Connections:          []string{"username-password"},
		},
	}
}

// Parallel calls write for 0..n-1, workers at a time, and returns the first error; after
// an error no further index is started.
func Parallel(n, workers int, write func(i int) error) error {
	next := make(chan int)
	failed := make(chan struct{})
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := write(i); err != nil {
					once.Do(func() { first = err; close(failed) })
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-failed:
			break feed
		}
	}
	close(next)
	wg.Wait()
	return first
}
