package keystore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// chunkSize is how much of a large value goes into each entry; it leaves
// room below MaxEntry so that no chunk is ever refused.
const chunkSize = 2000

// chunkHeader starts the entry of a value stored in chunks:
// "gatehouse-chunks:v1:<count>:<sha256 of the whole value>". The chunks are
// the entries "<name>#1" … "<name>#<count>".
const chunkHeader = "gatehouse-chunks:v1:"

// Secrets stores values of any size in a Store, splitting large ones.
type Secrets struct {
	Store Store
}

// Get returns the value stored under name, joined from its chunks.
func (s Secrets) Get(name string) (string, error) {
	v, err := s.Store.Get(name)
	if err != nil {
		return "", err
	}
	count, sum, ok := parseHeader(v)
	if !ok {
		return v, nil
	}
	var b strings.Builder
	for i := 1; i <= count; i++ {
		part, err := s.Store.Get(chunkName(name, i))
		if err != nil {
			return "", fmt.Errorf("%s is incomplete in the keychain (part %d of %d: %w); store it again", name, i, count, err)
		}
		b.WriteString(part)
	}
	joined := b.String()
	if got := sha256.Sum256([]byte(joined)); hex.EncodeToString(got[:]) != sum {
		return "", fmt.Errorf("%s is damaged in the keychain (its parts do not match); store it again", name)
	}
	return joined, nil
}

// Set stores value under name. A value too large for one entry is written
// as chunks first and its header last, so that a reader never follows a
// header to chunks that are not there yet; chunks left from an older,
// longer value are removed.
func (s Secrets) Set(name, value string) error {
	oldCount := 0
	if old, err := s.Store.Get(name); err == nil {
		oldCount, _, _ = parseHeader(old)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	count := 0
	if len(value) > chunkSize || strings.HasPrefix(value, chunkHeader) {
		parts := split(value)
		for i, p := range parts {
			if err := s.Store.Set(chunkName(name, i+1), p); err != nil {
				return err
			}
		}
		count = len(parts)
		sum := sha256.Sum256([]byte(value))
		if err := s.Store.Set(name, chunkHeader+strconv.Itoa(count)+":"+hex.EncodeToString(sum[:])); err != nil {
			return err
		}
	} else if err := s.Store.Set(name, value); err != nil {
		return err
	}
	for i := count + 1; i <= oldCount; i++ {
		_ = s.Store.Delete(chunkName(name, i))
	}
	return nil
}

// Delete removes name and its chunks. Deleting what is not there returns
// ErrNotFound.
func (s Secrets) Delete(name string) error {
	v, err := s.Store.Get(name)
	if err != nil {
		return err
	}
	count, _, _ := parseHeader(v)
	if err := s.Store.Delete(name); err != nil {
		return err
	}
	for i := 1; i <= count; i++ {
		if err := s.Store.Delete(chunkName(name, i)); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

func chunkName(name string, i int) string { return name + "#" + strconv.Itoa(i) }

func parseHeader(v string) (count int, sum string, ok bool) {
	rest, found := strings.CutPrefix(v, chunkHeader)
	if !found {
		return 0, "", false
	}
	n, sum, found := strings.Cut(rest, ":")
	count, err := strconv.Atoi(n)
	if !found || err != nil || count < 1 || len(sum) != 64 {
		return 0, "", false
	}
	return count, sum, true
}

// split cuts value into parts of at most chunkSize bytes, never inside a
// UTF-8 sequence.
func split(value string) []string {
	var parts []string
	for len(value) > chunkSize {
		cut := chunkSize
		for cut > 0 && !utf8.RuneStart(value[cut]) {
			cut--
		}
		parts = append(parts, value[:cut])
		value = value[cut:]
	}
	return append(parts, value)
}

// Entry names. Each kind of secret has its own prefix.

// KeyName is the entry of an upstream's key (or HMAC secret) by label.
func KeyName(upstream, label string) string { return "key/" + upstream + "/" + label }

// CertName is the entry of an upstream's client certificate and key (PEM).
func CertName(upstream string) string { return "cert/" + upstream }

// ProxyName is the entry of a proxy's password; userHost is
// "user@host:port" as in the proxy URL.
func ProxyName(userHost string) string { return "proxy/" + userHost }
