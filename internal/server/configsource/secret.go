package configsource

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/hallpass/hallpass/internal/config"
)

// SecretRef names one Secret.
type SecretRef struct{ Namespace, Name string }

func (r SecretRef) String() string { return r.Namespace + "/" + r.Name }

// ParseSecretRef parses "namespace/name".
func ParseSecretRef(s string) (SecretRef, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return SecretRef{}, fmt.Errorf("secret reference %q is not namespace/name", s)
	}
	return SecretRef{Namespace: ns, Name: name}, nil
}

// GetSecrets reads the config and keys Secrets once, for the server's start.
func GetSecrets(ctx context.Context, client kubernetes.Interface, cfgRef, keysRef SecretRef) (configData, keysData []byte, err error) {
	cs, err := client.CoreV1().Secrets(cfgRef.Namespace).Get(ctx, cfgRef.Name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("get config secret %s: %w", cfgRef, err)
	}
	ks, err := client.CoreV1().Secrets(keysRef.Namespace).Get(ctx, keysRef.Name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("get signing keys secret %s: %w", keysRef, err)
	}
	configData, err = config.FromSecretData(cs.Data)
	if err != nil {
		return nil, nil, fmt.Errorf("config secret %s: %w", cfgRef, err)
	}
	return configData, ks.Data[config.KeysSecretKey], nil
}

// WatchSecrets watches the two Secrets until ctx ends and hands every change to l. Each
// watch lists and watches a single object through a metadata.name field selector, so the
// server's Role can grant get/list/watch on exactly these two resourceNames.
func WatchSecrets(ctx context.Context, client kubernetes.Interface, cfgRef, keysRef SecretRef, l *Reloader) error {
	var mu sync.Mutex
	latest := map[SecretRef][]byte{}
	onChange := func(ref SecretRef, content func(map[string][]byte) ([]byte, error)) cache.ResourceEventHandlerFuncs {
		update := func(obj any) {
			s, ok := obj.(*corev1.Secret)
			if !ok {
				return
			}
			data, err := content(s.Data)
			if err != nil {
				l.Refuse("secret "+ref.String(), err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			latest[ref] = data
			c, cok := latest[cfgRef]
			k, kok := latest[keysRef]
			if cok && kok {
				_ = l.Load("secrets "+cfgRef.String()+" and "+keysRef.String(), c, k)
			}
		}
		return cache.ResourceEventHandlerFuncs{
			AddFunc:    update,
			UpdateFunc: func(_, obj any) { update(obj) },
			DeleteFunc: func(any) {
				l.logger.Warn("config secret deleted; keeping the current config", "secret", ref.String())
			},
		}
	}
	var wg sync.WaitGroup
	var controllers []cache.Controller
	keysContent := func(data map[string][]byte) ([]byte, error) { return data[config.KeysSecretKey], nil }
	for _, w := range []struct {
		ref     SecretRef
		content func(map[string][]byte) ([]byte, error)
	}{{cfgRef, config.FromSecretData}, {keysRef, keysContent}} {
		lw := cache.NewListWatchFromClient(client.CoreV1().RESTClient(), "secrets", w.ref.Namespace,
			fields.OneTermEqualSelector("metadata.name", w.ref.Name))
		_, ctrl := cache.NewInformerWithOptions(cache.InformerOptions{
			ListerWatcher: lw,
			ObjectType:    &corev1.Secret{},
			Handler:       onChange(w.ref, w.content),
		})
		controllers = append(controllers, ctrl)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctrl.RunWithContext(ctx)
		}()
	}
	for _, c := range controllers {
		if !cache.WaitForCacheSync(ctx.Done(), c.HasSynced) {
			wg.Wait()
			return errors.New("watch config secrets: cache did not sync")
		}
	}
	wg.Wait()
	return nil
}
