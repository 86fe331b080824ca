package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The response cache, opt in per upstream (cache = "10m"): a POST to a
// generating endpoint (cacheablePaths) whose path, upstream, meaning
// headers (cacheKeyHeaders) and body (JSON compared canonically: member
// order, white space and how strings are escaped do not matter; numbers
// are compared as written) match a stored answer gets that
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
//
// Both trees of the file are appended to: answers under a sequence
// number, and a line per answer in order of last use (the LRU order) that
// names the request's key, the answer's number and its size. The index
// from key to answer is kept in memory, built from those lines at open
// (80-130 bytes of memory an answer; the answers' own pages are not read).
// Kept in the file, that index took a random page for every answer stored
// (keys are hashes), so a batch rewrote most of its pages: with every
// request a miss, the writer spent 33 µs and 11.5 KB of garbage an answer
// (BenchmarkCacheWriter), and the process 1-2 page faults a request under
// wrk; a miss needed a Bloom filter to stay out of the file.

// DefaultCacheMaxMB bounds the response cache when cache_max_mb is not set.
const DefaultCacheMaxMB = 256

// maxCachedAnswer bounds one stored answer; a larger one is not stored.
const maxCachedAnswer = 16 << 20

var (
	bucketAnswers = []byte("answers") // sequence (8 bytes, big-endian) → entry (encode)
	bucketUses    = []byte("uses")    // last use (8 bytes, big-endian ns) + key → sequence (8) + the answer's size (4), oldest first
	// The buckets of earlier layouts (the first: key → entry, key → last
	// use, LRU lines; the second: the same answers, an index key →
	// sequence + last use, LRU lines without a value). A file that has
	// one, or lacks bucketUses, is emptied at open (it is a cache): an
	// earlier version that ran on this file meanwhile stored answers
	// without lines, which would never be evicted.
	oldBuckets = [][]byte{[]byte("entries"), []byte("used"), []byte("lru"), []byte("index"), []byte("lastuse")}
)

// requestKey names a request in the cache: cacheKey's SHA-256 sum.
type requestKey = [sha256.Size]byte

// slot is where an answer is in the file: its sequence number, its last
// use (Unix ns), which is also its LRU line's start, and its size.
type slot struct {
	seq  uint64
	at   int64
	size uint32
}

// lineValue is a slot's value in bucketUses.
func (s slot) lineValue() []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(make([]byte, 0, lineValueLen), s.seq), s.size)
}

const lineValueLen = 12

// parseLine reads a line of bucketUses and its value back into the key
// and its slot; ok is false for a line of another size.
func parseLine(line, v []byte) (k requestKey, s slot, ok bool) {
	if len(line) != 8+len(k) || len(v) != lineValueLen {
		return k, s, false
	}
	return requestKey(line[8:]), slot{seq: binary.BigEndian.Uint64(v), at: int64(binary.BigEndian.Uint64(line)), size: binary.BigEndian.Uint32(v[8:])}, true
}

// ResponseCache is the store.
//
// The file is written behind the requests: a write transaction took
// hundreds of microseconds here, and an answer to store, or a hit to mark
// used, waited for one before it went to the client. Stored answers and
// uses wait in memory, where lookups find them at once (a repeat right
// after is a hit), and one goroutine writes them in one transaction per
// batch; Close writes what is left.
type ResponseCache struct {
	db   *bolt.DB
	path string

	mu      sync.Mutex
	pending map[requestKey]pendingPut // stored, not yet being written
	writing map[requestKey]pendingPut // being written
	used    map[requestKey]time.Time  // uses to mark; a zero time drops the entry
	// index is what the file holds, as its last transaction left it. Only
	// the writer changes it (under mu, once a batch is in), so the writer
	// reads it without mu.
	index    map[requestKey]slot
	stored   int64       // bytes of the entries in the file, counted at open and kept since
	waiting  int64       // bytes of the answers in pending and writing
	gathered int64       // bytes of the answers in pending
	maxBytes int64       // the bound the latest put was given
	closed   bool        // Close has begun: nothing more is stored
	broken   bool        // the file turned out damaged: no more reads or writes
	warn     func(error) // a batch that could not be written

	write sync.Mutex    // one batch at a time
	kick  chan struct{} // something waits to be written
	full  chan struct{} // flushBytes wait: write them now
	delay time.Duration // writeDelay; longer in a test
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	err   error // Close's

	lookedUp func() // tests: runs between a lookup's read and its mark

	// Notice, when set, says what the open did that the user should know
	// (a damaged file moved aside).
	Notice error
}

