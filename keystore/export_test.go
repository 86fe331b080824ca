package keystore

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gatehouse-app/gatehouse/proxy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// failingStore fails the Set after the first n, once.
type failingStore struct {
	*Memory
	n int
}

func (f *failingStore) Set(name, value string) error {
	f.n--
	if f.n == -1 {
		return errors.New("disk full")
	}
	return f.Memory.Set(name, value)
}

func TestRestoreRollsBackOnFailure(t *testing.T) {
	ScryptWorkFactor = 10
	cfg, err := proxy.ParseConfig("c.toml", []byte("[[upstreams]]\nname = \"a\"\nbase_url = \"https://a.example\"\nkeys = [\"k1\", \"k2\", \"k3\"]\n"))
	require.NoError(t, err)
	src := Secrets{Store: NewMemory()}
	for _, l := range []string{"k1", "k2", "k3"} {
		require.NoError(t, src.Set(KeyName("a", l), "new-"+l))
	}
	var file bytes.Buffer
	found, missing, err := Export(&file, []byte("x"), cfg, src, "passphrase")
	require.NoError(t, err)
	assert.Len(t, found, 3)
	assert.Empty(t, missing)

	_, _, err = Export(&bytes.Buffer{}, nil, cfg, src, "short")
	assert.ErrorContains(t, err, "at least 8 characters")

	b, err := OpenExport(bytes.NewReader(file.Bytes()), "passphrase")
	require.NoError(t, err)
	mem := NewMemory()
	require.NoError(t, mem.Set(KeyName("a", "k1"), "old-k1"))
	_, _, _, err = b.Restore(Secrets{Store: &failingStore{Memory: mem, n: 2}})
	require.ErrorContains(t, err, "put back as it was")
	assert.Equal(t, map[string]string{KeyName("a", "k1"): "old-k1"}, mem.Values())
}
