// Package testproxy runs real outbound proxies in-process for tests: an
// HTTP proxy (CONNECT tunnels and plain requests, optionally behind TLS)
// written on the standard library, and a SOCKS5 proxy from
// github.com/things-go/go-socks5 (which resolves names without DNS: see
// resolver). Each counts the connections it carried,
// so a test can tell which proxy a request went through, and can be
// stopped (dropping its open connections) and started again on the same
// address.
package testproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/things-go/go-socks5"
)

// Proxy is a running proxy.
type Proxy struct {
	URL  string // scheme://host:port, without credentials
	Addr string
	// Delay is added before each connection to a target, to make the
	// proxy slower than others.
	Delay atomic.Int64 // time.Duration
	// Resolve, if set, rewrites a target address before dialing, to give
	// test names such as "upstream.test" an address.
	Resolve func(addr string) string

	kind       string
	user, pass string
	tlsConfig  *tls.Config
	carried    atomic.Int64

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	done  chan struct{}
}

// HTTP starts an HTTP proxy; with user set it requires Basic credentials.
func HTTP(user, pass string) *Proxy { return start("http", user, pass, nil) }

// HTTPS starts an HTTP proxy that clients reach over TLS with cfg.
func HTTPS(cfg *tls.Config, user, pass string) *Proxy { return start("https", user, pass, cfg) }

// SOCKS5 starts a SOCKS5 proxy; with user set it requires that user name
// and password.
func SOCKS5(user, pass string) *Proxy { return start("socks5", user, pass, nil) }

func start(kind, user, pass string, cfg *tls.Config) *Proxy {
	p := &Proxy{kind: kind, user: user, pass: pass, tlsConfig: cfg}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	p.Addr = ln.Addr().String()
	p.URL = kind + "://" + p.Addr
	p.serve(ln)
	return p
}

// Carried counts the connections (tunnels or requests) the proxy made to
// a target.
func (p *Proxy) Carried() int64 { return p.carried.Load() }

// Stop closes the listener and every connection it carries.
func (p *Proxy) Stop() {
	p.mu.Lock()
	ln, done := p.ln, p.done
	p.ln = nil
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	if ln == nil {
		return
	}
	ln.Close()
	for c := range conns {
		c.Close()
	}
	<-done
}

// Restart listens again on the same address.
func (p *Proxy) Restart() error {
	ln, err := net.Listen("tcp", p.Addr)
	if err != nil {
		return err
	}
	p.serve(ln)
	return nil
}

func (p *Proxy) serve(ln net.Listener) {
	if p.tlsConfig != nil {
		ln = tls.NewListener(ln, p.tlsConfig)
	}
	tracked := &trackingListener{Listener: ln, p: p}
	done := make(chan struct{})
	p.mu.Lock()
	p.ln, p.conns, p.done = tracked, map[net.Conn]struct{}{}, done
	p.mu.Unlock()
	go func() {
		defer close(done)
		if p.kind == "socks5" {
			opts := []socks5.Option{socks5.WithDial(p.dial), socks5.WithResolver(resolver{p})}
			if p.user != "" {
				opts = append(opts, socks5.WithAuthMethods([]socks5.Authenticator{
					socks5.UserPassAuthenticator{Credentials: socks5.StaticCredentials{p.user: p.pass}},
				}))
			}
			_ = socks5.NewServer(opts...).Serve(tracked)
			return
		}
		_ = (&http.Server{Handler: http.HandlerFunc(p.serveHTTP)}).Serve(tracked)
	}()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

type trackingListener struct {
	net.Listener
	p *Proxy
}

func (l *trackingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.p.track(c) {
			return c, err
		}
	}
}

// resolver resolves the names a SOCKS5 client sends (socks5h) without
// DNS, so that tests stay on loopback: "localhost", IP literals, and what
// Resolve maps to one; any other name is one the proxy cannot resolve.
type resolver struct{ p *Proxy }

func (r resolver) Resolve(ctx context.Context, name string) (context.Context, net.IP, error) {
	addr := net.JoinHostPort(name, "0")
	if r.p.Resolve != nil {
		addr = r.p.Resolve(addr)
	}
	host, _, _ := net.SplitHostPort(addr)
	if host == "localhost" {
		return ctx, net.IPv4(127, 0, 0, 1), nil
	}
	if ip := net.ParseIP(host); ip != nil {
		return ctx, ip, nil
	}
	return ctx, nil, fmt.Errorf("lookup %s: no such host", name)
}

// dial makes the connection to the target and counts it.
func (p *Proxy) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if d := time.Duration(p.Delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if p.Resolve != nil {
		addr = p.Resolve(addr)
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if !p.track(c) {
		return nil, net.ErrClosed
	}
	p.carried.Add(1)
	return c, nil
}

func (p *Proxy) authorized(r *http.Request) bool {
	if p.user == "" {
		return true
	}
	scheme, cred, ok := strings.Cut(r.Header.Get("Proxy-Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(cred)
	return err == nil && string(raw) == p.user+":"+p.pass
}

func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.authorized(r) {
		w.Header().Set("Proxy-Authenticate", `Basic realm="testproxy"`)
		http.Error(w, "proxy authentication required", http.StatusProxyAuthRequired)
		return
	}
	if r.Method == http.MethodConnect {
		p.tunnel(w, r)
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.Header.Del("Proxy-Authorization")
	tr := &http.Transport{DialContext: p.dial}
	defer tr.CloseIdleConnections()
	res, err := tr.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer res.Body.Close()
	for k, v := range res.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(res.StatusCode)
	_, _ = io.Copy(flushWriter{w}, res.Body)
}

func (p *Proxy) tunnel(w http.ResponseWriter, r *http.Request) {
	dst, err := p.dial(r.Context(), "tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer dst.Close()
	src, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer src.Close()
	_, _ = src.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(dst, bufferedReader{rw.Reader, src})
		dst.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	_, _ = io.Copy(src, dst)
	src.Close()
	<-done
}

// bufferedReader reads what the server had already buffered, then the
// connection.
type bufferedReader struct {
	br *bufio.Reader
	c  net.Conn
}

func (b bufferedReader) Read(p []byte) (int, error) {
	if b.br.Buffered() > 0 {
		return b.br.Read(p)
	}
	return b.c.Read(p)
}

type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	http.NewResponseController(f.w).Flush()
	return n, err
}
