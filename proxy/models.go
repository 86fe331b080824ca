package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// How long an upstream's model list is kept, and how long a failed fetch
// keeps Gatehouse from asking again.
const (
	modelsTTL        = 10 * time.Minute
	modelsFailureTTL = time.Minute
	modelsTimeout    = 10 * time.Second
	modelsMaxBody    = 8 << 20
)

// Model is one entry of GET /v1/models, in OpenAI's shape.
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// modelCache holds each upstream's own /models list, fetched on first use.
type modelCache struct {
	f       *Forwarder
	mu      sync.Mutex
	entries map[string]*modelEntry
}

type modelEntry struct {
	once    sync.Once
	ids     []string  // written once, inside once
	expires time.Time // guarded by modelCache.mu
}

func newModelCache(f *Forwarder) *modelCache {
	return &modelCache{f: f, entries: map[string]*modelEntry{}}
}

// cacheKey changes whenever what the list depends on changes.
func modelsCacheKey(u *Upstream) string {
	return strings.Join([]string{u.Name, u.BaseURL, u.Auth, u.KeyEnv, u.Via}, "\x00")
}

// ids returns an upstream's model ids, fetching them when the cached list is
// missing or old. Concurrent callers share one fetch.
func (c *modelCache) ids(ctx context.Context, u *upstreamRT) []string {
	key := modelsCacheKey(u.cfg)
	c.mu.Lock()
	e := c.entries[key]
	if e == nil || (!e.expires.IsZero() && time.Now().After(e.expires)) {
		e = &modelEntry{}
		c.entries[key] = e
	}
	c.mu.Unlock()
	e.once.Do(func() {
		ids, err := c.fetch(ctx, u)
		ttl := modelsTTL
		if err != nil {
			c.f.log.Warn("model list not available", "upstream", u.cfg.Name, "err", err)
			ttl = modelsFailureTTL
		}
		e.ids = ids // read only after once.Do, which orders it
		c.mu.Lock()
		e.expires = time.Now().Add(ttl) // read by other callers under c.mu
		c.mu.Unlock()
	})
	return e.ids
}

func (c *modelCache) fetch(ctx context.Context, u *upstreamRT) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), modelsTimeout)
	defer cancel()
	return c.f.listModels(ctx, u)
}

// errModelsStatus is a model list answered with another status than 200.
type errModelsStatus struct {
	url    string
	status int
	text   string
}

func (e *errModelsStatus) Error() string { return fmt.Sprintf("GET %s answered %s", e.url, e.text) }

// errNoKey is an upstream without a usable key.
type errNoKey struct{ err error }

func (e *errNoKey) Error() string { return e.err.Error() }
func (e *errNoKey) Unwrap() error { return e.err }

// listModels asks an upstream for its model ids with its first usable key.
func (f *Forwarder) listModels(ctx context.Context, u *upstreamRT) ([]string, error) {
	if u.cfg.Auth == AuthNone {
		return f.listModelsWith(ctx, u, Credential{})
	}
	cred, err := f.creds.Credential(u.cfg)
	if err != nil {
		return nil, &errNoKey{err}
	}
	return f.listModelsWith(ctx, u, cred)
}

// listModelsWith asks an upstream for its model ids with one key.
func (f *Forwarder) listModelsWith(ctx context.Context, u *upstreamRT, cred Credential) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.target("models", "").String(), nil)
	if err != nil {
		return nil, err
	}
	if u.cfg.Auth != AuthNone {
		applyAuth(req, u.cfg, cred, nil)
	}
	if u.cfg.Auth == AuthXAPIKey {
		req.Header.Set("Anthropic-Version", "2023-06-01")
	}
	res, err := u.transport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, &errModelsStatus{req.URL.Redacted(), res.StatusCode, res.Status}
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, modelsMaxBody)).Decode(&list); err != nil {
		return nil, fmt.Errorf("read model list: %w", err)
	}
	ids := make([]string, 0, len(list.Data))
	for _, m := range list.Data {
		if m.ID != "" {
			ids = append(ids, m.ID)
		}
	}
	return ids, nil
}

// serveModels answers GET /v1/models with the models of every upstream that
// model routing would send there: the literal names in its models patterns
// and whatever its own /models lists. An upstream that cannot be asked
// contributes its literal names only.
func (f *Forwarder) serveModels(rt *runtime, w http.ResponseWriter, r *http.Request) {
	fetched := make([][]string, len(rt.upstreams))
	var wg sync.WaitGroup
	for i, u := range rt.upstreams {
		if len(u.globs) == 0 {
			continue // reachable only through /u/<name>/
		}
		wg.Go(func() { fetched[i] = f.models.ids(r.Context(), u) })
	}
	wg.Wait()

	seen := map[string]bool{}
	data := []Model{}
	add := func(id string, u *upstreamRT) {
		if !seen[id] && rt.route(id) == u {
			seen[id] = true
			data = append(data, Model{ID: id, Object: "model", OwnedBy: u.cfg.Name})
		}
	}
	for i, u := range rt.upstreams {
		for _, g := range u.globs {
			if g.literal {
				add(g.pattern, u)
			}
		}
		for _, id := range fetched[i] {
			add(id, u)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Object string  `json:"object"`
		Data   []Model `json:"data"`
	}{"list", data})
}

