package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/gatehouse-app/gatehouse/internal/testpki"
)

// An answer of known length is settled and sent to the client at its
// last byte (recorder.Write); these tests hold that to upstreams over
// HTTP/1 and HTTP/2.

const usageAnswer = `{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":100,"completion_tokens":800}}`

// writeUsageAnswer writes usageAnswer with its length.
func writeUsageAnswer(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(usageAnswer)))
	io.WriteString(w, usageAnswer)
}

// tlsUpstream is a TLS upstream (HTTP/2 when h2) answering with handler;
// it returns the server, its CA's file and a count of its connections.
func tlsUpstream(t *testing.T, h2 bool, handler http.HandlerFunc) (*httptest.Server, string, *atomic.Int64) {
	var conns atomic.Int64
	up := httptest.NewUnstartedServer(handler)
	ca := testpki.NewCA("Upstream CA")
	issued := ca.Server()
	cert, err := tls.X509KeyPair(issued.CertPEM, issued.KeyPEM)
	require.NoError(t, err)
	up.EnableHTTP2 = h2
	up.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.StartTLS()
	t.Cleanup(up.Close)
	caPath := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caPath, ca.PEM, 0o600))
	return up, caPath, &conns
}

// TestPlainAnswerOverHTTP2EndsAtItsLength: over HTTP/2 (every TLS
// provider) the end of an answer is told in a read after its last byte,
// and may come later still. The answer's length is its end: its usage is
// read then, so the record, the pacing's correction and a cached copy all
// carry the tokens, and a client that hangs up once it has the answer is
// not taken for one that left early.
func TestPlainAnswerOverHTTP2EndsAtItsLength(t *testing.T) {
	var calls, proto atomic.Int64
	up, caPath, _ := tlsUpstream(t, true, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		proto.Store(int64(r.ProtoMajor))
		writeUsageAnswer(w)
		w.(http.Flusher).Flush()
		time.Sleep(300 * time.Millisecond) // the stream ends after the last byte
	})
	h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "up", BaseURL: up.URL + "/v1", Models: []string{"m"}, Auth: AuthNone,
		CAFile: caPath, Cache: "10m", TokensPerMinute: 1000, QueueTimeout: "100ms"}}})
	lc := &lazyCache{path: filepath.Join(t.TempDir(), "responses.db")}
	h.fwd.cache.Store(lc)
	t.Cleanup(func() { require.NoError(t, lc.close()) })
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	ask := func(body string) (int, string) {
		res, err := client.Post(h.url("/v1/chat/completions"), "application/json", strings.NewReader(body))
		require.NoError(t, err)
		out, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		res.Body.Close() // hangs up at once
		return res.StatusCode, string(out)
	}

	status, out := ask(`{"model":"m","max_tokens":10}`)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, usageAnswer, out)
	rec := h.lastRecord(t, 1)
	assert.Equal(t, int64(2), proto.Load(), "the upstream was not reached over HTTP/2")
	assert.Equal(t, http.StatusOK, rec.Status)
	assert.Empty(t, rec.Error)
	assert.Equal(t, int64(100), rec.PromptTokens)
	assert.Equal(t, int64(800), rec.CompletionTokens)

	status, _ = ask(`{"model":"m","max_tokens":10}`)
	require.Equal(t, http.StatusOK, status)
	rec = h.lastRecord(t, 2)
	assert.Equal(t, "hit", rec.Cache)
	assert.Equal(t, int64(800), rec.CompletionTokens, "the cached copy lost the usage")

	// 900 of the 1,000 tokens a minute were used: another request for
	// 200 waits past queue_timeout for room.
	status, _ = ask(`{"model":"m","max_tokens":200,"user":"other"}`)
	assert.Equal(t, http.StatusTooManyRequests, status, "the usage did not correct the pacing")
	assert.Equal(t, int64(1), calls.Load())
}

// TestClientGoneBeforeTheLastByte: a client that left while the answer
// waited in the transport's buffer is logged as one that left (499),
// though the answer's bytes were all written after it went.
func TestClientGoneBeforeTheLastByte(t *testing.T) {
	for _, h2 := range []bool{true, false} {
		t.Run(fmt.Sprint("h2=", h2), func(t *testing.T) {
			up, caPath, _ := tlsUpstream(t, h2, func(w http.ResponseWriter, r *http.Request) {
				writeUsageAnswer(w)
			})
			h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "up", BaseURL: up.URL + "/v1", Models: []string{"m"}, Auth: AuthNone, CAFile: caPath}}})
			answered := make(chan struct{})
			orig := h.fwd.rp.ModifyResponse
			h.fwd.rp.ModifyResponse = func(res *http.Response) error {
				close(answered)
				<-res.Request.Context().Done()    // the client has left
				time.Sleep(20 * time.Millisecond) // and the transport has seen it
				return orig(res)
			}
			ctx, cancel := context.WithCancel(context.Background())
			go func() { <-answered; cancel() }()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url("/v1/chat/completions"), strings.NewReader(`{"model":"m"}`))
			req.Header.Set("Content-Type", "application/json")
			_, err := http.DefaultClient.Do(req)
			require.Error(t, err, "the client left before any of the answer")
			rec := h.lastRecord(t, 1)
			assert.Equal(t, StatusClientClosed, rec.Status, "a client that never got the answer was logged as served")
		})
	}
}