type pendingPut struct {
	e  *cacheEntry
	at time.Time
}

// cacheEntry is one stored answer.
type cacheEntry struct {
	ContentType      string
	Body             []byte
	Stored           time.Time
	PromptTokens     int64
	CompletionTokens int64
}

// An entry in the file: its fields in fixed places (a version byte, the
// time stored in Unix nanoseconds, the two token counts, the content
// type's length in two bytes and the content type), then the body as it
// is. A JSON header took a few microseconds of the writer's time an
// answer.
const (
	entryVersion = 1
	entryHead    = 27 // the bytes before the content type
)

func (e *cacheEntry) encode() ([]byte, error) {
	if len(e.ContentType) > 0xffff {
		return nil, fmt.Errorf("content type of %d bytes", len(e.ContentType))
	}
	out := make([]byte, 0, entryHead+len(e.ContentType)+len(e.Body))
	out = append(out, entryVersion)
	out = binary.BigEndian.AppendUint64(out, uint64(e.Stored.UnixNano()))
	out = binary.BigEndian.AppendUint64(out, uint64(e.PromptTokens))
	out = binary.BigEndian.AppendUint64(out, uint64(e.CompletionTokens))
	out = binary.BigEndian.AppendUint16(out, uint16(len(e.ContentType)))
	return append(append(out, e.ContentType...), e.Body...), nil
}

func decodeEntry(raw []byte) (*cacheEntry, error) {
	if len(raw) < entryHead || raw[0] != entryVersion || entryHead+int(binary.BigEndian.Uint16(raw[25:])) > len(raw) {
		return nil, fmt.Errorf("damaged cache entry")
	}
	n := entryHead + int(binary.BigEndian.Uint16(raw[25:]))
	return &cacheEntry{
		Stored:           time.Unix(0, int64(binary.BigEndian.Uint64(raw[1:]))),
		PromptTokens:     int64(binary.BigEndian.Uint64(raw[9:])),
		CompletionTokens: int64(binary.BigEndian.Uint64(raw[17:])),
		ContentType:      string(raw[entryHead:n]),
		Body:             bytes.Clone(raw[n:]), // raw lives only in its transaction
	}, nil
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
// holding it (a second forwarder) makes this fail within a second. A
// damaged file is moved aside (path + ".damaged") and a new one begun:
// Notice says so.
func OpenResponseCache(path string) (*ResponseCache, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	var damage error
	if _, err := os.Stat(path + damageMark); err == nil {
		// Open reads only the lines: damage among the answers is found
		// by a lookup, which leaves this mark for the next start.
		damage = damaged(path, "found while an earlier run used it")
	} else {
		c, err := openResponseCache(path)
		if err == nil || !errors.Is(err, errDamagedCache) {
			return c, err
		}
		damage = err
	}
	aside := path + ".damaged"
	if err := os.Rename(path, aside); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w; moving it aside failed: %v", damage, err)
	}
	if err := os.Remove(path + damageMark); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w; removing %s failed: %v", damage, path+damageMark, err)
	}
	c, err := openResponseCache(path)
	if err != nil {
		return nil, err
	}
	c.Notice = fmt.Errorf("%w; it was moved to %s and the cache starts empty", damage, aside)
	return c, nil
}

// damageMark, beside the file, says that a run found it damaged.
const damageMark = ".bad"

var errDamagedCache = errors.New("the response cache file is damaged")

func damaged(path string, why any) error {
	return fmt.Errorf("%w: %s (%v)", errDamagedCache, path, why)
}

