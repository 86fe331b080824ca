package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
)

// cacheHarness is a forwarder with one cached upstream (key secretOpenAI)
// in front of mock, its store at path.
func cacheHarness(t *testing.T, upstream http.Handler, path string, maxMB int) *harness {
	t.Helper()
	srv := httptest.NewServer(upstream)
	t.Cleanup(srv.Close)
	cfg := &Config{CacheMaxMB: maxMB, Upstreams: []Upstream{{Name: "openai", BaseURL: srv.URL + "/v1", Models: []string{"gpt-*"}, KeyEnv: "TEST_OPENAI_KEY", Cache: "10m"}}}
	h := newHarness(t, cfg)
	lc := &lazyCache{path: path}
	h.fwd.cache.Store(lc)
	t.Cleanup(func() { require.NoError(t, lc.close()) })
	return h
}

func (h *harness) ask(t *testing.T, body string, header map[string]string) (*http.Response, string) {
	t.Helper()
	return h.do(t, http.MethodPost, "/v1/chat/completions", body, header)
}

func TestCacheAnswersARepeatedRequestOnce(t *testing.T) {
	mock := &mockllm.Server{}
	path := filepath.Join(t.TempDir(), "responses.db")
	h := cacheHarness(t, mock, path, 0)

	res, first := h.ask(t, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"temperature":0}`, nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "miss", res.Header.Get(CacheHeader))
	// The same request with its keys in another order and other spacing.
	res, again := h.ask(t, `{ "temperature": 0, "messages": [ {"content":"hi", "role":"user"} ], "model": "gpt-4o" }`, nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "hit", res.Header.Get(CacheHeader))
	assert.Equal(t, first, again)
	assert.Equal(t, 1, mock.Hits("/chat/completions"), "the upstream answered twice")
	rec := h.lastRecord(t, 2)
	assert.Equal(t, "hit", rec.Cache)
	assert.Positive(t, rec.PromptTokens, "a hit carries the tokens it saved")

	// Another body, or no-cache, goes upstream.
	res, _ = h.ask(t, `{"model":"gpt-4o","messages":[{"role":"user","content":"other"}]}`, nil)
	assert.Equal(t, "miss", res.Header.Get(CacheHeader))
	res, _ = h.ask(t, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"temperature":0}`, map[string]string{"Cache-Control": "no-cache"})
	assert.Empty(t, res.Header.Get(CacheHeader), "no-cache bypasses the cache")
	assert.Equal(t, 3, mock.Hits("/chat/completions"))

	// The usage book counts a hit as saved tokens, not spent ones.
	book, err := OpenUsageBook(filepath.Join(t.TempDir(), "usage.json"))
	require.NoError(t, err)
	book.Add(&rec)
	tot := book.Totals()
	require.Len(t, tot, 1)
	assert.EqualValues(t, 1, tot[0].CacheHits)
	assert.Equal(t, rec.PromptTokens+rec.CompletionTokens, tot[0].SavedTokens)
	assert.Zero(t, tot[0].PromptTokens)

	// Nothing secret in the store's file.
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assertNoSecrets(t, "the response cache", string(data))
}

