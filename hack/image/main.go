// Command image builds a container image without a Docker engine and writes it as an
// archive that docker load, ctr images import, kind and k3d read (see internal/ociimage).
// `make image` runs it for Hallpass's image, and the real-node test for its pause image.
//
//	go run ./hack/image -binary bin/linux/hallpass -ref hallpass/hallpass:dev -output bin/hallpass-image.tar
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/hallpass/hallpass/internal/ociimage"
)

func main() {
	var spec ociimage.Spec
	flag.StringVar(&spec.Binary, "binary", "", "static Linux executable to install in the image's root directory")
	flag.StringVar(&spec.Entrypoint, "entrypoint", "hallpass", "its file name in the image, run as the entrypoint")
	flag.StringVar(&spec.Ref, "ref", "", "image reference, e.g. hallpass/hallpass:v0.1.0")
	flag.StringVar(&spec.CABundle, "ca-bundle", ociimage.DebianCABundle, "PEM bundle installed as /etc/ssl/certs/ca-certificates.crt")
	flag.StringVar(&spec.Arch, "arch", runtime.GOARCH, "architecture of the binary, as GOARCH names it")
	output := flag.String("output", "", "archive to write")
	flag.Parse()
	if spec.Binary == "" || spec.Ref == "" || *output == "" {
		fmt.Fprintln(os.Stderr, "image: -binary, -ref and -output are required")
		flag.Usage()
		os.Exit(2)
	}
	if err := write(*output, spec); err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
}

// write writes the archive next to output and renames it into place, so a failed build
// never leaves a partial archive under the final name.
func write(output string, spec ociimage.Spec) error {
	f, err := os.CreateTemp(filepath.Dir(output), filepath.Base(output)+".partial-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := ociimage.WriteArchive(f, spec); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil { //nolint:gosec // G302: an image archive is meant to be read by the tools that import it
		return err
	}
	return os.Rename(f.Name(), output)
}
