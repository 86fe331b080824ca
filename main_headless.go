//go:build headless

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
)

const flavour = "headless"

// runDefault explains that this build has no desktop app: it is the static
// binary for servers and WSL, built with `-tags headless`.
func runDefault(_ context.Context, _ *slog.Logger, stderr io.Writer) error {
	fmt.Fprintln(stderr, "gatehouse: this is the headless build, without the desktop app; run `gatehouse serve`")
	fmt.Fprintln(stderr)
	usage(stderr)
	return errUsage
}