func TestCacheReplaysAStreamByteForByte(t *testing.T) {
	mock := &mockllm.Server{}
	h := cacheHarness(t, mock, filepath.Join(t.TempDir(), "responses.db"), 0)
	body := `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	res, first := h.ask(t, body, nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Contains(t, first, "data: [DONE]")
	res, again := h.ask(t, body, nil)
	assert.Equal(t, "hit", res.Header.Get(CacheHeader))
	assert.Equal(t, "text/event-stream", strings.Split(res.Header.Get("Content-Type"), ";")[0])
	assert.Equal(t, first, again, "the events come back byte for byte, in order")
	assert.Equal(t, 1, mock.Hits("/chat/completions"))
}

func TestCacheNeverStoresACutStream(t *testing.T) {
	var calls atomic.Int32
	cut := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"half\"}}]}\n\n")
		w.(http.Flusher).Flush()
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = buf.Flush()
			conn.Close() // the stream breaks off
		}
	})
	h := cacheHarness(t, cut, filepath.Join(t.TempDir(), "responses.db"), 0)
	body := `{"model":"gpt-4o","stream":true,"messages":[]}`
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, h.url("/v1/chat/completions"), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, bufio.NewReader(res.Body))
			res.Body.Close()
		}
	}
	assert.EqualValues(t, 2, calls.Load(), "a cut stream was answered from the cache")
}

func TestCacheEvictsTheLeastRecentlyUsedAndSurvivesARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "responses.db")
	c, err := OpenResponseCache(path)
	require.NoError(t, err)
	now := time.Now()
	big := strings.Repeat("x", 300<<10)
	const bound = 1 << 20
	for i := range 6 {
		key := cacheKey("POST", "chat/completions?", "u", nil, []byte(fmt.Sprint(i)))
		require.NoError(t, c.put(key, &cacheEntry{ContentType: "application/json", Body: []byte(big), Stored: now}, now.Add(time.Duration(i)*time.Second), bound))
		c.flush() // as the writer does when it keeps up
		if i == 1 {
			// Entry 0 is used again: entry 1 is now the least recently used.
			_, ok := c.get(cacheKey("POST", "chat/completions?", "u", nil, []byte("0")), time.Hour, now.Add(1500*time.Millisecond))
			require.True(t, ok)
		}
	}
	// The same key stored again replaces its entry; the kept count of
	// bytes follows (it decides eviction without reading every entry).
	key5 := cacheKey("POST", "chat/completions?", "u", nil, []byte("5"))
	require.NoError(t, c.put(key5, &cacheEntry{ContentType: "application/json", Body: []byte(big[:100<<10]), Stored: now}, now.Add(6*time.Second), bound))
	c.flush()
	size, count := c.size()
	assert.LessOrEqual(t, size, int64(bound))
	assert.Equal(t, 3, count)
	assert.Equal(t, size, c.storedBytes())
	// A miss writes nothing to the file.
	stats := c.db.Stats()
	writes := stats.TxStats.GetWrite()
	_, ok := c.get(cacheKey("POST", "chat/completions?", "u", nil, []byte("absent")), time.Hour, now)
	assert.False(t, ok)
	stats = c.db.Stats()
	assert.Equal(t, writes, stats.TxStats.GetWrite(), "a miss wrote to the file")
	_, ok = c.get(cacheKey("POST", "chat/completions?", "u", nil, []byte("1")), time.Hour, now.Add(10*time.Second))
	assert.False(t, ok, "the least recently used entry stayed")
	require.NoError(t, c.Close())

	// A restart keeps what was stored; an expired entry is gone.
	c, err = OpenResponseCache(path)
	require.NoError(t, err)
	defer c.Close()
	_, ok = c.get(cacheKey("POST", "chat/completions?", "u", nil, []byte("5")), time.Hour, now.Add(10*time.Second))
	assert.True(t, ok, "an entry did not survive the restart")
	_, ok = c.get(cacheKey("POST", "chat/completions?", "u", nil, []byte("4")), time.Minute, now.Add(2*time.Minute))
	assert.False(t, ok, "an expired entry was served")
	c.flush()
	size, count = c.size()
	assert.Equal(t, size, c.storedBytes(), "counted again at open, less the expired entry dropped")
	assert.Equal(t, 2, count, "uses evict nothing")
	c.consistent(t)
}

// TestCacheWritesBehind: an answer stored is found at once, before the
// writer has written it; a batch that takes the file past its bound
// evicts the least recently used; Close writes what was still waiting.
func TestCacheWritesBehind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "responses.db")
	c, err := OpenResponseCache(path)
	require.NoError(t, err)
	now := time.Now()
	big := strings.Repeat("y", 300<<10)
	const bound = 1 << 20
	key := func(i int) requestKey { return cacheKey("POST", "chat/completions?", "u", nil, []byte(fmt.Sprint(i))) }
	for i := range 6 {
		at := now.Add(time.Duration(i) * time.Millisecond)
		require.NoError(t, c.put(key(i), &cacheEntry{ContentType: "application/json", Body: []byte(big), Stored: now}, at, bound))
		e, ok := c.get(key(i), time.Hour, at)
		require.True(t, ok, "an answer just stored was not found")
		assert.Len(t, e.Body, len(big))
		if i == 2 {
			c.flush() // the first three are in the file; the last three wait in memory
		}
	}
	require.NoError(t, c.Close())

	c, err = OpenResponseCache(path)
	require.NoError(t, err)
	defer c.Close()
	size, count := c.size()
	assert.LessOrEqual(t, size, int64(bound))
	assert.Equal(t, 3, count)
	_, ok := c.get(key(5), time.Hour, now)
	assert.True(t, ok, "the last answer, stored just before Close, was lost")
	c.consistent(t)
}

// TestCacheFreshAnswerAfterAnExpiredOne: a lookup that finds an expired
// entry marks it to be dropped; the fresh answer stored for the same
// request before the writer runs is kept, not dropped with it. After
// Close nothing more is stored, and a second Close is harmless.
func TestCacheFreshAnswerAfterAnExpiredOne(t *testing.T) {
	c, err := OpenResponseCache(filepath.Join(t.TempDir(), "responses.db"))
	require.NoError(t, err)
	now := time.Now()
	key := cacheKey("POST", "chat/completions?", "u", nil, []byte("q"))
	require.NoError(t, c.put(key, &cacheEntry{Body: []byte("old"), Stored: now}, now, 1<<20))
	c.flush()
	later := now.Add(2 * time.Minute)
	_, ok := c.get(key, time.Minute, later)
	require.False(t, ok, "an expired answer was served")
	require.NoError(t, c.put(key, &cacheEntry{Body: []byte("new"), Stored: later}, later, 1<<20))
	c.flush()
	e, ok := c.get(key, time.Minute, later)
	require.True(t, ok, "the fresh answer was dropped with the expired one")
	assert.Equal(t, "new", string(e.Body))
	c.consistent(t)

	require.NoError(t, c.Close())
	require.NoError(t, c.Close())
	other := cacheKey("POST", "chat/completions?", "u", nil, []byte("after"))
	require.NoError(t, c.put(other, &cacheEntry{Body: []byte("x"), Stored: later}, later, 1<<20))
	_, ok = c.get(other, time.Minute, later)
	assert.False(t, ok, "stored after Close")
}

// TestCacheFreshAnswerStoredDuringALookup: a lookup that finds an expired
// entry, while another request stores a fresh answer for the same key
// (waiting in memory, or already written), does not drop the fresh one.
func TestCacheFreshAnswerStoredDuringALookup(t *testing.T) {
	for _, written := range []bool{false, true} {
		t.Run(fmt.Sprintf("written=%v", written), func(t *testing.T) {
			c, err := OpenResponseCache(filepath.Join(t.TempDir(), "responses.db"))
			require.NoError(t, err)
			defer c.Close()
			now := time.Now()
			later := now.Add(2 * time.Minute)
			key := cacheKey("POST", "chat/completions?", "u", nil, []byte("q"))
			require.NoError(t, c.put(key, &cacheEntry{Body: []byte("old"), Stored: now}, now, 1<<20))
			c.flush()
			c.lookedUp = func() {
				c.lookedUp = nil
				require.NoError(t, c.put(key, &cacheEntry{Body: []byte("new"), Stored: later}, later, 1<<20))
				if written {
					c.flush()
				}
			}
			_, ok := c.get(key, time.Minute, later)
			require.False(t, ok, "an expired answer was served")
			c.flush()
			e, ok := c.get(key, time.Minute, later)
			require.True(t, ok, "the fresh answer was dropped with the expired one")
			assert.Equal(t, "new", string(e.Body))
			c.consistent(t)
		})
	}
}

// TestCacheHitWrittenDuringALookupIsMarkedUsed: an answer found waiting
// in memory and written to the file before its use is marked still has
// that use marked (its place in the LRU order).
func TestCacheHitWrittenDuringALookupIsMarkedUsed(t *testing.T) {
	c, err := OpenResponseCache(filepath.Join(t.TempDir(), "responses.db"))
	require.NoError(t, err)
	defer c.Close()
	now := time.Now()
	key := cacheKey("POST", "chat/completions?", "u", nil, []byte("q"))
	require.NoError(t, c.put(key, &cacheEntry{Body: []byte("a"), Stored: now}, now, 1<<20))
	c.lookedUp = func() { c.lookedUp = nil; c.flush() }
	later := now.Add(time.Second)
	_, ok := c.get(key, time.Minute, later)
	require.True(t, ok)
	c.mu.Lock()
	at, marked := c.used[key]
	c.mu.Unlock()
	assert.True(t, marked && at.Equal(later), "the use was not marked")
}

func (c *ResponseCache) storedBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stored
}

// size is the bytes the stored entries take, for the eviction test.
func (c *ResponseCache) size() (n int64, count int) {
	_ = c.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAnswers).ForEach(func(_, v []byte) error {
			n += int64(len(v))
			count++
			return nil
		})
	})
	return n, count
}

// TestCanonicalJSON: bodies that mean the same name the same entry, and
// bodies that differ, even only in how a number is written, do not.
func TestCanonicalJSON(t *testing.T) {
	key := func(body string) requestKey { return cacheKey("POST", "chat/completions?", "u", nil, []byte(body)) }
	same := [][2]string{
		{`{"b":1,"a":{"y":[1,2],"x":null}}`, " {\n \"a\" : { \"x\":null, \"y\":[ 1 , 2 ] } , \"b\":1 }\n"},
		{`{"s":"A/<é"}`, `{"s":"\u0041\/\u003c\u00e9"}`},
		{`{"s":"😀"}`, `{"s":"\ud83d\ude00"}`},
	}
	for _, c := range same {
		assert.Equal(t, key(c[0]), key(c[1]), "%s and %s", c[0], c[1])
	}
	differ := [][2]string{
		{`{"seed":12345678901234567890}`, `{"seed":12345678901234567891}`}, // equal as doubles
		{`{"t":1}`, `{"t":1.0}`},
		{`{"a":1,"a":2}`, `{"a":2,"a":1}`}, // a name twice: compared as sent
		{`{"a":1}`, `{"a":1}x`},
		{`{"s":"\ud800"}`, `{"s":"\ufffd"}`},
		{`{"a":1}`, `{"a":"1"}`},
	}
	for _, c := range differ {
		assert.NotEqual(t, key(c[0]), key(c[1]), "%s and %s", c[0], c[1])
	}
	assert.Equal(t, `{"a":{"x":null,"y":[1,2]},"b":1}`, string(canonicalJSON(nil, []byte(same[0][1]))))
	assert.Equal(t, `{"a":2,"a":1}`, string(canonicalJSON(nil, []byte(`{"a":2,"a":1}`))), "as sent")
	assert.Equal(t, "x", string(canonicalJSON([]byte("x"), nil)), "an empty body adds nothing")

	// Nesting deeper than the library's limit is taken as sent, not a crash.
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	assert.Equal(t, deep, string(canonicalJSON(nil, []byte(deep))))
}

// canonicalJSON appends body's canonical form to dst, as cacheKey does.
func canonicalJSON(dst, body []byte) []byte {
	return (&canonicalizer{out: dst}).appendJSON(body)
}

// TestCanonicalJSONByCopying: what clients send takes the one-pass path,
// and gives the bytes jsontext gives; what it cannot copy is left to
// jsontext.
func TestCanonicalJSONByCopying(t *testing.T) {
	copied := []string{
		`{"model":"gpt-4o","messages":[{"role":"user","content":"Say \"hi\"\n\tnow\u001f é 😀"}],"stream":true,"temperature":0.2,"max_tokens":1e3,"n":-0,"stop":null,"logprobs":false}`,
		" {\n \"b\" : [ 1 , { \"d\":{}, \"c\":[] } ] , \"a\":\"\" }\r\n",
		`[]`, `"x"`, `-1.5E+10`, `true`, `{"aa":1,"a":2,"b":{"z":1,"y":2,"x":[{"q":1,"p":2}]}}`,
	}
	for _, body := range copied {
		c := &canonicalizer{}
		require.True(t, c.appendFast([]byte(body)), "%s", body)
		want, err := jsontext.AppendFormat(nil, []byte(body), canonicalOptions...)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(c.out), "%s", body)
	}
	left := []string{
		`{"a":1,"a":2}`, `{"b":1,"a":2,"b":3}`, `{"\u0061":1}`, `{"é":1}`, `{"s":"\/"}`, `{"s":"\u0041"}`,
		`{"s":"\u000a"}`, `{"s":"\u001F"}`, `{"s":"\ud83d\ude00"}`, "{\"s\":\"\xff\"}", `01`, `1.`, `-`, `1e`, `[1,]`,
		`{"a":1,}`, `{"a" 1}`, `{a:1}`, `tru`, `nul`, `[1 2]`, `{"a":1}x`, ``, ` `, "{\"s\":\"a\tb\"}",
		strings.Repeat("[", maxFastDepth+1) + strings.Repeat("]", maxFastDepth+1),
	}
	for _, body := range left {
		assert.False(t, (&canonicalizer{}).appendFast([]byte(body)), "%s", body)
	}
}

// FuzzCanonicalJSON: the one-pass path writes what jsontext writes, a
// body's canonical form means what the body means (both decode to the
// same value), and is its own canonical form.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[1.0,"\u0041"]}`, `{"a":1,"a":2}`, `[{"z":{},"y":[]}]`, `"\ud83d\ude00"`, `1e400`, `{`,
		`{"s":"\u001f\b","n":-0.0e-0,"z":{"b":[true,false,null],"a":"é"}}`, `{"b":1,"a":2,"b":3}`} {
		f.Add([]byte(s))
	}
	decode := func(t *testing.T, b []byte) any {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		require.NoError(t, dec.Decode(&v), "%q", b)
		return v
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c := canonicalJSON(nil, body)
		want, _ := jsontext.AppendFormat(nil, body, canonicalOptions...)
		require.Equal(t, string(want), string(c), "%q", body)
		if bytes.Equal(c, body) {
			return
		}
		assert.Equal(t, decode(t, body), decode(t, c))
		assert.Equal(t, string(c), string(canonicalJSON(nil, c)))
	})
}

