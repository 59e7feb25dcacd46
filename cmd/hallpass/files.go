package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// writePrivateTemp writes data to a new file, readable by its owner only (os.CreateTemp's
// mode 0600), in path's directory, so that linking or renaming it to path stays on one file
// system, and returns its name. A reader of path never sees a half-written file.
func writePrivateTemp(path string, data []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return "", fmt.Errorf("create a file beside %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("write a file beside %s: %w", path, err)
	}
	return f.Name(), nil
}

// replacePrivateFile replaces path with data atomically; only its owner may read the file.
func replacePrivateFile(path string, data []byte) error {
	tmp, err := writePrivateTemp(path, data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}
