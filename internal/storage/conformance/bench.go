package conformance

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/storage"
)

// Benchmark measures the storage work of one silent login of a user who already has a
// session and used the application before: the session is read, and the code the server
// sealed for it is redeemed with its access token stored. "serial" is one login after another;
// "parallel" runs logins of different users at once, as a busy server does.
func Benchmark(b *testing.B, s storage.Storage) {
	var seq atomic.Int64
	newSession := func(b *testing.B) storage.Session {
		x := session(fmt.Sprint("bench-session-", seq.Add(1)))
		x.ExpiresAt = time.Now().Add(72 * time.Hour)
		if err := s.CreateSession(b.Context(), x); err != nil {
			b.Fatal(err)
		}
		return x
	}
	login := func(b *testing.B, sess storage.Session) error {
		ctx, now, n := b.Context(), time.Now(), seq.Add(1)
		if _, err := s.GetSession(ctx, sess.IDHash); err != nil {
			return err
		}
		code := storage.CodeRedemption{CodeHash: digest.Of(fmt.Sprint("bench-code-", n)), SessionIDHash: sess.IDHash, ExpiresAt: now.Add(time.Minute)}
		tok := accessToken(fmt.Sprint("bench-token-", n))
		tok.SessionIDHash, tok.RefreshFamilyID = sess.IDHash, ""
		tok.IssuedAt, tok.ExpiresAt = now, now.Add(time.Hour)
		return s.RedeemCode(ctx, code, issuing(tok, nil, nil))
	}

	b.Run("serial", func(b *testing.B) {
		sess := newSession(b)
		for b.Loop() {
			if err := login(b, sess); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		// Sessions are made before the timer runs: workers may not call b.Fatal.
		sessions := make(chan storage.Session, runtime.GOMAXPROCS(0))
		for range cap(sessions) {
			sessions <- newSession(b)
		}
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			sess := <-sessions
			for pb.Next() {
				if err := login(b, sess); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
