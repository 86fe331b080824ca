package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The response cache, opt in per upstream (cache = "10m"): a POST to a
// generating endpoint (cacheablePaths) whose path, upstream, meaning
// headers (cacheKeyHeaders) and body (JSON compared canonically: key
// order and white space do not matter) match a stored answer gets that
// answer again without going upstream; a streamed answer is replayed byte for
// byte. Only 200 answers that completed normally are stored; a request
// with Cache-Control no-cache or no-store bypasses it. Entries expire
// after the upstream's duration, and the store is bounded in bytes
// (cache_max_mb) with least-recently-used eviction.
//
// It lives in one bbolt file (responses.db in the cache folder), chosen
// over a folder of files because it gives atomic updates of an entry and
// its LRU index together and one small file to delete; it survives a
// restart. It holds answers and their content type only: never a request
// header, so never a credential.

// DefaultCacheMaxMB bounds the response cache when cache_max_mb is not set.
const DefaultCacheMaxMB = 256

// maxCachedAnswer bounds one stored answer; a larger one is not stored.
const maxCachedAnswer = 16 << 20

var (
	bucketEntries = []byte("entries") // key → entry (encode)
	bucketUsed    = []byte("used")    // key → last use (8 bytes, big-endian ns)
	bucketLRU     = []byte("lru")     // last use + key → nothing, oldest first
)

// ResponseCache is the store.
type ResponseCache struct {
	db     *bolt.DB
	mu     sync.Mutex // one writer at a time; bbolt serialises too, this keeps size right
	stored int64      // bytes of the entries, counted at open and kept since
}

// cacheEntry is one stored answer.
type cacheEntry struct {
	ContentType      string    `json:"content_type"`
	Body             []byte    `json:"-"` // after the JSON, as it is
	Stored           time.Time `json:"stored"`
	PromptTokens     int64     `json:"prompt_tokens,omitempty"`
	CompletionTokens int64     `json:"completion_tokens,omitempty"`
}

// encode writes an entry as its fields in JSON (length first) and then
// the body as it is: no base64 for the bulk.
func (e *cacheEntry) encode() ([]byte, error) {
	meta, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	out := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(meta)+len(e.Body)), uint32(len(meta)))
	return append(append(out, meta...), e.Body...), nil
}

func decodeEntry(raw []byte) (*cacheEntry, error) {
	if len(raw) < 4 || int(binary.BigEndian.Uint32(raw)) > len(raw)-4 {
		return nil, fmt.Errorf("damaged cache entry")
	}
	n := int(binary.BigEndian.Uint32(raw))
	var e cacheEntry
	if err := json.Unmarshal(raw[4:4+n], &e); err != nil {
		return nil, err
	}
	e.Body = append([]byte(nil), raw[4+n:]...) // raw lives only in its transaction
	return &e, nil
}

// DefaultCachePath is responses.db in the user's cache folder.
func DefaultCachePath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "gatehouse", "responses.db"), nil
}

// OpenResponseCache opens (or makes) the store at path. Another process
// holding it (a second forwarder) makes this fail within a second.
func OpenResponseCache(path string) (*ResponseCache, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	// NoSync: a crash may lose the last answers stored, never corrupt the
	// file (bbolt's pages are copy-on-write); a cache can afford that.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		return nil, fmt.Errorf("open the response cache %s: %w", path, err)
	}
	c := &ResponseCache{db: db}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEntries, bucketUsed, bucketLRU} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketEntries).ForEach(func(_, v []byte) error { c.stored += int64(len(v)); return nil })
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return c, nil
}

// Close writes what is pending and closes the file.
func (c *ResponseCache) Close() error {
	if err := c.db.Sync(); err != nil {
		c.db.Close()
		return err
	}
	return c.db.Close()
}

// cacheKey names a request: method, path, upstream, the headers that
// change its meaning (cacheKeyHeaders), and its canonical body.
func cacheKey(method, path, upstream string, header http.Header, body []byte) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", method, path, upstream)
	for _, k := range cacheKeyHeaders {
		fmt.Fprintf(h, "%s=%s\x00", k, strings.Join(header.Values(k), ","))
	}
	h.Write(canonicalJSON(body))
	return h.Sum(nil)
}

// canonicalJSON renders a JSON body with sorted keys and no white space,
// numbers as written; a body that is not JSON is itself.
func canonicalJSON(body []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil || dec.More() {
		return body
	}
	out, err := json.Marshal(v) // maps are written with sorted keys
	if err != nil {
		return body
	}
	return out
}

func lruKey(t time.Time, key []byte) []byte {
	b := make([]byte, 8, 8+len(key))
	binary.BigEndian.PutUint64(b, uint64(t.UnixNano()))
	return append(b, key...)
}

// touch moves key to now in the LRU index.
func touch(tx *bolt.Tx, key []byte, now time.Time) error {
	used, lru := tx.Bucket(bucketUsed), tx.Bucket(bucketLRU)
	if old := used.Get(key); len(old) == 8 {
		_ = lru.Delete(append(append([]byte(nil), old...), key...))
	}
	stamp := lruKey(now, key)
	if err := used.Put(key, stamp[:8]); err != nil {
		return err
	}
	return lru.Put(stamp, nil)
}

