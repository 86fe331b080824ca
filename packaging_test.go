//go:build !headless

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The packages' tests look at what make package-linux and make
// package-windows made: make test builds them first and names them in
// GATEHOUSE_DEB, GATEHOUSE_RPM, GATEHOUSE_TARBALL and GATEHOUSE_SETUP_EXE.

// fyneApp is what FyneApp.toml says about the app.
type fyneApp struct {
	Details struct {
		Icon, Name, ID, Version string
		Build                   int
	}
	Migrations map[string]bool
}

func readFyneApp(t *testing.T) fyneApp {
	t.Helper()
	data, err := os.ReadFile("FyneApp.toml")
	require.NoError(t, err)
	var f fyneApp
	require.NoError(t, toml.Unmarshal(data, &f))
	return f
}

// artefact returns the file the environment variable names; without it
// the test is skipped, except in CI, where make test always sets it.
func artefact(t *testing.T, env, target string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("looks at the packages")
	}
	path := os.Getenv(env)
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set: make test builds the package (make %s) and sets it", env, target)
		}
		t.Skipf("%s is not set: make test builds the package (make %s) and sets it", env, target)
	}
	_, err := os.Stat(path)
	require.NoError(t, err, "%s names a file that is not there; make %s builds it", env, target)
	return path
}

// buildSettings reads the build settings Go wrote into a binary of any
// platform (go version -m): -ldflags, -tags, CGO_ENABLED, GOOS...
func buildSettings(t *testing.T, bin string) map[string]string {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	require.NoError(t, err, string(out))
	settings := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s+build\s+(\S+)=(.*)$`).FindAllStringSubmatch(string(out), -1) {
		settings[m[1]] = strings.Trim(m[2], `"`)
	}
	return settings
}

// TestOnePlaceForTheAppsIdentity: FyneApp.toml, the code and the packaging
// files name the app alike, and the version is where the Makefile reads it.
func TestOnePlaceForTheAppsIdentity(t *testing.T) {
	f := readFyneApp(t)
	assert.Equal(t, "Gatehouse", f.Details.Name)
	assert.Equal(t, appID, f.Details.ID, "main_desktop.go's appID")
	assert.Regexp(t, `^\d+\.\d+\.\d+$`, f.Details.Version)
	assert.Positive(t, f.Details.Build)
	assert.True(t, f.Migrations["fyneDo"], "[Migrations] fyneDo = true")
	icon, err := os.ReadFile(f.Details.Icon)
	require.NoError(t, err)
	embedded, err := os.ReadFile("assets/icon.png")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(icon, embedded), "the packages' icon is the one the app shows")

	desktop, err := os.ReadFile(filepath.Join("packaging", "linux", appID+".desktop"))
	require.NoError(t, err, "the .desktop file is named after the app ID")
	assert.Contains(t, string(desktop), "\nIcon="+appID+"\n")
	assert.Contains(t, string(desktop), "\nExec=gatehouse\n")
	metainfo, err := os.ReadFile(filepath.Join("packaging", "linux", appID+".metainfo.xml.in"))
	require.NoError(t, err)
	assert.Contains(t, string(metainfo), "<id>"+appID+"</id>")
	assert.Contains(t, string(metainfo), `<launchable type="desktop-id">`+appID+".desktop</launchable>")
	nsi, err := os.ReadFile(filepath.Join("packaging", "windows", "gatehouse.nsi"))
	require.NoError(t, err)
	assert.Contains(t, string(nsi), `!define APP_ID "`+appID+`"`, "the uninstaller removes Fyne's preferences folder of this ID")

	if _, err := exec.LookPath("make"); err == nil {
		// Without make's own variables: make test VERSION=… passes them on.
		make := exec.Command("make", "-s", "-n", "--no-print-directory", "package-linux")
		for _, e := range os.Environ() {
			if name, _, _ := strings.Cut(e, "="); !slices.Contains([]string{"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VERSION", "APP_BUILD"}, name) {
				make.Env = append(make.Env, e)
			}
		}
		out, err := make.Output()
		require.NoError(t, err)
		assert.Contains(t, string(out), " VERSION="+f.Details.Version+" ", "the Makefile reads the version from FyneApp.toml")
		assert.Contains(t, string(out), " APP_BUILD="+strconv.Itoa(f.Details.Build)+" ", "and the build number")
	}
}

// packageVersion is the version and build number the packages were made
// with: FyneApp.toml's, unless make was given others (make test passes
// them on in GATEHOUSE_VERSION and GATEHOUSE_APP_BUILD).
func packageVersion(t *testing.T) (string, int) {
	f := readFyneApp(t)
	version, build := f.Details.Version, f.Details.Build
	if v := os.Getenv("GATEHOUSE_VERSION"); v != "" {
		version = v
	}
	if b := os.Getenv("GATEHOUSE_APP_BUILD"); b != "" {
		n, err := strconv.Atoi(b)
		require.NoError(t, err)
		build = n
	}
	return version, build
}
