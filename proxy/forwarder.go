package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"reflect"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-app/gatehouse/proxy/pool"
)

// Forwarder is the localhost OpenAI-compatible endpoint: an http.Handler
// that routes each request to an upstream, injects the upstream's
// credential and streams the answer back. A new config applies to requests
// that start after Apply; requests in flight keep the one they started with.
type Forwarder struct {
	creds  Credentials
	log    *slog.Logger
	reqlog *RequestLog
	models *modelCache
	state  atomic.Pointer[runtime]
	nextID atomic.Uint64
	// settleToken is the SHA-256 of the token ?settle=1 needs, or nil.
	settleToken atomic.Pointer[[sha256.Size]byte]

	failures failureLimiter
	rp       *httputil.ReverseProxy
	keys     keyStates
	overload overloads // upstreams backing off after saying they are overloaded
	gates    gates
	pacers   pacers
	usage    atomic.Pointer[UsageBook]
	cache    atomic.Pointer[lazyCache]
	paused   atomic.Bool

	mu           sync.Mutex                 // serialises Apply
	transports   map[string]*http.Transport // by route and tlsKey
	poolsByKey   map[string]*pool.Pool      // by poolKey
	poolsChanged chan struct{}
	changes      notifier
}

// runtime is one applied config, ready to serve.
type runtime struct {
	cfg       *Config
	pools     map[string]*pool.Pool
	upstreams []*upstreamRT
	byName    map[string]*upstreamRT
	hosts     map[string]bool
	origins   map[string]bool
	anyIPHost bool // listening on every address: any IP literal is a fine Host
	tokens    []tokenHash
	maxBody   int64
	caFiles   string // the ca_files' content it was built with (caFiles)
}

// NewForwarder makes a forwarder with no upstreams; Apply gives it a config.
// reqlog may be nil.
func NewForwarder(creds Credentials, reqlog *RequestLog, log *slog.Logger) *Forwarder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Forwarder{creds: creds, log: log, reqlog: reqlog, transports: map[string]*http.Transport{}, poolsChanged: make(chan struct{}, 1)}
	f.models = newModelCache(f)
	f.rp = f.newReverseProxy()
	if err := f.Apply(DefaultConfig(), ""); err != nil {
		panic(err) // the default config has nothing that can fail
	}
	return f
}

