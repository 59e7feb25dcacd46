// Package image_test builds the container image with `make image`, the way a user without
// Docker does, and inspects the archive it writes: the layout that docker load and
// ctr images import read, the image's config (user, entrypoint), every file with its owner
// and mode, and that the Dockerfile describes the same image.
package image_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/x509"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The image the test builds: a tag of its own, so the test never touches the user's.
const (
	version  = "image-test"
	ref      = "hallpass/hallpass:" + version
	fullName = "docker.io/hallpass/hallpass:" + version
)

// entry is a file or directory of the image's root filesystem.
type entry struct {
	dir      bool
	mode     int64
	uid, gid int
	data     []byte
}

// built is the archive that TestMain's `make image` wrote, read once.
var built struct {
	files   map[string][]byte // path in the archive -> content
	err     error
	archive string
}

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		built.err = errSkipped
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "hallpass-image-test-")
	if err != nil {
		panic(err)
	}
	built.archive = filepath.Join(dir, "hallpass-image.tar")
	cmd := exec.Command("make", "--no-print-directory", "-s", "image",
		"VERSION="+version, "IMG="+ref, "IMAGE_ARCHIVE="+built.archive)
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		built.err = errors.New("make image: " + err.Error() + "\n" + string(out))
	} else {
		built.files, built.err = readTar(built.archive)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// errSkipped stands for the archive under -short (make test-unit), which skips building it.
var errSkipped = errors.New("-short: not building the image")

func archive(t *testing.T) map[string][]byte {
	t.Helper()
	if errors.Is(built.err, errSkipped) {
		t.Skip("make image takes a minute; make test runs it")
	}
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.files
}

func TestArchiveIsAnOCILayoutThatContainerdNamesAfterTheImage(t *testing.T) {
	files := archive(t)
	if got := string(files["oci-layout"]); got != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout is %q", got)
	}
	index := decode[ociIndex](t, files["index.json"])
	if len(index.Manifests) != 1 {
		t.Fatalf("index.json lists %d manifests, want 1", len(index.Manifests))
	}
	m := index.Manifests[0]
	if m.MediaType != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("the manifest's media type is %q, want OCI's", m.MediaType)
	}
	// ctr images import (and so kind and k3d) names the image after this annotation; the
	// kubelet asks containerd for the fully qualified name.
	if got := m.Annotations["io.containerd.image.name"]; got != fullName {
		t.Errorf("io.containerd.image.name is %q, want %q", got, fullName)
	}
	if got := m.Annotations["org.opencontainers.image.ref.name"]; got != version {
		t.Errorf("org.opencontainers.image.ref.name is %q, want %q", got, version)
	}
	for name, data := range files {
		if hexDigest, ok := strings.CutPrefix(name, "blobs/sha256/"); ok {
			sum := sha256.Sum256(data)
			if hex.EncodeToString(sum[:]) != hexDigest {
				t.Errorf("blob %s does not match its digest", name)
			}
		}
	}
}

func TestDockerLoadFindsTheSameImageUnderItsTag(t *testing.T) {
	files := archive(t)
	manifest := imageManifest(t, files)
	var docker []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &docker); err != nil || len(docker) != 1 {
		t.Fatalf("manifest.json holds no single image (%v): %s", err, files["manifest.json"])
	}
	if !slices.Equal(docker[0].RepoTags, []string{ref}) {
		t.Errorf("manifest.json tags the image %v, want [%s]", docker[0].RepoTags, ref)
	}
	if want := "blobs/sha256/" + manifest.Config.digestHex(); docker[0].Config != want {
		t.Errorf("manifest.json names config %s, the OCI manifest %s", docker[0].Config, want)
	}
	var want []string
	for _, l := range manifest.Layers {
		want = append(want, "blobs/sha256/"+l.digestHex())
	}
	if !slices.Equal(docker[0].Layers, want) {
		t.Errorf("manifest.json names layers %v, the OCI manifest %v", docker[0].Layers, want)
	}
}

func TestImageRunsTheBinaryAsTheNonRootUser(t *testing.T) {
	files := archive(t)
	cfg := imageConfig(t, files)
	if cfg.OS != "linux" || cfg.Architecture == "" {
		t.Errorf("platform is %s/%s, want linux/<arch>", cfg.OS, cfg.Architecture)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("user is %q, want 65532:65532 (runAsNonRoot needs a numeric non-root user)", cfg.Config.User)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/hallpass"}) || len(cfg.Config.Cmd) != 0 {
		t.Errorf("entrypoint %q, cmd %q; want [/hallpass] and no cmd (the Deployments give the subcommand)", cfg.Config.Entrypoint, cfg.Config.Cmd)
	}
	// The config's diff IDs are what containerd checks the unpacked layers against.
	manifest := imageManifest(t, files)
	if len(cfg.RootFS.DiffIDs) != len(manifest.Layers) {
		t.Fatalf("config lists %d diff IDs for %d layers", len(cfg.RootFS.DiffIDs), len(manifest.Layers))
	}
	for i, l := range manifest.Layers {
		sum := sha256.Sum256(gunzip(t, files["blobs/sha256/"+l.digestHex()]))
		if want := "sha256:" + hex.EncodeToString(sum[:]); cfg.RootFS.DiffIDs[i] != want {
			t.Errorf("layer %d: diff ID %s, its content hashes to %s", i, cfg.RootFS.DiffIDs[i], want)
		}
	}
}