// TestCacheEmptiesAFileOfAnEarlierLayout: a store written when answers
// were kept under their request's key, or with the index in the file, is
// emptied at open, and works.
func TestCacheEmptiesAFileOfAnEarlierLayout(t *testing.T) {
	// The last: this layout, where an earlier version has run meanwhile.
	for _, layout := range [][]string{{"entries", "used", "lru"}, {"answers", "index", "lastuse"}, {"answers", "uses", "index", "lastuse"}} {
		t.Run(layout[0], func(t *testing.T) { testCacheEmptiesAnEarlierLayout(t, layout) })
	}
}

func testCacheEmptiesAnEarlierLayout(t *testing.T, layout []string) {
	path := filepath.Join(t.TempDir(), "responses.db")
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		for _, name := range layout {
			b, err := tx.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			if err := b.Put([]byte("k"), []byte("an old answer")); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, db.Close())

	c, err := OpenResponseCache(path)
	require.NoError(t, err)
	require.NoError(t, c.Notice, "emptied, not taken as damage")
	assert.Zero(t, c.storedBytes())
	_ = c.db.View(func(tx *bolt.Tx) error {
		for _, name := range oldBuckets {
			assert.Nil(t, tx.Bucket(name), "%s kept", name)
		}
		assert.Zero(t, tx.Bucket(bucketAnswers).Stats().KeyN, "an old answer kept")
		assert.Zero(t, tx.Bucket(bucketUses).Stats().KeyN, "an old line kept")
		return nil
	})
	key, now := cacheKey("POST", "chat/completions?", "u", nil, []byte("q")), time.Now()
	require.NoError(t, c.put(key, &cacheEntry{Body: []byte("new"), Stored: now}, now, 1<<20))
	require.NoError(t, c.Close())
	c, err = OpenResponseCache(path)
	require.NoError(t, err)
	defer c.Close()
	e, ok := c.get(key, time.Minute, now)
	require.True(t, ok)
	assert.Equal(t, "new", string(e.Body))
	assert.Equal(t, c.storedBytes(), func() int64 { n, _ := c.size(); return n }())
}

