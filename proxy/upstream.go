package proxy

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultFirstByteTimeout bounds the wait for the beginning of a streamed
// answer when first_byte_timeout is not set. A plain answer, whose headers
// come only when it is complete, is bounded by request_timeout instead.
const DefaultFirstByteTimeout = 120 * time.Second

// upstreamRT is an upstream as the forwarder uses it: its config, compiled
// patterns, parsed base URL and the transport of its route (an
// *http.Transport, or a poolTransport for pool:NAME).
type upstreamRT struct {
	cfg       *Upstream
	globs     []glob
	base      *url.URL
	route     string // what the request log shows: direct, system, proxy URL
	transport http.RoundTripper
	gate      *gate         // max_concurrent and its queue
	pacer     *pacer        // requests_per_minute and tokens_per_minute; nil: none
	cacheTTL  time.Duration // cache = "…": how long answers are kept; 0: no cache
	waits     waits         // its duration settings, read once at Apply
}

// waits are an upstream's duration settings, read when the config is
// applied rather than on every request (they were validated then).
type waits struct {
	firstByte, request, idle, backoffCap, queue time.Duration
}

func waitsOf(uc *Upstream) waits {
	var w waits
	w.firstByte, _ = parseDuration(uc.FirstByteTimeout, DefaultFirstByteTimeout)
	w.request, _ = parseDuration(uc.RequestTimeout, DefaultRequestTimeout)
	w.idle, _ = parseDuration(uc.IdleTimeout, DefaultIdleTimeout)
	w.backoffCap, _ = parseDuration(uc.RetryBackoffCap, DefaultRetryBackoffCap)
	w.queue, _ = parseDuration(uc.QueueTimeout, DefaultQueueTimeout)
	return w
}

func (u *upstreamRT) matches(model string) bool {
	for _, g := range u.globs {
		if g.match(model) {
			return true
		}
	}
	return false
}

// target is base_url followed by rest (already escaped), with the query.
func (u *upstreamRT) target(escapedRest, rawQuery string) *url.URL {
	t := *u.base
	raw := strings.TrimSuffix(u.base.EscapedPath(), "/") + "/" + escapedRest
	t.RawPath = raw
	if p, err := url.PathUnescape(raw); err == nil {
		t.Path = p
	}
	t.RawQuery = rawQuery
	return &t
}

// tlsKey names what an upstream's transport depends on besides its route:
// roots and client certificate. A ca_file counts by its content, so that a
// replaced file makes a new transport on the next reload.
func tlsKey(u *Upstream, dir string) string {
	ca := ""
	if u.CAFile != "" {
		ca = resolvePath(dir, u.CAFile)
		if data, err := os.ReadFile(ca); err == nil {
			sum := sha256.Sum256(data)
			ca += "\x00" + hex.EncodeToString(sum[:])
		}
	}
	cert := ""
	if u.ClientCert {
		cert = u.Name // the certificate is the upstream's own
	}
	return ca + "\x00" + cert
}

// ClientCertificates gives the certificate an upstream's TLS handshake
// presents when its config says client_cert = true. The Credentials given
// to the forwarder may implement it; the keystore's do.
type ClientCertificates interface {
	ClientCertificate(upstream string) (*tls.Certificate, error)
}

// ProxyPasswords gives the password of a proxy whose URL in the config
// names a user ("http://user@host:port"); userHost is "user@host:port".
// The Credentials given to the forwarder may implement it; the keystore's do.
type ProxyPasswords interface {
	ProxyPassword(userHost string) (string, error)
}

// proxyFunc returns the proxy URL for a transport, with the password from
// passwords when the URL names a user.
func proxyFunc(pu *url.URL, passwords ProxyPasswords) func(*http.Request) (*url.URL, error) {
	if pu.User == nil {
		return http.ProxyURL(pu)
	}
	return func(*http.Request) (*url.URL, error) {
		if passwords == nil {
			return nil, fmt.Errorf("proxy %s names a user, and its password needs the keychain, which this build was not given", pu.Redacted())
		}
		pw, err := passwords.ProxyPassword(pu.User.Username() + "@" + pu.Host)
		if err != nil {
			return nil, fmt.Errorf("proxy %s: %w", pu.Redacted(), err)
		}
		withPassword := *pu
		withPassword.User = url.UserPassword(pu.User.Username(), pw)
		return &withPassword, nil
	}
}

// baseTransport builds an upstream's HTTP transport without its route:
// timeouts, roots and client certificate. secrets may give certificates.
// The wait for an answer to begin is not the transport's: it depends on
// the request (see roundTrip).
func baseTransport(u *Upstream, dir string, secrets Credentials) (*http.Transport, error) {
	t := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
	if u.CAFile != "" {
		pool, err := loadCAFile(resolvePath(dir, u.CAFile))
		if err != nil {
			return nil, err
		}
		t.TLSClientConfig.RootCAs = pool
	}
	if u.ClientCert {
		certs, _ := secrets.(ClientCertificates)
		if certs == nil {
			return nil, fmt.Errorf("client_cert = true needs the keychain, which this build was not given")
		}
		name := u.Name
		t.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return certs.ClientCertificate(name)
		}
	}
	return t, nil
}

