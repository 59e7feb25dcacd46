package server

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/hallpass/hallpass/internal/digest"
)

// TOTP as every authenticator app implements it (RFC 6238 defaults): SHA-1, six digits,
// 30-second steps. A code of the previous or next step is accepted too, for clocks that
// differ by a few seconds; storage refuses a step that was used already (replay).
const (
	totpPeriod    = 30
	totpSkewSteps = 1
	totpQRSize    = 200
	// recoveryCodeCount codes of recoveryCodeBytes random bytes each: 80 bits, so a SHA-256
	// digest is as safe to store as a client secret's.
	recoveryCodeCount = 10
	recoveryCodeBytes = 10
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// totpStep returns the time step whose code is code, if it is one of the steps around now.
// Every candidate step is computed and compared in constant time, so the answer's timing
// does not say which step matched.
func totpStep(secret, code string, now time.Time) (int64, bool) {
	code = strings.TrimSpace(code)
	if len(code) != int(otp.DigitsSix) {
		return 0, false
	}
	cur := now.Unix() / totpPeriod
	var step int64
	found := false
	for s := cur - totpSkewSteps; s <= cur+totpSkewSteps; s++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*totpPeriod, 0), totpOpts)
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			step, found = s, true
		}
	}
	return step, found
}

// newTOTPSecret is a fresh shared secret, base32 as authenticator apps take it.
func newTOTPSecret() (string, error) {
	raw := make([]byte, 20) // RFC 4226's recommended 160 bits
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw), nil
}

// totpEnrolment is what the enrolment page shows: the key as a QR code (a PNG data URI,
// so the page needs no script and no second request) and as text to type in.
type totpEnrolment struct {
	QR        string
	ManualKey string
}

func newTOTPEnrolment(issuer, account, secret string) (totpEnrolment, error) {
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		return totpEnrolment{}, fmt.Errorf("decode TOTP secret: %w", err)
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, Period: totpPeriod,
		Secret: raw, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return totpEnrolment{}, fmt.Errorf("make TOTP key: %w", err)
	}
	img, err := key.Image(totpQRSize, totpQRSize)
	if err != nil {
		return totpEnrolment{}, fmt.Errorf("draw TOTP QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return totpEnrolment{}, fmt.Errorf("encode TOTP QR code: %w", err)
	}
	// Groups of four are easier to type.
	var groups []string
	for i := 0; i < len(secret); i += 4 {
		groups = append(groups, secret[i:min(i+4, len(secret))])
	}
	return totpEnrolment{
		QR:        "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()),
		ManualKey: strings.Join(groups, " "),
	}, nil
}

// newRecoveryCodes returns codes to show the user once and the digests to store.
func newRecoveryCodes() (codes, hashes []string, err error) {
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	for range recoveryCodeCount {
		raw := make([]byte, recoveryCodeBytes)
		if _, err := rand.Read(raw); err != nil {
			return nil, nil, fmt.Errorf("read random bytes: %w", err)
		}
		c := strings.ToLower(enc.EncodeToString(raw)) // 16 characters
		codes = append(codes, c[:4]+"-"+c[4:8]+"-"+c[8:12]+"-"+c[12:])
		hashes = append(hashes, digest.Of(c))
	}
	return codes, hashes, nil
}

// recoveryCodeHash is the digest of a typed recovery code: dashes, spaces and case do not
// matter.
func recoveryCodeHash(typed string) string {
	c := strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(typed))
	return digest.Of(c)
}