// Apply makes cfg the config for new requests. dir is the folder relative
// ca_file paths are read from. The forwarder keeps cfg: do not change it
// afterwards (Config().Clone() gives a copy to edit).
func (f *Forwarder) Apply(cfg *Config, dir string) error {
	if err := cfg.validate(dir); err != nil {
		return err
	}
	rt := &runtime{
		cfg:     cfg,
		byName:  map[string]*upstreamRT{},
		hosts:   map[string]bool{},
		origins: map[string]bool{},
		maxBody: cfg.MaxBodyBytes(),
		tokens:  compileTokens(cfg.Tokens),
		caFiles: caFiles(cfg, dir),
	}
	// Shared on the network (which needs tokens), the listen address is a
	// Host clients use.
	if host, _, err := net.SplitHostPort(cfg.Listen); err == nil && !isLoopbackHost(host) {
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			rt.anyIPHost = true
		} else {
			rt.hosts[strings.ToLower(host)] = true
		}
	}
	for _, h := range cfg.AllowedHosts {
		rt.hosts[strings.ToLower(h)] = true
	}
	for _, o := range cfg.AllowedOrigins {
		rt.origins[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	transports := map[string]*http.Transport{}
	// routeT returns the transport of a route that is not a pool, shared by
	// upstreams (and kept across reloads) where nothing it depends on differs.
	routeT := func(uc *Upstream, via string) (*http.Transport, string, error) {
		key := via + "\x00" + tlsKey(uc, dir)
		t, route, err := routeTransport(uc, via, dir, f.creds)
		if err != nil {
			return nil, "", err
		}
		if old := transports[key]; old != nil {
			t = old
		} else if old := f.transports[key]; old != nil {
			t = old
		}
		transports[key] = t
		return t, route, nil
	}
	rt.pools = f.buildPools(cfg)
	for i := range cfg.Upstreams {
		uc := &cfg.Upstreams[i]
		u := &upstreamRT{cfg: uc}
		for _, m := range uc.Models {
			g, _ := compileGlob(m) // validated above
			u.globs = append(u.globs, g)
		}
		u.base, _ = url.Parse(uc.BaseURL) // validated above
		via := uc.Via
		if cfg.Direct {
			via = ViaDirect // the global switch bypasses every proxy
		}
		direct, route, err := routeT(uc, ViaDirect)
		if err != nil {
			return fmt.Errorf("upstreams[%d] %q: %w", i, uc.Name, err)
		}
		u.transport = direct
		if name, isPool := strings.CutPrefix(via, viaPool); isPool {
			u.transport = &poolTransport{pool: rt.pools[name], key: tlsKey(uc, dir), direct: direct,
				build: func() *http.Transport { t, _ := baseTransport(uc, dir, f.creds); return memberTransport(t) }} // baseTransport succeeded above
			route = "pool " + name
		} else if via != ViaDirect {
			if u.transport, route, err = routeT(uc, via); err != nil {
				return fmt.Errorf("upstreams[%d] %q: %w", i, uc.Name, err)
			}
		}
		if cfg.Direct && uc.Via != ViaDirect {
			route = "direct (global switch)"
		}
		u.route = route
		u.gate = f.gates.get(uc)
		u.pacer = f.pacers.get(uc)
		u.cacheTTL, _ = parseDuration(uc.Cache, 0) // validated
		u.waits = waitsOf(uc)
		rt.upstreams = append(rt.upstreams, u)
		rt.byName[uc.Name] = u
	}
	for key, t := range f.transports {
		if transports[key] == nil {
			// Requests in flight keep their connections; idle ones go now,
			// and the rest close after IdleConnTimeout once they are done.
			t.CloseIdleConnections()
		}
	}
	f.transports = transports
	f.state.Store(rt)
	select {
	case f.poolsChanged <- struct{}{}:
	default:
	}
	f.changes.notify()
	if r, ok := f.creds.(interface{ Reset() }); ok {
		r.Reset() // keys may have been added or removed with the config
	}
	return nil
}

// Config returns the config in use. Treat it as read-only.
func (f *Forwarder) Config() *Config { return f.state.Load().cfg }

// inUse reports whether cfg is the config in use, with the same ca_file
// contents: applying it again would change nothing.
func (f *Forwarder) inUse(cfg *Config, dir string) bool {
	rt := f.state.Load()
	return reflect.DeepEqual(cfg, rt.cfg) && caFiles(cfg, dir) == rt.caFiles
}

// Close drops idle upstream connections.
func (f *Forwarder) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.transports {
		t.CloseIdleConnections()
	}
	for _, p := range f.poolsByKey {
		p.Close()
	}
}

// route returns the first upstream whose patterns match model.
func (rt *runtime) route(model string) *upstreamRT {
	for _, u := range rt.upstreams {
		if u.matches(model) {
			return u
		}
	}
	return nil
}

type ctxKey struct{}

// forwardState is what the reverse proxy needs to know about one request.
type forwardState struct {
	rt            *runtime
	up            *upstreamRT // routed to; fallbacks may follow
	rest          string      // the escaped path after /v1/ or /u/<name>/
	query         string
	body          []byte
	rec           *Record
	cancel        context.CancelCauseFunc // ends the attempt whose answer goes to the client
	injectedUsage bool                    // stream_options.include_usage is ours
	stream        bool                    // the client asked for a stream
	pace          *pace                   // the key local pacing chose for the latest attempt, or nil
	keys          []Credential            // with pacing: the routed upstream's usable keys, the paced one first
	tokens        int                     // with pacing here or at a fallback: the request's estimate
	overloaded    bool                    // up backs off as overloaded: its fallbacks go first
}

