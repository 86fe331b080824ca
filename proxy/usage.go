package proxy

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// UsageDays is how many days of token totals the usage book keeps.
const UsageDays = 30

// UsageTotal is one day's totals for an upstream and model.
type UsageTotal struct {
	Day              string `json:"day"` // YYYY-MM-DD, local time
	Upstream         string `json:"upstream"`
	Model            string `json:"model"`
	Requests         int64  `json:"requests"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
	// CacheHits were answered from the response cache; SavedTokens are
	// the tokens they would have cost (not counted above).
	CacheHits   int64 `json:"cache_hits,omitempty"`
	SavedTokens int64 `json:"saved_tokens,omitempty"`
}

// UsageBook keeps token totals per upstream, model and day for the last
// UsageDays days, in a small JSON file (usage.json in the user's cache
// folder), written atomically and compacted on every save.
type UsageBook struct {
	path  string
	mu    sync.Mutex
	rows  map[[3]string]*UsageTotal // day, upstream, model
	dirty bool
	today struct { // the last day named, so Add formats a date once a day
		y, d int
		m    time.Month
		name string
	}
}

// DefaultUsagePath is usage.json in the user's cache folder.
func DefaultUsagePath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "gatehouse", "usage.json"), nil
}

// OpenUsageBook reads the book at path; a missing file is an empty book.
// A damaged file is moved aside (usage.json.bad) and the book starts empty,
// since it only holds totals that are nice to have.
func OpenUsageBook(path string) (*UsageBook, error) {
	b := &UsageBook{path: path, rows: map[[3]string]*UsageTotal{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read usage: %w", err)
	}
	var file struct {
		Version int          `json:"version"`
		Totals  []UsageTotal `json:"totals"`
	}
	if err := json.Unmarshal(data, &file); err != nil || file.Version != 1 {
		_ = os.Rename(path, path+".bad")
		return b, fmt.Errorf("usage totals at %s were damaged; moved aside to %s.bad and starting afresh", path, path)
	}
	for _, t := range file.Totals {
		b.rows[[3]string{t.Day, t.Upstream, t.Model}] = &t
	}
	return b, nil
}

// Add counts a finished request.
func (b *UsageBook) Add(rec *Record) {
	if rec.Upstream == "" {
		return
	}
	local := rec.Start.Local()
	y, m, d := local.Date()
	b.mu.Lock()
	defer b.mu.Unlock()
	if day := &b.today; day.y != y || day.m != m || day.d != d || day.name == "" {
		day.y, day.m, day.d, day.name = y, m, d, local.Format(time.DateOnly)
	}
	key := [3]string{b.today.name, rec.Upstream, rec.Model}
	t := b.rows[key]
	if t == nil {
		t = &UsageTotal{Day: key[0], Upstream: key[1], Model: key[2]}
		b.rows[key] = t
	}
	t.Requests++
	if rec.Cache == "hit" {
		t.CacheHits++
		t.SavedTokens += rec.PromptTokens + rec.CompletionTokens
	} else {
		t.PromptTokens += rec.PromptTokens
		t.CompletionTokens += rec.CompletionTokens
	}
	b.dirty = true
}

// Totals lists the kept totals, newest day first.
func (b *UsageBook) Totals() []UsageTotal {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]UsageTotal, 0, len(b.rows))
	for _, t := range b.rows {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(x, y UsageTotal) int {
		return cmp.Or(cmp.Compare(y.Day, x.Day), cmp.Compare(x.Upstream, y.Upstream), cmp.Compare(x.Model, y.Model))
	})
	return out
}

// Save drops days older than UsageDays and writes the file atomically.
func (b *UsageBook) Save(now time.Time) error {
	oldest := now.AddDate(0, 0, -UsageDays+1).Format(time.DateOnly)
	b.mu.Lock()
	for k := range b.rows {
		if k[0] < oldest {
			delete(b.rows, k)
		}
	}
	b.dirty = false
	b.mu.Unlock()
	data, err := json.Marshal(struct {
		Version int          `json:"version"`
		Totals  []UsageTotal `json:"totals"`
	}{1, b.Totals()})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(b.path), 0o700); err != nil {
		return err
	}
	return writeAtomic(b.path, data)
}

// Run saves the book every minute when it changed, and once more when ctx
// is done.
func (b *UsageBook) Run(ctx context.Context, log func(error)) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := b.Save(time.Now()); err != nil {
				log(err)
			}
			return
		case <-t.C:
			b.mu.Lock()
			dirty := b.dirty
			b.mu.Unlock()
			if dirty {
				if err := b.Save(time.Now()); err != nil {
					log(err)
				}
			}
		}
	}
}