// consistent checks the file's two trees against each other and the
// index in memory: every LRU line names an answer and is its key's slot,
// and no answer is left over.
func (c *ResponseCache) consistent(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	require.NoError(t, c.db.View(func(tx *bolt.Tx) error {
		answers := tx.Bucket(bucketAnswers)
		n := 0
		_ = tx.Bucket(bucketUses).ForEach(func(line, v []byte) error {
			n++
			k, s, ok := parseLine(line, v)
			require.True(t, ok, "an LRU line of %d+%d bytes", len(line), len(v))
			assert.Equal(t, s, c.index[k], "an LRU line that is not its key's slot")
			assert.Len(t, answers.Get(v[:8]), int(s.size), "an LRU line without its answer")
			return nil
		})
		assert.Equal(t, n, answers.Stats().KeyN, "answers without an LRU line")
		assert.Len(t, c.index, n, "the index in memory holds keys the file does not")
		return nil
	}))
}

// TestCacheIndex: a lookup of a key never stored does not read the file;
// every stored key is found, after a restart too.
func TestCacheIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "responses.db")
	c, err := OpenResponseCache(path)
	require.NoError(t, err)
	now := time.Now()
	key := func(i int) requestKey { return cacheKey("POST", "chat/completions?", "u", nil, []byte(fmt.Sprint(i))) }
	for i := range 3000 {
		require.NoError(t, c.put(key(i), &cacheEntry{Body: []byte(fmt.Sprint(i)), Stored: now}, now.Add(time.Duration(i)), 1<<30))
		if i%1000 == 999 {
			c.flush()
		}
	}
	reads := func(from, to int) (n int) {
		before := c.db.Stats().TxN
		for i := from; i < to; i++ {
			e, ok := c.get(key(i), time.Hour, now)
			require.Equal(t, i < 3000, ok, "key %d", i)
			if ok {
				require.Equal(t, fmt.Sprint(i), string(e.Body))
			}
		}
		return c.db.Stats().TxN - before
	}
	assert.Zero(t, reads(1_000_000, 1_001_000), "absent keys read the file")
	assert.Equal(t, 3000, reads(0, 3000), "every stored key is read")
	require.NoError(t, c.Close())

	c, err = OpenResponseCache(path)
	require.NoError(t, err)
	defer c.Close()
	c.consistent(t)
	assert.Zero(t, reads(1_000_000, 1_001_000), "absent keys read the file after a restart")
	assert.Equal(t, 3000, reads(0, 3000))
	c.flush() // the uses
	c.consistent(t)
}

