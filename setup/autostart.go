package setup

import (
	"fmt"
	"html"
	"strings"
)

// Launch at login, per OS, without a library (none is served here): an
// XDG autostart entry on Linux and the BSDs (autostart_xdg.go), a
// LaunchAgent on macOS (autostart_darwin.go), the per-user Run key on
// Windows (autostart_windows.go). Each takes the program's path: the
// executable that is running, so an installed copy starts itself.

// HiddenFlag is the argument launch at login starts Gatehouse with: in the
// tray, its window closed (main's hiddenFlag).
const HiddenFlag = "--hidden"

// AutostartID names the entry on every OS.
const AutostartID = "io.github.gatehouse_app.gatehouse"

// desktopEntry is the XDG autostart file that starts exe.
func desktopEntry(exe string) string {
	return "[Desktop Entry]\n" +
		"Type=Application\n" +
		"Name=Gatehouse\n" +
		"Comment=Keeps your LLM API keys and forwards your tools' requests\n" +
		"Exec=" + desktopExecQuote(exe) + " " + HiddenFlag + "\n" +
		"Terminal=false\n" +
		"X-GNOME-Autostart-enabled=true\n"
}

// desktopExecQuote quotes a path for Exec= as the Desktop Entry
// specification says: in double quotes, with ", `, $ and \ escaped (and
// the backslashes doubled again for the string level), % as %%.
func desktopExecQuote(p string) string {
	var b strings.Builder
	for _, r := range p {
		switch r {
		case '"', '`', '$':
			b.WriteString(`\\`)
		case '\\':
			b.WriteString(`\\\`)
		case '%':
			b.WriteString("%")
		}
		b.WriteRune(r)
	}
	return `"` + b.String() + `"`
}

// launchAgent is the macOS LaunchAgent that starts exe at login.
func launchAgent(exe string) string {
	return fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>%s</string>
	<key>ProgramArguments</key>
	<array>
		<string>%s</string>
		<string>%s</string>
	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>ProcessType</key>
	<string>Interactive</string>
</dict>
</plist>
`, AutostartID, html.EscapeString(exe), HiddenFlag)
}