// TestClientThatHangsUpOnceItHasTheAnswer: the answer goes to the client
// at its last byte; a client that closes its connection as soon as it has
// read it is not logged as one that left early (499), over HTTP/1 and
// HTTP/2 upstreams.
func TestClientThatHangsUpOnceItHasTheAnswer(t *testing.T) {
	for _, h2 := range []bool{true, false} {
		t.Run(fmt.Sprint("h2=", h2), func(t *testing.T) {
			up, caPath, _ := tlsUpstream(t, h2, func(w http.ResponseWriter, r *http.Request) {
				writeUsageAnswer(w)
				w.(http.Flusher).Flush()
				if h2 {
					select { // END_STREAM a little after the last byte
					case <-r.Context().Done():
					case <-time.After(20 * time.Millisecond):
					}
				}
			})
			h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "up", BaseURL: up.URL + "/v1", Models: []string{"m"}, Auth: AuthNone, CAFile: caPath}}})
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			const n = 100
			for range n {
				res, err := client.Post(h.url("/v1/chat/completions"), "application/json", strings.NewReader(`{"model":"m"}`))
				require.NoError(t, err)
				out, err := io.ReadAll(res.Body)
				require.NoError(t, err)
				res.Body.Close()
				require.Equal(t, usageAnswer, string(out))
			}
			h.lastRecord(t, n)
			bad := 0
			var first Record
			for _, rec := range h.reqlog.Records() {
				if rec.Status != http.StatusOK || rec.Error != "" {
					if bad == 0 {
						first = rec
					}
					bad++
				}
			}
			assert.Zero(t, bad, "%d of %d complete answers logged as failed; first: %d %q", bad, n, first.Status, first.Error)
		})
	}
}

// rawH2Upstream is a bare HTTP/2 server (TLS, ALPN h2) that answers every
// request with the given header fields and body, and ends the stream
// (an empty DATA frame with END_STREAM) endAfter later. Go's own server
// cannot send a Content-Length field twice.
func rawH2Upstream(t *testing.T, fields [][2]string, body []byte, endAfter time.Duration) (url, caPath string) {
	ca := testpki.NewCA("Upstream CA")
	issued := ca.Server()
	cert, err := tls.X509KeyPair(issued.CertPEM, issued.KeyPEM)
	require.NoError(t, err)
	caPath = filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caPath, ca.PEM, 0o600))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveRawH2(c, fields, body, endAfter)
		}
	}()
	return "https://" + ln.Addr().String(), caPath
}

func serveRawH2(c net.Conn, fields [][2]string, body []byte, endAfter time.Duration) {
	defer c.Close()
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil {
		return
	}
	fr := http2.NewFramer(c, c)
	var wmu = make(chan struct{}, 1)
	lock := func() { wmu <- struct{}{} }
	unlock := func() { <-wmu }
	lock()
	fr.WriteSettings()
	unlock()
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				lock()
				fr.WriteSettingsAck()
				unlock()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				lock()
				fr.WritePing(true, f.Data)
				unlock()
			}
		case *http2.HeadersFrame, *http2.DataFrame:
			if !f.Header().Flags.Has(http2.FlagDataEndStream) { // same bit for HEADERS
				continue
			}
			id := f.Header().StreamID
			go func() {
				var hb bytes.Buffer
				enc := hpack.NewEncoder(&hb)
				enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
				for _, kv := range fields {
					enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
				}
				lock()
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true})
				fr.WriteData(id, false, body)
				unlock()
				time.Sleep(endAfter)
				lock()
				fr.WriteData(id, true, nil)
				unlock()
			}()
		}
	}
}

// TestDuplicateContentLengthOverHTTP2: the HTTP/2 transport ignores a
// Content-Length field sent twice; the answer then has no length, and is
// settled at its end, after its usage is read (the cached copy keeps the
// tokens), not at the header's value.
func TestDuplicateContentLengthOverHTTP2(t *testing.T) {
	n := fmt.Sprint(len(usageAnswer))
	url, caPath := rawH2Upstream(t, [][2]string{{"content-type", "application/json"}, {"content-length", n}, {"content-length", n}}, []byte(usageAnswer), 200*time.Millisecond)
	h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "up", BaseURL: url + "/v1", Models: []string{"m"}, Auth: AuthNone, CAFile: caPath, Cache: "10m"}}})
	lc := &lazyCache{path: filepath.Join(t.TempDir(), "responses.db")}
	h.fwd.cache.Store(lc)
	t.Cleanup(func() { require.NoError(t, lc.close()) })

	res, body := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, usageAnswer, body)
	rec := h.lastRecord(t, 1)
	assert.Equal(t, int64(800), rec.CompletionTokens, "the record")
	h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
	rec = h.lastRecord(t, 2)
	assert.Equal(t, "hit", rec.Cache)
	assert.Equal(t, int64(800), rec.CompletionTokens, "the cached copy was stored before the usage was read")
}