// openResponseCache opens the file and reads what the store keeps in
// memory (the bytes stored, the index). bbolt panics, or faults on
// its mapping, on some damaged pages; in this goroutine that is taken as
// a damaged file, not the end of the program.
func openResponseCache(path string) (c *ResponseCache, err error) {
	var db *bolt.DB
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			if db != nil {
				db.Close()
			} // else it panicked in bolt.Open, whose file stays open until the program ends
			c, err = nil, damaged(path, p)
		}
	}()
	// bbolt's own fsync per batch (about one a second, on the writer's
	// goroutine) keeps the file whole through a power loss, which its
	// copy-on-write pages alone do not when writes reach the disk out of
	// order; a freelist written each time spares a walk of the whole file
	// at every open.
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrVersionMismatch) {
		return nil, damaged(path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open the response cache %s: %w", path, err)
	}
	c = &ResponseCache{db: db, path: path, pending: map[requestKey]pendingPut{}, used: map[requestKey]time.Time{},
		index: map[requestKey]slot{}, delay: writeDelay, kick: make(chan struct{}, 1), full: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	err = db.Update(func(tx *bolt.Tx) error {
		stale := tx.Bucket(bucketUses) == nil
		for _, b := range oldBuckets {
			stale = stale || tx.Bucket(b) != nil
		}
		for _, b := range append(oldBuckets, bucketAnswers, bucketUses) {
			if stale && tx.Bucket(b) != nil {
				if err := tx.DeleteBucket(b); err != nil {
					return err
				}
			}
		}
		for _, b := range [][]byte{bucketAnswers, bucketUses} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		// Only the lines are read: the answers' pages are left on disk.
		// A line that cannot be one the writer wrote is damage: it could
		// name another request's answer.
		last := tx.Bucket(bucketAnswers).Sequence()
		return tx.Bucket(bucketUses).ForEach(func(line, v []byte) error {
			k, s, ok := parseLine(line, v)
			if !ok {
				return damaged(path, fmt.Sprintf("an LRU line of %d+%d bytes", len(line), len(v)))
			}
			if _, twice := c.index[k]; twice || s.seq == 0 || s.seq > last {
				return damaged(path, fmt.Sprintf("an LRU line names answer %d of %d, or a key twice", s.seq, last))
			}
			c.index[k] = s
			c.stored += int64(s.size)
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	go c.writer()
	return c, nil
}

// Close writes what is pending and closes the file; an answer stored
// after it begins is not kept.
func (c *ResponseCache) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.stop)
		<-c.done // the last batch is written, and synced as each is
		c.mu.Lock()
		broken := c.broken
		c.mu.Unlock()
		if broken {
			// A panic inside bbolt (one in a commit does) can leave its
			// locks held, and closing would wait for them for ever: the
			// file stays open until the program ends. The damage was
			// reported when it was found.
			return
		}
		c.err = c.db.Close()
	})
	return c.err
}

// lruLine is an answer's line in bucketUses.
func lruLine(at int64, key requestKey) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(key)), uint64(at)), key[:]...)
}