// answered is the upstream that answered.
func (st *forwardState) answered() *upstreamRT {
	if u := st.rt.byName[st.rec.Upstream]; u != nil {
		return u
	}
	return st.up
}

func stateFrom(ctx context.Context) *forwardState {
	st, _ := ctx.Value(ctxKey{}).(*forwardState)
	return st
}

// ServeHTTP implements http.Handler.
func (f *Forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := f.state.Load()
	if r.URL.Path == "/health" {
		f.serveHealth(rt, w, r)
		return
	}
	rec := &Record{
		ID:     f.nextID.Add(1),
		Start:  time.Now(),
		Client: r.RemoteAddr,
		Method: r.Method,
		Path:   r.URL.Path,
	}
	rw := &recorder{ResponseWriter: w, rec: rec, ctx: r.Context()}
	defer f.finish(rw, r)

	if e := rt.guard(w, r); e != nil {
		rec.Error = e.Message
		writeAPIError(rw, e)
		return
	}
	if isPreflight(r) {
		rt.preflight(w, r)
		rec.Status = http.StatusNoContent
		return
	}
	if r.URL.Path == StatusPath && r.Method == http.MethodGet && isLoopbackHost(clientIP(r)) {
		f.serveStatus(rw, r)
		return
	}
	if r.URL.Path == InfoPath && r.Method == http.MethodGet {
		serveInfo(rt, rw, r)
		return
	}
	if r.URL.Path == KeyEnablePath {
		if e := f.serveKeyEnable(rw, r); e != nil {
			rec.Error = e.Message
			writeAPIError(rw, e)
		}
		return
	}
	if e := f.checkToken(rt, r, rec); e != nil {
		rec.Error = e.Message
		writeAPIError(rw, e)
		return
	}
	if f.paused.Load() && r.URL.Path != StatusPath {
		rec.Error = errPaused.Message
		writeAPIError(rw, errPaused)
		return
	}
	switch p := r.URL.Path; {
	case p == StatusPath && r.Method == http.MethodGet:
		f.serveStatus(rw, r)
	case p == "/v1/queue" && r.Method == http.MethodGet:
		f.serveQueue(rw)
	case p == "/v1/models" && r.Method == http.MethodGet:
		f.serveModels(rt, rw, r)
	case strings.HasPrefix(p, "/v1/"):
		f.forward(rt, rw, r, "")
	case strings.HasPrefix(p, "/u/"):
		name, _, _ := strings.Cut(strings.TrimPrefix(p, "/u/"), "/")
		f.forward(rt, rw, r, name)
	default:
		e := newAPIError(http.StatusNotFound, "unknown_path",
			fmt.Sprintf("%s is not an API path here; point your client at http://%s/v1 (or /u/<upstream>/ for one upstream)", p, rt.cfg.Listen))
		rec.Error = e.Message
		writeAPIError(rw, e)
	}
}

// responseCache is the response cache, opened on first use; nil when
// there is none or it cannot be opened (then the request goes upstream).
func (f *Forwarder) responseCache() *ResponseCache {
	lc := f.cache.Load()
	if lc == nil {
		return nil
	}
	return lc.get(f.log)
}

