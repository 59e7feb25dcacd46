// Package ociimage assembles Hallpass's container image without a Docker engine: the same
// image the Dockerfile describes (see docs/adr/0004-image-from-scratch.md), built from a
// static binary and files of the build machine, written as one archive that `docker load`,
// `ctr images import`, `kind load image-archive` and `k3d image import` all read.
//
// The archive is an OCI image layout (oci-layout, index.json, blobs/sha256/...) that also
// carries Docker's manifest.json beside it, as `docker save` writes since Docker 25. Every
// timestamp is zero and every owner is numeric, so the same binary gives the same digest.
package ociimage

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The non-root user of the image: distroless's "nonroot", which the Deployments name in
// runAsUser and fsGroup.
const (
	UID = 65532
	GID = 65532
)

// DebianCABundle is where Debian's ca-certificates package keeps the bundle of trusted CAs.
const DebianCABundle = "/etc/ssl/certs/ca-certificates.crt"

// Writable directories of the image, owned by UID. The Deployments mount volumes over them;
// owning the directories keeps a plain `docker run --read-only --tmpfs /tmp` working too.
var writableDirs = []string{"tmp", "var/lib/hallpass"}

// pathEnv is the PATH a Docker build gives an image from scratch; the Dockerfile's image has
// it, so this one has it too.
const pathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Spec says what goes into an image.
type Spec struct {
	// Binary is the path of a static Linux executable on this machine; it becomes
	// /<Entrypoint> in the image, mode 0755, owned by root.
	Binary string
	// Entrypoint is the binary's name in the image's root directory, e.g. "hallpass".
	Entrypoint string
	// Ref names the image, e.g. "hallpass/hallpass:v0.1.0". A reference without a tag gets
	// "latest", as Docker's does.
	Ref string
	// CABundle is the PEM bundle installed as /etc/ssl/certs/ca-certificates.crt;
	// empty means DebianCABundle.
	CABundle string
	// Arch is the image's architecture; empty means this machine's.
	Arch string
}

// WriteArchive builds the image of spec and writes its archive to out.
func WriteArchive(out io.Writer, spec Spec) error {
	tag, err := name.NewTag(spec.Ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", spec.Ref, err)
	}
	if spec.Entrypoint == "" || strings.Contains(spec.Entrypoint, "/") {
		return fmt.Errorf("entrypoint %q: want a file name in the image's root directory", spec.Entrypoint)
	}
	img, err := build(spec)
	if err != nil {
		return err
	}
	return writeLayout(out, img, tag)
}

// FullName is the reference as containerd and the kubelet spell it: registry, repository and
// tag, with Docker Hub's implicit "docker.io" (and "library/") written out.
func FullName(tag name.Tag) string {
	registry := tag.RegistryStr()
	if registry == name.DefaultRegistry {
		registry = "docker.io"
	}
	return registry + "/" + tag.RepositoryStr() + ":" + tag.TagStr()
}

