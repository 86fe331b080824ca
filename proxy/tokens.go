package proxy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// TokenPrefix starts every local access token, so that people and secret
// scanners recognise one.
const TokenPrefix = "gate_"

// NewToken makes a local access token (32 random bytes) and its hash, the
// only part the config keeps.
func NewToken() (token, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token), nil
}

// HashToken is the hex SHA-256 of a token, as the config stores it.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

type tokenHash struct {
	name string
	sum  [sha256.Size]byte
}

func compileTokens(tokens []Token) []tokenHash {
	out := make([]tokenHash, 0, len(tokens))
	for _, t := range tokens {
		var th tokenHash
		th.name = t.Name
		_, _ = hex.Decode(th.sum[:], []byte(t.SHA256)) // validated
		out = append(out, th)
	}
	return out
}

// presentedToken is the token a client sent: as a bearer token or an API
// key header, the places clients put an API key.
func presentedToken(r *http.Request) string {
	if a := r.Header.Get("Authorization"); a != "" {
		if scheme, tok, ok := strings.Cut(a, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
	}
	for _, h := range []string{"X-Api-Key", "X-Goog-Api-Key", "Api-Key"} {
		if v := r.Header.Get(h); v != "" {
			return v
		}
	}
	return ""
}

// matchToken returns the name of the configured token tok is, comparing in
// constant time against every one.
func (rt *runtime) matchToken(tok string) (string, bool) {
	sum := sha256.Sum256([]byte(tok))
	name, found := "", 0
	for _, t := range rt.tokens {
		if subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1 {
			name, found = t.name, 1
		}
	}
	return name, found == 1
}

// checkToken enforces access tokens when the config has any. A client that
// keeps sending wrong tokens is answered more and more slowly.
func (f *Forwarder) checkToken(rt *runtime, r *http.Request, rec *Record) *apiError {
	if len(rt.tokens) == 0 {
		return nil
	}
	tok := presentedToken(r)
	if tok == "" {
		return newAPIError(http.StatusUnauthorized, "token_required",
			"this Gatehouse needs an access token: send it as \"Authorization: Bearer <token>\" or \"X-API-Key: <token>\"; make one with `gatehouse token add NAME`")
	}
	ip := clientIP(r)
	if name, ok := rt.matchToken(tok); ok {
		rec.Token = name
		f.failures.forget(ip)
		return nil
	}
	wait(r.Context(), f.failures.failed(ip))
	return newAPIError(http.StatusUnauthorized, "invalid_token",
		"the access token is not valid; check it, or make a new one with `gatehouse token add NAME` (gatehouse token list shows the names)")
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func wait(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// failureLimiter slows down addresses that keep presenting wrong tokens:
// the first few failures are answered at once, then each waits twice as
// long as the one before, up to maxFailureDelay. An address is forgotten
// after a success or failureMemory without failures.
type failureLimiter struct {
	mu sync.Mutex
	m  map[string]*failures
}

type failures struct {
	n    int
	last time.Time
}

const (
	freeFailures    = 3
	firstDelay      = 100 * time.Millisecond
	maxFailureDelay = 5 * time.Second
	failureMemory   = 10 * time.Minute
	maxTracked      = 4096
)

func (l *failureLimiter) failed(ip string) time.Duration {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*failures{}
	}
	if len(l.m) >= maxTracked {
		for k, v := range l.m {
			if now.Sub(v.last) > failureMemory {
				delete(l.m, k)
			}
		}
	}
	f := l.m[ip]
	if f == nil || now.Sub(f.last) > failureMemory {
		f = &failures{}
		l.m[ip] = f
	}
	f.n++
	f.last = now
	if f.n <= freeFailures {
		return 0
	}
	d := firstDelay << min(f.n-freeFailures-1, 10)
	return min(d, maxFailureDelay)
}

func (l *failureLimiter) forget(ip string) {
	l.mu.Lock()
	delete(l.m, ip)
	l.mu.Unlock()
}