// TestCacheWritesWhenManyAnswersWait: answers are gathered for
// writeDelay, but once flushBytes of them wait they go to the file at
// once (with the delay an hour, nothing else can write them).
func TestCacheWritesWhenManyAnswersWait(t *testing.T) {
	c, err := OpenResponseCache(filepath.Join(t.TempDir(), "responses.db"))
	require.NoError(t, err)
	defer c.Close()
	c.delay = time.Hour
	now := time.Now()
	body := bytes.Repeat([]byte("x"), 1<<20)
	n := flushBytes / len(body)
	for i := range n {
		key := cacheKey("POST", "chat/completions?", "u", nil, []byte(fmt.Sprint(i)))
		require.NoError(t, c.put(key, &cacheEntry{Body: body, Stored: now}, now, 1<<30))
	}
	inFile := func() (keys int) {
		require.NoError(t, c.db.View(func(tx *bolt.Tx) error { keys = tx.Bucket(bucketUses).Stats().KeyN; return nil }))
		return keys
	}
	require.Eventually(t, func() bool { return inFile() == n }, 30*time.Second, 20*time.Millisecond,
		"%d answers of 1 MB waited, and none was written", n)
	c.mu.Lock()
	defer c.mu.Unlock()
	assert.Zero(t, c.gathered)
	assert.Empty(t, c.pending)
}

