// Package assets holds Gatehouse's own icons, drawn for it: the app icon
// and the tray's three states, rendered from the SVG sources beside this
// file by render.sh (make icons).
package assets

import _ "embed"

var (
	//go:embed icon.png
	AppIcon []byte
	//go:embed tray-ok.png
	TrayOK []byte
	//go:embed tray-degraded.png
	TrayDegraded []byte
	//go:embed tray-paused.png
	TrayPaused []byte
	// TrayTemplate is the monochrome variant for the macOS menu bar.
	//go:embed tray-template.png
	TrayTemplate []byte
)