// finish writes the request's record, also when the reverse proxy aborted
// the response with http.ErrAbortHandler (the stream broke after it began).
func (f *Forwarder) finish(rw *recorder, r *http.Request) {
	rec := rw.rec
	p := recover()
	if p == nil {
		rw.send()
	}
	if rec.Status == 0 {
		rec.Status = rw.status
	}
	// An answer whose declared length was written whole and flushed while
	// the client was there is complete: a client that hangs up once it has
	// it did not leave early.
	if p != nil || r.Context().Err() != nil && rec.Status < 400 && !rw.whole {
		if r.Context().Err() != nil {
			rec.Status = StatusClientClosed
			setOnce(&rec.Error, "the client closed the request before the answer was complete")
		} else {
			setOnce(&rec.Error, "the upstream's answer broke off before it was complete")
		}
	}
	rec.BytesOut = rw.bytes
	rec.Duration = time.Since(rec.Start)
	if !rw.firstByte.IsZero() {
		rec.TTFB = rw.firstByte.Sub(rec.Start)
	}
	rec.Stream = strings.HasPrefix(rw.Header().Get("Content-Type"), "text/event-stream")
	if f.reqlog != nil {
		f.reqlog.Add(*rec)
	}
	if b := f.usage.Load(); b != nil {
		b.Add(rec)
	}
	if p != nil {
		panic(p)
	}
}

