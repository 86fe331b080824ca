// Package instance keeps the desktop app to one instance per user. The
// instance holds a lock file and listens on a Unix socket beside it, in a
// folder only the user can reach (the runtime folder, else the user config
// folder); a second start finds the lock taken, asks the socket to show the
// window and exits. The lock decides, so two starts at once never both win,
// and a crashed instance leaves nothing that stops the next. Nothing
// listens on a TCP port: no other user or host can reach it.
package instance

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// ErrRunning means another instance is running and was asked to show its
// window.
var ErrRunning = errors.New("gatehouse is already running")

// Instance is the running first instance.
type Instance struct {
	lock *os.File
	ln   net.Listener
	once sync.Once
	// Show receives a value each time another start asked for the window.
	Show <-chan struct{}
}

// errLocked means another process holds the lock.
var errLocked = errors.New("locked")

// DefaultSocket is where the socket lives: $XDG_RUNTIME_DIR (per user,
// private) when set, else the user config folder.
func DefaultSocket() (string, error) {
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if dir == "" {
		d, err := os.UserConfigDir()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(d, "gatehouse")
	}
	return filepath.Join(dir, "gatehouse.sock"), nil
}

const showMessage = "show\n"

// Acquire makes this process the instance, listening on path, or, when
// another instance holds the lock (path + ".lock"), asks it to show its
// window and returns ErrRunning.
func Acquire(path string) (*Instance, error) { return acquire(path, true) }

// AcquireQuiet is Acquire for a start that must not bring the running
// instance's window to the front (launch at login, --hidden): when
// another instance runs, it just returns ErrRunning.
func AcquireQuiet(path string) (*Instance, error) { return acquire(path, false) }

func acquire(path string, ask bool) (*Instance, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("single instance: %w", err)
	}
	lock, err := lockFile(path + ".lock")
	if errors.Is(err, errLocked) {
		// The instance may still be starting: give it a moment to listen.
		for i := 0; ask && i < 20; i++ {
			if askToShow(path) == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		return nil, ErrRunning
	}
	if err != nil {
		return nil, fmt.Errorf("single instance: %w", err)
	}
	// Holding the lock, any socket there is a dead instance's.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		lock.Close()
		return nil, fmt.Errorf("single instance: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("single instance: %w", err)
	}
	_ = os.Chmod(path, 0o600)
	show := make(chan struct{}, 1)
	in := &Instance{lock: lock, ln: ln, Show: show}
	go in.serve(show)
	return in, nil
}

func askToShow(path string) error {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(showMessage)); err != nil {
		return err
	}
	// Wait for the answer, so that the caller exits only once the running
	// instance has taken the request.
	_, err = bufio.NewReader(c).ReadString('\n')
	return err
}

func (in *Instance) serve(show chan struct{}) {
	for {
		c, err := in.ln.Accept()
		if err != nil {
			return // closed
		}
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if line, err := bufio.NewReader(c).ReadString('\n'); err == nil && line == showMessage {
			select {
			case show <- struct{}{}:
			default: // one pending request is enough
			}
			_, _ = c.Write([]byte("ok\n"))
		}
		c.Close()
	}
}

// Close stops listening, removes the socket and lets the lock go, so that
// a new start becomes the instance. Closing twice is fine.
func (in *Instance) Close() {
	in.once.Do(func() {
		_ = in.ln.Close()
		_ = in.lock.Close()
	})
}
