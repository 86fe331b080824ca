//go:build !headless

package main

import (
	"crypto/sha256"
	"debug/elf"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jezek/xgb/xproto"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
)

// packageFiles are the files the .deb and the .rpm install, besides the
// licence (Debian's copyright file; RPM's licenses folder).
func packageFiles() []string {
	files := []string{
		"/usr/bin/gatehouse",
		"/usr/share/applications/" + appID + ".desktop",
		"/usr/share/metainfo/" + appID + ".metainfo.xml",
		"/usr/share/icons/hicolor/scalable/apps/" + appID + ".svg",
	}
	for _, size := range []int{16, 22, 24, 32, 48, 64, 128, 256, 512} {
		files = append(files, fmt.Sprintf("/usr/share/icons/hicolor/%dx%d/apps/%s.png", size, size, appID))
	}
	slices.Sort(files)
	return files
}

// optionalLibraries are sonames in the binary that a desktop runs
// without: GLFW opens them only for what Fyne never asks for, or falls
// back when they are missing.
var optionalLibraries = map[string]string{
	"libGLESv1_CM.so.1": "OpenGL ES contexts only (Fyne's desktop driver asks for desktop OpenGL)",
	"libGLES_CM.so.1":   "OpenGL ES contexts only",
	"libGLESv2.so.2":    "OpenGL ES contexts only",
	"libOSMesa.so.6":    "off-screen OSMesa contexts only",
	"libOSMesa.so.8":    "off-screen OSMesa contexts only",
	"libvulkan.so.1":    "Vulkan surfaces only",
	"libGL.so":          "a fallback name of libGL.so.1",
	"libOpenGL.so.0":    "tried before libGL.so.1 for OpenGL on EGL; libGL.so.1 serves without it",
	"libdecor-0.so.0":   "Wayland window decorations; without it GLFW draws its own (the .deb recommends it)",
}

// libraries returns every shared library the binary may load: those it
// links (DT_NEEDED) and those it names to open itself (GLFW's dlopen of the
// X11, Wayland, xkbcommon and EGL libraries, which ldd does not show).
func libraries(t *testing.T, bin string) []string {
	t.Helper()
	f, err := elf.Open(bin)
	require.NoError(t, err)
	defer f.Close()
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	data, err := os.ReadFile(bin)
	require.NoError(t, err)
	for _, m := range regexp.MustCompile(`lib[A-Za-z0-9_+-]+\.so(\.[0-9]+)*\x00`).FindAll(data, -1) {
		libs = append(libs, strings.TrimSuffix(string(m), "\x00"))
	}
	slices.Sort(libs)
	libs = slices.Compact(libs)
	return slices.DeleteFunc(libs, func(l string) bool { _, ok := optionalLibraries[l]; return ok })
}

// libraryPackage finds the Debian package that ships a soname on this
// machine (the build machine has them all: they are the build's own).
func libraryPackage(t *testing.T, soname string) string {
	t.Helper()
	out, err := exec.Command("ldconfig", "-p").Output()
	require.NoError(t, err)
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 4 || fields[0] != soname || !strings.Contains(line, "x86-64") {
			continue
		}
		path, err := filepath.EvalSymlinks(fields[len(fields)-1])
		require.NoError(t, err)
		owner, err := exec.Command("dpkg-query", "-S", path).Output()
		if err != nil { // merged /usr: dpkg may know it by the /lib path
			owner, err = exec.Command("dpkg-query", "-S", strings.TrimPrefix(path, "/usr")).Output()
		}
		require.NoError(t, err, "no package owns %s", path)
		pkg, _, _ := strings.Cut(string(owner), ":")
		return pkg
	}
	t.Fatalf("%s is not installed on this machine", soname)
	return ""
}

// dependsClosure follows Depends and Pre-Depends from the given packages
// through every installed package.
func dependsClosure(t *testing.T, roots []string) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	queue := slices.Clone(roots)
	for len(queue) > 0 {
		pkg := queue[0]
		queue = queue[1:]
		if seen[pkg] {
			continue
		}
		seen[pkg] = true
		out, err := exec.Command("dpkg-query", "-W", "-f", "${Depends}, ${Pre-Depends}", pkg).Output()
		if err != nil {
			continue // a virtual or missing package: nothing installed to follow
		}
		queue = append(queue, parseDepends(string(out))...)
	}
	return seen
}

// parseDepends reads the package names of a Depends field, every
// alternative included, without versions or architectures.
func parseDepends(field string) []string {
	var names []string
	for _, dep := range strings.FieldsFunc(field, func(r rune) bool { return r == ',' || r == '|' }) {
		name, _, _ := strings.Cut(strings.TrimSpace(dep), " ")
		name, _, _ = strings.Cut(name, ":")
		if name != "" {
			names = append(names, name)
		}
	}
	return names
}