func TestImageHoldsExactlyTheBinaryCertificatesUserAndWritableDirectories(t *testing.T) {
	fs := rootFS(t, archive(t))
	root := func(mode int64) entry { return entry{mode: mode} }
	want := map[string]entry{
		"etc":                               {dir: true, mode: 0o755},
		"etc/passwd":                        root(0o644),
		"etc/group":                         root(0o644),
		"etc/ssl":                           {dir: true, mode: 0o755},
		"etc/ssl/certs":                     {dir: true, mode: 0o755},
		"etc/ssl/certs/ca-certificates.crt": root(0o644),
		"var":                               {dir: true, mode: 0o755},
		"var/lib":                           {dir: true, mode: 0o755},
		"var/lib/hallpass":                  {dir: true, mode: 0o755, uid: 65532, gid: 65532},
		"tmp":                               {dir: true, mode: 0o755, uid: 65532, gid: 65532},
		"hallpass":                          root(0o755),
	}
	var have, wanted []string
	for name := range fs {
		have = append(have, name)
	}
	for name := range want {
		wanted = append(wanted, name)
	}
	slices.Sort(have)
	slices.Sort(wanted)
	if !slices.Equal(have, wanted) {
		t.Fatalf("the image holds\n  %v\nwant exactly\n  %v", have, wanted)
	}
	for name, w := range want {
		g := fs[name]
		if g.dir != w.dir || g.mode != w.mode || g.uid != w.uid || g.gid != w.gid {
			t.Errorf("%s: dir %v, mode %o, owner %d:%d; want dir %v, mode %o, owner %d:%d",
				name, g.dir, g.mode, g.uid, g.gid, w.dir, w.mode, w.uid, w.gid)
		}
	}

	if !strings.Contains(string(fs["etc/passwd"].data), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no user 65532: %q", fs["etc/passwd"].data)
	}
	if !strings.Contains(string(fs["etc/group"].data), "nonroot:x:65532:") {
		t.Errorf("/etc/group has no group 65532: %q", fs["etc/group"].data)
	}
	if n := countCertificates(t, fs["etc/ssl/certs/ca-certificates.crt"].data); n < 50 {
		t.Errorf("the CA bundle holds %d certificates; an upstream IdP's TLS needs the public CAs", n)
	}
}

func TestImageHasNoShellAndAStaticBinary(t *testing.T) {
	fs := rootFS(t, archive(t))
	for _, shell := range []string{"bin/sh", "bin/bash", "bin/busybox", "usr/bin/sh"} {
		if _, ok := fs[shell]; ok {
			t.Errorf("the image holds %s", shell)
		}
	}
	bin, err := elf.NewFile(bytes.NewReader(fs["hallpass"].data))
	if err != nil {
		t.Fatalf("/hallpass is not an ELF executable: %v", err)
	}
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("/hallpass asks for a dynamic loader; the image has none (build with CGO_ENABLED=0)")
		}
	}
	if !bytes.Contains(fs["hallpass"].data, []byte(version)) {
		t.Errorf("/hallpass does not carry the version %q that make image gave it", version)
	}
}

