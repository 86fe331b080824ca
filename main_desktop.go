//go:build !headless

package main

import (
	"context"
	"io"
	"log/slog"
)

const flavour = "desktop"

// runDefault starts the desktop app. The window and tray are not built yet,
// so for now it runs the forwarder, as `gatehouse serve` would.
func runDefault(ctx context.Context, log *slog.Logger, stderr io.Writer) error {
	return serve(ctx, nil, log, stderr)
}
