//go:build headless

package main

import "fmt"

const flavour = "headless"

// runDefault explains that this build has no desktop app: it is the static
// binary for servers and WSL, built with `-tags headless`.
func (c *cli) runDefault(bool) error {
	fmt.Fprintln(c.stderr, "gatehouse: this is the headless build, without the desktop app; run `gatehouse serve`")
	fmt.Fprintln(c.stderr)
	usage(c.stderr)
	return errUsage
}