// UpstreamTest is what TestUpstream found.
type UpstreamTest struct {
	Models int           // how many models the upstream lists
	Took   time.Duration // the time the answer took
	Route  string        // how it was reached
	Key    string        // the key that was accepted
	// Refused are the keys the upstream refused before one was accepted.
	Refused []string
}

// TestUpstream asks the upstream named name for its model list, through
// its configured route with its usable keys in turn, as the window's Test
// button does. A failure is said in plain words: a wrong key, a proxy
// down, a certificate refused, no answer in time.
func (f *Forwarder) TestUpstream(ctx context.Context, name string, timeout time.Duration) (UpstreamTest, error) {
	var u *upstreamRT
	for _, x := range f.state.Load().upstreams {
		if x.cfg.Name == name {
			u = x
		}
	}
	if u == nil {
		return UpstreamTest{}, fmt.Errorf("no upstream named %q is in use; save it first", name)
	}
	keys, err := f.keysFor(u.cfg)
	if err != nil {
		return UpstreamTest{}, explainTestError(&errNoKey{err}, timeout, u.route)
	}
	// Each usable key in the forwarder's order until one is accepted, so
	// that a key just added is tried when an older one was revoked; a
	// failure that is not about the key ends the test at once.
	var first error
	var refused []string
	for _, key := range keys {
		rec := &Record{Route: u.route}
		kctx, cancel := context.WithTimeout(context.WithValue(ctx, ctxKey{}, &forwardState{rec: rec}), timeout)
		start := time.Now()
		ids, err := f.listModelsWith(kctx, u, key)
		cancel()
		t := UpstreamTest{Models: len(ids), Took: time.Since(start), Route: rec.Route, Key: key.Label, Refused: refused}
		if err == nil {
			return t, nil
		}
		err = explainTestError(err, timeout, rec.Route)
		if first == nil {
			first = err
		}
		var te *TestError
		if !errors.As(err, &te) || te.Kind != TestWrongKey {
			return t, err
		}
		refused = append(refused, key.Label)
	}
	return UpstreamTest{Route: u.route, Refused: refused}, first
}

// Kinds of TestError, for a window to say in its own language.
const (
	TestNoKey       = "no_key"
	TestWrongKey    = "wrong_key"
	TestBadURL      = "bad_url"
	TestStatus      = "status"
	TestCertificate = "certificate"
	TestClientCert  = "client_certificate"
	TestTimeout     = "timeout"
	TestProxyDown   = "proxy_down"
	TestUnreachable = "unreachable"
)

// TestError is a failed TestUpstream: its kind and the plain sentence.
type TestError struct {
	Kind string
	msg  string
}

func (e *TestError) Error() string { return e.msg }

func testErr(kind, format string, args ...any) *TestError {
	return &TestError{Kind: kind, msg: fmt.Sprintf(format, args...)}
}

func explainTestError(err error, timeout time.Duration, route string) error {
	var status *errModelsStatus
	var certInvalid x509.CertificateInvalidError
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var alert tls.AlertError
	var netErr net.Error
	var noKey *errNoKey
	switch {
	case errors.As(err, &noKey):
		return testErr(TestNoKey, "no key: %v", noKey.err)
	case errors.As(err, &status) && (status.status == http.StatusUnauthorized || status.status == http.StatusForbidden):
		return testErr(TestWrongKey, "wrong key: the upstream refused it (%s); check that it is this provider's key, or add it again", status.text)
	case errors.As(err, &status) && status.status == http.StatusNotFound:
		return testErr(TestBadURL, "the upstream has no model list at its base URL (%s); check the base URL (most end in /v1)", status.text)
	case errors.As(err, &status):
		return testErr(TestStatus, "the upstream answered %s", status.text)
	case errors.As(err, &certInvalid), errors.As(err, &unknownCA), errors.As(err, &hostname):
		return testErr(TestCertificate, "certificate refused: the upstream's certificate is not trusted here (%v); set ca_file if it uses a private CA", err)
	case errors.As(err, &alert) || strings.Contains(err.Error(), "certificate required") || strings.Contains(err.Error(), "bad certificate"):
		return testErr(TestClientCert, "certificate refused: the upstream did not accept the client certificate (%v); import the right one", err)
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		return testErr(TestTimeout, "timeout: no answer within %s through %s", timeout, route)
	case strings.Contains(err.Error(), "proxy"):
		return testErr(TestProxyDown, "proxy down: %v", err)
	}
	return testErr(TestUnreachable, "could not reach the upstream through %s: %v", route, err)
}