// routeTransport builds the transport of a route that is not a pool:
// direct, system, or one proxy URL. It returns what the request log shows.
func routeTransport(u *Upstream, via, dir string, secrets Credentials) (*http.Transport, string, error) {
	t, err := baseTransport(u, dir, secrets)
	if err != nil {
		return nil, "", err
	}
	switch via {
	case ViaDirect:
		return t, ViaDirect, nil
	case ViaSystem:
		t.Proxy = systemProxyFunc()
		return t, ViaSystem, nil
	}
	pu, err := parseProxyURL(via)
	if err != nil {
		return nil, "", err
	}
	passwords, _ := secrets.(ProxyPasswords)
	t.Proxy = proxyFunc(pu, passwords)
	return t, "proxy " + pu.Redacted(), nil
}

// Inbound headers that never go upstream, in canonical form: every
// credential a client may send (the upstream gets its own), and what would
// reveal the client.
// Hop-by-hop headers and X-Forwarded-* are removed by ReverseProxy itself.
var strippedRequestHeaders = []string{
	"Authorization", "X-Api-Key", "X-Goog-Api-Key", "Api-Key", "Proxy-Authorization",
	"Forwarded", "X-Real-Ip", "Origin", "Cookie",
}

// applyAuth sets the upstream's own credential on an outbound request;
// body is what an hmac-sha256 upstream's signature covers.
func applyAuth(out *http.Request, u *Upstream, cred Credential, body []byte) {
	switch u.Auth {
	case AuthHMAC:
		ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
		out.Header.Set(u.HMACTimestampHeader, ts)
		out.Header.Set(u.HMACSignatureHeader, Sign(cred.Secret, body, ts))
	case AuthBearer:
		out.Header.Set("Authorization", "Bearer "+cred.Secret)
	case AuthXAPIKey:
		out.Header.Set("X-Api-Key", cred.Secret)
	case AuthGoogAPIKey:
		out.Header.Set("X-Goog-Api-Key", cred.Secret)
		out.URL.RawQuery = withoutKey(out.URL.RawQuery)
	}
}

// withoutKey drops the key a Gemini client put in the query string: it is
// not ours to pass on, to the upstream (which gets the keychain's key) or
// to any other.
func withoutKey(rawQuery string) string {
	if !strings.Contains(rawQuery, "key=") {
		return rawQuery
	}
	q, _ := url.ParseQuery(rawQuery)
	q.Del("key")
	return q.Encode()
}

// newReverseProxy is the forwarder's httputil.ReverseProxy. The request's
// state (upstream, body, record) travels in its context; the attempts
// transport chooses keys and upstreams.
func (f *Forwarder) newReverseProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Transport: attempts{f},
		Rewrite: func(pr *httputil.ProxyRequest) {
			st := stateFrom(pr.In.Context())
			pr.Out.URL = st.up.target(st.rest, st.query)
			pr.Out.Host = ""
			for _, h := range strippedRequestHeaders {
				delete(pr.Out.Header, h) // the names are in canonical form
			}
			// The answer must be read as text (usage, stream events), and
			// the loopback hop to the client gains nothing from compression.
			// Without the client's Accept-Encoding, the transport asks for
			// gzip itself and decodes it as it arrives, event by event.
			delete(pr.Out.Header, "Accept-Encoding")
		},
		ModifyResponse: func(res *http.Response) error {
			st := stateFrom(res.Request.Context())
			if res.StatusCode == http.StatusProxyAuthRequired && st.rec.Route != ViaDirect {
				return errProxyAuth // a plain-http upstream through a proxy that refused us
			}
			// The listener answers CORS itself; an upstream's own
			// Access-Control-* headers (OpenAI sends "*") must not open it.
			for k := range res.Header {
				if strings.HasPrefix(k, "Access-Control-") {
					delete(res.Header, k)
				}
			}
			watch(res, st)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			st := stateFrom(r.Context())
			var e *apiError
			if !errors.As(err, &e) {
				e = upstreamError(r.Context(), st.rec.Upstream, err)
			}
			st.rec.Error = e.Message
			if e.Status == StatusClientClosed {
				st.rec.Status = StatusClientClosed
				return
			}
			writeAPIError(w, e)
		},
		BufferPool: copyBuffers,
		ErrorLog:   slog.NewLogLogger(f.log.Handler(), slog.LevelDebug),
	}
}

// Sign is the signature of an hmac-sha256 upstream: the hex HMAC-SHA256,
// keyed with the secret, of the body bytes followed by the timestamp.
func Sign(secret string, body []byte, timestamp string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	m.Write([]byte(timestamp))
	return hex.EncodeToString(m.Sum(nil))
}

// copyBuffers lends the 32 KiB buffers that answers are copied through, so a
// request does not allocate its own.
var copyBuffers = &bufferPool{}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if buf, ok := b.p.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

func describeUpstreams(ups []*upstreamRT) string {
	var b strings.Builder
	for i, u := range ups {
		if i > 0 {
			b.WriteString("; ")
		}
		if len(u.cfg.Models) == 0 {
			fmt.Fprintf(&b, "%s: (only via /u/%s/)", u.cfg.Name, u.cfg.Name)
			continue
		}
		fmt.Fprintf(&b, "%s: %s", u.cfg.Name, strings.Join(u.cfg.Models, ", "))
	}
	return b.String()
}

// caFiles is what the config's transports read from files: the content of
// every ca_file, by tlsKey.
func caFiles(cfg *Config, dir string) string {
	var b strings.Builder
	for i := range cfg.Upstreams {
		if cfg.Upstreams[i].CAFile != "" {
			b.WriteString(tlsKey(&cfg.Upstreams[i], dir))
			b.WriteByte('\n')
		}
	}
	return b.String()
}
