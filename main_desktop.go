//go:build !headless

package main

const flavour = "desktop"

// runDefault starts the desktop app. The window and tray are not built yet,
// so for now it runs the forwarder, as `gatehouse serve` would.
func (c *cli) runDefault() error {
	return c.serve(nil)
}