func TestCacheEntryRoundTrip(t *testing.T) {
	e := &cacheEntry{ContentType: "text/event-stream; charset=utf-8", Body: []byte("data: {}\n\n"),
		Stored: time.Unix(1764660000, 123456789), PromptTokens: 12, CompletionTokens: 1 << 40}
	raw, err := e.encode()
	require.NoError(t, err)
	got, err := decodeEntry(raw)
	require.NoError(t, err)
	assert.True(t, got.Stored.Equal(e.Stored))
	got.Stored = e.Stored
	assert.Equal(t, e, got)
	for _, bad := range [][]byte{nil, raw[:20], append([]byte{9}, raw[1:]...), raw[:30]} {
		_, err := decodeEntry(bad)
		assert.Error(t, err, "%q", bad)
	}
}

// TestCacheMovesADamagedFileAside: a file whose pages were overwritten
// (or that is not a store at all) is moved aside with a notice, and the
// cache starts empty instead of taking the program down.
func TestCacheMovesADamagedFileAside(t *testing.T) {
	for name, damage := range map[string]func(data []byte) []byte{
		"pages overwritten": func(data []byte) []byte {
			for i := 4 * 4096; i < len(data); i++ { // past the meta and freelist pages
				data[i] = 0xff
			}
			return data
		},
		"not a store": func([]byte) []byte { return []byte("some other file\n") },
		"the second half overwritten": func(data []byte) []byte {
			for i := len(data) / 2; i < len(data); i++ {
				data[i] = 0x5a
			}
			return data
		},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "responses.db")
			c, err := OpenResponseCache(path)
			require.NoError(t, err)
			now := time.Now()
			for i := range 200 {
				key := cacheKey("POST", "chat/completions?", "u", nil, []byte(fmt.Sprint(i)))
				require.NoError(t, c.put(key, &cacheEntry{Body: []byte(strings.Repeat("z", 500)), Stored: now}, now, 1<<30))
			}
			require.NoError(t, c.Close())
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(path, damage(data), 0o600))

			c, err = OpenResponseCache(path)
			require.NoError(t, err)
			defer c.Close()
			require.Error(t, c.Notice)
			assert.Contains(t, c.Notice.Error(), "damaged")
			assert.Contains(t, c.Notice.Error(), path+".damaged")
			assert.FileExists(t, path+".damaged")
			assert.Zero(t, c.storedBytes())
			key := cacheKey("POST", "chat/completions?", "u", nil, []byte("new"))
			require.NoError(t, c.put(key, &cacheEntry{Body: []byte("a"), Stored: now}, now, 1<<30))
			_, ok := c.get(key, time.Hour, now)
			assert.True(t, ok)
		})
	}
}

