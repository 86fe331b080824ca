package proxy

import (
	"encoding/binary"
	"math/bits"

	bolt "go.etcd.io/bbolt"
)

// keyFilter is a Bloom filter of the response cache's keys: those in the
// file and those waiting to be written. A lookup it rules out is a miss
// without a read transaction, which cost a miss several microseconds with
// every request a miss. It says "maybe" for every key it was given (no
// false negatives: a stored answer is always looked up), and for about
// 1% of the others while it holds no more keys than it was sized for.
// A key dropped from the file stays in it; the writer builds it again from
// the index once as many keys were added as it was built with room for.
type keyFilter struct {
	bits []uint64
	room int // keys it may take before it is built again
}

const (
	filterHashes  = 7       // with 10 bits a key: about 1% false positives
	filterMinKeys = 1 << 14 // the smallest filter: 32 KB
)

// newKeyFilter is sized for twice n keys (n is what it starts with).
func newKeyFilter(n int) *keyFilter {
	capacity := max(2*n, filterMinKeys)
	words := 1 << bits.Len(uint(capacity*10/64)) // a power of two, at least 10 bits a key
	return &keyFilter{bits: make([]uint64, words), room: capacity - n}
}

// positions calls f with the bits of key. Keys are SHA-256 sums, whose
// bytes are already uniform: two 64-bit words of the key give every
// position (double hashing), with no hash to compute. A shorter key has no
// positions, and has says "maybe" for it.
func (f *keyFilter) positions(key []byte, fn func(word int, bit uint64) bool) bool {
	if len(key) < 16 {
		return true
	}
	h1, h2 := binary.LittleEndian.Uint64(key), binary.LittleEndian.Uint64(key[8:])|1
	mask := uint64(len(f.bits)*64 - 1)
	for i := range uint64(filterHashes) {
		p := (h1 + i*h2) & mask
		if !fn(int(p>>6), 1<<(p&63)) {
			return false
		}
	}
	return true
}

// add puts a key in, which takes room.
func (f *keyFilter) add(key []byte) {
	f.set(key)
	f.room--
}

func (f *keyFilter) set(key []byte) {
	f.positions(key, func(w int, b uint64) bool { f.bits[w] |= b; return true })
}

// has says whether key may be in the cache.
func (f *keyFilter) has(key []byte) bool {
	return f.positions(key, func(w int, b uint64) bool { return f.bits[w]&b != 0 })
}

// buildKeyFilter makes a filter of the keys in the index.
func buildKeyFilter(tx *bolt.Tx) *keyFilter {
	index := tx.Bucket(bucketIndex)
	f := newKeyFilter(index.Stats().KeyN)
	_ = index.ForEach(func(k, _ []byte) error { f.set(k); return nil })
	return f
}
