// Command hallpass is the one binary of the project: `hallpass operator` reconciles the
// SSO resources, `hallpass server` serves OpenID Connect, and `hallpass dev` runs an embedded
// control plane with both for local use.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

// command is one subcommand. Each lives in its own file and registers itself in init, so
// the operator, the server and the dev tooling can grow without touching each other.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]].run == nil {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := commands[os.Args[1]].run(ctx, os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "hallpass %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString("usage: hallpass <command> [flags]\n\ncommands:\n")
	for _, name := range names {
		fmt.Fprintf(&b, "  %-14s %s\n", name, commands[name].summary)
	}
	fmt.Fprint(os.Stderr, b.String())
}