func seqBytes(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// get returns the answer stored under key if it is younger than ttl, and
// marks it used (the entry itself is not rewritten). It only reads the
// file, and only for a key it holds: a write transaction writes to it
// even when nothing changed.
func (c *ResponseCache) get(key requestKey, ttl time.Duration, now time.Time) (*cacheEntry, bool) {
	c.mu.Lock()
	held, seq := c.answerOf(key)
	broken := c.broken
	c.mu.Unlock()
	e := held
	if e == nil {
		if seq == 0 || broken {
			return nil, false // no read
		}
		ok := false
		_ = c.guard(func() error {
			return c.db.View(func(tx *bolt.Tx) error {
				raw := tx.Bucket(bucketAnswers).Get(seqBytes(seq))
				if ok = raw != nil; ok { // else evicted meanwhile
					e, _ = decodeEntry(raw)
				}
				return nil
			})
		})
		if !ok {
			return nil, false
		}
	}
	fresh := e != nil && now.Sub(e.Stored) < ttl
	if c.lookedUp != nil {
		c.lookedUp()
	}
	c.mu.Lock()
	// A use is marked on whatever answer the key has now (a newer one
	// used at once is harmless; the one read may have been written
	// meanwhile). A drop only while what was read is still the key's
	// answer: one stored meanwhile, by a request that missed at the same
	// time, is newer, and the drop would take it instead.
	if fresh {
		c.used[key] = now
	} else if held2, seq2 := c.answerOf(key); held2 == held && seq2 == seq {
		c.used[key] = time.Time{} // damaged or expired
	}
	c.mu.Unlock()
	c.signal()
	return e, fresh
}

// answerOf is the answer a lookup of key finds now (under mu): one
// waiting in memory, or else its slot's sequence number in the file (0:
// none).
func (c *ResponseCache) answerOf(key requestKey) (*cacheEntry, uint64) {
	if p, ok := c.pending[key]; ok {
		return p.e, 0
	}
	if p, ok := c.writing[key]; ok {
		return p.e, 0
	}
	return nil, c.index[key].seq
}

// put stores an answer; the least recently used entries are then evicted
// until they and their slots in the index take at most maxBytes.
// Answers wait in memory up to the store's own bound: when the writer
// falls that far behind, an answer is not stored.
func (c *ResponseCache) put(k requestKey, e *cacheEntry, now time.Time, maxBytes int64) error {
	c.mu.Lock()
	c.maxBytes = maxBytes // cache_max_mb, as the config says now
	if c.closed || c.broken || c.waiting+int64(len(e.Body)) > maxBytes {
		c.mu.Unlock()
		return nil
	}
	if old, ok := c.pending[k]; ok {
		c.waiting -= int64(len(old.e.Body))
		c.gathered -= int64(len(old.e.Body))
	}
	c.pending[k] = pendingPut{e: e, at: now}
	c.waiting += int64(len(e.Body))
	c.gathered += int64(len(e.Body))
	full := c.gathered >= flushBytes
	delete(c.used, k) // an expired entry's drop must not take the new answer
	c.mu.Unlock()
	c.signal()
	if full {
		nudge(c.full)
	}
	return nil
}

func (c *ResponseCache) signal() { nudge(c.kick) }

// nudge sends on a channel of one that may already hold a send.
func nudge(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// writeDelay gathers the answers of back-to-back requests into one
// transaction: one client's requests, one after another, stored one
// transaction each, kept a core busy with bbolt's page writes and a sync
// each. BenchmarkCacheWriter (50,000 answers stored, 3,000 a batch: a
// second at 3,000 misses a second) reads 15-17 µs of the writer and
// 6.3 KB of garbage per answer. With the index still in the file, five
// seconds read 8-17 µs worse at p50 by wrk than one (the answers waiting
// are that much more heap for each GC to mark); 100 ms instead of a
// second made no difference by wrk that 20 rounds could tell. A waiting
// answer is served from memory; a crash loses at most a second of the
// cache, a quit nothing.
const writeDelay = time.Second

// flushBytes of answers waiting are written at once, before writeDelay.
const flushBytes = 8 << 20

func (c *ResponseCache) writer() {
	defer close(c.done)
	for {
		select {
		case <-c.kick:
			c.gather()
			c.flush()
		case <-c.stop:
			c.flush()
			return
		}
	}
}

// gather waits for writeDelay, or until flushBytes of answers wait (a
// nudge left from the batch before does not count), or for Close.
func (c *ResponseCache) gather() {
	due := time.After(c.delay)
	for {
		select {
		case <-due:
			return
		case <-c.full:
			c.mu.Lock()
			full := c.gathered >= flushBytes
			c.mu.Unlock()
			if full {
				return
			}
		case <-c.stop:
			return
		}
	}
}

// flush writes the stored answers and uses that wait, in one transaction.
func (c *ResponseCache) flush() {
	c.write.Lock()
	defer c.write.Unlock()
	c.mu.Lock()
	if c.broken {
		// bbolt's locks may still be held by the transaction that
		// panicked: a write now would wait for ever, and Close with it.
		c.pending, c.used, c.waiting, c.gathered = map[requestKey]pendingPut{}, map[requestKey]time.Time{}, 0, 0
		c.mu.Unlock()
		return
	}
	batch, used, stored, maxBytes := c.pending, c.used, c.stored, c.maxBytes
	// The next batch is likely as large: its maps are made at that size,
	// not grown a request at a time.
	c.pending, c.used, c.writing = make(map[requestKey]pendingPut, len(batch)), make(map[requestKey]time.Time, len(used)), batch
	c.gathered = 0
	c.mu.Unlock()
	if len(batch) == 0 && len(used) == 0 {
		return
	}
	var change int64 // to stored, once the transaction is in
	var next map[requestKey]slot
	err := c.guard(func() error {
		return c.db.Update(func(tx *bolt.Tx) (err error) {
			change, next, err = writeBatch(tx, c.index, batch, used, stored, maxBytes)
			return err
		})
	})
	if err == nil {
		c.applyIndex(next)
	}
	var written int64
	for _, p := range batch {
		written += int64(len(p.e.Body))
	}
	c.mu.Lock()
	c.writing = nil
	c.waiting -= written
	if err == nil {
		c.stored += change
	}
	warn := c.warn
	c.mu.Unlock()
	if err != nil && !errors.Is(err, errDamagedCache) && warn != nil { // guard warned of damage
		warn(err)
	}
}

// applyIndex puts a written batch's slots into the index, indexChunk
// under the lock at a time: 16,000 at once (a second of misses at
// concurrency 32) held every lookup for 3-12 ms. Until the last, the
// batch's answers are still found in writing, and a slot not yet changed
// names an answer still in the file or one gone, which a lookup takes as
// a miss.
func (c *ResponseCache) applyIndex(next map[requestKey]slot) {
	n := 0
	c.mu.Lock()
	for k, s := range next {
		if s.seq == 0 {
			delete(c.index, k)
		} else {
			c.index[k] = s
		}
		if n++; n%indexChunk == 0 {
			c.mu.Unlock()
			goruntime.Gosched() // a lookup that waits takes the lock now
			c.mu.Lock()
		}
	}
	c.mu.Unlock()
}

const indexChunk = 256

// guard runs f, which reads or writes the file, and takes a panic or a
// memory fault in bbolt (a page damaged after the open, by a disk say) as
// the end of this file's use: the cache answers nothing more and stores
// nothing more until the next start (whose open moves a file it finds
// damaged aside), and Close leaves the file to the program's end.
func (c *ResponseCache) guard(f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = damaged(c.path, p)
			c.mu.Lock()
			first, warn := !c.broken, c.warn
			c.broken = true
			c.mu.Unlock()
			if !first {
				return
			}
			// The next start moves the file aside (OpenResponseCache).
			if merr := os.WriteFile(c.path+damageMark, nil, 0o600); merr != nil {
				err = fmt.Errorf("%w; marking it for the next start failed: %v", err, merr)
			}
			if warn != nil {
				warn(fmt.Errorf("%w; answers are not cached until the next start, which moves the file aside", err))
			}
		}
	}()
	return f()
}

