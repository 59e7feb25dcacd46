package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

	"github.com/hallpass/hallpass/internal/config"
)

func init() {
	commands["keys"] = command{summary: "create or rotate the signing keys file of a standalone server (generate | rotate)", run: runKeys}
}

// defaultKeysFile is the signing keys file of a standalone server given no --keys: beside
// its config file.
const defaultKeysFile = "keys.json"

func runKeys(_ context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "generate" && args[0] != "rotate") {
		return errors.New("usage: hallpass keys generate|rotate --keys FILE [--algorithm RS256|ES256]")
	}
	flags := flag.NewFlagSet("keys "+args[0], flag.ContinueOnError)
	path := flags.String("keys", "", "signing keys file")
	alg := flags.String("algorithm", "RS256", "algorithm of the first key chain of generate: RS256 or ES256 (the config's signing.algorithm)")
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("--keys is required")
	}
	if args[0] == "generate" {
		err := createKeysFile(*path, *alg)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists already; `hallpass keys rotate` replaces its keys", *path)
		}
		return err
	}
	return rotateKeysFile(*path)
}

// createKeysFile writes a new current and next key for alg to path, readable by its owner
// only. It never replaces a file: two servers starting at once on one directory both end up
// with the keys of the first (the second gets an error matching fs.ErrExist), and a complete
// file appears at once, never a half-written one.
func createKeysFile(path, alg string) error {
	keys, err := config.NewSigningKeys(alg)
	if err != nil {
		return err
	}
	data, err := config.MarshalSigningKeys(keys)
	if err != nil {
		return err
	}
	tmp, err := writePrivateTemp(path, data)
	if err != nil {
		return fmt.Errorf("create signing keys file: %w", err)
	}
	defer func() { _ = os.Remove(tmp) }()
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("create signing keys file: %w", err)
	}
	return nil
}

// rotateKeysFile promotes each chain's next key to current, keeps the current one as
// previous and adds a new next key; a running standalone server picks the file up within a
// second.
func rotateKeysFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read signing keys file: %w", err)
	}
	keys, err := config.ParseSigningKeys(data)
	if err != nil {
		return err
	}
	if err := keys.Rotate(); err != nil {
		return err
	}
	if data, err = config.MarshalSigningKeys(keys); err != nil {
		return err
	}
	if err := replacePrivateFile(path, data); err != nil {
		return fmt.Errorf("replace signing keys file: %w", err)
	}
	return nil
}

// ensureKeysFile creates the keys file of a standalone server that has none, for the
// algorithm its config names, and reports whether it did.
func ensureKeysFile(configPath, keysPath string) (bool, error) {
	if _, err := os.Stat(keysPath); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return false, nil // an unreadable file is reported when it is read
	}
	data, err := os.ReadFile(configPath)
	if err != nil {
		return false, fmt.Errorf("read config file: %w", err)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return false, err
	}
	err = createKeysFile(keysPath, cfg.Signing.Algorithm)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	return err == nil, err
}