// debField reads a control field of a .deb.
func debField(t *testing.T, deb, field string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "-f", deb, field).Output()
	require.NoError(t, err)
	return strings.TrimSpace(string(out))
}

// debFiles lists the regular files of a .deb.
func debFiles(t *testing.T, deb string) []string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "-c", deb).Output()
	require.NoError(t, err)
	var files []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if strings.HasPrefix(fields[0], "-") {
			files = append(files, strings.TrimPrefix(fields[len(fields)-1], "."))
		}
	}
	slices.Sort(files)
	return files
}

func sha(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	require.NoError(t, err)
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestLinuxPackagesHoldTheApp looks inside the .deb, the .rpm and the
// tarball make package-linux made, without installing anything.
func TestLinuxPackagesHoldTheApp(t *testing.T) {
	deb := artefact(t, "GATEHOUSE_DEB", "package-linux")
	rpm := artefact(t, "GATEHOUSE_RPM", "package-linux")
	tarball := artefact(t, "GATEHOUSE_TARBALL", "package-linux")
	need(t, "dpkg-deb", "dpkg-query", "ldconfig", "rpm", "rpm2cpio", "cpio", "tar", "desktop-file-validate", "appstreamcli")
	version, build := packageVersion(t)

	assert.Equal(t, "gatehouse", debField(t, deb, "Package"))
	assert.Equal(t, version+"-"+strconv.Itoa(build), debField(t, deb, "Version"))
	assert.Equal(t, "amd64", debField(t, deb, "Architecture"))
	assert.Equal(t, sortedCopy(append(packageFiles(), "/usr/share/doc/gatehouse/copyright")), debFiles(t, deb))

	out, err := exec.Command("rpm", "-qp", "--qf", "%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{LICENSE}\n", rpm).Output()
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("gatehouse %s %d x86_64 MIT\n", version, build), string(out))
	out, err = exec.Command("rpm", "-qpl", rpm).Output()
	require.NoError(t, err)
	assert.Equal(t, sortedCopy(append(packageFiles(), "/usr/share/licenses/gatehouse/LICENSE")), sortedCopy(strings.Fields(string(out))))

	// One binary in all three: the release build, with the version.
	root := t.TempDir()
	require.NoError(t, exec.Command("dpkg-deb", "-x", deb, root).Run())
	bin := filepath.Join(root, "usr", "bin", "gatehouse")
	untar := t.TempDir()
	out, err = exec.Command("tar", "-xJf", tarball, "-C", untar).CombinedOutput()
	require.NoError(t, err, string(out))
	tarBins, _ := filepath.Glob(filepath.Join(untar, "gatehouse", "usr", "*", "bin", "gatehouse"))
	if len(tarBins) == 0 {
		tarBins, _ = filepath.Glob(filepath.Join(untar, "gatehouse", "usr", "bin", "gatehouse"))
	}
	require.Len(t, tarBins, 1, "the tarball holds usr/[local/]bin/gatehouse")
	assert.Equal(t, sha(t, bin), sha(t, tarBins[0]), "the tarball and the .deb hold the same binary")
	rpmBin := filepath.Join(t.TempDir(), "gatehouse")
	extract := exec.Command("sh", "-c", `rpm2cpio "$1" | cpio -i --quiet --to-stdout /usr/bin/gatehouse >"$2"`, "sh", rpm, rpmBin)
	out, err = extract.CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, sha(t, bin), sha(t, rpmBin), "the .rpm and the .deb hold the same binary")
	out, err = exec.Command(bin, "version").Output()
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(out), "gatehouse "+version+" (desktop,"), string(out))
	settings := buildSettings(t, bin)
	assert.Equal(t, "true", settings["-trimpath"])
	assert.Contains(t, settings["-tags"], "release")
	assert.Contains(t, settings["-tags"], "migrated_fynedo", "FyneApp.toml's [Migrations] fyneDo")

	// Every library the binary may load comes with a package it depends
	// on: Debian by package name, RPM by soname.
	libs := libraries(t, bin)
	for _, want := range []string{"libGL.so.1", "libX11.so.6", "libwayland-client.so.0", "libxkbcommon.so.0", "libc.so.6"} {
		require.Contains(t, libs, want, "the binary's libraries, as found by this test")
	}
	closure := dependsClosure(t, parseDepends(debField(t, deb, "Depends")))
	var rpmWant []string
	t.Logf("libraries the binary loads: %s", strings.Join(libs, " "))
	for _, lib := range libs {
		pkg := libraryPackage(t, lib)
		assert.True(t, closure[pkg], "%s (from %s) is not among the .deb's dependencies", lib, pkg)
		rpmWant = append(rpmWant, lib+"()(64bit)")
	}
	out, err = exec.Command("rpm", "-qpR", rpm).Output()
	require.NoError(t, err)
	var rpmRequires []string
	for _, r := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !strings.HasPrefix(r, "rpmlib(") { // what rpm itself adds
			rpmRequires = append(rpmRequires, strings.TrimSpace(r))
		}
	}
	assert.Equal(t, sortedCopy(rpmWant), sortedCopy(rpmRequires), "the .rpm requires exactly the binary's libraries")

	// What menus and software centres read is valid, in all three.
	tarDesktop, _ := filepath.Glob(filepath.Join(untar, "gatehouse", "usr", "*", "applications", appID+".desktop"))
	tarDesktop2, _ := filepath.Glob(filepath.Join(untar, "gatehouse", "usr", "*", "share", "applications", appID+".desktop"))
	tarDesktop = append(tarDesktop, tarDesktop2...)
	require.NotEmpty(t, tarDesktop, "the tarball's .desktop file")
	for _, f := range append(tarDesktop, filepath.Join(root, "usr", "share", "applications", appID+".desktop")) {
		out, err := exec.Command("desktop-file-validate", f).CombinedOutput()
		assert.NoError(t, err, "%s: %s", f, out)
	}
	metainfo := filepath.Join(root, "usr", "share", "metainfo", appID+".metainfo.xml")
	out, err = exec.Command("appstreamcli", "validate", "--no-net", "--pedantic", metainfo).CombinedOutput()
	assert.NoError(t, err, string(out))
	data, err := os.ReadFile(metainfo)
	require.NoError(t, err)
	assert.Contains(t, string(data), `<release version="`+version+`" date="`)
	out, err = exec.Command("appstreamcli", "validate-tree", "--no-net", root).CombinedOutput()
	assert.NoError(t, err, "the installed tree, .desktop, metainfo and icons together: %s", out)
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// asRoot returns how to run a command as root here: directly, or through
// password-less sudo. Without either the test is skipped, except in CI.
func asRoot(t *testing.T) []string {
	t.Helper()
	if os.Geteuid() == 0 {
		return nil
	}
	if exec.Command("sudo", "-n", "true").Run() == nil {
		return []string{"sudo", "-n"}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("installing the .deb needs root or password-less sudo, which CI has")
	}
	t.Skip("installing the .deb needs root or password-less sudo")
	return nil
}

