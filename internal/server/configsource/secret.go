package configsource

import (
	"context"
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

// WatchSecrets watches the two Secrets until ctx ends and hands every change to l.
func WatchSecrets(ctx context.Context, client kubernetes.Interface, cfgRef, keysRef SecretRef, l *Reloader) error {
	var mu sync.Mutex
	latest := map[SecretRef][]byte{}
	informer := func(ref SecretRef, content func(map[string][]byte) ([]byte, error)) cache.Controller {
		onData := func(secretData map[string][]byte) {
			data, err := content(secretData)
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
		onDelete := func() {
			l.logger.Warn("config secret deleted; keeping the current config", "secret", ref.String())
		}
		return SecretInformer(client, ref, onData, onDelete)
	}
	keysContent := func(data map[string][]byte) ([]byte, error) { return data[config.KeysSecretKey], nil }
	return RunInformers(ctx, "watch config secrets", informer(cfgRef, config.FromSecretData), informer(keysRef, keysContent))
}

// SecretInformer watches the one Secret ref: onData gets its data when it appears or
// changes, onDelete is called when it is deleted. It lists and watches through a
// metadata.name field selector, so a Role can grant get/list/watch on exactly the
// resourceNames a server reads.
func SecretInformer(client kubernetes.Interface, ref SecretRef, onData func(map[string][]byte), onDelete func()) cache.Controller {
	update := func(obj any) {
		if s, ok := obj.(*corev1.Secret); ok {
			onData(s.Data)
		}
	}
	lw := cache.NewListWatchFromClient(client.CoreV1().RESTClient(), "secrets", ref.Namespace,
		fields.OneTermEqualSelector("metadata.name", ref.Name))
	_, ctrl := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: lw,
		ObjectType:    &corev1.Secret{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    update,
			UpdateFunc: func(_, obj any) { update(obj) },
			DeleteFunc: func(any) { onDelete() },
		},
	})
	return ctrl
}

// RunInformers runs the informers until ctx ends. It fails, naming what, when they stop
// before their caches synced.
func RunInformers(ctx context.Context, what string, informers ...cache.Controller) error {
	var wg sync.WaitGroup
	for _, c := range informers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.RunWithContext(ctx)
		}()
	}
	for _, c := range informers {
		if !cache.WaitForCacheSync(ctx.Done(), c.HasSynced) {
			wg.Wait()
			return fmt.Errorf("%s: cache did not sync", what)
		}
	}
	wg.Wait()
	return nil
}