func setOnce(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

// forward sends one API request upstream. name is the upstream named by a
// /u/<name>/ path, or "" to route by model.
func (f *Forwarder) forward(rt *runtime, w *recorder, r *http.Request, name string) {
	rec := w.rec
	fail := func(e *apiError) {
		rec.Error = e.Message
		if e.Status == StatusClientClosed {
			rec.Status = e.Status
			return
		}
		writeAPIError(w, e)
	}

	rest := strings.TrimPrefix(r.URL.EscapedPath(), "/v1/")
	if name != "" {
		rest = strings.TrimPrefix(r.URL.EscapedPath(), "/u/"+name)
		rest = strings.TrimPrefix(rest, "/")
	}
	if msg := badPath(rest); msg != "" {
		fail(newAPIError(http.StatusBadRequest, "bad_path", msg))
		return
	}

	body, err := readBody(r, rt.maxBody)
	rec.BytesIn = int64(len(body))
	if err != nil {
		fail(bodyError(r.Context(), err))
		return
	}

	contentType := r.Header.Get("Content-Type")
	fields := scanJSON(contentType, body)
	var up *upstreamRT
	if name != "" {
		if up = rt.byName[name]; up == nil {
			fail(newAPIError(http.StatusNotFound, "unknown_upstream",
				fmt.Sprintf("no upstream named %q; configured upstreams: %s", name, upstreamNames(rt.upstreams))))
			return
		}
	} else {
		model, err := extractModel(contentType, body, fields)
		if err != nil && r.Method == http.MethodGet && strings.HasPrefix(rest, "models/") {
			model, err = strings.TrimPrefix(rest, "models/"), nil // retrieve one model
		}
		rec.Model = model
		switch {
		case err == nil:
			if up = rt.route(model); up == nil {
				msg := fmt.Sprintf("no upstream serves model %q; the configured patterns are %s; add the model to an upstream's models in the config, or call /u/<upstream>/ directly",
					model, describeUpstreams(rt.upstreams))
				if len(rt.upstreams) == 0 {
					msg = fmt.Sprintf("no upstream serves model %q: no upstreams are configured yet; add an [[upstreams]] entry to the config (the README has examples)", model)
				}
				fail(newAPIError(http.StatusNotFound, "model_not_found", msg))
				return
			}
		case len(rt.upstreams) == 1:
			// Requests without a model (files, batches, a stored response)
			// can only mean the one upstream there is.
			up = rt.upstreams[0]
		default:
			msg := "the request has no \"model\" field, so Gatehouse cannot tell which upstream to use; send JSON with a \"model\", or call /u/<upstream>/" + rest
			if errors.Is(err, errModelNotAText) {
				msg = "\"model\" must be a string naming the model"
			}
			fail(newAPIError(http.StatusBadRequest, "model_missing", msg))
			return
		}
	}
	rec.Upstream, rec.Route = up.cfg.Name, up.route

	// The response cache, when the upstream has one: a hit is answered
	// here, before any queue or pacing; a miss records the answer.
	var cu *cacheUse
	if ttl := up.cacheTTL; ttl > 0 {
		if c := f.responseCache(); c != nil && cacheable(r.Method, rest, r.Header) {
			key := cacheKey(r.Method, rest+"?"+r.URL.RawQuery, up.cfg.Name, r.Header, body)
			if e, ok := c.get(key, ttl, time.Now()); ok {
				rec.Cache, rec.PromptTokens, rec.CompletionTokens = "hit", e.PromptTokens, e.CompletionTokens
				serveHit(w, e)
				return
			}
			cu = &cacheUse{c: c, key: key, max: rt.cfg.cacheMaxBytes()}
			w.cache, rec.Cache = cu, "miss"
			w.Header().Set(CacheHeader, "miss")
		}
	}

	release, e := up.gate.enter(r.Context(), up.cfg)
	if e != nil {
		fail(e)
		return
	}
	released := false // before the answer is sent, below; else on the way out
	defer func() {
		if !released {
			release()
		}
	}()
	query := r.URL.RawQuery
	if up.cfg.Auth == AuthGoogAPIKey {
		query = withoutKey(query) // before a fallback of another kind can see it
	}
	st := &forwardState{rt: rt, up: up, rest: rest, query: query, rec: rec}
	if up.paced(rt) {
		st.tokens = estimateTokens(body, fields)
	}
	if up.pacer != nil && !f.overloaded(up) { // else its fallbacks go first, each attempt paced on its own
		// The keys are listed once, here, and the attempts use the same
		// list (listing turns the round-robin); without a usable key the
		// attempts say why.
		if keys, err := f.keysFor(up.cfg); err == nil {
			labels := make([]string, len(keys))
			for i, k := range keys {
				labels[i] = k.Label
			}
			if st.pace, e = up.pacer.take(r.Context(), up.cfg.Name, labels, st.tokens, st.queueDeadline()); e != nil {
				fail(e)
				return
			}
			if i := slices.IndexFunc(keys, func(k Credential) bool { return k.Label == st.pace.label }); i > 0 {
				k := keys[i] // the key with room goes first, the others in turn
				keys = slices.Insert(slices.Delete(keys, i, i+1), 0, k)
			}
			st.keys = keys
		}
	}
	// After any wait for pacing: an upstream that said meanwhile it is
	// overloaded goes after its fallbacks (its paced key is kept for its
	// turn).
	st.overloaded = f.overloaded(up)
	st.stream = isStreamRequest(rest, r.URL.RawQuery, fields)
	st.body, st.injectedUsage = askForUsage(up.cfg, rest, body, fields)
	body = st.body

	r.Header.Del("Transfer-Encoding")
	r.ContentLength = int64(len(body))
	r.Body = http.NoBody
	r.GetBody = nil
	if len(body) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	// What the next request may see is settled (its place in
	// max_concurrent, the tokens paced, the cached answer) before the
	// client has its answer: by the recorder as soon as the last byte of
	// an answer of known length is written, else here.
	w.settle = func() {
		st.pace.used(rec.PromptTokens + rec.CompletionTokens)
		// Only a 200 that completed normally is stored: a cut stream
		// panics out of ServeHTTP below, an errored one has its Error set.
		if cu != nil && !cu.big && w.status == http.StatusOK && rec.Error == "" && r.Context().Err() == nil {
			now := time.Now()
			err := cu.c.put(cu.key, &cacheEntry{ContentType: w.Header().Get("Content-Type"), Body: cu.buf.Bytes(), Stored: now,
				PromptTokens: rec.PromptTokens, CompletionTokens: rec.CompletionTokens}, now, cu.max)
			if err != nil {
				f.log.Warn("response not cached", "upstream", up.cfg.Name, "err", err)
			}
		}
		release()
		released = true
	}
	f.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, st)))
	w.settled()
	// The client has its answer before the request log and the usage book.
	w.send()
}