// TestDockerfileDescribesTheSameImage keeps the Dockerfile, for people with Docker, in step
// with make image: the same files, owners, user and entrypoint.
func TestDockerfileDescribesTheSameImage(t *testing.T) {
	fs := rootFS(t, archive(t))
	cfg := imageConfig(t, archive(t))
	dockerfile, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// The final stage: everything after the last FROM.
	stage := string(dockerfile)
	stage = stage[strings.LastIndex(stage, "\nFROM ")+1:]
	if !strings.HasPrefix(stage, "FROM scratch") {
		t.Errorf("the Dockerfile's image starts %q, want FROM scratch", firstLine(stage))
	}
	copyLine := regexp.MustCompile(`(?m)^COPY\s+(?:--from=\S+\s+)?(?:--chown=(\d+):(\d+)\s+)?\S+\s+(\S+)\s*$`)
	copied := map[string]bool{}
	for _, m := range copyLine.FindAllStringSubmatch(stage, -1) {
		dest := strings.TrimPrefix(m[3], "/")
		copied[dest] = true
		e, ok := fs[dest]
		if !ok {
			t.Errorf("the Dockerfile copies %s, which make image's image lacks", m[3])
			continue
		}
		uid, gid := 0, 0
		if m[1] != "" {
			uid, gid = 65532, 65532
			if m[1] != "65532" || m[2] != "65532" {
				t.Errorf("the Dockerfile gives %s to %s:%s", m[3], m[1], m[2])
			}
		}
		if e.uid != uid || e.gid != gid {
			t.Errorf("%s: the Dockerfile's owner is %d:%d, make image's %d:%d", m[3], uid, gid, e.uid, e.gid)
		}
	}
	for name, e := range fs {
		// Parent directories come with their children; everything else is copied.
		if !copied[name] && !(e.dir && hasChild(fs, name)) {
			t.Errorf("make image's image holds /%s, which the Dockerfile does not copy", name)
		}
	}
	if want := "USER " + cfg.Config.User; !strings.Contains(stage, "\n"+want+"\n") {
		t.Errorf("the Dockerfile lacks %q", want)
	}
	entrypoint, _ := json.Marshal(cfg.Config.Entrypoint)
	if want := "ENTRYPOINT " + strings.ReplaceAll(string(entrypoint), `","`, `", "`); !strings.Contains(stage, want) {
		t.Errorf("the Dockerfile lacks %s", want)
	}
}

// readTar returns the regular files of a tar archive by name.
func readTar(path string) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(bufio.NewReader(f))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if files[h.Name], err = io.ReadAll(tr); err != nil {
				return nil, err
			}
		}
	}
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Annotations map[string]string `json:"annotations"`
}

func (d descriptor) digestHex() string { return strings.TrimPrefix(d.Digest, "sha256:") }

type ociIndex struct {
	Manifests []descriptor `json:"manifests"`
}

type ociManifest struct {
	Config descriptor   `json:"config"`
	Layers []descriptor `json:"layers"`
}

type ociConfig struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Config       struct {
		User       string   `json:"User"`
		Entrypoint []string `json:"Entrypoint"`
		Cmd        []string `json:"Cmd"`
	} `json:"config"`
	RootFS struct {
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, data)
	}
	return v
}

func imageManifest(t *testing.T, files map[string][]byte) ociManifest {
	t.Helper()
	index := decode[ociIndex](t, files["index.json"])
	if len(index.Manifests) == 0 {
		t.Fatal("index.json lists no manifest")
	}
	return decode[ociManifest](t, files["blobs/sha256/"+index.Manifests[0].digestHex()])
}

func imageConfig(t *testing.T, files map[string][]byte) ociConfig {
	t.Helper()
	return decode[ociConfig](t, files["blobs/sha256/"+imageManifest(t, files).Config.digestHex()])
}

// rootFS is the image's root filesystem: its layers applied in order, as containerd
// unpacks them (no layer of this image deletes anything, so no whiteouts).
func rootFS(t *testing.T, files map[string][]byte) map[string]entry {
	t.Helper()
	fs := map[string]entry{}
	for _, l := range imageManifest(t, files).Layers {
		if l.MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
			t.Errorf("layer %s has media type %s", l.Digest, l.MediaType)
		}
		tr := tar.NewReader(bytes.NewReader(gunzip(t, files["blobs/sha256/"+l.digestHex()])))
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("read layer %s: %v", l.Digest, err)
			}
			name := strings.Trim(filepath.Clean(h.Name), "/")
			if strings.Contains(name, ".wh.") {
				t.Errorf("layer %s deletes %s", l.Digest, name)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("read %s: %v", name, err)
			}
			if h.Typeflag != tar.TypeDir && h.Typeflag != tar.TypeReg {
				t.Errorf("%s is neither a file nor a directory (type %c); the image needs no links or devices", name, h.Typeflag)
			}
			fs[name] = entry{dir: h.Typeflag == tar.TypeDir, mode: h.Mode & 0o7777, uid: h.Uid, gid: h.Gid, data: data}
		}
	}
	return fs
}

func gunzip(t *testing.T, data []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("layer is not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip layer: %v", err)
	}
	return out
}

func countCertificates(t *testing.T, bundle []byte) int {
	t.Helper()
	n := 0
	for block, rest := pem.Decode(bundle); block != nil; block, rest = pem.Decode(rest) {
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			t.Errorf("the CA bundle holds a certificate that does not parse: %v", err)
		}
		n++
	}
	return n
}

func hasChild(fs map[string]entry, dir string) bool {
	for name := range fs {
		if strings.HasPrefix(name, dir+"/") {
			return true
		}
	}
	return false
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
