package setup

import (
	"encoding/xml"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAutostartEntryIsWrittenValidAndRemoved(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "darwin" {
		t.Skip("the XDG entry is for Linux and the BSDs; the Windows Run key and the LaunchAgent are written on their own systems")
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	on, err := Autostart()
	require.NoError(t, err)
	require.False(t, on)

	exe := "/opt/My Apps/gate$house/gatehouse"
	require.NoError(t, SetAutostart(true, exe))
	on, err = Autostart()
	require.NoError(t, err)
	require.True(t, on)
	path := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "autostart", AutostartID+".desktop")
	text, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(text), `Exec="/opt/My Apps/gate\\$house/gatehouse" --hidden`)
	out, err := exec.Command("desktop-file-validate", path).CombinedOutput()
	require.NoError(t, err, "desktop-file-validate (package desktop-file-utils): %s", out)
	require.Empty(t, strings.TrimSpace(string(out)), "desktop-file-validate has remarks")

	require.NoError(t, SetAutostart(false, exe))
	require.NoFileExists(t, path)
	require.NoError(t, SetAutostart(false, exe), "turning it off twice is not an error")
}

func TestLaunchAgentIsWellFormed(t *testing.T) {
	text := launchAgent("/Applications/Gatehouse & Co.app/Contents/MacOS/gatehouse")
	dec := xml.NewDecoder(strings.NewReader(text))
	dec.Strict = true
	var strs []string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		if cd, ok := tok.(xml.CharData); ok && strings.TrimSpace(string(cd)) != "" {
			strs = append(strs, string(cd))
		}
	}
	require.Equal(t, []string{"Label", AutostartID, "ProgramArguments", "/Applications/Gatehouse & Co.app/Contents/MacOS/gatehouse", "--hidden", "RunAtLoad", "ProcessType", "Interactive"}, strs)
}