func rootRun(t *testing.T, root []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(append(root, args...)[0], append(root, args...)[1:]...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func debInstalled(name string) bool {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Status}", name).Output()
	return err == nil && strings.Contains(string(out), "install ok installed")
}

// TestDebInstallRunRemove installs the .deb the way a user does (apt-get
// resolves its dependencies), runs the installed program — version, serve
// against a test upstream, the desktop app under Xvfb — and removes it
// again, checking that nothing of it is left in /usr.
func TestDebInstallRunRemove(t *testing.T) {
	deb := artefact(t, "GATEHOUSE_DEB", "package-linux")
	need(t, "apt-get", "dpkg-deb", "dpkg-query", "Xvfb", "dbus-daemon", "desktop-file-validate", "appstreamcli")
	root := asRoot(t)
	if debInstalled("gatehouse") {
		if os.Getenv("CI") != "" {
			t.Fatal("a gatehouse package is installed already")
		}
		t.Skip("a gatehouse package is installed on this machine already; this test would replace it and then remove it")
	}
	version, _ := packageVersion(t)
	deb, err := filepath.Abs(deb)
	require.NoError(t, err)

	// What is there before: paths of the package that exist already (the
	// shared folders: /usr/bin, the icon theme's) may stay afterwards.
	out, err := exec.Command("dpkg-deb", "-c", deb).Output()
	require.NoError(t, err)
	existed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		p := filepath.Clean(strings.TrimPrefix(fields[len(fields)-1], "."))
		if _, err := os.Lstat(p); err == nil {
			existed[p] = true
		}
	}

	// Depends are resolved (the build machine has them: they are what the
	// build links); Recommends (libdecor) are left out, so that nothing is
	// downloaded. The lock timeout waits for another apt on the machine.
	out2, err := rootRun(t, root, "apt-get", "install", "-y", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300", deb)
	require.NoError(t, err, out2)
	removed := false
	t.Cleanup(func() {
		if !removed {
			out, err := rootRun(t, root, "apt-get", "remove", "--purge", "-y", "-o", "DPkg::Lock::Timeout=300", "gatehouse")
			assert.NoError(t, err, out)
		}
	})
	require.True(t, debInstalled("gatehouse"))
	out, err = exec.Command("dpkg-query", "-L", "gatehouse").Output()
	require.NoError(t, err)
	listed := strings.Fields(string(out))
	for _, f := range append(packageFiles(), "/usr/share/doc/gatehouse/copyright") {
		assert.Contains(t, listed, f)
		assert.FileExists(t, f)
	}

	// The menu entry starts what is on PATH, with an icon the theme has.
	desktopFile := "/usr/share/applications/" + appID + ".desktop"
	out, err = exec.Command("desktop-file-validate", desktopFile).CombinedOutput()
	assert.NoError(t, err, string(out))
	out, err = exec.Command("appstreamcli", "validate", "--no-net", "/usr/share/metainfo/"+appID+".metainfo.xml").CombinedOutput()
	assert.NoError(t, err, string(out))
	entry, err := os.ReadFile(desktopFile)
	require.NoError(t, err)
	exe := regexp.MustCompile(`(?m)^Exec=(\S+)`).FindStringSubmatch(string(entry))
	require.NotNil(t, exe)
	path, err := exec.LookPath(exe[1])
	require.NoError(t, err)
	assert.Equal(t, "/usr/bin/gatehouse", path)

	out, err = exec.Command("/usr/bin/gatehouse", "version").Output()
	require.NoError(t, err)
	assert.Regexp(t, `^gatehouse `+regexp.QuoteMeta(version)+` \(desktop, go[0-9.]+ linux/amd64\)\n$`, string(out))
	out, err = exec.Command("ldd", "/usr/bin/gatehouse").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.NotContains(t, string(out), "not found")

	t.Run("serve", func(t *testing.T) {
		mock := &mockllm.Server{}
		up := httptest.NewServer(mock)
		defer up.Close()
		cfg := filepath.Join(t.TempDir(), "config.toml")
		writeFile(t, cfg, fmt.Sprintf("[[upstreams]]\nname = \"openai\"\nbase_url = \"%s/v1\"\nmodels = [\"gpt-*\"]\nkey_env = \"E2E_OPENAI_KEY\"\n", up.URL))
		p := startProgram(t, "/usr/bin/gatehouse", []string{"E2E_OPENAI_KEY=" + e2eSecret}, "serve", "--config", cfg, "--listen", "127.0.0.1:0")
		base := p.waitLine(t, regexp.MustCompile(`msg="forwarder listening" url=(http://\S+)/v1`))[1]
		res, err := testClient.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"gpt-4o","messages":[]}`))
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode, string(body))
		assert.Equal(t, "Bearer "+e2eSecret, mock.Last().Header.Get("Authorization"))
		p.waitLine(t, regexp.MustCompile(`msg=request .*path=/v1/chat/completions.*status=200`))
		stop(t, p)
	})

	t.Run("desktop app", func(t *testing.T) {
		cfgPath, listen, mock, _, _ := desktopConfig(t)
		env, _ := desktopEnv(t, cfgPath)
		p := startProgram(t, "/usr/bin/gatehouse", env)
		p.waitLine(t, regexp.MustCompile(`msg="forwarder listening"`))
		x := openX(t, strings.TrimPrefix(env[0], "DISPLAY="))
		var win xproto.Window
		waitUntil(t, "a window titled Gatehouse", func() bool {
			win = x.find("Gatehouse")
			return win != 0 && x.viewable(win)
		})
		// The menu entry's StartupWMClass is the window's class, so a
		// dock groups the window under the entry's icon.
		class, err := xproto.GetProperty(x.c, false, win, xproto.AtomWmClass, xproto.AtomString, 0, 64).Reply()
		require.NoError(t, err)
		wmClass := strings.Split(strings.TrimRight(string(class.Value), "\x00"), "\x00")
		require.Len(t, wmClass, 2)
		assert.Contains(t, string(entry), "\nStartupWMClass="+wmClass[1]+"\n")

		status, body := p.chat(t, listen)
		require.Equal(t, http.StatusOK, status, body)
		assert.Equal(t, "Bearer "+e2eSecret, mock.Last().Header.Get("Authorization"))
		stop(t, p)
	})

	out2, err = rootRun(t, root, "apt-get", "remove", "--purge", "-y", "-o", "DPkg::Lock::Timeout=300", "gatehouse")
	require.NoError(t, err, out2)
	removed = true
	assert.False(t, debInstalled("gatehouse"))
	out, _ = exec.Command("dpkg-query", "-W", "-f", "${Status}", "gatehouse").CombinedOutput()
	assert.NotContains(t, string(out), "config-files", "purged, not only removed")
	folders := map[string]bool{}
	for _, p := range listed {
		p = filepath.Clean(p)
		if p == "/." || existed[p] {
			continue
		}
		_, err := os.Lstat(p)
		assert.True(t, os.IsNotExist(err), "%s is left after the package was purged", p)
		folders[filepath.Dir(p)] = true
	}
	// Nor anything else of its name beside where its files were.
	for dir := range folders {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			assert.NotContains(t, strings.ToLower(e.Name()), "gatehouse", "%s is left in %s", e.Name(), dir)
		}
	}
}