// drop deletes an entry and its place in the LRU index.
func drop(tx *bolt.Tx, key []byte) error {
	used := tx.Bucket(bucketUsed)
	if old := used.Get(key); len(old) == 8 {
		_ = tx.Bucket(bucketLRU).Delete(append(append([]byte(nil), old...), key...))
	}
	_ = used.Delete(key)
	return tx.Bucket(bucketEntries).Delete(key)
}

// get returns the answer stored under key if it is younger than ttl, and
// marks it used (the entry itself is not rewritten). A miss only reads: it
// is on the way of every request to an upstream with a cache, and a write
// transaction writes to the file even when nothing changed.
func (c *ResponseCache) get(key []byte, ttl time.Duration, now time.Time) (*cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var e *cacheEntry
	size := -1
	_ = c.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketEntries).Get(key)
		if raw == nil {
			return nil
		}
		size = len(raw)
		if got, err := decodeEntry(raw); err == nil && now.Sub(got.Stored) < ttl {
			e = got
		}
		return nil
	})
	switch {
	case size < 0:
		return nil, false
	case e == nil: // damaged or expired
		if c.db.Update(func(tx *bolt.Tx) error { return drop(tx, key) }) == nil {
			c.stored -= int64(size)
		}
		return nil, false
	}
	_ = c.db.Update(func(tx *bolt.Tx) error { return touch(tx, key, now) })
	return e, true
}

// put stores an answer, then evicts the least recently used entries
// until the store holds at most maxBytes of them.
func (c *ResponseCache) put(key []byte, e *cacheEntry, now time.Time, maxBytes int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := e.encode()
	if err != nil {
		return err
	}
	var change int64 // to size, once the transaction is in
	err = c.db.Update(func(tx *bolt.Tx) error {
		entries := tx.Bucket(bucketEntries)
		change = int64(len(data)) - int64(len(entries.Get(key)))
		if err := entries.Put(key, data); err != nil {
			return err
		}
		if err := touch(tx, key, now); err != nil {
			return err
		}
		cur := tx.Bucket(bucketLRU).Cursor()
		for k, _ := cur.First(); k != nil && c.stored+change > maxBytes; k, _ = cur.First() {
			victim := append([]byte(nil), k[8:]...)
			change -= int64(len(entries.Get(victim)))
			if err := drop(tx, victim); err != nil {
				return err
			}
			_ = tx.Bucket(bucketLRU).Delete(k) // an index line without its entry
		}
		return nil
	})
	if err == nil {
		c.stored += change
	}
	return err
}

// lazyCache opens the store the first time an upstream with a cache is
// asked, so that a forwarder whose upstreams have none never makes the
// file (or holds its lock against another forwarder).
type lazyCache struct {
	path string
	once sync.Once
	c    *ResponseCache
}

func (l *lazyCache) get(log func(error)) *ResponseCache {
	l.once.Do(func() {
		c, err := OpenResponseCache(l.path)
		if err != nil {
			log(err)
			return
		}
		l.c = c
	})
	return l.c
}

func (l *lazyCache) close() error {
	l.once.Do(func() {}) // no opening from here on
	if l.c == nil {
		return nil
	}
	return l.c.Close()
}

// cacheablePaths are the ends of the paths whose answers are stored: the
// calls that generate from a model and change nothing upstream. Anything
// else (a job's state, a file, a create) always goes upstream.
var cacheablePaths = []string{"chat/completions", "completions", "responses", "messages", "embeddings",
	":generateContent", ":streamGenerateContent", ":embedContent", ":batchEmbedContents"}

// cacheable says whether a request may be answered from the cache: a POST
// to one of cacheablePaths that did not ask to bypass it.
func cacheable(method, rest string, h http.Header) bool {
	if method != http.MethodPost || bypassCache(h) {
		return false
	}
	for _, p := range cacheablePaths {
		if rest == p || strings.HasSuffix(rest, "/"+p) || p[0] == ':' && strings.HasSuffix(rest, p) {
			return true
		}
	}
	return false
}

// cacheKeyHeaders change what a request means, so they are part of its key.
var cacheKeyHeaders = []string{"Anthropic-Version", "Anthropic-Beta", "Openai-Beta"}

// bypassCache says whether the client asked not to use a stored answer.
func bypassCache(h http.Header) bool {
	for _, v := range h.Values("Cache-Control") {
		v = strings.ToLower(v)
		if strings.Contains(v, "no-cache") || strings.Contains(v, "no-store") {
			return true
		}
	}
	return false
}

// CacheHeader tells the client whether its answer came from the cache.
const CacheHeader = "X-Gatehouse-Cache"

// cacheUse is a request's use of the cache: its key and, on a miss, the
// answer as it goes to the client.
type cacheUse struct {
	c   *ResponseCache
	key []byte
	max int64
	buf bytes.Buffer
	big bool // the answer is too large to store
}

func (u *cacheUse) write(p []byte) {
	if u.big {
		return
	}
	if u.buf.Len()+len(p) > maxCachedAnswer {
		u.big, u.buf = true, bytes.Buffer{}
		return
	}
	u.buf.Write(p)
}

// serveHit writes a stored answer to the client, events in order.
func serveHit(w *recorder, e *cacheEntry) {
	h := w.Header()
	h.Set("Content-Type", e.ContentType)
	h.Set(CacheHeader, "hit")
	h.Set("Content-Length", fmt.Sprint(len(e.Body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(e.Body)
}
