package digest

import "testing"

func TestTheDigestOfAStringAndItsBytesIsTheSameKnownSHA256(t *testing.T) {
	t.Parallel()
	const want = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" // sha256("hello")
	if got := Of("hello"); got != want {
		t.Errorf("Of(string) = %s, want %s", got, want)
	}
	if got := Of([]byte("hello")); got != want {
		t.Errorf("Of([]byte) = %s, want %s", got, want)
	}
}
