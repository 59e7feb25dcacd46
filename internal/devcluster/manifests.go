package devcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// fieldOwner is the server-side apply field manager of what `hallpass dev` applies.
const fieldOwner = client.FieldOwner("hallpass-dev")

// ReadManifests decodes the manifests of dir: the resources its kustomization.yaml lists,
// in order, or else every .yaml file in name order. Only plain resource lists are read;
// patches and generators need kustomize.
func ReadManifests(dir string) ([]*unstructured.Unstructured, error) {
	files, err := manifestFiles(dir)
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read manifest: %w", err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			obj := &unstructured.Unstructured{}
			if err := dec.Decode(&obj.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("decode %s: %w", file, err)
			}
			if len(obj.Object) > 0 {
				objs = append(objs, obj)
			}
		}
	}
	return objs, nil
}

func manifestFiles(dir string) ([]string, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if errors.Is(err, os.ErrNotExist) {
		matches, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		slices.Sort(matches)
		return matches, err
	}
	if err != nil {
		return nil, fmt.Errorf("read kustomization: %w", err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := utilyaml.Unmarshal(raw, &k); err != nil {
		return nil, fmt.Errorf("decode %s/kustomization.yaml: %w", dir, err)
	}
	files := make([]string, len(k.Resources))
	for i, r := range k.Resources {
		files[i] = filepath.Join(dir, r)
	}
	return files, nil
}

// MapURLs replaces URL prefixes in every string of the objects: the samples declare the
// URLs of a production deployment (https://app1.example.com), and a local run maps them to
// loopback ones (http://127.0.0.1:3001). When any URL becomes http, the SSOServers are put
// in devMode, which the API requires for http issuers and the server for http redirect and
// logout URIs.
func MapURLs(objs []*unstructured.Unstructured, mapping map[string]string) {
	// Longest prefixes first, so https://a.example.com/x wins over https://a.example.com.
	froms := make([]string, 0, len(mapping))
	for from := range mapping {
		froms = append(froms, from)
	}
	slices.SortFunc(froms, func(a, b string) int { return len(b) - len(a) })
	toHTTP := false
	for _, to := range mapping {
		toHTTP = toHTTP || strings.HasPrefix(to, "http://")
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case string:
			for _, from := range froms {
				if rest, ok := strings.CutPrefix(v, from); ok && (rest == "" || strings.HasPrefix(rest, "/")) {
					return mapping[from] + rest
				}
			}
			return v
		case map[string]any:
			for k, e := range v {
				v[k] = walk(e)
			}
			return v
		case []any:
			for i, e := range v {
				v[i] = walk(e)
			}
			return v
		}
		return v
	}
	for _, obj := range objs {
		for _, field := range []string{"spec", "stringData", "data"} {
			if v, ok := obj.Object[field]; ok {
				obj.Object[field] = walk(v)
			}
		}
		if obj.GetKind() == "SSOServer" && toHTTP {
			_ = unstructured.SetNestedField(obj.Object, true, "spec", "devMode")
		}
	}
}

// Apply server-side applies the objects into namespace (for those that have none).
func Apply(ctx context.Context, c client.Client, namespace string, objs []*unstructured.Unstructured) error {
	for _, obj := range objs {
		obj = obj.DeepCopy()
		if obj.GetNamespace() == "" {
			obj.SetNamespace(namespace)
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), fieldOwner, client.ForceOwnership); err != nil {
			return fmt.Errorf("apply %s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
	}
	return nil
}
