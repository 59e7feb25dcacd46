package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hallpass/hallpass/internal/passhash"
)

func init() {
	commands["hash-password"] = command{
		summary: "read a password on stdin, print its argon2id hash for a Database connection's users Secret",
		run:     func(_ context.Context, args []string) error { return hashPassword(os.Stdin, os.Stdout, args) },
	}
}

// hashPassword reads the password from a line of input rather than an argument, so it never
// lands in shell history or the process list.
func hashPassword(in io.Reader, out io.Writer, args []string) error {
	if len(args) > 0 {
		return errors.New("the password is read from standard input, not from arguments")
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read password: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return errors.New("empty password: type it, then press Enter")
	}
	hash, err := passhash.Hash(password)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, hash)
	return err
}