// TestCacheLinesThatCannotBe: the index is built from the LRU lines at
// open, so a line bbolt reads well but the writer cannot have written
// (another program, a damaged page) is taken as damage, and the file is
// moved aside: such a line could name another request's answer.
func TestCacheLinesThatCannotBe(t *testing.T) {
	line := func(at int64, key string) []byte {
		return lruLine(at, cacheKey("POST", "chat/completions?", "u", nil, []byte(key)))
	}
	for name, c := range map[string]struct {
		damage func(tx *bolt.Tx) error
		says   string
	}{
		"of the wrong size": {func(tx *bolt.Tx) error { return tx.Bucket(bucketUses).Put([]byte("short"), []byte("x")) }, "LRU line of 5+1 bytes"},
		"naming no answer yet": {func(tx *bolt.Tx) error {
			return tx.Bucket(bucketUses).Put(line(2, "b"), slot{seq: 99, size: 1}.lineValue())
		}, "answer 99 of 1"},
		"naming answer 0": {func(tx *bolt.Tx) error {
			return tx.Bucket(bucketUses).Put(line(2, "b"), slot{seq: 0, size: 1}.lineValue())
		}, "answer 0 of 1"},
		"a key twice": {func(tx *bolt.Tx) error {
			return tx.Bucket(bucketUses).Put(line(1, "a"), slot{seq: 1, size: 28}.lineValue())
		}, "a key twice"},
		"without the answers": {func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketAnswers) }, "answer 1 of 0"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "responses.db")
			cc, err := OpenResponseCache(path)
			require.NoError(t, err)
			now := time.Now()
			require.NoError(t, cc.put(cacheKey("POST", "chat/completions?", "u", nil, []byte("a")), &cacheEntry{Body: []byte("a"), Stored: now}, now, 1<<20))
			require.NoError(t, cc.Close())
			db, err := bolt.Open(path, 0o600, nil)
			require.NoError(t, err)
			require.NoError(t, db.Update(c.damage))
			require.NoError(t, db.Close())

			cc, err = OpenResponseCache(path)
			require.NoError(t, err)
			defer cc.Close()
			require.Error(t, cc.Notice)
			assert.Contains(t, cc.Notice.Error(), c.says)
			assert.FileExists(t, path+".damaged")
			assert.Zero(t, cc.storedBytes())
		})
	}
}