func build(spec Spec) (v1.Image, error) {
	caBundle := spec.CABundle
	if caBundle == "" {
		caBundle = DebianCABundle
	}
	arch := spec.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	base, err := baseLayer(caBundle)
	if err != nil {
		return nil, err
	}
	binary, err := binaryLayer(spec.Binary, spec.Entrypoint)
	if err != nil {
		return nil, err
	}
	cfg := &v1.ConfigFile{
		Architecture: arch,
		OS:           "linux",
		Config: v1.Config{
			User:       fmt.Sprintf("%d:%d", UID, GID),
			Entrypoint: []string{"/" + spec.Entrypoint},
			Env:        []string{pathEnv},
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, fmt.Errorf("set image config: %w", err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{CreatedBy: "hallpass base: CA bundle, user 65532, writable /tmp and /var/lib/hallpass"}},
		mutate.Addendum{Layer: binary, History: v1.History{CreatedBy: "/" + spec.Entrypoint}},
	)
	if err != nil {
		return nil, fmt.Errorf("append layers: %w", err)
	}
	return img, nil
}

// baseLayer holds what a distroless "static, nonroot" base provides: CA certificates, the
// user and group 65532, and the writable directories.
func baseLayer(caBundle string) (v1.Layer, error) {
	certs, err := os.ReadFile(caBundle)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle (Debian's ca-certificates package provides %s): %w", DebianCABundle, err)
	}
	var l layerBuilder
	l.dir("etc", 0, 0)
	l.file("etc/passwd", []byte(fmt.Sprintf("nonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, GID)), 0o644)
	l.file("etc/group", []byte(fmt.Sprintf("nonroot:x:%d:\n", GID)), 0o644)
	l.dir("etc/ssl", 0, 0)
	l.dir("etc/ssl/certs", 0, 0)
	l.file("etc/ssl/certs/ca-certificates.crt", certs, 0o644)
	l.dir("var", 0, 0)
	l.dir("var/lib", 0, 0)
	for _, d := range writableDirs {
		l.dir(d, UID, GID)
	}
	return l.layer()
}

func binaryLayer(binary, entrypoint string) (v1.Layer, error) {
	data, err := os.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("read binary: %w", err)
	}
	if len(data) < 4 || string(data[:4]) != "\x7fELF" {
		return nil, fmt.Errorf("%s is not a Linux executable (ELF)", binary)
	}
	var l layerBuilder
	l.file(entrypoint, data, 0o755)
	return l.layer()
}

// layerBuilder writes a layer's tar with zero timestamps and numeric owners.
type layerBuilder struct {
	buf bytes.Buffer
	tw  *tar.Writer
	err error
}

func (l *layerBuilder) header(h *tar.Header) {
	if l.tw == nil {
		l.tw = tar.NewWriter(&l.buf)
	}
	h.ModTime = time.Unix(0, 0)
	h.Format = tar.FormatPAX
	if l.err == nil {
		l.err = l.tw.WriteHeader(h)
	}
}

func (l *layerBuilder) dir(target string, uid, gid int) {
	l.header(&tar.Header{Typeflag: tar.TypeDir, Name: target + "/", Mode: 0o755, Uid: uid, Gid: gid})
}

func (l *layerBuilder) file(target string, data []byte, mode int64) {
	l.header(&tar.Header{Typeflag: tar.TypeReg, Name: target, Mode: mode, Size: int64(len(data))})
	if l.err == nil {
		_, l.err = l.tw.Write(data)
	}
}

func (l *layerBuilder) layer() (v1.Layer, error) {
	if l.err == nil {
		l.err = l.tw.Close()
	}
	if l.err != nil {
		return nil, fmt.Errorf("write layer: %w", l.err)
	}
	data := l.buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("compress layer: %w", err)
	}
	return layer, nil
}

// Annotations of the image's entry in index.json, as `docker save` writes them: containerd
// names the imported image after the first, the OCI spec's tools after the second.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// dockerManifestEntry is one image of Docker's manifest.json.
type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// writeLayout writes img as an OCI image layout in a tar, with Docker's manifest.json.
func writeLayout(out io.Writer, img v1.Image, tag name.Tag) error {
	manifest, err := img.RawManifest()
	if err != nil {
		return fmt.Errorf("image manifest: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("image digest: %w", err)
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("image config: %w", err)
	}
	configDigest, err := img.ConfigName()
	if err != nil {
		return fmt.Errorf("image config digest: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("image layers: %w", err)
	}

	blobPath := func(h v1.Hash) string { return path.Join("blobs", h.Algorithm, h.Hex) }
	files := []archiveFile{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{blobPath(digest), manifest},
		{blobPath(configDigest), config},
	}
	docker := []dockerManifestEntry{{Config: blobPath(configDigest), RepoTags: []string{tag.String()}}}
	for _, layer := range layers {
		h, err := layer.Digest()
		if err != nil {
			return fmt.Errorf("layer digest: %w", err)
		}
		data, err := readAll(layer.Compressed())
		if err != nil {
			return fmt.Errorf("read layer %s: %w", h, err)
		}
		files = append(files, archiveFile{blobPath(h), data})
		docker[0].Layers = append(docker[0].Layers, blobPath(h))
	}
	index, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: types.OCIManifestSchema1,
			Size:      int64(len(manifest)),
			Digest:    digest,
			Annotations: map[string]string{
				annotationContainerdName: FullName(tag),
				annotationRefName:        tag.TagStr(),
			},
		}},
	})
	if err != nil {
		return err
	}
	dockerManifest, err := json.Marshal(docker)
	if err != nil {
		return err
	}
	files = append(files, archiveFile{"index.json", index}, archiveFile{"manifest.json", dockerManifest})

	return writeTar(out, files)
}

// writeTar writes files, in order and without duplicates (two identical layers are one
// blob), under the blobs directories, with fixed times so the archive is reproducible.
func writeTar(out io.Writer, files []archiveFile) error {
	tw := tar.NewWriter(out)
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
			return fmt.Errorf("write archive: %w", err)
		}
	}
	written := map[string]bool{}
	for _, f := range files {
		if written[f.name] {
			continue
		}
		written[f.name] = true
		h := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	return nil
}

type archiveFile struct {
	name string
	data []byte
}

func readAll(rc io.ReadCloser, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