func bodyError(ctx context.Context, err error) *apiError {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return newAPIError(http.StatusRequestEntityTooLarge, "request_too_large", tooLargeMessage(tooBig.Limit))
	case ctx.Err() != nil:
		return newAPIError(StatusClientClosed, "client_closed", "the client closed the request")
	}
	return newAPIError(http.StatusBadRequest, "bad_body", "reading the request body failed: "+err.Error())
}

// badPath says why the escaped path after /v1/ (or /u/<name>/) may not be
// forwarded, or "". Each segment is decoded before it is checked, so that
// ".%2e" and "%2e." count as "..": a front end that normalises the path
// would otherwise resolve them outside the base URL's prefix. Encoded
// slashes and backslashes are refused, since a front end may decode them
// into separators ("..%2f").
func badPath(escaped string) string {
	for seg := range strings.SplitSeq(escaped, "/") {
		if !strings.ContainsAny(seg, "%\\") && seg != "." && seg != ".." {
			continue
		}
		dec, err := url.PathUnescape(seg)
		switch {
		case err != nil:
			return "the path has a malformed percent escape"
		case strings.ContainsAny(dec, "/\\"):
			return "the path must not contain encoded slashes or backslashes (%2F, %5C)"
		case dec == "." || dec == "..":
			return "the path must not contain '.' or '..' segments, encoded or not"
		}
	}
	return ""
}

