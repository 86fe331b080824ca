//go:build darwin

package setup

import (
	"os"
	"path/filepath"
)

// autostartFile is a LaunchAgent in ~/Library/LaunchAgents, which launchd
// reads at login.
func autostartFile(exe string) (path, text string, err error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", "", err
	}
	return filepath.Join(home, "Library", "LaunchAgents", AutostartID+".plist"), launchAgent(exe), nil
}
