//go:build !windows && !darwin

package setup

import (
	"os"
	"path/filepath"
)

// autostartFile is the XDG autostart entry: $XDG_CONFIG_HOME/autostart
// (~/.config/autostart), which GNOME, KDE, Xfce and others read at login.
func autostartFile(exe string) (path, text string, err error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", "", err
	}
	return filepath.Join(dir, "autostart", AutostartID+".desktop"), desktopEntry(exe), nil
}