func upstreamNames(ups []*upstreamRT) string {
	names := make([]string, len(ups))
	for i, u := range ups {
		names[i] = u.cfg.Name
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// StatusPath answers the forwarder's status as JSON: the direct switch,
// each pool and each key's state; no secret is in it. Loopback clients
// need no token for it, so that `gatehouse key list` can show key states.
const StatusPath = "/gatehouse/status"

// FullStatus is what StatusPath answers.
type FullStatus struct {
	Status
	Keys    []KeyStatus  `json:"keys"`
	Process ProcessStats `json:"process"`
}

// ProcessStats lets a soak test see leaks (goroutines and live heap) and a
// benchmark count allocations (objects and bytes since the start).
type ProcessStats struct {
	Goroutines int    `json:"goroutines"`
	HeapBytes  uint64 `json:"heap_bytes"`
	Mallocs    uint64 `json:"mallocs"`
	AllocBytes uint64 `json:"alloc_bytes"`
}

// readProcessStats reads this process's figures.
func readProcessStats() ProcessStats {
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	return ProcessStats{Goroutines: goruntime.NumGoroutine(), HeapBytes: ms.HeapAlloc, Mallocs: ms.Mallocs, AllocBytes: ms.TotalAlloc}
}

// SettleHeader carries the token that lets ?settle=1 act (AllowSettle).
const SettleHeader = "X-Gatehouse-Settle"

// AllowSettle lets GET StatusPath?settle=1 drop idle upstream connections
// and collect garbage when the request carries token in SettleHeader; the
// soak tool starts the forwarder with one. Without it, settle is ignored:
// any loopback caller (a web page's image tag too) may read the status,
// but none may make the forwarder do work.
func (f *Forwarder) AllowSettle(token string) {
	sum := sha256.Sum256([]byte(token))
	f.settleToken.Store(&sum)
}

// serveStatus answers StatusPath. With ?settle=1 and the settle token it
// first drops idle upstream connections and collects garbage, so that the
// goroutine and heap figures show only what is in use (make soak compares
// them).
func (f *Forwarder) serveStatus(w http.ResponseWriter, r *http.Request) {
	if want := f.settleToken.Load(); want != nil && r.URL.Query().Get("settle") == "1" {
		got := sha256.Sum256([]byte(r.Header.Get(SettleHeader)))
		if subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
			f.Close()
			goruntime.GC()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(FullStatus{Status: f.Status(), Keys: f.KeyStatus(), Process: readProcessStats()})
}

// Version is the program's version, for /api/info; main sets it.
var Version = "dev"

// InfoPath describes the forwarder to clients and tools, without a token
// (like /health) but behind the Host and Origin checks: what it serves,
// never a key or a token.
const InfoPath = "/api/info"

// Info is the body of GET /api/info.
type Info struct {
	Name           string         `json:"name"`
	Version        string         `json:"version"`
	BaseURL        string         `json:"base_url"`
	TokensRequired bool           `json:"tokens_required"`
	Upstreams      []InfoUpstream `json:"upstreams"`
	Endpoints      []string       `json:"endpoints"`
}

// InfoUpstream is an upstream as /api/info shows it.
type InfoUpstream struct {
	Name   string   `json:"name"`
	Models []string `json:"models"`
}

// infoEndpoints are the paths the forwarder serves.
var infoEndpoints = []string{
	"/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/completions", "/v1/embeddings",
	"/v1/models", "/v1/queue", "/v1/* (any other path, routed by the model in the body)",
	"/u/<upstream>/* (one upstream, by name)", "/health", InfoPath,
}

func serveInfo(rt *runtime, w http.ResponseWriter, r *http.Request) {
	info := Info{Name: "Gatehouse", Version: Version, BaseURL: "http://" + r.Host + "/v1",
		TokensRequired: len(rt.cfg.Tokens) > 0, Upstreams: []InfoUpstream{}, Endpoints: infoEndpoints}
	for _, u := range rt.cfg.Upstreams {
		info.Upstreams = append(info.Upstreams, InfoUpstream{Name: u.Name, Models: append([]string{}, u.Models...)})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(info)
}

func (f *Forwarder) serveHealth(rt *runtime, w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, "{\"status\":\"ok\",\"upstreams\":%d}\n", len(rt.upstreams))
}

// recorder watches what goes to the client for the request log. It keeps
// Flush and Unwrap working so streamed events are not held back.
type recorder struct {
	http.ResponseWriter
	rec       *Record
	status    int
	bytes     int64
	firstByte time.Time
	cache     *cacheUse // on a cache miss: the answer, to store
	length    int64     // the answer's Content-Length; -1: not known
	ctx       context.Context
	whole     bool // the last byte was written and flushed while the client was there
	// settle, when set, is run once, as soon as the answer is complete:
	// at its last byte when its length is known (then the answer goes to
	// the client at once, not after the reverse proxy's own ending), else
	// by settled.
	settle func()
}

func (w *recorder) WriteHeader(code int) {
	if code >= 200 && w.status == 0 {
		w.status = code
		w.length = declaredLength(w.Header().Get("Content-Length"))
		if w.cache != nil {
			w.cache.expect(w.length)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

// declaredLength is a Content-Length's value, or -1 for none or one that
// is not a length above 0.
func declaredLength(s string) int64 {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		return n
	}
	return -1
}

// settled runs settle if the answer's last byte has not.
func (w *recorder) settled() {
	if f := w.settle; f != nil {
		w.settle = nil
		f()
	}
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.firstByte.IsZero() && len(b) > 0 {
		w.firstByte = time.Now()
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	if w.cache != nil {
		w.cache.write(b[:n])
	}
	if w.length > 0 && w.bytes == w.length && err == nil {
		live := w.ctx == nil || w.ctx.Err() == nil // before the flush: the client had not left
		w.settled()
		w.whole = live && w.flush() == nil
	}
	return n, err
}

func (w *recorder) Flush() { _ = w.flush() }

func (w *recorder) flush() error { return http.NewResponseController(w.ResponseWriter).Flush() }

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// send hands an answer of known length to the client now, instead of
// when the handler returns: the request log and the usage book are kept
// after the client has its answer, not before. An answer without
// Content-Length (Gatehouse's own errors and pages, which net/http
// measures when the handler returns) is left as it is: flushed early it
// would go chunked, and its end would still wait for the handler.
func (w *recorder) send() {
	if !w.whole && w.status != 0 && w.Header().Get("Content-Length") != "" { // whole: sent at its last byte
		w.Flush()
	}
}