// indexBytes is what an answer's slot in the index costs in memory (80-130
// bytes, by the map's fill), counted against the bound with the answer:
// cache_max_mb bounds the memory the cache keeps as well as its file,
// which matters with many small answers.
const indexBytes = 128

// writeBatch writes answers and uses in tx and evicts the least recently
// used entries while they and their slots take more than maxBytes. It
// returns the change in stored bytes and the index's changed slots (a
// zero seq: gone), for the caller to apply once tx is in; index is what
// the file held before. New answers and lines go to the end of their
// trees (whatever order the answers come in, their numbers grow); only a
// replaced answer, a use or an eviction takes a line out.
func writeBatch(tx *bolt.Tx, index map[requestKey]slot, batch map[requestKey]pendingPut, used map[requestKey]time.Time, stored, maxBytes int64) (change int64, next map[requestKey]slot, err error) {
	answers, uses := tx.Bucket(bucketAnswers), tx.Bucket(bucketUses)
	answers.FillPercent, uses.FillPercent = 1, 1 // appended to: full pages
	remove := func(s slot) error {
		change -= int64(s.size)
		return answers.Delete(seqBytes(s.seq))
	}
	var unlink [][]byte // the LRU lines of the file that go
	next = make(map[requestKey]slot, len(batch)+len(used))
	entries := int64(len(index)) // each costs indexBytes of memory, counted in the bound
	for k, p := range batch {
		data, err := p.e.encode()
		if err != nil {
			continue
		}
		if old, ok := index[k]; ok { // the answer this one replaces
			if err := remove(old); err != nil {
				return 0, nil, err
			}
			unlink = append(unlink, lruLine(old.at, k))
		} else {
			entries++
		}
		n, err := answers.NextSequence()
		if err != nil {
			return 0, nil, err
		}
		if err := answers.Put(seqBytes(n), data); err != nil {
			return 0, nil, err
		}
		change += int64(len(data))
		next[k] = slot{seq: n, at: p.at.UnixNano(), size: uint32(len(data))}
	}
	for k, at := range used { // after the answers: one may be used in the same batch
		s, ok := next[k]
		if !ok {
			if s, ok = index[k]; !ok {
				continue // gone meanwhile
			}
			unlink = append(unlink, lruLine(s.at, k))
		} else if s.seq == 0 {
			continue
		}
		if at.IsZero() { // damaged or expired
			if err := remove(s); err != nil {
				return 0, nil, err
			}
			next[k] = slot{}
			entries--
			continue
		}
		s.at = at.UnixNano()
		next[k] = s
	}
	slices.SortFunc(unlink, bytes.Compare)
	for _, line := range unlink {
		if err := uses.Delete(line); err != nil {
			return 0, nil, err
		}
	}
	link := make([][]byte, 0, len(next))
	for k, s := range next {
		if s.seq != 0 {
			link = append(link, lruLine(s.at, k))
		}
	}
	slices.SortFunc(link, bytes.Compare)
	for _, line := range link {
		if err := uses.Put(line, next[requestKey(line[8:])].lineValue()); err != nil {
			return 0, nil, err
		}
	}
	// Only answers stored grow the file: uses alone evict nothing (and
	// before the first put no bound is known). A line is always its key's
	// slot: a line replaced in this batch was taken out above.
	cur := uses.Cursor()
	for line, v := cur.First(); line != nil && len(batch) > 0 && stored+change+entries*indexBytes > maxBytes; line, v = cur.First() {
		if k, s, ok := parseLine(line, v); ok {
			if err := remove(s); err != nil {
				return 0, nil, err
			}
			next[k] = slot{}
			entries--
		}
		if err := uses.Delete(line); err != nil { // with its answer, or a line damaged since the open
			return 0, nil, err
		}
	}
	return change, next, nil
}

// lazyCache opens the store the first time an upstream with a cache is
// asked, so that a forwarder whose upstreams have none never makes the
// file (or holds its lock against another forwarder).
type lazyCache struct {
	path string
	once sync.Once
	c    *ResponseCache
}

func (l *lazyCache) get(logger *slog.Logger) *ResponseCache {
	l.once.Do(func() {
		log := func(err error) { logger.Warn("answers are not cached", "err", err) }
		c, err := OpenResponseCache(l.path)
		if err != nil {
			log(err)
			return
		}
		c.mu.Lock()
		c.warn = log
		c.mu.Unlock()
		if c.Notice != nil {
			log(c.Notice)
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
	key requestKey
	max int64
	buf bytes.Buffer
	big bool // the answer is too large to store
}

// expect sizes the buffer for an answer of known length (Content-Length):
// one allocation instead of one at each doubling. Not past maxPresized: a
// length is only what the upstream says, and a cut answer is not stored.
func (u *cacheUse) expect(n int64) {
	if n > 0 && u.buf.Cap() == 0 {
		u.buf.Grow(int(min(n, maxPresized)))
	}
}

const maxPresized = 256 << 10

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
