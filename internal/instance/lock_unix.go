//go:build unix

package instance

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on path without waiting; errLocked
// means another process holds it. The lock goes with the process, also
// when it crashes.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, err
	}
	return f, nil
}
