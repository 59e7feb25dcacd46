package configsource

import (
	"context"
	"fmt"
	"os"
	"time"
)

// ReadFiles reads the config and keys files.
func ReadFiles(configPath, keysPath string) (configData, keysData []byte, err error) {
	if configData, err = os.ReadFile(configPath); err != nil {
		return nil, nil, fmt.Errorf("read config file: %w", err)
	}
	if keysData, err = os.ReadFile(keysPath); err != nil {
		return nil, nil, fmt.Errorf("read signing keys file: %w", err)
	}
	return configData, keysData, nil
}

// PollFiles re-reads both files every interval until ctx ends and hands changes to l.
// Reading the content (not watching modification times) also catches the atomic symlink
// swap with which the kubelet updates a mounted Secret.
func PollFiles(ctx context.Context, configPath, keysPath string, interval time.Duration, l *Reloader) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		configData, keysData, err := ReadFiles(configPath, keysPath)
		if err != nil {
			// A file being replaced may be missing for a moment; the next poll will see it.
			l.logger.Warn("config files unreadable; keeping the current config", "err", err)
			continue
		}
		_ = l.Load(configPath, configData, keysData)
	}
}
