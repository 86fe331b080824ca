// Package xvfb starts a private X server (Xvfb) for the programs that show
// the desktop app without a screen: make screenshot and make bench.
package xvfb

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Start runs Xvfb on a free display with a 1280×800 screen and returns the
// display (":N") and a function that stops it.
func Start() (string, func(), error) {
	if _, err := exec.LookPath("Xvfb"); err != nil {
		return "", nil, errors.New("Xvfb is not installed (apt-get install xvfb)")
	}
	r, w, err := os.Pipe()
	if err != nil {
		return "", nil, err
	}
	defer r.Close()
	// -displayfd: Xvfb picks a free display and writes its number once ready.
	cmd := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0", "1280x800x24", "-nolisten", "tcp")
	cmd.ExtraFiles = []*os.File{w}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return "", nil, err
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return "", nil, fmt.Errorf("Xvfb did not start: %w", err)
	}
	return ":" + strings.TrimSpace(line), func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }, nil
}
