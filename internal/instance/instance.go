// Package instance keeps the desktop app to one instance per user. The
// first instance listens on a Unix socket in a folder only the user can
// reach (the runtime folder, else the user config folder); a second one
// finds it there, asks it to show its window and exits. Nothing listens on
// a TCP port: no other user or host can reach it.
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
	ln   net.Listener
	path string
	once sync.Once
	// Show receives a value each time another start asked for the window.
	Show <-chan struct{}
}

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

// Acquire makes this process the instance listening on path, or, when
// another instance answers there, asks it to show its window and returns
// ErrRunning. A socket left behind by an instance that died is replaced.
func Acquire(path string) (*Instance, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("single instance: %w", err)
	}
	for range 2 {
		ln, err := net.Listen("unix", path)
		if err == nil {
			_ = os.Chmod(path, 0o600)
			show := make(chan struct{}, 1)
			in := &Instance{ln: ln, path: path, Show: show}
			go in.serve(show)
			return in, nil
		}
		if askToShow(path) == nil {
			return nil, ErrRunning
		}
		// Nobody answers: a dead instance's socket. Remove it, try again.
		if rmErr := os.Remove(path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			return nil, fmt.Errorf("single instance: %w", err)
		}
	}
	return nil, fmt.Errorf("single instance: cannot listen on %s", path)
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

// Close stops listening and removes the socket.
func (in *Instance) Close() {
	in.once.Do(func() { _ = in.ln.Close() })
}
