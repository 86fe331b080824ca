package instance

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSecondInstanceAsksTheFirstToShow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "gatehouse.sock")
	first, err := Acquire(path)
	require.NoError(t, err)
	defer first.Close()
	fi, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "the folder is the user's alone")

	// A quiet start (launch at login) leaves the running one as it is.
	_, err = AcquireQuiet(path)
	require.ErrorIs(t, err, ErrRunning)
	select {
	case <-first.Show:
		t.Fatal("a quiet second start asked the first to show its window")
	default:
	}

	_, err = Acquire(path)
	require.ErrorIs(t, err, ErrRunning)
	<-first.Show // the first instance was asked to show its window

	first.Close()
	again, err := Acquire(path)
	require.NoError(t, err, "after the first quits, a new start is the instance")
	again.Close()
}

func TestStaleSocketIsReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.sock")
	// A socket file nobody listens on, as a crashed instance leaves it.
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	require.NoError(t, ln.Close())
	_, err = os.Stat(path)
	require.NoError(t, err)

	in, err := Acquire(path)
	require.NoError(t, err)
	in.Close()
}

func TestTwoStartsAtOnceMakeOneInstance(t *testing.T) {
	for range 50 {
		path := filepath.Join(t.TempDir(), "gatehouse.sock")
		// A dead instance's socket, as a crash leaves it.
		ln, err := net.Listen("unix", path)
		require.NoError(t, err)
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		require.NoError(t, ln.Close())

		results := make(chan *Instance, 2)
		for range 2 {
			go func() {
				in, err := Acquire(path)
				if err != nil {
					assert.ErrorIs(t, err, ErrRunning)
				}
				results <- in
			}()
		}
		a, b := <-results, <-results
		won := 0
		for _, in := range []*Instance{a, b} {
			if in != nil {
				won++
				in.Close()
			}
		}
		require.Equal(t, 1, won, "exactly one start is the instance")
	}
}