// TestCacheDamagedWhileOpen: pages damaged under a cache in use (a disk
// error, another program) end its use with one warning instead of taking
// the program down, and Close still returns.
func TestCacheDamagedWhileOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "responses.db")
	c, err := OpenResponseCache(path)
	require.NoError(t, err)
	var warnings []error
	c.warn = func(err error) { warnings = append(warnings, err) }
	now := time.Now()
	key := func(i int) requestKey { return cacheKey("POST", "chat/completions?", "u", nil, []byte(fmt.Sprint(i))) }
	for i := range 200 {
		require.NoError(t, c.put(key(i), &cacheEntry{Body: []byte(strings.Repeat("z", 500)), Stored: now}, now, 1<<30))
	}
	c.flush()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	info, err := f.Stat()
	require.NoError(t, err)
	_, err = f.WriteAt(bytes.Repeat([]byte{0xff}, int(info.Size())-4*4096), 4*4096)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	// The writer finds it first: one warning, from the guard alone.
	require.NoError(t, c.put(key(1000), &cacheEntry{Body: []byte("a"), Stored: now}, now, 1<<30))
	c.flush()
	require.Len(t, warnings, 1)
	assert.ErrorIs(t, warnings[0], errDamagedCache)
	for i := range 200 {
		_, ok := c.get(key(i), time.Hour, now)
		require.False(t, ok, "an answer read from a damaged page")
	}
	require.NoError(t, c.put(key(1001), &cacheEntry{Body: []byte("a"), Stored: now}, now, 1<<30))
	_, ok := c.get(key(1001), time.Hour, now)
	assert.False(t, ok, "stored after the damage was found")
	c.flush()
	assert.Len(t, warnings, 1)
	// An answer stored while the failing transaction ran waits in
	// pending. bbolt's locks may be held after its panic: neither its
	// batch nor Close may wait for them.
	c.mu.Lock()
	c.pending[key(2000)] = pendingPut{e: &cacheEntry{Body: []byte("a"), Stored: now}, at: now}
	c.mu.Unlock()
	closed := make(chan error)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("Close waited for bbolt's locks")
	}

	// Open reads only the lines, so the damage among the answers is
	// known from the mark the guard left: the next start moves the file
	// aside and begins again.
	assert.FileExists(t, path+damageMark)
	c, err = OpenResponseCache(path)
	require.NoError(t, err)
	defer c.Close()
	require.Error(t, c.Notice)
	assert.Contains(t, c.Notice.Error(), "found while an earlier run used it")
	assert.FileExists(t, path+".damaged")
	assert.NoFileExists(t, path+damageMark)
	require.NoError(t, c.put(key(1), &cacheEntry{Body: []byte("b"), Stored: now}, now, 1<<30))
	c.flush()
	e, ok := c.get(key(1), time.Hour, now)
	require.True(t, ok)
	assert.Equal(t, "b", string(e.Body))
}

// TestCacheBufferSizedFromContentLength: an answer's buffer is made at
// the length the upstream states, up to maxPresized, and a length that
// is not one is ignored.
func TestCacheBufferSizedFromContentLength(t *testing.T) {
	for _, c := range []struct {
		header string
		min    int
		max    int
	}{{"266", 266, 1024}, {"99999999999", maxPresized, maxPresized + 1024}, {"-5", 0, 0}, {"0", 0, 0}, {"", 0, 0}, {"1e9", 0, 0}} {
		u := &cacheUse{}
		u.expect(declaredLength(c.header))
		assert.GreaterOrEqual(t, u.buf.Cap(), c.min, "%q", c.header)
		assert.LessOrEqual(t, u.buf.Cap(), c.max, "%q", c.header)
	}
}
