package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hallpass/hallpass/internal/passhash"
	"github.com/hallpass/hallpass/internal/render"
)

func TestHashPassword(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		input string
		args  []string
		err   string
	}{
		"a typed password becomes a hash the server verifies": {input: "correct horse\n"},
		"a password without a final newline is hashed whole":  {input: "correct horse"},
		"an empty line is refused":                            {input: "\n", err: "empty password"},
		"a password given as an argument is refused":          {input: "x\n", args: []string{"secret"}, err: "standard input"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := hashPassword(strings.NewReader(tc.input), &out, tc.args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			hash := strings.TrimSpace(out.String())
			if !render.IsPasswordHash(hash) {
				t.Fatalf("the operator would refuse %q", hash)
			}
			if ok, err := passhash.Verify(hash, "correct horse"); err != nil || !ok {
				t.Fatalf("the server does not accept the password: %v %v", ok, err)
			}
		})
	}
}
