package main

import (
	"os"

	"golang.org/x/sys/windows"
)

// The Windows build is a GUI program (-H=windowsgui: no console window for
// the desktop app), so Windows gives it no console, and the commands —
// `gatehouse serve`, `gatehouse key add` — would print into nothing when
// started from cmd.exe or PowerShell. With a command, attach to the console
// of whoever started it, if there is one, and use it for whichever of
// stdin, stdout and stderr was not redirected. (cmd.exe does not wait for a
// GUI program: its prompt may come back before the output; PowerShell's
// `gatehouse … | Out-Host` waits.) Without a command, the desktop app
// starts as it is.
func init() {
	if len(os.Args) < 2 {
		return
	}
	const attachParentProcess = ^uintptr(0) // ATTACH_PARENT_PROCESS, (DWORD)-1
	attach := windows.NewLazySystemDLL("kernel32.dll").NewProc("AttachConsole")
	if ok, _, _ := attach.Call(attachParentProcess); ok == 0 {
		return // no console to attach to: started from Explorer, or by a program with pipes
	}
	reopen := func(which uint32, name string, flag int, f **os.File) {
		if h, err := windows.GetStdHandle(which); err == nil && h != 0 && h != windows.InvalidHandle {
			return // redirected to a file or a pipe: keep it
		}
		if c, err := os.OpenFile(name, flag, 0); err == nil {
			*f = c
		}
	}
	reopen(windows.STD_INPUT_HANDLE, "CONIN$", os.O_RDWR, &os.Stdin)
	reopen(windows.STD_OUTPUT_HANDLE, "CONOUT$", os.O_RDWR, &os.Stdout)
	reopen(windows.STD_ERROR_HANDLE, "CONOUT$", os.O_RDWR, &os.Stderr)
}
